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
