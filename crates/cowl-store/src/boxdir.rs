//! The store and the directory of one box.
//!
//! ```text
//! $COWL_HOME/boxes/<name>/
//!   box.toml        settings and policy
//!   versions/       frozen layers (the versions issue fills this)
//!   live/upper/     the live layer: every write of the app lands here
//!   live/work/      overlayfs scratch, one subdirectory per overlay
//!   mnt/            where the box's root is assembled in its own mount namespace
//!   lock            held by the box's supervisor and init while it runs
//!   state           the running init's pid (JSON)
//! ```

pub use crate::fsutil::{remove_beneath, remove_tree, write_atomic};
pub(crate) use crate::fsutil::{replace_file, sync_dir};
use crate::{BoxName, BoxSettings, Mode, RunState, StoreError};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The directories every box has, relative to the box directory.
pub(crate) const BOX_DIRS: [&str; 4] = ["live", "live/work", "versions", "mnt"];

/// The files every box has, relative to the box directory.
pub(crate) const BOX_FILES: [&str; 2] = ["box.toml", "lock"];

/// errno values of a rename onto an existing directory.
const ENOTEMPTY: i32 = 39;
const EEXIST: i32 = 17;

/// The root of all boxes of one user.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    uid: u32,
}

impl Store {
    /// Opens (creating if needed) the store at `root` for the user `uid`.
    /// The root is made absolute and canonical, so that the path the sandbox
    /// hides inside every box is the one the kernel sees.
    pub fn open(root: &Path, uid: u32) -> Result<Self, StoreError> {
        let err = |source| StoreError::StoreDir {
            path: root.to_owned(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root.join("boxes"))
            .map_err(err)?;
        let root = fs::canonicalize(root).map_err(err)?;
        let store = Store { root, uid };
        store.check_dir(None, &store.boxes_dir())?;
        Ok(store)
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The uid that owns the store.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// A store at `root` (already canonical), opening nothing.
    pub(crate) fn at(root: PathBuf, uid: u32) -> Store {
        Store { root, uid }
    }

    pub(crate) fn boxes_dir(&self) -> PathBuf {
        self.root.join("boxes")
    }

    /// Where the box of this name lives (or would live).
    pub fn box_path(&self, name: &BoxName) -> PathBuf {
        self.boxes_dir().join(name.as_str())
    }

    /// The names of all boxes, sorted. Half-made or half-removed directories
    /// (names starting with `.`) are not boxes.
    pub fn list(&self) -> Result<Vec<BoxName>, StoreError> {
        let dir = self.boxes_dir();
        let rd = match fs::read_dir(&dir) {
            // A store half deleted by hand has no boxes, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.map_err(StoreError::io("read", &dir))?,
        };
        let mut names: Vec<BoxName> = rd
            .flatten()
            .filter_map(|e| BoxName::new(e.file_name().to_str()?).ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Opens an existing box without writing to it, checking that nothing
    /// in it was replaced (tampered with: an error) and that nothing of it
    /// is missing (damaged: [`StoreError::Damaged`], naming every problem).
    /// The check costs a few stats and one lookup per version; it reads no
    /// layer. What a crash interrupted is finished by the next step the
    /// caller names: [`Opened::recover`].
    pub fn open_box(&self, name: &BoxName) -> Result<Opened, StoreError> {
        let path = self.boxes_dir().join(name.as_str());
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchBox {
                    name: name.to_string(),
                })
            }
            Err(e) => return Err(StoreError::io("stat", &path)(e)),
            Ok(_) => {}
        }
        self.check_dir(Some(name), &path)?;
        let top = self.top_level_problems(name, &path)?;
        let toml_missing = top.iter().any(|(rel, _)| *rel == "box.toml");
        let mut problems: Vec<String> = top.into_iter().map(|(_, p)| p).collect();
        // The live upper is made by the sandbox on the first run.
        if fs::symlink_metadata(path.join("live/upper")).is_ok() {
            self.check_dir(Some(name), &path.join("live/upper"))?;
        }
        let toml = path.join("box.toml");
        let settings = if toml_missing {
            None
        } else {
            match BoxSettings::load(&toml) {
                Ok(s) => Some(s),
                Err(StoreError::BadSettings { message, .. }) => {
                    problems.push(format!("box.toml does not parse ({message})"));
                    None
                }
                Err(e) => {
                    problems.push(format!("box.toml cannot be read ({e})"));
                    None
                }
            }
        };
        let damaged = |problems| StoreError::Damaged {
            name: name.to_string(),
            problems,
        };
        let Some(settings) = settings.filter(|_| problems.is_empty()) else {
            return Err(damaged(problems));
        };
        let b = BoxDir {
            name: name.clone(),
            path,
            settings,
        };
        // A box a crash left half-changed is checked once it is recovered:
        // until then a version may be half moved.
        let interrupted = b.needs_recovery();
        if !interrupted {
            b.check_versions()?;
        }
        Ok(Opened { b, interrupted })
    }

    /// Opens the box as [`Store::open_box`] does, creating it with `mode`
    /// when it does not exist. Returns the box and whether it was made now.
    pub fn open_or_create(&self, name: &BoxName, mode: Mode) -> Result<(Opened, bool), StoreError> {
        match self.open_box(name) {
            Err(StoreError::NoSuchBox { .. }) => {}
            other => return other.map(|o| (o, false)),
        }
        // Build the box beside its final place and rename it in: a crash
        // leaves a dot-directory that no command treats as a box.
        let staging = self
            .boxes_dir()
            .join(format!(".new-{}-{}", name, std::process::id()));
        let _ = remove_tree(&staging);
        let mkdir = |p: &Path| {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(p)
                .map_err(StoreError::io("create", p))
        };
        mkdir(&staging)?;
        for d in BOX_DIRS {
            mkdir(&staging.join(d))?;
        }
        write_atomic(
            &staging.join("box.toml"),
            BoxSettings::new(mode).to_toml().as_bytes(),
        )?;
        write_atomic(&staging.join("lock"), b"")?;
        let target = self.boxes_dir().join(name.as_str());
        match fs::rename(&staging, &target) {
            Ok(()) => {
                sync_dir(&self.boxes_dir());
                Ok((self.open_box(name)?, true))
            }
            // Another cowl made it first: use theirs.
            Err(e) if matches!(e.raw_os_error(), Some(ENOTEMPTY | EEXIST)) => {
                let _ = remove_tree(&staging);
                Ok((self.open_box(name)?, false))
            }
            Err(e) => {
                let _ = remove_tree(&staging);
                Err(StoreError::io("create", &target)(e))
            }
        }
    }

    /// Removes a box the caller holds (see [`Store::remove`]).
    pub fn remove_box(&self, b: &BoxDir) -> Result<(), StoreError> {
        self.remove(&b.name, None)
    }

    /// Deletes leftovers of interrupted creations and removals.
    pub fn sweep(&self) {
        let Ok(rd) = fs::read_dir(self.boxes_dir()) else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            if n.starts_with(".trash-") {
                let _ = remove_tree(&e.path());
            }
        }
    }
}

