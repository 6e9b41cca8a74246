//! Helpers of the network tests: tiny servers on loopback, and the box's
//! network log read through `cowl netlog --json`.

use super::*;
use std::net::TcpListener;

/// A tiny HTTP server on 127.0.0.2 answering every request with `body`.
pub fn http_server(body: &'static str) -> u16 {
    http_server_on("127.0.0.2", body)
}

/// A tiny HTTP server on `ip` answering every request with `body`.
pub fn http_server_on(ip: &str, body: &'static str) -> u16 {
    let l = TcpListener::bind((ip, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for c in l.incoming().flatten() {
            let mut c = c;
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// The box's network log, as `cowl netlog --json` prints it.
pub fn netlog(w: &World, boxname: &str) -> Vec<serde_json::Value> {
    let out = w.cmd(&["netlog", "--json", boxname]);
    assert_success(&out, "netlog");
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Whether the log has an entry of `verdict` and `via` whose reason holds `reason`.
pub fn logged(log: &[serde_json::Value], verdict: &str, via: &str, reason: &str) -> bool {
    log.iter().any(|e| {
        e["verdict"] == verdict
            && e["via"] == via
            && e["reason"].as_str().is_some_and(|r| r.contains(reason))
    })
}
