//! The versions of a box as the history operations see them: each
//! `versions/N` with its manifest and pin, the box's history paths
//! (pending, quarantine, journal), and how special directories read in
//! diffs (`Layout`).

use crate::manifest::Manifest;
use crate::{BoxDir, StoreError};
use std::fs;
use std::path::{Path, PathBuf};

/// One frozen version.
#[derive(Debug, Clone)]
pub struct Version {
    /// Its number (1, 2, 3 …).
    pub number: u64,
    /// `versions/<n>`.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Kept by retention and squash.
    pub pinned: bool,
}

impl Version {
    /// The frozen layer.
    pub fn layer(&self) -> PathBuf {
        self.dir.join("layer")
    }
}

/// How the box's special directories read in diffs and totals.
pub struct Layout<'a> {
    /// Mount points and the directories above them (cowl made those).
    pub structural: &'a dyn Fn(&Path) -> bool,
    /// Directories that are the box's own (relative to `/`): `tmp`, `var/tmp`.
    pub private: &'a [PathBuf],
}

impl BoxDir {
    pub(crate) fn versions_dir(&self) -> PathBuf {
        self.path().join("versions")
    }

    /// Where half-done operations keep their state.
    pub fn pending_dir(&self) -> PathBuf {
        self.path().join("pending")
    }

    /// Where rollbacks put what they cut off.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.path().join("quarantine")
    }

    /// The box's journal (`crate::journal`).
    pub fn journal(&self) -> PathBuf {
        self.path().join("journal.jsonl")
    }

    /// Notes `event` in the box's journal.
    pub fn note(&self, event: &str, detail: serde_json::Value) -> Result<(), StoreError> {
        crate::journal::append(&self.journal(), event, detail)
    }

    /// The journal's events, oldest first (none for a box without one; a
    /// line that does not parse is passed over).
    pub fn journal_events(&self) -> Result<Vec<crate::journal::Event>, StoreError> {
        let path = self.journal();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("read", &path)(e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// Every version, oldest first. Call under the operations lock.
    pub fn versions(&self) -> Result<Vec<Version>, StoreError> {
        list_versions(&self.versions_dir())
    }

    /// The stack that shows version `n` (0: the bare host), topmost first.
    pub fn stack_layers(&self, versions: &[Version], n: u64) -> Vec<PathBuf> {
        versions
            .iter()
            .rev()
            .filter(|v| v.number <= n)
            .map(Version::layer)
            .collect()
    }
}

/// The versions' numbers and directories, oldest first, without reading
/// any manifest.
pub fn version_numbers(b: &BoxDir) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let dir = b.versions_dir();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("read", &dir)(e)),
    };
    let mut out: Vec<(u64, PathBuf)> = rd
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
        .collect();
    out.sort_by_key(|v| v.0);
    Ok(out)
}

/// The versions in `dir` (a box's `versions/`, or a quarantine entry's),
/// oldest first, each with its manifest.
pub(crate) fn list_versions(dir: &Path) -> Result<Vec<Version>, StoreError> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io("read", dir)(e)),
    };
    for e in rd.flatten() {
        let Some(number) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        let d = e.path();
        let manifest = Manifest::load(&d.join("manifest.json"))?;
        out.push(Version {
            number,
            pinned: d.join("pinned").exists(),
            dir: d,
            manifest,
        });
    }
    out.sort_by_key(|v| v.number);
    Ok(out)
}
