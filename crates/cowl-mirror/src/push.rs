//! `cowl push`: a box's versions to a mirror, incrementally.
//!
//! The mirror's newest manifest says which versions it holds (by cowl
//! digest); only the versions after them are written as layers, so a push
//! costs what changed since the last one, and a push of an unchanged box
//! sends nothing. Blobs go first, each under its digest once whole; the
//! index, which makes them reachable, is replaced last, conditionally on
//! being the one read at the start: a reader never sees a manifest whose
//! blobs are missing, and two pushes never silently overwrite each other.

use crate::crypt::Sealer;
use crate::oci::{self, Descriptor, History, ImageConfig, ImageManifest, Index, RootFs};
use crate::progress::{HashWriter, Progress};
use crate::remote::Remote;
use crate::MirrorError;
use cowl_store::history::Version;
use cowl_store::BoxDir;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// Largest index or manifest cowl reads.
pub(crate) const MAX_JSON: u64 = 64 << 20;
/// zstd level of layers and manifests.
const LEVEL: i32 = 3;

/// What `push` is asked to do.
#[derive(Debug, Default)]
pub struct PushOptions {
    /// age recipients (`--encrypt-to`); empty: no encryption.
    pub encrypt_to: Vec<String>,
    /// Replace the mirror's history even when it is not a prefix of the box's.
    pub force: bool,
    /// Show progress on a terminal.
    pub progress: bool,
}

/// What a push did.
#[derive(Debug, Default, Serialize)]
pub struct PushReport {
    /// The mirror.
    pub url: String,
    /// The box.
    #[serde(rename = "box")]
    pub box_name: String,
    /// Versions the box has.
    pub versions: u64,
    /// Versions written to the mirror now.
    pub versions_sent: u64,
    /// Blobs written.
    pub blobs_sent: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Whether the layers were encrypted.
    pub encrypted: bool,
    /// Versions of the mirror's history that this push replaced (it had
    /// them from this box before a squash merged them, or --force).
    pub replaced: u64,
}

/// What the mirror holds of one version.
#[derive(Debug, Clone)]
pub(crate) struct RemoteVersion {
    /// The version's number (a squash leaves gaps: the merged version
    /// keeps the number of the newest it merged).
    pub number: u64,
    pub cowl_digest: String,
    pub layer: Descriptor,
    pub diff_id: String,
    pub created: Option<String>,
}

/// The mirror's index (with its version tag) and its newest manifest's versions.
pub(crate) struct RemoteState {
    pub index: Option<Index>,
    pub etag: Option<String>,
    pub versions: Vec<RemoteVersion>,
}

/// Reads the mirror's index and, through its `latest` manifest, the versions
/// it holds. A mirror with no index holds nothing.
pub(crate) fn remote_state(remote: &Remote) -> Result<RemoteState, MirrorError> {
    let Some(f) = remote.get_small("index.json", MAX_JSON)? else {
        return Ok(RemoteState {
            index: None,
            etag: None,
            versions: Vec::new(),
        });
    };
    let index: Index = serde_json::from_slice(&f.data)
        .map_err(|e| MirrorError::Format(format!("index.json: {e}")))?;
    let Some(latest) = index
        .manifests
        .iter()
        .find(|d| d.annotations.get(oci::REF_NAME).map(String::as_str) == Some("latest"))
        .cloned()
    else {
        return Err(MirrorError::Format(
            "index.json has no manifest tagged `latest`".into(),
        ));
    };
    let (manifest, config) = read_manifest(remote, &latest)?;
    let mut versions: Vec<RemoteVersion> = Vec::new();
    for (i, l) in manifest.layers.iter().enumerate() {
        let number = version_number(l, i, versions.last().map(|v| v.number))?;
        let cowl_digest = l
            .annotations
            .get(oci::DIGEST)
            .filter(|d| oci::is_hex64(d))
            .ok_or_else(|| MirrorError::Format(format!("layer {} has no cowl digest", i + 1)))?
            .clone();
        versions.push(RemoteVersion {
            number,
            cowl_digest,
            layer: l.clone(),
            diff_id: config.rootfs.diff_ids.get(i).cloned().unwrap_or_default(),
            created: config.history.get(i).and_then(|h| h.created.clone()),
        });
    }
    Ok(RemoteState {
        index: Some(index),
        etag: f.etag,
        versions,
    })
}

