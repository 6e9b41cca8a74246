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
use std::path::Path;

mod bounds;
mod entries;

pub use bounds::{
    normalize, ImportError, ImportLimits, ImportStats, MAX_HEADER_BYTES, RATIO_FLOOR,
};
use bounds::{stream_error, Metered};

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
