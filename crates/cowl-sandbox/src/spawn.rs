//! Starting a box and joining a running one; supervising either until the
//! app ends.
//!
//! ```text
//! cowl (supervisor, host namespaces)
//!  ├─ clone3(new user, mount, pid, ipc, uts, cgroup[, net]) ─► init (pid 1)
//!  │     builds the root, pivots, forks ─► app (exec)
//!  └─ fork ─► network process (none, proxy: the box's resolver and proxies,
//!        on sockets the init bound in the box's network namespace)
//! ```
//! The supervisor writes the uid/gid maps, relays the terminal and forwards
//! signals; init reaps and forwards signals; the app's exit code becomes
//! cowl's. The spawn path is single-threaded: namespaces apply per process,
//! and `unshare(CLONE_NEWUSER)` refuses a threaded caller.

use crate::error::SandboxError;
use crate::plan::Plan;
use crate::policy::{Mode, NetMode};
use crate::process::{self, AppStart};
use crate::protocol::Message;
use crate::rootfs::{self, Caller};
use crate::stdio::{self, AppStdio};
use crate::supervise::supervise;
use crate::{net, pty, security, sys};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// What the caller learns about a started box.
pub trait Observer {
    /// The box's init runs with this host pid (write the state file now).
    fn started(&mut self, pid: i32);
    /// A non-fatal problem to show the user.
    fn warning(&mut self, msg: &str);
    /// Removes a tree whatever modes are in it (earlier runs' overlay work
    /// directories, in a background process of their own).
    fn remove_tree(&self, path: &Path);
}

/// Checks what the kernel must offer, before anything is forked.
pub fn preflight(store: &Path) -> Result<(), SandboxError> {
    let fss = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fss
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        return Err(SandboxError::Unsupported(
            "overlayfs is not available in this kernel: load it with `modprobe overlay` (as root)"
                .into(),
        ));
    }
    let fd = sys::openat(None, store, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(SandboxError::sys("open the store"))?;
    let magic = sys::fs_magic(fd.as_raw_fd()).map_err(SandboxError::sys("statfs the store"))?;
    let bad = match magic {
        0x794c_7630 => Some("overlayfs"),
        0x6969 => Some("NFS"),
        0x6573_5546 => Some("a FUSE filesystem"),
        0x4d44 => Some("FAT"),
        0xff53_4d42 | 0xfe53_4d42 => Some("SMB"),
        0x0102_1997 => Some("9p"),
        _ => None,
    };
    if let Some(kind) = bad {
        return Err(SandboxError::Unsupported(format!(
            "the store at {} is on {kind}, which cannot hold an overlay upper layer: set COWL_HOME to a directory on ext4, xfs, btrfs or tmpfs",
            store.display()
        )));
    }
    Ok(())
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `clone3` without a new stack: returns like fork, 0 in the child.
fn clone3(flags: u64) -> std::io::Result<i32> {
    let args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    // SAFETY: with no stack given, clone3 behaves as fork; the caller is
    // single-threaded, so the child's copy of memory is consistent.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    sys::cvt(r).map(|p| p as i32)
}

fn userns_hint() -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return "User namespaces are disabled: set kernel.unprivileged_userns_clone=1 (sysctl, as root).".into();
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return "User namespaces are disabled: set user.max_user_namespaces to a positive number (sysctl, as root).".into();
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return "AppArmor restricts unprivileged user namespaces: set kernel.apparmor_restrict_unprivileged_userns=0 or give cowl an AppArmor profile that allows userns.".into();
    }
    "If cowl runs inside a container or another sandbox, that one must allow nested user namespaces; otherwise check user.max_user_namespaces.".into()
}

fn namespace_flags(plan: &Plan) -> u64 {
    let mut f = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP;
    if plan.net.has_own_namespace() {
        f |= libc::CLONE_NEWNET;
    }
    // Rootless: the user namespace comes first and owns the rest. System:
    // the mount namespace is made by real root so host mounts are not locked
    // and one overlay of `/` works; the user namespace comes after the mounts.
    if plan.mode == Mode::Rootless {
        f |= libc::CLONE_NEWUSER;
    }
    f as u64
}

fn write_id_maps(pid: i32, mode: Mode, caller: Caller) -> Result<(), SandboxError> {
    let write = |file: &'static str, text: String| {
        std::fs::write(format!("/proc/{pid}/{file}"), text)
            .map_err(|source| SandboxError::IdMap { file, source })
    };
    match mode {
        Mode::Rootless => {
            // "deny" must be written to setgroups before an unprivileged gid
            // map, or the app could drop supplementary groups that deny it
            // access (CVE-2014-8989).
            write("setgroups", "deny".into())?;
            write("gid_map", format!("{0} {0} 1\n", caller.gid))?;
            write("uid_map", format!("{0} {0} 1\n", caller.uid))
        }
        Mode::System => {
            write("gid_map", "0 0 4294967295\n".into())?;
            write("uid_map", "0 0 4294967295\n".into())
        }
    }
}

