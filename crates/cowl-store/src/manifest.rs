//! A version's manifest: every entry of its frozen layer (path, kind, mode,
//! owner, size, mtime, xattrs, BLAKE3 of its content), totals, the parent's
//! digest, and its own digest over a canonical encoding, so each digest
//! commits to the whole history below it, as a git commit does.

use crate::layer::EntryKind;
use crate::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How a version was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Made {
    /// Automatically, when a run of the box ended.
    Run,
    /// By `cowl snapshot`.
    Snapshot,
    /// By `cowl commit`.
    Commit,
    /// By `cowl pull`.
    Pull,
    /// By `cowl squash` or retention.
    Squash,
}

impl Made {
    /// Its name in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Made::Run => "run",
            Made::Snapshot => "snapshot",
            Made::Commit => "commit",
            Made::Pull => "pull",
            Made::Squash => "squash",
        }
    }
}

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the layer's root.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits and file type bits as stat gives them.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (files), target length (symlinks), 0 otherwise.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: i64,
    /// Extended attributes, hex-encoded values (the overlay's own included:
    /// `user.overlay.opaque` is part of what the layer means).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    /// BLAKE3 of the content (files) or of the target (symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
}

/// Counts of what a version changed relative to what was below it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Entries in the layer.
    pub entries: u64,
    /// Bytes of file content in the layer.
    pub bytes: u64,
    /// Paths added.
    pub added: u64,
    /// Paths modified (content, type or metadata).
    pub modified: u64,
    /// Paths deleted.
    pub deleted: u64,
}

/// The part of a manifest its digest covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestBody {
    /// Format number.
    pub format: u32,
    /// The version number.
    pub version: u64,
    /// The digest of the version below, `None` for version 1.
    pub parent: Option<String>,
    /// When it was made, seconds since the epoch.
    pub created: u64,
    /// What the user or cowl said of it.
    pub message: String,
    /// How it was made.
    pub made: Made,
    /// Totals.
    pub totals: Totals,
    /// Every entry, sorted by path.
    pub entries: Vec<Entry>,
    /// Files (relative to `/`) whose setuid or setgid bits or file
    /// capabilities cowl removed before the layer was frozen: evidence for
    /// `cowl scan`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stripped: Vec<String>,
    /// For a version made by `cowl commit`: the paths (relative to `/`)
    /// applied to the host. Below this version, the box holds nothing at or
    /// under them: the host shows through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub committed: Vec<String>,
}

/// A manifest: body and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// What the digest covers.
    #[serde(flatten)]
    pub body: ManifestBody,
    /// BLAKE3 of the canonical encoding of the body.
    pub digest: String,
}

const DOMAIN: &[u8] = b"cowl-manifest-1\n";

impl ManifestBody {
    /// The digest of this body: BLAKE3 over a domain tag and the body's JSON,
    /// whose field order and entry order are fixed.
    pub fn digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(DOMAIN);
        h.update(&serde_json::to_vec(self).unwrap_or_default());
        h.finalize().to_hex().to_string()
    }

    /// Seals the body with its digest.
    pub fn seal(self) -> Manifest {
        let digest = self.digest();
        Manifest { body: self, digest }
    }
}

