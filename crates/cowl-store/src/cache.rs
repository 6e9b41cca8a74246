//! The run cache: all of a box's versions merged into one layer (hard links,
//! no copies), so that `cowl run` stacks one lower layer however long the
//! history is. Derived data: never read by diff, log or verify, rebuilt
//! whenever it does not match the newest version.
//!
//! ```text
//! cache/layer   versions 1..N merged, overlayfs semantics kept
//! cache/of      the digest of version N; absent while the cache is changed
//! ```

use crate::boxdir::{remove_tree, sync_dir, write_atomic};
use crate::squash::{apply_onto, merge};
use crate::{BoxDir, StoreError};
use std::fs;
use std::path::PathBuf;

/// Below this many versions the versions themselves are stacked.
pub const MIN_VERSIONS: usize = 8;

fn numbers(b: &BoxDir) -> Vec<u64> {
    let mut v: Vec<u64> = fs::read_dir(b.path().join("versions"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn digest_of(b: &BoxDir, n: u64) -> Option<String> {
    fs::read_to_string(b.path().join("versions").join(n.to_string()).join("digest")).ok()
}

/// Whether any version is a commit with a cut. A box that never had one
/// (no `cuts` flag, set by the first commit) costs one look-up, not one
/// per version.
fn has_cuts(b: &BoxDir, ns: &[u64]) -> bool {
    if !b.path().join(crate::cut::FLAG).exists() {
        return false;
    }
    ns.iter().any(|n| {
        b.path()
            .join("versions")
            .join(n.to_string())
            .join(crate::cut::FILE)
            .exists()
    })
}

fn cache_of(b: &BoxDir) -> Option<String> {
    fs::read_to_string(b.path().join("cache/of")).ok()
}

/// The lower layers a run stacks, newest first: the cache when it matches
/// the newest version, else every version. `COWL_RUN_CACHE=off` stacks the
/// versions themselves (to compare the two).
pub fn run_layers(b: &BoxDir) -> Result<Vec<PathBuf>, StoreError> {
    // A cache whose layer is gone (deleted by hand) is no cache: forgotten,
    // so that it is rebuilt rather than stacked.
    let of = b.path().join("cache/of");
    if of.exists() && fs::symlink_metadata(b.path().join("cache/layer")).is_err() {
        fs::remove_file(&of).map_err(StoreError::io("remove", &of))?;
    }
    let ns = numbers(b);
    let cuts = has_cuts(b, &ns);
    if !cuts && std::env::var_os("COWL_RUN_CACHE").is_some_and(|v| v == "off") {
        return b.version_layers();
    }
    if let Some(&top) = ns.last() {
        if cuts && cache_of(b) != digest_of(b, top) {
            // Only the merged layer can show a commit's cut.
            let _ops = b.ops_lock(true)?;
            refresh(b)?;
        }
        if (cuts || ns.len() >= MIN_VERSIONS)
            && cache_of(b).is_some()
            && cache_of(b) == digest_of(b, top)
        {
            let layer = b.path().join("cache/layer");
            b.check_plain_dir(&b.path().join("cache"))?;
            b.check_plain_dir(&layer)?;
            return Ok(vec![layer]);
        }
    }
    b.version_layers()
}

/// Brings the cache up to the newest version: applies just that version when
/// the cache matches the one before, else rebuilds it. Call under the
/// exclusive operations lock, with the box stopped.
pub fn refresh(b: &BoxDir) -> Result<(), StoreError> {
    let ns = numbers(b);
    let dir = b.path().join("cache");
    let Some(&top) = ns.last() else {
        return remove_tree(&dir).map_err(StoreError::io("remove", &dir));
    };
    let cuts = has_cuts(b, &ns);
    if ns.len() < MIN_VERSIONS && !cuts {
        return remove_tree(&dir).map_err(StoreError::io("remove", &dir));
    }
    let want = digest_of(b, top);
    let have = cache_of(b);
    if want.is_none() || have == want {
        return Ok(());
    }
    let layer_of = |n: u64| b.path().join("versions").join(n.to_string()).join("layer");
    let layers: Vec<PathBuf> = ns.iter().map(|&n| layer_of(n)).collect();
    let cache_layer = dir.join("layer");
    let mut roots: Vec<&std::path::Path> = layers.iter().map(PathBuf::as_path).collect();
    roots.push(&cache_layer);
    let _opened = crate::layer::open_for_reading(&b.path().join("pending"), &roots);
    let prev = ns.iter().rev().nth(1).copied();
    let top_cut = crate::cut::of_layer(&layer_of(top)).is_some();
    if !top_cut && have.is_some() && prev.is_some_and(|p| have == digest_of(b, p)) {
        // Invalid while it changes: a crash here leaves no `of`, and the
        // next refresh rebuilds.
        let of = dir.join("of");
        fs::remove_file(&of).map_err(StoreError::io("remove", &of))?;
        sync_dir(&dir);
        apply_onto(&layer_of(top), &dir.join("layer"))?;
    } else {
        let tmp = b.path().join("cache.new");
        remove_tree(&tmp).map_err(StoreError::io("remove", &tmp))?;
        fs::create_dir(&tmp).map_err(StoreError::io("create", &tmp))?;
        merge(&layers, &tmp.join("layer"))?;
        remove_tree(&dir).map_err(StoreError::io("remove", &dir))?;
        fs::rename(&tmp, &dir).map_err(StoreError::io("rename", &tmp))?;
        sync_dir(b.path());
    }
    write_atomic(&dir.join("of"), want.unwrap_or_default().as_bytes())
}