/// An interactive run: cowl's stdin and stdout are a terminal. The box then
/// gets a pty of its own devpts, whose master its init passes back.
#[derive(Clone, Copy)]
pub(crate) struct Interactive {
    pub(crate) stderr_too: bool,
}

pub(crate) fn interactive() -> Option<Interactive> {
    (sys::isatty(0) && sys::isatty(1)).then(|| Interactive {
        stderr_too: sys::isatty(2),
    })
}

/// In the box: opens a pty and passes its master to the supervisor (`P`).
pub(crate) fn box_pty(sock: &OwnedFd) -> Result<OwnedFd, String> {
    let pty = pty::open().map_err(|e| format!("cannot open a terminal in the box: {e}"))?;
    Message::Terminal
        .send_with(sock, pty.master.as_raw_fd())
        .map_err(|e| format!("cannot pass the terminal out: {e}"))?;
    Ok(pty.slave)
}

/// Sends `m` to the supervisor; if it is gone, the box ends anyway.
pub(crate) fn send(sock: &OwnedFd, m: Message) {
    let _ = m.send(sock);
}

fn wait_go(sock: &OwnedFd) -> Result<(), String> {
    match Message::recv(sock) {
        Ok(Some((Message::Go, _))) => Ok(()),
        _ => Err("the supervisor went away".into()),
    }
}

/// Runs the plan's command in a new box and supervises it. Returns the app's
/// exit code (128+N if a signal N ended it).
pub fn run(
    plan: &Plan,
    limits: &crate::limits::Enforcement,
    observer: &mut dyn Observer,
) -> Result<i32, SandboxError> {
    // The supervisor forks and waits for its children's signals on a
    // signalfd: another thread would take those signals (the run would
    // never end) and its locks would stay held in every child.
    match process::threads() {
        Some(1) => {}
        Some(_) => {
            return Err(SandboxError::Setup(
                "the sandbox runs only in a single-threaded process (start it before any thread, or in a child of its own)".into(),
            ))
        }
        None => {
            return Err(SandboxError::Setup(
                "cannot tell whether this process is single-threaded: /proc/self/status does not say (is /proc mounted?)".into(),
            ))
        }
    }
    let caller = Caller {
        uid: sys::geteuid(),
        gid: sys::getegid(),
    };
    crate::trace::mark("spawn");
    let term = interactive();
    let (app_io, mut relay) = stdio::prepare(term.is_some(), term.is_some_and(|t| t.stderr_too))
        .map_err(SandboxError::sys("set up the app's stdio"))?;
    let run_id = format!(
        "run-{}-{}-{}",
        boot_id(),
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    process::block_handled();
    let (ours, theirs) =
        sys::seqpacket_pair().map_err(SandboxError::sys("create a socket pair"))?;
    let (events_r, events_w) = app_events_pipe()?;
    let pid = clone3(namespace_flags(plan)).map_err(|source| SandboxError::Namespaces {
        source,
        hint: userns_hint(),
    })?;
    if pid == 0 {
        drop(ours);
        // The supervisor's ends of the app's pipes: held here, the app would
        // never see the end of its input. Nothing else of cowl's either.
        drop(relay);
        drop(events_r);
        let mut keep = app_io.raw_fds();
        keep.extend([theirs.as_raw_fd(), events_w.as_raw_fd()]);
        security::close_all_but(&keep);
        let code = init_main(
            plan,
            caller,
            &run_id,
            theirs,
            app_io,
            &limits.rlimits,
            events_w,
        );
        // SAFETY: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) }
    }
    drop(theirs);
    drop(app_io);
    drop(events_w);
    crate::trace::mark("cloned");
    let mut network = None;
    let result = (|| {
        // Before the init may fork the app: everything it starts is held.
        crate::limits::attach(limits, pid)?;
        if plan.mode == Mode::Rootless {
            write_id_maps(pid, plan.mode, caller)?;
            Message::Go
                .send(&ours)
                .map_err(SandboxError::sys("signal the box"))?;
        }
        // The network process starts as soon as its sockets are out, while
        // the init still sets up the app: its fork is off the start's path.
        handshake(&ours, pid, plan.mode, caller, observer, &mut |sockets| {
            network = start_network(plan, sockets)?;
            Ok(())
        })
    })();
    match result {
        Ok(master) => {
            crate::trace::mark("app started");
            if let Some(m) = master {
                relay.attach_master(m);
            }
            observer.started(pid);
            remove_old_work_dirs(&plan.paths.dir.join(&plan.paths.work), &run_id, observer);
            crate::trace::mark("supervising");
            let code = supervise(pid, &mut relay, Some(events_r));
            end_child(network);
            Ok(code)
        }
        Err(e) => {
            end_child(Some(pid));
            end_child(network);
            Err(e)
        }
    }
}

/// The pipe on which the box's init tells the supervisor that the app
/// stopped or continued (`process::AppEvent`); both ends close-on-exec.
pub(crate) fn app_events_pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out-array of two ints.
    sys::cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })
        .map_err(SandboxError::sys("create a pipe"))?;
    // SAFETY: the kernel returned two fresh descriptors.
    Ok(unsafe {
        (
            std::os::fd::FromRawFd::from_raw_fd(fds[0]),
            std::os::fd::FromRawFd::from_raw_fd(fds[1]),
        )
    })
}

