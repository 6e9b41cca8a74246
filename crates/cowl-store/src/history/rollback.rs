//! Rollback: moving the versions above a target, and the live layer, to
//! `quarantine/<stamp>/`, by rename.

use super::fsops::mkdir;
use super::lock::OpsLock;
use super::recovery::recover;
use super::rollback_moves::finish_rollback;
use super::versions::version_numbers;
use crate::boxdir::{sync_dir, write_atomic};
use crate::fault::point;
use crate::{BoxDir, StoreError};
use std::path::PathBuf;

/// Moves the versions above `target` and the live layer to
/// `quarantine/<stamp>/`. Renames only: the cost does not grow with the
/// box's size. The box must not be running.
pub fn rollback(b: &BoxDir, target: u64) -> Result<PathBuf, StoreError> {
    let ops = b.ops_lock(true)?;
    recover(b)?;
    rollback_held(b, target, &ops)
}

/// `rollback` for a caller that already holds the exclusive operations lock
/// (and keeps it across what it does before and after, as a pull that
/// replaces history does: its verified stages wait in `pending/`, which
/// recovery would clear, so none runs here).
pub fn rollback_held(b: &BoxDir, target: u64, _held: &OpsLock) -> Result<PathBuf, StoreError> {
    // Numbers only: reading every manifest would cost what the box holds.
    let top = version_numbers(b)?.last().map_or(0, |v| v.0);
    if target > top {
        return Err(StoreError::NoSuchVersion {
            name: b.name().to_string(),
            version: target,
            newest: top,
        });
    }
    let q = b.quarantine_dir();
    mkdir(&q)?;
    let stamp = format!("{}-{}", crate::time::now(), std::process::id());
    let qd = q.join(&stamp);
    mkdir(&qd)?;
    mkdir(&qd.join("versions"))?;
    let info = serde_json::json!({"target": target, "from": top, "time": crate::time::now()});
    write_atomic(&qd.join("rollback.json"), info.to_string().as_bytes())?;
    write_atomic(&qd.join(".incomplete"), b"")?;
    sync_dir(&q);
    point("rollback:started");
    finish_rollback(b, &qd, target)?;
    b.note(
        "rollback",
        serde_json::json!({"to": target, "from": top, "quarantine": stamp}),
    )?;
    Ok(qd)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::testing::{names, numbers, snap, versions_of, write_live, Scratch};
    use super::super::{note_stripped, quarantine, verify};
    use super::rollback;
    use crate::StoreError;

    /// A snapshot, then a rollback to it: the box shows the earlier state
    /// again, and what came after waits in quarantine.
    #[test]
    fn a_rollback_restores_the_state_of_an_earlier_snapshot() {
        let s = Scratch::new("rollback");
        let b = &s.b;
        write_live(b, "cowl-history-test/a", "first");
        assert_eq!(snap(b, "one"), Some(1));
        write_live(b, "cowl-history-test/a", "second");
        write_live(b, "cowl-history-test/b", "added");
        assert_eq!(snap(b, "two"), Some(2));
        write_live(b, "cowl-history-test/c", "live");
        note_stripped(b, &["usr/bin/x".into()]).unwrap();

        let qd = rollback(b, 1).unwrap();
        assert_eq!(numbers(b), [1]);
        assert!(!b.upper().exists());
        assert!(!b.path().join("stripped.json").exists());
        // What the box shows now: version 1's layer alone.
        let versions = b.versions().unwrap();
        let stack = b.stack_layers(&versions, 1);
        assert_eq!(stack.len(), 1);
        assert_eq!(names(&stack[0].join("cowl-history-test")), ["a"]);
        assert_eq!(
            std::fs::read_to_string(stack[0].join("cowl-history-test/a")).unwrap(),
            "first"
        );
        assert!(verify(b).unwrap().is_none());

        // What was cut off: version 2 and the live layer, whole.
        assert!(!qd.join(".incomplete").exists());
        assert_eq!(
            std::fs::read_to_string(qd.join("live/upper/cowl-history-test/c")).unwrap(),
            "live"
        );
        assert!(qd.join("live/stripped.json").exists());
        let q = quarantine(b).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].target, 1);
        assert!(q[0].live);
        assert_eq!(q[0].versions.len(), 1);
        assert_eq!(q[0].versions[0].number, 2);
        assert_eq!(
            q[0].stamp,
            qd.file_name().unwrap().to_string_lossy().into_owned()
        );
    }

    #[test]
    fn a_rollback_to_zero_cuts_off_every_version_and_past_the_newest_is_refused() {
        let s = Scratch::new("rollback-zero");
        let b = &s.b;
        versions_of(b, &["one", "two"]);
        match rollback(b, 3) {
            Err(StoreError::NoSuchVersion {
                version, newest, ..
            }) => assert_eq!((version, newest), (3, 2)),
            other => panic!("{other:?}"),
        }
        assert_eq!(numbers(b), [1, 2]);
        let qd = rollback(b, 0).unwrap();
        assert!(numbers(b).is_empty());
        assert_eq!(names(&qd.join("versions")), ["1", "2"]);
        // No live layer was there: none is quarantined.
        assert!(!qd.join("live").exists());
        assert!(!quarantine(b).unwrap()[0].live);
    }
}
