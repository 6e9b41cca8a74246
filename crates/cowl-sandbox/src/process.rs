//! Processes of a box: the app's last steps before exec, the tiny init that
//! reaps and forwards signals, and how exit statuses become exit codes.

use crate::pty;
use crate::security;
use crate::sys;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Signals the supervisor and init handle through a signalfd: blocked in the
/// supervisor before the box is cloned, so every process of cowl inherits the
/// mask; the app unblocks them before exec.
pub const HANDLED: [i32; 10] = [
    libc::SIGCHLD,
    libc::SIGTSTP,
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
];

/// The handled signals as a set.
pub fn handled_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in HANDLED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks the handled signals in the calling process.
pub fn block_handled() {
    let set = handled_set();
    // SAFETY: valid set.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// A signalfd for the handled signals.
pub fn signalfd() -> std::io::Result<OwnedFd> {
    let set = handled_set();
    // SAFETY: valid set; the result is a fresh descriptor.
    let fd = sys::cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) })?;
    // SAFETY: the kernel returned a fresh descriptor.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// Reads one signal number from a signalfd.
pub fn read_signal(fd: &OwnedFd) -> Option<i32> {
    // SAFETY: signalfd_siginfo is plain data.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    // SAFETY: info is a valid buffer of its size.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            std::mem::size_of::<libc::signalfd_siginfo>(),
        )
    };
    (n == std::mem::size_of::<libc::signalfd_siginfo>() as isize).then_some(info.ssi_signo as i32)
}

/// The shell's convention: the exit code, or 128 + the signal that killed it.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// `fork(2)`.
///
/// # Safety
///
/// The calling process must be single-threaded: the child gets a copy of
/// this thread only, and anything another thread held (a lock of the
/// allocator, of stdio) stays held there for good. cowl's supervisor and
/// the box's processes start no threads (only the network process does,
/// after its own fork); every caller says why it holds.
pub unsafe fn fork() -> std::io::Result<i32> {
    // SAFETY: the caller is single-threaded (this function's contract).
    sys::cvt(unsafe { libc::fork() })
}

/// The threads this process has now (`None` if /proc cannot say).
pub fn threads() -> Option<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
}

/// How the app is started.
pub struct AppStart<'a> {
    /// argv.
    pub argv: &'a [String],
    /// Working directory, when it exists inside.
    pub cwd: &'a Path,
    /// The pty slave, in interactive runs.
    pub pty_slave: Option<&'a OwnedFd>,
    /// What the app gets as 0, 1 and 2 (never the caller's own).
    pub stdio: &'a crate::stdio::AppStdio,
    /// Rootless: drop every capability. System mode keeps the capabilities of
    /// root in the box's own user namespace, which grant nothing on the host.
    pub drop_caps: bool,
    /// System calls allowed back through the seccomp filter.
    pub allow_syscalls: &'a [String],
    /// The Landlock domain.
    pub landlock: &'a crate::landlock::LandlockPolicy,
    /// Refuse internet sockets other than TCP (`ports` network mode).
    pub tcp_only: bool,
    /// rlimits to set: (resource, value).
    pub rlimits: &'a [(u32, u64)],
    /// The app's whole environment.
    pub env: &'a [(std::ffi::OsString, std::ffi::OsString)],
    /// Variables set on top of it (the proxies, in `proxy` mode).
    pub env_extra: &'a [(String, String)],
    /// Where to report an exec failure.
    pub report: &'a OwnedFd,
}

