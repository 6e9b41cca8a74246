//! `COWL_TRACE=1`: each step of starting a box prints its time on the
//! monotonic clock to stderr, for profiling the start-up path.

use std::sync::OnceLock;

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("COWL_TRACE").is_some())
}

/// Prints `label` with the current monotonic time in microseconds.
pub fn mark(label: &str) {
    if !enabled() {
        return;
    }
    // SAFETY: timespec is plain data filled by clock_gettime.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let us = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
    eprintln!("cowl-trace {us} {} {label}", std::process::id());
}
