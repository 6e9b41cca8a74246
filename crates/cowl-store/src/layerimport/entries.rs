//! One archive entry at a time: how the importer makes each kind of entry
//! (directories, files, links, whiteouts) relative to descriptors of its
//! parents, and the directory metadata it applies last.

use super::bounds::{normalize, stream_error, ImportError, ImportStats};
use crate::layertar::{parse_pax_time, OPAQUE_MARKER, PAX_XATTR, WHITEOUT_PREFIX};
use rustix::fs::Timespec;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags};
use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::OwnedFd;

/// What the archive made at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    Dir,
    File,
    Other,
}

/// A directory's metadata, applied once everything inside it is made (its
/// mode may forbid writing into it, and making entries changes its mtime).
struct DirMeta {
    path: Vec<u8>,
    mode: u32,
    mtime: (i64, i64),
}

pub(super) struct Importer {
    root: OwnedFd,
    made: HashMap<Vec<u8>, Made>,
    dirs: Vec<DirMeta>,
    pub(super) stats: ImportStats,
    keep_owners: bool,
    /// The directory `open_dir` opened last, and its path: the next entry
    /// is most often in it or below it. A directory the archive made stays
    /// that directory (no entry may replace it), so its descriptor can be
    /// reused.
    last_dir: std::cell::RefCell<Option<(Vec<u8>, OwnedFd)>>,
}

/// The metadata of an entry, from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    xattrs: Vec<(String, Vec<u8>)>,
}

fn refused(path: &[u8], why: impl Into<String>) -> ImportError {
    ImportError::Refused {
        path: String::from_utf8_lossy(path).into_owned(),
        why: why.into(),
    }
}

fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b)
}

