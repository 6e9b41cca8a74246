//! Network modes: `none` (own namespace, loopback only; a resolver that
//! refuses every name and logs it), `host` (the host's network, but not its
//! abstract unix sockets), `ports` (TCP to allowed ports only; UDP, raw and
//! packet sockets refused), `proxy` (names looked up around it refused and
//! logged; the proxy's own limits are tested in `proxy.rs`). Loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::net::*;
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
fn a_box_with_its_own_network_cannot_take_an_abstract_name_of_the_hosts() {
    // In `none` and `proxy` a box's abstract unix sockets live in its own
    // network namespace: one it listens on is not the host's name. (In
    // `host` and `ports` no kernel mechanism stops a box listening on a
    // name of the host's; the README and --help say so.)
    let w = World::new("abstract-listen");
    let name = format!("cowl-test-listen-{}", std::process::id());
    let listen = format!(
        "import socket, time; s = socket.socket(socket.AF_UNIX); s.bind('\\0{name}'); s.listen(); print('listening', flush=True); time.sleep(3)"
    );
    for net in ["none", "proxy"] {
        let mut child = w
            .cowl()
            .args(["run", "--net", net, "b", "--", "python3", "-c", &listen])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(first, "listening\n", "{net}");
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let reached = std::os::unix::net::UnixStream::connect_addr(&addr);
        assert!(reached.is_err(), "{net}: the host reached the box's name");
        // The name is still free on the host.
        let mine = UnixListener::bind_addr(&addr);
        assert!(mine.is_ok(), "{net}: the box took the host's name");
        drop(mine);
        let _ = child.kill();
        let _ = child.wait();
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

/// Asks the box's resolver directly, as a client library would: garbage
/// and a compression loop first (UDP), then an AAAA query over UDP and an
/// HTTPS query over TCP. Prints each answer's rcode.
const RESOLVER_PROBE: &str = r#"
import socket, struct
def q(name, qtype, qid):
    m = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for l in name.split("."):
        m += bytes([len(l)]) + l.encode()
    return m + b"\0" + struct.pack(">HH", qtype, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
for junk in (b"\x01\x02", b"\x00\x07\x01\x00\x00\x01" + b"\0" * 6 + b"\xc0\x0c", bytes(range(256)) * 3):
    u.sendto(junk, ("127.0.0.1", 53))
u.sendto(q("udp.example.org", 28, 0x4242), ("127.0.0.1", 53))
while True:
    a = u.recv(4096)
    if a[:2] == b"\x42\x42":
        break
t = socket.create_connection(("127.0.0.1", 53), timeout=3)
m = q("tcp.example.org", 65, 0x4343)
t.sendall(struct.pack(">H", len(m)) + m)
n = struct.unpack(">H", t.recv(2))[0]
b = t.recv(n)
print("udp:rcode%d" % (a[3] & 15), "tcp:rcode%d" % (b[3] & 15), "echo:%s" % (b[12:] == m[12:]))
"#;

/// The names `cowl netlog --json` lists as looked up ("dns"), with their
/// verdicts.
fn names_logged(w: &World, boxname: &str) -> Vec<(String, String)> {
    netlog(w, boxname)
        .iter()
        .filter(|e| e["via"] == "dns")
        .map(|e| {
            (
                e["host"].as_str().unwrap().to_owned(),
                e["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The first-hour issue: under the default `net = none`, apt, git and pip
/// failed with a bare DNS error, and cowl said nothing of it.
#[test]
fn a_box_without_network_refuses_names_at_once_and_logs_them() {
    let w = World::new("dns-none");
    let start = std::time::Instant::now();
    let out = w.cmd(&["run", "b", "--", "getent", "hosts", "deb.debian.org"]);
    let took = start.elapsed();
    // getent: 2, not found. Refused at once, not after the libc's 5 s
    // time-out (times its attempts).
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        took < std::time::Duration::from_secs(3),
        "the lookup took {took:?}"
    );
    let out = w.cmd(&["run", "b", "--", "python3", "-c", RESOLVER_PROBE]);
    assert_success(&out, "resolver probe");
    assert_eq!(
        stdout(&out).trim(),
        "udp:rcode5 tcp:rcode5 echo:True",
        "{}",
        stderr(&out)
    );
    let logged = names_logged(&w, "b");
    for name in ["deb.debian.org", "udp.example.org", "tcp.example.org"] {
        assert!(
            logged.contains(&(name.to_owned(), "no-network".to_owned())),
            "{name} not logged: {logged:?}"
        );
    }
    // The junk was answered (FORMERR) or dropped, and logged as no name.
    assert_eq!(logged.len(), 3, "{logged:?}");
    let table = stdout(&w.cmd(&["netlog", "b"]));
    assert!(
        table.lines().any(|l| l.contains("no-network")
            && l.contains(" dns ")
            && l.contains(" deb.debian.org ")),
        "{table}"
    );
}

#[test]
fn a_failed_run_names_what_it_tried_to_reach_and_the_flag_that_allows_it() {
    let w = World::new("dns-hint");
    let out = w.cmd(&[
        "run",
        "b",
        "--",
        "git",
        "ls-remote",
        "https://example.org/x",
    ]);
    assert!(!out.status.success(), "{}", stderr(&out));
    let hint = "cowl: the box tried to reach example.org but has no network: run with --net proxy --allow example.org";
    assert!(
        stderr(&out).lines().any(|l| l == hint),
        "no hint in:\n{}",
        stderr(&out)
    );
    // Several names: the first asked, and a count of the others.
    let out = w.sh(
        "b",
        "getent hosts deb.debian.org; getent hosts security.debian.org; getent hosts deb.debian.org; python3 -c 'import socket; socket.getaddrinfo(\"pypi.org\", 443)' 2>/dev/null; exit 100",
    );
    assert_eq!(out.status.code(), Some(100));
    let hint = "cowl: the box tried to reach deb.debian.org (and 2 more: `cowl netlog b`) but has no network: run with --net proxy --allow deb.debian.org";
    assert!(
        stderr(&out).lines().any(|l| l == hint),
        "no hint in:\n{}",
        stderr(&out)
    );
    // Only this run's names: example.org was the run before.
    assert!(!stderr(&out).contains("example.org"), "{}", stderr(&out));
}

#[test]
fn a_run_that_ends_well_prints_no_hint() {
    let w = World::new("dns-no-hint");
    let out = w.sh("b", "getent hosts deb.debian.org || true");
    assert_success(&out, "lookup then true");
    assert!(!stderr(&out).contains("cowl:"), "{}", stderr(&out));
    // It was logged all the same.
    assert_eq!(
        names_logged(&w, "b"),
        [("deb.debian.org".to_owned(), "no-network".to_owned())]
    );
    // A failed run that looked up nothing gets no hint either.
    let out = w.sh("b", "exit 3");
    assert_eq!(out.status.code(), Some(3));
    assert!(!stderr(&out).contains("cowl:"), "{}", stderr(&out));
}

/// Looks a name up directly (around the proxy), then fetches through the
/// proxy; exits 1 if the direct lookup failed and `sys.argv[2]` says so.
const AROUND_PROXY_PROBE: &str = r#"
import socket, sys, urllib.request
p = int(sys.argv[1])
try:
    socket.getaddrinfo("pypi.org", 443)
    direct = "resolved"
except socket.gaierror:
    direct = "refused"
via = urllib.request.urlopen("http://127.0.0.2:%d/" % p, timeout=10).read().decode()
print(direct, via)
sys.exit(1 if sys.argv[2] == "fail" and direct == "refused" else 0)
"#;

#[test]
fn in_proxy_mode_a_name_looked_up_around_the_proxy_is_refused_and_logged() {
    let w = World::new("dns-proxy");
    let port = http_server("yes");
    let allow = format!("127.0.0.2:{port}");
    let run = |how: &str| {
        w.cmd(&[
            "run",
            "--net",
            "proxy",
            "--allow",
            &allow,
            "b",
            "--",
            "python3",
            "-c",
            AROUND_PROXY_PROBE,
            &port.to_string(),
            how,
        ])
    };
    let out = run("pass");
    assert_success(&out, "around the proxy");
    assert_eq!(stdout(&out).trim(), "refused yes", "{}", stderr(&out));
    assert!(!stderr(&out).contains("cowl:"), "{}", stderr(&out));
    let log = netlog(&w, "b");
    assert!(
        log.iter().any(|e| e["via"] == "dns"
            && e["host"] == "pypi.org"
            && e["verdict"] == "refused"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("around the proxy"))),
        "{log:?}"
    );
    // The proxy still logged the allowed request.
    assert!(
        log.iter()
            .any(|e| e["via"] == "http" && e["verdict"] == "allowed"),
        "{log:?}"
    );
    let out = run("fail");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.lines().any(|l| l
            .starts_with("cowl: the box looked up pypi.org itself, around its proxy")
            && l.ends_with(", and run with --allow pypi.org")),
        "{err}"
    );
}

/// What the host's /etc/resolv.conf is: its entry's metadata, where it
/// leads, and the bytes it leads to.
fn host_resolv_conf() -> String {
    use std::os::unix::fs::MetadataExt;
    let p = std::path::Path::new("/etc/resolv.conf");
    let entry = std::fs::symlink_metadata(p)
        .map(|m| {
            format!(
                "{:o} {} {} {} {}",
                m.mode(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec()
            )
        })
        .unwrap_or_default();
    let link = std::fs::read_link(p).ok();
    let target = std::fs::metadata(p)
        .map(|m| format!("{} {} {}", m.ino(), m.mtime(), m.mtime_nsec()))
        .unwrap_or_default();
    let bytes = std::fs::read(p).unwrap_or_default();
    format!("{entry} {link:?} {target} {bytes:?}")
}

#[test]
fn the_boxs_resolv_conf_names_its_resolver_and_the_hosts_is_unchanged() {
    let w = World::new("resolv-conf");
    let before = host_resolv_conf();
    let host_text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let script = "cat /etc/resolv.conf; if (echo 'nameserver 192.0.2.1' > /etc/resolv.conf) 2>/dev/null; then echo WROTE; fi";
    for net in ["none", "proxy"] {
        let out = w.cmd(&["run", "--net", net, "b", "--", "sh", "-c", script]);
        assert_success(&out, net);
        let text = stdout(&out);
        let servers: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("nameserver"))
            .collect();
        assert_eq!(servers, ["nameserver 127.0.0.1"], "{net}: {text}");
        assert!(
            !text.contains("WROTE"),
            "{net}: the box wrote its resolv.conf"
        );
        assert!(text.contains("cowl netlog b"), "{net}: {text}");
    }
    // host and ports use the host's resolver, and its file.
    for net in ["host", "ports"] {
        let out = w.cmd(&["run", "--net", net, "b", "--", "cat", "/etc/resolv.conf"]);
        assert_success(&out, net);
        assert_eq!(stdout(&out), host_text, "{net}");
    }
    assert_eq!(
        host_resolv_conf(),
        before,
        "the host's /etc/resolv.conf changed"
    );
    // Nothing of it in the box's layers: the view's file is a mount.
    let in_layer = w.in_layers("b", std::path::Path::new("/etc/resolv.conf"));
    assert!(
        in_layer.symlink_metadata().is_err(),
        "{} is in the box's layer",
        in_layer.display()
    );
}

/// Builds, in a private mount namespace, an /etc whose resolv.conf is a
/// symlink (as systemd-resolved makes it) to `$STUB`, then a dangling one,
/// and runs the box there. mount(2) through python: mount(8) refuses a
/// caller that is not uid 0, even with the capability of its namespace.
const SYMLINKED_RESOLV_CONF: &str = r#"set -e
mnt() {
  python3 - "$@" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.mount(sys.argv[1].encode(), sys.argv[2].encode(), None, 4096, None) != 0:
    sys.exit("bind %s: %s" % (sys.argv[1], os.strerror(ctypes.get_errno())))
PY
}
mkdir -p "$W/etc" "$W/stub"
cp -a /etc/. "$W/etc/" 2>/dev/null || true
echo "nameserver 127.0.0.53 # stub" > "$W/stub/stub-resolv.conf"
rm -f "$W/etc/resolv.conf"
ln -s "$W/stub/stub-resolv.conf" "$W/etc/resolv.conf"
mnt "$W/etc" /etc
readlink /etc/resolv.conf
"$COWL" run b -- sh -c 'grep -x "nameserver 127.0.0.1" /etc/resolv.conf; cat "$0"; getent hosts linked.example.org || echo refused' "$W/stub/stub-resolv.conf"
rm /etc/resolv.conf
ln -s /run/nowhere/resolv.conf /etc/resolv.conf
"$COWL" run b -- sh -c 'grep -x "nameserver 127.0.0.1" /etc/resolv.conf; getent hosts dangling.example.org || echo refused'
readlink /etc/resolv.conf
cat "$W/stub/stub-resolv.conf"
"#;

#[test]
fn a_symlinked_resolv_conf_is_covered_where_it_is_and_left_as_it_was() {
    let w = World::new("resolv-link");
    let mut cmd = std::process::Command::new("unshare");
    if is_root() {
        cmd.args(["--mount", "--propagation", "private"]);
    } else {
        cmd.args([
            "--map-current-user",
            "--keep-caps",
            "--mount",
            "--propagation",
            "private",
        ]);
    }
    let out = cmd
        .args(["sh", "-c", SYMLINKED_RESOLV_CONF])
        .env("W", &w.dir)
        .env("COWL", cowl_bin())
        .env("COWL_HOME", &w.store)
        .current_dir(w.host())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_success(&out, "symlinked resolv.conf");
    let stub = format!("{}/stub/stub-resolv.conf", w.dir.display());
    let want = [
        stub.as_str(),
        // The box: cowl's file over the link; the link's target as it was.
        "nameserver 127.0.0.1",
        "nameserver 127.0.0.53 # stub",
        "refused",
        // A dangling link is covered too.
        "nameserver 127.0.0.1",
        "refused",
        // The host's link and its target after.
        "/run/nowhere/resolv.conf",
        "nameserver 127.0.0.53 # stub",
    ];
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        want,
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let logged = names_logged(&w, "b");
    for name in ["linked.example.org", "dangling.example.org"] {
        assert!(logged.iter().any(|(n, _)| n == name), "{name}: {logged:?}");
    }
    let in_layer = w.in_layers("b", std::path::Path::new("/etc/resolv.conf"));
    assert!(
        in_layer.symlink_metadata().is_err(),
        "{}",
        in_layer.display()
    );
}
