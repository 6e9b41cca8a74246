//! Snapshot: freezing the live layer as the next version, by rename.

use super::fsops::{make_movable, mkdir, rename};
use super::live::{has_content, live_changes, prune_structural, read_stripped};
use super::recovery::recover;
use super::versions::Layout;
use crate::boxdir::{remove_tree, sync_dir, write_atomic};
use crate::fault::point;
use crate::manifest::{scan_layer, Made, Manifest, ManifestBody, Totals};
use crate::{BoxDir, StoreError};
use std::fs;
use std::path::{Path, PathBuf};

/// What a snapshot records.
pub struct SnapshotRequest<'a> {
    /// Its message.
    pub message: &'a str,
    /// How it is made.
    pub made: Made,
    /// Pin it.
    pub pin: bool,
    /// Make a version even when nothing changed.
    pub allow_empty: bool,
}

/// Freezes the live layer as the next version, by rename, and leaves an
/// empty live layer. Returns the new version's number, or `None` when
/// nothing changed. The box must not be running (the caller holds its run
/// lock); the cost is the hashing of what changed, not the box's size.
pub fn snapshot(
    b: &BoxDir,
    req: &SnapshotRequest,
    layout: &Layout,
) -> Result<Option<u64>, StoreError> {
    let _ops = b.ops_lock(true)?;
    recover(b)?;
    let upper = b.upper();
    // Most runs of a box change nothing: tell that from the live layer alone,
    // without reading any version.
    if !req.allow_empty && !has_content(&upper, Path::new("/"), layout.structural) {
        return Ok(None);
    }
    let layers = b.version_layers()?;
    let mut roots: Vec<&Path> = layers.iter().map(PathBuf::as_path).collect();
    roots.push(&upper);
    let opened = crate::layer::open_for_reading(&b.pending_dir(), &roots);
    // The newest version's number and digest, from its directory name and
    // digest file: its manifest can be as large as the box.
    let newest: Option<(u64, String)> = match layers.first() {
        Some(l) => {
            let dir = l.parent().unwrap_or(l);
            let n = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let d = match fs::read_to_string(dir.join("digest")) {
                Ok(d) => d.trim().to_owned(),
                Err(_) => Manifest::load(&dir.join("manifest.json"))?.digest,
            };
            Some((n, d))
        }
        None => None,
    };
    let (changes, totals) = live_changes(b, &layers, layout);
    if changes.is_empty() && !req.allow_empty {
        return Ok(None);
    }
    let number = newest.as_ref().map_or(1, |m| m.0 + 1);
    prune_structural(&upper, Path::new("/"), layout.structural)?;
    let mut entries = scan_layer(&upper)?;
    crate::manifest::correct_modes(&opened, &upper, &mut entries);
    let bytes = entries
        .iter()
        .filter(|e| e.kind == crate::layer::EntryKind::File)
        .map(|e| e.size)
        .sum();
    let body = ManifestBody {
        format: 1,
        version: number,
        parent: newest.map(|m| m.1),
        created: crate::time::now(),
        message: req.message.to_owned(),
        made: req.made,
        totals: Totals {
            entries: entries.len() as u64,
            bytes,
            ..totals
        },
        entries,
        stripped: read_stripped(b),
        committed: Vec::new(),
    };
    let manifest = body.seal();

    let pending = b.pending_dir();
    mkdir(&pending)?;
    let stage = pending.join(format!("snap-{number}"));
    remove_tree(&stage).map_err(StoreError::io("clear", &stage))?;
    mkdir(&stage)?;
    write_atomic(
        &stage.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    )?;
    write_atomic(&stage.join("digest"), manifest.digest.as_bytes())?;
    if req.pin {
        write_atomic(&stage.join("pinned"), b"")?;
    }
    point("snapshot:manifest-written");
    // Modes back as the app left them before the layer is frozen.
    drop(opened);
    make_movable(&upper)?;
    rename(&upper, &stage.join("layer"))?;
    sync_dir(&b.path().join("live"));
    sync_dir(&stage);
    point("snapshot:layer-moved");
    rename(&stage, &b.versions_dir().join(number.to_string()))?;
    sync_dir(&b.versions_dir());
    sync_dir(&pending);
    point("snapshot:version-in-place");
    let _ = fs::remove_file(b.path().join("stripped.json"));
    b.note("snapshot",
        serde_json::json!({"version": number, "digest": manifest.digest, "made": req.made.as_str(), "message": req.message}),
    )?;
    Ok(Some(number))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::testing::{layout, names, numbers, snap, write_live, Scratch};
    use super::super::{note_stripped, Layout};
    use super::{snapshot, SnapshotRequest};
    use crate::manifest::Made;
    use std::path::Path;

    #[test]
    fn a_snapshot_freezes_the_live_layer_as_the_next_version() {
        let s = Scratch::new("snap");
        let b = &s.b;
        write_live(b, "cowl-history-test/a", "one");
        assert_eq!(snap(b, "first"), Some(1));
        // The live layer moved into the version: none is left.
        assert!(!b.upper().exists());
        let layer = b.path().join("versions/1/layer");
        assert_eq!(
            std::fs::read_to_string(layer.join("cowl-history-test/a")).unwrap(),
            "one"
        );
        write_live(b, "cowl-history-test/a", "two!");
        assert_eq!(snap(b, "second"), Some(2));
        let v = b.versions().unwrap();
        assert_eq!(numbers(b), [1, 2]);
        assert_eq!(v[0].manifest.body.parent, None);
        assert_eq!(
            v[1].manifest.body.parent.as_ref(),
            Some(&v[0].manifest.digest)
        );
        assert_eq!(v[1].manifest.body.message, "second");
        assert_eq!(v[1].manifest.body.made, Made::Snapshot);
        assert_eq!(v[1].manifest.body.totals.modified, 1);
        assert_eq!(v[1].manifest.body.totals.bytes, 4);
        let digest = std::fs::read_to_string(v[1].dir.join("digest")).unwrap();
        assert_eq!(digest, v[1].manifest.digest);
        assert!(names(&b.pending_dir()).is_empty());
        let journal = std::fs::read_to_string(b.path().join("journal.jsonl")).unwrap();
        assert_eq!(journal.lines().count(), 2);
    }

    #[test]
    fn nothing_changed_makes_no_version_unless_asked() {
        let s = Scratch::new("snap-empty");
        let b = &s.b;
        assert_eq!(snap(b, "nothing"), None);
        std::fs::create_dir_all(b.upper()).unwrap();
        assert_eq!(snap(b, "nothing"), None);
        assert!(numbers(b).is_empty());
        let req = SnapshotRequest {
            message: "empty",
            made: Made::Run,
            pin: true,
            allow_empty: true,
        };
        assert_eq!(snapshot(b, &req, &layout()).unwrap(), Some(1));
        let v = b.versions().unwrap();
        assert!(v[0].pinned);
        assert_eq!(v[0].manifest.body.made, Made::Run);
        assert_eq!(v[0].manifest.body.totals.entries, 0);
    }

    /// `/m` is a mount point.
    fn mounts(p: &Path) -> bool {
        p == Path::new("/m")
    }

    #[test]
    fn mount_point_directories_alone_are_no_change_and_never_frozen() {
        let s = Scratch::new("snap-mounts");
        let b = &s.b;
        let l = Layout {
            structural: &mounts,
            private: &[],
        };
        let req = SnapshotRequest {
            message: "m",
            made: Made::Snapshot,
            pin: false,
            allow_empty: false,
        };
        std::fs::create_dir_all(b.upper().join("m")).unwrap();
        assert_eq!(snapshot(b, &req, &l).unwrap(), None);
        // Left as it was: the box did not change.
        assert!(b.upper().join("m").is_dir());
        write_live(b, "cowl-history-test/a", "x");
        assert_eq!(snapshot(b, &req, &l).unwrap(), Some(1));
        assert_eq!(
            names(&b.path().join("versions/1/layer")),
            ["cowl-history-test"]
        );
    }

    #[test]
    fn the_stripped_files_noted_go_into_the_next_manifest_only() {
        let s = Scratch::new("snap-stripped");
        let b = &s.b;
        note_stripped(b, &["usr/bin/x".into()]).unwrap();
        write_live(b, "cowl-history-test/a", "x");
        assert_eq!(snap(b, "one"), Some(1));
        write_live(b, "cowl-history-test/b", "y");
        assert_eq!(snap(b, "two"), Some(2));
        let v = b.versions().unwrap();
        assert_eq!(v[0].manifest.body.stripped, ["usr/bin/x"]);
        assert!(v[1].manifest.body.stripped.is_empty());
    }
}
