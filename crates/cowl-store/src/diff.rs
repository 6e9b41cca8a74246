//! What a layer changed compared with what lies below it (for the live layer
//! over the bare host: version 0). The walk visits only the layer's entries,
//! so its cost grows with the number of changes, not with the host's size.

use crate::layer::EntryKind;
use serde::Serialize;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// New in the layer.
    Added,
    /// Its content changed.
    Modified,
    /// Removed by the layer.
    Deleted,
    /// Now of another type (a file became a directory, …).
    TypeChanged,
    /// Same content; mode, owner, times or xattrs changed.
    MetadataChanged,
}

impl ChangeKind {
    /// The one-letter code of text listings.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Modified => 'M',
            ChangeKind::Deleted => 'D',
            ChangeKind::TypeChanged => 'T',
            ChangeKind::MetadataChanged => 'P',
        }
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The path as the box sees it.
    pub path: PathBuf,
    /// How it changed.
    pub change: ChangeKind,
    /// What it is now (for deletions: what it was).
    pub kind: EntryKind,
    /// Its size now (for deletions: before).
    pub size: u64,
}

/// How the diff treats special parts of the box.
pub struct DiffRules<'a> {
    /// Directories whose attributes cowl set (overlay mount points): their
    /// metadata is not a change.
    pub structural: &'a dyn Fn(&Path) -> bool,
    /// Directories the box has on its own (not the host's, like /tmp): all
    /// their content is added.
    pub private: &'a dyn Fn(&Path) -> bool,
}

/// Changes of the layer at `layer` over the host's root `base` ("/").
pub fn diff_layer(layer: &Path, base: &Path, rules: &DiffRules) -> Vec<Change> {
    let mut out = Vec::new();
    walk(layer, base, Path::new("/"), false, rules, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(
    layer_dir: &Path,
    base_root: &Path,
    at: &Path,
    hidden_below: bool,
    rules: &DiffRules,
    out: &mut Vec<Change>,
) {
    let Ok(rd) = std::fs::read_dir(layer_dir) else {
        return;
    };
    let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        let path = at.join(&name);
        let lp = layer_dir.join(&name);
        let Some((kind, md)) = EntryKind::of(&lp) else {
            continue;
        };
        let base_path = base_root.join(path.strip_prefix("/").unwrap_or(&path));
        // A private directory (the box's own /tmp) is compared as a mount
        // point; what is inside it is all the box's.
        let private = (rules.private)(&path);
        let below = if hidden_below {
            None
        } else {
            EntryKind::of(&base_path)
        };
        match (kind, &below) {
            (EntryKind::Whiteout, Some((bk, bmd))) => out.push(Change {
                path,
                change: ChangeKind::Deleted,
                kind: *bk,
                size: bmd.len(),
            }),
            (EntryKind::Whiteout, None) => {}
            (k, None) => {
                out.push(Change {
                    path: path.clone(),
                    change: ChangeKind::Added,
                    kind: k,
                    size: if k.is_dir() { 0 } else { md.len() },
                });
                if k.is_dir() {
                    walk(&lp, base_root, &path, true, rules, out);
                }
            }
            (k, Some((bk, bmd))) if k.is_dir() && bk.is_dir() => {
                if !(rules.structural)(&path) && meta_differs(&md, bmd, &lp, &base_path) {
                    out.push(Change {
                        path: path.clone(),
                        change: ChangeKind::MetadataChanged,
                        kind: k,
                        size: 0,
                    });
                }
                if k == EntryKind::OpaqueDir && !private {
                    deleted_below(&lp, &base_path, &path, out);
                }
                let hide = private || k == EntryKind::OpaqueDir;
                walk(&lp, base_root, &path, hide, rules, out);
            }
            (k, Some((bk, _))) if k != *bk => {
                out.push(Change {
                    path: path.clone(),
                    change: ChangeKind::TypeChanged,
                    kind: k,
                    size: if k.is_dir() { 0 } else { md.len() },
                });
                if k.is_dir() {
                    walk(&lp, base_root, &path, true, rules, out);
                }
            }
            (k, Some((_, bmd))) => {
                let change = if content_differs(k, &lp, &md, &base_path, bmd) {
                    ChangeKind::Modified
                } else if meta_differs(&md, bmd, &lp, &base_path) {
                    ChangeKind::MetadataChanged
                } else {
                    continue;
                };
                out.push(Change {
                    path,
                    change,
                    kind: k,
                    size: md.len(),
                });
            }
        }
    }
}

/// Host entries an opaque directory hides: deleted.
fn deleted_below(layer_dir: &Path, base_dir: &Path, at: &Path, out: &mut Vec<Change>) {
    let Ok(rd) = std::fs::read_dir(base_dir) else {
        return;
    };
    let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        if std::fs::symlink_metadata(layer_dir.join(&name)).is_ok() {
            continue;
        }
        if let Some((bk, bmd)) = EntryKind::of(&base_dir.join(&name)) {
            out.push(Change {
                path: at.join(&name),
                change: ChangeKind::Deleted,
                kind: bk,
                size: bmd.len(),
            });
        }
    }
}

fn meta_differs(a: &std::fs::Metadata, b: &std::fs::Metadata, ap: &Path, bp: &Path) -> bool {
    a.mode() != b.mode()
        || a.uid() != b.uid()
        || a.gid() != b.gid()
        || user_xattrs(ap) != user_xattrs(bp)
}

fn user_xattrs(p: &Path) -> Vec<(std::ffi::OsString, Option<Vec<u8>>)> {
    let Ok(names) = xattr::list(p) else {
        return Vec::new();
    };
    let mut v: Vec<_> = names
        .filter(|n| {
            let s = n.as_encoded_bytes();
            s.starts_with(b"user.") && !s.starts_with(b"user.overlay.")
        })
        .map(|n| {
            let val = xattr::get(p, &n).ok().flatten();
            (n, val)
        })
        .collect();
    v.sort();
    v
}

fn content_differs(
    kind: EntryKind,
    a: &Path,
    amd: &std::fs::Metadata,
    b: &Path,
    bmd: &std::fs::Metadata,
) -> bool {
    match kind {
        EntryKind::Symlink => std::fs::read_link(a).ok() != std::fs::read_link(b).ok(),
        EntryKind::File => amd.len() != bmd.len() || !same_bytes(a, b),
        _ => amd.rdev() != bmd.rdev(),
    }
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        // Unreadable: report it as changed rather than hide a change.
        return false;
    };
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let (Ok(na), Ok(nb)) = (read_full(&mut fa, &mut ba), read_full(&mut fb, &mut bb)) else {
            return false;
        };
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
