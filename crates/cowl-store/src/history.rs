//! The version stack of a box: listing, snapshot (freezing the live layer),
//! rollback (later versions to quarantine), gc, verify, and recovery.
//!
//! Every operation is a sequence of fsynced renames with one commit point;
//! `recover` (run under the operations lock before any of them) finishes or
//! undoes whatever a crash interrupted, so `kill -9` at any step leaves a box
//! that opens, verifies, and has lost no version that was complete.

use crate::boxdir::{remove_tree, sync_dir, write_atomic};
use crate::diff::{diff_stacks, layer_paths, ChangeKind, DiffRules};
use crate::fault::point;
use crate::manifest::{scan_layer, Made, Manifest, ManifestBody, Totals};
use crate::stack::Stack;
use crate::{BoxDir, StoreError};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
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

/// The operations lock: exclusive for changes, shared for readers, so a
/// reader never sees a half-made version and two changes never interleave.
#[derive(Debug)]
pub struct OpsLock {
    _file: File,
}

/// How the box's special directories read in diffs and totals.
pub struct Layout<'a> {
    /// Mount points and the directories above them (cowl made those).
    pub structural: &'a dyn Fn(&Path) -> bool,
    /// Directories that are the box's own (relative to `/`): `tmp`, `var/tmp`.
    pub private: &'a [PathBuf],
}

