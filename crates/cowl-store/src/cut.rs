//! A commit's cut: a version made by `cowl commit` names the paths it
//! applied to the host (`versions/<n>/committed.json`, also in its
//! manifest). Below that version the box holds nothing at or under those
//! paths, so the host shows through there: committed paths leave the box,
//! and every older version stays as it was, for rollback and forensics.
//!
//! Overlayfs cannot express this (an upper layer can only hide what is
//! below it), so a box with a cut always runs on the merged run cache, in
//! which the cut paths are removed (see `cache`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The file beside a version's layer that lists its cut.
pub const FILE: &str = "committed.json";

/// In the box directory: some version may have a cut.
pub const FLAG: &str = "cuts";

/// The cut of the version whose layer is `layer`, if it has one.
pub fn of_layer(layer: &Path) -> Option<BTreeSet<PathBuf>> {
    let text = std::fs::read(layer.with_file_name(FILE)).ok()?;
    let paths: Vec<String> = serde_json::from_slice(&text).ok()?;
    // Only plain relative paths: a cut never names anything outside the box.
    let set: BTreeSet<PathBuf> = paths
        .into_iter()
        .map(PathBuf::from)
        .filter(|p| {
            p.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
                && p.components().next().is_some()
        })
        .collect();
    (!set.is_empty()).then_some(set)
}

/// Whether `rel` is at or under a path of the cut.
pub fn covers(cut: &BTreeSet<PathBuf>, rel: &Path) -> bool {
    rel.ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .any(|a| cut.contains(a))
}