/// Kills and reaps a child of the supervisor's, if there is one.
fn end_child(pid: Option<i32>) {
    if let Some(p) = pid {
        let _ = sys::kill(p, libc::SIGKILL);
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(p, &mut status, 0) };
    }
}

/// The sockets the box's init bound in the box's network namespace for
/// cowl's network process to serve outside the box.
#[derive(Default)]
pub(crate) struct BoxSockets {
    /// The HTTP proxy's listener (`proxy` mode).
    http: Option<OwnedFd>,
    /// The SOCKS5 proxy's listener (`proxy` mode).
    socks: Option<OwnedFd>,
    /// The resolver's UDP socket (`none` and `proxy` modes).
    dns_udp: Option<OwnedFd>,
    /// The resolver's TCP listener (`none` and `proxy` modes).
    dns_tcp: Option<OwnedFd>,
}

/// Reads the init's messages until the app has exec'd (end of stream);
/// returns the terminal's master, if the box has one. `network` gets the
/// sockets of the box's network when the init has passed them all.
pub(crate) fn handshake(
    sock: &OwnedFd,
    pid: i32,
    mode: Mode,
    caller: Caller,
    observer: &mut dyn Observer,
    network: &mut dyn FnMut(BoxSockets) -> Result<(), SandboxError>,
) -> Result<Option<OwnedFd>, SandboxError> {
    let mut master = None;
    let mut sockets = BoxSockets::default();
    loop {
        let Some((msg, fd)) =
            Message::recv(sock).map_err(SandboxError::sys("read from the box"))?
        else {
            return Ok(master);
        };
        match msg {
            Message::NetworkReady => network(std::mem::take(&mut sockets))?,
            Message::HttpListener => sockets.http = fd,
            Message::SocksListener => sockets.socks = fd,
            Message::DnsUdp => sockets.dns_udp = fd,
            Message::DnsTcp => sockets.dns_tcp = fd,
            Message::Terminal => {
                if let Some(m) = &fd {
                    pty::configure_like(0, m.as_raw_fd());
                }
                master = fd;
            }
            Message::Warning(w) => observer.warning(&w),
            Message::MapIds => {
                write_id_maps(pid, mode, caller)?;
                Message::Go
                    .send(sock)
                    .map_err(SandboxError::sys("signal the box"))?;
            }
            Message::ExecFailed(x) => {
                // The exec failed: the app exits 126/127, which supervise returns.
                eprintln!("cowl: {x}");
            }
            Message::SetupFailed(e) => return Err(SandboxError::Setup(e)),
            m => {
                return Err(SandboxError::Setup(format!(
                    "the box sent a message out of turn: {m:?}"
                )))
            }
        }
    }
}

