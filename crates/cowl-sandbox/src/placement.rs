//! Where the view's overlays and binds go, from the host's mounts by class
//! (`hostmounts`): the cheapest correct way to show each.
//!
//! System mode (real root, the mount namespace made before the user
//! namespace): one overlay of `/`, one per writable directory mount, a
//! read-only bind per read-only mount and per file mount; kernel
//! filesystems and unreachable mounts are left out (the empty directory
//! below them shows).
//!
//! Rootless: in a user namespace the kernel refuses, as an overlay lower,
//! any directory with mounts below it ("failed to clone lowerpath"). Such
//! directories, from `/` down, become one skeleton tree (empty directories,
//! the same symlinks, placeholders for files bound read-only from the host)
//! under the root overlay, whose upper is the live layer's root: writes
//! directly into them still land in the layer at the same paths. Each
//! directory without mounts below gets its own overlay of the host's,
//! except an empty one, which the skeleton stands for at no cost. A
//! directory the caller cannot write that holds only read-only mounts (the
//! squashfs images of `/snap`) is one read-only bind, whatever their number.

use crate::hidden::is_hidden;
use crate::hostmounts::{HostMount, MountClass};
use crate::view::{
    layer, Base, LayerMount, SkeletonEntry, SkeletonKind, PRIVATE_DIRS, SPECIAL_DIRS,
};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Entries a read-only tree may hold outside its mounts before it is not
/// worth checking whether the caller could write any of them.
const TREE_CHECK_BUDGET: usize = 256;

type Classes = BTreeMap<PathBuf, MountClass>;

fn classes(mounts: &[HostMount]) -> Classes {
    mounts
        .iter()
        .map(|m| (m.path.clone(), m.class.clone()))
        .collect()
}

fn has_mounts_below(dir: &Path, c: &Classes) -> bool {
    c.range(dir.to_path_buf()..)
        .take_while(|(p, _)| p.starts_with(dir))
        .any(|(p, _)| p != dir)
}

fn under_store(p: &Path, stores: &[PathBuf]) -> bool {
    stores.iter().any(|s| p.starts_with(s))
}

/// System mode.
pub(crate) fn privileged(
    mounts: &[HostMount],
    stores: &[PathBuf],
    hidden: &[PathBuf],
) -> Vec<LayerMount> {
    let c = classes(mounts);
    let mut out = vec![layer(Path::new("/"), Base::Host)];
    // Shallowest first: a read-only bind carries the mounts below it.
    let mut bound: Vec<PathBuf> = Vec::new();
    for (p, class) in &c {
        if crate::view::is_under_any(p, &PRIVATE_DIRS)
            || under_store(p, stores)
            || is_hidden(p, hidden)
            || bound.iter().any(|b| p.starts_with(b))
        {
            continue;
        }
        match class {
            MountClass::Writable => out.push(layer(p, Base::Host)),
            MountClass::ReadOnly => {
                out.push(layer(p, Base::HostReadOnly));
                bound.push(p.clone());
            }
            MountClass::File => out.push(layer(p, Base::HostFile)),
            MountClass::Kernel | MountClass::Unreachable { .. } if has_mounts_below(p, &c) => {
                // Its own directory is not entered; the mounts below are
                // shown on a skeleton of their mount points.
                out.push(layer(
                    p,
                    Base::Skeleton {
                        entries: mount_point_chains(p, &c),
                    },
                ));
            }
            // The empty directory below shows; a socket stays closed; a
            // second path to something hidden is hidden (its path is).
            MountClass::Kernel
            | MountClass::Unreachable { .. }
            | MountClass::Socket
            | MountClass::Hidden { .. } => {}
        }
    }
    out
}