impl Manifest {
    /// Reads a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, StoreError> {
        let bytes = std::fs::read(path).map_err(StoreError::io("read", path))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::BadSettings {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// The first 12 hex digits of the digest.
    pub fn short(&self) -> &str {
        &self.digest[..self.digest.len().min(12)]
    }
}

/// Walks a layer and lists its entries, hashing content. Costs what the
/// layer holds, nothing of the host.
pub fn scan_layer(root: &Path) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            // A directory the caller may not list (a rootless view of root's
            // 0700 directory): nothing of the app's can be in it.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => continue,
            Err(e) => return Err(StoreError::io("read", &dir)(e)),
        };
        for e in rd {
            let e = e.map_err(StoreError::io("read", &dir))?;
            let r = rel.join(e.file_name());
            let p = root.join(&r);
            let Some((kind, md)) = EntryKind::of(&p) else {
                continue;
            };
            out.push(entry(&p, &r, kind, &md)?);
            if kind.is_dir() {
                stack.push(r);
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The manifest entry of one layer path.
pub fn entry(
    p: &Path,
    rel: &Path,
    kind: EntryKind,
    md: &std::fs::Metadata,
) -> Result<Entry, StoreError> {
    let blake3 = match kind {
        EntryKind::File => Some(hash_file(p)?),
        EntryKind::Symlink => {
            let t = std::fs::read_link(p).map_err(StoreError::io("read", p))?;
            Some(
                blake3::hash(t.as_os_str().as_encoded_bytes())
                    .to_hex()
                    .to_string(),
            )
        }
        _ => None,
    };
    Ok(Entry {
        path: rel.to_string_lossy().into_owned(),
        kind,
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        size: if kind.is_dir() { 0 } else { md.size() },
        mtime: md.mtime(),
        mtime_nsec: md.mtime_nsec(),
        xattrs: xattrs(p),
        blake3,
    })
}

fn hash_file(p: &Path) -> Result<String, StoreError> {
    hash_contents(p)
        .map(|h| h.to_hex().to_string())
        .map_err(StoreError::io("read", p))
}

/// BLAKE3 of the file at `p`. One buffer per thread serves every file (a
/// snapshot hashes each file of a layer: a buffer made and zeroed per file
/// cost more than the reading), and the file is opened without updating
/// its access time where the caller may (a store's own files), so hashing
/// does not write an inode per file.
pub(crate) fn hash_contents(p: &Path) -> std::io::Result<blake3::Hash> {
    use rustix::fs::{Mode, OFlags};
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 256 * 1024]);
    }
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let mut f = match rustix::fs::open(p, flags | OFlags::NOATIME, Mode::empty()) {
        Ok(fd) => std::fs::File::from(fd),
        Err(rustix::io::Errno::PERM) => std::fs::File::open(p)?,
        Err(e) => return Err(e.into()),
    };
    let mut h = blake3::Hasher::new();
    BUF.with_borrow_mut(|buf| -> std::io::Result<()> {
        loop {
            let n = f.read(buf)?;
            if n == 0 {
                return Ok(());
            }
            h.update(&buf[..n]);
        }
    })?;
    Ok(h.finalize())
}

