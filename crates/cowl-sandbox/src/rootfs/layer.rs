//! One layer of the view: the overlay (or read-only bind, or skeleton) a
//! plan's `LayerMount` asks for, its upper directory in the live layer
//! made with the caller's rights, and the lower layer that whites out the
//! hidden paths.

use crate::error::SetupError;
use crate::mountapi::{c, fd_path};
use crate::plan::{Base, LayerMount, Plan, SkeletonKind};
use crate::policy::{Durability, Mode};
use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use libc::{RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Ids of the caller, for giving new upper directories the rights the caller
/// has on the host directory they cover.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// Effective uid on the host.
    pub uid: u32,
    /// Effective gid on the host.
    pub gid: u32,
}

/// The live layer's root, and the directories this start made in it for
/// the overlays' uppers: if the start fails they are removed again, so a
/// failed start leaves the live layer as it was.
pub(super) struct Upper {
    pub(super) fd: OwnedFd,
    pub(super) made: std::cell::RefCell<Vec<PathBuf>>,
}

impl Upper {
    /// Removes what this start made (deepest first; a directory that holds
    /// anything stays).
    pub(super) fn undo(&self) {
        let mut made = self.made.borrow_mut();
        made.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for rel in made.iter() {
            let _ = sys::unlinkat(self.fd.as_raw_fd(), rel, true);
        }
        made.clear();
    }
}

/// The directories every layer of one start uses: the box's directory,
/// the live upper, the work directory, an empty directory and the scratch
/// tmpfs of the new root.
pub(super) struct Dirs<'a> {
    pub(super) box_fd: &'a OwnedFd,
    pub(super) upper: &'a Upper,
    pub(super) work: &'a OwnedFd,
    pub(super) empty: &'a OwnedFd,
    pub(super) scratch: &'a OwnedFd,
}

