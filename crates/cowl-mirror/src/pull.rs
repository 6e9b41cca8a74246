//! `cowl pull`: a box's versions from a mirror, verified before they are seen.
//!
//! First the chain: every version's cowl manifest is fetched, checked
//! against its blob digest, its own digest, the digest the mirror's manifest
//! annotates, and its parent's digest. Only then are layers fetched, one
//! version at a time: each is extracted by the hostile-safe importer into
//! the box's `pending/` directory while its blob digest is computed, then
//! re-scanned and compared entry by entry with its manifest, and only then
//! renamed into `versions/`. An interrupted pull leaves complete, verified
//! versions only, and the next pull resumes after them.

use crate::oci::{self, Descriptor};
use crate::progress::{finish_reader, HashReader, Progress};
use crate::push::{read_manifest, MAX_JSON};
use crate::remote::Remote;
use crate::MirrorError;
use cowl_store::boxdir::{remove_tree, write_atomic};
use cowl_store::layerimport::{import_layer_tar, ImportLimits};
use cowl_store::manifest::{owner_map_text, verify_layer_mapped, Manifest, OwnerMap};
use cowl_store::{BoxDir, BoxName, Mode, Store, StoreError};
use serde::Serialize;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What `pull` is asked to do.
#[derive(Debug, Default)]
pub struct PullOptions {
    /// The box to pull into; default: the name the mirror gives.
    pub name: Option<BoxName>,
    /// age identity file, for encrypted mirrors.
    pub identity: Option<PathBuf>,
    /// Replace local history the mirror does not have (it goes to quarantine).
    pub force: bool,
    /// Show progress on a terminal.
    pub progress: bool,
    /// Caps of the importer.
    pub limits: ImportLimits,
}

/// What a pull did.
#[derive(Debug, Default, Serialize)]
pub struct PullReport {
    /// The mirror.
    pub url: String,
    /// The box.
    #[serde(rename = "box")]
    pub box_name: String,
    /// Versions the mirror has.
    pub versions: u64,
    /// Versions taken now.
    pub versions_pulled: u64,
    /// Blobs read.
    pub blobs_received: u64,
    /// Bytes read.
    pub bytes_received: u64,
    /// Whether the box was made by this pull.
    pub created: bool,
    /// Where local history the mirror does not have went (with --force).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<String>,
}

/// One version as the mirror describes it.
struct Wanted {
    number: u64,
    /// The cowl digest the mirror annotates.
    digest: String,
    layer: Descriptor,
    manifest_blob: Descriptor,
}

fn wanted(layers: &[Descriptor]) -> Result<Vec<Wanted>, MirrorError> {
    let mut out: Vec<Wanted> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let number = crate::push::version_number(l, i, out.last().map(|w| w.number))?;
        let ann = |k: &str| {
            l.annotations.get(k).cloned().ok_or_else(|| {
                MirrorError::Format(format!("layer of version {number} has no {k} annotation"))
            })
        };
        if !matches!(l.media_type.as_str(), oci::LAYER | oci::LAYER_AGE) {
            return Err(MirrorError::Format(format!(
                "layer of version {number} has media type {}, not one cowl writes",
                l.media_type
            )));
        }
        let mtype = ann(oci::MANIFEST_TYPE)?;
        if !matches!(mtype.as_str(), oci::COWL_MANIFEST | oci::COWL_MANIFEST_AGE) {
            return Err(MirrorError::Format(format!(
                "the manifest blob of version {number} has media type {mtype}"
            )));
        }
        let size: u64 = ann(oci::MANIFEST_SIZE)?
            .parse()
            .map_err(|_| MirrorError::Format(format!("version {number}: bad manifest size")))?;
        let manifest_blob = Descriptor {
            media_type: mtype,
            digest: ann(oci::MANIFEST_BLOB)?,
            size,
            annotations: Default::default(),
        };
        oci::blob_key(&manifest_blob.digest)?;
        oci::blob_key(&l.digest)?;
        let digest = ann(oci::DIGEST)?;
        if !oci::is_hex64(&digest) {
            return Err(MirrorError::Format(format!(
                "version {number}: {digest:?} is not a cowl digest"
            )));
        }
        out.push(Wanted {
            number,
            digest,
            layer: l.clone(),
            manifest_blob,
        });
    }
    Ok(out)
}

fn encrypted(mt: &str) -> bool {
    mt.ends_with("+encrypted")
}

