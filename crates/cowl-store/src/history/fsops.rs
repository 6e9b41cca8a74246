//! The file operations every history step shares: renames and directory
//! making that report the path, and making a directory movable.

use crate::StoreError;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Moving a directory to another parent needs write access to it (its `..`
/// changes); a live upper carries the mode of the host's `/`, often 0555.
pub(super) fn make_movable(dir: &Path) -> Result<(), StoreError> {
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

pub(super) fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    fs::rename(from, to).map_err(|source| StoreError::Io {
        op: "rename",
        path: from.to_owned(),
        source,
    })
}

pub(super) fn mkdir(p: &Path) -> Result<(), StoreError> {
    match fs::create_dir(p) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(StoreError::io("create", p)(e))
        }
        _ => Ok(()),
    }
}
