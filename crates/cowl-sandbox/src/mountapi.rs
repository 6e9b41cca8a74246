//! The new mount API's shared steps, for every module that builds part of
//! the box's view (`rootfs`, `kernelfs`, `resolvconf`): a detached new
//! filesystem, a cover over what must not be read, and the types of the
//! callbacks they take.

use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

pub(crate) const OPEN_TREE_CLONE: u32 = 1;
pub(crate) const AT_RECURSIVE: u32 = 0x8000;

/// The path by which the kernel reaches what `fd` holds.
pub(crate) fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// A C string of `s`.
pub(crate) fn c(s: &str) -> CString {
    // Callers pass literals and formatted paths without NUL.
    CString::new(s).unwrap_or_default()
}

/// A new, detached filesystem mount of `fstype` with string options.
pub(crate) fn new_fs(fstype: &str, opts: &[(&str, &str)], attrs: u64) -> std::io::Result<OwnedFd> {
    let fs = sys::fsopen(&c(fstype))?;
    for (k, v) in opts {
        sys::fsconfig(
            fs.as_raw_fd(),
            sys::FSCONFIG_SET_STRING,
            Some(&c(k)),
            Some(&c(v)),
        )?;
    }
    sys::fsconfig(fs.as_raw_fd(), sys::FSCONFIG_CMD_CREATE, None, None)?;
    sys::fsmount(fs.as_raw_fd(), attrs)
}

/// Covers what `target` refers to with nothing readable: an empty
/// read-only filesystem over a directory, /dev/null (read-only) over
/// anything else.
pub(crate) fn cover(target: &OwnedFd) -> std::io::Result<()> {
    let is_dir = std::fs::metadata(fd_path(target)).map(|m| m.is_dir())?;
    let ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    let fs = if is_dir {
        new_fs("tmpfs", &[("mode", "0"), ("size", "4k")], ro)?
    } else {
        let null = sys::open_tree(libc::AT_FDCWD, Path::new("/dev/null"), OPEN_TREE_CLONE)?;
        sys::mount_setattr(
            null.as_raw_fd(),
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
            false,
        )?;
        null
    };
    sys::move_mount_fd(fs.as_raw_fd(), target.as_raw_fd())
}

/// Opens a path of the box's new root as a mount target (the flags are
/// added to the lookup's; symlinks are never followed out of the root).
pub(crate) type InRoot<'a> = dyn Fn(&Path, i32) -> std::io::Result<OwnedFd> + 'a;

/// Warnings the box's init sends to the supervisor to print.
pub type Warn<'a> = &'a mut dyn FnMut(String);
