//! Progress of a push or pull on the terminal (bytes, blobs, rate), and the
//! hashing streams that feed it.

use sha2::Digest as _;
use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant};

/// A one-line progress display on stderr; silent when off.
pub struct Progress {
    on: bool,
    verb: &'static str,
    start: Instant,
    last: Option<Instant>,
    /// Bytes moved so far.
    pub bytes: u64,
    /// Blobs finished so far.
    pub blobs: u64,
    /// Blobs to move, when known.
    pub total_blobs: u64,
}

impl Progress {
    /// A display for `verb` ("push", "pull"): on when `wanted` and stderr is a terminal.
    pub fn new(verb: &'static str, wanted: bool) -> Progress {
        Progress {
            on: wanted && std::io::stderr().is_terminal(),
            verb,
            start: Instant::now(),
            last: None,
            bytes: 0,
            blobs: 0,
            total_blobs: 0,
        }
    }

    /// Counts `n` more bytes; redraws at most every 100 ms.
    pub fn add(&mut self, n: u64) {
        self.bytes += n;
        if self.on
            && self
                .last
                .is_none_or(|l| l.elapsed() >= Duration::from_millis(100))
        {
            self.draw();
        }
    }

    /// Counts a finished blob.
    pub fn blob_done(&mut self) {
        self.blobs += 1;
        if self.on {
            self.draw();
        }
    }

    fn draw(&mut self) {
        self.last = Some(Instant::now());
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let mib = self.bytes as f64 / (1 << 20) as f64;
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r\x1b[K{}: {}/{} blobs, {:.1} MiB, {:.1} MiB/s",
            self.verb,
            self.blobs,
            self.total_blobs,
            mib,
            mib / secs
        );
        let _ = err.flush();
    }

    /// Ends the line.
    pub fn finish(&mut self) {
        if self.on {
            self.draw();
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// Hashes (sha256) and counts what passes through to `inner`.
pub struct HashWriter<'p, W> {
    /// The writer below.
    pub inner: W,
    hasher: sha2::Sha256,
    /// Bytes written.
    pub count: u64,
    progress: Option<&'p mut Progress>,
}

impl<'p, W: Write> HashWriter<'p, W> {
    /// Wraps `inner`; counts into `progress` when given.
    pub fn new(inner: W, progress: Option<&'p mut Progress>) -> Self {
        HashWriter {
            inner,
            hasher: sha2::Sha256::new(),
            count: 0,
            progress,
        }
    }

    /// The writer below, the digest (`sha256:<hex>`) and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        let d = format!("sha256:{}", crate::oci::hex(&self.hasher.finalize()));
        (self.inner, d, self.count)
    }
}

impl<W: Write> Write for HashWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if let Some(p) = self.progress.as_deref_mut() {
            p.add(n as u64);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes (sha256) and counts what is read from `inner`, and keeps the
/// count in a shared counter (the importer's compression-ratio check).
pub struct HashReader<'p, R> {
    inner: R,
    hasher: sha2::Sha256,
    count: u64,
    shared: std::sync::Arc<std::sync::atomic::AtomicU64>,
    progress: Option<&'p mut Progress>,
    max: u64,
}

impl<'p, R: Read> HashReader<'p, R> {
    /// Wraps `inner`; reading past `max` bytes is an error (the
    /// descriptor's size: a mirror cannot send more than it declared).
    pub fn new(
        inner: R,
        shared: std::sync::Arc<std::sync::atomic::AtomicU64>,
        progress: Option<&'p mut Progress>,
        max: u64,
    ) -> Self {
        HashReader {
            inner,
            hasher: sha2::Sha256::new(),
            count: 0,
            shared,
            progress,
            max,
        }
    }
}

/// Drains what is left of a reader, then returns the digest and count.
pub fn finish_reader<R: Read>(mut r: HashReader<'_, R>) -> std::io::Result<(String, u64)> {
    std::io::copy(&mut r, &mut std::io::sink())?;
    Ok((
        format!("sha256:{}", crate::oci::hex(&r.hasher.finalize())),
        r.count,
    ))
}

impl<R: Read> Read for HashReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if self.count > self.max {
            return Err(std::io::Error::other(format!(
                "the blob is longer than the {} bytes its descriptor declares",
                self.max
            )));
        }
        self.shared
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        if let Some(p) = self.progress.as_deref_mut() {
            p.add(n as u64);
        }
        Ok(n)
    }
}
