//! Where a mirror lives: a local directory (a path or `file://`) or
//! S3-compatible object storage (`s3://bucket/prefix`), behind one small
//! interface of whole objects and streams.
//!
//! Object storage is reached through `object_store`, on a tokio runtime that
//! exists only while a push or pull runs; the sync side (tar, zstd, age)
//! talks to it through bounded channels, so memory stays flat whatever the
//! size of a blob. A blob to upload is spooled to an unnamed local file
//! first: its name is its digest, known only once it is all written, and
//! a multipart upload needs its name from the start.

use crate::MirrorError;
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Size of the chunks that travel between the sync and async sides, and of
/// the parts of a multipart upload.
const CHUNK: usize = 8 << 20;
/// Parts of a multipart upload in flight at once.
const PARTS: usize = 4;

/// A mirror's location, opened.
pub struct Remote {
    url: String,
    kind: Kind,
}

enum Kind {
    Local(PathBuf),
    S3 {
        store: Arc<AmazonS3>,
        prefix: String,
        rt: tokio::runtime::Runtime,
    },
}

/// What `get_small` found: the bytes and the version tag to update against.
pub struct Fetched {
    /// The object's content.
    pub data: Vec<u8>,
    /// Its entity tag, for a conditional replacement.
    pub etag: Option<String>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn temp_name() -> String {
    format!(
        ".upload-{}-{}-{}",
        std::process::id(),
        cowl_store::time::now(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl Remote {
    /// Opens the mirror at `url`. A local directory is made if missing.
    pub fn open(url: &str) -> Result<Remote, MirrorError> {
        let bad = |why: &str| MirrorError::BadUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket: use s3://BUCKET/PREFIX"));
            }
            let store = s3_builder()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(&e.to_string()))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| bad(&format!("cannot start the I/O runtime: {e}")))?;
            return Ok(Remote {
                url: url.to_owned(),
                kind: Kind::S3 {
                    store: Arc::new(store),
                    prefix: prefix.trim_matches('/').to_owned(),
                    rt,
                },
            });
        }
        let path =
            match url.strip_prefix("file://") {
                Some(p) => p,
                None if url.contains("://") => return Err(bad(
                    "cowl mirrors to a directory (a path or file://PATH) or to s3://BUCKET/PREFIX",
                )),
                None => url,
            };
        if path.is_empty() {
            return Err(bad("empty path"));
        }
        let dir = std::path::absolute(path).map_err(|e| bad(&e.to_string()))?;
        Ok(Remote {
            url: url.to_owned(),
            kind: Kind::Local(dir),
        })
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The local directory of a local mirror.
    pub fn local_dir(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Local(d) => Some(d),
            Kind::S3 { .. } => None,
        }
    }

    fn key(&self, key: &str) -> ObjPath {
        match &self.kind {
            Kind::S3 { prefix, .. } if !prefix.is_empty() => {
                ObjPath::from(format!("{prefix}/{key}"))
            }
            _ => ObjPath::from(key),
        }
    }

