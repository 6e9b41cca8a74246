//! Recovery: finishing or undoing whatever store operation a crash
//! interrupted (a snapshot, a commit, a rollback, a gc, a pull's or a
//! squash's stage), from what each left in `pending/` and `quarantine/`;
//! and the roll-forward of a ready squash, which the squash itself runs too
//! (here so that history never calls into `squash`).

use super::commit::recover_commit_intent;
use super::fsops::rename;
use super::rollback_moves::finish_rollback;
use crate::boxdir::{remove_tree, sync_dir, write_atomic};
use crate::fault::point;
use crate::manifest::Manifest;
use crate::{BoxDir, Opened, StoreError};
use std::fs;
use std::path::Path;

impl Opened {
    /// The recovery step: a store operation a crash interrupted (a
    /// snapshot, commit, rollback, squash, gc or pull) is finished or
    /// undone under the exclusive operations lock, then the versions are
    /// checked. This writes to the box only when something was interrupted.
    pub fn recover(self) -> Result<BoxDir, StoreError> {
        let b = self.b;
        if self.interrupted {
            {
                let _ops = b.ops_lock(true)?;
                recover(&b)?;
            }
            b.check_versions()?;
        }
        Ok(b)
    }

    /// Whether a crash interrupted a store operation on the box.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }
}

/// Finishes or undoes what a crash interrupted. Call under the exclusive
/// operations lock.
pub fn recover(b: &BoxDir) -> Result<(), StoreError> {
    let pending = b.pending_dir();
    crate::layer::restore_recorded(&pending);
    if let Ok(rd) = fs::read_dir(&pending) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            if let Some(n) = name.strip_prefix("snap-") {
                let target = b.versions_dir().join(n);
                if p.join("layer").exists() && p.join("manifest.json").exists() && !target.exists()
                {
                    // The live layer was moved in: the version is complete.
                    rename(&p, &target)?;
                    sync_dir(&b.versions_dir());
                } else {
                    // The live layer never left: nothing happened.
                    remove_tree(&p).map_err(StoreError::io("remove", &p))?;
                }
            } else if name == "commit-intent.json" {
                recover_commit_intent(&p)?;
            } else if let Some(n) = name.strip_prefix("commit-old-") {
                // A commit was replacing version n: finish or undo it.
                let target = b.versions_dir().join(n);
                let new = pending.join(format!("commit-{n}"));
                if !target.exists() {
                    let from = if new.join("digest").exists() {
                        &new
                    } else {
                        &p
                    };
                    rename(from, &target)?;
                    sync_dir(&b.versions_dir());
                }
                remove_tree(&p).map_err(StoreError::io("remove", &p))?;
                remove_tree(&new).map_err(StoreError::io("remove", &new))?;
            } else if let Some(n) = name.strip_prefix("commit-") {
                // Never renamed into place (else it would not be here), and
                // no older version waits for it: drop it.
                if !pending.join(format!("commit-old-{n}")).exists() {
                    remove_tree(&p).map_err(StoreError::io("remove", &p))?;
                }
            } else if name.starts_with("gc-") || name.starts_with("pull-") {
                // A pull's stage is complete only once renamed into versions/.
                remove_tree(&p).map_err(StoreError::io("remove", &p))?;
            } else if name.starts_with("squash-") {
                recover_squash(b, &p)?;
            }
        }
    }
    if let Ok(rd) = fs::read_dir(b.quarantine_dir()) {
        for e in rd.flatten() {
            let qd = e.path();
            if qd.join(".incomplete").exists() {
                let info: serde_json::Value = fs::read(qd.join("rollback.json"))
                    .ok()
                    .and_then(|t| serde_json::from_slice(&t).ok())
                    .unwrap_or_default();
                match info["target"].as_u64() {
                    Some(t) => finish_rollback(b, &qd, t)?,
                    // The marker exists but the plan does not: nothing moved yet.
                    None => remove_tree(&qd).map_err(StoreError::io("remove", &qd))?,
                }
            }
        }
    }
    Ok(())
}

