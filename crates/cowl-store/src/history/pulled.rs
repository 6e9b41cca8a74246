//! Versions that arrive from a mirror: a stage in `pending/` the puller
//! fills and verifies, then renames into `versions/` under the number the
//! mirror gives, noted in the journal. The rename is the commit point: a
//! stage a crash left behind is removed by recovery, and a pull resumes
//! after the versions in place.

use crate::boxdir::{remove_tree, sync_dir, write_atomic, BoxDir};
use crate::error::StoreError;
use std::path::PathBuf;

impl BoxDir {
    /// A fresh, empty stage for version `number` of a pull (what an earlier
    /// try left there is removed). The caller holds the exclusive operations
    /// lock until the stage is placed or removed.
    pub fn pull_stage(&self, number: u64) -> Result<PathBuf, StoreError> {
        let pending = self.pending_dir();
        std::fs::create_dir_all(&pending).map_err(StoreError::io("create", &pending))?;
        let stage = pending.join(format!("pull-{number}"));
        remove_tree(&stage).map_err(StoreError::io("clear", &stage))?;
        std::fs::create_dir(&stage).map_err(StoreError::io("create", &stage))?;
        Ok(stage)
    }

    /// Puts a verified stage in place as version `number` and notes the
    /// pull (`detail`) in the journal. `has_cut`: the version is one of
    /// `cowl commit`, so the box has a cut from now on (flagged before the
    /// version shows). Returns false, removing the stage, when the box
    /// already has a version `number` (another pull put it there).
    pub fn place_pulled(
        &self,
        number: u64,
        stage: &std::path::Path,
        has_cut: bool,
        detail: serde_json::Value,
    ) -> Result<bool, StoreError> {
        crate::fault::point("pull:layer-extracted");
        let target = self.versions_dir().join(number.to_string());
        if std::fs::symlink_metadata(&target).is_ok() {
            let _ = remove_tree(stage);
            return Ok(false);
        }
        if has_cut {
            write_atomic(&self.path().join(crate::cut::FLAG), b"")?;
        }
        std::fs::rename(stage, &target).map_err(StoreError::io("rename", stage))?;
        sync_dir(&self.versions_dir());
        crate::fault::point("pull:version-in-place");
        self.note("pull", detail)?;
        Ok(true)
    }
}
