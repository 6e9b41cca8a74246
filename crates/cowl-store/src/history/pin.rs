//! Pinning: marking a version (`versions/<n>/pinned`) so that squashes and
//! retention keep it as it is.

use super::recovery::recover;
use super::versions::version_numbers;
use crate::boxdir::write_atomic;
use crate::{BoxDir, StoreError};
use std::fs;

impl BoxDir {
    /// Pins or unpins a version.
    pub fn set_pinned(&self, number: u64, pinned: bool) -> Result<(), StoreError> {
        let p = self.versions_dir().join(number.to_string()).join("pinned");
        if pinned {
            write_atomic(&p, b"")
        } else {
            match fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(StoreError::io("unpin", &p)(e))
                }
                _ => Ok(()),
            }
        }
    }
}

/// What a pin or unpin did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinChange {
    /// The version.
    pub version: u64,
    /// Whether it is pinned now.
    pub pinned: bool,
    /// Whether it was not so before.
    pub changed: bool,
}

/// Pins (`pinned`) or unpins version `number` of box `b`, or its newest
/// version when `number` is `None`. A pinned version is kept as it is by
/// squashes and retention. Running or not, the box's live layer is not
/// touched. Recorded in the journal when it changes anything.
pub fn pin(b: &BoxDir, number: Option<u64>, pinned: bool) -> Result<PinChange, StoreError> {
    let _ops = b.ops_lock(true)?;
    recover(b)?;
    let existing: Vec<u64> = version_numbers(b)?.into_iter().map(|v| v.0).collect();
    let version = match number {
        Some(n) if existing.contains(&n) => n,
        Some(n) => {
            return Err(StoreError::NoSuchVersionOf {
                name: b.name().to_string(),
                version: n,
                existing,
            })
        }
        None => *existing.last().ok_or_else(|| StoreError::NoVersions {
            name: b.name().to_string(),
        })?,
    };
    let was = b
        .versions_dir()
        .join(version.to_string())
        .join("pinned")
        .exists();
    if was != pinned {
        b.set_pinned(version, pinned)?;
        b.note(
            if pinned { "pin" } else { "unpin" },
            serde_json::json!({"version": version}),
        )?;
    }
    Ok(PinChange {
        version,
        pinned,
        changed: was != pinned,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::testing::{versions_of, Scratch};
    use super::{pin, PinChange};
    use crate::StoreError;

    fn journal_events(s: &Scratch) -> Vec<String> {
        std::fs::read_to_string(s.b.path().join("journal.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<crate::journal::Event>(l)
                    .unwrap()
                    .event
            })
            .collect()
    }

    #[test]
    fn pinning_marks_one_version_and_is_journaled_only_when_it_changes() {
        let s = Scratch::new("pin");
        let b = &s.b;
        assert!(matches!(
            pin(b, None, true),
            Err(StoreError::NoVersions { .. })
        ));
        versions_of(b, &["one", "two"]);
        let before = journal_events(&s).len();
        let change = |version, pinned, changed| PinChange {
            version,
            pinned,
            changed,
        };
        assert_eq!(pin(b, None, true).unwrap(), change(2, true, true));
        assert_eq!(pin(b, None, true).unwrap(), change(2, true, false));
        assert_eq!(pin(b, Some(1), false).unwrap(), change(1, false, false));
        let pinned: Vec<bool> = b.versions().unwrap().iter().map(|v| v.pinned).collect();
        assert_eq!(pinned, [false, true]);
        assert_eq!(pin(b, Some(2), false).unwrap(), change(2, false, true));
        assert!(b.versions().unwrap().iter().all(|v| !v.pinned));
        assert_eq!(journal_events(&s)[before..], ["pin", "unpin"]);
        match pin(b, Some(7), true) {
            Err(StoreError::NoSuchVersionOf {
                version, existing, ..
            }) => assert_eq!((version, existing), (7, vec![1, 2])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn set_pinned_writes_and_removes_the_marker() {
        let s = Scratch::new("setpin");
        versions_of(&s.b, &["one"]);
        let marker = s.b.path().join("versions/1/pinned");
        s.b.set_pinned(1, true).unwrap();
        assert!(marker.exists());
        s.b.set_pinned(1, false).unwrap();
        assert!(!marker.exists());
        // Unpinning what is not pinned is no error.
        s.b.set_pinned(1, false).unwrap();
    }
}
