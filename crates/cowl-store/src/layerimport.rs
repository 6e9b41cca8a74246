//! Reading a layer tar from someone else (a mirror): the hostile-safe
//! reverse of `layertar`.
//!
//! The archive is extracted into a fresh, empty directory that nothing else
//! uses, and every entry is created relative to a descriptor of its parent
//! directory, opened component by component with `O_NOFOLLOW` from that
//! root: no entry can be created through a symlink, outside the root, or over
//! something an earlier entry made (CVE-2007-4559, CVE-2021-38511 and their
//! kin). Refused outright, leaving the caller to delete the directory:
//!
//! * absolute paths, `..` components, an entry whose parent the archive did
//!   not make as a directory first, a second entry at the same path;
//! * hard links to anything but a regular file the archive made earlier;
//! * device nodes (a whiteout is the file `.wh.NAME`, never a device entry),
//!   sockets, and any tar entry type cowl does not write;
//! * extended attributes other than `user.*`, and the overlay's own
//!   (`user.overlay.*`: a crafted `redirect` or `metacopy` steers the
//!   overlay elsewhere; see overlayfs.rst on untrusted layers);
//! * setuid and setgid bits on files (CVE-2021-3493 class: privilege
//!   smuggled through a layer);
//! * more content than the size cap, or content expanding more than the
//!   ratio cap over its compressed size (decompression bombs, CWE-409);
//! * headers (PAX records, GNU long names) over `MAX_HEADER_BYTES` between
//!   two entries: the tar reader holds them whole in memory.

use crate::layertar::{parse_pax_time, OPAQUE_MARKER, PAX_XATTR, WHITEOUT_PREFIX};
use rustix::fs::Timespec;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags, CWD};
use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bounds on what one import may expand to.
#[derive(Debug, Clone)]
pub struct ImportLimits {
    /// Bytes of tar stream (headers and content) at most.
    pub max_bytes: u64,
    /// Once past `RATIO_FLOOR` bytes, the tar stream may be at most this
    /// many times the compressed bytes read so far.
    pub max_ratio: u64,
    /// Entries at most.
    pub max_entries: u64,
    /// Compressed bytes read so far, counted by the caller's reader (`None`:
    /// no ratio check).
    pub compressed: Option<Arc<AtomicU64>>,
    /// Whether entries keep the archive's owners (needs root); otherwise
    /// every entry is the caller's, whoever the archive says owns it.
    pub keep_owners: bool,
}

/// Below this much expanded content the ratio is not checked: small layers
/// of empty files compress extremely well and are harmless.
pub const RATIO_FLOOR: u64 = 64 << 20;

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_bytes: 64 << 30,
            max_ratio: 1000,
            max_entries: 10_000_000,
            compressed: None,
            keep_owners: false,
        }
    }
}