    fn remote_err(
        &self,
        op: &'static str,
        key: &str,
    ) -> impl FnOnce(object_store::Error) -> MirrorError + '_ {
        let key = key.to_owned();
        move |e| MirrorError::Remote {
            op,
            key,
            url: self.url.clone(),
            message: e.to_string(),
        }
    }

    /// Reads a whole object of at most `max` bytes; `None` when absent.
    pub fn get_small(&self, key: &str, max: u64) -> Result<Option<Fetched>, MirrorError> {
        let too_big = || MirrorError::Format(format!("{key} is larger than {max} bytes"));
        match &self.kind {
            Kind::Local(dir) => {
                let p = dir.join(key);
                let f = match open_regular(&p) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(MirrorError::local("read", &p)(e)),
                };
                let mut data = Vec::new();
                f.take(max + 1)
                    .read_to_end(&mut data)
                    .map_err(MirrorError::local("read", &p))?;
                if data.len() as u64 > max {
                    return Err(too_big());
                }
                Ok(Some(Fetched { data, etag: None }))
            }
            Kind::S3 { store, rt, .. } => {
                let loc = self.key(key);
                rt.block_on(async {
                    let r = match store.get(&loc).await {
                        Ok(r) => r,
                        Err(object_store::Error::NotFound { .. }) => return Ok(None),
                        Err(e) => return Err(self.remote_err("get", key)(e)),
                    };
                    if r.meta.size > max {
                        return Err(too_big());
                    }
                    let etag = r.meta.e_tag.clone();
                    let data = r.bytes().await.map_err(self.remote_err("get", key))?;
                    if data.len() as u64 > max {
                        return Err(too_big());
                    }
                    Ok(Some(Fetched {
                        data: data.to_vec(),
                        etag,
                    }))
                })
            }
        }
    }

    /// Whether an object exists.
    pub fn exists(&self, key: &str) -> Result<bool, MirrorError> {
        match &self.kind {
            Kind::Local(dir) => Ok(dir.join(key).is_file()),
            Kind::S3 { store, rt, .. } => {
                let loc = self.key(key);
                rt.block_on(async {
                    match store.head(&loc).await {
                        Ok(_) => Ok(true),
                        Err(object_store::Error::NotFound { .. }) => Ok(false),
                        Err(e) => Err(self.remote_err("head", key)(e)),
                    }
                })
            }
        }
    }

    /// Writes a whole object, replacing it atomically if it exists.
    pub fn put(&self, key: &str, data: Vec<u8>) -> Result<(), MirrorError> {
        self.put_mode(key, data, PutMode::Overwrite)
    }

    /// Replaces the object `key` only if it is still the one read before
    /// (`etag`), or creates it only if it is absent (`expect_absent`), where
    /// the store supports that; a local directory replaces it by rename.
    pub fn replace(
        &self,
        key: &str,
        data: Vec<u8>,
        etag: Option<String>,
        expect_absent: bool,
    ) -> Result<(), MirrorError> {
        let mode = match (etag, expect_absent) {
            (_, true) => PutMode::Create,
            (Some(e), false) => PutMode::Update(UpdateVersion {
                e_tag: Some(e),
                version: None,
            }),
            (None, false) => PutMode::Overwrite,
        };
        match self.put_mode(key, data.clone(), mode) {
            Err(MirrorError::Remote { message, .. })
                if message.contains("not implemented") || message.contains("NotImplemented") =>
            {
                // The store has no conditional writes: a plain atomic put.
                self.put_mode(key, data, PutMode::Overwrite)
            }
            other => other,
        }
    }

    fn put_mode(&self, key: &str, data: Vec<u8>, mode: PutMode) -> Result<(), MirrorError> {
        match &self.kind {
            Kind::Local(dir) => {
                let p = dir.join(key);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(MirrorError::local("create", parent))?;
                }
                let tmp = p.with_file_name(temp_name());
                let write = || -> std::io::Result<()> {
                    let mut f = std::fs::File::create(&tmp)?;
                    f.write_all(&data)?;
                    f.sync_all()?;
                    std::fs::rename(&tmp, &p)
                };
                write().map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    MirrorError::local("write", &p)(e)
                })?;
                if let Some(parent) = p.parent() {
                    if let Ok(d) = std::fs::File::open(parent) {
                        let _ = d.sync_all();
                    }
                }
                Ok(())
            }
            Kind::S3 { store, rt, .. } => {
                let loc = self.key(key);
                let opts = PutOptions {
                    mode,
                    ..Default::default()
                };
                rt.block_on(async {
                    match store.put_opts(&loc, PutPayload::from(data), opts).await {
                        Ok(_) => Ok(()),
                        Err(e @ object_store::Error::Precondition { .. })
                        | Err(e @ object_store::Error::AlreadyExists { .. }) => Err(MirrorError::Refused(format!(
                            "{key} on {} changed while cowl wrote to it (another push?): run the command again ({e})",
                            self.url
                        ))),
                        Err(e) => Err(self.remote_err("put", key)(e)),
                    }
                })
            }
        }
    }

    /// Writes a new object: `produce` writes it and says its final key
    /// (known only once it is all written: content addressing). The object
    /// appears under that key whole or not at all.
    ///
    /// On object storage the bytes are first spooled to an unnamed file in
    /// `spool` (a directory on the box's filesystem), then sent straight to
    /// their key as a multipart upload, which the store makes visible only
    /// when it completes; a key the store already has is not sent again.
    /// Uploading under a temporary name and copying would make the server
    /// write every byte twice, and a single copy is capped at 5 GiB on S3.
    pub fn upload<T>(
        &self,
        dir: &str,
        spool: &Path,
        produce: impl FnOnce(&mut dyn Write) -> Result<(T, String), MirrorError>,
    ) -> Result<T, MirrorError> {
        match &self.kind {
            Kind::Local(root) => {
                let d = root.join(dir);
                std::fs::create_dir_all(&d).map_err(MirrorError::local("create", &d))?;
                let tmp = d.join(temp_name());
                let f = std::fs::File::create(&tmp).map_err(MirrorError::local("create", &tmp))?;
                let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
                let done = produce(&mut w).and_then(|r| {
                    let f = w
                        .into_inner()
                        .map_err(|e| MirrorError::local("write", &tmp)(e.into_error()))?;
                    f.sync_all().map_err(MirrorError::local("write", &tmp))?;
                    Ok(r)
                });
                match done {
                    Ok((t, key)) => {
                        let dst = root.join(&key);
                        std::fs::rename(&tmp, &dst).map_err(MirrorError::local("rename", &dst))?;
                        // The rename is durable before any index names the
                        // blob: a power cut never leaves an index pointing
                        // at nothing.
                        if let Some(parent) = dst.parent() {
                            if let Ok(dirf) = std::fs::File::open(parent) {
                                dirf.sync_all()
                                    .map_err(MirrorError::local("sync", parent))?;
                            }
                        }
                        Ok(t)
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        Err(e)
                    }
                }
            }
            Kind::S3 { .. } => {
                let file = spool_file(spool)?;
                let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
                let (t, key) = produce(&mut w)?;
                w.flush().map_err(MirrorError::local("write", spool))?;
                drop(w);
                self.send_file(&file, spool, &key)?;
                Ok(t)
            }
        }
    }

    /// Sends a spooled file to `key` unless the store has it: one put when
    /// small, else a multipart upload of `PARTS` parts at a time, completed
    /// only once every part is read and sent (else aborted: nothing shows).
    fn send_file(&self, file: &std::fs::File, spool: &Path, key: &str) -> Result<(), MirrorError> {
        use std::os::unix::fs::FileExt;
        let Kind::S3 { store, rt, .. } = &self.kind else {
            return Ok(());
        };
        if self.exists(key)? {
            return Ok(());
        }
        let size = file
            .metadata()
            .map_err(MirrorError::local("read", spool))?
            .len();
        let read_at = |off: u64, len: usize| -> Result<Bytes, MirrorError> {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, off)
                .map_err(MirrorError::local("read", spool))?;
            Ok(Bytes::from(buf))
        };
        let loc = self.key(key);
        if size <= CHUNK as u64 {
            let data = read_at(0, size as usize)?;
            return rt.block_on(async {
                store
                    .put(&loc, PutPayload::from(data))
                    .await
                    .map(|_| ())
                    .map_err(self.remote_err("put", key))
            });
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(PARTS);
        let (commit_tx, commit_rx) = tokio::sync::oneshot::channel::<bool>();
        let store2 = Arc::clone(store);
        let task = rt.spawn(async move {
            let upload = store2.put_multipart(&loc).await?;
            let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, CHUNK);
            while let Some(b) = rx.recv().await {
                if let Err(e) = w.wait_for_capacity(PARTS).await {
                    let _ = w.abort().await;
                    return Err(e);
                }
                w.put(b);
            }
            if commit_rx.await == Ok(true) {
                w.finish().await.map(|_| ())
            } else {
                let _ = w.abort().await;
                Ok(())
            }
        });
        let mut sent = Ok(());
        let mut off = 0;
        while off < size {
            let len = (size - off).min(CHUNK as u64) as usize;
            match read_at(off, len) {
                Ok(b) => {
                    if tx.blocking_send(b).is_err() {
                        // The upload stopped: its own error says why.
                        break;
                    }
                }
                Err(e) => {
                    sent = Err(e);
                    break;
                }
            }
            off += len as u64;
        }
        drop(tx);
        let _ = commit_tx.send(sent.is_ok() && off == size);
        let uploaded = rt.block_on(task);
        sent?;
        match uploaded {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.remote_err("upload", key)(e)),
            Err(e) => Err(MirrorError::Remote {
                op: "upload",
                key: key.to_owned(),
                url: self.url.clone(),
                message: e.to_string(),
            }),
        }
    }

    /// Streams an object into `consume`.
    pub fn download<T>(
        &self,
        key: &str,
        consume: impl FnOnce(&mut dyn Read) -> Result<T, MirrorError>,
    ) -> Result<T, MirrorError> {
        match &self.kind {
            Kind::Local(root) => {
                let p = root.join(key);
                let f = match open_regular(&p) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(MirrorError::Missing {
                            url: self.url.clone(),
                            key: key.to_owned(),
                        })
                    }
                    Err(e) => return Err(MirrorError::local("read", &p)(e)),
                };
                consume(&mut std::io::BufReader::with_capacity(1 << 20, f))
            }
            Kind::S3 { store, rt, .. } => {
                let loc = self.key(key);
                let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
                let store2 = Arc::clone(store);
                let task = rt.spawn(async move {
                    use futures_util::StreamExt;
                    let r = match store2.get(&loc).await {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send(Err(std::io::Error::other(e))).await;
                            return;
                        }
                    };
                    let mut s = r.into_stream();
                    while let Some(item) = s.next().await {
                        let item = item.map_err(std::io::Error::other);
                        let failed = item.is_err();
                        // The reader went away: stop.
                        if tx.send(item).await.is_err() || failed {
                            return;
                        }
                    }
                });
                let mut reader = ChannelReader {
                    rx,
                    cur: Bytes::new(),
                };
                let out = consume(&mut reader);
                drop(reader);
                let _ = rt.block_on(task);
                out
            }
        }
    }
}

