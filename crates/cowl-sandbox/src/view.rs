//! What a box's view is made of: its placements (an overlay of a host
//! directory, a skeleton, a read-only bind), the skeletons' entries, and the
//! path helpers the planning steps share. Plain data: `plan` resolves a
//! spec into these with the steps of `placement` and `hidden`, which import
//! this and not `plan`.

use serde::Serialize;
use std::path::{Component, Path, PathBuf};

/// Host directories that a box never sees: it has its own, in its layer.
pub const PRIVATE_DIRS: [&str; 2] = ["/tmp", "/var/tmp"];

/// Host directories replaced by fresh kernel filesystems inside the box.
pub const SPECIAL_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// What a placement of the view is: the lower base of an overlay (under the
/// box's versions), or a bind of the host's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Base {
    /// An overlay of the host directory at the same path.
    Host,
    /// An overlay of a skeleton: the directories the kernel will not take as
    /// lower layers in a user namespace because mounts lie below them, or a
    /// kernel filesystem's directory that holds mounts (see `placement`). It
    /// lives on the box's own scratch filesystem, never in its layers.
    Skeleton {
        /// Its entries, parents before children, as paths relative to `path`.
        entries: Vec<SkeletonEntry>,
    },
    /// An overlay of nothing of the host: the box's own directory (`/tmp`,
    /// `/var/tmp`).
    Empty,
    /// The host's tree bound read-only, with the mounts below it: a
    /// read-only mount, or a directory the caller cannot write that holds
    /// only read-only mounts (every squashfs of `/snap` in one bind).
    HostReadOnly,
    /// The host's file bound read-only (a file mount point).
    HostFile,
    /// Cannot be overlaid: the host directory bound read-only.
    ReadOnly {
        /// Why.
        reason: String,
    },
}

impl Base {
    /// Whether this placement is an overlay (with an upper in the live layer).
    pub fn is_overlay(&self) -> bool {
        matches!(self, Base::Host | Base::Skeleton { .. } | Base::Empty)
    }
}

/// One entry of a skeleton directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkeletonEntry {
    /// Its path relative to the skeleton's root.
    pub name: PathBuf,
    /// What it is.
    #[serde(flatten)]
    pub kind: SkeletonKind,
}

/// What a skeleton entry is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SkeletonKind {
    /// A directory: something is mounted on it, or it is empty on the host.
    Dir {
        /// Its host mode.
        mode: u32,
        /// Its host owner.
        uid: u32,
        /// Its host group.
        gid: u32,
    },
    /// A symlink, recreated with the same target.
    Symlink {
        /// The link's target.
        target: PathBuf,
    },
    /// A file bound read-only from the host.
    File,
    /// A socket or fifo: an empty placeholder, never the host's object. A read-only
    /// bind of a socket still lets the box connect to its listener (a
    /// bind-mounted docker.sock would hand it root on the host).
    Socket,
}

/// One overlay (or read-only view) of the box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerMount {
    /// Where it is seen inside the box (and, for `Base::Host`, the host path).
    pub path: PathBuf,
    /// The box's frozen layers for this path, newest first.
    pub versions: Vec<PathBuf>,
    /// The lowest layer.
    pub base: Base,
    /// Host paths below `path` (relative to it) that the box must not see:
    /// whited out in a layer between the box's versions and the host's
    /// directory, so they stay hidden should they appear while the box runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<PathBuf>,
    /// The host directory holds the store (at its path or through a second
    /// path to it): its overlay takes the host's directory through a
    /// read-only overlay of its own, so no layer lies inside another.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub holds_store: bool,
}

impl LayerMount {
    /// The path of this layer's upper relative to the live layer's root.
    pub fn upper_rel(&self) -> PathBuf {
        rel(&self.path)
    }
}

/// A path relative to `/` ("" for the root itself).
pub fn rel(p: &Path) -> PathBuf {
    p.strip_prefix("/")
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

pub(crate) fn depth(p: &Path) -> usize {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

pub(crate) fn is_under_any(p: &Path, roots: &[&str]) -> bool {
    roots.iter().any(|r| p.starts_with(r))
}

pub(crate) fn layer(path: &Path, base: Base) -> LayerMount {
    LayerMount {
        path: path.to_owned(),
        versions: Vec::new(),
        base,
        hidden: Vec::new(),
        holds_store: false,
    }
}
