//! The cheap check, made each time a box is opened, that nothing of what
//! every box directory holds (`boxdir::BOX_DIRS`, `BOX_FILES`) is missing,
//! and that what is there is what cowl made.
//!
//! A box whose directory was half deleted (an `rm -rf` that stopped at a
//! read-only directory of a layer) or damaged by hand is *damaged*: no
//! command uses it, every command says so and what to do, `cowl verify`
//! lists every problem and `cowl rm --force` removes it.
//!
//! The check is on every command's path, `cowl run`'s start-up included, so
//! it stays cheap: a stat per top-level entry, one listing of `versions/`
//! and one lookup per version (that its `layer/` and `manifest.json` are
//! there). It reads no layer: a file deleted inside one is found by
//! `verify`, which re-hashes them all.

use crate::boxdir::{BOX_DIRS, BOX_FILES};
use crate::{BoxDir, BoxName, Store, StoreError};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What the failed look at `rel` says: missing, or unreadable and why.
fn problem(rel: &str, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound {
        format!("{rel} is missing")
    } else {
        format!("{rel} cannot be read ({e})")
    }
}

impl Store {
    /// `path` is a directory cowl made: not a symlink, owned by the store's
    /// user. Otherwise the box is tampered with (`name`; none: the store).
    pub(crate) fn check_dir(&self, name: Option<&BoxName>, path: &Path) -> Result<(), StoreError> {
        self.check_made(name, path, true)
    }

    /// `path` is a regular file cowl made, as `check_dir` checks.
    pub(crate) fn check_file(&self, name: &BoxName, path: &Path) -> Result<(), StoreError> {
        self.check_made(Some(name), path, false)
    }

    fn check_made(&self, name: Option<&BoxName>, path: &Path, dir: bool) -> Result<(), StoreError> {
        let md = fs::symlink_metadata(path).map_err(StoreError::io("stat", path))?;
        let (kind, is_kind) = if dir {
            ("a directory", md.is_dir())
        } else {
            ("a file", md.is_file())
        };
        let what = if md.file_type().is_symlink() {
            format!("a symlink where {kind} should be")
        } else if !is_kind {
            (if dir {
                "not a directory"
            } else {
                "not a regular file"
            })
            .to_owned()
        } else if md.uid() != self.uid() {
            format!("owned by uid {} instead of {}", md.uid(), self.uid())
        } else {
            return Ok(());
        };
        Err(StoreError::Tampered {
            name: name.map(|n| n.to_string()).unwrap_or_else(|| "BOX".into()),
            path: path.to_owned(),
            what,
        })
    }

    /// The top level of the box directory at `path`: every directory and
    /// file a box has. Returns what is missing or unreadable, as (entry,
    /// problem); an entry that is there but is not what cowl made (a
    /// symlink, another owner) is tampered with, an error.
    pub(crate) fn top_level_problems(
        &self,
        name: &BoxName,
        path: &Path,
    ) -> Result<Vec<(&'static str, String)>, StoreError> {
        let mut problems = Vec::new();
        for (rel, dir) in BOX_DIRS
            .iter()
            .map(|d| (*d, true))
            .chain(BOX_FILES.iter().map(|f| (*f, false)))
        {
            let p = path.join(rel);
            match fs::symlink_metadata(&p) {
                Err(e) => problems.push((rel, problem(rel, &e))),
                Ok(_) if dir => self.check_dir(Some(name), &p)?,
                Ok(_) => self.check_file(name, &p)?,
            }
        }
        Ok(problems)
    }
}

/// The versions of box `b`: each `versions/N` holds `layer/` and
/// `manifest.json`. Not read: the manifests, the layers.
///
/// This is on `cowl run`'s path, for every version (up to 400), so each
/// costs one lookup relative to `versions/`: `N/layer/../manifest.json`
/// resolves only through a directory `N/layer` and to the manifest beside
/// it. Only when that fails are the two looked at one by one, to say which
/// is missing. A layer that is not a directory is tampered with, an error
/// (a symlink there is refused whenever the layer is used, too).
pub(crate) fn version_problems(b: &BoxDir) -> Result<Vec<String>, StoreError> {
    use rustix::fs::{statat, AtFlags, FileType, Mode, OFlags};
    let dir = b.path().join("versions");
    let nofollow = AtFlags::SYMLINK_NOFOLLOW;
    let fd = match rustix::fs::open(
        &dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return Ok(vec![problem("versions/", &e.into())]),
    };
    let entries = rustix::fs::Dir::read_from(&fd).map_err(|e| StoreError::Io {
        op: "read",
        path: dir.clone(),
        source: e.into(),
    })?;
    let mut found: Vec<(u64, String)> = Vec::new();
    for e in entries.flatten() {
        let Some((name, n)) = e
            .file_name()
            .to_str()
            .ok()
            .and_then(|s| Some((s.to_owned(), s.parse::<u64>().ok()?)))
        else {
            continue;
        };
        if statat(&fd, format!("{name}/layer/../manifest.json"), nofollow).is_ok() {
            continue;
        }
        // A version that is gone as a whole was moved by an operation that
        // ran meanwhile (a squash, a rollback): not a problem of the box.
        if statat(&fd, name.as_str(), nofollow).is_err() {
            continue;
        }
        for (part, what) in [
            ("layer", "its frozen layer"),
            ("manifest.json", "its manifest"),
        ] {
            let rel = format!("versions/{name}/{part}");
            match statat(&fd, format!("{name}/{part}"), nofollow) {
                Err(err) => found.push((
                    n,
                    format!("version {n} lacks {what}: {}", problem(&rel, &err.into())),
                )),
                Ok(st)
                    if part == "layer"
                        && FileType::from_raw_mode(st.st_mode) != FileType::Directory =>
                {
                    return Err(StoreError::Tampered {
                        name: b.name().to_string(),
                        path: dir.join(&name).join(part),
                        what: "not a directory".into(),
                    })
                }
                // There, but not searchable (a mode the app chose for the
                // root of its layer): not missing.
                Ok(_) => {}
            }
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

impl BoxDir {
    /// Every version in its place, or [`StoreError::Damaged`].
    pub(crate) fn check_versions(&self) -> Result<(), StoreError> {
        if version_problems(self)?.is_empty() {
            return Ok(());
        }
        // Looked at again once no store operation is under way, so that a
        // version one moves meanwhile is not taken for a lost one.
        let _ops = self.ops_lock(false).ok();
        let problems = version_problems(self)?;
        if problems.is_empty() {
            return Ok(());
        }
        Err(StoreError::Damaged {
            name: self.name().to_string(),
            problems,
        })
    }
}
