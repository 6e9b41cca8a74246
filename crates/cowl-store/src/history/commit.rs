//! A commit's side of the history: the version that records what a commit
//! applied to the host (its cut), and the note of intent that lets recovery
//! remove what a commit that died left on the host.

use super::fsops::{mkdir, rename};
use crate::boxdir::{remove_tree, sync_dir, write_atomic};
use crate::fault::point;
use crate::manifest::{Made, ManifestBody, Totals};
use crate::{BoxDir, StoreError};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Records a commit as a version: an empty layer whose cut (`cut`) names
/// the paths that leave the box. Consecutive commits with no version
/// between them share one version (so that a thousand commits do not make a
/// thousand versions). Returns the version's number. The caller holds the
/// exclusive operations lock and has run `recover`.
pub fn record_commit(
    b: &BoxDir,
    cut: &BTreeSet<PathBuf>,
    applied: usize,
) -> Result<u64, StoreError> {
    let versions = b.versions()?;
    let top = versions.last();
    let into = top.filter(|v| v.manifest.body.made == Made::Commit);
    let mut all = cut.clone();
    let mut count = applied as u64;
    if let Some(t) = into {
        all.extend(t.manifest.body.committed.iter().map(PathBuf::from));
        count += t.manifest.body.totals.modified;
    }
    let number = match (into, top) {
        (Some(t), _) => t.number,
        (None, Some(t)) => t.number + 1,
        (None, None) => 1,
    };
    let parent = match (into, top) {
        (Some(t), _) => t.manifest.body.parent.clone(),
        (None, t) => t.map(|t| t.manifest.digest.clone()),
    };
    let committed: Vec<String> = all
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let body = ManifestBody {
        format: 1,
        version: number,
        parent,
        created: crate::time::now(),
        message: format!("commit: {count} change(s) applied to the host"),
        made: Made::Commit,
        totals: Totals {
            modified: count,
            ..Totals::default()
        },
        entries: Vec::new(),
        stripped: Vec::new(),
        committed: committed.clone(),
    };
    let manifest = body.seal();
    let pending = b.pending_dir();
    mkdir(&pending)?;
    let stage = pending.join(format!("commit-{number}"));
    remove_tree(&stage).map_err(StoreError::io("clear", &stage))?;
    mkdir(&stage)?;
    mkdir(&stage.join("layer"))?;
    write_atomic(
        &stage.join(crate::cut::FILE),
        &serde_json::to_vec(&committed).unwrap_or_default(),
    )?;
    write_atomic(
        &stage.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    )?;
    write_atomic(&stage.join("digest"), manifest.digest.as_bytes())?;
    sync_dir(&stage);
    write_atomic(&b.path().join(crate::cut::FLAG), b"")?;
    let target = b.versions_dir().join(number.to_string());
    if into.is_some() {
        let old = pending.join(format!("commit-old-{number}"));
        remove_tree(&old).map_err(StoreError::io("clear", &old))?;
        rename(&target, &old)?;
        sync_dir(&pending);
        point("commit:old-moved");
        rename(&stage, &target)?;
        sync_dir(&b.versions_dir());
        remove_tree(&old).map_err(StoreError::io("remove", &old))?;
    } else {
        rename(&stage, &target)?;
        sync_dir(&b.versions_dir());
    }
    sync_dir(&pending);
    b.note("commit",
        serde_json::json!({"version": number, "digest": manifest.digest, "applied": applied, "cut": cut.len()}),
    )?;
    Ok(number)
}

/// Notes, before a commit writes anything on the host, the prefix of its
/// temporary entries and the host directories they go into; `recover`
/// removes what a commit that died left there. Returns the note's path
/// (the commit removes it when done).
pub fn note_commit_intent(
    b: &BoxDir,
    prefix: &str,
    dirs: &[PathBuf],
) -> Result<PathBuf, StoreError> {
    let pending = b.pending_dir();
    mkdir(&pending)?;
    let p = pending.join("commit-intent.json");
    write_atomic(
        &p,
        &serde_json::to_vec(&serde_json::json!({"prefix": prefix, "dirs": dirs}))
            .unwrap_or_default(),
    )?;
    Ok(p)
}

