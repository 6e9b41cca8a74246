//! What one layer import may take and what it reports: the caps on what
//! it expands to (a metered reader that stops at them), its errors and
//! counts, and the normal form of an archive path.

use std::io::{self, Read};
use std::path::PathBuf;
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
pub(crate) struct Metered<R> {
    pub(crate) inner: R,
    pub(crate) read: u64,
    pub(crate) limits: ImportLimits,
    /// Bytes consumed since the importer asked for the next entry (`None`:
    /// the importer is reading an entry's content, which the other caps
    /// bound).
    pub(crate) between: std::rc::Rc<std::cell::Cell<Option<u64>>>,
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
pub(crate) fn stream_error(e: io::Error) -> ImportError {
    match e.get_ref().and_then(|i| i.downcast_ref::<CapHit>()) {
        Some(c) => ImportError::Cap(c.0.clone()),
        None => ImportError::Malformed(e),
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
