//! The supervisor's loop: relays the app's stdio (and the box's terminal)
//! and forwards signals until the box's init (or a joined process) exits.

use crate::process::AppEvent;
use crate::stdio::Relay;
use crate::{process, pty, sys};
use std::os::fd::{AsRawFd, OwnedFd};

/// Puts the caller's terminal in raw mode for the box's pty, when cowl is
/// its foreground job (a background job leaves the terminal alone).
fn raw_mode(relay: &Relay) -> Option<pty::RawMode> {
    relay.master()?;
    // SAFETY: plain queries of this process and its terminal.
    let foreground = unsafe { libc::tcgetpgrp(0) == libc::getpgrp() };
    foreground.then(|| pty::RawMode::enter(0).ok()).flatten()
}

/// Relays stdio and forwards signals until `child` exits; returns its exit
/// code once what the app wrote has reached the caller. `events`: what the
/// box's init says of the app (it stopped, it continued).
pub(crate) fn supervise(child: i32, relay: &mut Relay, events: Option<OwnedFd>) -> i32 {
    let mut raw = raw_mode(relay);
    let mut events_open = events.is_some();
    // A reader of the caller's that went away is an EPIPE for the relay to
    // act on, not a signal that ends cowl (and with it the box).
    // SAFETY: setting a signal disposition; restored below.
    let old_pipe = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let sfd = process::signalfd().ok();
    let code = loop {
        // A job moved to the foreground (`fg` after `&`) gets no SIGCONT
        // when it was running: looked at again each turn, and each quarter
        // second while in the background.
        let background = crate::stdio::background_tty();
        if raw.is_none() && !background {
            raw = raw_mode(relay);
        }
        let interests = relay.interests();
        let mut fds = Vec::with_capacity(interests.len() + 1);
        if let Some(s) = &sfd {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for (_, fd, ev) in &interests {
            fds.push(libc::pollfd {
                fd: *fd,
                events: ev.bits() as i16,
                revents: 0,
            });
        }
        if let (Some(e), true) = (&events, events_open) {
            fds.push(libc::pollfd {
                fd: e.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let timeout = match (background, sfd.is_some()) {
            (true, _) => 250,
            (false, true) => -1,
            (false, false) => 100,
        };
        // SAFETY: fds is a valid array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            continue;
        }
        let mut exited = None;
        let skip = usize::from(sfd.is_some());
        for (k, (flow, _, _)) in interests.iter().enumerate() {
            if fds[skip + k].revents != 0 {
                relay.pump(*flow);
            }
        }
        if let (Some(e), true) = (&events, events_open) {
            if fds[skip + interests.len()].revents != 0 {
                let mut b = [0u8; 16];
                match sys::read(e.as_raw_fd(), &mut b) {
                    Ok(0) | Err(_) => events_open = false,
                    Ok(n) => {
                        // The last word counts: a stop already undone is none.
                        if AppEvent::from_byte(b[n - 1]) == Some(AppEvent::Stopped) {
                            // The app stopped: so does cowl's job, its terminal
                            // as it was, and the caller's shell takes over
                            // (job control); `fg` or `bg` continue both.
                            drop(raw.take());
                            stop_own_job();
                            raw = raw_mode(relay);
                        }
                    }
                }
            }
        }
        if let Some(s) = &sfd {
            if fds[0].revents != 0 {
                if let Some(sig) = process::read_signal(s) {
                    if sig == libc::SIGCONT && raw.is_none() {
                        // Continued in the foreground after a stop.
                        raw = raw_mode(relay);
                    }
                    exited = on_signal(sig, child, relay);
                }
            }
        } else {
            exited = reap(child);
        }
        if let Some(code) = exited {
            break code;
        }
    };
    crate::trace::mark("box ended");
    relay.finish();
    drop(raw);
    // SAFETY: restoring the disposition saved above.
    unsafe { libc::signal(libc::SIGPIPE, old_pipe) };
    code
}

/// Whether cowl's process group is a job some process of the session
/// watches (not orphaned): going up from cowl through the members of its
/// group, the first ancestor outside the group is of the same session (the
/// shell that started the job, with a wrapper script between them or not).
/// The kernel drops a SIGTSTP to an orphaned group.
fn job_of_a_shell() -> bool {
    // SAFETY: plain queries of processes' groups and sessions.
    let (group, session) = unsafe { (libc::getpgrp(), libc::getsid(0)) };
    let mut pid = std::process::id() as i32;
    for _ in 0..64 {
        let Some(parent) = parent_of(pid) else {
            return false;
        };
        // SAFETY: as above; an error (-1) is no group or session of ours.
        let (pg, sid) = unsafe { (libc::getpgid(parent), libc::getsid(parent)) };
        // (A shell that is pid 1, as in a container, is a shell too: init
        // elsewhere is in another session, which the test below says.)
        if pg < 0 || parent == 0 {
            return false;
        }
        if pg != group {
            // (0: a session led from outside this pid namespace.)
            return sid == session && session > 0;
        }
        pid = parent;
    }
    false
}

/// The parent of process `pid`, from `/proc/PID/stat`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's name, which may hold anything but ends at the
    // last ')': state, then the parent.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Stops as the app did; returns once continued. With cowl the foreground
/// job of the caller's terminal, the whole job stops, as a Ctrl-Z typed
/// there would stop it (a wrapper script that runs cowl stops with it, and
/// its shell gets the prompt back). Otherwise the stop came to cowl alone
/// (`kill -TSTP`), or no shell watches cowl's job, and cowl alone stops:
/// its process group may hold its caller. SIGTSTP is blocked for the
/// signalfd: let in for the moment it takes, then blocked again.
fn stop_own_job() {
    // SAFETY: plain queries of this process and its terminal.
    let foreground = sys::isatty(0) && unsafe { libc::tcgetpgrp(0) == libc::getpgrp() };
    if !(foreground && job_of_a_shell()) {
        let _ = sys::kill(std::process::id() as i32, libc::SIGSTOP);
        return;
    }
    // SAFETY: plain signal calls on this process's own mask and group.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTSTP);
        libc::killpg(libc::getpgrp(), libc::SIGTSTP);
        // A group orphaned from its shell drops SIGTSTP: nothing to stop for.
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn reap(child: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: plain waitpid on our child.
    let r = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
    (r == child).then(|| process::exit_code(status))
}

fn on_signal(sig: i32, child: i32, relay: &Relay) -> Option<i32> {
    match sig {
        libc::SIGCHLD => reap(child),
        libc::SIGWINCH => {
            if let Some(m) = relay.master() {
                pty::copy_winsize(0, m.as_raw_fd());
            }
            None
        }
        s => {
            let _ = sys::kill(child, s);
            None
        }
    }
}
