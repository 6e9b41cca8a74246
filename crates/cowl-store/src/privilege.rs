//! Privilege bits never leave a box: setuid and setgid bits and file
//! capabilities are stripped from the live layer when a run ends, before it
//! can become a version (CVE-2021-3493, CVE-2023-0386: privilege smuggled
//! through an overlay's upper). Inside the box they are inert already: the
//! overlays are mounted nosuid and the app runs with no_new_privs.

use crate::layer::EntryKind;
use crate::StoreError;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Strips setuid/setgid bits and `security.capability` from every file of
/// the layer; returns the paths it changed. `record_dir`: see
/// `layer::open_for_reading`.
pub fn strip(layer: &Path, record_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let _opened = crate::layer::open_for_reading(record_dir, &[layer]);
    let mut changed = Vec::new();
    let mut stack = vec![layer.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Some((kind, md)) = EntryKind::of(&p) else {
                continue;
            };
            if kind.is_dir() {
                stack.push(p);
                continue;
            }
            if kind != EntryKind::File {
                continue;
            }
            let mut touched = false;
            if md.mode() & 0o6000 != 0 {
                fs::set_permissions(&p, fs::Permissions::from_mode(md.mode() & 0o1777))
                    .map_err(StoreError::io("strip setuid from", &p))?;
                touched = true;
            }
            if matches!(xattr::get(&p, "security.capability"), Ok(Some(_))) {
                xattr::remove(&p, "security.capability")
                    .map_err(StoreError::io("strip capabilities from", &p))?;
                touched = true;
            }
            if touched {
                changed.push(p);
            }
        }
    }
    Ok(changed)
}