/// One box's directory and settings.
#[derive(Debug, Clone)]
pub struct BoxDir {
    name: BoxName,
    path: PathBuf,
    /// The parsed `box.toml`.
    pub settings: BoxSettings,
}

/// A box as [`Store::open_box`] found it, before recovery (its step,
/// `recover`, is in `history::recovery`).
#[derive(Debug)]
#[must_use = "a box is used once `recover` has finished what a crash interrupted"]
pub struct Opened {
    pub(crate) b: BoxDir,
    pub(crate) interrupted: bool,
}

/// Held while a box runs: an exclusive `flock` on its `lock` file. The
/// supervisor and the box's init share it, so the lock lasts exactly as long
/// as the box's mounts can exist, and no second overlay is ever mounted on
/// the same upper directory.
#[derive(Debug)]
pub struct BoxLock {
    pub(crate) file: File,
}

impl BoxLock {
    /// The locked file, for passing its descriptor to the box's init.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl BoxDir {
    /// The box's name.
    pub fn name(&self) -> &BoxName {
        &self.name
    }

    /// The box directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directories a run of the box uses, relative to its directory:
    /// (the live directory, the live layer, the overlay work directories,
    /// the scratch mount point). Runs open them beneath the box directory
    /// without following symlinks.
    pub fn run_dirs() -> [&'static str; 4] {
        ["live", "live/upper", "live/work", "mnt"]
    }