/// Removes the temporary entries a commit that died left on the host.
pub(super) fn recover_commit_intent(p: &Path) -> Result<(), StoreError> {
    let note: serde_json::Value = fs::read(p)
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_default();
    let prefix = note["prefix"].as_str().unwrap_or_default();
    // Only cowl's own names: never anything else in those directories.
    if prefix.starts_with(".cowl-commit-") && prefix.len() > ".cowl-commit-".len() {
        for d in note["dirs"].as_array().into_iter().flatten() {
            let Some(d) = d.as_str() else { continue };
            let Ok(rd) = fs::read_dir(d) else { continue };
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix) {
                    let q = e.path();
                    let r = match fs::symlink_metadata(&q) {
                        Ok(m) if m.is_dir() => fs::remove_dir_all(&q),
                        Ok(_) => fs::remove_file(&q),
                        Err(_) => Ok(()),
                    };
                    r.map_err(StoreError::io("remove", &q))?;
                }
            }
        }
    }
    fs::remove_file(p).map_err(StoreError::io("remove", p))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::testing::{names, numbers, snap, versions_of, write_live, Scratch};
    use super::super::{recover, verify};
    use super::{note_commit_intent, record_commit};
    use crate::manifest::Made;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn cut(paths: &[&str]) -> BTreeSet<PathBuf> {
        paths.iter().map(PathBuf::from).collect()
    }

    /// Consecutive commits share one version, whose cut is every path they
    /// applied; a snapshot between them starts a new one.
    #[test]
    fn consecutive_commits_share_one_version() {
        let s = Scratch::new("commit");
        let b = &s.b;
        versions_of(b, &["one"]);
        let ops = b.ops_lock(true).unwrap();
        assert_eq!(record_commit(b, &cut(&["etc/a"]), 1).unwrap(), 2);
        assert_eq!(record_commit(b, &cut(&["etc/b", "etc/a"]), 2).unwrap(), 2);
        let v = b.versions().unwrap();
        assert_eq!(numbers(b), [1, 2]);
        let body = &v[1].manifest.body;
        assert_eq!(body.made, Made::Commit);
        assert_eq!(body.committed, ["etc/a", "etc/b"]);
        assert_eq!(body.totals.modified, 3);
        assert_eq!(body.parent.as_ref(), Some(&v[0].manifest.digest));
        assert_eq!(
            crate::cut::of_layer(&v[1].layer()),
            Some(cut(&["etc/a", "etc/b"]))
        );
        assert!(names(&v[1].layer()).is_empty());
        assert!(b.path().join(crate::cut::FLAG).exists());
        assert!(names(&b.pending_dir()).is_empty());
        drop(ops);
        assert!(verify(b).unwrap().is_none());
        write_live(b, "cowl-history-test/later", "x");
        assert_eq!(snap(b, "later"), Some(3));
        let _ops = b.ops_lock(true).unwrap();
        assert_eq!(record_commit(b, &cut(&["etc/c"]), 1).unwrap(), 4);
    }

    /// What a commit that died left on the host under its noted prefix is
    /// removed by recovery, and nothing else there.
    #[test]
    fn recovery_removes_what_a_dead_commit_left_on_the_host() {
        let s = Scratch::new("intent");
        let host = s.outside("host");
        let other = s.outside("other");
        for (d, n) in [
            (&host, ".cowl-commit-7-a"),
            (&host, "kept"),
            (&other, ".cowl-commit-7-b"),
            (&other, ".cowl-commit-8-c"),
        ] {
            std::fs::write(d.join(n), "x").unwrap();
        }
        std::fs::create_dir_all(host.join(".cowl-commit-7-d/e")).unwrap();
        let note =
            note_commit_intent(&s.b, ".cowl-commit-7-", &[host.clone(), other.clone()]).unwrap();
        assert!(note.exists());
        let _ops = s.b.ops_lock(true).unwrap();
        recover(&s.b).unwrap();
        assert!(!note.exists());
        assert_eq!(names(&host), ["kept"]);
        assert_eq!(names(&other), [".cowl-commit-8-c"]);
    }

    /// A note whose prefix is not cowl's own removes nothing but itself.
    #[test]
    fn a_note_with_a_foreign_prefix_removes_nothing() {
        let s = Scratch::new("intent-foreign");
        let host = s.outside("host");
        std::fs::write(host.join("data"), "x").unwrap();
        std::fs::write(host.join(".cowl-commit-x"), "x").unwrap();
        for prefix in ["d", "", ".cowl-commit-"] {
            let note = note_commit_intent(&s.b, prefix, std::slice::from_ref(&host)).unwrap();
            let _ops = s.b.ops_lock(true).unwrap();
            recover(&s.b).unwrap();
            assert!(!note.exists());
        }
        assert_eq!(names(&host), [".cowl-commit-x", "data"]);
    }
}