fn timespec((sec, nsec): (i64, i64)) -> Timespec {
    Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

impl Importer {
    /// An importer into the directory `root` (opened by the caller).
    pub(super) fn new(root: OwnedFd, keep_owners: bool) -> Importer {
        Importer {
            root,
            made: HashMap::new(),
            dirs: Vec::new(),
            stats: ImportStats::default(),
            keep_owners,
            last_dir: std::cell::RefCell::new(None),
        }
    }

    pub(super) fn entry<R: Read>(&mut self, e: &mut tar::Entry<R>) -> Result<(), ImportError> {
        let raw = e.path_bytes().into_owned();
        let path = normalize(&raw).map_err(|why| refused(&raw, why))?;
        if path.is_empty() {
            // The layer's root: cowl's own directory, nothing to take over.
            return Ok(());
        }
        let meta = self.meta(e, &raw)?;
        let (parent, name) = split_parent(&path);
        let kind = e.header().entry_type();
        // Whiteout conventions first: they are plain files in the archive.
        if name == OPAQUE_MARKER.as_bytes() {
            if kind != tar::EntryType::Regular {
                return Err(refused(&raw, "an opaque marker that is not a plain file"));
            }
            let dir = self.open_dir(parent, &raw)?;
            rustix::fs::fsetxattr(&dir, "user.overlay.opaque", b"y", XattrFlags::empty())
                .map_err(|e| self.extract_err(&raw, e))?;
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if kind != tar::EntryType::Regular {
                return Err(refused(&raw, "a whiteout that is not a plain file"));
            }
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(refused(&raw, "a whiteout of no name"));
            }
            let mut target = parent.to_vec();
            if !target.is_empty() {
                target.push(b'/');
            }
            target.extend_from_slice(hidden);
            self.claim(&target, &raw, Made::Other)?;
            return self.make_node(parent, hidden, FileType::CharacterDevice, &meta, &raw);
        }
        match kind {
            tar::EntryType::Directory => {
                self.claim(&path, &raw, Made::Dir)?;
                let dir = self.open_dir(parent, &raw)?;
                rustix::fs::mkdirat(&dir, os(name), Mode::from_raw_mode(0o700))
                    .map_err(|e| self.extract_err(&raw, e))?;
                let me = self.open_dir(&path, &raw)?;
                self.owners(&me, &meta, &raw)?;
                for (k, v) in &meta.xattrs {
                    rustix::fs::fsetxattr(&me, k.as_str(), v, XattrFlags::empty())
                        .map_err(|e| self.extract_err(&raw, e))?;
                }
                self.dirs.push(DirMeta {
                    path: path.clone(),
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if meta.mode & 0o6000 != 0 {
                    return Err(refused(&raw, "a setuid or setgid file"));
                }
                self.claim(&path, &raw, Made::File)?;
                let dir = self.open_dir(parent, &raw)?;
                let fd = rustix::fs::openat(
                    &dir,
                    os(name),
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.extract_err(&raw, e))?;
                let mut f = std::fs::File::from(fd);
                let n = io::copy(e, &mut f).map_err(stream_error)?;
                self.stats.bytes += n;
                self.owners(&f, &meta, &raw)?;
                for (k, v) in &meta.xattrs {
                    rustix::fs::fsetxattr(&f, k.as_str(), v, XattrFlags::empty())
                        .map_err(|e| self.extract_err(&raw, e))?;
                }
                rustix::fs::fchmod(&f, Mode::from_raw_mode(meta.mode & 0o7777))
                    .map_err(|e| self.extract_err(&raw, e))?;
                let t = timespec(meta.mtime);
                rustix::fs::futimens(
                    &f,
                    &Timestamps {
                        last_access: t,
                        last_modification: t,
                    },
                )
                .map_err(|e| self.extract_err(&raw, e))?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| refused(&raw, "a symlink without a target"))?
                    .into_owned();
                if target.is_empty() || target.contains(&0) || target.len() > 4096 {
                    return Err(refused(&raw, "a symlink with an invalid target"));
                }
                self.claim(&path, &raw, Made::Other)?;
                let dir = self.open_dir(parent, &raw)?;
                // The target is stored, never followed: the symlink means
                // something only inside the box's own root.
                rustix::fs::symlinkat(os(&target), &dir, os(name))
                    .map_err(|e| self.extract_err(&raw, e))?;
                self.finish_at(&dir, name, &meta, &raw, true)?;
            }
            tar::EntryType::Link => {
                let target_raw = e
                    .link_name_bytes()
                    .ok_or_else(|| refused(&raw, "a hard link without a target"))?
                    .into_owned();
                let target = normalize(&target_raw)
                    .map_err(|why| refused(&raw, format!("hard link: {why}")))?;
                if self.made.get(&target) != Some(&Made::File) {
                    return Err(refused(
                        &raw,
                        "a hard link to something other than a file made earlier in the archive",
                    ));
                }
                self.claim(&path, &raw, Made::File)?;
                let (tparent, tname) = split_parent(&target);
                let tdir = self.open_dir(tparent, &raw)?;
                let dir = self.open_dir(parent, &raw)?;
                rustix::fs::linkat(&tdir, os(tname), &dir, os(name), AtFlags::empty())
                    .map_err(|e| self.extract_err(&raw, e))?;
            }
            tar::EntryType::Fifo => {
                self.claim(&path, &raw, Made::Other)?;
                self.make_node(parent, name, FileType::Fifo, &meta, &raw)?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(refused(
                    &raw,
                    "a device node (a layer holds none; whiteouts are .wh. files)",
                ))
            }
            other => {
                return Err(refused(
                    &raw,
                    format!("a tar entry of type {other:?}, which layers do not hold"),
                ))
            }
        }
        Ok(())
    }

    /// Header and PAX metadata, with the xattrs checked.
    fn meta<R: Read>(&self, e: &mut tar::Entry<R>, raw: &[u8]) -> Result<Meta, ImportError> {
        let h = e.header();
        let bad = |what: &str| refused(raw, format!("invalid {what} in the header"));
        let mode = h.mode().map_err(|_| bad("mode"))?;
        let mut uid = h.uid().map_err(|_| bad("uid"))?;
        let mut gid = h.gid().map_err(|_| bad("gid"))?;
        let mut mtime = (
            i64::try_from(h.mtime().map_err(|_| bad("mtime"))?).map_err(|_| bad("mtime"))?,
            0,
        );
        let mut xattrs = Vec::new();
        if let Some(exts) = e.pax_extensions().map_err(ImportError::Malformed)? {
            for ext in exts {
                let ext = ext.map_err(ImportError::Malformed)?;
                let key = ext.key().map_err(|_| bad("PAX key"))?;
                let value = ext.value_bytes();
                let text = || std::str::from_utf8(value).ok();
                match key {
                    "mtime" => {
                        mtime = text()
                            .and_then(parse_pax_time)
                            .ok_or_else(|| bad("mtime"))?;
                    }
                    "uid" => {
                        uid = text()
                            .and_then(|t| t.parse().ok())
                            .ok_or_else(|| bad("uid"))?
                    }
                    "gid" => {
                        gid = text()
                            .and_then(|t| t.parse().ok())
                            .ok_or_else(|| bad("gid"))?
                    }
                    k if k.starts_with(PAX_XATTR) => {
                        let name = &k[PAX_XATTR.len()..];
                        check_xattr(name).map_err(|why| refused(raw, why))?;
                        if value.len() > 65536 {
                            return Err(refused(raw, "an extended attribute over 64 KiB"));
                        }
                        xattrs.push((name.to_owned(), value.to_vec()));
                    }
                    // path, linkpath, size and the rest are the tar
                    // reader's; atime, ctime and comments mean nothing here.
                    _ => {}
                }
            }
        }
        let uid = u32::try_from(uid).map_err(|_| bad("uid"))?;
        let gid = u32::try_from(gid).map_err(|_| bad("gid"))?;
        if uid == u32::MAX || gid == u32::MAX {
            return Err(bad("owner"));
        }
        if !(0..1_000_000_000).contains(&mtime.1) {
            return Err(bad("mtime"));
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    /// Records that the archive makes `path`; a path made twice is refused
    /// (a symlink then a directory of the same name is the classic escape).
    fn claim(&mut self, path: &[u8], raw: &[u8], what: Made) -> Result<(), ImportError> {
        let (parent, _) = split_parent(path);
        if !parent.is_empty() && self.made.get(parent) != Some(&Made::Dir) {
            return Err(refused(
                raw,
                "its parent is not a directory made earlier in the archive",
            ));
        }
        if self.made.insert(path.to_vec(), what).is_some() {
            return Err(refused(raw, "a second entry at the same path"));
        }
        Ok(())
    }

    /// Opens directory `rel` below the root, one component at a time, never
    /// following a symlink.
    fn open_dir(&self, rel: &[u8], raw: &[u8]) -> Result<OwnedFd, ImportError> {
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
        let dup = |fd: &OwnedFd| {
            fd.try_clone().map_err(|source| ImportError::Extract {
                path: String::from_utf8_lossy(raw).into_owned(),
                source,
            })
        };
        // Start from the last directory opened when `rel` is it or lies
        // below it, else from the root.
        let (mut fd, mut so_far, rest) = match &*self.last_dir.borrow() {
            Some((p, fd)) if p.as_slice() == rel => return dup(fd),
            Some((p, fd))
                if !p.is_empty() && rel.starts_with(p) && rel.get(p.len()) == Some(&b'/') =>
            {
                (dup(fd)?, p.clone(), &rel[p.len() + 1..])
            }
            _ => (
                rustix::fs::openat(&self.root, ".", flags, Mode::empty())
                    .map_err(|e| self.extract_err(raw, e))?,
                Vec::new(),
                rel,
            ),
        };
        if rest.is_empty() {
            return Ok(fd);
        }
        for c in rest.split(|&b| b == b'/') {
            if !so_far.is_empty() {
                so_far.push(b'/');
            }
            so_far.extend_from_slice(c);
            if self.made.get(&so_far) != Some(&Made::Dir) {
                return Err(refused(
                    raw,
                    "it lies below something that is not a directory of the archive",
                ));
            }
            fd = rustix::fs::openat(&fd, os(c), flags, Mode::empty()).map_err(|e| {
                if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
                    refused(raw, "it passes through a symlink")
                } else {
                    self.extract_err(raw, e)
                }
            })?;
        }
        *self.last_dir.borrow_mut() = Some((so_far, dup(&fd)?));
        Ok(fd)
    }

    fn extract_err(&self, raw: &[u8], e: rustix::io::Errno) -> ImportError {
        ImportError::Extract {
            path: String::from_utf8_lossy(raw).into_owned(),
            source: e.into(),
        }
    }

    /// Checks the entry's owner; sets it when keeping the archive's owners.
    fn owners(
        &self,
        fd: &impl std::os::fd::AsFd,
        meta: &Meta,
        raw: &[u8],
    ) -> Result<(), ImportError> {
        let (uid, gid) = self.ids(meta);
        if let (Some(u), Some(g)) = (uid, gid) {
            rustix::fs::fchown(fd, Some(u), Some(g)).map_err(|e| self.extract_err(raw, e))?;
        }
        Ok(())
    }

    fn ids(&self, meta: &Meta) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
        if self.keep_owners {
            return (
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
            );
        }
        // Rootless: every entry is the caller's, whoever owned it where the
        // archive was made; the caller compares with the manifest's owner.
        (None, None)
    }

    /// Owner and times of a non-directory entry, not following it.
    /// Makes the node `name` (a whiteout: device 0/0, or a fifo) in the
    /// archive's directory `parent`, with the entry's metadata.
    fn make_node(
        &self,
        parent: &[u8],
        name: &[u8],
        kind: FileType,
        meta: &Meta,
        raw: &[u8],
    ) -> Result<(), ImportError> {
        let dir = self.open_dir(parent, raw)?;
        rustix::fs::mknodat(
            &dir,
            os(name),
            kind,
            Mode::from_raw_mode(meta.mode & 0o777),
            0,
        )
        .map_err(|e| self.extract_err(raw, e))?;
        self.finish_at(&dir, name, meta, raw, false)
    }

    fn finish_at(
        &self,
        dir: &OwnedFd,
        name: &[u8],
        meta: &Meta,
        raw: &[u8],
        symlink: bool,
    ) -> Result<(), ImportError> {
        let (uid, gid) = self.ids(meta);
        if uid.is_some() {
            rustix::fs::chownat(dir, os(name), uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.extract_err(raw, e))?;
        }
        if !symlink {
            // mknod applies the umask; the archive's bits, exactly.
            rustix::fs::chmodat(
                dir,
                os(name),
                Mode::from_raw_mode(meta.mode & 0o777),
                AtFlags::empty(),
            )
            .map_err(|e| self.extract_err(raw, e))?;
            if !meta.xattrs.is_empty() {
                return Err(refused(raw, "extended attributes on a special file"));
            }
        }
        let t = timespec(meta.mtime);
        rustix::fs::utimensat(
            dir,
            os(name),
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.extract_err(raw, e))
    }

    /// Modes and times of directories, deepest first.
    pub(super) fn finish_dirs(&mut self) -> Result<(), ImportError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by(|a, b| b.path.cmp(&a.path));
        for d in dirs {
            let fd = self.open_dir(&d.path, &d.path)?;
            let t = timespec(d.mtime);
            rustix::fs::futimens(
                &fd,
                &Timestamps {
                    last_access: t,
                    last_modification: t,
                },
            )
            .map_err(|e| self.extract_err(&d.path, e))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(d.mode & 0o7777))
                .map_err(|e| self.extract_err(&d.path, e))?;
        }
        Ok(())
    }
}

/// Only what a push writes is taken (`layertar::travels`): `user.*`
/// attributes but the overlay's own, and POSIX ACLs.
pub(super) fn check_xattr(name: &str) -> Result<(), String> {
    if name.starts_with("user.overlay.") {
        return Err(format!(
            "the overlay's own extended attribute {name} (it would steer the overlay)"
        ));
    }
    if !crate::layertar::travels(name) {
        return Err(format!(
            "extended attribute {name} (only user.* attributes and POSIX ACLs are taken)"
        ));
    }
    Ok(())
}