/// The box's init: build the root, start the app, then reap and forward.
fn init_main(
    plan: &Plan,
    caller: Caller,
    run_id: &str,
    sock: OwnedFd,
    app_io: AppStdio,
    rlimits: &[(u32, u64)],
    events: OwnedFd,
) -> i32 {
    security::die_with_parent();
    let setup = || -> Result<i32, String> {
        if plan.mode == Mode::Rootless {
            wait_go(&sock)?;
        }
        crate::trace::mark("init: mapped");
        rootfs::build(plan, caller, run_id, &mut |w| {
            send(&sock, Message::Warning(w))
        })
        .map_err(|e| e.to_string())?;
        let name = plan.box_name.as_bytes();
        // SAFETY: name is valid for its length.
        sys::cvt(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
            .map_err(|e| format!("cannot set the hostname: {e}"))?;
        if plan.net.has_own_namespace() {
            net::loopback_up().map_err(|e| format!("cannot bring up loopback: {e}"))?;
            // The box's resolver listens inside; cowl answers outside.
            let port = crate::resolver::PORT;
            let fail = |e| format!("cannot listen on 127.0.0.1:{port} in the box: {e}");
            let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).map_err(fail)?;
            let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(fail)?;
            for (m, fd) in [
                (Message::DnsUdp, udp.as_raw_fd()),
                (Message::DnsTcp, tcp.as_raw_fd()),
            ] {
                m.send_with(&sock, fd)
                    .map_err(|e| format!("cannot pass the resolver's socket out: {e}"))?;
            }
        }
        if plan.net == NetMode::Proxy {
            // The proxies listen inside the box; cowl serves them outside.
            for (m, port) in [
                (Message::HttpListener, crate::proxy::HTTP_PORT),
                (Message::SocksListener, crate::proxy::SOCKS_PORT),
            ] {
                let l = std::net::TcpListener::bind(("127.0.0.1", port))
                    .map_err(|e| format!("cannot listen on 127.0.0.1:{port} in the box: {e}"))?;
                m.send_with(&sock, l.as_raw_fd())
                    .map_err(|e| format!("cannot pass the proxy socket out: {e}"))?;
            }
        }
        if plan.net.has_own_namespace() {
            send(&sock, Message::NetworkReady);
        }
        if plan.mode == Mode::System {
            sys::unshare(libc::CLONE_NEWUSER).map_err(|e| {
                format!(
                    "cannot create the box's user namespace: {e}. {}",
                    userns_hint()
                )
            })?;
            send(&sock, Message::MapIds);
            wait_go(&sock)?;
        }
        let slave = app_io.uses_pty().then(|| box_pty(&sock)).transpose()?;
        // From here on the box runs code of its own: nothing of the
        // caller's stays in its init.
        stdio::let_go_of_callers().map_err(|e| format!("cannot let go of cowl's stdio: {e}"))?;
        process::lead_session(slave.as_ref())
            .map_err(|e| format!("cannot make the box's session: {e}"))?;
        crate::trace::mark("init: forking app");
        // SAFETY: the supervisor and the box's init start no threads.
        let app =
            unsafe { crate::process::fork() }.map_err(|e| format!("cannot fork the app: {e}"))?;
        if app == 0 {
            process::exec_app(&AppStart {
                argv: &plan.command,
                cwd: &plan.cwd,
                pty_slave: slave.as_ref(),
                stdio: &app_io,
                drop_caps: plan.mode == Mode::Rootless,
                allow_syscalls: &plan.allow_syscalls,
                landlock: &plan.landlock,
                tcp_only: plan.net.tcp_only(),
                rlimits,
                env: &plan.env,
                env_extra: &proxy_env(plan.net),
                report: &sock,
            });
        }
        drop(slave);
        Ok(app)
    };
    let started = setup();
    // The app's ends of its pipes are the app's alone.
    drop(app_io);
    match started {
        Err(msg) => {
            send(&sock, Message::SetupFailed(msg));
            1
        }
        Ok(app) => {
            drop(sock);
            process::init_loop(app, Some(&events))
        }
    }
}

pub(crate) fn proxy_env(net: NetMode) -> Vec<(String, String)> {
    if net == NetMode::Proxy {
        crate::proxy::env()
    } else {
        Vec::new()
    }
}

