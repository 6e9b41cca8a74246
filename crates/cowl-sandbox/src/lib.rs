//! The sandbox of cowl: namespaces, the overlay view of the host, the
//! process model and the policy applied before the app runs.
//!
//! This is the only crate of cowl with `unsafe` code. [`sys`] wraps the
//! system calls the view is built with: the file calls, the new mount API,
//! pivot_root and pidfd through rustix, the rest still through libc. Other
//! modules still call libc directly for the process model (fork, exec,
//! waitpid, sessions and process groups, signalfd, termios, rlimits,
//! capabilities, close_range, the seccomp filter, Landlock's and the
//! network's ioctls); every `unsafe` block says what makes it sound.
//! Nothing here may start a thread: namespaces are per-process, and the
//! spawn path forks.
#![deny(missing_docs)]

pub mod dns;
pub mod error;
pub mod freeze;
pub mod hidden;
pub mod hostmounts;
pub mod join;
mod kernelfs;
pub mod landlock;
pub mod limits;
mod mountapi;
pub mod mountinfo;
pub mod net;
pub mod netlog;
pub mod placement;
pub mod plan;
pub mod policy;
pub mod process;
mod protocol;
pub mod proxy;
pub mod pty;
pub mod resolvconf;
pub mod resolver;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod spawn;
pub mod stdio;
mod supervise;
pub mod sys;
pub mod trace;
pub mod view;

pub use error::{SandboxError, SetupError};
pub use plan::{Plan, Spec};
