//! The proxy of `proxy` network mode. The box has a network namespace of its
//! own with loopback only; its init listens on 127.0.0.1:3128 (HTTP: CONNECT
//! and plain requests) and 127.0.0.1:1080 (SOCKS5) inside it and hands the
//! listening sockets to cowl, whose proxy process, outside the box, accepts
//! on them and connects out for what the allowlist permits. Every attempt,
//! allowed or refused, goes to the box's network log.

mod http;
mod socks5;

use serde::Serialize;
use std::io::Write;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The HTTP proxy's port inside the box.
pub const HTTP_PORT: u16 = 3128;
/// The SOCKS5 proxy's port inside the box.
pub const SOCKS_PORT: u16 = 1080;

/// One allowlist entry: a host name (or `*.` and a domain for its
/// subdomains) and a port (`None`: 80 and 443).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllowRule {
    /// The host, lower case; a leading `*.` matches any subdomain.
    pub host: String,
    /// The port, or `None` for 80 and 443.
    pub port: Option<u16>,
}

impl AllowRule {
    /// Parses `example.org`, `*.example.net:443`, `10.0.0.1:8080`.
    pub fn parse(s: &str) -> Option<AllowRule> {
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                (h, Some(p.parse::<u16>().ok().filter(|p| *p > 0)?))
            }
            _ => (s, None),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        ok.then_some(AllowRule { host, port })
    }

    /// Whether this rule lets `host:port` through.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            Some(domain) => {
                host.len() > domain.len() + 1
                    && host.ends_with(domain)
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            }
            None => host == self.host,
        };
        host_ok && self.port.map_or(port == 80 || port == 443, |p| p == port)
    }
}

/// One logged attempt.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct LogEntry {
    /// Seconds since the epoch.
    pub time: u64,
    /// The host asked for.
    pub host: String,
    /// The port asked for.
    pub port: u16,
    /// "allowed", "refused" or "failed" (allowed, but the connection failed).
    pub verdict: String,
    /// "http", "connect" or "socks5".
    pub via: String,
}

struct Shared {
    allow: Vec<AllowRule>,
    log: Mutex<Option<std::fs::File>>,
    box_name: String,
}

impl Shared {
    fn decide(&self, host: &str, port: u16) -> bool {
        self.allow.iter().any(|r| r.allows(host, port))
    }

    fn log(&self, host: &str, port: u16, verdict: &str, via: &str) {
        let e = LogEntry {
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            host: host.to_owned(),
            port,
            verdict: verdict.to_owned(),
            via: via.to_owned(),
        };
        if let Ok(mut g) = self.log.lock() {
            if let Some(f) = g.as_mut() {
                let mut line = serde_json::to_vec(&e).unwrap_or_default();
                line.push(b'\n');
                let _ = f.write_all(&line);
            }
        }
    }

    fn refusal(&self, host: &str, port: u16) -> String {
        format!(
            "cowl: {host}:{port} is not on box {}'s allowlist: run with `--allow {host}:{port}`, or add it to `allow` in its box.toml (`cowl config {}`)\n",
            self.box_name, self.box_name
        )
    }
}

/// Serves both proxies until the process is killed. `log` is the box's
/// network log (JSON lines, appended).
pub fn serve(
    http: TcpListener,
    socks: TcpListener,
    allow: Vec<AllowRule>,
    log: &Path,
    box_name: &str,
) {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .ok();
    let shared = Arc::new(Shared {
        allow,
        log: Mutex::new(file),
        box_name: box_name.to_owned(),
    });
    let s2 = shared.clone();
    std::thread::spawn(move || accept_loop(socks, s2, socks5::handle));
    accept_loop(http, shared, http::handle);
}

fn accept_loop(
    l: TcpListener,
    shared: Arc<Shared>,
    handler: fn(TcpStream, &Shared) -> std::io::Result<()>,
) {
    for conn in l.incoming().flatten() {
        let s = shared.clone();
        std::thread::spawn(move || {
            let _ = handler(conn, &s);
        });
    }
}

fn connect(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let addrs: Vec<_> = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()?
        .collect();
    let mut last = std::io::Error::other("no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(15)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Copies both ways until both sides are done.
fn splice(a: TcpStream, b: TcpStream) {
    let (mut ar, mut bw) = (a.try_clone(), b.try_clone());
    let t = std::thread::spawn(move || {
        if let (Ok(r), Ok(w)) = (ar.as_mut(), bw.as_mut()) {
            let _ = std::io::copy(r, w);
            let _ = w.shutdown(std::net::Shutdown::Write);
        }
    });
    let (mut br, mut aw) = (b, a);
    let _ = std::io::copy(&mut br, &mut aw);
    let _ = aw.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
}

/// The environment that points an app at the proxies.
pub fn env() -> Vec<(String, String)> {
    let http = format!("http://127.0.0.1:{HTTP_PORT}");
    let socks = format!("socks5h://127.0.0.1:{SOCKS_PORT}");
    let mut v = Vec::new();
    for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        v.push((k.to_owned(), http.clone()));
    }
    for k in ["ALL_PROXY", "all_proxy"] {
        v.push((k.to_owned(), socks.clone()));
    }
    for k in ["NO_PROXY", "no_proxy"] {
        v.push((k.to_owned(), "localhost,127.0.0.1,::1".to_owned()));
    }
    v
}

/// The box's network log.
pub fn log_path(box_dir: &Path) -> PathBuf {
    box_dir.join("netlog.jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_hosts_wildcards_and_ports() {
        let r = |s: &str| AllowRule::parse(s).unwrap_or_else(|| panic!("{s}"));
        assert!(r("example.org").allows("example.org", 443));
        assert!(r("example.org").allows("EXAMPLE.org.", 80));
        assert!(!r("example.org").allows("example.org", 22));
        assert!(!r("example.org").allows("www.example.org", 443));
        assert!(r("*.example.net:443").allows("a.b.example.net", 443));
        assert!(!r("*.example.net:443").allows("example.net", 443));
        assert!(!r("*.example.net:443").allows("badexample.net", 443));
        assert!(!r("*.example.net:443").allows("a.example.net", 80));
        assert!(r("127.0.0.1:8080").allows("127.0.0.1", 8080));
        assert!(AllowRule::parse("bad host").is_none());
        assert!(AllowRule::parse("x.org:0").is_none());
        assert!(AllowRule::parse("x.org:http").is_none());
    }
}
