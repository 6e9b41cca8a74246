//! What the host held at each path when the box first changed it, kept so
//! that `cowl commit` can tell whether the host file changed since: such a
//! commit would overwrite someone else's work.
//!
//! `host-baseline.json` maps a path (relative to `/`) to its host state. A
//! path is recorded once, when a run that changed it ends, and forgotten
//! when it is committed.

use crate::boxdir::write_atomic;
use crate::{BoxDir, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Files larger than this are compared by metadata only.
const HASH_LIMIT: u64 = 64 << 20;

/// The state of one host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// `missing`, `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    #[serde(default)]
    pub mtime_ns: i128,
    /// Inode number.
    #[serde(default)]
    pub ino: u64,
    /// BLAKE3 of the content (files up to 64 MiB) or of the link target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// From when (nanoseconds since the epoch) the box may have changed the
    /// path: the start of the run that did. A host change after it (the
    /// host entry's ctime, or any ctime below a directory) is a conflict.
    #[serde(default)]
    pub since_ns: i128,
}

/// Now, in nanoseconds since the epoch.
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// The status-change time of a host path, not following a symlink.
pub fn ctime_ns(path: &Path) -> Option<i128> {
    let md = std::fs::symlink_metadata(path).ok()?;
    Some(md.ctime() as i128 * 1_000_000_000 + md.ctime_nsec() as i128)
}

/// The first entry at or below `path` (a host tree, symlinks not followed)
/// whose status changed after `since`, if any. Stops after `limit` entries
/// (a tree that large is reported as changed).
pub fn changed_below(path: &Path, since: i128, limit: usize) -> Option<PathBuf> {
    let mut stack = vec![path.to_path_buf()];
    let mut seen = 0usize;
    while let Some(p) = stack.pop() {
        seen += 1;
        if seen > limit {
            return Some(p);
        }
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.ctime() as i128 * 1_000_000_000 + md.ctime_nsec() as i128 > since {
            return Some(p);
        }
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    None
}

impl HostState {
    /// The state of `path` on the host, now.
    pub fn of(path: &Path) -> HostState {
        let Ok(md) = std::fs::symlink_metadata(path) else {
            return HostState::missing();
        };
        let ft = md.file_type();
        let (kind, blake3) = if ft.is_dir() {
            // A directory's times change with every entry: its type is what
            // a commit can clash with.
            return HostState {
                kind: "dir".into(),
                size: 0,
                mtime_ns: 0,
                ino: md.ino(),
                blake3: None,
                since_ns: 0,
            };
        } else if ft.is_file() {
            (
                "file",
                (md.len() <= HASH_LIMIT).then(|| hash(path)).flatten(),
            )
        } else if ft.is_symlink() {
            (
                "symlink",
                std::fs::read_link(path).ok().map(|t| {
                    blake3::hash(t.as_os_str().as_encoded_bytes())
                        .to_hex()
                        .to_string()
                }),
            )
        } else {
            ("other", None)
        };
        HostState {
            kind: kind.into(),
            size: md.len(),
            mtime_ns: md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128,
            ino: md.ino(),
            blake3,
            since_ns: 0,
        }
    }

    /// No entry.
    pub fn missing() -> HostState {
        HostState {
            kind: "missing".into(),
            size: 0,
            mtime_ns: 0,
            ino: 0,
            blake3: None,
            since_ns: 0,
        }
    }

    /// How `now` differs from this recorded state, if it does.
    pub fn changed(&self, now: &HostState) -> Option<String> {
        if self.kind != now.kind {
            return Some(format!("it was {} and is now {}", self.kind, now.kind));
        }
        if self.kind == "dir" {
            return None;
        }
        if self.size != now.size {
            return Some(format!(
                "its size went from {} to {} bytes",
                self.size, now.size
            ));
        }
        if self.blake3 != now.blake3 {
            return Some("its content changed".into());
        }
        if self.mtime_ns != now.mtime_ns || self.ino != now.ino {
            return Some("it was replaced or touched (modification time or inode changed)".into());
        }
        None
    }
}

fn hash(p: &Path) -> Option<String> {
    crate::manifest::hash_contents(p)
        .ok()
        .map(|h| h.to_hex().to_string())
}

fn file(b: &BoxDir) -> PathBuf {
    b.path().join("host-baseline.json")
}

fn runs_dir(b: &BoxDir) -> PathBuf {
    b.path().join("baselines")
}

fn read_map(p: &Path) -> Result<Option<BTreeMap<String, HostState>>, StoreError> {
    match std::fs::read(p) {
        Ok(t) => serde_json::from_slice(&t)
            .map(Some)
            .map_err(|e| StoreError::BadSettings {
                path: p.to_path_buf(),
                message: format!("{e} (a record of host states; remove it and commit with --force after checking the host)"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", p)(e)),
    }
}

/// The recorded states: the merged record (`host-baseline.json`), then each
/// run's record (`baselines/<start>.json`) oldest first; the first record
/// of a path wins. A record that cannot be read is an error: a commit
/// without it could overwrite host changes unawares.
pub fn load(b: &BoxDir) -> Result<BTreeMap<String, HostState>, StoreError> {
    let mut map = read_map(&file(b))?.unwrap_or_default();
    let mut runs: Vec<PathBuf> = std::fs::read_dir(runs_dir(b))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    runs.sort();
    for r in runs {
        for (k, v) in read_map(&r)?.unwrap_or_default() {
            map.entry(k).or_insert(v);
        }
    }
    Ok(map)
}

/// Replaces every record with `map` (one merged file; the runs' records go).
pub fn save(b: &BoxDir, map: &BTreeMap<String, HostState>) -> Result<(), StoreError> {
    write_atomic(&file(b), &serde_json::to_vec(map).unwrap_or_default())?;
    if let Ok(rd) = std::fs::read_dir(runs_dir(b)) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// Records the host state of every path of `layer` (the live layer, when a
/// run ends) in a record of that run's own: what it costs grows with the
/// layer, never with the box's history. `since`: when the run started.
///
/// Directories cowl made (mount points and those above them: a commit
/// never applies them) and the box's private directories (their host
/// namesakes are not what the box wrote over) are not recorded, so a run
/// that changed nothing writes no record at all.
pub fn record_layer(
    b: &BoxDir,
    layer: &Path,
    since: i128,
    shape: &crate::history::Layout,
) -> Result<(), StoreError> {
    let mut paths = std::collections::BTreeSet::new();
    crate::diff::layer_paths(layer, &mut paths);
    let map: BTreeMap<String, HostState> = paths
        .into_iter()
        .filter(|r| {
            !shape.private.iter().any(|p| r.starts_with(p))
                && !(shape.structural)(&Path::new("/").join(r))
        })
        .map(|r| {
            let state = HostState {
                since_ns: since,
                ..HostState::of(&Path::new("/").join(&r))
            };
            (r.to_string_lossy().into_owned(), state)
        })
        .collect();
    if map.is_empty() {
        return Ok(());
    }
    let dir = runs_dir(b);
    std::fs::create_dir_all(&dir).map_err(StoreError::io("create", &dir))?;
    write_atomic(
        &dir.join(format!("{since:024}-{}.json", std::process::id())),
        &serde_json::to_vec(&map).unwrap_or_default(),
    )
}
