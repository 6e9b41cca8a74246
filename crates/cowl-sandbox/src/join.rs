//! Joining a running box: a second `cowl run` enters the namespaces of the
//! box's init instead of making a second overlay on the same upper.

use crate::error::SandboxError;
use crate::policy::{Mode, NetMode};
use crate::process::{self, AppStart};
use crate::protocol::Message;
use crate::rootfs::Caller;
use crate::spawn::{app_events_pipe, box_pty, handshake, interactive, proxy_env, send, Observer};
use crate::supervise::supervise;
use crate::{security, stdio, sys};
use std::os::fd::AsRawFd;
use std::path::Path;

/// What a joining run needs to know about the running box.
pub struct JoinTarget<'a> {
    /// The box name, for messages.
    pub name: &'a str,
    /// The running init's host pid.
    pub pid: i32,
    /// Its start time, checked against the pid.
    pub start_ticks: u64,
    /// The box's identity mapping.
    pub mode: Mode,
    /// System calls allowed back through the seccomp filter.
    pub allow_syscalls: &'a [String],
    /// The Landlock domain of the box's apps.
    pub landlock: &'a crate::landlock::LandlockPolicy,
    /// The box's network.
    pub net: NetMode,
    /// The cgroups that hold the box.
    pub cgroups: &'a [std::path::PathBuf],
    /// The rlimits of its processes.
    pub rlimits: &'a [(u32, u64)],
    /// The joining command's environment (the policy's, as for a run).
    pub env: &'a [(std::ffi::OsString, std::ffi::OsString)],
}

/// Runs `argv` inside a running box: enters its namespaces and supervises the
/// new process as `run` does. The running box's mounts are used as they are:
/// a second overlay on the same upper is never made.
pub fn join(target: &JoinTarget, argv: &[String], cwd: &Path) -> Result<i32, SandboxError> {
    let err = |source| SandboxError::Join {
        name: target.name.to_owned(),
        pid: target.pid,
        source,
    };
    let pidfd = sys::pidfd_open(target.pid).map_err(err)?;
    if sys::process_start_ticks(target.pid) != Some(target.start_ticks) {
        return Err(err(std::io::Error::from_raw_os_error(libc::ESRCH)));
    }
    let term = interactive();
    let (app_io, mut relay) = stdio::prepare(term.is_some(), term.is_some_and(|t| t.stderr_too))
        .map_err(SandboxError::sys("set up the app's stdio"))?;
    process::block_handled();
    let (ours, theirs) =
        sys::seqpacket_pair().map_err(SandboxError::sys("create a socket pair"))?;
    let (events_r, events_w) = app_events_pipe()?;
    // SAFETY: the joining cowl is single-threaded (it starts no threads).
    let pid = unsafe { crate::process::fork() }.map_err(SandboxError::sys("fork"))?;
    if pid == 0 {
        drop(ours);
        drop(relay);
        drop(events_r);
        let mut keep = app_io.raw_fds();
        keep.extend([theirs.as_raw_fd(), pidfd.as_raw_fd(), events_w.as_raw_fd()]);
        security::close_all_but(&keep);
        security::die_with_parent();
        // The box's cgroups, by host path: before entering its mount
        // namespace, where /sys is the box's.
        for cg in target.cgroups {
            if let Err(e) = std::fs::write(cg.join("cgroup.procs"), std::process::id().to_string())
            {
                send(
                    &theirs,
                    Message::SetupFailed(format!(
                        "cannot join the box's cgroup {}: {e}",
                        cg.display()
                    )),
                );
                // SAFETY: leaving the forked child.
                unsafe { libc::_exit(1) }
            }
        }
        // The network namespace only if the box has one of its own: with the
        // host's network it belongs to the host's user namespace.
        let net = if target.net.has_own_namespace() {
            libc::CLONE_NEWNET
        } else {
            0
        };
        let all = libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWCGROUP
            | net;
        // Rootless, the box's user namespace owns the others: enter all at
        // once. System mode made the others before its user namespace, so
        // enter them while still root, then the user namespace.
        let entered = match target.mode {
            Mode::Rootless => sys::setns(pidfd.as_raw_fd(), all | libc::CLONE_NEWUSER),
            Mode::System => sys::setns(pidfd.as_raw_fd(), all)
                .and_then(|()| sys::setns(pidfd.as_raw_fd(), libc::CLONE_NEWUSER)),
        };
        if let Err(e) = entered {
            send(
                &theirs,
                Message::SetupFailed(format!("cannot enter the box's namespaces: {e}")),
            );
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(1) }
        }
        drop(pidfd);
        let slave = match app_io.uses_pty().then(|| box_pty(&theirs)).transpose() {
            Ok(s) => s,
            Err(e) => {
                send(&theirs, Message::SetupFailed(e.clone()));
                // SAFETY: leaving the forked child.
                unsafe { libc::_exit(1) }
            }
        };
        if let Err(e) = process::lead_session(slave.as_ref()) {
            send(
                &theirs,
                Message::SetupFailed(format!("cannot make the box's session: {e}")),
            );
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(1) }
        }
        if let Err(e) = stdio::let_go_of_callers() {
            send(
                &theirs,
                Message::SetupFailed(format!("cannot let go of cowl's stdio: {e}")),
            );
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(1) }
        }
        // SAFETY: the joining cowl is single-threaded (it starts no threads).
        let app = match unsafe { crate::process::fork() } {
            Ok(0) => process::exec_app(&AppStart {
                argv,
                cwd,
                pty_slave: slave.as_ref(),
                stdio: &app_io,
                drop_caps: target.mode == Mode::Rootless,
                allow_syscalls: target.allow_syscalls,
                landlock: target.landlock,
                tcp_only: target.net.tcp_only(),
                rlimits: target.rlimits,
                env: target.env,
                env_extra: &proxy_env(target.net),
                report: &theirs,
            }),
            Ok(app) => app,
            Err(e) => {
                send(
                    &theirs,
                    Message::SetupFailed(format!("cannot fork in the box: {e}")),
                );
                // SAFETY: leaving the forked child.
                unsafe { libc::_exit(1) }
            }
        };
        drop(theirs);
        drop(slave);
        drop(app_io);
        let code = process::init_loop(app, Some(&events_w));
        // SAFETY: leaving the forked child.
        unsafe { libc::_exit(code) }
    }
    drop(theirs);
    drop(app_io);
    drop(events_w);
    struct Quiet;
    impl Observer for Quiet {
        fn started(&mut self, _: i32) {}
        fn warning(&mut self, msg: &str) {
            eprintln!("cowl: warning: {msg}");
        }
        fn remove_tree(&self, _: &Path) {}
    }
    let nobody = Caller { uid: 0, gid: 0 };
    // The running box's network process serves this run too.
    match handshake(&ours, pid, target.mode, nobody, &mut Quiet, &mut |_| Ok(())) {
        Ok(master) => {
            if let Some(m) = master {
                relay.attach_master(m);
            }
            Ok(supervise(pid, &mut relay, Some(events_r)))
        }
        Err(e) => {
            let _ = sys::kill(pid, libc::SIGKILL);
            let mut status = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            Err(e)
        }
    }
}
