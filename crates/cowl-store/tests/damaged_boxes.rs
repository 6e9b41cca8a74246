//! The store's view of a box directory that is not whole: opening names it
//! damaged with every problem, and removal works on it whatever modes its
//! files carry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cowl_store::{BoxHolder, BoxName, Mode, Store, StoreError};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let home = std::env::var("HOME").unwrap();
    let d = PathBuf::from(home)
        .join(".cache/cowl-tests")
        .join(format!("{name}-{}", std::process::id()));
    chmod_tree(&d);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Makes every directory below `p` writable, for the test's own clean-up.
fn chmod_tree(p: &Path) {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return;
    };
    if md.is_dir() {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).unwrap();
        for e in std::fs::read_dir(p).unwrap() {
            chmod_tree(&e.unwrap().path());
        }
    }
}

fn store_at(dir: &Path) -> Store {
    let uid = std::fs::metadata(dir).unwrap().uid();
    Store::open(&dir.join("store"), uid).unwrap()
}

/// A box with one version, as a snapshot leaves it.
fn box_with_a_version(store: &Store, name: &str) -> PathBuf {
    let name = BoxName::new(name).unwrap();
    let (opened, _) = store.open_or_create(&name, Mode::Rootless).unwrap();
    let b = opened.recover().unwrap();
    let v = b.path().join("versions/1");
    std::fs::create_dir_all(v.join("layer/d")).unwrap();
    std::fs::write(v.join("manifest.json"), "{}").unwrap();
    b.path().to_owned()
}

fn problems(store: &Store, name: &str) -> Vec<String> {
    match store
        .open_box(&BoxName::new(name).unwrap())
        .and_then(cowl_store::Opened::recover)
    {
        Err(StoreError::Damaged { problems, .. }) => problems,
        other => panic!("not damaged: {other:?}"),
    }
}

#[test]
fn opening_a_box_names_every_missing_part_and_never_a_raw_error() {
    let d = scratch("store-damaged");
    let store = store_at(&d);
    let path = box_with_a_version(&store, "b");
    assert!(store.open_box(&BoxName::new("b").unwrap()).is_ok());
    std::fs::remove_file(path.join("box.toml")).unwrap();
    std::fs::remove_dir(path.join("mnt")).unwrap();
    assert_eq!(
        problems(&store, "b"),
        ["mnt is missing", "box.toml is missing"]
    );
    let path = box_with_a_version(&store, "c");
    std::fs::write(path.join("box.toml"), "mode = [").unwrap();
    let p = problems(&store, "c");
    assert!(p[0].starts_with("box.toml does not parse"), "{p:?}");
    let path = box_with_a_version(&store, "e");
    std::fs::remove_dir_all(path.join("versions/1/layer")).unwrap();
    assert_eq!(
        problems(&store, "e"),
        ["version 1 lacks its frozen layer: versions/1/layer is missing"]
    );
    let err = store
        .open_box(&BoxName::new("e").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("box e is damaged")
            && err.contains("`cowl verify e`")
            && err.contains("`cowl rm --force e`"),
        "{err}"
    );
    chmod_tree(&d);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_damaged_box_with_unwritable_directories_is_removed_and_then_the_store() {
    let d = scratch("store-remove");
    let store = store_at(&d);
    let path = box_with_a_version(&store, "b");
    std::fs::remove_file(path.join("box.toml")).unwrap();
    let layer = path.join("versions/1/layer");
    std::fs::write(layer.join("d/f"), "x").unwrap();
    std::fs::set_permissions(layer.join("d"), std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(&layer, std::fs::Permissions::from_mode(0o000)).unwrap();
    let name = BoxName::new("b").unwrap();
    let BoxHolder::Free(lock) = store.holder(&name).unwrap() else {
        panic!("a stopped box is held");
    };
    store.remove(&name, Some(lock)).unwrap();
    assert!(!path.exists());
    assert!(store.list().unwrap().is_empty());
    // A file of the user's stays, and so does the directory holding it.
    std::fs::write(store.root().join("mine"), "x").unwrap();
    assert_eq!(store.remove_store().unwrap(), [store.root().join("mine")]);
    assert!(!store.root().join("boxes").exists());
    std::fs::remove_file(store.root().join("mine")).unwrap();
    assert!(store.remove_store().unwrap().is_empty());
    assert!(!store.root().exists());
    assert!(Store::open_existing(store.root(), 0).unwrap().is_none());
    std::fs::remove_dir_all(&d).unwrap();
}