impl BoxDir {
    /// Takes the operations lock, waiting for it.
    pub fn ops_lock(&self, exclusive: bool) -> Result<OpsLock, StoreError> {
        let p = self.path().join("ops.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(0o400_000 /* O_NOFOLLOW */)
            .open(&p)
            .map_err(StoreError::io("open", &p))?;
        let r = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        r.map_err(StoreError::io("lock", &p))?;
        Ok(OpsLock { _file: file })
    }

    fn versions_dir(&self) -> PathBuf {
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

    fn journal(&self) -> PathBuf {
        self.path().join("journal.jsonl")
    }

    /// Every version, oldest first. Call under the operations lock.
    pub fn versions(&self) -> Result<Vec<Version>, StoreError> {
        list_versions(&self.versions_dir())
    }

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
        crate::journal::append(
            &b.journal(),
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

/// Version numbers for a human, runs of consecutive ones as ranges:
/// "versions 1-3, 5 and 9", "version 4", "no versions".
pub fn describe_numbers(numbers: &[u64]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &n in numbers {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == n => *last = n,
            _ => runs.push((n, n)),
        }
    }
    let text: Vec<String> = runs
        .iter()
        .map(|&(a, z)| {
            if a == z {
                a.to_string()
            } else {
                format!("{a}-{z}")
            }
        })
        .collect();
    match (numbers.len(), text.as_slice()) {
        (0, _) => "no versions".into(),
        (1, [one]) => format!("version {one}"),
        (_, [one]) => format!("versions {one}"),
        (_, [init @ .., last]) => format!("versions {} and {last}", init.join(", ")),
        (_, []) => "no versions".into(),
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

/// What the live layer changed over the newest version: `(changes, totals)`.
pub fn live_changes(
    b: &BoxDir,
    version_layers: &[PathBuf],
    layout: &Layout,
) -> (Vec<crate::diff::Change>, Totals) {
    let below = Stack::new(
        version_layers.to_vec(),
        Some(Path::new("/")),
        layout.private,
    );
    let mut above_layers = version_layers.to_vec();
    above_layers.insert(0, b.upper());
    let above = Stack::new(above_layers, Some(Path::new("/")), layout.private);
    let mut cands = BTreeSet::new();
    layer_paths(&b.upper(), &mut cands);
    let changes = diff_stacks(
        &below,
        &above,
        cands,
        &DiffRules {
            structural: layout.structural,
        },
    );
    let totals = totals_of(&changes);
    (changes, totals)
}

fn totals_of(changes: &[crate::diff::Change]) -> Totals {
    let mut t = Totals::default();
    for c in changes {
        match c.change {
            ChangeKind::Added => t.added += 1,
            ChangeKind::Deleted => t.deleted += 1,
            _ => t.modified += 1,
        }
    }
    t
}

/// Whether a live layer holds anything but the empty directories cowl made
/// for mount points.
fn has_content(dir: &Path, at: &Path, structural: &dyn Fn(&Path) -> bool) -> bool {
    let Ok(rd) = fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let p = at.join(e.file_name());
        match crate::layer::EntryKind::of(&e.path()) {
            Some((crate::layer::EntryKind::Dir, _)) if structural(&p) => {
                has_content(&e.path(), &p, structural)
            }
            Some(_) => true,
            None => false,
        }
    })
}

/// Removes the empty upper directories cowl made for mount points (and the
/// directories above them): they mean nothing, and left in a version they
/// would give every overlay of every later run one more lower layer.
fn prune_structural(
    dir: &Path,
    at: &Path,
    structural: &dyn Fn(&Path) -> bool,
) -> Result<bool, StoreError> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(false);
    };
    let mut empty = true;
    for e in rd.flatten() {
        let p = at.join(e.file_name());
        let keep = match crate::layer::EntryKind::of(&e.path()) {
            Some((crate::layer::EntryKind::Dir, _)) if structural(&p) => {
                !prune_structural(&e.path(), &p, structural)? || {
                    // Empty: gone, unless it cannot be removed.
                    !remove_empty_dir(dir, &e.path())
                }
            }
            _ => true,
        };
        empty &= !keep;
    }
    Ok(empty)
}

/// Removes the empty directory `child` of `parent`. The parent is a
/// directory cowl made for a mount point with the mode of the host's (0555
/// for `/` on some systems, 000 for a directory the caller cannot enter):
/// made writable for the removal, then given its mode back.
fn remove_empty_dir(parent: &Path, child: &Path) -> bool {
    if fs::remove_dir(child).is_ok() {
        return true;
    }
    let Ok(md) = fs::symlink_metadata(parent) else {
        return false;
    };
    let mode = md.mode() & 0o7777;
    if mode & 0o300 == 0o300
        || fs::set_permissions(parent, fs::Permissions::from_mode(mode | 0o300)).is_err()
    {
        return false;
    }
    let removed = fs::remove_dir(child).is_ok();
    let _ = fs::set_permissions(parent, fs::Permissions::from_mode(mode));
    removed
}

/// Moving a directory to another parent needs write access to it (its `..`
/// changes); a live upper carries the mode of the host's `/`, often 0555.
fn make_movable(dir: &Path) -> Result<(), StoreError> {
    let md = fs::symlink_metadata(dir).map_err(StoreError::io("stat", dir))?;
    if md.mode() & 0o700 != 0o700 {
        fs::set_permissions(
            dir,
            fs::Permissions::from_mode((md.mode() & 0o7777) | 0o700),
        )
        .map_err(StoreError::io("chmod", dir))?;
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    fs::rename(from, to).map_err(|source| StoreError::Io {
        op: "rename",
        path: from.to_owned(),
        source,
    })
}

fn mkdir(p: &Path) -> Result<(), StoreError> {
    match fs::create_dir(p) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(StoreError::io("create", p)(e))
        }
        _ => Ok(()),
    }
}

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
    opened.correct(&upper, &mut entries);
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
    crate::journal::append(
        &b.journal(),
        "snapshot",
        serde_json::json!({"version": number, "digest": manifest.digest, "made": req.made.as_str(), "message": req.message}),
    )?;
    Ok(Some(number))
}