fn xattrs(p: &Path) -> BTreeMap<String, String> {
    let Ok(names) = xattr::list(p) else {
        return BTreeMap::new();
    };
    names
        .filter_map(|n| {
            let v = xattr::get(p, &n).ok().flatten()?;
            Some((n.to_string_lossy().into_owned(), hex(&v)))
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The overlay's own bookkeeping attributes: where a copied-up entry came
/// from (`origin`, `uuid`) and which directories hold such entries
/// (`impure`). They describe the lower filesystem of the machine that made
/// the layer, mean nothing anywhere else, and are never carried to a mirror
/// (see `layertar`); unlike `opaque`, `redirect` or `metacopy` they do not
/// change what the layer shows.
pub fn is_overlay_bookkeeping(name: &str) -> bool {
    matches!(
        name,
        "user.overlay.origin" | "user.overlay.uuid" | "user.overlay.impure"
    )
}

/// Labels the host assigns (`security.selinux`, `security.SMACK64`,
/// `security.ima` …): a version records them, but they are the host's
/// policy, not the app's content, and a mirror never carries them (a pulled
/// file gets the labels of the host that pulled it). `security.capability`
/// is not one: privilege, stripped before a file can be in a version. Nor
/// are `trusted.*` attributes (root's, not the app's), which a mirror does
/// not carry either (`layertar::travels`) and which verification passes
/// over likewise.
pub fn is_host_assigned(name: &str) -> bool {
    (name.starts_with("security.") && name != "security.capability")
        || (name.starts_with("trusted.") && !name.starts_with("trusted.overlay."))
}

/// Two entries are the same, the overlay's bookkeeping and host-assigned
/// attributes aside.
fn same_entry(x: &Entry, y: &Entry) -> bool {
    if x == y {
        return true;
    }
    let strip = |e: &Entry| {
        let mut e = e.clone();
        e.xattrs
            .retain(|k, _| !is_overlay_bookkeeping(k) && !is_host_assigned(k));
        e
    };
    strip(x) == strip(y)
}

/// Checks a frozen layer against its manifest: same entries, same content.
/// Returns the first path that differs.
/// `record_dir` keeps the note of directories opened for reading meanwhile.
pub fn verify_layer(
    root: &Path,
    m: &Manifest,
    record_dir: &Path,
) -> Result<Option<String>, StoreError> {
    verify_layer_mapped(root, m, record_dir, None)
}

/// The owner (uid, gid) a version's manifest records, and the owner its
/// layer has on this machine: a rootless box pulled by another user holds
/// that user's files under manifests (and digests) made by the first.
pub type OwnerMap = ((u32, u32), (u32, u32));

/// The file beside a version's manifest that records its `OwnerMap`.
pub const OWNER_MAP: &str = "owner-map";

/// Reads a version directory's owner map (`UID:GID UID:GID`), if any.
pub fn read_owner_map(version_dir: &Path) -> Option<OwnerMap> {
    let text = std::fs::read_to_string(version_dir.join(OWNER_MAP)).ok()?;
    let pair = |s: &str| -> Option<(u32, u32)> {
        let (u, g) = s.split_once(':')?;
        Some((u.parse().ok()?, g.parse().ok()?))
    };
    let mut it = text.split_whitespace();
    Some((pair(it.next()?)?, pair(it.next()?)?))
}

/// The text of an owner map file.
pub fn owner_map_text(((fu, fg), (tu, tg)): OwnerMap) -> String {
    format!("{fu}:{fg} {tu}:{tg}\n")
}

/// Puts back, in manifest entries of the layer at `root`, the modes its
/// directories have when not opened for reading.
pub fn correct_modes(opened: &crate::layer::Opened, root: &Path, entries: &mut [Entry]) {
    let changed = opened.changed_modes();
    if changed.is_empty() {
        return;
    }
    let orig: std::collections::HashMap<&Path, u32> =
        changed.iter().map(|(p, m)| (p.as_path(), *m)).collect();
    for e in entries {
        if let Some(m) = orig.get(root.join(&e.path).as_path()) {
            e.mode = (e.mode & !0o7777) | m;
        }
    }
}

/// Like `verify_layer`, with the manifest's owner read through `map`.
pub fn verify_layer_mapped(
    root: &Path,
    m: &Manifest,
    record_dir: &Path,
    map: Option<OwnerMap>,
) -> Result<Option<String>, StoreError> {
    let mapped = |e: &Entry| -> Entry {
        let mut e = e.clone();
        if let Some(((fu, fg), (tu, tg))) = map {
            if e.uid == fu {
                e.uid = tu;
            }
            if e.gid == fg {
                e.gid = tg;
            }
        }
        e
    };
    let opened = crate::layer::open_for_reading(record_dir, &[root]);
    let mut now = scan_layer(root)?;
    correct_modes(&opened, root, &mut now);
    drop(opened);
    // A socket file is left out of mirrors (a tar cannot hold one, and no
    // process listens on it once its run ended): it is not compared.
    let kept = |e: &&Entry| e.kind != EntryKind::Socket;
    let mut a = now.iter().filter(kept);
    let mut b = m.body.entries.iter().filter(kept);
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ok(None),
            (Some(x), Some(y)) if same_entry(x, &mapped(y)) => continue,
            (Some(x), Some(y)) => {
                return Ok(Some(if x.path <= y.path {
                    x.path.clone()
                } else {
                    y.path.clone()
                }))
            }
            (Some(x), None) => return Ok(Some(x.path.clone())),
            (None, Some(y)) => return Ok(Some(y.path.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The shared buffer serves files smaller and larger than itself, one
    /// after another, and each hash is the file's own.
    #[test]
    fn hashes_of_files_of_every_size_are_their_own() {
        let dir = std::env::temp_dir().join(format!("cowl-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, len) in [0usize, 1, 4095, 256 * 1024, 256 * 1024 + 1, 1 << 20, 7]
            .into_iter()
            .enumerate()
        {
            let data: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
            let p = dir.join(format!("f{i}"));
            std::fs::write(&p, &data).unwrap();
            assert_eq!(
                hash_contents(&p).unwrap(),
                blake3::hash(&data),
                "{len} bytes"
            );
        }
        assert!(hash_contents(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
