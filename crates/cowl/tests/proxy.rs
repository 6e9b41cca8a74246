//! The `proxy` network mode: only the allowlist, within the proxy's limits
//! (header size, connection cap, idle time), never the host's own
//! addresses by name; every attempt logged. Loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::net::*;
use common::*;
use std::net::TcpListener;

const PROXY_PROBE: &str = r#"
import socket, sys, urllib.request, struct
a, b = int(sys.argv[1]), int(sys.argv[2])
def get(p):
    try:
        return urllib.request.urlopen("http://127.0.0.2:%d/" % p, timeout=10).read().decode()
    except Exception as e:
        return "refused" if "403" in str(e) else "error"
def connect(p):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(b"CONNECT 127.0.0.2:%d HTTP/1.1\r\nHost: x\r\n\r\n" % p)
    head = s.recv(4096).decode()
    if " 200 " not in head.split("\r\n")[0]:
        return "refused"
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        d = s.recv(4096)
        if not d: break
        data += d
    return data.decode().split("\r\n\r\n", 1)[1]
def socks(p):
    s = socket.create_connection(("127.0.0.1", 1080), timeout=10)
    s.sendall(b"\x05\x01\x00")
    s.recv(2)
    s.sendall(b"\x05\x01\x00\x03" + bytes([9]) + b"127.0.0.2" + struct.pack(">H", p))
    r = s.recv(10)
    if r[1] != 0:
        return "refused"
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        d = s.recv(4096)
        if not d: break
        data += d
    return data.decode().split("\r\n\r\n", 1)[1]
def direct(p):
    try:
        socket.create_connection(("127.0.0.2", p), timeout=3); return "ok"
    except OSError: return "blocked"
print(get(a), get(b), connect(a), connect(b), socks(a), socks(b), direct(a))
"#;

#[test]
fn proxy_mode_connects_only_to_the_allowlist_and_logs_every_attempt() {
    let w = World::new("proxy");
    let (a, b) = (http_server("yes"), http_server("no"));
    let allow = format!("127.0.0.2:{a}");
    let out = w.cmd(&[
        "run",
        "--net",
        "proxy",
        "--allow",
        &allow,
        "b",
        "--",
        "python3",
        "-c",
        PROXY_PROBE,
        &a.to_string(),
        &b.to_string(),
    ]);
    assert_success(&out, "proxy probe");
    let v: Vec<String> = stdout(&out).split_whitespace().map(str::to_owned).collect();
    assert_eq!(
        v,
        ["yes", "refused", "yes", "refused", "yes", "refused", "blocked"],
        "{}",
        stderr(&out)
    );
    let log: serde_json::Value =
        serde_json::from_slice(&w.cmd(&["netlog", "--json", "b"]).stdout).unwrap();
    let entries: Vec<(String, u64, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["via"].as_str().unwrap().to_owned(),
                e["port"].as_u64().unwrap(),
                e["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for via in ["http", "connect", "socks5"] {
        assert!(
            entries.contains(&(via.to_owned(), u64::from(a), "allowed".to_owned())),
            "{via} allowed missing: {entries:?}"
        );
        assert!(
            entries.contains(&(via.to_owned(), u64::from(b), "refused".to_owned())),
            "{via} refused missing: {entries:?}"
        );
    }
    assert_eq!(
        w.cmd(&["run", "--net", "proxy", "--allow", "bad host", "b", "--", "true"])
            .status
            .code(),
        Some(2)
    );
}

/// The proxy process of the box `cowl` (pid `cowl`) runs: its child outside
/// the box's pid namespace (one NSpid) with threads (the box's init has two
/// NSpids; a helper that removes old work directories has one thread).
fn proxy_pid(cowl: u32) -> Option<u32> {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        if after.split(' ').nth(1) != Some(&cowl.to_string()) {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.split_whitespace().count())
        };
        let threads: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if field("NSpid:") == Some(1) && threads >= 2 {
            return Some(pid);
        }
    }
    None
}

/// The peak resident memory of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Sends a request head whose last header line never ends: 300 MiB, in
/// 1 MiB pieces from a thread while the main thread waits for the answer.
/// Prints the answer's status line ("closed" for none), then waits for
/// stdin to close so the test can measure the proxy meanwhile.
const ENDLESS_HEADER: &str = r#"
import socket, sys, threading
s = socket.create_connection(("127.0.0.1", 3128), timeout=30)
s.sendall(b"GET http://example.org/ HTTP/1.1\r\nHost: example.org\r\nX-Endless: ")
def flood():
    piece = b"a" * (1 << 20)
    try:
        for _ in range(300):
            s.sendall(piece)
    except OSError:
        pass
