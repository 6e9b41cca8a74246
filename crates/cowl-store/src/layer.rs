//! Reading a layer in overlayfs upper format: files, directories, symlinks,
//! whiteouts (0/0 character devices) and opaque directories
//! (`user.overlay.opaque`).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// What one entry of a layer (or of the host) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory that merges with what is below it.
    Dir,
    /// A directory that hides everything below it.
    OpaqueDir,
    /// A symbolic link.
    Symlink,
    /// Deletes what is below it.
    Whiteout,
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
    /// A character device (other than a whiteout).
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl EntryKind {
    /// The kind of the entry at `path`, not following symlinks; `None` if absent.
    pub fn of(path: &Path) -> Option<(EntryKind, std::fs::Metadata)> {
        let md = std::fs::symlink_metadata(path).ok()?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            if is_opaque(path) {
                EntryKind::OpaqueDir
            } else {
                EntryKind::Dir
            }
        } else if ft.is_file() {
            EntryKind::File
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_char_device() {
            if md.rdev() == 0 {
                EntryKind::Whiteout
            } else {
                EntryKind::CharDevice
            }
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else if ft.is_socket() {
            EntryKind::Socket
        } else {
            EntryKind::BlockDevice
        };
        Some((kind, md))
    }

    /// A directory of either kind.
    pub fn is_dir(self) -> bool {
        matches!(self, EntryKind::Dir | EntryKind::OpaqueDir)
    }

    /// Its name in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::OpaqueDir => "opaque-dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Whiteout => "whiteout",
            EntryKind::Fifo => "fifo",
            EntryKind::Socket => "socket",
            EntryKind::CharDevice => "char-device",
            EntryKind::BlockDevice => "block-device",
        }
    }
}

/// Whether the directory is marked opaque (`user.overlay.opaque` = "y").
pub fn is_opaque(dir: &Path) -> bool {
    matches!(xattr::get(dir, "user.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

/// Directories of layers made readable for a while: the app may have left
/// a directory without read or search permission for its owner (`chmod 000
/// d`), and cowl, running as that owner, must still see what is inside.
/// The modes come back when the guard is dropped, deepest first.
#[derive(Debug, Default)]
pub struct Opened {
    changed: Vec<(std::path::PathBuf, u32)>,
    /// Where the original modes are written down first, so that a crash
    /// while opened is undone by recovery (see `restore_recorded`).
    record: Option<std::path::PathBuf>,
}

impl Opened {
    /// The directories opened for reading and the modes they have when
    /// not opened (for `manifest::correct_modes`).
    pub fn changed_modes(&self) -> &[(std::path::PathBuf, u32)] {
        &self.changed
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let mut reg = registry();
        for (p, mode) in self.changed.drain(..).rev() {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode));
            if let Some(r) = reg.as_mut() {
                r.remove(&p);
            }
        }
        if let Some(r) = self.record.take() {
            let _ = std::fs::remove_file(r);
        }
    }
}

/// Recovery: puts back the modes an interrupted `open_for_reading` wrote
/// down in `record_dir` (files `opened-*`), then drops the records.
pub fn restore_recorded(record_dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(rd) = std::fs::read_dir(record_dir) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with("opened-") {
            continue;
        }
        // Lines: `root\t<hex path>` for each layer opened, then
        // `<octal mode>\t<hex path>` for each directory; paths hex-encoded
        // so that no name (a newline in it, say) can forge a line. Only
        // directories under a recorded root are touched, never through a
        // symlink.
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let mut roots: Vec<std::path::PathBuf> = Vec::new();
        for line in text.lines() {
            if let Some(p) = line.strip_prefix("root\t").and_then(unhex) {
                roots.push(p);
            }
        }
        for line in text.lines().rev() {
            let Some((mode, path)) = line.split_once('\t') else {
                continue;
            };
            let (Ok(m), Some(path)) = (u32::from_str_radix(mode, 8), unhex(path)) else {
                continue;
            };
            let inside = roots.iter().any(|r| path.starts_with(r))
                && !path
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir));
            let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|md| md.is_dir());
            if inside && is_dir && m <= 0o7777 {
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m));
            }
        }
        let _ = std::fs::remove_file(e.path());
    }
}

fn hex_path(p: &Path) -> String {
    p.as_os_str()
        .as_encoded_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unhex(s: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    if s.len() & 1 == 1 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    Some(std::ffi::OsString::from_vec(bytes?).into())
}

type Registry = std::collections::HashMap<std::path::PathBuf, u32>;

fn registry() -> Option<std::sync::MutexGuard<'static, Registry>> {
    static R: std::sync::OnceLock<std::sync::Mutex<Registry>> = std::sync::OnceLock::new();
    R.get_or_init(Default::default).lock().ok()
}

/// The mode `p` has when not opened for reading (`None`: it is not opened).
pub fn original_mode(p: &Path) -> Option<u32> {
    registry().and_then(|r| r.get(p).copied())
}

fn effective_uid() -> u32 {
    static UID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UID.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
            })
            .unwrap_or(u32::MAX)
    })
}

/// Opens every directory under `roots` that its owner (us) cannot read or
/// search. Root reads everything already: nothing to do.
pub fn open_for_reading(record_dir: &Path, roots: &[&Path]) -> Opened {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut g = Opened::default();
    let uid = effective_uid();
    if uid == 0 {
        return g;
    }
    let mut record: Option<std::fs::File> = None;
    let mut stack: Vec<std::path::PathBuf> = roots.iter().map(|r| r.to_path_buf()).collect();
    while let Some(d) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&d) else {
            continue;
        };
        if !md.is_dir() {
            continue;
        }
        let mode = md.mode() & 0o7777;
        if mode & 0o500 != 0o500 && md.uid() == uid {
            // Written down before the change, for recovery after a crash.
            if record.is_none() {
                let _ = std::fs::create_dir_all(record_dir);
                // Unique per guard: guards nest (a squash opens the versions,
                // then the merged layer).
                static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p = record_dir.join(format!("opened-{}-{n}", std::process::id()));
                record = std::fs::File::create(&p).ok();
                if let Some(f) = record.as_mut() {
                    for r in roots {
                        let _ = writeln!(f, "root\t{}", hex_path(r));
                    }
                }
                g.record = Some(p);
            }
            let written = record
                .as_mut()
                .is_some_and(|f| writeln!(f, "{mode:o}\t{}", hex_path(&d)).is_ok());
            if !written
                || std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode | 0o500))
                    .is_err()
            {
                continue;
            }
            g.changed.push((d.clone(), mode));
            if let Some(mut r) = registry() {
                r.insert(d.clone(), mode);
            }
        }
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
    }
    g
}