/// The version number a layer (the `index`th of a manifest) is annotated
/// with: numbers start at 1 and grow, with gaps where versions were
/// squashed together.
pub(crate) fn version_number(
    l: &Descriptor,
    index: usize,
    below: Option<u64>,
) -> Result<u64, MirrorError> {
    let n: Option<u64> = l.annotations.get(oci::VERSION).and_then(|v| v.parse().ok());
    match n {
        Some(n) if n > below.unwrap_or(0) => Ok(n),
        _ => Err(MirrorError::Format(format!(
            "layer {} of the manifest has no version number above the one below it",
            index + 1
        ))),
    }
}

/// Reads and checks (digest, size) an image manifest and its config.
pub(crate) fn read_manifest(
    remote: &Remote,
    d: &Descriptor,
) -> Result<(ImageManifest, ImageConfig), MirrorError> {
    let manifest: ImageManifest = serde_json::from_slice(&read_blob(remote, d)?)
        .map_err(|e| MirrorError::Format(format!("manifest {}: {e}", d.digest)))?;
    let config: ImageConfig = serde_json::from_slice(&read_blob(remote, &manifest.config)?)
        .map_err(|e| MirrorError::Format(format!("config {}: {e}", manifest.config.digest)))?;
    Ok((manifest, config))
}

/// A small blob, checked against its descriptor.
pub(crate) fn read_blob(remote: &Remote, d: &Descriptor) -> Result<Vec<u8>, MirrorError> {
    let key = oci::blob_key(&d.digest)?;
    let f = remote
        .get_small(&key, d.size.min(MAX_JSON))?
        .ok_or_else(|| MirrorError::Missing {
            url: remote.url().to_owned(),
            key: key.clone(),
        })?;
    if f.data.len() as u64 != d.size || oci::sha256(&f.data) != d.digest {
        return Err(MirrorError::Verify(format!(
            "blob {} does not match its digest or size",
            d.digest
        )));
    }
    Ok(f.data)
}

fn json_bytes(v: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Writes a small blob under its digest unless the mirror has it.
fn put_blob(
    remote: &Remote,
    media_type: &str,
    data: Vec<u8>,
    report: &mut PushReport,
) -> Result<Descriptor, MirrorError> {
    let digest = oci::sha256(&data);
    let size = data.len() as u64;
    let key = oci::blob_key(&digest)?;
    if !remote.exists(&key)? {
        remote.put(&key, data)?;
        report.blobs_sent += 1;
        report.bytes_sent += size;
    }
    Ok(Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size,
        annotations: BTreeMap::new(),
    })
}

