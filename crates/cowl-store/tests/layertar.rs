//! A layer written as tar and imported again is the same layer: every entry's
//! kind, mode, owner, size, mtime (nanoseconds), xattrs and content.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cowl_store::layerimport::{import_layer_tar, ImportLimits};
use cowl_store::layertar::write_layer_tar;
use cowl_store::manifest::scan_layer;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cowl-layertar-{name}-{}", std::process::id()));
    let _ = cowl_store::boxdir::remove_tree(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sample_layer(l: &Path) {
    use rustix::fs::{FileType, Mode, CWD};
    std::fs::create_dir_all(l.join("home/u/deep")).unwrap();
    std::fs::write(l.join("home/u/a.txt"), "hello\n").unwrap();
    std::fs::write(l.join("home/u/deep/big"), vec![7u8; 300_000]).unwrap();
    std::fs::hard_link(l.join("home/u/a.txt"), l.join("home/u/a-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", l.join("home/u/abs-link")).unwrap();
    std::os::unix::fs::symlink("../../..", l.join("home/u/up")).unwrap();
    rustix::fs::mknodat(
        CWD,
        l.join("home/u/gone"),
        FileType::CharacterDevice,
        Mode::empty(),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        CWD,
        l.join("home/u/pipe"),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    std::fs::create_dir(l.join("home/u/opaque")).unwrap();
    xattr::set(l.join("home/u/opaque"), "user.overlay.opaque", b"y").unwrap();
    std::fs::write(l.join("home/u/opaque/x"), "x").unwrap();
    xattr::set(l.join("home/u/a.txt"), "user.note", b"\x00bin\xff").unwrap();
    let long = "n".repeat(200);
    std::fs::create_dir_all(l.join("home/u").join(&long).join(&long)).unwrap();
    std::fs::write(l.join("home/u").join(&long).join(&long).join(&long), "deep").unwrap();
    std::fs::set_permissions(
        l.join("home/u/deep"),
        std::fs::Permissions::from_mode(0o555),
    )
    .unwrap();
    let t = std::fs::FileTimes::new()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::new(1_600_000_000, 123_456_789));
    std::fs::File::options()
        .write(true)
        .open(l.join("home/u/a.txt"))
        .unwrap()
        .set_times(t)
        .unwrap();
}

#[test]
fn a_layer_round_trips_through_tar() {
    let d = scratch("roundtrip");
    let src = d.join("src");
    sample_layer(&src);
    let mut tar = Vec::new();
    let stats = write_layer_tar(&src, &mut tar).unwrap();
    assert!(stats.bytes >= 300_006, "{stats:?}");
    // Deterministic.
    let mut again = Vec::new();
    write_layer_tar(&src, &mut again).unwrap();
    assert!(tar == again, "two writes of the same layer differ");
    let dst = d.join("dst");
    import_layer_tar(&tar[..], &dst, &ImportLimits::default()).unwrap();
    let a = scan_layer(&src).unwrap();
    let b = scan_layer(&dst).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    // Hard links stay hard links.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(dst.join("home/u/a.txt")).unwrap().ino(),
        std::fs::metadata(dst.join("home/u/a-link")).unwrap().ino()
    );
    cowl_store::boxdir::remove_tree(&d).unwrap();
}