/// Reads the chunks the downloading task sends.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// An S3 client configured from the standard AWS environment variables,
/// then from `~/.aws/credentials` and `~/.aws/config` (profile
/// `$AWS_PROFILE`, else `default`) for whatever they did not set.
fn s3_builder() -> AmazonS3Builder {
    let mut b = AmazonS3Builder::from_env();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let home = env("HOME").map(PathBuf::from);
    let creds = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
    let config = env("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/config")));
    let mut found: Vec<(String, String)> = Vec::new();
    if let Some(p) = creds {
        found.extend(ini_section(&p, &profile));
    }
    if let Some(p) = config {
        let section = if profile == "default" {
            "default".to_owned()
        } else {
            format!("profile {profile}")
        };
        found.extend(ini_section(&p, &section));
    }
    let mut set = |env_names: &[&str], key: AmazonS3ConfigKey, file_key: &str| {
        if env_names.iter().any(|n| env(n).is_some()) {
            return;
        }
        if let Some((_, v)) = found.iter().find(|(k, _)| k == file_key) {
            b = std::mem::take(&mut b).with_config(key, v.clone());
        }
    };
    set(
        &["AWS_ACCESS_KEY_ID"],
        AmazonS3ConfigKey::AccessKeyId,
        "aws_access_key_id",
    );
    set(
        &["AWS_SECRET_ACCESS_KEY"],
        AmazonS3ConfigKey::SecretAccessKey,
        "aws_secret_access_key",
    );
    set(
        &["AWS_SESSION_TOKEN"],
        AmazonS3ConfigKey::Token,
        "aws_session_token",
    );
    set(
        &["AWS_REGION", "AWS_DEFAULT_REGION"],
        AmazonS3ConfigKey::Region,
        "region",
    );
    set(
        &["AWS_ENDPOINT_URL", "AWS_ENDPOINT"],
        AmazonS3ConfigKey::Endpoint,
        "endpoint_url",
    );
    let endpoint = b
        .get_config_value(&AmazonS3ConfigKey::Endpoint)
        .unwrap_or_default();
    if endpoint.starts_with("http://") {
        b = b.with_allow_http(true);
    }
    if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
        b = b.with_region("us-east-1");
    }
    b
}