/// The directories from `dir` down to each mount point below it, as
/// skeleton entries relative to `dir` (without listing `dir`, which a
/// kernel filesystem such as autofs would answer by mounting).
fn mount_point_chains(dir: &Path, c: &Classes) -> Vec<SkeletonEntry> {
    let mut names: Vec<PathBuf> = Vec::new();
    for (p, _) in c
        .range(dir.to_path_buf()..)
        .take_while(|(p, _)| p.starts_with(dir))
    {
        let Ok(rel) = p.strip_prefix(dir) else {
            continue;
        };
        let mut acc = PathBuf::new();
        for comp in rel.components() {
            acc.push(comp);
            if !names.contains(&acc) {
                names.push(acc.clone());
            }
        }
    }
    names
        .into_iter()
        .filter(|n| !n.as_os_str().is_empty())
        .map(|name| SkeletonEntry {
            name,
            kind: SkeletonKind::Dir {
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
        })
        .collect()
}

/// Rootless.
pub(crate) fn rootless(
    mounts: &[HostMount],
    stores: &[PathBuf],
    hidden: &[PathBuf],
) -> Vec<LayerMount> {
    let c = classes(mounts);
    let mut out = Vec::new();
    let mut entries = Vec::new();
    let mut walk = Walk {
        c: &c,
        stores,
        hidden,
        entries: &mut entries,
        out: &mut out,
    };
    walk.level(Path::new("/"), Path::new("/"));
    for p in PRIVATE_DIRS {
        let p = Path::new(p);
        if p.parent() == Some(Path::new("/")) && !out.iter().any(|l| l.path == p) {
            entries.push(SkeletonEntry {
                name: crate::view::rel(p),
                kind: SkeletonKind::Dir {
                    mode: 0o1777,
                    uid: 0,
                    gid: 0,
                },
            });
            out.push(layer(p, Base::Empty));
        }
    }
    out.push(layer(Path::new("/"), Base::Skeleton { entries }));
    out
}

struct Walk<'a> {
    c: &'a Classes,
    stores: &'a [PathBuf],
    hidden: &'a [PathBuf],
    entries: &'a mut Vec<SkeletonEntry>,
    out: &'a mut Vec<LayerMount>,
}

impl Walk<'_> {
    fn dir_entry(&mut self, path: &Path, base: &Path, md: &std::fs::Metadata) {
        self.entries.push(SkeletonEntry {
            name: rel_to(path, base),
            kind: SkeletonKind::Dir {
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
            },
        });
    }

    /// Places what is in `dir` (a directory the skeleton holds; `base` is
    /// the skeleton's root).
    fn level(&mut self, dir: &Path, base: &Path) {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                self.out.push(layer(
                    dir,
                    Base::ReadOnly {
                        reason: format!("cannot list it to place the mounts below it: {e}"),
                    },
                ));
                return;
            }
        };
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            if is_hidden(&path, self.hidden) || under_store(&path, self.stores) {
                // Left out of the skeleton: the box never sees the name.
                continue;
            }
            if let Some(MountClass::Unreachable { .. }) = self.c.get(&path) {
                // Not even looked at (another user's FUSE mount answers
                // EACCES; a dead server would hang): an empty directory.
                self.entries.push(SkeletonEntry {
                    name: rel_to(&path, base),
                    kind: SkeletonKind::Dir {
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                    },
                });
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = md.file_type();
            if SPECIAL_DIRS.iter().any(|s| Path::new(s) == path) {
                // Mounted fresh by the sandbox.
                self.dir_entry(&path, base, &md);
                continue;
            }
            if let Some(class) = self.c.get(&path).cloned() {
                self.mount(&path, base, &md, &class);
                continue;
            }
            if ft.is_symlink() {
                if let Ok(target) = std::fs::read_link(&path) {
                    self.entries.push(SkeletonEntry {
                        name: rel_to(&path, base),
                        kind: SkeletonKind::Symlink { target },
                    });
                }
            } else if ft.is_dir() {
                self.dir_entry(&path, base, &md);
                if PRIVATE_DIRS.iter().any(|s| Path::new(s) == path) {
                    self.out.push(layer(&path, Base::Empty));
                } else if has_mounts_below(&path, self.c) {
                    if read_only_tree(&path, self.c) {
                        self.out.push(layer(&path, Base::HostReadOnly));
                    } else {
                        self.level(&path, base);
                    }
                } else if !is_empty_dir(&path) {
                    self.out.push(layer(&path, Base::Host));
                }
            } else if ft.is_socket() || ft.is_fifo() {
                // A fifo bound even read-only can be opened for writing
                // (the read-only flag does not cover it): the box would feed
                // a host process's input. A placeholder, as for a socket.
                self.entries.push(SkeletonEntry {
                    name: rel_to(&path, base),
                    kind: SkeletonKind::Socket,
                });
            } else if ft.is_file() {
                self.entries.push(SkeletonEntry {
                    name: rel_to(&path, base),
                    kind: SkeletonKind::File,
                });
            }
        }
    }

    /// A mount point in a skeleton directory, by its class.
    fn mount(&mut self, path: &Path, base: &Path, md: &std::fs::Metadata, class: &MountClass) {
        let below = has_mounts_below(path, self.c);
        match class {
            MountClass::Writable => {
                self.dir_entry(path, base, md);
                if below && read_only_tree(path, self.c) {
                    self.out.push(layer(path, Base::HostReadOnly));
                } else if below {
                    self.level(path, base);
                } else {
                    self.out.push(layer(path, Base::Host));
                }
            }
            MountClass::ReadOnly => {
                self.dir_entry(path, base, md);
                self.out.push(layer(path, Base::HostReadOnly));
            }
            MountClass::Kernel | MountClass::Unreachable { .. } => {
                // An empty directory; mounts below it on a skeleton of their
                // mount points (its own entries are not read).
                self.dir_entry(path, base, md);
                if below {
                    for e in mount_point_chains(path, self.c) {
                        let p = path.join(&e.name);
                        if is_hidden(&p, self.hidden) {
                            continue;
                        }
                        let class = self.c.get(&p).cloned();
                        if let Some(MountClass::Unreachable { .. }) = class {
                            // Never looked at (a dead network mount hangs a
                            // stat): an empty directory.
                            self.entries.push(SkeletonEntry {
                                name: rel_to(&p, base),
                                kind: e.kind,
                            });
                        } else if let Some(class) = class {
                            if let Ok(md) = std::fs::symlink_metadata(&p) {
                                self.mount(&p, base, &md, &class);
                            }
                        } else {
                            self.entries.push(SkeletonEntry {
                                name: rel_to(&p, base),
                                kind: e.kind,
                            });
                        }
                    }
                }
            }
            MountClass::File => self.entries.push(SkeletonEntry {
                name: rel_to(path, base),
                kind: SkeletonKind::File,
            }),
            MountClass::Socket => self.entries.push(SkeletonEntry {
                name: rel_to(path, base),
                kind: SkeletonKind::Socket,
            }),
            MountClass::Hidden { .. } => {}
        }
    }
}