/// The app's side of the fork: its own session, its terminal, its directory,
/// no new privileges, no capabilities, no stray descriptors; then exec.
/// Never returns; an error is reported on `report` (`Message::ExecFailed`).
pub fn exec_app(a: &AppStart) -> ! {
    let fail = |code: i32, msg: String| -> ! {
        let _ = crate::protocol::Message::ExecFailed(msg).send(a.report);
        // SAFETY: leaving the forked child without running destructors.
        unsafe { libc::_exit(code) }
    };
    // A process group of its own in the session its init leads (see
    // `lead_session`), the foreground one of the box's terminal: as a
    // shell's job, so Ctrl-Z and SIGTSTP stop it (a group whose parent is
    // in another session is orphaned, and the kernel drops those signals).
    if let Err(e) = own_process_group(a.pty_slave) {
        fail(1, format!("cannot attach the terminal: {e}"));
    }
    security::reset_signals();
    if let Err(e) = a.stdio.install(a.pty_slave) {
        fail(1, format!("cannot set up stdin, stdout and stderr: {e}"));
    }
    if sys::chdir(a.cwd).is_err() {
        let home = std::env::var_os("HOME").unwrap_or_default();
        if sys::chdir(Path::new(&home)).is_err() {
            let _ = sys::chdir(Path::new("/"));
        }
    }
    // The environment is built now, in full: the caller's secrets that the
    // policy dropped are not passed on (the app gets `envp`, not ours).
    let mut envp: Vec<CString> = Vec::with_capacity(a.env.len() + a.env_extra.len());
    for (k, v) in a.env {
        if a.env_extra
            .iter()
            .any(|(x, _)| std::ffi::OsStr::new(x) == k)
        {
            continue;
        }
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        if let Ok(c) = CString::new(kv) {
            envp.push(c);
        }
    }
    for (k, v) in a.env_extra {
        if let Ok(c) = CString::new(format!("{k}={v}")) {
            envp.push(c);
        }
    }
    for &(res, v) in a.rlimits {
        let lim = libc::rlimit {
            rlim_cur: v,
            rlim_max: v,
        };
        // SAFETY: lim is a valid rlimit.
        if unsafe { libc::setrlimit(res as _, &lim) } != 0 {
            fail(
                1,
                format!(
                    "cannot set resource limit {res}: {}",
                    std::io::Error::last_os_error()
                ),
            );
        }
    }
    if let Err(e) = security::no_new_privs() {
        fail(1, format!("cannot set no_new_privs: {e}"));
    }
    if a.drop_caps {
        if let Err(e) = security::drop_all_capabilities() {
            fail(1, format!("cannot drop capabilities: {e}"));
        }
    }
    if let Err(e) = security::close_other_fds_on_exec() {
        fail(1, format!("cannot close inherited descriptors: {e}"));
    }
    crate::trace::mark("app: policy");
    if let Err(e) = crate::landlock::restrict(a.landlock, crate::landlock::abi()) {
        fail(1, format!("cannot apply the Landlock policy: {e}"));
    }
    // Last: from here on the filter applies, to exec and all that follows.
    if let Err(e) = crate::seccomp::install(a.allow_syscalls, a.tcp_only) {
        fail(1, format!("cannot install the seccomp filter: {e}"));
    }
    crate::trace::mark("app: policy applied");
    let argv: Vec<CString> = a
        .argv
        .iter()
        .filter_map(|s| CString::new(s.as_bytes()).ok())
        .collect();
    if argv.len() != a.argv.len() || argv.is_empty() {
        fail(127, "the command is empty or holds a NUL byte".into());
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let mut envs: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envs.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of valid C strings.
    unsafe { libc::execvpe(ptrs[0], ptrs.as_ptr(), envs.as_ptr()) };
    let e = std::io::Error::last_os_error();
    let code = if e.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    };
    fail(code, format!("cannot run {:?} in the box: {e}", a.argv[0]))
}

/// In the box's init (or a joined run's helper), before the app is forked:
/// a new session, led by this process, with the box's pty (if any) as its
/// controlling terminal. Never the caller's session or terminal, so
/// TIOCSTI cannot type into the caller's (CVE-2017-5226).
pub fn lead_session(slave: Option<&OwnedFd>) -> std::io::Result<()> {
    // SAFETY: plain syscall.
    sys::cvt(unsafe { libc::setsid() })?;
    if let Some(s) = slave {
        pty::make_controlling(s)?;
    }
    Ok(())
}

