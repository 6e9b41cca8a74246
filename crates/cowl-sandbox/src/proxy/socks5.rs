//! The SOCKS5 proxy (RFC 1928): CONNECT, no authentication.

use super::{connect, splice, Shared};
use std::io::{Read, Write};
use std::net::TcpStream;

/// Serves one client of the SOCKS5 proxy: CONNECT only, without
/// authentication; what the allowlist lets through is tunnelled.
pub(super) fn handle(mut conn: TcpStream, s: &Shared) -> std::io::Result<()> {
    let mut hello = [0u8; 2];
    conn.read_exact(&mut hello)?;
    let mut methods = vec![0u8; hello[1] as usize];
    conn.read_exact(&mut methods)?;
    if hello[0] != 5 || !methods.contains(&0) {
        return conn.write_all(&[5, 0xff]);
    }
    conn.write_all(&[5, 0])?;
    let mut req = [0u8; 4];
    conn.read_exact(&mut req)?;
    if req[1] != 1 {
        return conn.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
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
        _ => return conn.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]),
    };
    let mut p = [0u8; 2];
    conn.read_exact(&mut p)?;
    let port = u16::from_be_bytes(p);
    if !s.decide(&host, port) {
        s.log(&host, port, "refused", "socks5");
        // 2: connection not allowed by ruleset.
        return conn.write_all(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
    match connect(&host, port) {
        Ok(up) => {
            s.log(&host, port, "allowed", "socks5");
            conn.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])?;
            splice(conn, up);
        }
        Err(_) => {
            s.log(&host, port, "failed", "socks5");
            conn.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0])?;
        }
    }
    Ok(())
}
