//! The kernel's own filesystems in a box: a fresh /proc (with its
//! host-reaching interfaces read-only or hidden), a minimal /dev with a
//! private devpts, and a read-only /sys.

use crate::error::SetupError;
use crate::mountapi::{new_fs, InRoot, AT_RECURSIVE, OPEN_TREE_CLONE};
use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

pub(crate) fn mount_proc(in_root: &InRoot) -> Result<(), SetupError> {
    let p = Path::new("/proc");
    let op = |what| {
        move |source| SetupError::Mount {
            what,
            path: p.to_owned(),
            source,
        }
    };
    let target = in_root(p, libc::O_DIRECTORY).map_err(op("find"))?;
    let fs = new_fs(
        "proc",
        &[],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
    )
    .map_err(op("mount proc on"))?;
    // Check that what we mounted is procfs before anything trusts it
    // (CVE-2019-19921: /proc swapped for something else).
    if sys::fs_magic(fs.as_raw_fd()).map_err(op("check"))? != libc::PROC_SUPER_MAGIC {
        return Err(SetupError::Message("/proc is not procfs".into()));
    }
    sys::move_mount_fd(fs.as_raw_fd(), target.as_raw_fd()).map_err(op("mount proc on"))?;
    let proc = in_root(p, libc::O_DIRECTORY).map_err(op("open"))?;
    restrict_proc(&proc).map_err(op("restrict"))
}

/// Kernel interfaces under /proc that must not be written from a box, even
/// by its uid 0: a rootless box run by root, or a system box, has the host's
/// uid 0, and sysctls such as kernel.core_pattern check only the writer's
/// uid. Read-only: sys, sysrq-trigger, irq, bus, fs. Hidden: kcore, keys,
/// timer_list, sched_debug, latency_stats, acpi, scsi.
fn restrict_proc(proc: &OwnedFd) -> std::io::Result<()> {
    let ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    let at = |name: &str| {
        sys::openat(
            Some(proc.as_raw_fd()),
            Path::new(name),
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
        )
    };
    for name in ["sys", "sysrq-trigger", "irq", "bus", "fs"] {
        let Ok(target) = at(name) else { continue };
        let tree = sys::open_tree(
            proc.as_raw_fd(),
            Path::new(name),
            OPEN_TREE_CLONE | AT_RECURSIVE,
        )?;
        sys::mount_setattr(tree.as_raw_fd(), ro, true)?;
        sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd())?;
    }
    for name in [
        "kcore",
        "keys",
        "timer_list",
        "sched_debug",
        "latency_stats",
        "acpi",
        "scsi",
    ] {
        let Ok(target) = at(name) else { continue };
        crate::mountapi::cover(&target)?;
    }
    Ok(())
}

/// The devices a box gets, bound from the host.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

pub(crate) fn mount_dev(in_root: &InRoot) -> Result<(), SetupError> {
    let p = Path::new("/dev");
    let op = |what: &'static str, path: &str| {
        let path = p.join(path);
        move |source| SetupError::Mount { what, path, source }
    };
    let target = in_root(p, libc::O_DIRECTORY).map_err(op("find", ""))?;
    let dev = new_fs(
        "tmpfs",
        &[("mode", "0755"), ("size", "64k")],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
    )
    .map_err(op("mount tmpfs on", ""))?;
    sys::move_mount_fd(dev.as_raw_fd(), target.as_raw_fd()).map_err(op("mount tmpfs on", ""))?;
    let dev = in_root(p, libc::O_DIRECTORY).map_err(op("open", ""))?;
    let d = dev.as_raw_fd();
    let at = |name: &str, flags: i32, mode: u32| {
        sys::openat(Some(d), Path::new(name), flags | libc::O_NOFOLLOW, mode)
    };
    let attach = |fs: OwnedFd, name: &str| -> std::io::Result<()> {
        let t = at(name, libc::O_PATH, 0)?;
        sys::move_mount_fd(fs.as_raw_fd(), t.as_raw_fd())
    };
    for name in DEVICES {
        at(name, libc::O_CREAT | libc::O_WRONLY, 0o666).map_err(op("create", name))?;
        let tree = sys::open_tree(
            libc::AT_FDCWD,
            &Path::new("/dev").join(name),
            OPEN_TREE_CLONE,
        );
        tree.and_then(|t| attach(t, name))
            .map_err(op("bind the host device onto", name))?;
    }
    for (name, mode) in [("pts", 0o755), ("shm", 0o1777)] {
        sys::mkdirat(d, Path::new(name), mode).map_err(op("create", name))?;
    }
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        sys::symlinkat(Path::new(target), d, Path::new(link)).map_err(op("create", link))?;
    }
    // A private devpts: the box's terminals are not the host's.
    new_fs(
        "devpts",
        &[("ptmxmode", "0666"), ("mode", "0620")],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
    )
    .and_then(|fs| attach(fs, "pts"))
    .map_err(op("mount devpts on", "pts"))?;
    new_fs(
        "tmpfs",
        &[("mode", "1777")],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )
    .and_then(|fs| attach(fs, "shm"))
    .map_err(op("mount tmpfs on", "shm"))?;
    // No new nodes, links or files in /dev itself.
    sys::mount_setattr(
        d,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
        false,
    )
    .map_err(op("make read-only", ""))
}

pub(crate) fn mount_sys(in_root: &InRoot) -> Result<(), SetupError> {
    let p = Path::new("/sys");
    let op = |what| {
        move |source| SetupError::Mount {
            what,
            path: p.to_owned(),
            source,
        }
    };
    let target = in_root(p, libc::O_DIRECTORY).map_err(op("find"))?;
    let ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    // A fresh sysfs needs a network namespace of our own; with the host's
    // network, bind the host's /sys read-only instead.
    match new_fs("sysfs", &[], ro) {
        Ok(fs) => {
            sys::move_mount_fd(fs.as_raw_fd(), target.as_raw_fd()).map_err(op("mount sysfs on"))
        }
        Err(_) => {
            let tree = sys::open_tree(libc::AT_FDCWD, p, OPEN_TREE_CLONE | AT_RECURSIVE)
                .map_err(op("bind"))?;
            sys::mount_setattr(tree.as_raw_fd(), ro, true).map_err(op("make read-only"))?;
            sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd()).map_err(op("bind"))
        }
    }
}