/// Creates (without mounting) the overlay for one layer.
pub(super) fn make_layer(
    plan: &Plan,
    caller: Caller,
    l: &LayerMount,
    index: usize,
    dirs: &Dirs,
) -> Result<OwnedFd, SetupError> {
    let Dirs {
        box_fd,
        upper,
        work,
        empty,
        scratch,
    } = *dirs;
    let op = |what: &'static str| {
        let path = l.path.clone();
        move |source| SetupError::Mount { what, path, source }
    };
    let upper_dir =
        ensure_upper(upper, &l.path, plan.mode, caller).map_err(|source| SetupError::Tampered {
            path: plan.paths.upper.join(l.upper_rel()),
            source,
        })?;
    let work_name = format!("w{index}");
    sys::mkdirat(work.as_raw_fd(), Path::new(&work_name), 0o700)
        .map_err(op("create the work directory of"))?;
    let work_dir = sys::openat(
        Some(work.as_raw_fd()),
        Path::new(&work_name),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
    .map_err(op("open the work directory of"))?;

    let mut lowers: Vec<String> = Vec::new();
    let mut keep: Vec<OwnedFd> = Vec::new();
    for v in &l.versions {
        // Beneath the box directory, no symlink on the way.
        let rel = v
            .strip_prefix(&plan.paths.dir)
            .map_err(|_| SetupError::Message(format!("{} is not in the box", v.display())))?;
        let fd = sys::openat2(
            box_fd.as_raw_fd(),
            rel,
            (libc::O_PATH | libc::O_DIRECTORY) as u64,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        )
        .map_err(|source| SetupError::Tampered {
            path: v.clone(),
            source,
        })?;
        lowers.push(fd_path(&fd));
        keep.push(fd);
    }
    if !l.hidden.is_empty() && l.base == Base::Host {
        // Between the box's versions and the host: whiteouts of the hidden
        // paths, so the host's copies stay hidden however they change.
        let fd = hiding_layer(l, index, scratch, plan.mode, caller)
            .map_err(op("build the hiding layer of"))?;
        lowers.push(fd_path(&fd));
        keep.push(fd);
    }
    match &l.base {
        Base::Host if !l.versions.is_empty() && l.holds_store => {
            // The box's versions live below this host directory (the store is
            // in the user's home). The kernel refuses a lower layer inside
            // another lower layer of the same overlay ("overlapping layers"),
            // so the host directory goes in through a read-only overlay of
            // its own: same view, another superblock.
            let fd = host_through_overlay(&l.path, index, empty, scratch)
                .map_err(op("wrap the host directory of"))?;
            lowers.push(fd_path(&fd));
            keep.push(fd);
        }
        Base::Host => lowers.push(l.path.to_string_lossy().into_owned()),
        Base::Empty => lowers.push(fd_path(empty)),
        Base::Skeleton { entries } => {
            let name = format!("skel{index}");
            sys::mkdirat(scratch.as_raw_fd(), Path::new(&name), 0o755)
                .map_err(op("build the skeleton of"))?;
            let dir = sys::openat(
                Some(scratch.as_raw_fd()),
                Path::new(&name),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(op("build the skeleton of"))?;
            for e in entries {
                let r = match &e.kind {
                    SkeletonKind::Dir { mode, uid, gid } => {
                        // Shown where no upper directory covers it: the
                        // caller's rights on the host, as for a new upper.
                        let m = rootless_mode(*mode, *uid, *gid, caller);
                        sys::mkdirat(dir.as_raw_fd(), &e.name, m).and_then(|()| {
                            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                            let d = sys::openat(Some(dir.as_raw_fd()), &e.name, flags, 0)?;
                            sys::fchmod(d.as_raw_fd(), m)
                        })
                    }
                    SkeletonKind::Symlink { target } => {
                        sys::symlinkat(target, dir.as_raw_fd(), &e.name)
                    }
                    SkeletonKind::File | SkeletonKind::Socket => sys::openat(
                        Some(dir.as_raw_fd()),
                        &e.name,
                        libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW,
                        0o444,
                    )
                    .map(drop),
                };
                r.map_err(op("build the skeleton of"))?;
            }
            lowers.push(fd_path(&dir));
            keep.push(dir);
        }
        Base::ReadOnly { .. } | Base::HostReadOnly | Base::HostFile => {
            return Err(SetupError::Message("a bind is not an overlay".into()))
        }
    }

    let fs = sys::fsopen(c"overlay").map_err(|source| SetupError::Overlay {
        path: l.path.clone(),
        source,
    })?;
    let set = |k: &str, v: &str| {
        sys::fsconfig(
            fs.as_raw_fd(),
            sys::FSCONFIG_SET_STRING,
            Some(&c(k)),
            Some(&c(v)),
        )
    };
    // "lowerdir+" takes one path per call, unparsed: no option string to
    // overflow, and no path can inject options (commas, colons, backslashes).
    for lower in &lowers {
        set("lowerdir+", lower).map_err(op("add a lower layer to"))?;
    }
    set("upperdir", &fd_path(&upper_dir)).map_err(op("set the upper layer of"))?;
    set("workdir", &fd_path(&work_dir)).map_err(op("set the work directory of"))?;
    // user.overlay.* xattrs in every mode: one layer format, rootless or not.
    sys::fsconfig(
        fs.as_raw_fd(),
        sys::FSCONFIG_SET_FLAG,
        Some(c"userxattr"),
        None,
    )
    .map_err(op("configure"))?;
    // Unmounting an overlay syncs its whole upper filesystem: with one
    // overlay per top-level directory that is a score of full syncs of the
    // host's disk each time a box ends. "volatile" skips them (and the app's
    // own fsyncs); writeback still happens as usual. Each run gets fresh work
    // directories, so the kernel's after-crash marker never blocks a mount;
    // the supervisor warns instead (see spawn::remove_old_work_dirs).
    if plan.durability == Durability::Volatile {
        sys::fsconfig(
            fs.as_raw_fd(),
            sys::FSCONFIG_SET_FLAG,
            Some(c"volatile"),
            None,
        )
        .map_err(op("configure"))?;
    }
    sys::fsconfig(fs.as_raw_fd(), sys::FSCONFIG_CMD_CREATE, None, None).map_err(|source| {
        SetupError::Overlay {
            path: l.path.clone(),
            source,
        }
    })?;
    sys::fsmount(fs.as_raw_fd(), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV).map_err(op("mount"))
}

/// A layer of whiteouts for the hidden paths below `l.path`, on the scratch
/// filesystem: the directories on the way, as the host has them (mode,
/// owner, times), and a whiteout (a 0/0 character device) for each hidden
/// path, or for the first directory on its way the host does not have (so
/// nothing there can appear while the box runs). A directory of the host
/// the caller cannot look into is whited out whole.
fn hiding_layer(
    l: &LayerMount,
    index: usize,
    scratch: &OwnedFd,
    mode: Mode,
    caller: Caller,
) -> std::io::Result<OwnedFd> {
    let name = format!("hide{index}");
    sys::mkdirat(scratch.as_raw_fd(), Path::new(&name), 0o755)?;
    let root = sys::openat(
        Some(scratch.as_raw_fd()),
        Path::new(&name),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )?;
    let mut made: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
    let mut hidden: Vec<&PathBuf> = l.hidden.iter().collect();
    hidden.sort_by_key(|h| h.components().count());
    for rel in hidden {
        let comps: Vec<_> = rel.components().collect();
        let mut dir = sys::openat(
            Some(root.as_raw_fd()),
            Path::new("."),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?;
        let mut host = l.path.clone();
        let mut here = PathBuf::new();
        for (k, c) in comps.iter().enumerate() {
            let name = Path::new(c.as_os_str());
            host.push(name);
            here.push(name);
            let last = k + 1 == comps.len();
            let host_dir = if last {
                None
            } else {
                match std::fs::symlink_metadata(&host) {
                    Ok(m) if m.is_dir() => Some(m),
                    // Nothing there: whited out whole, so nothing can appear.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    // A symlink or file on the way: the path leads elsewhere
                    // (its resolved form is hidden on its own); a directory
                    // the caller cannot look into holds nothing it can reach.
                    _ => break,
                }
            };
            let Some(md) = host_dir else {
                match rustix::fs::mknodat(
                    &dir,
                    name,
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::Mode::empty(),
                    rustix::fs::makedev(0, 0),
                ) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                break;
            };
            let fresh = sys::mkdirat_new(dir.as_raw_fd(), name, 0o700)?;
            let next = match sys::openat(
                Some(dir.as_raw_fd()),
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            ) {
                Ok(n) => n,
                // A whiteout is already there: hidden from higher up.
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => break,
                Err(e) => return Err(e),
            };
            if fresh {
                let m = md.mode() & 0o7777;
                match mode {
                    Mode::System => {
                        sys::fchown(next.as_raw_fd(), md.uid(), md.gid())?;
                        sys::fchmod(next.as_raw_fd(), m)?;
                    }
                    Mode::Rootless => sys::fchmod(
                        next.as_raw_fd(),
                        rootless_mode(m, md.uid(), md.gid(), caller),
                    )?,
                }
                made.push((here.clone(), md));
            }
            dir = next;
        }
    }
    // Times last: making entries inside a directory changes its mtime.
    for (rel, md) in made.iter().rev() {
        let fd = sys::openat(
            Some(root.as_raw_fd()),
            rel,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        sys::futimens(fd.as_raw_fd(), md.mtime(), md.mtime_nsec())?;
    }
    Ok(root)
}

/// A read-only overlay of the host directory `path` (over an empty one, as
/// an overlay without upper needs two lowers), attached on the scratch
/// filesystem; returns its root.
fn host_through_overlay(
    path: &Path,
    index: usize,
    empty: &OwnedFd,
    scratch: &OwnedFd,
) -> std::io::Result<OwnedFd> {
    let fs = sys::fsopen(c"overlay")?;
    let set = |k: &str, v: &str| {
        sys::fsconfig(
            fs.as_raw_fd(),
            sys::FSCONFIG_SET_STRING,
            Some(&c(k)),
            Some(&c(v)),
        )
    };
    set("lowerdir+", &path.to_string_lossy())?;
    set("lowerdir+", &fd_path(empty))?;
    sys::fsconfig(
        fs.as_raw_fd(),
        sys::FSCONFIG_SET_FLAG,
        Some(c"userxattr"),
        None,
    )?;
    sys::fsconfig(fs.as_raw_fd(), sys::FSCONFIG_CMD_CREATE, None, None)?;
    let m = sys::fsmount(
        fs.as_raw_fd(),
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )?;
    let name = format!("host{index}");
    sys::mkdirat(scratch.as_raw_fd(), Path::new(&name), 0o755)?;
    let point = sys::openat(
        Some(scratch.as_raw_fd()),
        Path::new(&name),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )?;
    sys::move_mount_fd(m.as_raw_fd(), point.as_raw_fd())?;
    sys::openat(
        Some(scratch.as_raw_fd()),
        Path::new(&name),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )
}

/// Opens (creating as needed) the upper directory for the box path `path`,
/// walking from the live upper without following any symlink. A directory
/// created here gets the attributes of the host directory it stands for:
/// in system mode its owner and mode; rootless (where it must be the caller's)
/// a mode whose owner bits are the rights the caller has on the host
/// directory, so the box grants no more than the host did.
fn ensure_upper(
    upper: &Upper,
    path: &Path,
    mode: Mode,
    caller: Caller,
) -> std::io::Result<OwnedFd> {
    let mut cur = sys::openat(
        Some(upper.fd.as_raw_fd()),
        Path::new("."),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )?;
    let mut host = PathBuf::from("/");
    for comp in crate::plan::rel(path).components() {
        host.push(comp);
        let name = Path::new(comp.as_os_str());
        let fresh = sys::mkdirat_new(cur.as_raw_fd(), name, 0o700)?;
        let next = sys::openat2(
            cur.as_raw_fd(),
            name,
            (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW) as u64,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        )?;
        if fresh {
            upper.made.borrow_mut().push(crate::plan::rel(&host));
            copy_attrs(&next, &host, mode, caller)?;
        }
        cur = next;
    }
    Ok(cur)
}

pub(super) fn copy_attrs(
    fd: &OwnedFd,
    host: &Path,
    mode: Mode,
    caller: Caller,
) -> std::io::Result<()> {
    let Ok(md) = std::fs::metadata(host) else {
        return sys::fchmod(fd.as_raw_fd(), 0o755);
    };
    let m = md.mode() & 0o7777;
    match mode {
        Mode::System => {
            sys::fchown(fd.as_raw_fd(), md.uid(), md.gid())?;
            sys::fchmod(fd.as_raw_fd(), m)
        }
        Mode::Rootless => sys::fchmod(fd.as_raw_fd(), rootless_mode(m, md.uid(), md.gid(), caller)),
    }
}

/// The mode a caller-owned directory gets for a host directory of `mode`
/// owned by `uid`:`gid`: its owner bits are the rights the caller has there.
fn rootless_mode(mode: u32, uid: u32, gid: u32, caller: Caller) -> u32 {
    let eff = if uid == caller.uid || caller.uid == 0 {
        (mode >> 6) & 7
    } else if gid == caller.gid {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    (mode & 0o7077) | (eff << 6)
}
