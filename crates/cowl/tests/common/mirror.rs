//! Helpers of the mirror tests: cowl in another store, the versions and
//! diffs a store shows, a box with content, age keys, and the blobs and
//! manifests of a directory mirror (to tamper with).

use super::*;
use serde_json::Value;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::process::Output;

pub fn json_of(out: &Output, what: &str) -> Value {
    assert_success(out, what);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `cowl ARGS…` against another store.
pub fn cmd_in(w: &World, home: &Path, args: &[&str]) -> Output {
    w.cowl().env("COWL_HOME", home).args(args).output().unwrap()
}

/// `cowl log --json` as (number, digest) pairs.
pub fn numbered(w: &World, home: &Path, b: &str) -> Vec<(u64, String)> {
    let out = cmd_in(w, home, &["log", "--json", b]);
    json_of(&out, "log")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn digests(w: &World, home: &Path, b: &str) -> Vec<String> {
    numbered(w, home, b).into_iter().map(|(_, d)| d).collect()
}

pub fn diff_json(w: &World, home: &Path, b: &str) -> String {
    let out = cmd_in(w, home, &["diff", "--json", b]);
    assert_success(&out, "diff");
    stdout(&out)
}

/// A box with a few kinds of change: files, a deleted host file, a
/// symlink, an xattr, a replaced directory (opaque), a hard link.
pub fn make_box(w: &World, b: &str) {
    std::fs::create_dir_all(w.host().join("olddir")).unwrap();
    std::fs::write(w.host().join("olddir/keep"), "host\n").unwrap();
    std::fs::write(w.host().join("doomed"), "host\n").unwrap();
    w.ok(
        b,
        "echo one > a; mkdir -p d/e; echo deep > d/e/f; ln -s a link; ln a hard; \
         rm doomed; rm -r olddir; mkdir olddir; echo new > olddir/n; \
         (command -v setfattr >/dev/null && setfattr -n user.note -v hi a) || true",
    );
    w.ok(b, "echo two > b; rm d/e/f");
}

pub fn age_keys(dir: &Path) -> (String, PathBuf) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let file = dir.join(format!(
        "key-{}",
        id.to_public().to_string().len() + rand_suffix()
    ));
    std::fs::write(&file, format!("{}\n", id.to_string().expose_secret())).unwrap();
    (id.to_public().to_string(), file)
}

pub fn rand_suffix() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn sha256(data: &[u8]) -> String {
    let d = sha2::Sha256::digest(data);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub fn blob_path(mirror: &Path, digest: &str) -> PathBuf {
    mirror
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

pub fn put_blob(mirror: &Path, data: &[u8]) -> (String, u64) {
    let d = sha256(data);
    std::fs::write(blob_path(mirror, &d), data).unwrap();
    (d, data.len() as u64)
}

/// Rewrites the mirror's newest manifest with `edit`, and the index with it.
pub fn edit_latest_manifest(mirror: &Path, edit: impl FnOnce(&mut Value)) {
    let index_path = mirror.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let latest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == "latest")
        .unwrap()
        .clone();
    let old = latest["digest"].as_str().unwrap().to_owned();
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(blob_path(mirror, &old)).unwrap()).unwrap();
    edit(&mut manifest);
    let (md, msize) = put_blob(mirror, &serde_json::to_vec(&manifest).unwrap());
    for e in index["manifests"].as_array_mut().unwrap() {
        if e["digest"] == old.as_str() {
            e["digest"] = md.clone().into();
            e["size"] = msize.into();
        }
    }
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A mirror of a one-version box, pushed fresh.
pub fn base_mirror(w: &World, name: &str) -> PathBuf {
    let mirror = w.dir.join(name);
    assert_success(&w.cmd(&["push", "b", mirror.to_str().unwrap()]), "push");
    mirror
}

pub fn copy_dir(from: &Path, to: &Path) {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert_success(&out, "cp -a");
}
