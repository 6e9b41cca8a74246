//! The supervisor's loop: relays the box's terminal and forwards signals
//! until the box's init (or a joined process) exits.

use crate::{process, pty, sys};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Relays the terminal and forwards signals until `child` exits; returns its
/// exit code.
pub(crate) fn supervise(child: i32, master: Option<&OwnedFd>) -> i32 {
    let raw = master.and_then(|_| pty::RawMode::enter(0).ok());
    let sfd = process::signalfd().ok();
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let code = loop {
        let mut fds = Vec::with_capacity(3);
        if let Some(s) = &sfd {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let (Some(m), true) = (master, master_open) {
            fds.push(libc::pollfd {
                fd: m.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if stdin_open {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let timeout = if sfd.is_some() { -1 } else { 100 };
        // SAFETY: fds is a valid array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            continue;
        }
        let mut exited = None;
        for p in &fds {
            if p.revents == 0 {
                continue;
            }
            if sfd.as_ref().is_some_and(|s| s.as_raw_fd() == p.fd) {
                if let Some(sig) = sfd.as_ref().and_then(process::read_signal) {
                    exited = on_signal(sig, child, master);
                }
            } else if p.fd == 0 {
                if let Some(m) = master {
                    stdin_open = pty::pump(0, m.as_raw_fd());
                }
            } else if let Some(m) = master {
                master_open = pty::pump(m.as_raw_fd(), 1);
            }
        }
        if sfd.is_none() {
            exited = reap(child);
        }
        if let Some(code) = exited {
            break code;
        }
    };
    crate::trace::mark("box ended");
    if let (Some(m), true) = (master, master_open) {
        drain(m.as_raw_fd());
    }
    drop(raw);
    code
}

fn reap(child: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: plain waitpid on our child.
    let r = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
    (r == child).then(|| process::exit_code(status))
}

fn on_signal(sig: i32, child: i32, master: Option<&OwnedFd>) -> Option<i32> {
    match sig {
        libc::SIGCHLD => reap(child),
        libc::SIGWINCH => {
            if let Some(m) = master {
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

/// Copies what the app wrote to its terminal before it ended.
fn drain(master: RawFd) {
    // SAFETY: fcntl on our own descriptor.
    unsafe {
        let fl = libc::fcntl(master, libc::F_GETFL);
        libc::fcntl(master, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    while pty::pump(master, 1) {}
}
