//! What changed between two views of a box: version 0 (the bare host), any
//! version, or the live layer. Only the paths that appear in the layers
//! between the two views are looked at, so the cost grows with the number of
//! changes, never with the size of the host.

use crate::layer::EntryKind;
use crate::stack::{Found, Stack};
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// New.
    Added,
    /// Its content changed.
    Modified,
    /// Removed.
    Deleted,
    /// Now of another type (a file became a directory, …).
    TypeChanged,
    /// Same content; mode, owner or xattrs changed.
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
    /// Where its old content is, for patches.
    #[serde(skip)]
    pub before: Option<PathBuf>,
    /// Where its new content is, for patches.
    #[serde(skip)]
    pub after: Option<PathBuf>,
}

/// How the diff treats special parts of the box.
pub struct DiffRules<'a> {
    /// Directories whose attributes cowl set (overlay mount points and the
    /// directories above them): their metadata is not a change.
    pub structural: &'a dyn Fn(&Path) -> bool,
}

/// The paths of every entry of `layer`, relative to `/`, and of its cut if
/// a commit made it (see `cut`).
pub fn layer_paths(layer: &Path, out: &mut BTreeSet<PathBuf>) {
    if let Some(cut) = crate::cut::of_layer(layer) {
        out.extend(cut);
    }
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(layer.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            let r = rel.join(e.file_name());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(r.clone());
            }
            out.insert(r);
        }
    }
}

