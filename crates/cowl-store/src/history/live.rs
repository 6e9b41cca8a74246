//! What the live layer holds over the newest version: its changes and
//! totals, whether it holds anything at all, the pruning of the empty
//! directories cowl made for mount points, and the note of the files whose
//! privilege bits cowl stripped from it.

use super::versions::Layout;
use crate::boxdir::write_atomic;
use crate::diff::{diff_stacks, layer_paths, ChangeKind, DiffRules};
use crate::manifest::Totals;
use crate::stack::Stack;
use crate::{BoxDir, StoreError};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What the live layer changed over the newest version: `(changes, totals)`.
pub fn live_changes(
    b: &BoxDir,
    version_layers: &[PathBuf],
    layout: &Layout,
) -> (Vec<crate::diff::Change>, Totals) {
    let below = Stack::new(
        version_layers.to_vec(),
        Some(Path::new("/")),
        layout.private,
    );
    let mut above_layers = version_layers.to_vec();
    above_layers.insert(0, b.upper());
    let above = Stack::new(above_layers, Some(Path::new("/")), layout.private);
    let mut cands = BTreeSet::new();
    layer_paths(&b.upper(), &mut cands);
    let changes = diff_stacks(
        &below,
        &above,
        cands,
        &DiffRules {
            structural: layout.structural,
        },
    );
    let totals = totals_of(&changes);
    (changes, totals)
}

fn totals_of(changes: &[crate::diff::Change]) -> Totals {
    let mut t = Totals::default();
    for c in changes {
        match c.change {
            ChangeKind::Added => t.added += 1,
            ChangeKind::Deleted => t.deleted += 1,
            _ => t.modified += 1,
        }
    }
    t
}

/// Whether a live layer holds anything but the empty directories cowl made
/// for mount points.
pub(super) fn has_content(dir: &Path, at: &Path, structural: &dyn Fn(&Path) -> bool) -> bool {
    let Ok(rd) = fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let p = at.join(e.file_name());
        match crate::layer::EntryKind::of(&e.path()) {
            Some((crate::layer::EntryKind::Dir, _)) if structural(&p) => {
                has_content(&e.path(), &p, structural)
            }
            Some(_) => true,
            None => false,
        }
    })
}

/// Removes the empty upper directories cowl made for mount points (and the
/// directories above them): they mean nothing, and left in a version they
/// would give every overlay of every later run one more lower layer.
pub(super) fn prune_structural(
    dir: &Path,
    at: &Path,
    structural: &dyn Fn(&Path) -> bool,
) -> Result<bool, StoreError> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(false);
    };
    let mut empty = true;
    for e in rd.flatten() {
        let p = at.join(e.file_name());
        let keep = match crate::layer::EntryKind::of(&e.path()) {
            Some((crate::layer::EntryKind::Dir, _)) if structural(&p) => {
                !prune_structural(&e.path(), &p, structural)? || {
                    // Empty: gone, unless it cannot be removed.
                    !remove_empty_dir(dir, &e.path())
                }
            }
            _ => true,
        };
        empty &= !keep;
    }
    Ok(empty)
}

/// Removes the empty directory `child` of `parent`. The parent is a
/// directory cowl made for a mount point with the mode of the host's (0555
/// for `/` on some systems, 000 for a directory the caller cannot enter):
/// made writable for the removal, then given its mode back.
fn remove_empty_dir(parent: &Path, child: &Path) -> bool {
    if fs::remove_dir(child).is_ok() {
        return true;
    }
    let Ok(md) = fs::symlink_metadata(parent) else {
        return false;
    };
    let mode = md.mode() & 0o7777;
    if mode & 0o300 == 0o300
        || fs::set_permissions(parent, fs::Permissions::from_mode(mode | 0o300)).is_err()
    {
        return false;
    }
    let removed = fs::remove_dir(child).is_ok();
    let _ = fs::set_permissions(parent, fs::Permissions::from_mode(mode));
    removed
}

/// Files whose privilege bits cowl stripped from the live layer since the
/// last snapshot (relative to `/`).
pub(super) fn read_stripped(b: &BoxDir) -> Vec<String> {
    fs::read(b.path().join("stripped.json"))
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_default()
}

/// Notes files whose privilege bits cowl stripped from the live layer, for
/// the next version's manifest (and so for `cowl scan`).
pub fn note_stripped(b: &BoxDir, paths: &[String]) -> Result<(), StoreError> {
    let mut all = read_stripped(b);
    all.extend(paths.iter().cloned());
    all.sort();
    all.dedup();
    write_atomic(
        &b.path().join("stripped.json"),
        &serde_json::to_vec(&all).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::testing::{layout, names, versions_of, write_live, Scratch};
    use super::{has_content, live_changes, note_stripped, prune_structural, read_stripped};
    use std::path::Path;

    /// `/m` and `/m/n` are a mount point and the directory above it.
    fn mounts(p: &Path) -> bool {
        p == Path::new("/m") || p == Path::new("/m/n")
    }

    #[test]
    fn the_directories_made_for_mount_points_are_no_content_and_are_pruned() {
        let s = Scratch::new("structural");
        let upper = s.b.upper();
        std::fs::create_dir_all(upper.join("m/n")).unwrap();
        assert!(!has_content(&upper, Path::new("/"), &mounts));
        assert!(has_content(&upper, Path::new("/"), &|_| false));
        // A file below a mount point's directory is content; the empty
        // mount point beside it is not kept.
        std::fs::create_dir_all(upper.join("m/o")).unwrap();
        assert!(has_content(&upper, Path::new("/"), &mounts));
        std::fs::remove_dir(upper.join("m/o")).unwrap();
        std::fs::create_dir_all(upper.join("k")).unwrap();
        assert!(!prune_structural(&upper, Path::new("/"), &mounts).unwrap());
        assert_eq!(names(&upper), ["k"]);
        std::fs::remove_dir(upper.join("k")).unwrap();
        std::fs::create_dir_all(upper.join("m/n")).unwrap();
        assert!(prune_structural(&upper, Path::new("/"), &mounts).unwrap());
        assert!(names(&upper).is_empty());
    }

    #[test]
    fn live_changes_count_what_the_live_layer_adds_and_modifies() {
        let s = Scratch::new("livechanges");
        versions_of(&s.b, &["old"]);
        write_live(&s.b, "cowl-history-test/f0", "changed");
        write_live(&s.b, "cowl-history-test/new", "new");
        let layers = s.b.version_layers().unwrap();
        let (changes, totals) = live_changes(&s.b, &layers, &layout());
        let paths: Vec<String> = changes
            .iter()
            .map(|c| c.path.to_string_lossy().into_owned())
            .collect();
        assert!(
            paths.iter().any(|p| p.ends_with("cowl-history-test/f0"))
                && paths.iter().any(|p| p.ends_with("cowl-history-test/new")),
            "{paths:?}"
        );
        assert_eq!((totals.added, totals.modified, totals.deleted), (1, 1, 0));
    }

    #[test]
    fn stripped_files_are_noted_once_each_and_sorted() {
        let s = Scratch::new("stripped");
        assert!(read_stripped(&s.b).is_empty());
        note_stripped(&s.b, &["usr/bin/b".into(), "usr/bin/a".into()]).unwrap();
        note_stripped(&s.b, &["usr/bin/a".into(), "usr/bin/c".into()]).unwrap();
        assert_eq!(read_stripped(&s.b), ["usr/bin/a", "usr/bin/b", "usr/bin/c"]);
    }
}
