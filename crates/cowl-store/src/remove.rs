//! Removing boxes, and the whole store, whatever state they are in.
//!
//! An app can leave directories of mode 0555 or 000 in its layers, which
//! `rm -rf` cannot get through; a half-deleted box has no `box.toml` to open
//! it by. Removal therefore needs neither: it goes by the box's name, takes
//! the box's run lock when the box still has one (so no run starts in it
//! meanwhile), renames the box out of sight, and deletes its files making
//! each directory writable first.

use crate::boxdir::{remove_tree, sync_dir};
use crate::{BoxLock, BoxName, RunState, Store, StoreError};
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `O_NOFOLLOW`: a lock or state file that is a symlink is never followed.
const O_NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

/// Who has a box, as far as its lock and state files tell, whatever state
/// the rest of its directory is in.
#[derive(Debug)]
pub enum BoxHolder {
    /// Nobody: the run lock, held now by the caller, keeps runs out until
    /// it is dropped.
    Free(BoxLock),
    /// Another process holds the run lock: the box's init (the state says
    /// which), or another cowl command (no state).
    Held(Option<RunState>),
    /// The box has no lock file cowl can use (missing, or not a plain
    /// file): its state file, if it has one, is all that says whether an
    /// init of it may still run.
    NoLock(Option<RunState>),
}

/// Reads a small file of the box without following a symlink.
fn read_nofollow(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(buf)
}

impl Store {
    /// Opens the store at `root` if there is one, creating nothing: for
    /// removing it. `None`: no store there.
    pub fn open_existing(root: &Path, uid: u32) -> Result<Option<Store>, StoreError> {
        let root = match fs::canonicalize(root) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::StoreDir {
                    path: root.to_owned(),
                    source,
                })
            }
        };
        let store = Store::at(root, uid);
        if fs::symlink_metadata(store.boxes_dir()).is_ok() {
            store.check_dir(None, &store.boxes_dir())?;
        }
        Ok(Some(store))
    }

    /// Who has box `name`: takes its run lock if nobody does. Works on a
    /// damaged or tampered box too (a directory that is not one, a lock
    /// that is a symlink: never followed).
    pub fn holder(&self, name: &BoxName) -> Result<BoxHolder, StoreError> {
        let path = self.box_path(name);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchBox {
                    name: name.to_string(),
                })
            }
            Ok(md) if md.is_dir() => {}
            // A symlink or a file where the box should be: nothing of it
            // is read, and nothing runs from it.
            _ => return Ok(BoxHolder::NoLock(None)),
        }
        let state =
            || read_nofollow(&path.join("state")).and_then(|t| serde_json::from_slice(&t).ok());
        let lock = path.join("lock");
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(O_NOFOLLOW)
            .open(&lock)
        {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => f,
            _ => return Ok(BoxHolder::NoLock(state())),
        };
        match file.try_lock() {
            Ok(()) => Ok(BoxHolder::Free(BoxLock { file })),
            Err(fs::TryLockError::WouldBlock) => Ok(BoxHolder::Held(state())),
            Err(fs::TryLockError::Error(e)) => Err(StoreError::io("lock", &lock)(e)),
        }
    }

    /// Removes box `name`, whole or damaged, whatever modes its layers
    /// carry. The caller holds its run lock (`lock`, from [`Store::holder`])
    /// when the box has one, or has made sure no init of it runs. The box
    /// is renamed out of sight first, so it disappears at once; a crash
    /// while its files are deleted leaves a dot-directory that no command
    /// takes for a box and that the next `cowl ls` or `cowl gc` deletes.
    pub fn remove(&self, name: &BoxName, lock: Option<BoxLock>) -> Result<(), StoreError> {
        let path = self.box_path(name);
        let trash = self.boxes_dir().join(format!(
            ".trash-{}-{}-{}",
            name,
            std::process::id(),
            crate::time::now()
        ));
        match fs::rename(&path, &trash) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchBox {
                    name: name.to_string(),
                })
            }
            Err(e) => return Err(StoreError::io("remove", &path)(e)),
            Ok(()) => {}
        }
        sync_dir(&self.boxes_dir());
        // Runs are kept out by the lock until the box is out of sight.
        drop(lock);
        remove_tree(&trash).map_err(|source| StoreError::Leftover {
            path: trash.clone(),
            source,
        })
    }

    /// Removes what is left of the store once its boxes are: the leftovers
    /// of interrupted creations and removals, `boxes/`, and the store
    /// directory itself. Never anything cowl did not make: an entry of
    /// `boxes/` that is neither a leftover nor removed before (a box made
    /// meanwhile, a file put there by hand), or of the store directory that
    /// is not `boxes/`, stays, and so does the directory holding it.
    /// Returns what stayed.
    pub fn remove_store(&self) -> Result<Vec<PathBuf>, StoreError> {
        let boxes = self.boxes_dir();
        if let Ok(rd) = fs::read_dir(&boxes) {
            for e in rd.flatten() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if n.starts_with(".trash-") || n.starts_with(".new-") {
                    let p = e.path();
                    remove_tree(&p).map_err(|source| StoreError::Leftover { path: p, source })?;
                }
            }
        }
        let root = self.root().to_path_buf();
        let mut left = Vec::new();
        for dir in [&boxes, &root] {
            match fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                    let mut held: Vec<PathBuf> = fs::read_dir(dir)
                        .map(|rd| rd.flatten().map(|e| e.path()).collect())
                        .unwrap_or_default();
                    held.sort();
                    left.extend(held.into_iter().filter(|p| p != &boxes));
                    break;
                }
                Err(e) => return Err(StoreError::io("remove", dir)(e)),
            }
        }
        if let Some(parent) = root.parent() {
            sync_dir(parent);
        }
        Ok(left)
    }
}
