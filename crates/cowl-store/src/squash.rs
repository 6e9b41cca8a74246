//! Squash: merges a run of old versions into one with overlayfs's own
//! semantics (a whiteout deletes what is below it, an opaque directory hides
//! it, a directory merges), so the squashed stack shows exactly the tree the
//! unsquashed one showed. Files are hard-linked, never copied.

use crate::boxdir::{remove_tree, sync_dir, write_atomic};
use crate::diff::{diff_stacks, layer_paths, DiffRules};
use crate::fault::point;
use crate::history::{recover, roll_forward_squash, Layout, Version};
use crate::layer::EntryKind;
use crate::manifest::{scan_layer, Made, Manifest, ManifestBody, Totals};
use crate::stack::Stack;
use crate::{BoxDir, StoreError};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Which versions may be merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eligible {
    /// `cowl squash`: every unpinned version.
    Unpinned,
    /// Retention: automatic (made by a run) unpinned versions only; manual
    /// snapshots are kept.
    Automatic,
}

/// The runs of versions to merge: maximal runs of eligible versions, older
/// than the newest `keep` eligible ones, at least two long.
pub fn plan(versions: &[Version], keep: usize, which: Eligible) -> Vec<(u64, u64)> {
    // A commit's cut applies to every version below it: merging it with
    // them would lose that, so it is never merged.
    let ok = |v: &Version| {
        !v.pinned
            && v.manifest.body.made != Made::Commit
            && (which == Eligible::Unpinned || v.manifest.body.made == Made::Run)
    };
    let eligible: Vec<u64> = versions
        .iter()
        .filter(|v| ok(v))
        .map(|v| v.number)
        .collect();
    let cutoff = eligible.len().saturating_sub(keep);
    let old: BTreeSet<u64> = eligible[..cutoff].iter().copied().collect();
    let mut runs = Vec::new();
    let mut cur: Option<(u64, u64)> = None;
    for v in versions {
        if old.contains(&v.number) {
            cur = Some(cur.map_or((v.number, v.number), |(a, _)| (a, v.number)));
        } else if let Some(r) = cur.take() {
            runs.push(r);
        }
    }
    runs.extend(cur);
    runs.retain(|(a, b)| a < b);
    runs
}

/// Squashes per `plan`; returns the merged ranges.
pub fn squash(
    b: &BoxDir,
    keep: usize,
    which: Eligible,
    layout: &Layout,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let _ops = b.ops_lock(true)?;
    recover(b)?;
    let mut done = Vec::new();
    loop {
        let versions = b.versions()?;
        let Some(&(first, last)) = plan(&versions, keep, which).first() else {
            return Ok(done);
        };
        squash_range(b, &versions, first, last, layout)?;
        done.push((first, last));
    }
}