    /// The box's network log.
    pub fn netlog(&self) -> PathBuf {
        Self::netlog_in(&self.path)
    }

    /// The network log of the box whose directory is `dir`.
    pub fn netlog_in(dir: &Path) -> PathBuf {
        dir.join("netlog.jsonl")
    }

    /// The live layer's upper directory.
    pub fn upper(&self) -> PathBuf {
        self.path.join("live/upper")
    }

    /// The overlay work directories' parent.
    pub fn work(&self) -> PathBuf {
        self.path.join("live/work")
    }

    /// The directory the box's root is assembled on.
    pub fn mnt(&self) -> PathBuf {
        self.path.join("mnt")
    }

    fn needs_recovery(&self) -> bool {
        let pending = fs::read_dir(self.path.join("pending"))
            .map(|mut r| r.next().is_some())
            .unwrap_or(false);
        pending
            || fs::read_dir(self.path.join("quarantine"))
                .map(|rd| rd.flatten().any(|e| e.path().join(".incomplete").exists()))
                .unwrap_or(false)
    }

    /// The frozen layers of the box's versions, newest first
    /// (`versions/<n>/layer`, by number). A layer that is not a plain
    /// directory of the caller's is tampered with: an error, never skipped.
    pub fn version_layers(&self) -> Result<Vec<PathBuf>, StoreError> {
        let dir = self.path.join("versions");
        let rd = fs::read_dir(&dir).map_err(StoreError::io("read", &dir))?;
        let mut v: Vec<(u64, PathBuf)> = Vec::new();
        for e in rd.flatten() {
            let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            let store = Store {
                root: PathBuf::new(),
                uid: self.owner()?,
            };
            store.check_dir(Some(&self.name), &e.path())?;
            store.check_dir(Some(&self.name), &e.path().join("layer"))?;
            v.push((n, e.path().join("layer")));
        }
        v.sort_by_key(|e| std::cmp::Reverse(e.0));
        Ok(v.into_iter().map(|(_, p)| p).collect())
    }

    /// Checks that `path` (in the box) is a plain directory of the box's owner.
    pub fn check_plain_dir(&self, path: &Path) -> Result<(), StoreError> {
        let store = Store {
            root: PathBuf::new(),
            uid: self.owner()?,
        };
        store.check_dir(Some(&self.name), path)
    }

    fn owner(&self) -> Result<u32, StoreError> {
        fs::symlink_metadata(&self.path)
            .map(|m| m.uid())
            .map_err(StoreError::io("stat", &self.path))
    }

    /// Tries to take the run lock without waiting. `None`: the box is running.
    pub fn try_lock(&self) -> Result<Option<BoxLock>, StoreError> {
        let p = self.path.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&p)
            .map_err(StoreError::io("open", &p))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(BoxLock { file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(StoreError::io("lock", &p)(e)),
        }
    }

    /// The state of the running box, or `None` when it is not running.
    pub fn running(&self) -> Result<Option<RunState>, StoreError> {
        if self.try_lock()?.is_some() {
            return Ok(None);
        }
        Ok(self.read_state())
    }

    /// The state file as last written, whether or not the box runs.
    pub fn read_state(&self) -> Option<RunState> {
        let text = fs::read(self.path.join("state")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Records the running init. Only the lock holder calls this. Not
    /// synced: the state only matters while the box runs, and the lock says
    /// whether it does.
    pub fn write_state(&self, state: &RunState, _lock: &BoxLock) -> Result<(), StoreError> {
        let text = serde_json::to_vec(state).unwrap_or_default();
        replace_file(&self.path.join("state"), &text, false)
    }

    /// Forgets the running init. Only the lock holder calls this.
    pub fn clear_state(&self, _lock: &BoxLock) {
        let _ = fs::remove_file(self.path.join("state"));
    }

    /// Replaces `box.toml`.
    pub fn save_settings(&mut self, settings: BoxSettings) -> Result<(), StoreError> {
        write_atomic(&self.path.join("box.toml"), settings.to_toml().as_bytes())?;
        self.settings = settings;
        Ok(())
    }

    /// Bytes the box holds on disk.
    pub fn allocated_bytes(&self) -> u64 {
        crate::usage::allocated_bytes(&self.path)
    }
}
