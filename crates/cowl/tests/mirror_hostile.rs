//! Hostile mirrors: every archive of the hostile corpus is refused and
//! nothing is made; a refused layer leaves an existing box as it was; a
//! decompression bomb stops at the ratio cap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::mirror::*;
use common::*;
use std::path::{Path, PathBuf};

/// Replaces the layer of version `n` of the mirror's newest manifest with
/// `blob` (already compressed), keeping the cowl manifests: the chain still
/// verifies, and only the importer stands between the archive and the box.
fn swap_layer(mirror: &Path, n: usize, blob: &[u8]) {
    let (d, size) = put_blob(mirror, blob);
    edit_latest_manifest(mirror, |m| {
        m["layers"][n - 1]["digest"] = d.into();
        m["layers"][n - 1]["size"] = size.into();
    });
}

/// Sets the owner fields (4242) of a corpus archive to the caller's ids.
fn own(mut tar: Vec<u8>) -> Vec<u8> {
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let field = |v: u32| format!("{v:07o}\0").into_bytes();
    let mut off = 0;
    while off + 512 <= tar.len() {
        let h = &mut tar[off..off + 512];
        if h.iter().all(|&b| b == 0) {
            off += 512;
            continue;
        }
        if &h[108..116] == b"0010222\0" {
            h[108..116].copy_from_slice(&field(uid));
        }
        if &h[116..124] == b"0010222\0" {
            h[116..124].copy_from_slice(&field(gid));
        }
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let size_text = String::from_utf8_lossy(&h[124..136])
            .trim_matches(|c: char| c == '\0' || c == ' ')
            .to_owned();
        let size = u64::from_str_radix(&size_text, 8).unwrap_or(0);
        off += 512 + (size.div_ceil(512) * 512) as usize;
    }
    tar
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile")
}

