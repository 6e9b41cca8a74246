//! Fuzzes the importer of layer archives from mirrors: whatever the bytes,
//! it must not panic, must create nothing outside its destination, and what
//! it leaves inside holds no device node but whiteouts, no setuid or setgid
//! file and no extended attribute but plain `user.*` ones and the opaque mark.
//!
//! Seed a corpus with the tests' hostile archives, then run it:
//!   mkdir -p corpus/import_layer && cp ../crates/cowl/tests/fixtures/hostile/*.tar corpus/import_layer/
//!   cargo +nightly fuzz run import_layer corpus/import_layer
#![no_main]

use cowl_store::layerimport::{import_layer_tar, ImportLimits};
use libfuzzer_sys::fuzz_target;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn check(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let md = std::fs::symlink_metadata(&p).expect("stat");
        let ft = md.file_type();
        assert!(!ft.is_block_device(), "block device {p:?}");
        assert!(!ft.is_char_device() || md.rdev() == 0, "device {p:?}");
        assert!(!ft.is_file() || md.mode() & 0o6000 == 0, "setuid {p:?}");
        if !ft.is_symlink() {
            for n in xattr::list(&p).into_iter().flatten() {
                let n = n.to_string_lossy().into_owned();
                assert!(
                    n == "user.overlay.opaque" || (n.starts_with("user.") && !n.starts_with("user.overlay.")),
                    "xattr {n} on {p:?}"
                );
            }
        }
        if ft.is_dir() {
            check(&p);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let base = std::env::temp_dir().join(format!("cowl-fuzz-{}", std::process::id()));
    let _ = cowl_store::boxdir::remove_tree(&base);
    std::fs::create_dir_all(base.join("outside")).expect("scratch");
    let limits = ImportLimits {
        max_bytes: 64 << 20,
        max_entries: 10_000,
        ..ImportLimits::default()
    };
    let _ = import_layer_tar(data, &base.join("layer"), &limits);
    check(&base.join("layer"));
    let names: Vec<_> = std::fs::read_dir(&base).expect("scratch").flatten().map(|e| e.file_name()).collect();
    assert!(names.len() <= 2, "the import made {names:?} beside its destination");
    assert!(std::fs::read_dir(base.join("outside")).expect("scratch").next().is_none());
    let _ = cowl_store::boxdir::remove_tree(&base);
});
