//! A layer as a tar stream, in the conventions of OCI image layers:
//! whiteouts (0/0 character devices) become empty files `.wh.NAME`, an
//! opaque directory is followed by an empty file `DIR/.wh..wh..opq`, and
//! the extended attributes that `travels` names go as PAX records
//! (`SCHILY.xattr.NAME`): the app's `user.*` and POSIX ACLs. The overlay's
//! own (`user.overlay.*`, `trusted.overlay.*`) only mean something on the
//! machine that wrote them (the opaque mark is the `.wh..wh..opq` file);
//! host labels (`security.selinux` and the like) are the receiving host's
//! to assign; other `trusted.*` need root to read or write and are not the
//! app's. Modification times keep their nanoseconds (PAX
//! `mtime`). Hard links inside the layer stay hard links.
//!
//! The stream is deterministic: entries in byte order of their paths, the
//! same layer always gives the same bytes. Nothing is buffered beyond one
//! read block: memory does not grow with the layer.
//!
//! The reverse, reading a tar from someone else, is `layerimport`.

use crate::layer::EntryKind;
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Prefix of an OCI whiteout file.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the OCI file that marks its directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// PAX key prefix of an extended attribute.
pub const PAX_XATTR: &str = "SCHILY.xattr.";

/// What went wrong while writing a layer as tar.
#[derive(Debug, thiserror::Error)]
pub enum LayerTarError {
    /// Reading the layer failed.
    #[error("read {}: {source}", crate::quote::path(.path))]
    Read {
        /// The layer path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing the stream failed.
    #[error("write the layer's tar stream: {0}")]
    Write(#[source] io::Error),
    /// The layer holds something an OCI layer cannot carry.
    #[error("{} cannot be put in a tar layer: {what}", crate::quote::path(.path))]
    Unrepresentable {
        /// The layer path.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
}

/// What a layer's tar stream held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerTarStats {
    /// Entries written (markers of opaque directories included).
    pub entries: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// Whether an extended attribute is the overlay's own bookkeeping.
pub fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with("user.overlay.") || name.starts_with("trusted.overlay.")
}

/// Whether an extended attribute travels in a layer tar: a push writes
/// exactly these and a pull takes exactly these (`layerimport`), so what
/// one writes the other accepts. The app's own `user.*` attributes (not the
/// overlay's) and POSIX ACLs, which say who may read a file as its mode
/// bits do and which any file's owner may set.
pub fn travels(name: &str) -> bool {
    (name.starts_with("user.") && !is_overlay_xattr(name))
        || name == "system.posix_acl_access"
        || name == "system.posix_acl_default"
}

/// Writes the layer at `layer` (overlayfs upper format) to `out` as a tar
/// stream, OCI conventions (see the module's documentation). Sockets are
/// left out (a tar cannot hold one, and nothing can use a socket file that
/// outlived its process); a device node other than a whiteout is an error.
/// Directories the caller cannot read must be opened first
/// (`layer::open_for_reading`); their modes are written as they were before.
pub fn write_layer_tar(layer: &Path, out: impl Write) -> Result<LayerTarStats, LayerTarError> {
    let mut w = Writer {
        tar: tar::Builder::new(out),
        links: HashMap::new(),
        stats: LayerTarStats::default(),
    };
    w.tar.mode(tar::HeaderMode::Complete);
    w.tar.follow_symlinks(false);
    w.dir(layer, Path::new(""))?;
    w.tar.into_inner().map_err(LayerTarError::Write)?;
    Ok(w.stats)
}

struct Writer<W: Write> {
    tar: tar::Builder<W>,
    /// The first path of each multiply-linked inode, by (device, inode).
    links: HashMap<(u64, u64), PathBuf>,
    stats: LayerTarStats,
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> LayerTarError + '_ {
    move |source| LayerTarError::Read {
        path: path.to_owned(),
        source,
    }
}

impl<W: Write> Writer<W> {
    /// Writes the entries of directory `abs` (at `rel` in the layer), sorted.
    fn dir(&mut self, abs: &Path, rel: &Path) -> Result<(), LayerTarError> {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(abs)
            .map_err(read_err(abs))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(read_err(abs))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let p = abs.join(&name);
            let r = rel.join(&name);
            if name.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
                return Err(LayerTarError::Unrepresentable {
                    path: p,
                    what: "its name starts with .wh., which OCI layers reserve for whiteouts",
                });
            }
            let Some((kind, md)) = EntryKind::of(&p) else {
                continue;
            };
            self.entry(&p, &r, kind, &md)?;
            if kind.is_dir() {
                self.dir(&p, &r)?;
            }
        }
        Ok(())
    }