/// Pulls the mirror's versions into a box of `store`.
pub fn pull(store: &Store, remote: &Remote, opts: &PullOptions) -> Result<PullReport, MirrorError> {
    let Some(f) = remote.get_small("index.json", MAX_JSON)? else {
        return Err(MirrorError::Missing {
            url: remote.url().to_owned(),
            key: "index.json".into(),
        });
    };
    let index: oci::Index = serde_json::from_slice(&f.data)
        .map_err(|e| MirrorError::Format(format!("index.json: {e}")))?;
    let latest = index
        .manifests
        .iter()
        .find(|d| d.annotations.get(oci::REF_NAME).map(String::as_str) == Some("latest"))
        .ok_or_else(|| MirrorError::Format("index.json has no manifest tagged `latest`".into()))?
        .clone();
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => {
            let n = index.annotations.get(oci::BOX).ok_or_else(|| {
                MirrorError::Format("the index names no box: give one, `cowl pull URL BOX`".into())
            })?;
            BoxName::new(n)
                .map_err(|e| MirrorError::Format(format!("the index's box name: {e}")))?
        }
    };
    let mode = match index.annotations.get(oci::MODE).map(String::as_str) {
        Some("system") => Mode::System,
        Some("rootless") | None => Mode::Rootless,
        Some(other) => return Err(MirrorError::Format(format!("unknown box mode {other:?}"))),
    };
    let is_root = rustix_euid() == 0;
    if mode == Mode::System && !is_root {
        return Err(MirrorError::Refused(format!(
            "the mirror holds a system box ({name}): only root can restore it (sudo cowl pull …)"
        )));
    }
    let (manifest, _config) = read_manifest(remote, &latest)?;
    let wanted = wanted(&manifest.layers)?;
    let top_digest = latest.annotations.get(oci::DIGEST).cloned();
    let mut report = PullReport {
        url: remote.url().to_owned(),
        box_name: name.to_string(),
        versions: wanted.len() as u64,
        ..Default::default()
    };
    let needs_key = wanted
        .iter()
        .any(|w| encrypted(&w.layer.media_type) || encrypted(&w.manifest_blob.media_type));
    let ids = match (&opts.identity, needs_key) {
        (Some(p), true) => crate::crypt::identities(p)?,
        (None, true) => {
            return Err(MirrorError::Crypto(format!(
                "{} is encrypted: pass --identity FILE (an age identity, as age-keygen writes). Nothing was changed",
                remote.url()
            )))
        }
        (_, false) => Vec::new(),
    };

    // The local side: what the box has, and whether the mirror extends it.
    let existing = match store.open_box(&name).and_then(cowl_store::Opened::recover) {
        Ok(b) => Some(b),
        Err(StoreError::NoSuchBox { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    // (number, digest) of each local version.
    let mut local: Vec<(u64, String)> = Vec::new();
    let mut live_changes = false;
    if let Some(b) = &existing {
        if b.settings.mode != mode {
            return Err(MirrorError::Refused(format!(
                "box {name} is a {} box and the mirror holds a {} one: pull into another name (`cowl pull URL NEWNAME`)",
                b.settings.mode.as_str(),
                mode.as_str()
            )));
        }
        let _ops = b.ops_lock(false)?;
        local = b
            .versions()?
            .into_iter()
            .map(|v| (v.number, v.manifest.digest))
            .collect();
        live_changes = has_changes(&b.upper());
    }

    // Fetch and verify the whole chain of manifests first.
    let mut manifests: Vec<Manifest> = Vec::new();
    let mut parent: Option<String> = None;
    let mut progress = Progress::new("pull", opts.progress);
    for w in &wanted {
        let m = fetch_manifest(remote, w, &ids, &mut report)?;
        let d = &w.digest;
        if m.body.version != w.number
            || m.body.digest() != m.digest
            || &m.digest != d
            || m.body.parent != parent
        {
            return Err(MirrorError::Verify(format!(
                "version {} of the mirror breaks the chain of digests (its manifest, its digest or its parent does not match)",
                w.number
            )));
        }
        parent = Some(m.digest.clone());
        manifests.push(m);
    }
    if top_digest.is_some() && top_digest != parent {
        return Err(MirrorError::Verify(
            "the index's latest digest is not the newest version's".into(),
        ));
    }
    let common = local
        .iter()
        .zip(&manifests)
        .take_while(|(l, m)| l.0 == m.body.version && l.1 == m.digest)
        .count();
    let diverged = common < local.len();
    if (diverged || (live_changes && common < manifests.len())) && !opts.force {
        let why = if diverged {
            format!(
                "box {name} has version {} (digest {}) that the mirror does not have",
                local[common].0,
                &local[common].1[..12.min(local[common].1.len())]
            )
        } else {
            format!("box {name} has changes in its live layer that are not a version yet")
        };
        return Err(MirrorError::Refused(format!(
            "{why}: pulling would replace newer local history. `cowl push {name}` it first, or pass --force (what the box has beyond the mirror goes to quarantine, see `cowl log --quarantine {name}`)"
        )));
    }
    if common == manifests.len() && !diverged {
        return Ok(report);
    }

    // From here on the box changes.
    let (b, created) = match existing {
        Some(b) => (b, false),
        None => {
            let (opened, created) = store.open_or_create(&name, mode)?;
            (opened.recover()?, created)
        }
    };
    report.created = created;
    let Some(_run) = b.try_lock()? else {
        return Err(MirrorError::Refused(format!(
            "box {name} is running: stop it first (`cowl stop {name}`)"
        )));
    };
    progress.total_blobs = (manifests.len() - common) as u64;
    let todo: Vec<(&Wanted, &Manifest)> = wanted.iter().zip(&manifests).skip(common).collect();
    let mut fetch = Fetch {
        b: &b,
        remote,
        ids: &ids,
        opts,
        progress: &mut progress,
        report: &mut report,
    };
    let result = if diverged || (live_changes && opts.force) {
        // Local history goes to quarantine only once every version that
        // replaces it is fetched and verified: a bad mirror leaves the box
        // as it was. One exclusive lock over all of it (recovery would take
        // the waiting stages for a crash's leftovers).
        let keep = common.checked_sub(1).map_or(0, |i| local[i].0);
        let ops = b.ops_lock(true)?;
        fetch.replace(&todo, keep, &ops)
    } else {
        // Version by version: an interrupted pull keeps what it verified.
        todo.iter().try_for_each(|&(w, m)| {
            let _ops = b.ops_lock(true)?;
            let stage = fetch.stage(w, m)?;
            fetch.place(w, m, &stage)
        })
    };
    progress.finish();
    if let Err(e) = result {
        if created && report.versions_pulled == 0 {
            let _ = store.remove_box(&b);
        }
        return Err(e);
    }
    let _ops = b.ops_lock(true)?;
    cowl_store::cache::refresh(&b)?;
    Ok(report)
}

fn rustix_euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether a live layer holds anything but directories. A directory the
/// caller may not list (a rootless view of root's 0700 directory) holds
/// nothing of the app's, as `manifest::scan_layer` says too.
fn has_changes(dir: &std::path::Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let p = e.path();
        match cowl_store::layer::EntryKind::of(&p) {
            Some((cowl_store::layer::EntryKind::Dir, _)) => has_changes(&p),
            Some(_) => true,
            None => false,
        }
    })
}

