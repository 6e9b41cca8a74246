//! Removing boxes and the whole store: `cowl rm` and `cowl rm --all`,
//! whatever modes the apps left on their files, and the store removed by
//! hand as the README says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;

/// Directories of the modes that stop `rm -rf` (0555 with entries, 000),
/// in the live layer and in a version; and the overlay's own work
/// directories, which the kernel leaves at mode 000.
fn box_with_hostile_modes(w: &World, name: &str) {
    w.ok(
        name,
        "mkdir -p ro/sub && echo x > ro/sub/f && chmod 555 ro/sub ro && mkdir none && echo y > none/g && chmod 000 none",
    );
    assert_success(&w.cmd(&["config", name, "snapshot=manual"]), "config");
    w.ok(
        name,
        "mkdir -p live-ro && echo z > live-ro/h && chmod 500 live-ro",
    );
}

fn json(out: &std::process::Output, what: &str) -> Value {
    assert_success(out, what);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn rm_all_removes_every_box_and_the_store_whatever_modes_the_apps_left() {
    let w = World::new("rm-all");
    box_with_hostile_modes(&w, "one");
    // Enough versions for the run cache (hard links of every layer).
    for i in 1..=9 {
        w.ok("two", &format!("echo {i} > f{i}"));
    }
    // A box half deleted by hand.
    w.ok("three", "true");
    std::fs::remove_file(w.store.join("boxes/three/box.toml")).unwrap();

    // A running box: refused, and nothing is removed.
    let mut child = w.start_sleeping("sleeper");
    let out = w.cmd(&["rm", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("box sleeper (pid") && err.contains("nothing was removed"),
        "{err}"
    );
    assert!(
        err.contains("`cowl stop sleeper`") && err.contains("--force"),
        "{err}"
    );
    let boxes = std::fs::read_dir(w.store.join("boxes")).unwrap().count();
    assert_eq!(boxes, 4, "rm --all removed something");

    // --force stops it, then removes everything, and says what.
    let report = json(&w.cmd(&["rm", "--all", "--force", "--json"]), "rm --all");
    assert_eq!(
        report["removed"],
        serde_json::json!(["one", "sleeper", "three", "two"]),
        "{report}"
    );
    assert_eq!(report["stopped"], serde_json::json!(["sleeper"]));
    assert_eq!(report["failed"], serde_json::json!([]));
    assert_eq!(report["store_removed"], true);
    assert_eq!(
        report["store"].as_str().unwrap(),
        std::fs::canonicalize(&w.dir)
            .unwrap()
            .join("store")
            .to_str()
            .unwrap()
    );
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert!(!w.store.exists(), "the store is still there");

    // Again: nothing to remove, and that is fine.
    let out = w.cmd(&["rm", "--all"]);
    assert_success(&out, "rm --all of no store");
    assert!(
        stdout(&out).contains("nothing to remove"),
        "{}",
        stdout(&out)
    );
    assert!(!w.store.exists(), "rm --all made a store");
}

#[test]
fn rm_all_leaves_what_cowl_did_not_make_and_says_so() {
    let w = World::new("rm-all-foreign");
    w.ok("b", "true");
    std::fs::write(w.store.join("notes.txt"), "mine").unwrap();
    let out = w.cmd(&["rm", "--all"]);
    assert_success(&out, "rm --all");
    let text = stdout(&out);
    assert!(text.contains("removed box b"), "{text}");
    assert!(
        text.contains("left the store") && text.contains("notes.txt"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(w.store.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(!w.store.join("boxes").exists());
}

#[test]
fn rm_removes_a_box_whose_app_left_unwritable_directories_and_says_so() {
    let w = World::new("rm-modes");
    box_with_hostile_modes(&w, "b");
    let out = w.cmd(&["rm", "--json", "b"]);
    let report = json(&out, "rm --json");
    assert_eq!(report["removed"], serde_json::json!(["b"]));
    assert!(report.get("store").is_none(), "{report}");
    let boxes: Vec<_> = std::fs::read_dir(w.store.join("boxes")).unwrap().collect();
    assert!(boxes.is_empty(), "left behind: {boxes:?}");
    let out = w.cmd(&["rm", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no box named"), "{}", stderr(&out));
}

#[test]
fn the_stores_removal_by_hand_as_the_readme_says_works() {
    // `chmod -R u+rwX STORE && rm -rf STORE`: what the README gives for
    // removing cowl without cowl.
    let w = World::new("rm-by-hand");
    box_with_hostile_modes(&w, "b");
    let store = w.store.to_str().unwrap().to_owned();
    let out = std::process::Command::new("sh")
        .args(["-c", "chmod -R u+rwX \"$1\" && rm -rf \"$1\"", "sh", &store])
        .output()
        .unwrap();
    assert_success(&out, "chmod -R u+rwX && rm -rf");
    assert!(!w.store.exists());
}
