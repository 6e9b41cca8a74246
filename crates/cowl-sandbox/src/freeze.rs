//! Freezing a running box: every process of its pid namespace stopped
//! (SIGSTOP) while cowl reads its live layer, so that nothing the box does
//! can change what is read, or where. It lives beside joining: both reach
//! a running box through its init's pid.

use crate::protocol::Message;
use crate::sys;
use std::path::Path;

/// Why a box could not be frozen.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    /// Its init's pid namespace could not be read (the box ended?).
    #[error("cannot read the box's pid namespace: {0}")]
    Namespace(#[source] std::io::Error),
    /// The thaw guard could not be started.
    #[error("cannot start the thaw guard: {0}")]
    Guard(#[source] std::io::Error),
    /// A process could not be handed to the guard.
    #[error("cannot pass a process to the thaw guard: {0}")]
    Hold(#[source] std::io::Error),
    /// Its init could not be stopped.
    #[error("cannot stop the box's init (pid {0})")]
    Init(i32),
    /// A process of the box did not stop in time; `stat` is its stat line
    /// (which holds a name the box chose: quote it before printing).
    #[error("process {pid} of the box did not stop")]
    DidNotStop {
        /// Its pid.
        pid: i32,
        /// Its /proc stat line.
        stat: String,
    },
}

type Result<T> = std::result::Result<T, FreezeError>;

/// Every process of a running box, stopped (SIGSTOP) until dropped.
/// Processes are held by pidfd, so a signal never reaches a later process
/// that reused a pid; SIGINT, SIGTERM, SIGHUP and SIGQUIT wait until the box
/// runs again, so that Ctrl-C does not leave it stopped. A guard process
/// holds the same pidfds and resumes them if cowl dies while they are
/// stopped (SIGKILL, the OOM killer): the box never stays frozen for good.
pub struct Frozen {
    /// pid, pidfd, and whether it was stopped before (left so).
    members: Vec<(i32, std::os::fd::OwnedFd, bool)>,
    mask: libc::sigset_t,
    guard: Option<Guard>,
}

/// The guard: a child that is sent the pidfd of each process stopped, and
/// resumes them all when its socket ends without a word of release.
struct Guard {
    pid: i32,
    sock: std::os::fd::OwnedFd,
}

impl Guard {
    fn start() -> Result<Guard> {
        use std::os::fd::AsRawFd;
        let (ours, theirs) = sys::seqpacket_pair().map_err(FreezeError::Guard)?;
        // cowl is single-threaded when it freezes a box.
        // SAFETY: cowl is single-threaded when it freezes a box.
        let pid = unsafe { crate::process::fork() }.map_err(FreezeError::Guard)?;
        if pid == 0 {
            drop(ours);
            // Only the socket stays open: no lock or terminal of the parent.
            let keep = theirs.as_raw_fd();
            // SAFETY: closing descriptors of this process other than `keep`.
            unsafe {
                libc::syscall(libc::SYS_close_range, 3u32, (keep - 1).max(2) as u32, 0u32);
                libc::syscall(libc::SYS_close_range, keep as u32 + 1, u32::MAX, 0u32);
            }
            let mut held = Vec::new();
            let released = loop {
                match Message::recv(&theirs) {
                    Ok(Some((Message::Hold, fd))) => held.extend(fd),
                    Ok(Some((Message::Release, _))) => break true,
                    _ => break false,
                }
            };
            if !released {
                for fd in held.iter().rev() {
                    let _ = sys::pidfd_send_signal(fd.as_raw_fd(), libc::SIGCONT);
                }
            }
            // SAFETY: leaving the forked child without the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        drop(theirs);
        Ok(Guard { pid, sock: ours })
    }

    /// Tells the guard about a process that is to run again.
    fn hold(&self, pidfd: &std::os::fd::OwnedFd) -> Result<()> {
        use std::os::fd::AsRawFd;
        Message::Hold
            .send_with(&self.sock, pidfd.as_raw_fd())
            .map_err(FreezeError::Hold)
    }

    /// The box runs again: the guard leaves.
    fn release(self) {
        let _ = Message::Release.send(&self.sock);
        drop(self.sock);
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
    }
}

impl Frozen {
    /// Stops every process of the box whose init has host pid `init`.
    pub fn freeze(init: i32) -> Result<Frozen> {
        let ns =
            std::fs::read_link(format!("/proc/{init}/ns/pid")).map_err(FreezeError::Namespace)?;
        let mask = sys::block_signals(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT]);
        let mut f = Frozen {
            members: Vec::new(),
            mask,
            guard: None,
        };
        f.guard = Some(Guard::start()?);
        // Init first, and wait for it: it forwards signals to the app, and a
        // SIGCONT it forwards late must not wake what we stop next.
        if !f.stop(init, &ns) {
            return Err(FreezeError::Init(init));
        }
        f.wait()?;
        // Stop what is there until nothing new appears: a process forked
        // between two passes is found by the next.
        loop {
            let mut new = 0;
            for pid in pids_in(&ns) {
                if !f.members.iter().any(|m| m.0 == pid) && f.stop(pid, &ns) {
                    new += 1;
                }
            }
            if new == 0 {
                break;
            }
        }
        f.wait()?;
        Ok(f)
    }

    /// Opens `pid`, checks it is (still) in the box, and stops it.
    fn stop(&mut self, pid: i32, ns: &Path) -> bool {
        let Ok(fd) = sys::pidfd_open(pid) else {
            return false;
        };
        // The pid may have been reused before the open: the descriptor
        // names whatever has it now, so check that one.
        if std::fs::read_link(format!("/proc/{pid}/ns/pid")).map_or(true, |l| l.as_path() != ns) {
            return false;
        }
        let before = stopped(pid, false) && is_alive(pid);
        // The guard first: from the moment it is stopped, a process is one
        // the guard resumes if cowl dies.
        if !before {
            if let Some(g) = &self.guard {
                if g.hold(&fd).is_err() {
                    return false;
                }
            }
        }
        use std::os::fd::AsRawFd;
        if sys::pidfd_send_signal(fd.as_raw_fd(), libc::SIGSTOP).is_err() {
            return false;
        }
        self.members.push((pid, fd, before));
        true
    }

    /// Waits until each has stopped (a signal is delivered asynchronously),
    /// asking again now and then.
    fn wait(&self) -> Result<()> {
        use std::os::fd::AsRawFd;
        let start = std::time::Instant::now();
        for (pid, fd, _) in &self.members {
            let pid = *pid;
            let mut tries = 0u32;
            // A syscall in progress in an uninterruptible wait completes
            // before the process stops: give it time, unless it stays
            // there (a shell waiting in vfork for a child we stopped).
            while !stopped(pid, tries > 50) {
                if start.elapsed() > std::time::Duration::from_secs(5) {
                    let stat =
                        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                    return Err(FreezeError::DidNotStop {
                        pid,
                        stat: stat.trim().to_owned(),
                    });
                }
                tries += 1;
                if [20, 40, 60, 80, 100].contains(&tries) || tries > 100 && tries & 31 == 0 {
                    let _ = sys::pidfd_send_signal(fd.as_raw_fd(), libc::SIGSTOP);
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        Ok(())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // Init last, so that what it forwards finds everything running.
        for (_, fd, was_stopped) in self.members.iter().rev() {
            if !was_stopped {
                let _ = sys::pidfd_send_signal(fd.as_raw_fd(), libc::SIGCONT);
            }
        }
        if let Some(g) = self.guard.take() {
            g.release();
        }
        sys::set_signal_mask(&self.mask);
    }
}

fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !matches!(
            s.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next()),
            Some('Z' | 'X')
        )
    })
}

fn pids_in(ns: &Path) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|l| l.as_path() == ns)
        })
        .collect()
}

/// Stopped, traced, dead or gone, or in an uninterruptible wait: such a
/// process runs none of its own code again before it takes the pending
/// SIGSTOP (a shell waiting in vfork for a child we stopped stays there).
fn stopped(pid: i32, uninterruptible_too: bool) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    match state {
        Some('D') => uninterruptible_too,
        Some('T' | 't' | 'Z' | 'X') | None => true,
        Some(_) => false,
    }
}
