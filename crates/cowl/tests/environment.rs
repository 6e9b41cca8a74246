//! Bad environments give one clear line, say what to do, and exit 1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::process::Command;

/// Runs `script` with `sh` inside `unshare ARGS`, with cowl at $COWL.
fn in_unshare(w: &World, args: &[&str], script: &str) -> std::process::Output {
    Command::new("unshare")
        .args(args)
        .args(["sh", "-c", script])
        .env("COWL", cowl_bin())
        .env("COWL_HOME", &w.store)
        .current_dir(w.host())
        .output()
        .unwrap()
}

#[test]
fn user_namespaces_disabled_names_the_sysctl() {
    let w = World::new("nouserns");
    // A user namespace whose own limit allows no further user namespaces.
    let out = in_unshare(
        &w,
        &["--user", "--map-root-user"],
        "echo 0 > /proc/sys/user/max_user_namespaces && \"$COWL\" run b -- true",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("max_user_namespaces"), "{err}");
}

#[test]
fn a_store_on_overlayfs_is_refused_with_advice() {
    let w = World::new("ovlstore");
    let d = w.host();
    let script = format!(
        "set -e; cd {d}; mkdir -p l u wk m; mount -t overlay none -o lowerdir=l,upperdir=u,workdir=wk m; COWL_HOME={d}/m/store \"$COWL\" run b -- true",
        d = d.display()
    );
    let out = in_unshare(&w, &["--user", "--map-root-user", "--mount"], &script);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("overlayfs") && err.contains("COWL_HOME"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn help_teaches_the_commands() {
    let w = World::new("help");
    let out = w.cmd(&["--help"]);
    assert_success(&out, "help");
    let text = stdout(&out);
    for cmd in ["run", "ls", "ps", "stop", "rm", "diff"] {
        assert!(
            text.contains(&format!("  {cmd} ")),
            "{cmd} missing from:\n{text}"
        );
    }
    let run = stdout(&w.cmd(&["run", "--help"]));
    assert!(run.contains("--system") && run.contains("rights"), "{run}");
    assert_eq!(w.cmd(&["frobnicate"]).status.code(), Some(2));
}
