//! The versioned cache: snapshot, log, diff between versions, rollback,
//! squash, verify, gc, and crash safety at every step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;

fn json(w: &World, args: &[&str]) -> Value {
    let out = w.cmd(args);
    assert_success(&out, &args.join(" "));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn versions(w: &World, b: &str) -> Vec<u64> {
    json(w, &["log", "--json", b])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .rev()
        .collect()
}

/// Changed paths relative to the fixture, with their change.
fn changes(w: &World, args: &[&str]) -> Vec<(String, String)> {
    let h = w.host().display().to_string();
    json(w, args)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().replace(&h, ""),
                c["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn each_run_that_changes_something_becomes_a_version_with_a_chained_manifest() {
    let w = World::new("autosnap");
    std::fs::write(w.host().join("h"), "host\n").unwrap();
    w.ok("b", "echo one > a; echo changed > h");
    w.ok("b", "cat a > /dev/null"); // changes nothing: no version
    let out = w.sh("b", "echo two > b; rm a; exit 3");
    assert_eq!(out.status.code(), Some(3));
    let log = json(&w, &["log", "--json", "b"]);
    let rows = log.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{log}");
    assert_eq!(rows[0]["version"], 2);
    assert_eq!(rows[0]["made"], "run");
    assert!(
        rows[0]["message"].as_str().unwrap().ends_with("(exit 3)"),
        "{log}"
    );
    assert_eq!(
        (rows[0]["added"].as_u64(), rows[0]["deleted"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (rows[1]["added"].as_u64(), rows[1]["modified"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(rows[1]["digest"].as_str().unwrap().len(), 64);
    // The manifest chains to its parent's digest.
    let m2: Value = serde_json::from_slice(
        &std::fs::read(w.store.join("boxes/b/versions/2/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m2["parent"], rows[1]["digest"]);
    let entry = m2["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"].as_str().unwrap().ends_with("/b"))
        .unwrap()
        .clone();
    assert_eq!(entry["kind"], "file");
    assert_eq!(entry["blake3"].as_str().unwrap().len(), 64);

    assert_eq!(
        changes(&w, &["diff", "--json", "b", "1", "2"]),
        [
            ("/a".into(), "deleted".into()),
            ("/b".into(), "added".into())
        ]
    );
    assert_eq!(
        changes(&w, &["diff", "--json", "b", "0", "1"]),
        [
            ("/a".into(), "added".into()),
            ("/h".into(), "modified".into())
        ]
    );
    // Backwards works too.
    assert_eq!(
        changes(&w, &["diff", "--json", "b", "2", "1"]),
        [
            ("/a".into(), "added".into()),
            ("/b".into(), "deleted".into())
        ]
    );
    let patch = stdout(&w.cmd(&["diff", "--patch", "b", "0", "1"]));
    assert!(patch.contains("-host\n+changed\n"), "{patch}");
    assert_eq!(w.cmd(&["diff", "b", "9"]).status.code(), Some(2));
    assert_eq!(
        stdout(&w.cmd(&["verify", "b"])).trim(),
        "box b: 2 versions verified"
    );
}

#[test]
fn manual_snapshots_pin_and_a_running_box_is_snapshotted_when_it_stops() {
    let w = World::new("snapmanual");
    w.ok("b", "true");
    assert_success(&w.cmd(&["config", "b", "snapshot=manual"]), "config");
    assert_eq!(
        stdout(&w.cmd(&["config", "b", "snapshot"])).trim(),
        "snapshot = \"manual\""
    );
    w.ok("b", "echo 1 > f");
    assert!(versions(&w, "b").is_empty(), "manual policy made a version");
    assert_success(
        &w.cmd(&["snapshot", "-m", "first", "--pin", "b"]),
        "snapshot",
    );
    let log = json(&w, &["log", "--json", "b"]);
    assert_eq!(log[0]["message"], "first");
    assert_eq!(log[0]["made"], "snapshot");
    assert_eq!(log[0]["pinned"], true);

    let child = w
        .cowl()
        .args([
            "run",
            "b",
            "--",
            "sh",
            "-c",
            "echo 2 > g; touch ready; while [ ! -e go ]; do sleep 0.02; done; echo 3 > h; while [ ! -e end ]; do sleep 0.02; done",
        ])
        .spawn()
        .unwrap();
    let ready = w
        .store
        .join("boxes/b/live/upper")
        .join(w.host().strip_prefix("/").unwrap())
        .join("ready");
    wait_until(|| ready.exists());
    let out = w.cmd(&["snapshot", "-m", "while running", "b"]);
    assert_success(&out, "snapshot of a running box");
    assert!(stderr(&out).contains("when it stops"), "{}", stderr(&out));
    assert_eq!(versions(&w, "b"), [1]);
    // The box's app ends only once `end` exists: a joined run that its end
    // could cut short is the last one, and its status is not looked at.
    w.ok("b", "touch go");
    wait_until(|| ready.with_file_name("h").exists());
    let _ = w.cmd(&["run", "b", "--", "touch", "end"]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let log = json(&w, &["log", "--json", "b"]);
    assert_eq!(log[0]["message"], "while running");
    // Taken after the last process exited: h and end are in it, not torn.
    assert_eq!(
        changes(&w, &["diff", "--json", "b", "1", "2"]).len(),
        5,
        "{log}"
    );
}

/// `cowl snapshot` of a box that another cowl command holds (a pull, a
/// push, a run starting or ending) waits for it and takes the snapshot; of
/// a running box, it is taken when the box stops.
#[test]
fn a_snapshot_of_a_busy_box_waits_and_of_a_running_box_is_taken_at_its_end() {
    let w = World::new("snapbusy");
    w.ok("b", "true");
    w.ok("b", "echo 1 > f");
    let lock = w.store.join("boxes/b/lock");
    let held = w.store.join("held");
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", "touch \"$0\"; exec sleep 2"])
        .arg(&held)
        .spawn()
        .unwrap();
    wait_until(|| held.exists());
    let out = w.cmd(&["snapshot", "-m", "busy", "--pin", "b"]);
    assert_success(&out, "snapshot of a busy box");
    assert!(stderr(&out).contains("waiting"), "{}", stderr(&out));
    holder.wait().unwrap();
    let log = json(&w, &["log", "--json", "b"]);
    assert_eq!(log[0]["pinned"], true, "{log}");
    // One made while the box runs is taken when it stops.
    let child = w
        .cowl()
        .args([
            "run",
            "b",
            "--",
            "sh",
            "-c",
            "echo 2 > g; while [ ! -e end ]; do sleep 0.02; done",
        ])
        .spawn()
        .unwrap();
    let g = w
        .store
        .join("boxes/b/live/upper")
        .join(w.host().strip_prefix("/").unwrap())
        .join("g");
    wait_until(|| g.exists() && w.store.join("boxes/b/state").exists());
    let out = w.cmd(&["snapshot", "-m", "asked", "b"]);
    assert!(stderr(&out).contains("when it stops"), "{}", stderr(&out));
    // A second request keeps the first: the version is the first's, the
    // second's pin pins it.
    let out = w.cmd(&["snapshot", "-m", "second", "--pin", "b"]);
    assert!(stderr(&out).contains("when it stops"), "{}", stderr(&out));
    // A joined run that its end could cut short: its status is not looked at.
    let _ = w.cmd(&["run", "b", "--", "touch", "end"]);
    assert!(child.wait_with_output().unwrap().status.success());
    let log = json(&w, &["log", "--json", "b"]);
    assert_eq!(log[0]["message"], "asked", "{log}");
    assert_eq!(log[0]["pinned"], true, "{log}");
}

#[test]
fn rollback_moves_later_versions_to_quarantine_and_gc_purges_them() {
    let w = World::new("rollback");
    for i in 1..=4 {
        w.ok("b", &format!("echo {i} > f{i}"));
    }
    w.ok("b", "true");
    assert_eq!(versions(&w, "b"), [1, 2, 3, 4]);
    let out = w.cmd(&["rollback", "b", "2"]);
    assert_success(&out, "rollback");
    assert_eq!(versions(&w, "b"), [1, 2]);
    assert_eq!(
        w.ok("b", "ls f*").split_whitespace().collect::<Vec<_>>(),
        ["f1", "f2"]
    );
    let q = json(&w, &["log", "--quarantine", "--json", "b"]);
    assert_eq!(q[0]["target"], 2);
    let held: Vec<u64> = q[0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(held, [3, 4]);
    // The next version is 3 again, and chains to version 2.
    w.ok("b", "echo new > g");
    assert_eq!(versions(&w, "b"), [1, 2, 3]);
    assert_success(&w.cmd(&["verify", "b"]), "verify");
    assert_eq!(w.cmd(&["rollback", "b", "7"]).status.code(), Some(1));
    // Rollback to 0: the bare host.
    assert_success(&w.cmd(&["rollback", "b", "0"]), "rollback 0");
    assert_eq!(w.ok("b", "ls").trim(), "");
    // gc keeps fresh quarantine, purges with --older-than 0.
    assert_success(&w.cmd(&["gc"]), "gc");
    assert_eq!(
        json(&w, &["log", "--quarantine", "--json", "b"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_success(&w.cmd(&["gc", "--older-than", "0"]), "gc now");
    assert_eq!(
        json(&w, &["log", "--quarantine", "--json", "b"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn a_running_box_is_not_rolled_back_unless_stopped() {
    let w = World::new("rollrun");
    w.ok("b", "echo 1 > f");
    let mut child = w.start_sleeping("b");
    let out = w.cmd(&["rollback", "b", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--stop"), "{}", stderr(&out));
    assert_success(&w.cmd(&["rollback", "--stop", "b", "0"]), "rollback --stop");
    child.wait().unwrap();
    assert!(versions(&w, "b").is_empty());
}

#[test]
fn verify_names_the_first_version_that_does_not_match() {
    let w = World::new("verify");
    for i in 1..=3 {
        w.ok("b", &format!("echo {i} > f{i}"));
    }
    let f2 = w
        .store
        .join("boxes/b/versions/2/layer")
        .join(w.host().strip_prefix("/").unwrap())
        .join("f2");
    std::fs::write(&f2, "tampered\n").unwrap();
    let out = w.cmd(&["verify", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("version 2"), "{}", stderr(&out));
    std::fs::write(&f2, "2\n").unwrap();
    // Content is back, but the mtime is not: still a mismatch.
    assert_eq!(w.cmd(&["verify", "b"]).status.code(), Some(1));
    // A manifest whose parent link is broken is named too.
    let m3p = w.store.join("boxes/b/versions/3/manifest.json");
    let mut m3: Value = serde_json::from_slice(&std::fs::read(&m3p).unwrap()).unwrap();
    m3["message"] = "rewritten".into();
    std::fs::write(&m3p, serde_json::to_vec(&m3).unwrap()).unwrap();
    let w2 = stderr(&w.cmd(&["verify", "b"]));
    assert!(w2.contains("version 2"), "{w2}");
}

const VIEW: &str = "find . -mindepth 1 -printf '%p %y %m %s\\n' | LC_ALL=C sort; find . -type f -exec md5sum {} + | LC_ALL=C sort";

/// What the box shows under the fixture directory, one line per entry.
fn view(w: &World, b: &str) -> String {
    w.ok(b, VIEW)
}

#[test]
fn squash_shows_exactly_the_same_tree_through_the_kernels_overlay() {
    // Random file operations across many runs (each a version), through the
    // real overlay: files, directories replaced and removed (whiteouts,
    // opaque directories), renames, modes, symlinks.
    for seed in [1u64, 7, 42] {
        let w = World::new(&format!("squash-{seed}"));
        std::fs::create_dir_all(w.host().join("d0/sub")).unwrap();
        std::fs::write(w.host().join("d0/sub/host-file"), "h").unwrap();
        std::fs::write(w.host().join("top"), "t").unwrap();
        let mut rng = seed;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for step in 0..12 {
            let mut script = String::from("set -e\n");
            for _ in 0..4 {
                let d = format!("d{}", next(3));
                let f = format!("{d}/f{}", next(4));
                script += &match next(9) {
                    0 => format!("mkdir -p {d}; echo {step} > {f}\n"),
                    1 => format!("rm -rf {d}\n"),
                    2 => format!("rm -rf {d}; mkdir {d}; echo {step} > {d}/new\n"),
                    3 => format!("rm -f {f} || true\n"),
                    4 => format!("mkdir -p {d}/sub; echo {step} >> {d}/sub/x\n"),
                    5 => format!("[ -e {f} ] && chmod 600 {f} || true\n"),
                    6 => format!("mkdir -p {d}; ln -sf ../top {d}/link{step}\n"),
                    7 => format!("[ -d {d} ] && mv {d} moved{step} || true\n"),
                    _ => format!("rm -f top; echo {step} > top\n"),
                };
            }
            w.ok("b", &script);
        }
        let before = view(&w, "b");
        // The run cache (every version merged into one lower) shows what the
        // stacked versions show.
        let stacked = stdout(
            &w.cowl()
                .env("COWL_RUN_CACHE", "off")
                .args(["run", "b", "--", "sh", "-c", VIEW])
                .output()
                .unwrap(),
        );
        assert_eq!(
            stacked, before,
            "seed {seed}: the run cache differs from the stacked versions"
        );
        assert!(
            w.store.join("boxes/b/cache/of").exists(),
            "seed {seed}: no run cache"
        );
        let n_before = versions(&w, "b").len();
        assert!(n_before >= 8, "seed {seed}: only {n_before} versions");
        assert_success(&w.cmd(&["squash", "--keep", "2", "b"]), "squash");
        let after_versions = versions(&w, "b");
        assert_eq!(after_versions.len(), 3, "seed {seed}: {after_versions:?}");
        assert_eq!(
            view(&w, "b"),
            before,
            "seed {seed}: the squashed stack shows another tree"
        );
        assert_success(&w.cmd(&["verify", "b"]), "verify after squash");
        assert_success(&w.cmd(&["squash", "b"]), "squash all");
        assert_eq!(versions(&w, "b").len(), 1);
        assert_eq!(view(&w, "b"), before, "seed {seed}: full squash differs");
    }
}

#[test]
fn retention_squashes_old_automatic_versions_and_keeps_pinned_ones() {
    let w = World::new("retention");
    w.ok("b", "echo 0 > f0");
    assert_success(&w.cmd(&["config", "b", "keep=3"]), "config keep");
    assert_eq!(w.cmd(&["config", "b", "keep=lots"]).status.code(), Some(2));
    assert_eq!(w.cmd(&["config", "b", "nope=1"]).status.code(), Some(2));
    // Nothing to snapshot after the run: --pin pins its version instead.
    let out = w.cmd(&["snapshot", "--pin", "b"]);
    assert_success(&out, "snapshot --pin");
    assert!(
        stdout(&out).contains("version 1 pinned"),
        "{}",
        stdout(&out)
    );
    for i in 1..=6 {
        w.ok("b", &format!("echo {i} > f{i}"));
    }
    let log = json(&w, &["log", "--json", "b"]);
    let made: Vec<(u64, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["made"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // The pinned version 1 as it was; versions 2-3 squashed; the newest
    // automatic ones (one more than `keep`: a single old version has
    // nothing to merge with).
    let want: Vec<(u64, String)> = [
        (1, "run"),
        (3, "squash"),
        (4, "run"),
        (5, "run"),
        (6, "run"),
        (7, "run"),
    ]
    .iter()
    .map(|(n, m)| (*n, (*m).to_owned()))
    .collect();
    assert_eq!(made, want);
    assert_eq!(pinned(&w, "b"), [1]);
    assert_eq!(
        w.ok("b", "cat f0 f1 f6")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "1", "6"]
    );
    assert_success(&w.cmd(&["verify", "b"]), "verify");
}

#[test]
fn a_crash_at_any_step_leaves_a_box_that_opens_and_verifies() {
    // Each step of snapshot, rollback, squash and gc, killed with SIGKILL
    // (a fault point per step, in test builds).
    let steps: &[(&str, &[&str])] = &[
        ("snapshot:manifest-written", &["snapshot", "-m", "s", "b"]),
        ("snapshot:layer-moved", &["snapshot", "-m", "s", "b"]),
        ("snapshot:version-in-place", &["snapshot", "-m", "s", "b"]),
        ("rollback:started", &["rollback", "b", "1"]),
        ("rollback:moved-version", &["rollback", "b", "1"]),
        ("rollback:moved-live", &["rollback", "b", "1"]),
        ("squash:merged", &["squash", "b"]),
        ("squash:ready", &["squash", "b"]),
        ("squash:moved-old", &["squash", "b"]),
        ("squash:new-in-place", &["squash", "b"]),
        ("squash:manifest-rewritten", &["squash", "--keep", "1", "b"]),
        ("gc:moved", &["gc", "--older-than", "0"]),
        ("gc:removed", &["gc", "--older-than", "0"]),
    ];
    for (step, args) in steps {
        let w = World::new(&format!("crash-{}", step.replace(':', "-")));
        for i in 1..=3 {
            w.ok("b", &format!("echo {i} > f{i}"));
        }
        if step.starts_with("gc") {
            assert_success(&w.cmd(&["rollback", "b", "2"]), "rollback before gc");
        }
        if step.starts_with("snapshot") {
            // Something in the live layer, not yet a version.
            assert_success(&w.cmd(&["config", "b", "snapshot=manual"]), "config");
            w.ok("b", "echo live > live");
        }
        let before = versions(&w, "b");
        let view_before = w.ok("b", "cat f* live 2>/dev/null; true");
        let out = w
            .cowl()
            .env("COWL_FAULT", step)
            .args(*args)
            .output()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{step}: not killed: {}",
            stderr(&out)
        );
        let v = w.cmd(&["verify", "b"]);
        assert_success(&v, step);
        let after = versions(&w, "b");
        // No version that was complete is lost: every one is still there,
        // or (a squash) its content is, in the version that replaced it.
        match step.split(':').next().unwrap() {
            "snapshot" => {
                assert!(
                    after.starts_with(&before),
                    "{step}: {before:?} -> {after:?}"
                );
                assert_eq!(
                    w.ok("b", "cat f* live 2>/dev/null; true"),
                    view_before,
                    "{step}"
                );
            }
            "rollback" => assert!(after == before || after == [1], "{step}: {after:?}"),
            "squash" => assert_eq!(
                w.ok("b", "cat f* live 2>/dev/null; true"),
                view_before,
                "{step}"
            ),
            _ => assert_eq!(after, before, "{step}"),
        }
        // And the interrupted operation can be run again to the end.
        assert_success(&w.cmd(args), &format!("{step}: rerun"));
        assert_success(&w.cmd(&["verify", "b"]), step);
    }
}

#[test]
fn a_box_with_four_hundred_versions_runs_and_depth_is_kept_under_the_overlay_limit() {
    // overlayfs stacks at most 500 layers; cowl squashes before that.
    let w = World::new("deep");
    w.ok("b", "true");
    assert_success(&w.cmd(&["config", "b", "keep=1000"]), "config");
    for i in 1..=400 {
        w.ok("b", &format!("echo {i} > f{i}"));
    }
    assert_eq!(versions(&w, "b").len(), 400);
    assert_eq!(
        w.ok("b", "ls f* | wc -l; cat f1 f400")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["400", "1", "400"]
    );
    w.ok("b", "echo 401 > f401");
    let n = versions(&w, "b").len();
    assert!(n <= 400 && n > 100, "{n} versions after the depth guard");
    assert_eq!(
        w.ok("b", "ls f* | wc -l; cat f1 f401")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["401", "1", "401"]
    );
    assert_success(&w.cmd(&["verify", "b"]), "verify");
}

#[test]
fn a_directory_the_app_made_unreadable_survives_snapshot_squash_and_verify() {
    // chmod 000 on its own directory must not make cowl take it for empty.
    let w = World::new("chmod000");
    std::fs::write(w.host().join("hostfile"), "h").unwrap();
    w.ok(
        "b",
        "mkdir d && echo inside > d/f && rm hostfile && chmod 000 d",
    );
    w.ok("b", "echo 2 > two");
    w.ok("b", "echo 3 > three");
    assert_success(&w.cmd(&["verify", "b"]), "verify");
    let before = w.ok("b", "chmod 700 d; cat d/f; ls; chmod 000 d");
    assert_success(&w.cmd(&["squash", "b"]), "squash");
    assert_success(&w.cmd(&["verify", "b"]), "verify after squash");
    assert_eq!(w.ok("b", "chmod 700 d; cat d/f; ls; chmod 000 d"), before);
    assert!(
        before.contains("inside") && !before.contains("hostfile"),
        "{before}"
    );
    let mode = w.ok("b", "stat -c %a d");
    assert_eq!(mode.trim(), "0");
}

fn pinned(w: &World, b: &str) -> Vec<u64> {
    json(w, &["log", "--json", b])
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["pinned"] == true)
        .map(|v| v["version"].as_u64().unwrap())
        .rev()
        .collect()
}

#[test]
fn pin_and_unpin_name_a_version_or_the_newest_and_squash_keeps_pinned_ones() {
    let w = World::new("pin");
    let out = w.cmd(&["pin", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no box named"), "{}", stderr(&out));
    w.ok("b", "true");
    // A box with no versions: said, with how to make one.
    let out = w.cmd(&["pin", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("box b has no versions yet"),
        "{}",
        stderr(&out)
    );
    for i in 1..=4 {
        w.ok("b", &format!("echo {i} > f{i}"));
    }
    // The newest by default; an explicit one; JSON for scripts.
    let out = w.cmd(&["pin", "b"]);
    assert_success(&out, "pin");
    assert_eq!(
        stdout(&out).trim(),
        "version 4 of box b is pinned: squashes and retention keep it"
    );
    let v = json(&w, &["pin", "--json", "b", "2"]);
    assert_eq!(
        v,
        serde_json::json!({"box": "b", "version": 2, "pinned": true, "changed": true})
    );
    let v = json(&w, &["pin", "--json", "b", "2"]);
    assert_eq!(v["changed"], false);
    assert_eq!(pinned(&w, "b"), [2, 4]);
    // A version that does not exist: a usage error that says which exist.
    let out = w.cmd(&["pin", "b", "9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("box b has no version 9: it has versions 1-4"),
        "{}",
        stderr(&out)
    );
    // Squash merges around the pinned versions and keeps them as they are.
    assert_success(&w.cmd(&["squash", "b"]), "squash");
    assert_eq!(versions(&w, "b"), [1, 2, 3, 4]);
    assert_eq!(pinned(&w, "b"), [2, 4]);
    let out = w.cmd(&["unpin", "b", "2"]);
    assert_success(&out, "unpin");
    assert!(
        stdout(&out).contains("version 2 of box b is unpinned"),
        "{}",
        stdout(&out)
    );
    assert_success(&w.cmd(&["squash", "b"]), "squash");
    assert_eq!(versions(&w, "b"), [3, 4]);
    assert_eq!(pinned(&w, "b"), [4]);
    let out = w.cmd(&["unpin", "b", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("it has versions 3-4"),
        "{}",
        stderr(&out)
    );
    let v = json(&w, &["unpin", "--json", "b"]);
    assert_eq!(v["version"], 4);
    assert!(pinned(&w, "b").is_empty());
    // Each change is in the journal.
    let journal = std::fs::read_to_string(w.store.join("boxes/b/journal.jsonl")).unwrap();
    assert_eq!(journal.matches("\"event\":\"pin\"").count(), 2, "{journal}");
    assert_eq!(
        journal.matches("\"event\":\"unpin\"").count(),
        2,
        "{journal}"
    );
    assert_success(&w.cmd(&["verify", "b"]), "verify");
}

#[test]
fn snapshot_pin_of_an_unchanged_box_pins_its_newest_version() {
    // The tour: `cowl snapshot -m ... --pin BOX` after a run.
    let w = World::new("snappin");
    let out = w.cmd(&["snapshot", "--pin", "b"]);
    assert_eq!(out.status.code(), Some(1));
    w.ok("b", "true");
    let out = w.cmd(&["snapshot", "-m", "before upgrade", "--pin", "b"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no changes to snapshot and no version to pin"),
        "{}",
        stderr(&out)
    );
    w.ok("b", "echo 1 > f");
    w.ok("b", "echo 2 > g");
    let out = w.cmd(&["snapshot", "-m", "before upgrade", "--pin", "b"]);
    assert_success(&out, "snapshot --pin");
    assert!(
        stdout(&out).contains("version 2 pinned (box b has no changes since it"),
        "{}",
        stdout(&out)
    );
    assert_eq!(pinned(&w, "b"), [2]);
    let out = w.cmd(&["snapshot", "--pin", "b"]);
    assert!(
        stdout(&out).contains("version 2 was already pinned"),
        "{}",
        stdout(&out)
    );
    // Of a running box that then changes nothing: pinned when it stops.
    let mut child = w.start_sleeping("b");
    let out = w.cmd(&["snapshot", "--pin", "b"]);
    assert_success(&out, "snapshot --pin of a running box");
    assert_success(&w.cmd(&["unpin", "b", "2"]), "unpin");
    assert_success(&w.cmd(&["stop", "b"]), "stop");
    child.wait().unwrap();
    assert_eq!(versions(&w, "b"), [1, 2]);
    assert_eq!(pinned(&w, "b"), [2]);
}
