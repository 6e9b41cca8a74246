//! Builds the box's root in its own mount namespace: one overlay per layer of
//! the plan, fresh `/proc`, a minimal `/dev`, read-only `/sys`, the store
//! masked; then `pivot_root` into it.
//!
//! Runs in the box's init before anything of the box executes. Every path in
//! the store is opened without following symlinks and handed to the kernel
//! as `/proc/self/fd/N`, so nothing can be swapped between check and use; every
//! mount target in the new root is resolved with `RESOLVE_IN_ROOT |
//! RESOLVE_NO_SYMLINKS`, so a layer cannot redirect a mount onto the host.

use crate::error::SetupError;
use crate::plan::{Base, LayerMount, Plan, SkeletonKind};
use crate::policy::{Durability, Mode};
use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub(crate) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
pub(crate) const RESOLVE_IN_ROOT: u64 = 0x10;
pub(crate) const OPEN_TREE_CLONE: u32 = 1;
pub(crate) const AT_RECURSIVE: u32 = 0x8000;

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
struct Upper {
    fd: OwnedFd,
    made: std::cell::RefCell<Vec<PathBuf>>,
}

impl Upper {
    /// Removes what this start made (deepest first; a directory that holds
    /// anything stays).
    fn undo(&self) {
        let mut made = self.made.borrow_mut();
        made.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for rel in made.iter() {
            let _ = sys::unlinkat(self.fd.as_raw_fd(), rel, true);
        }
        made.clear();
    }
}

pub(crate) fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn c(s: &str) -> CString {
    // Callers pass literals and formatted paths without NUL.
    CString::new(s).unwrap_or_default()
}

/// Warnings the box's init sends to the supervisor to print.
pub type Warn<'a> = &'a mut dyn FnMut(String);

/// Builds the root and pivots into it.
pub fn build(plan: &Plan, caller: Caller, run_id: &str, warn: Warn) -> Result<(), SetupError> {
    let op = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| SetupError::Mount { what, path, source }
    };
    // Nothing done here may reach the host's mount table.
    sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .map_err(op("make private", Path::new("/")))?;

    let box_fd = sys::openat(
        None,
        &plan.paths.dir,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
    .map_err(op("open the box directory", &plan.paths.dir))?;
    let beneath = |name: &str| {
        sys::openat2(
            box_fd.as_raw_fd(),
            Path::new(name),
            (libc::O_PATH | libc::O_DIRECTORY) as u64,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        )
        .map_err(|source| SetupError::Tampered {
            path: plan.paths.dir.join(name),
            source,
        })
    };
    let p = &plan.paths;
    let s = |x: &Path| x.to_string_lossy().into_owned();
    let live = beneath(&s(&p.live))?;
    // Fresh work directories for every run: overlayfs empties a reused work
    // directory at mount time, and on filesystems mounted with `discard` that
    // costs a synchronous discard per overlay. The supervisor removes the
    // previous runs' work directories in the background.
    let work_base = beneath(&s(&p.work))?;
    sys::mkdirat(work_base.as_raw_fd(), Path::new(run_id), 0o700)
        .map_err(op("create", &p.dir.join(&p.work).join(run_id)))?;
    let work = beneath(&s(&p.work.join(run_id)))?;
    let mnt = beneath(&s(&p.scratch))?;
    let upper_name = p
        .upper
        .strip_prefix(&p.live)
        .map_err(|_| SetupError::Message("the live layer is not in the live directory".into()))?;
    let fresh = sys::mkdirat_new(live.as_raw_fd(), upper_name, 0o700)
        .map_err(op("create", &p.dir.join(&p.upper)))?;
    let upper = Upper {
        fd: beneath(&s(&p.upper))?,
        made: std::cell::RefCell::new(Vec::new()),
    };
    let r = build_view(
        plan, caller, &box_fd, &upper, fresh, &work, &mnt, warn, &beneath,
    );
    if r.is_err() {
        upper.undo();
        if fresh {
            let _ = sys::unlinkat(live.as_raw_fd(), upper_name, true);
        }
    }
    r
}

