//! The SOCKS5 proxy (RFC 1928): CONNECT, no authentication. Its messages
//! have fields of fixed or one-byte length, so what a client can make it
//! hold is bounded by the protocol; the idle limit and the connection cap
//! bound the rest.

use super::{open, seconds, tunnel, Denied, Shared};
use std::io::{self, Read, Write};
use std::net::TcpStream;

/// Reads a SOCKS5 greeting and CONNECT request: the host and port asked
/// for, or `None` when the request was answered already (unsupported).
/// Every field has a fixed or one-byte length: at most 255 bytes each.
fn read_request(conn: &mut TcpStream) -> io::Result<Option<(String, u16)>> {
    let mut hello = [0u8; 2];
    conn.read_exact(&mut hello)?;
    let mut methods = vec![0u8; hello[1] as usize];
    conn.read_exact(&mut methods)?;
    if hello[0] != 5 || !methods.contains(&0) {
        conn.write_all(&[5, 0xff])?;
        return Ok(None);
    }
    conn.write_all(&[5, 0])?;
    let mut req = [0u8; 4];
    conn.read_exact(&mut req)?;
    if req[1] != 1 {
        conn.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0])?;
        return Ok(None);
    }
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            conn.read_exact(&mut a)?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            conn.read_exact(&mut len)?;
            let mut name = vec![0u8; len[0] as usize];
            conn.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut a = [0u8; 16];
            conn.read_exact(&mut a)?;
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => {
            conn.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0])?;
            return Ok(None);
        }
    };
    let mut p = [0u8; 2];
    conn.read_exact(&mut p)?;
    Ok(Some((host, u16::from_be_bytes(p))))
}

/// Serves one client of the SOCKS5 proxy: CONNECT only, without
/// authentication; what the allowlist lets through is tunnelled.
pub(super) fn handle(mut conn: TcpStream, s: &Shared) -> io::Result<()> {
    conn.set_read_timeout(Some(s.head_idle))?;
    conn.set_write_timeout(Some(s.head_idle))?;
    let (host, port) = match read_request(&mut conn) {
        Ok(Some(asked)) => asked,
        Ok(None) => return Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            let reason = format!(
                "sent nothing for {} before the end of the SOCKS5 request",
                seconds(s.head_idle)
            );
            s.log("", 0, "refused", "socks5", Some(&reason));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    match open(s, &host, port, "socks5") {
        Ok(up) => {
            conn.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])?;
            tunnel(s, &conn, &up, &[], &host, port, "socks5");
        }
        // 2: connection not allowed by ruleset; the log says why.
        Err(Denied::Refused(_)) => conn.write_all(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0])?,
        // 5: connection refused.
        Err(Denied::Failed(_)) => conn.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0])?,
    }
    Ok(())
}
