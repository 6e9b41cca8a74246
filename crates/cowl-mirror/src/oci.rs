//! The OCI image layout a mirror is, as plain data.
//!
//! ```text
//! oci-layout                 {"imageLayoutVersion": "1.0.0"}
//! index.json                 one manifest per version, tagged vN, and `latest`
//! blobs/sha256/<hex>         layers (tar+zstd, maybe age-encrypted), cowl
//!                            manifests (json+zstd), image configs, manifests
//! ```
//!
//! The image manifest of version N lists the layers of versions 1..N, each
//! annotated with its version number, cowl digest and the blob of its cowl
//! manifest; the manifest itself carries version N's metadata.

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::collections::BTreeMap;

/// Media type of the index.
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an image manifest.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an image config.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a layer: tar compressed with zstd.
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Media type of a layer encrypted with age.
pub const LAYER_AGE: &str = "application/vnd.oci.image.layer.v1.tar+zstd+encrypted";
/// Media type of a cowl manifest blob (JSON compressed with zstd).
pub const COWL_MANIFEST: &str = "application/vnd.cowl.manifest.v1+json+zstd";
/// Media type of a cowl manifest blob encrypted with age.
pub const COWL_MANIFEST_AGE: &str = "application/vnd.cowl.manifest.v1+json+zstd+encrypted";

/// Annotation: the tag of a manifest in the index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation: when a version was made (RFC 3339).
pub const CREATED: &str = "org.opencontainers.image.created";
/// Annotation: the version number.
pub const VERSION: &str = "org.cowl.version";
/// Annotation: the version's cowl manifest digest (BLAKE3, chained).
pub const DIGEST: &str = "org.cowl.digest";
/// Annotation: the digest of the version below.
pub const PARENT: &str = "org.cowl.parent";
/// Annotation: the version's message (left out when encrypted).
pub const MESSAGE: &str = "org.cowl.message";
/// Annotation: the blob holding the version's cowl manifest.
pub const MANIFEST_BLOB: &str = "org.cowl.manifest";
/// Annotation: that blob's media type.
pub const MANIFEST_TYPE: &str = "org.cowl.manifest.type";
/// Annotation: that blob's size.
pub const MANIFEST_SIZE: &str = "org.cowl.manifest.size";
/// Annotation: the box's name.
pub const BOX: &str = "org.cowl.box";
/// Annotation: the box's mode (rootless or system).
pub const MODE: &str = "org.cowl.mode";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// Metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `index.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// `INDEX`.
    #[serde(default)]
    pub media_type: String,
    /// The tagged manifests.
    pub manifests: Vec<Descriptor>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// `MANIFEST`.
    #[serde(default)]
    pub media_type: String,
    /// The image config.
    pub config: Descriptor,
    /// The layers, oldest first.
    pub layers: Vec<Descriptor>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The image config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageConfig {
    /// The host architecture, in Go's words.
    pub architecture: String,
    /// `linux`.
    pub os: String,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
    /// One entry per layer.
    #[serde(default)]
    pub history: Vec<History>,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootFs {
    /// `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `sha256:<hex>` of each uncompressed layer.
    pub diff_ids: Vec<String>,
}

/// A history entry of an image config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// By what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The version's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The architecture in the words of OCI (Go's GOARCH).
pub fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex(&sha2::Sha256::digest(data)))
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The key of a blob in the layout, after checking its digest's form (a
/// hostile index must not name `../../x` as a blob).
pub fn blob_key(digest: &str) -> Result<String, crate::MirrorError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .ok_or_else(|| crate::MirrorError::Format(format!("{digest:?} is not a sha256 digest")))?;
    Ok(format!("blobs/sha256/{hex}"))
}

/// Whether `s` is a 64-digit lowercase hex string.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