fn squash_range(
    b: &BoxDir,
    versions: &[Version],
    first: u64,
    last: u64,
    layout: &Layout,
) -> Result<(), StoreError> {
    let stage = b
        .path()
        .join("pending")
        .join(format!("squash-{first}-{last}"));
    let _ = fs::create_dir(b.path().join("pending"));
    remove_tree(&stage).map_err(StoreError::io("clear", &stage))?;
    fs::create_dir_all(stage.join("new")).map_err(StoreError::io("create", &stage))?;
    fs::create_dir_all(stage.join("manifests")).map_err(StoreError::io("create", &stage))?;
    let range: Vec<&Version> = versions
        .iter()
        .filter(|v| v.number >= first && v.number <= last)
        .collect();
    let merged = stage.join("new/layer");
    let all: Vec<PathBuf> = versions.iter().map(Version::layer).collect();
    let _opened = crate::layer::open_for_reading(
        &b.path().join("pending"),
        &all.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    );
    merge(
        &range.iter().map(|v| v.layer()).collect::<Vec<_>>(),
        &merged,
    )?;

    // The merged version keeps the number, time and parent its range spans.
    let below: Vec<PathBuf> = versions
        .iter()
        .rev()
        .filter(|v| v.number < first)
        .map(Version::layer)
        .collect();
    let before = Stack::new(below.clone(), Some(Path::new("/")), layout.private);
    let mut after_layers = below.clone();
    after_layers.insert(0, merged.clone());
    let after = Stack::new(after_layers, Some(Path::new("/")), layout.private);
    let mut cands = BTreeSet::new();
    layer_paths(&merged, &mut cands);
    let changes = diff_stacks(
        &before,
        &after,
        cands,
        &DiffRules {
            structural: layout.structural,
        },
    );
    let entries = {
        let opened = crate::layer::open_for_reading(&b.path().join("pending"), &[merged.as_path()]);
        let mut e = scan_layer(&merged)?;
        crate::manifest::correct_modes(&opened, &merged, &mut e);
        e
    };
    let top = range.last().map(|v| &v.manifest.body);
    let mut totals = Totals {
        entries: entries.len() as u64,
        bytes: entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.size)
            .sum(),
        ..Totals::default()
    };
    for c in &changes {
        match c.change {
            crate::diff::ChangeKind::Added => totals.added += 1,
            crate::diff::ChangeKind::Deleted => totals.deleted += 1,
            _ => totals.modified += 1,
        }
    }
    let mut parent = versions
        .iter()
        .rfind(|v| v.number < first)
        .map(|v| v.manifest.digest.clone());
    let body = ManifestBody {
        format: 1,
        version: last,
        parent: parent.clone(),
        created: top.map_or(0, |t| t.created),
        message: format!("squash of versions {first}-{last}"),
        made: Made::Squash,
        totals,
        entries,
        stripped: {
            let mut s: Vec<String> = range
                .iter()
                .flat_map(|v| v.manifest.body.stripped.iter().cloned())
                .collect();
            s.sort();
            s.dedup();
            s
        },
        committed: Vec::new(),
    };
    let m = body.seal();
    write_json(&stage.join("new/manifest.json"), &m)?;
    write_atomic(&stage.join("new/digest"), m.digest.as_bytes())?;
    // Every later version's parent digest changes, so does its own.
    parent = Some(m.digest.clone());
    for v in versions.iter().filter(|v| v.number > last) {
        let mut body = v.manifest.body.clone();
        body.parent = parent.clone();
        let nm = body.seal();
        parent = Some(nm.digest.clone());
        write_json(
            &stage.join("manifests").join(format!("{}.json", v.number)),
            &nm,
        )?;
    }
    point("squash:merged");
    // The merged layer is on disk before anything says it is ready: after
    // a power loss, roll-forward removes the versions it replaces.
    sync_merged(&stage.join("new"))?;
    sync_dir(&stage);
    sync_dir(&b.pending_dir());
    // The commit point: from here on, recovery rolls forward.
    let plan = serde_json::json!({"first": first, "last": last});
    write_atomic(&stage.join("ready"), plan.to_string().as_bytes())?;
    sync_dir(&stage);
    point("squash:ready");
    roll_forward_squash(b, &stage, first, last)?;
    b.note(
        "squash",
        serde_json::json!({"first": first, "last": last, "digest": m.digest}),
    )
}

fn write_json(p: &Path, m: &Manifest) -> Result<(), StoreError> {
    write_atomic(p, &serde_json::to_vec_pretty(m).unwrap_or_default())
}

/// Merges layers (oldest first) into a new layer at `out`.
pub fn merge(layers: &[PathBuf], out: &Path) -> Result<(), StoreError> {
    let mut dirs = Vec::new();
    let Some((base, rest)) = layers.split_first() else {
        return fs::create_dir(out).map_err(StoreError::io("create", out));
    };
    copy_tree(base, out, &mut dirs)?;
    cut_from(base, out)?;
    for u in rest {
        apply(u, out, &mut dirs)?;
        cut_from(u, out)?;
    }
    finish(dirs)
}

