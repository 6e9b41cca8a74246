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
use crate::plan::{Base, Plan, SkeletonKind};
use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use libc::{RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

mod layer;
pub use layer::Caller;
use layer::{copy_attrs, make_layer, Dirs, Upper};

pub use crate::mountapi::Warn;
use crate::mountapi::{cover, new_fs, InRoot, AT_RECURSIVE, OPEN_TREE_CLONE};

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
    let dirs = Dirs {
        box_fd,
        upper,
        work,
        empty: &empty,
        scratch: &scratch,
    };
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
        match make_layer(plan, caller, l, i, &dirs) {
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
