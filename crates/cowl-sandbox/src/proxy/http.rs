//! The HTTP proxy: CONNECT tunnels and plain requests for http:// URLs.

use super::head;
use super::{
    open, tunnel, Denied, Shared, LINGER, LINGER_BYTES, MAX_HEADER_LINE, MAX_HEAD_BYTES,
    MAX_HEAD_LINES,
};
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Instant;

/// Splits `host:port`, `[v6]:port` or a bare host (then `default`); the
/// host comes without brackets.
fn split_host_port(s: &str, default: u16) -> (String, u16) {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, p.parse().unwrap_or(default)),
        _ => (s, default),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host.to_owned(), port)
}

/// An HTTP response that closes the connection, with a plain text body.
pub(super) fn response(version: &str, status: &str, body: &str) -> String {
    format!(
        "{version} {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends a refusal, then closes gently: stops writing and reads what the
/// client still sends for a moment ([`LINGER`], [`LINGER_BYTES`]), so that
/// the close does not reset the connection before the client has read it.
fn refuse(conn: &TcpStream, version: &str, status: &str, body: &str) -> io::Result<()> {
    (&*conn).write_all(response(version, status, body).as_bytes())?;
    conn.shutdown(Shutdown::Write)?;
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let mut read = 0;
    while read < LINGER_BYTES {
        let left = LINGER.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        conn.set_read_timeout(Some(left))?;
        match (&*conn).read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    Ok(())
}

/// Serves one client of the HTTP proxy: reads its request head within the
/// limits, then tunnels (CONNECT) or forwards (an http:// URL) what the
/// allowlist lets through.
pub(super) fn handle(conn: TcpStream, s: &Shared) -> io::Result<()> {
    conn.set_read_timeout(Some(s.head_idle))?;
    conn.set_write_timeout(Some(s.head_idle))?;
    let mut reader = BufReader::new(&conn);
    let head = match head::read_head(&mut reader) {
        Ok(h) => h,
        Err(e) => {
            let Some((status, reason)) = e.refusal(s.head_idle) else {
                return Ok(());
            };
            s.log("", 0, "refused", "http", Some(&reason));
            let body = format!(
                "cowl: box {}'s proxy refused this request: {reason} (it takes heads of at most {MAX_HEAD_LINES} lines of {MAX_HEADER_LINE} bytes, {MAX_HEAD_BYTES} bytes in all)\n",
                s.box_name
            );
            return refuse(&conn, "HTTP/1.1", status, &body);
        }
    };
    // Bytes the client sent after the head are in the reader.
    let early = reader.buffer().to_vec();
    drop(reader);
    let first = String::from_utf8_lossy(head.first().map_or(&[][..], |l| &l[..])).into_owned();
    let mut parts = first.split_whitespace();
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("HTTP/1.1"),
    );
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = split_host_port(target, 443);
        match open(s, &host, port, "connect") {
            Ok(up) => {
                (&conn).write_all(
                    format!("{version} 200 Connection established\r\n\r\n").as_bytes(),
                )?;
                tunnel(s, &conn, &up, &early, &host, port, "connect");
            }
            Err(Denied::Refused(body)) => refuse(&conn, version, "403 Forbidden", &body)?,
            Err(Denied::Failed(body)) => refuse(&conn, version, "502 Bad Gateway", &body)?,
        }
        return Ok(());
    }
    // Plain HTTP: an absolute URI.
    let Some(rest) = target.strip_prefix("http://") else {
        s.log("", 0, "refused", "http", Some("not a proxy request"));
        return refuse(
            &conn,
            "HTTP/1.1",
            "400 Bad Request",
            "cowl: this proxy takes CONNECT or http:// URLs\n",
        );
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = split_host_port(authority, 80);
    let up = match open(s, &host, port, "http") {
        Ok(up) => up,
        Err(Denied::Refused(body)) => return refuse(&conn, version, "403 Forbidden", &body),
        Err(Denied::Failed(body)) => return refuse(&conn, version, "502 Bad Gateway", &body),
    };
    // The head as the server takes it: a path, no proxy headers.
    let mut out = format!("{method} {path} {version}\r\n").into_bytes();
    for h in head.iter().skip(1) {
        if h.len() >= 6 && h[..6].eq_ignore_ascii_case(b"proxy-") {
            continue;
        }
        out.extend_from_slice(h);
    }
    out.extend_from_slice(b"\r\n");
    drop(head);
    up.set_write_timeout(Some(s.tunnel_idle))?;
    (&up).write_all(&out)?;
    drop(out);
    tunnel(s, &conn, &up, &early, &host, port, "http");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_host_and_port_without_brackets() {
        for (t, host, port) in [
            ("example.org:8443", "example.org", 8443),
            ("example.org", "example.org", 443),
            ("[::1]:8000", "::1", 8000),
            ("[::1]", "::1", 443),
            ("::1", "::1", 443),
        ] {
            assert_eq!(split_host_port(t, 443), (host.to_owned(), port), "{t}");
        }
    }
}