/// Why an archive was refused or could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The archive tries something a layer must not hold.
    #[error("the layer archive is refused: {path:?}: {why}")]
    Refused {
        /// The entry's path as the archive gives it.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The archive expands beyond a cap.
    #[error("the layer archive is refused: {0}")]
    Cap(String),
    /// The archive is not a valid tar stream.
    #[error("the layer archive is not a valid tar stream: {0}")]
    Malformed(#[source] io::Error),
    /// Creating an entry failed.
    #[error("extract {}: {source}", crate::quote::text(.path))]
    Extract {
        /// The entry.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The destination is not a new empty directory.
    #[error("extract into {path}: {source}")]
    Destination {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// What an import made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Entries made.
    pub entries: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// Bytes the tar reader may consume between two entries: headers, padding,
/// PAX records and GNU long names. It reads a PAX record or a long name
/// whole into memory, with no bound of its own, so an archive could make an
/// import hold gigabytes for one header.
pub const MAX_HEADER_BYTES: u64 = 4 << 20;

/// Counts what the tar reader consumes and stops at the caps.
struct Metered<R> {
    inner: R,
    read: u64,
    limits: ImportLimits,
    /// Bytes consumed since the importer asked for the next entry (`None`:
    /// the importer is reading an entry's content, which the other caps
    /// bound).
    between: std::rc::Rc<std::cell::Cell<Option<u64>>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if let Some(b) = self.between.get() {
            let b = b + n as u64;
            if b > MAX_HEADER_BYTES {
                return Err(cap_error(format!(
                    "an entry's headers (PAX records, long names) take more than {MAX_HEADER_BYTES} bytes"
                )));
            }
            self.between.set(Some(b));
        }
        if self.read > self.limits.max_bytes {
            return Err(cap_error(format!(
                "it expands to more than {} bytes (the size cap)",
                self.limits.max_bytes
            )));
        }
        if let Some(c) = &self.limits.compressed {
            let packed = c.load(Ordering::Relaxed).max(1);
            if self.read > RATIO_FLOOR && self.read / packed > self.limits.max_ratio {
                return Err(cap_error(format!(
                    "{} compressed bytes expand to more than {} bytes, over {} times (the compression-ratio cap)",
                    packed, self.read, self.limits.max_ratio
                )));
            }
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct CapHit(String);
impl std::fmt::Display for CapHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for CapHit {}

fn cap_error(msg: String) -> io::Error {
    io::Error::other(CapHit(msg))
}

/// Turns an I/O error from the stream into a cap or a malformed archive.
fn stream_error(e: io::Error) -> ImportError {
    match e.get_ref().and_then(|i| i.downcast_ref::<CapHit>()) {
        Some(c) => ImportError::Cap(c.0.clone()),
        None => ImportError::Malformed(e),
    }
}

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

/// Extracts the layer tar `input` into `dest`, which must not exist yet (it
/// is made, mode 0700). On error, `dest` may hold part of the archive: the
/// caller removes it; nothing outside it was touched.
pub fn import_layer_tar(
    input: impl Read,
    dest: &Path,
    limits: &ImportLimits,
) -> Result<ImportStats, ImportError> {
    let dest_err = |source| ImportError::Destination {
        path: dest.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .mode_0700()
        .create(dest)
        .map_err(dest_err)?;
    let root = rustix::fs::openat(
        CWD,
        dest,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| dest_err(e.into()))?;
    let mut im = Importer {
        root,
        made: HashMap::new(),
        dirs: Vec::new(),
        stats: ImportStats::default(),
        keep_owners: limits.keep_owners,
        last_dir: std::cell::RefCell::new(None),
    };
    let between = std::rc::Rc::new(std::cell::Cell::new(None));
    let metered = Metered {
        inner: input,
        read: 0,
        limits: limits.clone(),
        between: between.clone(),
    };
    let mut ar = tar::Archive::new(metered);
    {
        let mut entries = ar.entries().map_err(stream_error)?;
        loop {
            // What the tar reader takes to find the next entry is metered
            // apart: the headers it holds in memory.
            between.set(Some(0));
            let next = entries.next();
            between.set(None);
            let Some(entry) = next else { break };
            let mut entry = entry.map_err(stream_error)?;
            im.stats.entries += 1;
            if im.stats.entries > limits.max_entries {
                return Err(ImportError::Cap(format!(
                    "it has more than {} entries",
                    limits.max_entries
                )));
            }
            im.entry(&mut entry)?;
        }
    }
    // Whatever follows the end-of-archive blocks is not read by the tar
    // reader; drain it so the caller's digest covers the whole blob.
    let mut rest = ar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(stream_error)?;
    im.finish_dirs()?;
    Ok(im.stats)
}

trait DirBuilderMode {
    fn mode_0700(&mut self) -> &mut Self;
}
impl DirBuilderMode for std::fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt;
        self.mode(0o700)
    }
}

struct Importer {
    root: OwnedFd,
    made: HashMap<Vec<u8>, Made>,
    dirs: Vec<DirMeta>,
    stats: ImportStats,
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

/// The normal form of an archive path: components joined by `/`, no `.`,
/// no trailing slash. Absolute paths and `..` are refused.
pub fn normalize(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path".into());
    }
    if raw.contains(&0) {
        return Err("NUL byte in path".into());
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => continue,
            b".." => return Err("`..` in path".into()),
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    if out.len() > 4096 {
        return Err("path longer than 4096 bytes".into());
    }
    Ok(out)
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
    fn entry<R: Read>(&mut self, e: &mut tar::Entry<R>) -> Result<(), ImportError> {
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
    fn finish_dirs(&mut self) -> Result<(), ImportError> {
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
fn check_xattr(name: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_are_normalized_and_escapes_refused() {
        assert_eq!(normalize(b"./a//b/").ok(), Some(b"a/b".to_vec()));
        assert_eq!(normalize(b".").ok(), Some(Vec::new()));
        assert!(normalize(b"/etc/passwd").is_err());
        assert!(normalize(b"a/../../x").is_err());
        assert!(normalize(b"..").is_err());
    }

    /// A tar of one PAX record (`comment`, ignored by the importer) of
    /// `len` bytes, then a small file.
    fn tar_with_pax_comment(len: usize) -> Vec<u8> {
        let value = "x".repeat(len);
        let body = format!("comment={value}\n");
        // A record's length counts its own digits.
        let mut n = body.len() + 2;
        while format!("{n} {body}").len() != n {
            n += 1;
        }
        let record = format!("{n} {body}");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_path("PaxHeader/f").unwrap();
        h.set_size(record.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, record.as_bytes()).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_path("f").unwrap();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, &b"hi\n"[..]).unwrap();
        b.into_inner().unwrap()
    }

    /// A PAX record the tar reader would hold whole in memory is refused
    /// past `MAX_HEADER_BYTES`; a large but bounded one passes.
    #[test]
    fn oversized_headers_are_refused_before_they_fill_memory() {
        let base = std::env::temp_dir().join(format!("cowl-paxcap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let ok = import_layer_tar(
            &tar_with_pax_comment(512 << 10)[..],
            &base.join("ok"),
            &ImportLimits::default(),
        );
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(std::fs::read(base.join("ok/f")).unwrap(), b"hi\n");
        let big = import_layer_tar(
            &tar_with_pax_comment(8 << 20)[..],
            &base.join("big"),
            &ImportLimits::default(),
        );
        match big {
            Err(ImportError::Cap(m)) => assert!(m.contains("headers"), "{m}"),
            other => panic!("an 8 MiB PAX record was not refused: {other:?}"),
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    fn header(kind: tar::EntryType, path: &str, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_path(path).unwrap();
        h.set_size(size);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    }

    /// Entries below the directory opened last reuse its descriptor; one
    /// below a symlink made in that directory is still refused, and nothing
    /// is written where the symlink points.
    #[test]
    fn a_symlink_beside_the_last_directory_opened_is_never_followed() {
        let base = std::env::temp_dir().join(format!("cowl-lastdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("outside")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        for d in ["a/", "a/b/"] {
            let mut h = header(tar::EntryType::Directory, d, 0);
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
        }
        for f in ["a/b/f", "a/b/g", "a/h"] {
            let mut h = header(tar::EntryType::Regular, f, 2);
            h.set_cksum();
            b.append(&h, &b"x\n"[..]).unwrap();
        }
        let mut h = header(tar::EntryType::Symlink, "a/b/s", 0);
        h.set_link_name(base.join("outside")).unwrap();
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        let mut h = header(tar::EntryType::Regular, "a/b/s/x", 2);
        h.set_cksum();
        b.append(&h, &b"x\n"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let r = import_layer_tar(&tar[..], &base.join("dest"), &ImportLimits::default());
        assert!(matches!(r, Err(ImportError::Refused { .. })), "{r:?}");
        assert_eq!(std::fs::read(base.join("dest/a/b/g")).unwrap(), b"x\n");
        assert_eq!(std::fs::read(base.join("dest/a/h")).unwrap(), b"x\n");
        assert_eq!(std::fs::read_dir(base.join("outside")).unwrap().count(), 0);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn only_plain_user_xattrs_pass() {
        assert!(check_xattr("user.mime_type").is_ok());
        assert!(check_xattr("system.posix_acl_access").is_ok());
        assert!(check_xattr("system.posix_acl_default").is_ok());
        for bad in [
            "user.overlay.redirect",
            "user.overlay.opaque",
            "trusted.overlay.opaque",
            "trusted.other",
            "security.capability",
            "security.selinux",
            "system.other",
        ] {
            assert!(check_xattr(bad).is_err(), "{bad}");
        }
    }
}