/// The `key = value` lines of one `[section]` of an AWS ini file.
fn ini_section(path: &Path, section: &str) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
    }
    out
}

/// An unnamed file in `dir` to spool an upload to: gone with its last
/// descriptor, so a killed push leaves nothing behind.
fn spool_file(dir: &Path) -> Result<std::fs::File, MirrorError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).map_err(MirrorError::local("create", dir))?;
    let unnamed = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match unnamed {
        Ok(f) => Ok(f),
        // A filesystem without O_TMPFILE: a named file, unlinked at once.
        Err(_) => {
            let p = dir.join(temp_name());
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&p)
                .map_err(MirrorError::local("create", &p))?;
            std::fs::remove_file(&p).map_err(MirrorError::local("remove", &p))?;
            Ok(f)
        }
    }
}

/// Opens a file of a directory mirror for reading: never through a symlink
/// at its name, never a FIFO or device (whose open or read could hang).
fn open_regular(p: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: the open of a FIFO does not wait.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not a regular file", p.display()),
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_are_read_by_name() {
        let d = std::env::temp_dir().join(format!("cowl-ini-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap_or_default();
        let p = d.join("credentials");
        std::fs::write(
            &p,
            "[default]\naws_access_key_id = A\n\n[profile work]\nregion=eu-west-1\n",
        )
        .unwrap_or_default();
        assert_eq!(
            ini_section(&p, "default"),
            vec![("aws_access_key_id".to_owned(), "A".to_owned())]
        );
        assert_eq!(
            ini_section(&p, "profile work"),
            vec![("region".to_owned(), "eu-west-1".to_owned())]
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn urls_are_recognized() {
        assert!(Remote::open("http://example.org/x").is_err());
        assert!(Remote::open("s3://").is_err());
        assert!(
            Remote::open("file:///tmp/m").is_ok_and(|r| r.local_dir() == Some(Path::new("/tmp/m")))
        );
    }
}
