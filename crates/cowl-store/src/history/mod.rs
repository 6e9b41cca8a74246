//! The version stack of a box: listing, snapshot (freezing the live layer),
//! rollback (later versions to quarantine), gc, verify, and recovery.
//!
//! Every operation is a sequence of fsynced renames with one commit point;
//! `recover` (run under the operations lock before any of them) finishes or
//! undoes whatever a crash interrupted, so `kill -9` at any step leaves a box
//! that opens, verifies, and has lost no version that was complete.
//!
//! This file only declares and re-exports. `versions` holds the shared types
//! ([`Version`], [`Layout`]), the box's history paths and the listing of its
//! versions. Each operation has a file of its own: `lock` (the operations
//! lock), `pin`, `live` (what the live
//! layer holds), `snapshot`, `commit` (a commit's version and its note of
//! intent), `pulled` (versions a mirror gives), `rollback` (its moves, which
//! recovery finishes too, in `rollback_moves`), `quarantine`
//! (listing it), `gc`, `recovery` (which
//! also puts a ready squash in place, for `crate::squash` and itself alike)
//! and `verify`; `fsops` holds the renames and directory making they share.

mod commit;
mod fsops;
mod gc;
mod live;
mod lock;
mod pin;
mod pulled;
mod quarantine;
mod recovery;
mod rollback;
mod rollback_moves;
mod snapshot;
#[cfg(test)]
mod testing;
mod verify;
mod versions;

pub use crate::error::describe_numbers;
pub use commit::{note_commit_intent, record_commit};
pub use gc::gc;
pub use live::{live_changes, note_stripped};
pub use lock::OpsLock;
pub use pin::{pin, PinChange};
pub use quarantine::{quarantine, Quarantined};
pub use recovery::recover;
pub(crate) use recovery::roll_forward_squash;
pub use rollback::{rollback, rollback_held};
pub use snapshot::{snapshot, SnapshotRequest};
pub use verify::{verify, VerifyFailure};
pub use versions::{version_numbers, Layout, Version};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::testing::{numbers, versions_of, Scratch};
    use super::{describe_numbers, version_numbers};

    #[test]
    fn version_numbers_read_as_ranges() {
        assert_eq!(describe_numbers(&[]), "no versions");
        assert_eq!(describe_numbers(&[4]), "version 4");
        assert_eq!(describe_numbers(&[1, 2, 3]), "versions 1-3");
        assert_eq!(describe_numbers(&[1, 2, 3, 5, 9]), "versions 1-3, 5 and 9");
        assert_eq!(describe_numbers(&[3, 7]), "versions 3 and 7");
    }

    /// Eleven versions list in number order (10 and 11 after 9, not after
    /// 1), with and without their manifests; a name that is not a number
    /// is no version.
    #[test]
    fn versions_are_listed_oldest_first_by_number() {
        let s = Scratch::new("list");
        let b = &s.b;
        assert!(b.versions().unwrap().is_empty());
        assert!(version_numbers(b).unwrap().is_empty());
        let texts: Vec<String> = (1..=11).map(|i| format!("text {i}")).collect();
        versions_of(b, &texts.iter().map(String::as_str).collect::<Vec<_>>());
        std::fs::create_dir(b.path().join("versions/notes")).unwrap();
        let want: Vec<u64> = (1..=11).collect();
        assert_eq!(numbers(b), want);
        let bare = version_numbers(b).unwrap();
        assert_eq!(bare.iter().map(|v| v.0).collect::<Vec<_>>(), want);
        for (n, dir) in &bare {
            assert_eq!(*dir, b.path().join("versions").join(n.to_string()));
        }
        let versions = b.versions().unwrap();
        for v in &versions {
            assert_eq!(v.manifest.body.version, v.number);
            assert_eq!(v.manifest.body.message, format!("text {}", v.number));
            assert_eq!(v.layer(), v.dir.join("layer"));
            assert!(!v.pinned);
        }
        // The stack that shows version 3: its layer on top, then 2, then 1.
        let v = |n: u64| b.path().join(format!("versions/{n}/layer"));
        assert_eq!(b.stack_layers(&versions, 3), [v(3), v(2), v(1)]);
        assert!(b.stack_layers(&versions, 0).is_empty());
        assert_eq!(b.stack_layers(&versions, 11).len(), 11);
    }

    /// A box whose `versions/` is gone has no versions, not an error.
    #[test]
    fn a_box_without_a_versions_directory_has_none() {
        let s = Scratch::new("noversions");
        std::fs::remove_dir(s.b.path().join("versions")).unwrap();
        assert!(s.b.versions().unwrap().is_empty());
        assert!(version_numbers(&s.b).unwrap().is_empty());
    }
}
