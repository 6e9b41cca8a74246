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

use rustix::fs::{Mode, OFlags, CWD};
use std::io::{self, Read};
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
pub(super) fn stream_error(e: io::Error) -> ImportError {
    match e.get_ref().and_then(|i| i.downcast_ref::<CapHit>()) {
        Some(c) => ImportError::Cap(c.0.clone()),
        None => ImportError::Malformed(e),
    }
}

mod entries;

use entries::Importer;

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
    let mut im = Importer::new(root, limits.keep_owners);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::entries::check_xattr;
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