/// Records a commit as a version: an empty layer whose cut (`cut`) names
/// the paths that leave the box. Consecutive commits with no version
/// between them share one version (so that a thousand commits do not make a
/// thousand versions). Returns the version's number. The caller holds the
/// exclusive operations lock and has run `recover`.
pub fn record_commit(
    b: &BoxDir,
    cut: &BTreeSet<PathBuf>,
    applied: usize,
) -> Result<u64, StoreError> {
    let versions = b.versions()?;
    let top = versions.last();
    let into = top.filter(|v| v.manifest.body.made == Made::Commit);
    let mut all = cut.clone();
    let mut count = applied as u64;
    if let Some(t) = into {
        all.extend(t.manifest.body.committed.iter().map(PathBuf::from));
        count += t.manifest.body.totals.modified;
    }
    let number = match (into, top) {
        (Some(t), _) => t.number,
        (None, Some(t)) => t.number + 1,
        (None, None) => 1,
    };
    let parent = match (into, top) {
        (Some(t), _) => t.manifest.body.parent.clone(),
        (None, t) => t.map(|t| t.manifest.digest.clone()),
    };
    let committed: Vec<String> = all
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let body = ManifestBody {
        format: 1,
        version: number,
        parent,
        created: crate::time::now(),
        message: format!("commit: {count} change(s) applied to the host"),
        made: Made::Commit,
        totals: Totals {
            modified: count,
            ..Totals::default()
        },
        entries: Vec::new(),
        stripped: Vec::new(),
        committed: committed.clone(),
    };
    let manifest = body.seal();
    let pending = b.pending_dir();
    mkdir(&pending)?;
    let stage = pending.join(format!("commit-{number}"));
    remove_tree(&stage).map_err(StoreError::io("clear", &stage))?;
    mkdir(&stage)?;
    mkdir(&stage.join("layer"))?;
    write_atomic(
        &stage.join(crate::cut::FILE),
        &serde_json::to_vec(&committed).unwrap_or_default(),
    )?;
    write_atomic(
        &stage.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    )?;
    write_atomic(&stage.join("digest"), manifest.digest.as_bytes())?;
    sync_dir(&stage);
    write_atomic(&b.path().join(crate::cut::FLAG), b"")?;
    let target = b.versions_dir().join(number.to_string());
    if into.is_some() {
        let old = pending.join(format!("commit-old-{number}"));
        remove_tree(&old).map_err(StoreError::io("clear", &old))?;
        rename(&target, &old)?;
        sync_dir(&pending);
        point("commit:old-moved");
        rename(&stage, &target)?;
        sync_dir(&b.versions_dir());
        remove_tree(&old).map_err(StoreError::io("remove", &old))?;
    } else {
        rename(&stage, &target)?;
        sync_dir(&b.versions_dir());
    }
    sync_dir(&pending);
    crate::journal::append(
        &b.journal(),
        "commit",
        serde_json::json!({"version": number, "digest": manifest.digest, "applied": applied, "cut": cut.len()}),
    )?;
    Ok(number)
}

/// Notes, before a commit writes anything on the host, the prefix of its
/// temporary entries and the host directories they go into; `recover`
/// removes what a commit that died left there. Returns the note's path
/// (the commit removes it when done).
pub fn note_commit_intent(
    b: &BoxDir,
    prefix: &str,
    dirs: &[PathBuf],
) -> Result<PathBuf, StoreError> {
    let pending = b.pending_dir();
    mkdir(&pending)?;
    let p = pending.join("commit-intent.json");
    write_atomic(
        &p,
        &serde_json::to_vec(&serde_json::json!({"prefix": prefix, "dirs": dirs}))
            .unwrap_or_default(),
    )?;
    Ok(p)
}

/// Removes the temporary entries a commit that died left on the host.
fn recover_commit_intent(p: &Path) -> Result<(), StoreError> {
    let note: serde_json::Value = fs::read(p)
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_default();
    let prefix = note["prefix"].as_str().unwrap_or_default();
    // Only cowl's own names: never anything else in those directories.
    if prefix.starts_with(".cowl-commit-") && prefix.len() > ".cowl-commit-".len() {
        for d in note["dirs"].as_array().into_iter().flatten() {
            let Some(d) = d.as_str() else { continue };
            let Ok(rd) = fs::read_dir(d) else { continue };
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix) {
                    let q = e.path();
                    let r = match fs::symlink_metadata(&q) {
                        Ok(m) if m.is_dir() => fs::remove_dir_all(&q),
                        Ok(_) => fs::remove_file(&q),
                        Err(_) => Ok(()),
                    };
                    r.map_err(StoreError::io("remove", &q))?;
                }
            }
        }
    }
    fs::remove_file(p).map_err(StoreError::io("remove", p))
}