/// `build` once the box's directories are open: the overlays and binds, the
/// kernel's filesystems, the hidden paths, then pivot_root.
#[allow(clippy::too_many_arguments)]
fn build_view(
    plan: &Plan,
    caller: Caller,
    box_fd: &OwnedFd,
    upper: &Upper,
    fresh: bool,
    work: &OwnedFd,
    mnt: &OwnedFd,
    warn: Warn,
    beneath: &dyn Fn(&str) -> Result<OwnedFd, SetupError>,
) -> Result<(), SetupError> {
    let op = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| SetupError::Mount { what, path, source }
    };
    if fresh {
        // The live upper is the root overlay's upper: it stands for the host's `/`.
        let fd = sys::openat(
            Some(upper.fd.as_raw_fd()),
            Path::new("."),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
        .map_err(op("open", &plan.paths.dir.join(&plan.paths.upper)))?;
        copy_attrs(&fd, Path::new("/"), plan.mode, caller)
            .map_err(op("set up", &plan.paths.dir.join(&plan.paths.upper)))?;
    }

    // A scratch tmpfs on the box's mnt/: skeletons, the empty lower, and the
    // mount point of the new root.
    let scratch = new_fs(
        "tmpfs",
        &[("mode", "0755")],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )
    .map_err(op("mount scratch tmpfs on", &plan.paths.scratch))?;
    sys::move_mount_fd(scratch.as_raw_fd(), mnt.as_raw_fd())
        .map_err(op("mount scratch tmpfs on", &plan.paths.scratch))?;
    let scratch = beneath(&plan.paths.scratch.to_string_lossy())?;
    let scratch_dir = |name: &str| -> Result<OwnedFd, SetupError> {
        sys::mkdirat(scratch.as_raw_fd(), Path::new(name), 0o755)
            .and_then(|()| {
                sys::openat(
                    Some(scratch.as_raw_fd()),
                    Path::new(name),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
            })
            .map_err(op("create scratch", Path::new(name)))
    };
    let empty = scratch_dir("empty")?;
    let root_point = scratch_dir("root")?;

    // Make every overlay, deepest first: an overlay whose upper lies inside
    // another's upper must exist before that other one, or the kernel reports
    // the inner upper as in use.
    let mut fallen_back: Vec<PathBuf> = Vec::new();
    let mut mounted: Vec<Option<OwnedFd>> = Vec::with_capacity(plan.layers.len());
    for _ in &plan.layers {
        mounted.push(None);
    }
    for (i, l) in plan.layers.iter().enumerate().rev() {
        if let Base::ReadOnly { reason } = &l.base {
            warn(format!(
                "{} is visible read-only: {reason}",
                l.path.display()
            ));
            continue;
        }
        if !l.base.is_overlay() {
            // A bind of the host's, made when it is attached.
            continue;
        }
        match make_layer(plan, caller, l, i, box_fd, upper, work, &empty, &scratch) {
            Ok(fd) => mounted[i] = Some(fd),
            // A box directory tampered with is refused, never worked around.
            Err(e @ SetupError::Tampered { .. }) => return Err(e),
            Err(e) if i == 0 || !matches!(l.base, Base::Host) => return Err(e),
            Err(e) => {
                warn(format!(
                    "{} is visible read-only: it cannot be overlaid ({e})",
                    l.path.display()
                ));
                // Shown as the host's own: what its whiteouts would have
                // hidden is covered instead.
                fallen_back.extend(l.hidden.iter().map(|h| l.path.join(h)));
            }
        }
    }

    crate::trace::mark("init: overlays made");
    // Attach them, shallowest first.
    let root_fd = mounted[0]
        .take()
        .ok_or_else(|| SetupError::Message("no root layer".into()))?;
    sys::move_mount_fd(root_fd.as_raw_fd(), root_point.as_raw_fd())
        .map_err(op("attach", Path::new("/")))?;
    let root = sys::openat(
        Some(scratch.as_raw_fd()),
        Path::new("root"),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
    .map_err(op("open the new root", Path::new("/")))?;
    let in_root = |p: &Path, flags: i32| {
        sys::openat2(
            root.as_raw_fd(),
            &crate::plan::rel(p),
            (libc::O_PATH | libc::O_NOFOLLOW | flags) as u64,
            RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        )
    };
    for (i, l) in plan.layers.iter().enumerate().skip(1) {
        let want_dir = if l.base == Base::HostFile {
            0
        } else {
            libc::O_DIRECTORY
        };
        let target = match in_root(&l.path, want_dir) {
            Ok(t) => t,
            Err(e) => {
                warn(format!(
                    "{} is not placed: its mount point is not a {} in the box ({e})",
                    l.path.display(),
                    if want_dir == 0 { "file" } else { "directory" }
                ));
                continue;
            }
        };
        match mounted[i].take() {
            Some(fd) => sys::move_mount_fd(fd.as_raw_fd(), target.as_raw_fd())
                .map_err(op("attach", &l.path))?,
            None => match bind_host(&l.path, &target, l.base != Base::HostFile) {
                // The host's went away since the plan was made.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => warn(format!(
                    "{} is not placed: it no longer exists on the host",
                    l.path.display()
                )),
                r => r.map_err(op("bind read-only", &l.path))?,
            },
        }
    }
    // Files beside mount points in skeleton directories: the host's, read-only.
    for l in &plan.layers {
        if let Base::Skeleton { entries } = &l.base {
            for e in entries.iter().filter(|e| e.kind == SkeletonKind::File) {
                let p = l.path.join(&e.name);
                match in_root(&p, 0) {
                    Ok(target) => {
                        if let Err(err) = bind_host(&p, &target, false) {
                            warn(format!("{} is not visible: {err}", p.display()));
                        }
                    }
                    Err(err) => warn(format!("{} is not visible: {err}", p.display())),
                }
            }
        }
    }

    crate::trace::mark("init: overlays attached");
    crate::kernelfs::mount_proc(&in_root)?;
    crate::kernelfs::mount_dev(&in_root)?;
    crate::kernelfs::mount_sys(&in_root)?;
    for h in plan.covered.iter().chain(&fallen_back) {
        mask(h, &in_root).map_err(op("hide", h))?;
    }
    for p in &plan.binds {
        bind_through(p, &in_root).map_err(op("pass through", p))?;
    }
    if plan.net.has_own_namespace() {
        crate::resolvconf::place(plan.net, &plan.box_name, &scratch, &root, &in_root, warn)?;
    }

    crate::trace::mark("init: proc dev sys");
    // pivot_root(".", ".") stacks the old root under the new one; detaching
    // it leaves nothing of the host's mount tree reachable.
    sys::fchdir(root.as_raw_fd()).map_err(op("enter", Path::new("/")))?;
    sys::pivot_root(Path::new("."), Path::new(".")).map_err(op("pivot_root to", Path::new("/")))?;
    sys::umount2(Path::new("."), libc::MNT_DETACH)
        .map_err(op("detach the old root from", Path::new("/")))?;
    sys::chdir(Path::new("/")).map_err(op("enter", Path::new("/")))?;
    Ok(())
}

