//! A box whose directory was half deleted or damaged by hand: every command
//! names it as damaged and says what to do, instead of a raw OS error;
//! `cowl ls` lists it; `cowl run` refuses it; `cowl verify` lists every
//! problem; `cowl rm --force` removes it. And a store half deleted (no
//! `boxes/`, an empty directory) works as a new one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;
use std::process::Output;

/// A box `b` with three versions and something in its live layer.
fn box_with_versions(w: &World) {
    for i in 1..=3 {
        w.ok("b", &format!("echo {i} > f{i}"));
    }
    assert_success(&w.cmd(&["config", "b", "snapshot=manual"]), "config");
    w.ok("b", "echo live > live");
}

/// Every command a user would try on box `b`, with its arguments.
const COMMANDS: &[&[&str]] = &[
    &["run", "b", "--", "true"],
    &["log", "b"],
    &["diff", "b"],
    &["scan", "b"],
    &["snapshot", "b"],
    &["pin", "b"],
    &["unpin", "b"],
    &["config", "b"],
    &["rollback", "b", "1"],
    &["squash", "b"],
    &["export", "b", "-o", "out.tar"],
    &["commit", "--dry-run", "--all", "b"],
];

fn assert_no_raw_os_error(out: &Output, what: &str) {
    let err = stderr(out);
    assert!(
        !err.contains("os error") && !err.contains("No such file"),
        "{what}: a raw OS error: {err}"
    );
}

fn ls_json(w: &World) -> Value {
    let out = w.cmd(&["ls", "--json"]);
    assert_success(&out, "ls --json");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_command_names_a_box_missing_any_of_its_parts_as_damaged() {
    // What a half-finished `rm -rf` of the store or a slip by hand leaves:
    // one part of the box gone at a time.
    for (part, problem) in [
        ("box.toml", "box.toml is missing"),
        ("lock", "lock is missing"),
        ("live", "live is missing"),
        ("live/work", "live/work is missing"),
        ("mnt", "mnt is missing"),
        ("versions", "versions is missing"),
        ("versions/2/layer", "version 2 lacks its frozen layer"),
        ("versions/2/manifest.json", "version 2 lacks its manifest"),
    ] {
        let w = World::new(&format!("damaged-{}", part.replace(['/', '.'], "-")));
        box_with_versions(&w);
        remove_tree(&w.store.join("boxes/b").join(part));
        for args in COMMANDS {
            let what = format!("{part} gone: cowl {}", args.join(" "));
            let out = w.cmd(args);
            assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
            assert_no_raw_os_error(&out, &what);
            let err = stderr(&out);
            assert!(
                err.contains("box b is damaged") && err.contains(problem),
                "{what}: {err}"
            );
            assert!(
                err.contains("`cowl verify b`") && err.contains("`cowl rm --force b`"),
                "{what}: does not say what to do: {err}"
            );
        }
        // verify lists the problem, and where the box's files are.
        let out = w.cmd(&["verify", "b"]);
        assert_eq!(out.status.code(), Some(1), "{part}");
        assert_no_raw_os_error(&out, part);
        assert!(stderr(&out).contains(problem), "{part}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&w.store.join("boxes/b").display().to_string()),
            "{part}: {}",
            stderr(&out)
        );
        // ls lists it as damaged, with the problem, and still lists the rest.
        w.ok("other", "true");
        let rows = ls_json(&w);
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 2, "{part}: {rows:?}");
        assert_eq!(rows[0]["name"], "b");
        assert_eq!(rows[0]["damaged"], true, "{part}");
        assert!(
            rows[0]["problems"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p.as_str().unwrap().contains(problem)),
            "{part}: {rows:?}"
        );
        assert_eq!(rows[1]["damaged"], false, "{part}");
        let out = w.cmd(&["ls"]);
        assert_success(&out, "ls");
        assert!(
            stdout(&out)
                .lines()
                .any(|l| l.starts_with("b ") && l.contains("damaged")),
            "{part}: {}",
            stdout(&out)
        );
        assert!(stderr(&out).contains("box b is damaged"), "{part}");
        // rm --force always removes it, and the name is free again.
        let out = w.cmd(&["rm", "--force", "b"]);
        assert_success(&out, &format!("{part}: rm --force"));
        assert!(!w.store.join("boxes/b").exists(), "{part}");
        w.ok("b", "true");
    }
}

