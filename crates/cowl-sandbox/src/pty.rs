//! Terminals: a pty for the box when cowl runs interactively, and raw mode on
//! the caller's terminal while it relays.
//!
//! The app gets the pty's slave as its controlling terminal in a session of
//! its own, never the caller's terminal: TIOCSTI on it can only type into the
//! box's own input (CVE-2017-5226).

use crate::sys::cvt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A pseudo-terminal pair.
#[derive(Debug)]
pub struct Pty {
    /// Kept by the supervisor, which relays it to the caller's terminal.
    pub master: OwnedFd,
    /// Given to the app as its terminal.
    pub slave: OwnedFd,
}

/// Opens a pty from the devpts mounted at /dev/pts (inside the box: its
/// private one, so `tty` and job control see a terminal of the box).
pub fn open() -> io::Result<Pty> {
    // SAFETY: standard pty calls on the descriptor we just opened.
    unsafe {
        let m = cvt(libc::posix_openpt(
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?;
        let master = OwnedFd::from_raw_fd(m);
        cvt(libc::unlockpt(m))?;
        let mut name = [0 as libc::c_char; 128];
        let r = libc::ptsname_r(m, name.as_mut_ptr(), name.len());
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        let s = cvt(libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?;
        Ok(Pty {
            master,
            slave: OwnedFd::from_raw_fd(s),
        })
    }
}

/// Gives the pty behind `master` the settings and size of the terminal `like`.
pub fn configure_like(like: RawFd, master: RawFd) {
    // SAFETY: termios is plain data filled by tcgetattr.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(like, &mut t) == 0 {
            libc::tcsetattr(master, libc::TCSANOW, &t);
        }
    }
    copy_winsize(like, master);
}

/// Copies the window size of terminal `from` to `to`.
pub fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain data; the ioctls fill and read it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// The caller's terminal in raw mode; restored when dropped.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Puts `fd` in raw mode.
    pub fn enter(fd: RawFd) -> io::Result<RawMode> {
        // SAFETY: termios is plain data filled by tcgetattr.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            cvt(libc::tcgetattr(fd, &mut saved))?;
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            cvt(libc::tcsetattr(fd, libc::TCSADRAIN, &raw))?;
            Ok(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the settings read in `enter`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved) };
    }
}

/// Makes the pty slave the controlling terminal of the calling process,
/// which has just made its own session.
pub fn make_controlling(slave: &OwnedFd) -> io::Result<()> {
    // SAFETY: plain ioctl on a descriptor we own.
    cvt(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}
