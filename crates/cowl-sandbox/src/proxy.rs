//! The proxy of `proxy` network mode. The box has a network namespace of its
//! own with loopback only; its init listens on 127.0.0.1:3128 (HTTP: CONNECT
//! and plain requests) and 127.0.0.1:1080 (SOCKS5) inside it and hands the
//! listening sockets to cowl, whose network process, outside the box, accepts
//! on them and connects out for what the allowlist permits. Every attempt,
//! allowed or refused, goes to the box's network log ([`crate::netlog`]).
//!
//! The proxy runs on the host, outside the box's memory and process limits,
//! so what the box's clients send must not decide what it holds: the limits
//! below bound each connection's memory and time and the number of
//! connections, and a refusal says which limit it met. And since a name on
//! the allowlist can resolve to anything, the addresses it resolves to are
//! checked too ([`destination`]): none that leads to this host passes unless
//! the allowlist names it.

mod destination;
mod head;
mod http;
mod relay;
mod socks5;

use crate::netlog::{LogEntry, NetLog};
use serde::Serialize;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The longest line of an HTTP request head, request line included: 8 KiB,
/// the default of common servers (nginx, Apache). A longer request line is
/// answered 414, a longer header line 431.
pub const MAX_HEADER_LINE: usize = 8 * 1024;
/// The largest HTTP request head, all its lines together: 64 KiB (431).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most lines an HTTP request head may have, request line included:
/// 100, Apache's limit of header fields (431).
pub const MAX_HEAD_LINES: usize = 100;
/// The most connections one box may have open through its two proxies at
/// once. Further ones are refused as they come (HTTP: 503) until some
/// close. One connection holds at most a thread's used stack, a head and
/// its copy, or two relay buffers: about 0.25 MiB, so the proxy's memory
/// stays within some 64 MiB whatever the box does.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client may send nothing while its HTTP request head or its
/// SOCKS5 handshake is incomplete before the proxy drops it (HTTP: 408).
pub const HEAD_IDLE: Duration = Duration::from_secs(60);
/// How long an established connection may carry nothing, either way,
/// before the proxy closes it: 10 minutes, longer than the idle time-outs
/// of servers and the long polls of clients.
pub const TUNNEL_IDLE: Duration = Duration::from_secs(600);
/// How long connecting to one address of the host asked for may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The buffer of each direction of an established connection.
const RELAY_BUFFER: usize = 16 * 1024;
/// The stack of each connection's thread. Resolving a name (glibc's NSS
/// modules) is the deepest thing it does; stacks are touched lazily.
const THREAD_STACK: usize = 512 * 1024;
/// After refusing an HTTP request, how long the proxy keeps reading (and
/// discarding) what the client still sends, so that closing does not reset
/// the connection before the client has read the answer.
const LINGER: Duration = Duration::from_secs(1);
/// The most bytes discarded in that time.
const LINGER_BYTES: usize = 1 << 20;
/// How long the accept loop pauses when accepting fails (out of
/// descriptors or memory), rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

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
        host_ok && self.port_ok(port)
    }

    /// Whether this rule names the address `ip` itself, with `port`: what
    /// lets a name through to an address of this host ([`destination`]).
    pub fn names(&self, ip: IpAddr, port: u16) -> bool {
        self.port_ok(port)
            && self
                .host
                .parse::<IpAddr>()
                .is_ok_and(|h| destination::canonical(h) == destination::canonical(ip))
    }

    fn port_ok(&self, port: u16) -> bool {
        self.port.map_or(port == 80 || port == 443, |p| p == port)
    }
}

struct Shared {
    allow: Vec<AllowRule>,
    log: Arc<NetLog>,
    box_name: String,
    /// The connections open now, through both proxies.
    open: AtomicUsize,
    /// [`HEAD_IDLE`], or its debug-build override.
    head_idle: Duration,
    /// [`TUNNEL_IDLE`], or its debug-build override.
    tunnel_idle: Duration,
}

impl Shared {
    fn decide(&self, host: &str, port: u16) -> bool {
        self.allow.iter().any(|r| r.allows(host, port))
    }

    fn log(&self, host: &str, port: u16, verdict: &str, via: &str, reason: Option<&str>) {
        self.log
            .write(&LogEntry::now(host, port, verdict, via, reason));
    }

    fn refusal(&self, host: &str, port: u16) -> String {
        let target = host_port(host, port);
        format!(
            "cowl: {target} is not on box {}'s allowlist: run with `--allow {}`, or add it to `allow` in its box.toml (`cowl config {}`)\n",
            self.box_name,
            shell_quoted(&target),
            self.box_name
        )
    }
}

/// `host:port`, with an IPv6 address in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `s` quoted for a shell if it holds brackets or a star.
fn shell_quoted(s: &str) -> String {
    if s.contains(['[', '*']) {
        format!("'{s}'")
    } else {
        s.to_owned()
    }
}

/// A duration for messages: "60 s", "500 ms".
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The idle limits: [`HEAD_IDLE`] and [`TUNNEL_IDLE`]; in debug builds
/// `COWL_DEBUG_PROXY_IDLE_MS` sets both, so tests need not wait minutes.
fn idle_limits() -> (Duration, Duration) {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("COWL_DEBUG_PROXY_IDLE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let d = Duration::from_millis(ms.max(1));
        return (d, d);
    }
    (HEAD_IDLE, TUNNEL_IDLE)
}

