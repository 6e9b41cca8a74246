//! The S3-compatible server the tests run against (moto, which scripts/test
//! installs and starts on 127.0.0.1:9417, or `COWL_TEST_S3_ENDPOINT`).
//! Shared by cowl-mirror's tests and cowl's (included there by path).

use std::io::{Read, Write};

/// The server's endpoint; a test without it fails, saying how to start it.
pub fn endpoint() -> String {
    let ep =
        std::env::var("COWL_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9417".into());
    let hostport = ep.trim_start_matches("http://").to_owned();
    if std::net::TcpStream::connect(&hostport).is_err() {
        panic!("no S3-compatible server at {ep}: run scripts/test, which installs and starts one (moto) on 127.0.0.1:9417");
    }
    ep
}

/// Makes a bucket on the server (moto takes unsigned requests).
pub fn make_bucket(ep: &str, bucket: &str) {
    let hostport = ep.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
}