/// Pushes the box's versions to `remote`.
pub fn push(b: &BoxDir, remote: &Remote, opts: &PushOptions) -> Result<PushReport, MirrorError> {
    let recipients = crate::crypt::recipients(&opts.encrypt_to)?;
    let encrypted = !recipients.is_empty();
    // A local mirror is locked for the whole push; object storage relies on
    // the conditional replacement of the index.
    let _guard = match remote.local_dir() {
        Some(d) => Some(lock_dir(d)?),
        None => None,
    };
    let _ops = b.ops_lock(false)?;
    let versions = b.versions()?;
    let mut report = PushReport {
        url: remote.url().to_owned(),
        box_name: b.name().to_string(),
        versions: versions.len() as u64,
        encrypted,
        ..Default::default()
    };
    if versions.is_empty() {
        return Err(MirrorError::Refused(format!(
            "box {} has no versions to push yet: `cowl snapshot {}` makes one",
            b.name(),
            b.name()
        )));
    }
    let state = remote_state(remote)?;
    if let Some(idx) = &state.index {
        if let Some(other) = idx.annotations.get(oci::BOX) {
            if other != b.name().as_str() && !opts.force {
                return Err(MirrorError::Refused(format!(
                    "{} holds box {other:?}, not {:?}: push to another URL, or pass --force to replace it",
                    remote.url(),
                    b.name().as_str()
                )));
            }
        }
    }
    // How much of the box's history the mirror already has.
    let mut common = state
        .versions
        .iter()
        .zip(&versions)
        .take_while(|(r, l)| r.cowl_digest == l.manifest.digest)
        .count();
    // Reusing the mirror's versions would mix encrypted and plain layers.
    let sealed = |r: &RemoteVersion| r.layer.media_type == oci::LAYER_AGE;
    if state.versions[..common]
        .iter()
        .any(|r| sealed(r) != encrypted)
    {
        if !opts.force {
            return Err(MirrorError::Refused(format!(
                "{} holds versions that are {} and this push's are {}: pass --force to push every version again, {}",
                remote.url(),
                if encrypted { "not encrypted" } else { "encrypted" },
                if encrypted { "encrypted" } else { "not" },
                if encrypted { "encrypted" } else { "in the clear" }
            )));
        }
        common = 0;
    }
    if common < state.versions.len()
        && !opts.force
        && !squashed_since_pushed(b, remote, &state.versions)?
    {
        let r = &state.versions[common];
        return Err(MirrorError::Refused(format!(
            "{} has a version {} (digest {}) that box {} does not have (a rollback since the last push, or another box's push?): \
             pass --force to replace the mirror's history with the box's",
            remote.url(),
            r.number,
            &r.cowl_digest[..12],
            b.name()
        )));
    }
    if common == versions.len() && common == state.versions.len() {
        return Ok(report);
    }
    let mut progress = Progress::new("push", opts.progress);
    progress.total_blobs = 2 * (versions.len() - common) as u64;
    let mut chain: Vec<RemoteVersion> = state.versions[..common].to_vec();
    for v in &versions[common..] {
        chain.push(push_version(
            b,
            remote,
            v,
            &recipients,
            &mut progress,
            &mut report,
        )?);
        report.versions_sent += 1;
    }
    progress.finish();
    // One manifest per version, each listing the layers up to it.
    let mut manifests = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let body = &v.manifest.body;
        let config = ImageConfig {
            architecture: oci::architecture().to_owned(),
            os: "linux".to_owned(),
            rootfs: RootFs {
                kind: "layers".to_owned(),
                diff_ids: chain[..=i].iter().map(|c| c.diff_id.clone()).collect(),
            },
            history: chain[..=i]
                .iter()
                .map(|c| History {
                    created: c.created.clone(),
                    created_by: Some("cowl".to_owned()),
                    comment: None,
                })
                .collect(),
        };
        let config_d = put_blob(remote, oci::CONFIG, json_bytes(&config), &mut report)?;
        let mut ann = BTreeMap::new();
        ann.insert(oci::VERSION.to_owned(), v.number.to_string());
        ann.insert(oci::DIGEST.to_owned(), v.manifest.digest.clone());
        if let Some(p) = &body.parent {
            ann.insert(oci::PARENT.to_owned(), p.clone());
        }
        ann.insert(
            oci::CREATED.to_owned(),
            cowl_store::time::rfc3339(body.created),
        );
        if !encrypted {
            ann.insert(oci::MESSAGE.to_owned(), body.message.clone());
        }
        let m = ImageManifest {
            schema_version: 2,
            media_type: oci::MANIFEST.to_owned(),
            config: config_d,
            layers: chain[..=i].iter().map(|c| c.layer.clone()).collect(),
            annotations: ann.clone(),
        };
        let mut d = put_blob(remote, oci::MANIFEST, json_bytes(&m), &mut report)?;
        ann.insert(oci::REF_NAME.to_owned(), format!("v{}", v.number));
        d.annotations = ann;
        manifests.push(d);
    }
    if let Some(last) = manifests.last() {
        let mut latest = last.clone();
        latest
            .annotations
            .insert(oci::REF_NAME.to_owned(), "latest".to_owned());
        manifests.push(latest);
    }
    if !remote.exists("oci-layout")? {
        remote.put("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec())?;
    }
    let mut ann = BTreeMap::new();
    ann.insert(oci::BOX.to_owned(), b.name().to_string());
    ann.insert(oci::MODE.to_owned(), b.settings.mode.as_str().to_owned());
    let index = Index {
        schema_version: 2,
        media_type: oci::INDEX.to_owned(),
        manifests,
        annotations: ann,
    };
    let data = serde_json::to_vec_pretty(&index).unwrap_or_default();
    report.bytes_sent += data.len() as u64;
    report.blobs_sent += 1;
    remote.replace("index.json", data, state.etag, state.index.is_none())?;
    report.replaced = (state.versions.len() - common) as u64;
    if let Some(top) = versions.last() {
        // What this box left in the mirror: a squash since is recognized
        // by it (`squashed_since_pushed`).
        b.note(
            "push",
            serde_json::json!({"url": remote.url(), "version": top.number, "digest": top.manifest.digest}),
        )?;
    }
    Ok(report)
}

