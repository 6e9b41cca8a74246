//! Fault points: named steps of store operations where a test can have cowl
//! killed (SIGKILL) to prove that a crash at that step loses nothing.
//! The binary installs the hook only in debug (test) builds.

use std::sync::OnceLock;

static HOOK: OnceLock<fn(&str)> = OnceLock::new();

/// Installs the function called at every fault point.
pub fn set_hook(f: fn(&str)) {
    let _ = HOOK.set(f);
}

/// Marks a step; the hook may end the process here.
pub fn point(name: &str) {
    if let Some(f) = HOOK.get() {
        f(name);
    }
}