/// For a rootless box made by another user: the manifest's one owner, and
/// the caller, whose files the pulled layer holds.
fn owner_map(b: &BoxDir, m: &Manifest) -> Option<OwnerMap> {
    if b.settings.mode != Mode::Rootless {
        return None;
    }
    let mut owners = m.body.entries.iter().map(|e| (e.uid, e.gid));
    let first = owners.next()?;
    if owners.any(|o| o != first) {
        return None;
    }
    let me = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    (first != me).then_some((first, me))
}

/// Fetches a version's cowl manifest, checks its blob digest, decrypts and
/// decompresses it (capped).
fn fetch_manifest(
    remote: &Remote,
    w: &Wanted,
    ids: &[Box<dyn age::Identity + Send + Sync>],
    report: &mut PullReport,
) -> Result<Manifest, MirrorError> {
    let d = &w.manifest_blob;
    let data = crate::push::read_blob(remote, d)?;
    report.blobs_received += 1;
    report.bytes_received += data.len() as u64;
    let what = format!("the manifest of version {}", w.number);
    let r: Box<dyn Read + '_> = if encrypted(&d.media_type) {
        crate::crypt::opener(&data[..], ids, &what)?
    } else {
        Box::new(&data[..])
    };
    let z = zstd::Decoder::new(r).map_err(MirrorError::stream(format!("decompress {what}")))?;
    let mut json = Vec::new();
    z.take(1 << 30)
        .read_to_end(&mut json)
        .map_err(|e| MirrorError::Format(format!("{what}: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| MirrorError::Format(format!("{what}: {e}")))
}

/// What fetching versions needs, for one pull.
struct Fetch<'a> {
    b: &'a BoxDir,
    remote: &'a Remote,
    ids: &'a [Box<dyn age::Identity + Send + Sync>],
    opts: &'a PullOptions,
    progress: &'a mut Progress,
    report: &'a mut PullReport,
}

impl Fetch<'_> {
    /// Stages every version of `todo`, then quarantines what the box has
    /// above version `keep`, then puts the stages in place. The caller
    /// holds the exclusive operations lock (`held`).
    fn replace(
        &mut self,
        todo: &[(&Wanted, &Manifest)],
        keep: u64,
        held: &cowl_store::history::OpsLock,
    ) -> Result<(), MirrorError> {
        let mut stages = Vec::new();
        let staged = todo.iter().try_for_each(|&(w, m)| {
            stages.push(self.stage(w, m)?);
            Ok::<(), MirrorError>(())
        });
        let q = staged.and_then(|()| Ok(cowl_store::history::rollback_held(self.b, keep, held)?));
        let q = match q {
            Ok(q) => q,
            Err(e) => {
                for s in &stages {
                    let _ = remove_tree(s);
                }
                return Err(e);
            }
        };
        self.report.quarantined = q.file_name().map(|n| n.to_string_lossy().into_owned());
        for (&(w, m), stage) in todo.iter().zip(&stages) {
            self.place(w, m, stage)?;
        }
        Ok(())
    }

    /// Fetches, extracts and verifies one version into a stage of
    /// `pending/`; returns the stage. The caller holds the exclusive
    /// operations lock: recovery (which any command opening the box may
    /// run) must not take the stage for a crash's leftover.
    fn stage(&mut self, w: &Wanted, m: &Manifest) -> Result<PathBuf, MirrorError> {
        let (b, remote, ids, opts) = (self.b, self.remote, self.ids, self.opts);
        let progress = &mut *self.progress;
        let report = &mut *self.report;
        let pending = b.pending_dir();
        let stage = b.pull_stage(w.number)?;
        let outcome = (|| -> Result<(), MirrorError> {
            let key = oci::blob_key(&w.layer.digest)?;
            let compressed = Arc::new(AtomicU64::new(0));
            let mut limits = opts.limits.clone();
            limits.compressed = Some(Arc::clone(&compressed));
            limits.keep_owners = b.settings.mode == Mode::System;
            let what = format!("the layer of version {}", w.number);
            let (digest, size) = remote.download(&key, |input| {
                let mut hr = HashReader::new(input, compressed, Some(&mut *progress), w.layer.size);
                {
                    let r: Box<dyn Read + '_> = if encrypted(&w.layer.media_type) {
                        crate::crypt::opener(&mut hr, ids, &what)?
                    } else {
                        Box::new(&mut hr)
                    };
                    let z = zstd::Decoder::new(r)
                        .map_err(MirrorError::stream(format!("decompress {what}")))?;
                    import_layer_tar(z, &stage.join("layer"), &limits)?;
                }
                finish_reader(hr).map_err(MirrorError::stream(format!("read {what}")))
            })?;
            if digest != w.layer.digest || size != w.layer.size {
                return Err(MirrorError::Verify(format!(
                    "{what} does not match its digest {}",
                    w.layer.digest
                )));
            }
            report.blobs_received += 1;
            report.bytes_received += size;
            let map = owner_map(b, m);
            if let Some(map) = map {
                write_atomic(
                    &stage.join(cowl_store::manifest::OWNER_MAP),
                    owner_map_text(map).as_bytes(),
                )?;
            }
            if let Some(path) = verify_layer_mapped(&stage.join("layer"), m, &pending, map)? {
                return Err(MirrorError::Verify(format!(
                    "version {}: /{path} is not what its manifest says",
                    w.number
                )));
            }
            write_atomic(
                &stage.join("manifest.json"),
                &serde_json::to_vec_pretty(m).unwrap_or_default(),
            )?;
            write_atomic(&stage.join("digest"), m.digest.as_bytes())?;
            if !m.body.committed.is_empty() {
                // A version of `cowl commit`: its cut travels in its manifest.
                write_atomic(
                    &stage.join(cowl_store::cut::FILE),
                    &serde_json::to_vec(&m.body.committed).unwrap_or_default(),
                )?;
            }
            Ok(())
        })();
        if let Err(e) = outcome {
            let _ = remove_tree(&stage);
            return Err(e);
        }
        progress.blob_done();
        Ok(stage)
    }

    /// Puts a verified stage in place as its version (a store operation).
    fn place(
        &mut self,
        w: &Wanted,
        m: &Manifest,
        stage: &std::path::Path,
    ) -> Result<(), MirrorError> {
        let (b, remote) = (self.b, self.remote);
        let detail =
            serde_json::json!({"version": w.number, "digest": m.digest, "from": remote.url()});
        if !b.place_pulled(w.number, stage, !m.body.committed.is_empty(), detail)? {
            return Err(MirrorError::Refused(format!(
                "version {} of box {} appeared while it was pulled (another pull?)",
                w.number,
                b.name()
            )));
        }
        self.report.versions_pulled += 1;
        Ok(())
    }
}