/// Removes from the merged layer what a commit's cut says the layers below
/// it no longer hold (see `cut`).
fn cut_from(layer: &Path, merged: &Path) -> Result<(), StoreError> {
    let Some(cut) = crate::cut::of_layer(layer) else {
        return Ok(());
    };
    for rel in cut {
        // Never through a symlink the layers hold (a pulled layer may be
        // hostile).
        crate::boxdir::remove_beneath(merged, &rel)
            .map_err(StoreError::io("remove", &merged.join(&rel)))?;
    }
    Ok(())
}

/// Modes and times last, deepest first: a directory's mode may forbid
/// writing into it, and every entry made changes its mtime. For a directory
/// met more than once, the last (upper) word wins.
fn finish(dirs: Vec<DirFix>) -> Result<(), StoreError> {
    let mut last: std::collections::BTreeMap<PathBuf, AttrFrom> = std::collections::BTreeMap::new();
    for (dst, src) in dirs {
        last.insert(dst, src);
    }
    let mut order: Vec<_> = last.into_iter().collect();
    order.sort_by_key(|(d, _)| std::cmp::Reverse(d.components().count()));
    for (dst, src) in order {
        if dst.symlink_metadata().is_err() {
            // Cut by a commit after it was merged.
            continue;
        }
        match src {
            AttrFrom::Dir(src) => finish_dir(&src, &dst)?,
            AttrFrom::Mode(m) => fs::set_permissions(&dst, fs::Permissions::from_mode(m))
                .map_err(StoreError::io("chmod", &dst))?,
        }
    }
    Ok(())
}

/// Where a merged directory takes its final attributes from.
#[derive(Debug, Clone)]
enum AttrFrom {
    /// The layer directory it stands for.
    Dir(PathBuf),
    /// Only this mode (its own, kept).
    Mode(u32),
}

type DirFix = (PathBuf, AttrFrom);

fn read_names(dir: &Path) -> Result<Vec<std::ffi::OsString>, StoreError> {
    match fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
            v.sort();
            Ok(v)
        }
        // Never taken for empty: that would drop what is inside for good.
        // (Callers open the layers for reading first; see layer::open_for_reading.)
        Err(e) => Err(StoreError::io("read", dir)(e)),
    }
}

fn make_dir(src: &Path, dst: &Path, dirs: &mut Vec<DirFix>) -> Result<(), StoreError> {
    fs::create_dir(dst).map_err(StoreError::io("create", dst))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(0o700))
        .map_err(StoreError::io("chmod", dst))?;
    copy_xattrs(src, dst)?;
    dirs.push((dst.to_owned(), AttrFrom::Dir(src.to_owned())));
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path, dirs: &mut Vec<DirFix>) -> Result<(), StoreError> {
    make_dir(src, dst, dirs)?;
    for n in read_names(src)? {
        let (s, d) = (src.join(&n), dst.join(&n));
        match EntryKind::of(&s) {
            Some((k, _)) if k.is_dir() => copy_tree(&s, &d, dirs)?,
            Some(_) => fs::hard_link(&s, &d).map_err(StoreError::io("link", &s))?,
            None => {}
        }
    }
    Ok(())
}

/// Syncs every directory of a merged tree: its files are hard links of
/// files already on disk, so its directories are what is new. A directory
/// that cannot be opened (its mode shuts the caller out) makes it sync the
/// whole filesystem instead.
fn sync_merged(root: &Path) -> Result<(), StoreError> {
    fn walk(dir: &Path) -> std::io::Result<()> {
        for e in fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                walk(&e.path())?;
            }
        }
        fs::File::open(dir)?.sync_all()
    }
    if walk(root).is_ok() {
        return Ok(());
    }
    let dir = fs::File::open(root).map_err(StoreError::io("open", root))?;
    rustix::fs::syncfs(&dir).map_err(|e| StoreError::io("sync", root)(e.into()))
}

/// Removes a merged entry and forgets the directories made below it.
fn remove(p: &Path, dirs: &mut Vec<DirFix>) -> Result<(), StoreError> {
    dirs.retain(|(d, _)| !d.starts_with(p));
    remove_tree(p).map_err(StoreError::io("remove", p))
}