    fn entry(
        &mut self,
        p: &Path,
        rel: &Path,
        kind: EntryKind,
        md: &std::fs::Metadata,
    ) -> Result<(), LayerTarError> {
        let mode = crate::layer::original_mode(p).unwrap_or(md.mode() & 0o7777);
        let mut h = tar::Header::new_ustar();
        h.set_mode(mode);
        h.set_mtime(md.mtime().max(0) as u64);
        h.set_size(0);
        let mut pax: Vec<(String, Vec<u8>)> = vec![(
            "mtime".to_owned(),
            pax_time(md.mtime(), md.mtime_nsec()).into_bytes(),
        )];
        set_ids(&mut h, &mut pax, md.uid(), md.gid());
        if kind != EntryKind::Symlink {
            for (name, value) in xattrs(p) {
                if travels(&name) {
                    pax.push((format!("{PAX_XATTR}{name}"), value));
                }
            }
        }
        match kind {
            EntryKind::Dir | EntryKind::OpaqueDir => {
                h.set_entry_type(tar::EntryType::Directory);
                self.append(&pax, &mut h, rel, io::empty())?;
                if kind == EntryKind::OpaqueDir {
                    let mut m = tar::Header::new_ustar();
                    m.set_entry_type(tar::EntryType::Regular);
                    m.set_mode(0o600);
                    m.set_mtime(md.mtime().max(0) as u64);
                    m.set_size(0);
                    set_ids(&mut m, &mut Vec::new(), md.uid(), md.gid());
                    self.append(&[], &mut m, &rel.join(OPAQUE_MARKER), io::empty())?;
                }
            }
            EntryKind::File => {
                if md.nlink() > 1 {
                    if let Some(first) = self.links.get(&(md.dev(), md.ino())).cloned() {
                        h.set_entry_type(tar::EntryType::Link);
                        self.pax(&pax)?;
                        return self
                            .tar
                            .append_link(&mut h, rel, &first)
                            .map_err(LayerTarError::Write)
                            .map(|()| self.stats.entries += 1);
                    }
                    self.links.insert((md.dev(), md.ino()), rel.to_owned());
                }
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(md.size());
                let f = std::fs::File::open(p).map_err(read_err(p))?;
                // A file that changes size while it is read would corrupt the
                // stream; a frozen layer does not change, but say so if it did.
                let data = Exact {
                    inner: f,
                    left: md.size(),
                    path: p,
                };
                self.append(&pax, &mut h, rel, data)?;
                self.stats.bytes += md.size();
            }
            EntryKind::Symlink => {
                let target = std::fs::read_link(p).map_err(read_err(p))?;
                h.set_entry_type(tar::EntryType::Symlink);
                self.pax(&pax)?;
                self.tar
                    .append_link(&mut h, rel, &target)
                    .map_err(LayerTarError::Write)?;
                self.stats.entries += 1;
            }
            EntryKind::Whiteout => {
                h.set_entry_type(tar::EntryType::Regular);
                let name = rel
                    .file_name()
                    .map(|n| n.as_bytes().to_vec())
                    .unwrap_or_default();
                let mut wh = WHITEOUT_PREFIX.as_bytes().to_vec();
                wh.extend_from_slice(&name);
                let path = rel.with_file_name(std::ffi::OsStr::from_bytes(&wh));
                self.append(&pax, &mut h, &path, io::empty())?;
            }
            EntryKind::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                self.append(&pax, &mut h, rel, io::empty())?;
            }
            EntryKind::Socket => {}
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                return Err(LayerTarError::Unrepresentable {
                    path: p.to_owned(),
                    what: "a device node (only 0/0 whiteouts belong in a layer)",
                })
            }
        }
        Ok(())
    }

    fn pax(&mut self, pax: &[(String, Vec<u8>)]) -> Result<(), LayerTarError> {
        if pax.is_empty() {
            return Ok(());
        }
        self.tar
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(LayerTarError::Write)
    }

    fn append(
        &mut self,
        pax: &[(String, Vec<u8>)],
        h: &mut tar::Header,
        path: &Path,
        data: impl io::Read,
    ) -> Result<(), LayerTarError> {
        self.pax(pax)?;
        self.tar
            .append_data(h, path, data)
            .map_err(LayerTarError::Write)?;
        self.stats.entries += 1;
        Ok(())
    }
}

/// Ids too large for the ustar header go in PAX records.
fn set_ids(h: &mut tar::Header, pax: &mut Vec<(String, Vec<u8>)>, uid: u32, gid: u32) {
    const USTAR_MAX: u32 = 0o7_777_777;
    h.set_uid(u64::from(uid.min(USTAR_MAX)));
    h.set_gid(u64::from(gid.min(USTAR_MAX)));
    if uid > USTAR_MAX {
        pax.push(("uid".into(), uid.to_string().into_bytes()));
    }
    if gid > USTAR_MAX {
        pax.push(("gid".into(), gid.to_string().into_bytes()));
    }
}

/// A PAX time: decimal seconds with nine digits of fraction.
pub fn pax_time(secs: i64, nsec: i64) -> String {
    if secs < 0 && nsec > 0 {
        format!("-{}.{:09}", -(secs + 1), 1_000_000_000 - nsec)
    } else {
        format!("{secs}.{nsec:09}")
    }
}

/// Parses a PAX time into seconds and nanoseconds.
pub fn parse_pax_time(s: &str) -> Option<(i64, i64)> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: i64 = digits.parse().ok()?;
    Some(if !neg {
        (secs, nsec)
    } else if nsec == 0 {
        (-secs, 0)
    } else {
        (-secs - 1, 1_000_000_000 - nsec)
    })
}

fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(names) = xattr::list(p) else {
        return Vec::new();
    };
    let mut v: Vec<(String, Vec<u8>)> = names
        .filter_map(|n| {
            let value = xattr::get(p, &n).ok().flatten()?;
            Some((n.to_string_lossy().into_owned(), value))
        })
        .collect();
    v.sort();
    v
}

/// Reads exactly `left` bytes, failing if the file is shorter or longer.
struct Exact<'a> {
    inner: std::fs::File,
    left: u64,
    path: &'a Path,
}

impl io::Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(io::Error::other(format!(
                    "{} grew while it was read",
                    crate::quote::path(self.path)
                )));
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "{} shrank while it was read",
                crate::quote::path(self.path)
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_round_trip() {
        for (s, n) in [(0, 0), (1_700_000_000, 123_456_789), (-1, 500), (-5, 0)] {
            let text = pax_time(s, n);
            assert_eq!(parse_pax_time(&text), Some((s, n)), "{text}");
        }
        assert_eq!(parse_pax_time("12"), Some((12, 0)));
        assert_eq!(parse_pax_time("1.5"), Some((1, 500_000_000)));
        assert_eq!(parse_pax_time("x"), None);
        assert_eq!(parse_pax_time("-"), None);
    }
}