#[test]
fn every_archive_of_the_hostile_corpus_is_refused_and_nothing_is_made() {
    let w = World::new("mirror-hostile");
    w.ok("b", "echo one > a");
    let base = base_mirror(&w, "base");
    let other = w.dir.join("other-store");
    let sentinel = w.dir.join("escaped");
    let expect = std::fs::read_to_string(corpus_dir().join("expect.txt")).unwrap();
    let mut n = 0;
    for line in expect.lines() {
        let (file, want) = line.split_once('\t').unwrap();
        let tar = own(std::fs::read(corpus_dir().join(file)).unwrap());
        let mirror = w.dir.join(format!("m-{file}"));
        copy_dir(&base, &mirror);
        swap_layer(&mirror, 1, &zstd::encode_all(&tar[..], 3).unwrap());
        let out = cmd_in(&w, &other, &["pull", mirror.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("refused") && err.contains(want),
            "{file}: want {want:?} in: {err}"
        );
        assert!(
            !other.join("boxes/b").exists(),
            "{file}: a refused pull left a box"
        );
        assert!(
            !sentinel.exists() && !Path::new("/tmp/escaped").exists(),
            "{file} escaped"
        );
        n += 1;
    }
    assert!(n >= 15, "the corpus has only {n} archives");
}

/// Every path under `dir` with its type, mode, size and mtime (a rootless
/// layer holds directories even its owner cannot list: those are listed,
/// not entered).
fn listing(dir: &Path) -> String {
    let out = std::process::Command::new("find")
        .arg(dir)
        .args(["-printf", "%p %y %m %s %T@\\n"])
        .output()
        .unwrap();
    let mut lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    lines.sort();
    assert!(lines.len() > 3, "nothing listed under {}", dir.display());
    lines.join("\n")
}

/// Box b with one version, pushed to a directory mirror and pulled from it
/// into a second store: (the mirror, the second store).
fn pulled_copy(w: &World) -> (PathBuf, PathBuf) {
    w.ok("b", "echo one > a");
    let base = base_mirror(w, "base");
    let other = w.dir.join("other-store");
    assert_success(
        &cmd_in(w, &other, &["pull", base.to_str().unwrap()]),
        "pull v1",
    );
    (base, other)
}

/// A second version pushed to `base`, its layer then swapped for a hostile
/// one (an entry through a symlink).
fn push_hostile_v2(w: &World, base: &Path) {
    w.ok("b", "echo two > b");
    assert_success(&w.cmd(&["push", "b", base.to_str().unwrap()]), "push v2");
    let tar = own(std::fs::read(corpus_dir().join("through-symlink.tar")).unwrap());
    swap_layer(base, 2, &zstd::encode_all(&tar[..], 3).unwrap());
}

#[test]
fn a_refused_layer_leaves_an_existing_box_untouched() {
    let w = World::new("mirror-untouched");
    let (base, other) = pulled_copy(&w);
    push_hostile_v2(&w, &base);
    let versions = other.join("boxes/b/versions");
    let before = (listing(&versions), digests(&w, &other, "b"));
    let out = cmd_in(&w, &other, &["pull", base.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!((listing(&versions), digests(&w, &other, "b")), before);
    let pending = other.join("boxes/b/pending");
    assert!(
        std::fs::read_dir(&pending)
            .map(|mut r| r.next().is_none())
            .unwrap_or(true),
        "the refused version's stage was left in pending/"
    );
    assert_success(&cmd_in(&w, &other, &["verify", "b"]), "verify");
}

#[test]
fn pull_force_from_a_bad_mirror_quarantines_nothing() {
    let w = World::new("mirror-force-bad");
    let (base, other) = pulled_copy(&w);
    // The pulled box goes its own way: a version and live changes the
    // mirror does not have.
    let out = cmd_in(
        &w,
        &other,
        &["run", "b", "--", "sh", "-c", "echo local > mine"],
    );
    assert_success(&out, "run");
    std::fs::create_dir_all(other.join("boxes/b/live/upper")).unwrap();
    std::fs::write(other.join("boxes/b/live/upper/live"), "not a version yet\n").unwrap();
    push_hostile_v2(&w, &base);
    let versions = other.join("boxes/b/versions");
    let before = (listing(&versions), digests(&w, &other, "b"));
    let out = cmd_in(&w, &other, &["pull", "--force", base.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!((listing(&versions), digests(&w, &other, "b")), before);
    let quarantined = std::fs::read_dir(other.join("boxes/b/quarantine"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(quarantined, 0, "the refused pull quarantined local history");
    assert_eq!(
        std::fs::read_to_string(other.join("boxes/b/live/upper/live")).unwrap(),
        "not a version yet\n"
    );
    assert_success(&cmd_in(&w, &other, &["verify", "b"]), "verify");
}

#[test]
fn a_decompression_bomb_stops_at_the_ratio_cap() {
    let w = World::new("mirror-bomb");
    w.ok("b", "echo one > a");
    let mirror = base_mirror(&w, "base");
    // 4 GiB of zeros in a file entry, about 100 KiB compressed.
    let size: u64 = 4 << 30;
    let mut header = vec![0u8; 512];
    header[..5].copy_from_slice(b"zeros");
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(format!("{:07o}\0", unsafe { libc::geteuid() }).as_bytes());
    header[116..124].copy_from_slice(format!("{:07o}\0", unsafe { libc::getegid() }).as_bytes());
    header[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut blob = zstd::encode_all(&header[..], 3).unwrap();
    let mib = zstd::encode_all(&vec![0u8; 1 << 20][..], 19).unwrap();
    for _ in 0..(size >> 20) {
        blob.extend_from_slice(&mib);
    }
    blob.extend_from_slice(&zstd::encode_all(&[0u8; 1024][..], 3).unwrap());
    swap_layer(&mirror, 1, &blob);
    let other = w.dir.join("other-store");
    let start = std::time::Instant::now();
    let out = cmd_in(&w, &other, &["pull", mirror.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("compression-ratio cap"),
        "{}",
        stderr(&out)
    );
    assert!(start.elapsed().as_secs() < 60, "the bomb was expanded");
    assert!(!other.join("boxes/b").exists());
    // And the size cap, on an honest layer.
    w.ok("b", "head -c 300000 /dev/urandom > big");
    let honest = base_mirror(&w, "honest");
    let out = cmd_in(
        &w,
        &other,
        &["pull", "--max-bytes", "100000", honest.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("size cap"), "{}", stderr(&out));
}