/// Forks cowl's network process (threads live there, never in the
/// supervisor) in the modes with a network namespace of their own: it
/// serves the box's resolver, and in `proxy` mode its proxies, on the
/// sockets the box's init bound, until the box ends.
fn start_network(plan: &Plan, sockets: BoxSockets) -> Result<Option<i32>, SandboxError> {
    if !plan.net.has_own_namespace() {
        return Ok(None);
    }
    let missing = |what: &str| SandboxError::Setup(format!("the box did not pass its {what}"));
    let (Some(udp), Some(tcp)) = (sockets.dns_udp, sockets.dns_tcp) else {
        return Err(missing("resolver's sockets"));
    };
    let proxies = match (plan.net, sockets.http, sockets.socks) {
        (NetMode::Proxy, Some(http), Some(socks)) => Some((http, socks)),
        (NetMode::Proxy, _, _) => return Err(missing("proxy sockets")),
        _ => None,
    };
    // SAFETY: the supervisor and the box's init start no threads.
    let pid =
        unsafe { crate::process::fork() }.map_err(SandboxError::sys("fork the network process"))?;
    if pid == 0 {
        security::die_with_parent();
        security::reset_signals();
        // A session of its own: the terminal's signals (Ctrl-C, Ctrl-Z) and
        // cowl's own stop of its job are for the box, not for its network.
        // SAFETY: plain setsid of this fresh child.
        unsafe { libc::setsid() };
        // Nothing of the supervisor's but the sockets: not the relay's
        // pipes (the app must see their ends), not the caller's stdin and
        // stdout (their other ends must see this run's end when cowl's).
        let mut keep = vec![udp.as_raw_fd(), tcp.as_raw_fd()];
        if let Some((http, socks)) = &proxies {
            keep.extend([http.as_raw_fd(), socks.as_raw_fd()]);
        }
        security::close_all_but(&keep);
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            // SAFETY: plain dup2 onto this process's stdin and stdout.
            unsafe {
                libc::dup2(null.as_raw_fd(), 0);
                libc::dup2(null.as_raw_fd(), 1);
            }
        }
        let log = std::sync::Arc::new(crate::netlog::NetLog::open(&plan.paths.netlog));
        if let Err(e) = crate::resolver::serve(
            std::net::UdpSocket::from(udp),
            std::net::TcpListener::from(tcp),
            log.clone(),
            plan.net,
        ) {
            eprintln!("cowl: warning: cannot start the box's resolver: {e} (names the box looks up time out, unlogged)");
        }
        match proxies {
            Some((http, socks)) => crate::proxy::serve(
                std::net::TcpListener::from(http),
                std::net::TcpListener::from(socks),
                plan.proxy_allow.clone(),
                log,
                &plan.box_name,
            ),
            None => loop {
                std::thread::park();
            },
        }
        // SAFETY: leaving the forked child.
        unsafe { libc::_exit(0) }
    }
    Ok(Some(pid))
}

/// Earlier runs' work directories kept before they are removed in one go.
/// Each run leaves four small directories per overlay; removing them costs a
/// synchronous discard each on filesystems mounted with `discard`, so they
/// are removed in batches, in the background, at the lowest priority.
const WORK_DIRS_KEPT: usize = 16;

/// The kernel's boot id, so a run's work directory tells which boot made it.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().replace('-', ""))
        .unwrap_or_default()
}

/// Removes the work directories of earlier runs once there are more than a
/// few, in a detached process so the app does not wait for it. The list is
/// taken now, while this run holds the box's lock, so a later run's
/// directory is never on it. A directory left by an earlier boot means the
/// machine went down while the box ran: its last writes may be lost.
fn remove_old_work_dirs(work: &Path, keep: &str, observer: &mut dyn Observer) {
    let Ok(rd) = std::fs::read_dir(work) else {
        return;
    };
    let old: Vec<_> = rd
        .flatten()
        .filter(|e| e.file_name() != keep)
        .map(|e| e.path())
        .collect();
    let this_boot = format!("run-{}-", boot_id());
    if old.iter().any(|p| {
        let n = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        n.starts_with("run-")
            && !n.starts_with(&this_boot)
            && p.join("w0/work/incompat/volatile").exists()
    }) {
        observer.warning("this box was running when the machine went down: the writes of its last seconds may be missing or incomplete (box.toml: durability = \"fsync\" makes the app's fsyncs reach the disk)");
    }
    if old.len() <= WORK_DIRS_KEPT {
        return;
    }
    // SAFETY: the supervisor and the box's init start no threads.
    match unsafe { crate::process::fork() } {
        Ok(0) => {
            // Nothing of the supervisor's may stay open here: not the box's
            // lock, not its terminal.
            let _ = security::close_other_fds_on_exec();
            // SAFETY: closing every descriptor above stderr in this process.
            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
            // Nor the caller's stdio: a pipe's reader waits for its end,
            // which must come when cowl's does, not when this is done.
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                // SAFETY: plain dup2 onto this process's stdio, and a
                // session of its own, away from the caller's terminal.
                unsafe {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(null.as_raw_fd(), 1);
                    libc::dup2(null.as_raw_fd(), 2);
                    libc::setsid();
                }
            }
            // SAFETY: the supervisor and the box's init start no threads.
            if let Ok(0) = unsafe { crate::process::fork() } {
                // SAFETY: lowering our own priority.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
                for p in &old {
                    observer.remove_tree(p);
                }
            }
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(0) }
        }
        Ok(child) => {
            let mut status = 0;
            // SAFETY: reaping the intermediate child, which exits at once.
            unsafe { libc::waitpid(child, &mut status, 0) };
        }
        Err(_) => {}
    }
}