/// Files whose privilege bits cowl stripped from the live layer since the
/// last snapshot (relative to `/`).
fn read_stripped(b: &BoxDir) -> Vec<String> {
    fs::read(b.path().join("stripped.json"))
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_default()
}

/// Notes files whose privilege bits cowl stripped from the live layer, for
/// the next version's manifest (and so for `cowl scan`).
pub fn note_stripped(b: &BoxDir, paths: &[String]) -> Result<(), StoreError> {
    let mut all = read_stripped(b);
    all.extend(paths.iter().cloned());
    all.sort();
    all.dedup();
    write_atomic(
        &b.path().join("stripped.json"),
        &serde_json::to_vec(&all).unwrap_or_default(),
    )
}

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
    crate::journal::append(
        &b.journal(),
        "rollback",
        serde_json::json!({"to": target, "from": top, "quarantine": stamp}),
    )?;
    Ok(qd)
}

/// Moves versions above `target` newest first, so that at every step the
/// remaining versions are a complete prefix of the history; then the live
/// layer; then drops the marker.
fn finish_rollback(b: &BoxDir, qd: &Path, target: u64) -> Result<(), StoreError> {
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

/// One rollback's leftovers.
#[derive(Debug)]
pub struct Quarantined {
    /// Its directory name (`<unix time>-<pid>`).
    pub stamp: String,
    /// When it was cut off, seconds since the epoch.
    pub time: u64,
    /// The version the box was rolled back to.
    pub target: u64,
    /// The versions it holds.
    pub versions: Vec<Version>,
    /// Whether it holds a live layer.
    pub live: bool,
}

/// The box's quarantine, oldest first.
pub fn quarantine(b: &BoxDir) -> Result<Vec<Quarantined>, StoreError> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(b.quarantine_dir()) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let d = e.path();
        let info: serde_json::Value = fs::read(d.join("rollback.json"))
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok())
            .unwrap_or_default();
        out.push(Quarantined {
            stamp: e.file_name().to_string_lossy().into_owned(),
            time: info["time"].as_u64().unwrap_or(0),
            target: info["target"].as_u64().unwrap_or(0),
            versions: list_versions(&d.join("versions"))?,
            live: d.join("live/upper").exists(),
        });
    }
    out.sort_by_key(|q| q.time);
    Ok(out)
}

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
        crate::journal::append(&b.journal(), "gc", serde_json::json!({"purged": n}))?;
    }
    Ok(n)
}

