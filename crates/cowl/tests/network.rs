//! Network modes: `none` (own namespace, loopback only), `host` (the host's
//! network, but not its abstract unix sockets), `ports` (TCP to allowed
//! ports only; UDP, raw and packet sockets refused). Loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

const PROBE: &str = r#"
import socket, os, sys
def tcp(p):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", int(p))); return "ok"
    except OSError as e: return "err%d" % e.errno
def sock(fam, typ):
    try:
        socket.socket(fam, typ); return "ok"
    except OSError as e: return "err%d" % e.errno
def bind(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", int(p))); return "ok"
    except OSError as e: return "err%d" % e.errno
def abstract(name):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect("\0" + name); return "ok"
    except OSError as e: return "err%d" % e.errno
def sig():
    try:
        os.kill(1, 0); return "ok"
    except OSError as e: return "err%d" % e.errno
def mptcp():
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262); return "ok"
    except OSError as e: return "err%d" % e.errno
a, b, name, free = sys.argv[1:5]
print(tcp(a), tcp(b), sock(socket.AF_INET, socket.SOCK_DGRAM), sock(socket.AF_INET6, socket.SOCK_DGRAM),
      sock(socket.AF_INET, socket.SOCK_RAW), sock(socket.AF_PACKET, socket.SOCK_RAW), bind(free), abstract(name), sig(), mptcp())
"#;

fn run(w: &World, net: &[&str], a: u16, b: u16, name: &str, free: u16) -> Vec<String> {
    let mut args = vec!["run"];
    args.extend_from_slice(net);
    let (a, b, free) = (a.to_string(), b.to_string(), free.to_string());
    args.extend(["b", "--", "python3", "-c", PROBE, &a, &b, name, &free]);
    let out = w.cmd(&args);
    assert_success(&out, &format!("{net:?}"));
    stdout(&out).split_whitespace().map(str::to_owned).collect()
}

/// Opens a socket of each family and prints `FAMILY:ok` or `FAMILY:errN`.
const FAMILIES: &str = r#"
import socket
fams = {"vsock": 40, "packet": 17, "alg": 38, "tipc": 30, "bluetooth": 31, "can": 29,
        "xdp": 44, "kcm": 41, "rds": 21, "llc": 26, "x25": 9, "appletalk": 5, "qipcrtr": 42, "smc": 43}
out = []
for name, fam in fams.items():
    for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET, socket.SOCK_RAW):
        try:
            socket.socket(fam, typ).close(); r = "ok"; break
        except OSError as e:
            r = "err%d" % e.errno
    try:
        a, b = socket.socketpair(fam, socket.SOCK_STREAM); a.close(); b.close(); pair = "ok"
    except OSError as e:
        pair = "err%d" % e.errno
    out.append("%s:%s:%s" % (name, r, pair))
print(" ".join(out))
"#;

#[test]
fn address_families_without_isolation_fail_in_every_network_mode() {
    // AF_VSOCK is not isolated by network namespaces: a `--net none` box
    // bound a vsock port that the host then could not bind. Every family a
    // box has no use for is refused by the filter, in every mode; the host
    // itself can open some of them (vsock or alg), so the refusal is the
    // box's, not the kernel's.
    let host = std::process::Command::new("python3")
        .args(["-c", FAMILIES])
        .output()
        .unwrap();
    assert_success(&host, "families on the host");
    let host = stdout(&host);
    assert!(
        host.contains("vsock:ok") || host.contains("alg:ok"),
        "this kernel offers neither AF_VSOCK nor AF_ALG, so the test proves nothing: {host}"
    );
    let w = World::new("families");
    for net in ["none", "host", "ports", "proxy"] {
        let out = w.cmd(&["run", "--net", net, "b", "--", "python3", "-c", FAMILIES]);
        assert_success(&out, net);
        for entry in stdout(&out).split_whitespace() {
            let f: Vec<&str> = entry.split(':').collect();
            assert_eq!(
                (f[1], f[2]),
                ("err97", "err97"),
                "{net}: {entry} (host: {host})"
            );
        }
    }
}