/// Puts a ready squash (`pending/squash-<first>-<last>/`, made by
/// `crate::squash`) in place: the old versions to its `old/`, the merged one
/// to `versions/<last>`, the later versions' rewritten manifests over theirs.
/// Every step can be repeated after a crash, so squash itself and recovery
/// both finish a squash with it.
pub(crate) fn roll_forward_squash(
    b: &BoxDir,
    stage: &Path,
    first: u64,
    last: u64,
) -> Result<(), StoreError> {
    let vdir = b.path().join("versions");
    let old = stage.join("old");
    let _ = fs::create_dir(&old);
    let new = stage.join("new");
    for n in first..=last {
        let (src, dst) = (vdir.join(n.to_string()), old.join(n.to_string()));
        if new.exists() && src.exists() && !dst.exists() {
            fs::rename(&src, &dst).map_err(StoreError::io("rename", &src))?;
            sync_dir(&vdir);
            point("squash:moved-old");
        }
    }
    if new.exists() {
        let target = vdir.join(last.to_string());
        fs::rename(&new, &target).map_err(StoreError::io("rename", &new))?;
        sync_dir(&vdir);
        point("squash:new-in-place");
    }
    if let Ok(rd) = fs::read_dir(stage.join("manifests")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(n) = name.strip_suffix(".json") else {
                continue;
            };
            let target = vdir.join(n).join("manifest.json");
            let text = fs::read(e.path()).map_err(StoreError::io("read", e.path()))?;
            write_atomic(&target, &text)?;
            if let Ok(m) = serde_json::from_slice::<Manifest>(&text) {
                write_atomic(&vdir.join(n).join("digest"), m.digest.as_bytes())?;
            }
            fs::remove_file(e.path()).map_err(StoreError::io("remove", e.path()))?;
            point("squash:manifest-rewritten");
        }
    }
    remove_tree(stage).map_err(StoreError::io("remove", stage))
}

