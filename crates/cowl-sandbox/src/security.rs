//! The last steps before the app runs: no new privileges, no capabilities,
//! no inherited descriptors beyond 0-2, default signal dispositions.

use crate::sys::cvt;
use std::io;

/// `PR_SET_NO_NEW_PRIVS`: setuid and file capabilities grant nothing from here on.
pub fn no_new_privs() -> io::Result<()> {
    // SAFETY: plain prctl.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(drop)
}

/// Drops every capability: the bounding set (so an exec as uid 0 regains
/// nothing), the ambient set, and the effective, permitted and inheritable sets.
pub fn drop_all_capabilities() -> io::Result<()> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(63);
    for cap in 0..=last {
        // SAFETY: plain prctl; EINVAL for caps this kernel lacks is fine.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if r == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: plain prctl.
    cvt(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    })?;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and data match the v3 ABI and live across the call.
    cvt(unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) })
        .map(drop)
}

/// Marks every descriptor from 3 up close-on-exec, so the app inherits 0-2
/// only (CVE-2024-21626: a leaked directory descriptor is a way out).
pub fn close_other_fds_on_exec() -> io::Result<()> {
    // SAFETY: plain syscall; CLOSE_RANGE_CLOEXEC = 4.
    cvt(unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 4u32) }).map(drop)
}

/// Closes every descriptor of this process from 3 up but those in `keep`:
/// a process of the box (its init, a joined run's helper) or a helper of
/// the supervisor holds nothing of the caller's or of cowl's that it does
/// not use: not the box's lock, not a pipe the caller passed cowl (which
/// would keep that pipe's reader waiting for its end).
pub fn close_all_but(keep: &[std::os::fd::RawFd]) {
    let mut k: Vec<u32> = keep
        .iter()
        .filter(|&&f| f >= 3)
        .map(|&f| f as u32)
        .collect();
    k.sort_unstable();
    k.dedup();
    let close = |a: u32, b: u32| {
        // SAFETY: closing descriptors of this process that nothing here uses.
        unsafe { libc::syscall(libc::SYS_close_range, a, b, 0u32) };
    };
    let mut from = 3u32;
    for f in k {
        if f > from {
            close(from, f - 1);
        }
        from = f + 1;
    }
    close(from, u32::MAX);
}

/// Unblocks all signals and restores default dispositions (the Rust runtime
/// ignores SIGPIPE; an app must not inherit that).
pub fn reset_signals() {
    // SAFETY: an empty set is valid; signal() on each number either succeeds
    // or fails harmlessly for SIGKILL/SIGSTOP and invalid numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// Dies with SIGKILL when the parent does.
pub fn die_with_parent() {
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
}