/// In the app, before exec: a process group of its own, which becomes the
/// foreground group of the box's terminal (with SIGTTOU blocked, which a
/// group not yet in the foreground would get for asking).
fn own_process_group(slave: Option<&OwnedFd>) -> std::io::Result<()> {
    // SAFETY: plain syscall on this process.
    sys::cvt(unsafe { libc::setpgid(0, 0) })?;
    let Some(s) = slave else {
        return Ok(());
    };
    let old = sys::block_signals(&[libc::SIGTTOU]);
    // SAFETY: plain ioctl wrapper on our own descriptor.
    let r = sys::cvt(unsafe { libc::tcsetpgrp(s.as_raw_fd(), libc::getpid()) });
    sys::set_signal_mask(&old);
    r.map(drop)
}

/// What the box's init tells the supervisor about the app while it runs,
/// one byte each on the pipe `init_loop` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEvent {
    /// The app stopped as a job does (Ctrl-Z on the box's terminal,
    /// SIGTSTP, SIGTTIN, SIGTTOU; a SIGSTOP from inside the box is not
    /// told): the supervisor stops too, so the caller's shell gets its
    /// prompt back.
    Stopped,
    /// The app runs again.
    Continued,
}

impl AppEvent {
    /// Its byte on the pipe.
    pub fn byte(self) -> u8 {
        match self {
            AppEvent::Stopped => b'S',
            AppEvent::Continued => b'C',
        }
    }

    /// The event a byte stands for.
    pub fn from_byte(b: u8) -> Option<AppEvent> {
        match b {
            b'S' => Some(AppEvent::Stopped),
            b'C' => Some(AppEvent::Continued),
            _ => None,
        }
    }
}

/// Signals a terminal sends to its whole foreground process group: the
/// app's group gets them (the app leads a session of its own), as its
/// pipeline would from the caller's terminal.
const TO_THE_GROUP: [i32; 4] = [libc::SIGINT, libc::SIGQUIT, libc::SIGTSTP, libc::SIGCONT];

/// The box's pid 1 (or, for a joined run, the process that waits for the
/// joined app): forwards signals to the app, reaps every child, tells the
/// supervisor through `events` when the app stops or continues, and returns
/// the app's exit code when it ends. Anything else left in the box is killed
/// by the kernel when pid 1 exits.
pub fn init_loop(app: i32, events: Option<&OwnedFd>) -> i32 {
    let Ok(sfd) = signalfd() else {
        // Without a signalfd we can still wait; signals are then not forwarded.
        let mut status = 0;
        // SAFETY: plain waitpid.
        while unsafe { libc::waitpid(app, &mut status, 0) } == -1 {}
        return exit_code(status);
    };
    let tell = |e: AppEvent| {
        if let Some(fd) = events {
            let _ = sys::write_all(fd.as_raw_fd(), &[e.byte()]);
        }
    };
    let mut told_stop = false;
    loop {
        let Some(sig) = read_signal(&sfd) else {
            continue;
        };
        if sig == libc::SIGCHLD {
            loop {
                let mut status = 0;
                // SAFETY: plain waitpid.
                let pid = unsafe {
                    libc::waitpid(
                        -1,
                        &mut status,
                        libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED,
                    )
                };
                if pid <= 0 {
                    break;
                }
                if pid != app {
                    continue;
                }
                if libc::WIFSTOPPED(status) {
                    // Job control's stops only (Ctrl-Z, SIGTSTP, a background
                    // read of the terminal): a SIGSTOP is cowl's own freeze
                    // of a running box (or someone's `kill -STOP`), which the
                    // caller's cowl must not follow, or nothing resumes it.
                    if matches!(
                        libc::WSTOPSIG(status),
                        libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                    ) {
                        told_stop = true;
                        tell(AppEvent::Stopped);
                    }
                } else if libc::WIFCONTINUED(status) {
                    if std::mem::take(&mut told_stop) {
                        tell(AppEvent::Continued);
                    }
                } else {
                    crate::trace::mark("init: app exited");
                    return exit_code(status);
                }
            }
        } else if TO_THE_GROUP.contains(&sig) {
            if sys::kill(-app, sig).is_err() {
                let _ = sys::kill(app, sig);
            }
        } else {
            let _ = sys::kill(app, sig);
        }
    }
}