t = threading.Thread(target=flood, daemon=True)
t.start()
try:
    got = s.recv(4096)
except OSError:
    got = b""
t.join(timeout=60)
print("answer", (got.split(b"\r\n")[0].decode() or "closed").replace(" ", "_"), flush=True)
sys.stdin.read()
"#;

/// Audit finding: a 400 MiB header line without a newline raised the proxy,
/// a host process outside the box's memory limit, to 400 MiB.
#[test]
fn proxy_refuses_an_endless_header_line_without_holding_it() {
    use std::io::{BufRead, BufReader};
    let w = World::new("proxy-endless");
    let mut child = w
        .cowl()
        .args(["run", "--net", "proxy", "--allow", "example.org", "b", "--"])
        .args(["python3", "-c", ENDLESS_HEADER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let proxy = proxy_pid(child.id());
    let peak = proxy.map(peak_rss_kib);
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let proxy = proxy.expect("no proxy process found beside the box");
    let peak = peak.unwrap_or(0);
    assert!(
        peak < 64 * 1024,
        "the proxy {proxy} peaked at {peak} KiB while a client sent 300 MiB of one header line"
    );
    let answer = line.split_whitespace().nth(1).unwrap_or("");
    assert!(
        answer == "HTTP/1.1_431_Request_Header_Fields_Too_Large" || answer == "closed",
        "answer {line:?}"
    );
    let log = netlog(&w, "b");
    assert!(
        logged(
            &log,
            "refused",
            "http",
            "header line longer than 8192 bytes"
        ),
        "{log:?}"
    );
}

/// Holds 256 connections open on the HTTP proxy, sending nothing, then
/// tries one more on each proxy; frees ten and tries again.
const CAP_PROBE: &str = r#"
import socket, sys, time
held = [socket.create_connection(("127.0.0.1", 3128), timeout=10) for _ in range(256)]
def answer(port, send=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if send:
        s.sendall(send)
    try:
        d = s.recv(4096)
    except socket.timeout:
        return "held"
    except OSError:
        return "closed"
    return d.split(b"\r\n")[0].decode().replace(" ", "_") or "closed"
print(answer(3128), answer(1080, b"\x05\x01\x00"))
for s in held[:10]:
    s.close()
p = sys.argv[1]
get = b"GET http://127.0.0.2:%s/ HTTP/1.0\r\n\r\n" % p.encode()
for _ in range(50):
    r = answer(3128, get)
    if "200" in r:
        break
    time.sleep(0.1)
print(r)
"#;

#[test]
fn proxy_refuses_connections_beyond_the_cap_at_once_and_logs_them() {
    let w = World::new("proxy-cap");
    let port = http_server("yes");
    let allow = format!("127.0.0.2:{port}");
    let out = w.cmd(&[
        "run",
        "--net",
        "proxy",
        "--allow",
        &allow,
        "b",
        "--",
        "python3",
        "-c",
        CAP_PROBE,
        &port.to_string(),
    ]);
    assert_success(&out, "cap probe");
    let v: Vec<String> = stdout(&out).split_whitespace().map(str::to_owned).collect();
    assert_eq!(
        v,
        [
            "HTTP/1.1_503_Service_Unavailable",
            "closed",
            "HTTP/1.0_200_OK"
        ],
        "{}",
        stderr(&out)
    );
    let log = netlog(&w, "b");
    for via in ["http", "socks5"] {
        assert!(
            logged(
                &log,
                "refused",
                via,
                "more than 256 connections open at once"
            ),
            "{via}: {log:?}"
        );
    }
}

/// Asks for `localhost:PORT` through each proxy, and for `127.0.0.1:PORT`
/// with CONNECT; prints each answer's body, or "refused" and why.
const LOOPBACK_PROBE: &str = r#"
import socket, sys, struct
p = int(sys.argv[1])
def http(line, tunnel):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(line + b"\r\nHost: x\r\n\r\n")
    if tunnel:
        head = s.recv(4096)
        if b" 200 " not in head.split(b"\r\n")[0]:
            return head
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        d = s.recv(4096)
        if not d: break
        data += d
    return data
def show(data):
    head, _, body = data.decode().partition("\r\n\r\n")
    if " 403 " in head.split("\r\n")[0]:
        # localhost may resolve to ::1 first: the message names that address then.
        names = ("--allow 127.0.0.1:%d" % p) in body or ("--allow '[::1]:%d'" % p) in body
        return "refused:" + ("names" if names else body.strip().replace(" ", "_"))
    return body.strip()
def socks(name):
    s = socket.create_connection(("127.0.0.1", 1080), timeout=10)
    s.sendall(b"\x05\x01\x00")
    s.recv(2)
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", p))
    r = s.recv(10)
    return "refused:%d" % r[1] if r[1] != 0 else "ok"
print(show(http(b"GET http://localhost:%d/ HTTP/1.0" % p, False)),
      show(http(b"CONNECT localhost:%d HTTP/1.1" % p, True)),
      socks(b"localhost"),
      show(http(b"CONNECT 127.0.0.1:%d HTTP/1.1" % p, True)))
"#;

/// Audit finding: the proxy checked names, not the addresses they resolve
/// to, so an allowed name that resolves to loopback reached the host's
/// local services.
#[test]
fn proxy_refuses_a_name_that_resolves_to_loopback_unless_the_address_is_allowed() {
    let w = World::new("proxy-loopback");
    let port = http_server_on("127.0.0.1", "local");
    let run = |allow: &[String]| {
        let mut args = vec!["run".to_owned(), "--net".into(), "proxy".into()];
        for a in allow {
            args.extend(["--allow".to_owned(), a.clone()]);
        }
        args.extend(["b", "--", "python3", "-c", LOOPBACK_PROBE].map(str::to_owned));
        args.push(port.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = w.cmd(&args);
        assert_success(&out, "loopback probe");
        stdout(&out)
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let by_name = format!("localhost:{port}");
    let by_address = format!("127.0.0.1:{port}");

    let v = run(std::slice::from_ref(&by_name));
    assert_eq!(
        v[..3],
        ["refused:names", "refused:names", "refused:2"],
        "{v:?}"
    );
    let log = netlog(&w, "b");
    for via in ["http", "connect", "socks5"] {
        assert!(
            log.iter().any(|e| e["verdict"] == "refused"
                && e["via"] == via
                && e["host"] == "localhost"
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("resolves to a loopback address"))),
            "{via}: {log:?}"
        );
    }

    // The address itself on the allowlist: reached by address, and by a
    // name that resolves to it when the name is allowed too.
    let v = run(std::slice::from_ref(&by_address));
    assert_eq!(v[3], "local", "{v:?}");
    let v = run(&[by_name, by_address]);
    assert_eq!(v, ["local", "local", "ok", "local"]);
}

/// A server on 127.0.0.2 that accepts and then never sends nor closes.
fn silent_server() -> u16 {
    let l = TcpListener::bind("127.0.0.2:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    port
}

/// Opens a connection to each proxy and sends nothing; opens a tunnel to
/// a server that never answers and sends nothing on it. Prints what each
/// got and whether it came within 8 s.
const IDLE_PROBE: &str = r#"
import socket, sys, time
p = int(sys.argv[1])
def wait(s):
    t = time.time()
    try:
        d = s.recv(4096)
    except OSError:
        d = b"timeout"
    what = d.split(b"\r\n")[0].decode().replace(" ", "_") or "closed"
    return what + ("" if time.time() - t < 8 else "-late")
http = socket.create_connection(("127.0.0.1", 3128), timeout=20)
socks = socket.create_connection(("127.0.0.1", 1080), timeout=20)
t = socket.create_connection(("127.0.0.1", 3128), timeout=20)
t.sendall(b"CONNECT 127.0.0.2:%d HTTP/1.1\r\n\r\n" % p)
established = t.recv(4096).split(b"\r\n")[0].decode().replace(" ", "_")
print(wait(http), wait(socks), established, wait(t))
"#;

#[test]
fn proxy_drops_a_silent_client_and_closes_an_idle_tunnel() {
    let w = World::new("proxy-idle");
    let port = silent_server();
    let allow = format!("127.0.0.2:{port}");
    let out = w
        .cowl()
        // Read by debug builds only, which the tests run.
        .env("COWL_DEBUG_PROXY_IDLE_MS", "1000")
        .args(["run", "--net", "proxy", "--allow", &allow, "b", "--"])
        .args(["python3", "-c", IDLE_PROBE, &port.to_string()])
        .output()
        .unwrap();
    assert_success(&out, "idle probe");
    let v: Vec<String> = stdout(&out).split_whitespace().map(str::to_owned).collect();
    assert_eq!(
        v,
        [
            "HTTP/1.1_408_Request_Timeout",
            "closed",
            "HTTP/1.1_200_Connection_established",
            "closed"
        ],
        "{}",
        stderr(&out)
    );
    let log = netlog(&w, "b");
    assert!(
        logged(&log, "refused", "http", "sent nothing for 1 s"),
        "{log:?}"
    );
    assert!(
        logged(&log, "refused", "socks5", "sent nothing for 1 s"),
        "{log:?}"
    );
    assert!(
        logged(
            &log,
            "closed",
            "connect",
            "nothing moved either way for 1 s"
        ),
        "{log:?}"
    );
}
