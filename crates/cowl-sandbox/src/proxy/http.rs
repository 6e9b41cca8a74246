//! The HTTP proxy: CONNECT tunnels and plain requests for http:// URLs.

use super::{connect, splice, Shared};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

fn split_host_port(s: &str, default: u16) -> (String, u16) {
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
            (h.to_owned(), p.parse().unwrap_or(default))
        }
        _ => (s.to_owned(), default),
    }
}

/// Serves one client of the HTTP proxy: tunnels (CONNECT) or forwards (an
/// http:// URL) what the allowlist lets through.
pub(super) fn handle(mut conn: TcpStream, s: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let end = line == "\r\n" || line == "\n";
        head.push(line);
        if end || head.len() > 200 {
            break;
        }
    }
    let first = head.first().cloned().unwrap_or_default();
    let mut parts = first.split_whitespace();
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("HTTP/1.1"),
    );
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = split_host_port(target, 443);
        if !s.decide(&host, port) {
            s.log(&host, port, "refused", "connect");
            let body = s.refusal(&host, port);
            return conn.write_all(format!("{version} 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
        }
        match connect(&host, port) {
            Ok(up) => {
                s.log(&host, port, "allowed", "connect");
                conn.write_all(format!("{version} 200 Connection established\r\n\r\n").as_bytes())?;
                // Bytes the client sent after the head are in the reader.
                let pending = reader.buffer().to_vec();
                let mut up2 = up.try_clone()?;
                up2.write_all(&pending)?;
                splice(conn, up);
            }
            Err(e) => {
                s.log(&host, port, "failed", "connect");
                conn.write_all(
                    format!("{version} 502 Bad Gateway\r\nConnection: close\r\n\r\ncowl: {e}\n")
                        .as_bytes(),
                )?;
            }
        }
        return Ok(());
    }
    // Plain HTTP: an absolute URI.
    let Some(rest) = target.strip_prefix("http://") else {
        return conn.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\ncowl: this proxy takes CONNECT or http:// URLs\n");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = split_host_port(authority, 80);
    if !s.decide(&host, port) {
        s.log(&host, port, "refused", "http");
        let body = s.refusal(&host, port);
        return conn.write_all(format!("{version} 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
    }
    let mut up = match connect(&host, port) {
        Ok(up) => up,
        Err(e) => {
            s.log(&host, port, "failed", "http");
            return conn.write_all(
                format!("{version} 502 Bad Gateway\r\nConnection: close\r\n\r\ncowl: {e}\n")
                    .as_bytes(),
            );
        }
    };
    s.log(&host, port, "allowed", "http");
    let mut out = format!("{method} {path} {version}\r\n");
    for h in &head[1..] {
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("proxy-") {
            continue;
        }
        out.push_str(h);
    }
    up.write_all(out.as_bytes())?;
    let pending = reader.buffer().to_vec();
    up.write_all(&pending)?;
    splice(conn, up);
    Ok(())
}