/// Whether the mirror's history is what this box last pushed to it and the
/// box's history has since been rewritten by squashes only (no rollback,
/// no pull): the box's versions then show the same trees as the mirror's
/// newest, merged, and its history may replace the mirror's. A squash
/// keeps the numbers of the versions it leaves, renumbers nothing, and
/// changes every later digest, so without this every push after retention
/// merged versions would be refused.
fn squashed_since_pushed(
    b: &BoxDir,
    remote: &Remote,
    mirror: &[RemoteVersion],
) -> Result<bool, MirrorError> {
    let Some(top) = mirror.last() else {
        return Ok(false);
    };
    let mut pushed = false;
    let mut squashed = false;
    for e in b.journal_events()? {
        let d = &e.detail;
        match e.event.as_str() {
            "push"
                if d["url"].as_str() == Some(remote.url())
                    && d["digest"].as_str() == Some(top.cowl_digest.as_str()) =>
            {
                (pushed, squashed) = (true, false);
            }
            // This push's own (or any) later record of another state of
            // the mirror: it is not as this box left it.
            "push" if d["url"].as_str() == Some(remote.url()) => pushed = false,
            "squash" => squashed = true,
            "rollback" | "pull" => pushed = false,
            _ => {}
        }
    }
    Ok(pushed && squashed)
}

/// Writes one version's layer and cowl manifest.
fn push_version(
    b: &BoxDir,
    remote: &Remote,
    v: &Version,
    to: &[age::x25519::Recipient],
    progress: &mut Progress,
    report: &mut PushReport,
) -> Result<RemoteVersion, MirrorError> {
    let layer = v.layer();
    let opened = cowl_store::layer::open_for_reading(&b.pending_dir(), &[&layer]);
    let (blob, size, diff_id) = remote.upload("blobs/sha256", &b.pending_dir(), |out| {
        let hw = HashWriter::new(out, Some(&mut *progress));
        let sealer = Sealer::new(hw, to)?;
        let z = zstd::Encoder::new(sealer, LEVEL).map_err(MirrorError::stream("compress"))?;
        let mut tar_hash = HashWriter::new(z, None);
        cowl_store::layertar::write_layer_tar(&layer, &mut tar_hash)?;
        let (z, diff_id, _) = tar_hash.finish();
        let sealer = z.finish().map_err(MirrorError::stream("compress"))?;
        let mut hw = sealer.finish().map_err(MirrorError::stream("encrypt"))?;
        hw.flush().map_err(MirrorError::stream("upload"))?;
        let (_, digest, size) = hw.finish();
        let key = oci::blob_key(&digest)?;
        Ok(((digest, size, diff_id), key))
    })?;
    drop(opened);
    progress.blob_done();
    report.blobs_sent += 1;
    report.bytes_sent += size;
    // The cowl manifest: every entry's hash, what pull verifies against.
    let json = serde_json::to_vec(&v.manifest).unwrap_or_default();
    let mut packed = Vec::new();
    {
        let sealer = Sealer::new(&mut packed, to)?;
        let mut z = zstd::Encoder::new(sealer, LEVEL).map_err(MirrorError::stream("compress"))?;
        z.write_all(&json)
            .map_err(MirrorError::stream("compress"))?;
        let sealer = z.finish().map_err(MirrorError::stream("compress"))?;
        sealer.finish().map_err(MirrorError::stream("encrypt"))?;
    }
    let mtype = if to.is_empty() {
        oci::COWL_MANIFEST
    } else {
        oci::COWL_MANIFEST_AGE
    };
    let md = put_blob(remote, mtype, packed, report)?;
    progress.blob_done();
    let mut ann = BTreeMap::new();
    ann.insert(oci::VERSION.to_owned(), v.number.to_string());
    ann.insert(oci::DIGEST.to_owned(), v.manifest.digest.clone());
    ann.insert(oci::MANIFEST_BLOB.to_owned(), md.digest);
    ann.insert(oci::MANIFEST_TYPE.to_owned(), md.media_type);
    ann.insert(oci::MANIFEST_SIZE.to_owned(), md.size.to_string());
    Ok(RemoteVersion {
        number: v.number,
        cowl_digest: v.manifest.digest.clone(),
        layer: Descriptor {
            media_type: if to.is_empty() {
                oci::LAYER
            } else {
                oci::LAYER_AGE
            }
            .to_owned(),
            digest: blob,
            size,
            annotations: ann,
        },
        diff_id,
        created: Some(cowl_store::time::rfc3339(v.manifest.body.created)),
    })
}

/// An exclusive lock on a local mirror directory (made if missing).
fn lock_dir(d: &std::path::Path) -> Result<std::fs::File, MirrorError> {
    std::fs::create_dir_all(d).map_err(MirrorError::local("create", d))?;
    let p = d.join(".cowl-lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(MirrorError::local("open", &p))?;
    f.lock().map_err(MirrorError::local("lock", &p))?;
    Ok(f)
}