/// Compares two stacks at the candidate paths (relative to `/`): the
/// entries of every layer that one stack has and the other has not.
pub fn diff_stacks(
    from: &Stack,
    to: &Stack,
    candidates: BTreeSet<PathBuf>,
    rules: &DiffRules,
) -> Vec<Change> {
    // Ordered by bytes, which keeps a parent before its children and is
    // much cheaper than comparing paths component by component.
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut work: BTreeSet<Vec<u8>> = candidates
        .into_iter()
        .map(|p| p.into_os_string().into_vec())
        .collect();
    let mut done = std::collections::HashSet::new();
    let mut out = Vec::new();
    // Paths a view does not show: what lies below them is not shown either.
    // Candidates come parents first, so a new tree costs one look-up per
    // entry, not two.
    let mut absent_a = std::collections::HashSet::new();
    let mut absent_b = std::collections::HashSet::new();
    let look = |s: &Stack, absent: &mut std::collections::HashSet<PathBuf>, rel: &Path| {
        if rel.parent().is_some_and(|p| absent.contains(p)) {
            absent.insert(rel.to_owned());
            return None;
        }
        let f = s.lookup(rel);
        if f.is_none() {
            absent.insert(rel.to_owned());
        }
        f
    };
    while let Some(bytes) = work.pop_first() {
        let rel = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
        if !done.insert(rel.clone()) {
            continue;
        }
        let a = look(from, &mut absent_a, &rel);
        let b = look(to, &mut absent_b, &rel);
        let path = Path::new("/").join(&rel);
        let mk = |change, f: &Found, a: &Option<Found>, b: &Option<Found>| Change {
            path: path.clone(),
            change,
            kind: f.kind,
            size: if f.kind.is_dir() { 0 } else { f.md.len() },
            before: a.as_ref().map(|x| x.real.clone()),
            after: b.as_ref().map(|x| x.real.clone()),
        };
        match (&a, &b) {
            (None, None) => {}
            (None, Some(t)) => out.push(mk(ChangeKind::Added, t, &a, &b)),
            (Some(f), None) => {
                // Report a deleted directory once, not each entry below it.
                let parent_shown = |p: &Path| {
                    p.as_os_str().is_empty()
                        || (!absent_b.contains(p) && (done.contains(p) || to.lookup(p).is_some()))
                };
                if rel.parent().is_none_or(parent_shown) {
                    out.push(mk(ChangeKind::Deleted, f, &a, &b));
                }
            }
            (Some(f), Some(t)) if f.kind != t.kind => {
                out.push(mk(ChangeKind::TypeChanged, t, &a, &b))
            }
            (Some(f), Some(t)) if t.kind.is_dir() => {
                if !(rules.structural)(&path) && meta_differs(&f.md, &t.md, &f.real, &t.real) {
                    out.push(mk(ChangeKind::MetadataChanged, t, &a, &b));
                }
                // An opaque directory on either side hides what the other
                // side shows in it: every such name is a candidate.
                if f.opaque || t.opaque {
                    for n in from.list(&rel).into_iter().chain(to.list(&rel)) {
                        work.insert(rel.join(n).into_os_string().into_vec());
                    }
                }
            }
            (Some(f), Some(t)) => {
                if content_differs(t.kind, &f.real, &f.md, &t.real, &t.md) {
                    out.push(mk(ChangeKind::Modified, t, &a, &b));
                } else if meta_differs(&f.md, &t.md, &f.real, &t.real) {
                    out.push(mk(ChangeKind::MetadataChanged, t, &a, &b));
                }
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
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
    if amd.dev() == bmd.dev() && amd.ino() == bmd.ino() {
        return false;
    }
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
    // Sized for the file (same length on both sides by now): comparing many
    // small files does not zero two large buffers for each.
    let size = fa
        .metadata()
        .map_or(64 * 1024, |m| m.len())
        .clamp(4096, 64 * 1024) as usize;
    let mut ba = vec![0u8; size];
    let mut bb = vec![0u8; size];
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

/// `prefix` and a path as one label of a patch, quoted as a whole when
/// the path needs it (as git writes `"a/name\twith a tab"`).
fn patch_label(prefix: &str, p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut b = prefix.as_bytes().to_vec();
    b.extend_from_slice(p.as_os_str().as_bytes());
    crate::quote::bytes(&b).to_string()
}

/// A unified diff of one change for `--patch`: text files line by line,
/// anything else as one line. Names are quoted and the content's control
/// characters escaped (see `quote`): what a box wrote cannot rewrite the
/// reviewer's screen.
pub fn patch(c: &Change) -> String {
    let read = |p: &Option<PathBuf>| -> Option<Vec<u8>> {
        match p {
            None => Some(Vec::new()),
            Some(p) => std::fs::read(p).ok(),
        }
    };
    let label = crate::quote::path(&c.path);
    let is_file = c.kind == EntryKind::File;
    if !is_file || c.change == ChangeKind::MetadataChanged {
        return format!("{} {} ({})\n", c.change.letter(), label, c.kind.as_str());
    }
    let before = if c.change == ChangeKind::Added {
        Some(Vec::new())
    } else {
        read(&c.before)
    };
    let after = if c.change == ChangeKind::Deleted {
        Some(Vec::new())
    } else {
        read(&c.after)
    };
    let text = |b: &Option<Vec<u8>>| {
        b.as_ref().and_then(|b| {
            (!b.contains(&0))
                .then(|| String::from_utf8(b.clone()).ok())
                .flatten()
        })
    };
    match (text(&before), text(&after)) {
        (Some(x), Some(y)) => {
            let (a, b) = (patch_label("a", &c.path), patch_label("b", &c.path));
            let from = if c.change == ChangeKind::Added {
                "/dev/null".to_owned()
            } else {
                a.clone()
            };
            let to = if c.change == ChangeKind::Deleted {
                "/dev/null".to_owned()
            } else {
                b.clone()
            };
            let hunks = similar::TextDiff::from_lines(&x, &y)
                .unified_diff()
                .context_radius(3)
                .header(&from, &to)
                .to_string();
            let mut out = format!("diff --cowl {a} {b}\n");
            for line in hunks.split_inclusive('\n') {
                let (body, end) = match line.strip_suffix('\n') {
                    Some(body) => (body, "\n"),
                    None => (line, ""),
                };
                out.push_str(&crate::quote::content_line(body));
                out.push_str(end);
            }
            out
        }
        _ => format!("Binary file {label} differs\n"),
    }
}
