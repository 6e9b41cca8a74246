//! Errors of the sandbox, named after the operation that failed.

use std::io;
use std::path::PathBuf;

/// A step of building the box that failed inside its init. It travels to the
/// supervisor as text, which prints it.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A mount step failed.
    #[error("cannot {what} {path}: {source}")]
    Mount {
        /// The step.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The kernel refused an overlay.
    #[error("cannot mount an overlay on {path}: {source}{}", overlay_hint(source))]
    Overlay {
        /// Where.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A path of the box is not a plain directory (a symlink, most often).
    #[error("{path} is not a plain directory of the box ({source}): it was tampered with; cowl refuses to use it")]
    Tampered {
        /// The path, relative to the box.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// Anything else, already worded.
    #[error("{0}")]
    Message(String),
}

fn overlay_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENODEV) => ": overlayfs is not available; load it with `modprobe overlay`",
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
            ": the store's filesystem may not hold an overlay upper layer (it needs xattrs and whiteouts: ext4, xfs, btrfs or tmpfs); set COWL_HOME elsewhere. The kernel log (dmesg) says more"
        }
        _ => "",
    }
}

/// What can go wrong starting or joining a box.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The kernel refused to make the namespaces.
    #[error("cannot create the box's namespaces: {source}. {hint}")]
    Namespaces {
        /// Why.
        source: io::Error,
        /// What to do.
        hint: String,
    },
    /// The kernel lacks something cowl needs.
    #[error("{0}")]
    Unsupported(String),
    /// A step of building the box failed (reported by its init).
    #[error("{0}")]
    Setup(String),
    /// Writing the uid/gid maps failed.
    #[error("cannot write the box's {file}: {source}")]
    IdMap {
        /// Which map.
        file: &'static str,
        /// Why.
        source: io::Error,
    },
    /// Joining a running box failed.
    #[error("cannot join box {name:?} (pid {pid}): {source}")]
    Join {
        /// The box.
        name: String,
        /// Its init.
        pid: i32,
        /// Why.
        source: io::Error,
    },
    /// A system call of the supervisor failed.
    #[error("{op}: {source}")]
    Sys {
        /// What it was doing.
        op: &'static str,
        /// Why.
        source: io::Error,
    },
}

impl SandboxError {
    pub(crate) fn sys(op: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| SandboxError::Sys { op, source }
    }
}
