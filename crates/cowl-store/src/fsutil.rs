//! The store's file-system steps: a file replaced atomically (and durably),
//! a directory synced, a tree a box wrote removed whatever its modes, an
//! entry removed beneath a root without following a symlink. At the bottom
//! of the crate: they know no box.

use crate::StoreError;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `data` to a temporary file beside `path`, syncs it and renames it
/// over `path`, then syncs the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    replace_file(path, data, true)
}

/// Replaces `path` by rename, so a reader sees the old or the new content,
/// never a mix; with `durable`, synced to disk too.
pub(crate) fn replace_file(path: &Path, data: &[u8], durable: bool) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        StoreError::io("write", path)(e)
    })?;
    if durable {
        sync_dir(dir);
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Removes `root/rel` (a tree, or one entry), only if every directory on the
/// way below `root` is a real directory: never through a symlink a layer
/// holds. `rel` must be plain names. Nothing to remove is not an error.
pub fn remove_beneath(root: &Path, rel: &Path) -> std::io::Result<()> {
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    if comps.is_empty()
        || !comps
            .iter()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Ok(());
    }
    for c in &comps[..comps.len() - 1] {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.is_dir() => {}
            // Absent, or not a directory: nothing of ours below it.
            _ => return Ok(()),
        }
    }
    remove_tree(&root.join(rel))
}

/// Removes a tree that a box wrote, whatever modes its app left on it:
/// directories are made writable before their entries are removed.
/// Symlinks are removed, never followed.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !md.is_dir() {
        return fs::remove_file(path);
    }
    if md.mode() & 0o700 != 0o700 {
        fs::set_permissions(
            path,
            fs::Permissions::from_mode((md.mode() & 0o7777) | 0o700),
        )?;
    }
    for e in fs::read_dir(path)? {
        remove_tree(&e?.path())?;
    }
    fs::remove_dir(path)
}