/// Applies layer `u` onto the merged layer `m` in place (the run cache).
pub(crate) fn apply_onto(u: &Path, m: &Path) -> Result<(), StoreError> {
    let mut dirs = Vec::new();
    apply(u, m, &mut dirs)?;
    finish(dirs)
}

/// Applies layer directory `u` onto merged directory `m`.
fn apply(u: &Path, m: &Path, dirs: &mut Vec<DirFix>) -> Result<(), StoreError> {
    // Entries go into `m`: it must be writable until `finish` sets its mode
    // (its own, unless a directory of `u` gives it another).
    let md = fs::symlink_metadata(m).map_err(StoreError::io("stat", m))?;
    if md.mode() & 0o700 != 0o700 {
        fs::set_permissions(m, fs::Permissions::from_mode(0o700))
            .map_err(StoreError::io("chmod", m))?;
        dirs.push((m.to_owned(), AttrFrom::Mode(md.mode() & 0o7777)));
    }
    for n in read_names(u)? {
        let (ue, me) = (u.join(&n), m.join(&n));
        let Some((ku, _)) = EntryKind::of(&ue) else {
            continue;
        };
        let km = EntryKind::of(&me).map(|(k, _)| k);
        match ku {
            EntryKind::OpaqueDir => {
                if km.is_some() {
                    remove(&me, dirs)?;
                }
                copy_tree(&ue, &me, dirs)?;
            }
            EntryKind::Dir => match km {
                Some(k) if k.is_dir() => {
                    apply(&ue, &me, dirs)?;
                    // The upper directory's attributes win; an opaque mark
                    // from below stays.
                    let opaque = k == EntryKind::OpaqueDir;
                    copy_xattrs(&ue, &me)?;
                    if opaque {
                        set_opaque(&me)?;
                    }
                    dirs.push((me, AttrFrom::Dir(ue)));
                }
                Some(_) => {
                    // A directory over a non-directory hides everything below.
                    remove(&me, dirs)?;
                    copy_tree(&ue, &me, dirs)?;
                    set_opaque(&me)?;
                }
                None => copy_tree(&ue, &me, dirs)?,
            },
            _ => {
                if km.is_some() {
                    remove(&me, dirs)?;
                }
                fs::hard_link(&ue, &me).map_err(StoreError::io("link", &ue))?;
            }
        }
    }
    Ok(())
}

fn set_opaque(d: &Path) -> Result<(), StoreError> {
    xattr::set(d, "user.overlay.opaque", b"y").map_err(StoreError::io("set opaque on", d))
}

fn copy_xattrs(src: &Path, dst: &Path) -> Result<(), StoreError> {
    if let Ok(old) = xattr::list(dst) {
        for n in old {
            let _ = xattr::remove(dst, &n);
        }
    }
    if let Ok(names) = xattr::list(src) {
        for n in names {
            if let Ok(Some(v)) = xattr::get(src, &n) {
                xattr::set(dst, &n, &v).map_err(StoreError::io("copy xattrs to", dst))?;
            }
        }
    }
    Ok(())
}

fn finish_dir(src: &Path, dst: &Path) -> Result<(), StoreError> {
    let md = fs::symlink_metadata(src).map_err(StoreError::io("stat", src))?;
    let cur = fs::symlink_metadata(dst).map_err(StoreError::io("stat", dst))?;
    if (cur.uid(), cur.gid()) != (md.uid(), md.gid()) {
        std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()))
            .map_err(StoreError::io("chown", dst))?;
    }
    let f = fs::File::open(dst).map_err(StoreError::io("open", dst))?;
    let times =
        fs::FileTimes::new().set_modified(md.modified().map_err(StoreError::io("stat", src))?);
    f.set_times(times)
        .map_err(StoreError::io("set times of", dst))?;
    // The source's own mode, not the one it has while opened for reading.
    let mode = crate::layer::original_mode(src).unwrap_or(md.mode() & 0o7777);
    fs::set_permissions(dst, fs::Permissions::from_mode(mode)).map_err(StoreError::io("chmod", dst))
}