#[test]
fn each_network_mode_lets_through_exactly_what_it_says() {
    let w = World::new("net");
    let la = TcpListener::bind("127.0.0.1:0").unwrap();
    let lb = TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (
        la.local_addr().unwrap().port(),
        lb.local_addr().unwrap().port(),
    );
    let free = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let name = format!("cowl-test-{}", std::process::id());
    let _abs =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();

    // none: nothing of the host's network, abstract sockets included.
    let v = run(&w, &[], a, b, &name, free);
    assert_eq!(&v[0..2], ["err111", "err111"], "{v:?}");
    assert_eq!(v[7], "err111", "{v:?}");

    // host: the host's TCP, but its abstract sockets and pid 1 out of reach.
    let v = run(&w, &["--net", "host"], a, b, &name, free);
    assert_eq!(&v[0..2], ["ok", "ok"], "{v:?}");
    assert_eq!(v[7], "err1", "host abstract socket reachable: {v:?}");
    assert_eq!(v[8], "err1", "signal outside the box allowed: {v:?}");

    // ports: only the allowed port, TCP only.
    let allow = a.to_string();
    let v = run(
        &w,
        &["--net", "ports", "--allow", &allow],
        a,
        b,
        &name,
        free,
    );
    assert_eq!(v[0], "ok", "{v:?}");
    assert_eq!(v[1], "err13", "unlisted port reachable: {v:?}");
    for (i, what) in [(2, "udp"), (3, "udp6"), (4, "raw")] {
        assert_eq!(v[i], "err1", "{what} socket allowed: {v:?}");
    }
    // Packet sockets are a family no mode allows (EAFNOSUPPORT).
    assert_eq!(v[5], "err97", "packet socket allowed: {v:?}");
    assert_eq!(v[6], "err13", "bind to an unlisted port allowed: {v:?}");
    // A stream socket of another protocol would escape Landlock's TCP rules.
    assert_eq!(v[9], "err1", "MPTCP socket allowed in ports mode: {v:?}");
    let bind = format!("bind:{free}");
    let v = run(
        &w,
        &["--net", "ports", "--allow", &allow, "--allow", &bind],
        a,
        b,
        &name,
        free,
    );
    assert_eq!(v[6], "ok", "{v:?}");

    // --allow outside ports mode, or not a port: usage errors.
    assert_eq!(
        w.cmd(&["run", "--allow", "443", "b", "--", "true"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        w.cmd(&["run", "--net", "ports", "--allow", "https", "b", "--", "true"])
            .status
            .code(),
        Some(2)
    );
    drop((la, lb));
}

#[test]
fn gui_passes_the_display_sockets_through_and_only_then() {
    let w = World::new("gui");
    let n = 600 + std::process::id() % 300;
    let xdir = std::path::Path::new("/tmp/.X11-unix");
    if !xdir.exists() {
        std::fs::create_dir_all(xdir).unwrap();
        std::fs::set_permissions(xdir, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
            .unwrap();
    }
    let xsock = xdir.join(format!("X{n}"));
    let _ = std::fs::remove_file(&xsock);
    let _x = UnixListener::bind(&xsock).unwrap();
    let run = w.host().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let _wl = UnixListener::bind(run.join("wl-test")).unwrap();
    let script = format!(
        "import socket, os\ndef c(p):\n  s = socket.socket(socket.AF_UNIX)\n  try:\n    s.connect(p); return 'ok'\n  except OSError as e: return 'err'\nprint(c('{}'), c(os.environ['XDG_RUNTIME_DIR'] + '/wl-test'))",
        xsock.display()
    );
    let go = |gui: bool| {
        let mut args = vec!["run"];
        if gui {
            args.push("--gui");
        }
        args.extend(["b", "--", "python3", "-c", &script]);
        let out = w
            .cowl()
            .env("DISPLAY", format!(":{n}"))
            .env("XDG_RUNTIME_DIR", &run)
            .env("WAYLAND_DISPLAY", "wl-test")
            .args(&args)
            .output()
            .unwrap();
        assert_success(&out, "gui probe");
        stdout(&out).trim().to_owned()
    };
    assert_eq!(
        go(false),
        "err err",
        "display sockets reachable without --gui"
    );
    assert_eq!(go(true), "ok ok");
    let _ = std::fs::remove_file(&xsock);
    let out = w
        .cowl()
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .args(["run", "--gui", "b", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A tiny HTTP server on 127.0.0.2 answering every request with `body`.
fn http_server(body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.2:0").unwrap();
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