#[test]
fn a_box_missing_only_derived_or_optional_files_keeps_working() {
    // The journal, the run cache, the operations lock, pending work, a
    // version's digest: cowl remakes or does without them.
    for part in [
        "journal.jsonl",
        "ops.lock",
        "pending",
        "cache",
        "cache/layer",
        "cache/of",
        "versions/9/digest",
    ] {
        let w = World::new(&format!("derived-{}", part.replace(['/', '.'], "-")));
        // Enough versions for the run cache.
        for i in 1..=9 {
            w.ok("b", &format!("echo {i} > f{i}"));
        }
        assert!(w.store.join("boxes/b/cache/layer").exists());
        remove_tree(&w.store.join("boxes/b").join(part));
        for args in [&["log", "b"][..], &["diff", "b"], &["scan", "b"], &["ls"]] {
            let out = w.cmd(args);
            assert_success(&out, &format!("{part} gone: cowl {}", args.join(" ")));
            assert_no_raw_os_error(&out, part);
        }
        let out = w.sh("b", "cat f1");
        assert_success(&out, part);
        assert_eq!(stdout(&out), "1\n", "{part}");
        w.ok("b", "echo 10 > f10");
        assert_success(&w.cmd(&["verify", "b"]), part);
    }
}

#[test]
fn a_file_deleted_inside_a_layer_is_found_by_verify_not_on_every_run() {
    // Finding it means re-hashing the layers: verify's job, not a run's.
    let w = World::new("damaged-file");
    for i in 1..=3 {
        w.ok("b", &format!("echo {i} > f{i}"));
    }
    let f2 = w.in_layers("b", &w.host().join("f2"));
    assert!(f2.starts_with(w.store.join("boxes/b/versions/2")), "{f2:?}");
    std::fs::remove_file(&f2).unwrap();
    assert_success(&w.sh("b", "true"), "run");
    let v = w.cmd(&["verify", "b"]);
    assert_eq!(v.status.code(), Some(1));
    let err = stderr(&v);
    assert!(err.contains("version 2 does not verify"), "{err}");
    assert!(
        err.contains("`cowl rollback b 1`") && err.contains("`cowl rm --force b`"),
        "does not say what to do: {err}"
    );
}

#[test]
fn run_refuses_a_box_whose_old_version_lost_its_layer_even_with_a_run_cache() {
    // With the run cache, a run stacks no version layer: the check on open
    // is what finds the loss, before a run writes on top of a broken stack.
    let w = World::new("damaged-cache");
    for i in 1..=9 {
        w.ok("b", &format!("echo {i} > f{i}"));
    }
    assert!(w.store.join("boxes/b/cache/of").exists());
    remove_tree(&w.store.join("boxes/b/versions/2/layer"));
    let out = w.sh("b", "echo more > more");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("version 2 lacks its frozen layer"),
        "{}",
        stderr(&out)
    );
    assert!(!w.in_layers("b", &w.host().join("more")).exists());
}

#[test]
fn a_running_box_whose_files_were_deleted_is_stopped_and_removed_by_rm_force() {
    for part in ["box.toml", "lock"] {
        let w = World::new(&format!("damaged-running-{}", part.replace('.', "-")));
        let mut child = w.start_sleeping("b");
        remove_tree(&w.store.join("boxes/b").join(part));
        let rows = ls_json(&w);
        assert_eq!(rows[0]["damaged"], true, "{part}: {rows}");
        assert_eq!(rows[0]["running"], true, "{part}: {rows}");
        let out = w.cmd(&["rm", "b"]);
        assert_eq!(out.status.code(), Some(1), "{part}");
        assert!(stderr(&out).contains("running"), "{part}: {}", stderr(&out));
        assert!(w.store.join("boxes/b").exists(), "{part}");
        let out = w.cmd(&["rm", "--force", "b"]);
        assert_success(&out, &format!("{part}: rm --force"));
        assert!(stdout(&out).contains("stopped it first"), "{part}");
        child.wait().unwrap();
        assert!(!w.store.join("boxes/b").exists(), "{part}");
    }
}

#[test]
fn stop_ends_a_running_box_that_is_damaged() {
    let w = World::new("damaged-stop");
    let mut child = w.start_sleeping("b");
    remove_tree(&w.store.join("boxes/b/box.toml"));
    let out = w.cmd(&["stop", "--grace", "5", "b"]);
    assert_success(&out, "stop");
    assert!(
        stderr(&out).contains("box b is damaged"),
        "{}",
        stderr(&out)
    );
    assert_eq!(child.wait().unwrap().code(), Some(143));
    let out = w.cmd(&["stop", "b"]);
    assert_success(&out, "stop again");
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
}

#[test]
fn a_store_without_boxes_or_emptied_works_as_a_new_one() {
    let w = World::new("damaged-store");
    w.ok("b", "echo 1 > f");
    remove_tree(&w.store.join("boxes"));
    let ls = ls_json(&w);
    assert_eq!(ls, serde_json::json!([]));
    remove_tree(&w.store);
    std::fs::create_dir(&w.store).unwrap();
    for args in [&["ls"][..], &["ps"], &["gc"]] {
        let out = w.cmd(args);
        assert_success(&out, &args.join(" "));
    }
    let out = w.cmd(&["log", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no box named"), "{}", stderr(&out));
    assert_eq!(w.ok("b", "cat f 2>/dev/null; echo fresh"), "fresh\n");
}
