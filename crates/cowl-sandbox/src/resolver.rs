//! The resolver of a box with a network namespace of its own (`none` and
//! `proxy` modes). Without it, apt, git and pip fail there with a bare DNS
//! error and nobody learns what they wanted to reach. So the box's
//! /etc/resolv.conf names 127.0.0.1 ([`crate::resolvconf`]), where the box's
//! init binds UDP and TCP port 53 inside the box's network namespace and
//! passes both sockets out; cowl's network process, outside the box,
//! answers every query at once with a refusal (REFUSED: the client gives up
//! instead of waiting for its time-out) and logs the name to the box's
//! network log, which `cowl netlog` lists and from which `cowl run` takes
//! the hint it prints when a run fails. In `proxy` mode only the proxies
//! resolve names: a query here went around them, and is logged so.
//!
//! Nothing is ever looked up for the box: a query is read, answered and
//! logged, and nothing leaves this process but the answer and the log line.
//! What the box's clients can make it hold is bounded: one buffer of
//! [`MAX_MESSAGE`] for UDP, at most [`MAX_TCP_CONNECTIONS`] TCP connections
//! of one such buffer and a small thread each, idle ones closed after
//! [`TCP_IDLE`]; the names remembered so the log holds each once a minute
//! are at most [`MAX_NAMES`].

use crate::dns::{self, Question};
use crate::netlog::{LogEntry, NetLog};
use crate::policy::NetMode;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The resolver's port inside the box, on 127.0.0.1, UDP and TCP.
pub const PORT: u16 = 53;
/// The largest query read: 4 KiB, the EDNS buffer size clients offer. A
/// longer UDP query is read cut short (and answered FORMERR); a TCP
/// connection that announces a longer one is closed.
pub const MAX_MESSAGE: usize = 4096;
/// The most TCP connections open at once; more are closed as they come.
pub const MAX_TCP_CONNECTIONS: usize = 16;
/// How long a TCP connection may send nothing before it is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// The most names remembered as logged in the last [`RELOG_AFTER`]; past
/// that, names are answered but not logged until some are forgotten.
pub const MAX_NAMES: usize = 1024;
/// A name asked again within this time is not logged again (a client asks
/// for A and AAAA, and retries).
pub const RELOG_AFTER: Duration = Duration::from_secs(60);
/// The answer to every query. REFUSED is what a server that will not
/// resolve for the client says; clients take it as final for this server
/// (glibc tries the next one, musl and Go give up) and fail at once.
pub const ANSWER: u8 = dns::rcode::REFUSED;
/// Each thread's stack: the resolver resolves nothing, so it needs little.
const THREAD_STACK: usize = 64 * 1024;
/// How long the accept loop pauses when accepting fails, rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The resolver's state, shared by its threads.
struct Resolver {
    log: Arc<NetLog>,
    net: NetMode,
    seen: Mutex<Seen>,
    /// The TCP connections open now.
    open: AtomicUsize,
}

/// The names logged lately, so that each is logged once a minute.
#[derive(Default)]
struct Seen {
    names: HashMap<String, Instant>,
    /// The log says already that names are not logged for now.
    said_full: bool,
}

/// What to log of a name asked for.
#[derive(Debug, PartialEq, Eq)]
enum Note {
    /// The name.
    Name,
    /// Nothing: it was logged lately, or names are not logged for now.
    Nothing,
    /// That names are not logged for a while: too many were, lately.
    Full,
}

impl Seen {
    /// What to log of `name`, asked at `now`.
    fn note(&mut self, name: &str, now: Instant) -> Note {
        if let Some(t) = self.names.get(name) {
            if now.duration_since(*t) < RELOG_AFTER {
                return Note::Nothing;
            }
        } else if self.names.len() >= MAX_NAMES {
            self.names
                .retain(|_, t| now.duration_since(*t) < RELOG_AFTER);
            if self.names.len() >= MAX_NAMES {
                if self.said_full {
                    return Note::Nothing;
                }
                self.said_full = true;
                return Note::Full;
            }
            self.said_full = false;
        }
        self.names.insert(name.to_owned(), now);
        Note::Name
    }
}

impl Resolver {
    /// The answer to one message; `None` for one that deserves none.
    fn answer(&self, msg: &[u8]) -> Option<Vec<u8>> {
        let query = dns::parse(msg)?;
        if let dns::Query::Standard { question, .. } = &query {
            self.note(question);
        }
        Some(dns::answer(&query, ANSWER))
    }

    /// Logs the name asked for, unless it was logged lately.
    fn note(&self, q: &Question) {
        let name = q.name();
        let verdict = match self.net {
            NetMode::Proxy => "refused",
            _ => "no-network",
        };
        let note = match self.seen.lock() {
            Ok(mut s) => s.note(&name, Instant::now()),
            Err(_) => Note::Nothing,
        };
        let reason = match note {
            Note::Nothing => return,
            Note::Name => match self.net {
                NetMode::Proxy => format!(
                    "{} query around the proxy, answered REFUSED: in proxy mode only the proxies resolve names (HTTP_PROXY, ALL_PROXY)",
                    q.type_name()
                ),
                _ => format!(
                    "{} query, answered REFUSED: the box has no network",
                    q.type_name()
                ),
            },
            Note::Full => {
                let reason = format!(
                    "more than {MAX_NAMES} names looked up in {} s: further names are refused without being logged for a while",
                    RELOG_AFTER.as_secs()
                );
                self.log
                    .write(&LogEntry::now("", 0, verdict, "dns", Some(&reason)));
                return;
            }
        };
        self.log
            .write(&LogEntry::now(&name, 0, verdict, "dns", Some(&reason)));
    }
}