/// Serves both proxies until the process is killed; every attempt goes to
/// `log`, the box's network log.
pub fn serve(
    http: TcpListener,
    socks: TcpListener,
    allow: Vec<AllowRule>,
    log: Arc<NetLog>,
    box_name: &str,
) {
    let (head_idle, tunnel_idle) = idle_limits();
    let shared = Arc::new(Shared {
        allow,
        log,
        box_name: box_name.to_owned(),
        open: AtomicUsize::new(0),
        head_idle,
        tunnel_idle,
    });
    let s2 = shared.clone();
    std::thread::spawn(move || accept_loop(socks, s2, "socks5", socks5::handle));
    accept_loop(http, shared, "http", http::handle);
}

/// One of the [`MAX_CONNECTIONS`] places for an open connection, given
/// back when dropped.
struct Slot(Arc<Shared>);

impl Slot {
    fn take(shared: &Arc<Shared>) -> Option<Slot> {
        let before = shared.open.fetch_add(1, Ordering::SeqCst);
        if before >= MAX_CONNECTIONS {
            shared.open.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(shared.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts connections and gives each a thread of its own, as long as the
/// box has fewer than [`MAX_CONNECTIONS`] open; refuses the others at once.
fn accept_loop(
    l: TcpListener,
    shared: Arc<Shared>,
    via: &'static str,
    handler: fn(TcpStream, &Shared) -> io::Result<()>,
) {
    loop {
        let conn = match l.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        let Some(slot) = Slot::take(&shared) else {
            let reason = format!("more than {MAX_CONNECTIONS} connections open at once");
            shared.log("", 0, "refused", via, Some(&reason));
            if via == "http" {
                // Without waiting: a fresh socket's buffer takes the answer.
                let _ = conn.set_nonblocking(true);
                let body = format!(
                    "cowl: box {} has {MAX_CONNECTIONS} connections open through its proxy, the most it may: close some and retry\n",
                    shared.box_name
                );
                let _ = (&conn).write_all(
                    http::response("HTTP/1.1", "503 Service Unavailable", &body).as_bytes(),
                );
            }
            continue;
        };
        let spawned = std::thread::Builder::new()
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let _ = handler(conn, &slot.0);
                drop(slot);
            });
        if let Err(e) = spawned {
            let reason = format!("cannot start a thread for the connection: {e}");
            shared.log("", 0, "refused", via, Some(&reason));
        }
    }
}

/// Why a request got no connection, with the message for the client.
enum Denied {
    /// The allowlist does not let it through.
    Refused(String),
    /// It was allowed, but resolving or connecting failed.
    Failed(String),
}

/// Checks `host:port` against the allowlist, resolves it, checks the
/// addresses ([`destination::check`]) and connects to the first of those
/// that passed that answers. Logs the outcome.
fn open(s: &Shared, host: &str, port: u16, via: &str) -> Result<TcpStream, Denied> {
    if !s.decide(host, port) {
        s.log(host, port, "refused", via, Some("not on the allowlist"));
        return Err(Denied::Refused(s.refusal(host, port)));
    }
    let fail = |reason: String| {
        s.log(host, port, "failed", via, Some(&reason));
        Denied::Failed(format!("cowl: {reason}\n"))
    };
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return Err(fail(format!("cannot resolve {host}: {e}"))),
    };
    let here = match crate::net::host_addresses() {
        Ok(h) => h,
        Err(e) => {
            return Err(fail(format!(
                "cannot list this host's addresses to check {host}'s against them: {e}"
            )))
        }
    };
    let checked = destination::check(addrs, port, &s.allow, &here);
    if checked.passed.is_empty() {
        let Some((addr, kind)) = checked.refused.first() else {
            return Err(fail(format!("{host} has no address")));
        };
        let (ip, what) = (destination::canonical(addr.ip()), kind.describe());
        let flag = destination::allow_flag(ip, port);
        s.log(
            host,
            port,
            "refused",
            via,
            Some(&format!(
                "resolves to {what} {ip}: `--allow {flag}` names the address"
            )),
        );
        return Err(Denied::Refused(format!(
            "cowl: {} resolves to {what} {ip}, which box {b} reaches only when its allowlist names the address itself: run with `--allow {flag}`, or add it to `allow` in its box.toml (`cowl config {b}`)\n",
            host_port(host, port),
            b = s.box_name,
        )));
    }
    let skipped: Vec<String> = checked
        .refused
        .iter()
        .map(|(a, kind)| format!("{} ({})", destination::canonical(a.ip()), kind.describe()))
        .collect();
    let note = (!skipped.is_empty()).then(|| format!("skipped {}", skipped.join(", ")));
    let mut last = String::new();
    for a in &checked.passed {
        match TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
            Ok(up) => {
                s.log(host, port, "allowed", via, note.as_deref());
                return Ok(up);
            }
            Err(e) => last = format!("cannot connect to {a}: {e}"),
        }
    }
    Err(fail(last))
}

/// Relays an established connection until it ends; logs a close for
/// idleness.
fn tunnel(
    s: &Shared,
    client: &TcpStream,
    up: &TcpStream,
    early: &[u8],
    host: &str,
    port: u16,
    via: &str,
) {
    if let Ok(relay::Ended::Idle) = relay::relay(client, up, early, s.tunnel_idle) {
        let reason = format!("nothing moved either way for {}", seconds(s.tunnel_idle));
        s.log(host, port, "closed", via, Some(&reason));
    }
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
        assert!(r("[::1]:8000").allows("::1", 8000));
    }

    #[test]
    fn ipv6_targets_are_written_in_brackets() {
        assert_eq!(host_port("::1", 80), "[::1]:80");
        assert_eq!(host_port("a.org", 80), "a.org:80");
    }
}
