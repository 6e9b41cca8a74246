//! The second half of a rollback: the moves into its quarantine entry,
//! which a rollback makes itself and recovery finishes after a crash (so
//! that neither of `rollback` and `recovery` imports the other).

use super::fsops::{make_movable, mkdir, rename};
use super::versions::version_numbers;
use crate::boxdir::sync_dir;
use crate::fault::point;
use crate::{BoxDir, StoreError};
use std::fs;
use std::path::Path;

/// Moves versions above `target` newest first, so that at every step the
/// remaining versions are a complete prefix of the history; then the live
/// layer; then drops the marker.
pub(super) fn finish_rollback(b: &BoxDir, qd: &Path, target: u64) -> Result<(), StoreError> {
    for (number, dir) in version_numbers(b)?.iter().rev().filter(|v| v.0 > target) {
        rename(dir, &qd.join("versions").join(number.to_string()))?;
        sync_dir(&b.versions_dir());
        point("rollback:moved-version");
    }
    let upper = b.upper();
    if fs::symlink_metadata(&upper).is_ok() {
        mkdir(&qd.join("live"))?;
        make_movable(&upper)?;
        rename(&upper, &qd.join("live/upper"))?;
        sync_dir(&b.path().join("live"));
    }
    // What was noted of the live layer went with it.
    let stripped = b.path().join("stripped.json");
    if stripped.exists() {
        let _ = fs::rename(&stripped, qd.join("live/stripped.json"));
    }
    point("rollback:moved-live");
    let marker = qd.join(".incomplete");
    fs::remove_file(&marker).map_err(StoreError::io("remove", &marker))?;
    sync_dir(qd);
    Ok(())
}
