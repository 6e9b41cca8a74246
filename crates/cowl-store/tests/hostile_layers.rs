//! Layers may come from a hostile mirror or app: nothing cowl does with
//! them reaches outside the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let home = std::env::var("HOME").unwrap();
    let d = PathBuf::from(home)
        .join(".cache/cowl-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hex(p: &Path) -> String {
    p.as_os_str()
        .as_encoded_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A commit's cut naming a path through a symlink of the layer removes
/// nothing where the symlink points.
#[test]
fn a_cut_through_a_symlink_removes_nothing_outside() {
    let d = scratch("cut-symlink");
    let victim = d.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("secret"), "keep").unwrap();
    let v1 = d.join("versions/1");
    std::fs::create_dir_all(v1.join("layer")).unwrap();
    std::os::unix::fs::symlink(&victim, v1.join("layer/x")).unwrap();
    std::fs::write(v1.join("committed.json"), r#"["x/secret", "x"]"#).unwrap();
    let out = d.join("merged");
    cowl_store::squash::merge(&[v1.join("layer")], &out).unwrap();
    assert_eq!(
        std::fs::read_to_string(victim.join("secret")).unwrap(),
        "keep"
    );
    // The cut of `x` itself removes the symlink in the merged layer only.
    assert!(out.join("x").symlink_metadata().is_err());
    assert!(victim.is_dir());
    let _ = std::fs::remove_dir_all(&d);
}

/// A crash record naming a directory outside the layers it opened, or a
/// symlink, or forged with a newline in a name, changes no mode.
#[test]
fn a_forged_crash_record_changes_no_mode_outside_the_layers() {
    let d = scratch("record-forged");
    let layer = d.join("layer");
    std::fs::create_dir_all(&layer).unwrap();
    let outside = d.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&outside, layer.join("link")).unwrap();
    let inside = layer.join("a\n777\tx");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o700)).unwrap();
    let records = d.join("pending");
    std::fs::create_dir_all(&records).unwrap();
    std::fs::write(
        records.join("opened-1-0"),
        format!(
            "root\t{}\n777\t{}\n777\t{}\n755\t{}\n",
            hex(&layer),
            hex(&outside),
            hex(&layer.join("link")),
            hex(&inside)
        ),
    )
    .unwrap();
    // The format before paths were hex-encoded, as a forged line would read.
    std::fs::write(
        records.join("opened-1-1"),
        format!("0\t{}\n777\t{}\n", layer.display(), outside.display()),
    )
    .unwrap();
    cowl_store::layer::restore_recorded(&records);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&outside), 0o700);
    // What is recorded inside the layer is restored.
    assert_eq!(mode(&inside), 0o755);
    assert!(std::fs::read_dir(&records).unwrap().next().is_none());
    let _ = std::fs::remove_dir_all(&d);
}