/// Finishes or undoes what a crash interrupted. Call under the exclusive
/// operations lock.
pub fn recover(b: &BoxDir) -> Result<(), StoreError> {
    let pending = b.pending_dir();
    crate::layer::restore_recorded(&pending);
    if let Ok(rd) = fs::read_dir(&pending) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            if let Some(n) = name.strip_prefix("snap-") {
                let target = b.versions_dir().join(n);
                if p.join("layer").exists() && p.join("manifest.json").exists() && !target.exists()
                {
                    // The live layer was moved in: the version is complete.
                    rename(&p, &target)?;
                    sync_dir(&b.versions_dir());
                } else {
                    // The live layer never left: nothing happened.
                    remove_tree(&p).map_err(StoreError::io("remove", &p))?;
                }
            } else if name == "commit-intent.json" {
                recover_commit_intent(&p)?;
            } else if let Some(n) = name.strip_prefix("commit-old-") {
                // A commit was replacing version n: finish or undo it.
                let target = b.versions_dir().join(n);
                let new = pending.join(format!("commit-{n}"));
                if !target.exists() {
                    let from = if new.join("digest").exists() {
                        &new
                    } else {
                        &p
                    };
                    rename(from, &target)?;
                    sync_dir(&b.versions_dir());
                }
                remove_tree(&p).map_err(StoreError::io("remove", &p))?;
                remove_tree(&new).map_err(StoreError::io("remove", &new))?;
            } else if let Some(n) = name.strip_prefix("commit-") {
                // Never renamed into place (else it would not be here), and
                // no older version waits for it: drop it.
                if !pending.join(format!("commit-old-{n}")).exists() {
                    remove_tree(&p).map_err(StoreError::io("remove", &p))?;
                }
            } else if name.starts_with("gc-") || name.starts_with("pull-") {
                // A pull's stage is complete only once renamed into versions/.
                remove_tree(&p).map_err(StoreError::io("remove", &p))?;
            } else if name.starts_with("squash-") {
                crate::squash::recover_squash(b, &p)?;
            }
        }
    }
    if let Ok(rd) = fs::read_dir(b.quarantine_dir()) {
        for e in rd.flatten() {
            let qd = e.path();
            if qd.join(".incomplete").exists() {
                let info: serde_json::Value = fs::read(qd.join("rollback.json"))
                    .ok()
                    .and_then(|t| serde_json::from_slice(&t).ok())
                    .unwrap_or_default();
                match info["target"].as_u64() {
                    Some(t) => finish_rollback(b, &qd, t)?,
                    // The marker exists but the plan does not: nothing moved yet.
                    None => remove_tree(&qd).map_err(StoreError::io("remove", &qd))?,
                }
            }
        }
    }
    Ok(())
}

/// What `verify` found wrong.
#[derive(Debug)]
pub struct VerifyFailure {
    /// The first version that does not match.
    pub version: u64,
    /// Why, for a human: a path in it is quoted (see `quote`).
    pub reason: String,
}

/// Re-hashes every version and checks the chain of digests. Returns the
/// first failure, oldest first.
pub fn verify(b: &BoxDir) -> Result<Option<VerifyFailure>, StoreError> {
    let _ops = b.ops_lock(false)?;
    let versions = b.versions()?;
    let mut parent: Option<String> = None;
    for v in &versions {
        let fail = |reason: String| {
            Ok(Some(VerifyFailure {
                version: v.number,
                reason,
            }))
        };
        if v.manifest.body.version != v.number {
            return fail(format!(
                "its manifest says version {}",
                v.manifest.body.version
            ));
        }
        if v.manifest.body.digest() != v.manifest.digest {
            return fail("its manifest does not match its digest".into());
        }
        if v.manifest.body.parent != parent {
            return fail("its parent digest is not the digest of the version below".into());
        }
        let cut: Vec<String> = crate::cut::of_layer(&v.layer())
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if cut != v.manifest.body.committed {
            return fail(format!(
                "its {} does not match its manifest",
                crate::cut::FILE
            ));
        }
        let map = crate::manifest::read_owner_map(&v.dir);
        if let Some(path) =
            crate::manifest::verify_layer_mapped(&v.layer(), &v.manifest, &b.pending_dir(), map)?
        {
            return fail(format!(
                "{} differs from the manifest",
                crate::quote::text(&format!("/{path}"))
            ));
        }
        parent = Some(v.manifest.digest.clone());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::describe_numbers;

    #[test]
    fn version_numbers_read_as_ranges() {
        assert_eq!(describe_numbers(&[]), "no versions");
        assert_eq!(describe_numbers(&[4]), "version 4");
        assert_eq!(describe_numbers(&[1, 2, 3]), "versions 1-3");
        assert_eq!(describe_numbers(&[1, 2, 3, 5, 9]), "versions 1-3, 5 and 9");
        assert_eq!(describe_numbers(&[3, 7]), "versions 3 and 7");
    }
}