/// Creates (without mounting) the overlay for one layer.
#[allow(clippy::too_many_arguments)]
fn make_layer(
    plan: &Plan,
    caller: Caller,
    l: &LayerMount,
    index: usize,
    box_fd: &OwnedFd,
    upper: &Upper,
    work: &OwnedFd,
    empty: &OwnedFd,
    scratch: &OwnedFd,
) -> Result<OwnedFd, SetupError> {
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

fn copy_attrs(fd: &OwnedFd, host: &Path, mode: Mode, caller: Caller) -> std::io::Result<()> {
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

/// Binds the host's `path` onto `target`, read-only (recursively for a tree).
fn bind_host(path: &Path, target: &OwnedFd, recursive: bool) -> std::io::Result<()> {
    let flags = OPEN_TREE_CLONE | if recursive { AT_RECURSIVE } else { 0 };
    let tree = sys::open_tree(libc::AT_FDCWD, path, flags)?;
    sys::mount_setattr(
        tree.as_raw_fd(),
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        recursive,
    )?;
    sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd())
}

/// Makes `path` unreadable in the box: an empty read-only filesystem over a
/// directory, /dev/null (read-only) over anything else. A path that does not
/// exist in the box, or that the box could not reach anyway, needs nothing.
fn mask(path: &Path, in_root: &InRoot) -> std::io::Result<()> {
    let target = match in_root(path, 0) {
        Ok(t) => t,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EACCES)) => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    cover(&target)
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

/// Binds the host's `path` read-only at the same place in the box, making
/// the mount point there if needed (in the box's own /tmp, for X11).
fn bind_through(path: &Path, in_root: &InRoot) -> std::io::Result<()> {
    let md = std::fs::metadata(path)?;
    let target = match in_root(path, 0) {
        Ok(t) => t,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let parent = path
                .parent()
                .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
            let name = Path::new(
                path.file_name()
                    .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?,
            );
            let dir = in_root(parent, libc::O_DIRECTORY)?;
            let d = sys::openat(
                Some(dir.as_raw_fd()),
                Path::new("."),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
            )?;
            if md.is_dir() {
                sys::mkdirat(d.as_raw_fd(), name, 0o755)?;
            } else {
                sys::openat(
                    Some(d.as_raw_fd()),
                    name,
                    libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW,
                    0o600,
                )?;
            }
            in_root(path, 0)?
        }
        Err(e) => return Err(e),
    };
    let tree = sys::open_tree(libc::AT_FDCWD, path, OPEN_TREE_CLONE)?;
    sys::mount_setattr(
        tree.as_raw_fd(),
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        false,
    )?;
    sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd())
}

pub(crate) type InRoot<'a> = dyn Fn(&Path, i32) -> std::io::Result<OwnedFd> + 'a;