/// Recovery of an interrupted squash: roll forward once it was ready,
/// otherwise drop it (the old versions were never touched).
fn recover_squash(b: &BoxDir, stage: &Path) -> Result<(), StoreError> {
    let ready: Option<serde_json::Value> = fs::read(stage.join("ready"))
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok());
    match ready.and_then(|r| Some((r["first"].as_u64()?, r["last"].as_u64()?))) {
        Some((first, last)) => roll_forward_squash(b, stage, first, last),
        None => remove_tree(stage).map_err(StoreError::io("remove", stage)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::testing::{
        crash_at, layout, names, numbers, snap, versions_of, write_live, Scratch,
    };
    use super::super::{gc, quarantine, record_commit, rollback, verify};
    use super::recover;
    use crate::squash::{squash, Eligible};
    use crate::BoxDir;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn recover_now(b: &BoxDir) {
        let _ops = b.ops_lock(true).unwrap();
        recover(b).unwrap();
    }

    /// Recovery leaves no stage behind and a box that verifies.
    fn assert_whole(b: &BoxDir) {
        assert!(names(&b.pending_dir()).is_empty(), "pending left");
        assert!(verify(b).unwrap().is_none());
    }

    #[test]
    fn a_snapshot_killed_before_its_layer_moved_never_happened() {
        let s = Scratch::new("rec-snap-early");
        let b = &s.b;
        write_live(b, "cowl-history-test/a", "x");
        crash_at("snapshot:manifest-written", || snap(b, "one"));
        assert_eq!(names(&b.pending_dir()), ["snap-1"]);
        recover_now(b);
        assert_whole(b);
        assert!(numbers(b).is_empty());
        assert!(b.upper().join("cowl-history-test/a").exists());
        // And the snapshot can be made again.
        assert_eq!(snap(b, "one"), Some(1));
    }

    #[test]
    fn a_snapshot_killed_after_its_layer_moved_is_finished() {
        let s = Scratch::new("rec-snap-late");
        let b = &s.b;
        versions_of(b, &["one"]);
        write_live(b, "cowl-history-test/a", "x");
        crash_at("snapshot:layer-moved", || snap(b, "two"));
        assert_eq!(numbers(b), [1]);
        recover_now(b);
        assert_whole(b);
        assert_eq!(numbers(b), [1, 2]);
        assert!(b
            .path()
            .join("versions/2/layer/cowl-history-test/a")
            .exists());
    }

    /// Opening a box writes nothing; its recovery step, which every
    /// command that uses a box names, finishes what a crash left.
    #[test]
    fn opening_a_box_writes_nothing_and_its_recovery_step_finishes_it() {
        let s = Scratch::new("rec-open");
        write_live(&s.b, "cowl-history-test/a", "x");
        crash_at("snapshot:layer-moved", || snap(&s.b, "one"));
        let left = names(&s.b.pending_dir());
        assert!(!left.is_empty());
        let opened = s.store.open_box(s.b.name()).unwrap();
        assert!(opened.interrupted());
        assert_eq!(names(&s.b.pending_dir()), left, "opening wrote");
        let b = opened.recover().unwrap();
        assert_eq!(numbers(&b), [1]);
        assert_whole(&b);
        let again = s.store.open_box(s.b.name()).unwrap();
        assert!(!again.interrupted());
    }

    #[test]
    fn a_rollback_killed_midway_is_finished() {
        let s = Scratch::new("rec-rollback");
        let b = &s.b;
        versions_of(b, &["one", "two", "three"]);
        write_live(b, "cowl-history-test/live", "x");
        crash_at("rollback:moved-version", || rollback(b, 1));
        // Version 3 moved, version 2 not yet: still a prefix of the history.
        assert_eq!(numbers(b), [1, 2]);
        recover_now(b);
        assert_whole(b);
        assert_eq!(numbers(b), [1]);
        assert!(!b.upper().exists());
        let q = quarantine(b).unwrap();
        assert_eq!(q.len(), 1);
        let held: Vec<u64> = q[0].versions.iter().map(|v| v.number).collect();
        assert_eq!((held, q[0].live, q[0].target), (vec![2, 3], true, 1));
        let qd = b.quarantine_dir().join(&q[0].stamp);
        assert!(!qd.join(".incomplete").exists());
    }

    /// A rollback's entry with its marker but no plan moved nothing: it is
    /// dropped.
    #[test]
    fn a_rollback_entry_without_its_plan_is_dropped() {
        let s = Scratch::new("rec-rollback-noplan");
        let b = &s.b;
        versions_of(b, &["one"]);
        let qd = b.quarantine_dir().join("5-5");
        std::fs::create_dir_all(qd.join("versions")).unwrap();
        std::fs::write(qd.join(".incomplete"), "").unwrap();
        recover_now(b);
        assert!(names(&b.quarantine_dir()).is_empty());
        assert_eq!(numbers(b), [1]);
    }

    #[test]
    fn a_gc_killed_after_moving_an_entry_out_of_sight_is_finished() {
        let s = Scratch::new("rec-gc");
        let b = &s.b;
        versions_of(b, &["one", "two"]);
        rollback(b, 1).unwrap();
        crash_at("gc:moved", || gc(b, 0));
        assert!(quarantine(b).unwrap().is_empty());
        assert_eq!(names(&b.pending_dir()).len(), 1);
        recover_now(b);
        assert_whole(b);
        assert_eq!(numbers(b), [1]);
    }

    /// A commit joining the previous commit's version, killed once the old
    /// version was moved aside: its new version is put in place.
    #[test]
    fn a_commit_killed_while_replacing_its_version_is_finished() {
        let s = Scratch::new("rec-commit");
        let b = &s.b;
        let cut = |p: &str| BTreeSet::from([PathBuf::from(p)]);
        {
            let _ops = b.ops_lock(true).unwrap();
            assert_eq!(record_commit(b, &cut("etc/a"), 1).unwrap(), 1);
            crash_at("commit:old-moved", || record_commit(b, &cut("etc/b"), 1));
        }
        assert!(numbers(b).is_empty());
        recover_now(b);
        assert_whole(b);
        let v = b.versions().unwrap();
        assert_eq!(numbers(b), [1]);
        assert_eq!(v[0].manifest.body.committed, ["etc/a", "etc/b"]);
    }

    #[test]
    fn a_squash_killed_before_it_was_ready_is_dropped() {
        let s = Scratch::new("rec-squash-early");
        let b = &s.b;
        versions_of(b, &["one", "two", "three"]);
        let digests: Vec<String> = b
            .versions()
            .unwrap()
            .into_iter()
            .map(|v| v.manifest.digest)
            .collect();
        crash_at("squash:merged", || {
            squash(b, 1, Eligible::Unpinned, &layout())
        });
        recover_now(b);
        assert_whole(b);
        let after: Vec<String> = b
            .versions()
            .unwrap()
            .into_iter()
            .map(|v| v.manifest.digest)
            .collect();
        assert_eq!(after, digests);
    }

    /// A squash killed once ready (or midway through putting itself in
    /// place) is rolled forward: the same box as an uninterrupted squash.
    #[test]
    fn a_squash_killed_once_ready_is_rolled_forward() {
        for at in ["squash:ready", "squash:moved-old", "squash:new-in-place"] {
            let s = Scratch::new("rec-squash");
            let b = &s.b;
            versions_of(b, &["one", "two", "three"]);
            crash_at(at, || squash(b, 1, Eligible::Unpinned, &layout()));
            recover_now(b);
            assert_whole(b);
            assert_eq!(numbers(b), [2, 3], "{at}");
            let layer = b.path().join("versions/2/layer/cowl-history-test");
            assert_eq!(names(&layer), ["f0", "f1"], "{at}");
        }
    }

    /// The squash itself puts its stage in place the same way.
    #[test]
    fn an_uninterrupted_squash_merges_the_old_versions() {
        let s = Scratch::new("squash");
        let b = &s.b;
        versions_of(b, &["one", "two", "three"]);
        assert_eq!(
            squash(b, 1, Eligible::Unpinned, &layout()).unwrap(),
            [(1, 2)]
        );
        assert_whole(b);
        assert_eq!(numbers(b), [2, 3]);
    }

    #[test]
    fn leftover_gc_and_pull_stages_are_removed() {
        let s = Scratch::new("rec-stages");
        let b = &s.b;
        versions_of(b, &["one"]);
        for d in ["gc-1-1/versions", "pull-9/layer", "commit-4/layer"] {
            std::fs::create_dir_all(b.pending_dir().join(d)).unwrap();
        }
        recover_now(b);
        assert_whole(b);
        assert_eq!(numbers(b), [1]);
    }
}