fn rel_to(p: &Path, base: &Path) -> PathBuf {
    p.strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut r| r.next().is_none())
        .unwrap_or(false)
}

/// Whether `dir` can be one read-only bind: no mount at or below it is
/// writable, and nothing outside its mounts is writable by the caller
/// (checked within a budget; over it, the answer is no).
fn read_only_tree(dir: &Path, c: &Classes) -> bool {
    // Below it only read-only mounts, files, sockets, hidden or unreachable
    // ones: no writable mount, and no kernel filesystem (an automount point
    // carried into the box could be triggered there).
    let all_read_only = c
        .range(dir.to_path_buf()..)
        .take_while(|(p, _)| p.starts_with(dir))
        .filter(|(p, _)| p.as_path() != dir)
        .all(|(_, class)| !matches!(class, MountClass::Writable | MountClass::Kernel));
    let mut budget = TREE_CHECK_BUDGET;
    all_read_only && nothing_writable(dir, c, &mut budget)
}

/// Whether the caller can write nothing in `dir` outside the mounts below
/// it (which `read_only_tree` checked by class).
fn nothing_writable(dir: &Path, c: &Classes, budget: &mut usize) -> bool {
    if writable_by_caller(dir) {
        return false;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        // Cannot be listed by cowl, yet a name in it may still be entered
        // and written (a 0311 drop directory): not known to be read-only.
        return false;
    };
    for e in rd.flatten() {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let p = e.path();
        if c.contains_key(&p) {
            continue;
        }
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_symlink() {
            continue;
        }
        if ft.is_socket() || ft.is_fifo() {
            // Reached through a read-only bind as on the host (a connect, a
            // read of another process's fifo): placeholders need a skeleton.
            return false;
        }
        if ft.is_dir() {
            if !nothing_writable(&p, c, budget) {
                return false;
            }
        } else if writable_by_caller(&p) {
            return false;
        }
    }
    true
}

fn writable_by_caller(p: &Path) -> bool {
    crate::sys::cpath(p).is_ok_and(|c| {
        // SAFETY: a valid C string; access checks the real ids.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    })
}