/// Serves the box's resolver on `udp` and `tcp` (bound in the box's
/// network namespace) from threads of their own, until the process ends;
/// every name asked goes to `log`. `net` is the box's network mode, which
/// the log's verdicts follow.
pub fn serve(udp: UdpSocket, tcp: TcpListener, log: Arc<NetLog>, net: NetMode) -> io::Result<()> {
    let r = Arc::new(Resolver {
        log,
        net,
        seen: Mutex::new(Seen::default()),
        open: AtomicUsize::new(0),
    });
    let r2 = r.clone();
    spawn(move || serve_udp(&udp, &r2))?;
    spawn(move || accept_loop(&tcp, r))?;
    Ok(())
}

fn spawn(f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .stack_size(THREAD_STACK)
        .spawn(f)
        .map(drop)
}

/// Answers datagrams, one at a time.
fn serve_udp(sock: &UdpSocket, r: &Resolver) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        if let Some(a) = r.answer(&buf[..n]) {
            let _ = sock.send_to(&a, from);
        }
    }
}

/// Accepts TCP connections, a thread for each, at most
/// [`MAX_TCP_CONNECTIONS`] at once.
fn accept_loop(l: &TcpListener, r: Arc<Resolver>) {
    loop {
        let conn = match l.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        if r.open.fetch_add(1, Ordering::SeqCst) >= MAX_TCP_CONNECTIONS {
            r.open.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let r2 = r.clone();
        let started = spawn(move || {
            let _ = serve_tcp(&conn, &r2);
            r2.open.fetch_sub(1, Ordering::SeqCst);
        });
        if started.is_err() {
            r.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Answers the messages of one TCP connection (each after its two-byte
/// length, RFC 1035 4.2.2) until the client closes it, is idle for
/// [`TCP_IDLE`], or sends what is not to be answered.
fn serve_tcp(conn: &TcpStream, r: &Resolver) -> io::Result<()> {
    conn.set_read_timeout(Some(TCP_IDLE))?;
    conn.set_write_timeout(Some(TCP_IDLE))?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let mut len = [0u8; 2];
        (&*conn).read_exact(&mut len)?;
        let n = usize::from(u16::from_be_bytes(len));
        if n == 0 || n > MAX_MESSAGE {
            return Ok(());
        }
        (&*conn).read_exact(&mut buf[..n])?;
        let Some(a) = r.answer(&buf[..n]) else {
            return Ok(());
        };
        let mut out = Vec::with_capacity(a.len() + 2);
        // An answer is at most 271 bytes.
        out.extend_from_slice(&(a.len() as u16).to_be_bytes());
        out.extend_from_slice(&a);
        (&*conn).write_all(&out)?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_name_is_logged_once_a_minute_and_the_memory_of_names_is_bounded() {
        let mut s = Seen::default();
        let t0 = Instant::now();
        assert_eq!(s.note("a.org", t0), Note::Name);
        assert_eq!(s.note("a.org", t0 + Duration::from_secs(1)), Note::Nothing);
        assert_eq!(s.note("a.org", t0 + RELOG_AFTER), Note::Name);
        let t1 = t0 + RELOG_AFTER;
        for i in 1..MAX_NAMES {
            assert_eq!(s.note(&format!("n{i}.org"), t1), Note::Name);
        }
        // Full: the log is told once, then names go unlogged.
        assert_eq!(s.note("full.org", t1), Note::Full);
        assert_eq!(s.note("full2.org", t1), Note::Nothing);
        assert_eq!(s.names.len(), MAX_NAMES);
        // A minute on, the old names are forgotten and logging resumes.
        assert_eq!(s.note("later.org", t1 + RELOG_AFTER), Note::Name);
        assert_eq!(s.names.len(), 1);
    }

    fn query(name: &str) -> Vec<u8> {
        let mut m = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 28, 0, 1]);
        m
    }

    #[test]
    fn udp_and_tcp_queries_are_refused_and_logged() {
        let dir = std::env::temp_dir().join(format!("cowl-resolver-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("netlog.jsonl");
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let (ua, ta) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        serve(udp, tcp, Arc::new(NetLog::open(&path)), NetMode::None).unwrap();

        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Garbage first: no answer, and the resolver goes on.
        c.send_to(&[1, 2, 3], ua).unwrap();
        c.send_to(&query("deb.debian.org"), ua).unwrap();
        let mut buf = [0u8; 512];
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(&buf[..4], &[0xab, 0xcd, 0x81, 0x05]);
        assert_eq!(&buf[12..n], &query("deb.debian.org")[12..]);

        let mut t = TcpStream::connect(ta).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for name in ["example.org", "example.net"] {
            let q = query(name);
            t.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
            t.write_all(&q).unwrap();
            let mut len = [0u8; 2];
            t.read_exact(&mut len).unwrap();
            let mut a = vec![0u8; usize::from(u16::from_be_bytes(len))];
            t.read_exact(&mut a).unwrap();
            assert_eq!(a[3] & 0x0f, dns::rcode::REFUSED);
        }
        // A length beyond the limit closes the connection.
        t.write_all(&[0xff, 0xff]).unwrap();
        let mut rest = Vec::new();
        assert_eq!(t.read_to_end(&mut rest).unwrap_or(0), 0);

        let log = crate::netlog::read_from(&path, 0);
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<&str> = log.iter().map(|e| e.host.as_str()).collect();
        assert_eq!(names, ["deb.debian.org", "example.org", "example.net"]);
        assert!(log
            .iter()
            .all(|e| e.verdict == "no-network" && e.via == "dns" && e.port == 0));
        assert_eq!(
            log[0].reason.as_deref(),
            Some("AAAA query, answered REFUSED: the box has no network")
        );
    }
}
