//! Garbage collection: deleting quarantine entries past an age.

use super::fsops::{mkdir, rename};
use super::quarantine::quarantine;
use super::recovery::recover;
use crate::boxdir::{remove_tree, sync_dir};
use crate::fault::point;
use crate::{BoxDir, StoreError};

/// Deletes quarantine entries older than `max_age_secs`. Each is renamed
/// out of sight first, so a crash never leaves half an entry in quarantine.
pub fn gc(b: &BoxDir, max_age_secs: u64) -> Result<usize, StoreError> {
    let _ops = b.ops_lock(true)?;
    recover(b)?;
    let now = crate::time::now();
    let mut n = 0;
    for q in quarantine(b)? {
        if now.saturating_sub(q.time) < max_age_secs {
            continue;
        }
        mkdir(&b.pending_dir())?;
        let doomed = b.pending_dir().join(format!("gc-{}", q.stamp));
        rename(&b.quarantine_dir().join(&q.stamp), &doomed)?;
        sync_dir(&b.quarantine_dir());
        point("gc:moved");
        remove_tree(&doomed).map_err(StoreError::io("remove", &doomed))?;
        point("gc:removed");
        n += 1;
    }
    if n > 0 {
        b.note("gc", serde_json::json!({"purged": n}))?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::testing::{names, numbers, versions_of, write_live, Scratch};
    use super::super::{quarantine, rollback, verify};
    use super::gc;

    /// Makes the quarantine entry at `qd` look `age` seconds old, under a
    /// stamp of that time (so that a rollback in the same second does not
    /// reuse its directory).
    fn age(s: &Scratch, qd: &std::path::Path, age: u64) -> String {
        let time = crate::time::now() - age;
        let plan = serde_json::json!({"target": 0, "from": 0, "time": time});
        std::fs::write(qd.join("rollback.json"), plan.to_string()).unwrap();
        let stamp = format!("{time}-0");
        std::fs::rename(qd, s.b.quarantine_dir().join(&stamp)).unwrap();
        stamp
    }

    /// gc deletes only the quarantine entries past the age: never a newer
    /// entry, a version or the live layer.
    #[test]
    fn gc_removes_only_quarantine_entries_past_the_age() {
        let s = Scratch::new("gc");
        let b = &s.b;
        versions_of(b, &["one", "two", "three"]);
        let old = rollback(b, 2).unwrap();
        let old = age(&s, &old, 10_000);
        let recent = rollback(b, 1).unwrap();
        write_live(b, "cowl-history-test/live", "x");
        assert_eq!(quarantine(b).unwrap().len(), 2);

        assert_eq!(gc(b, 100_000).unwrap(), 0);
        assert_eq!(quarantine(b).unwrap().len(), 2);
        assert_eq!(gc(b, 3_600).unwrap(), 1);
        let left: Vec<String> = quarantine(b)
            .unwrap()
            .into_iter()
            .map(|q| q.stamp)
            .collect();
        assert_eq!(
            left,
            [recent.file_name().unwrap().to_string_lossy().into_owned()]
        );
        assert!(!names(&b.quarantine_dir()).contains(&old));
        assert!(names(&b.pending_dir()).is_empty());
        assert_eq!(numbers(b), [1]);
        assert!(b.upper().join("cowl-history-test/live").exists());
        assert!(verify(b).unwrap().is_none());
        let journal = std::fs::read_to_string(b.path().join("journal.jsonl")).unwrap();
        assert!(journal.lines().last().unwrap().contains(r#""purged":1"#));
        // Nothing to purge: nothing journaled.
        let lines = journal.lines().count();
        assert_eq!(gc(b, 3_600).unwrap(), 0);
        let journal = std::fs::read_to_string(b.path().join("journal.jsonl")).unwrap();
        assert_eq!(journal.lines().count(), lines);
    }
}
