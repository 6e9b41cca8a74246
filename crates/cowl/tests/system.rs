//! `cowl run --system`: ids mapped one to one so installers work, still only
//! in the box. Root only; for anyone else the flag is a usage error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::process::Command;

#[test]
fn system_mode_installs_a_deb_into_the_box_and_the_host_has_no_trace() {
    let w = World::new("system");
    if !is_root() {
        let out = w.cmd(&["run", "--system", "tools", "--", "true"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("needs root"), "{}", stderr(&out));
        return;
    }
    let pkg = w.host().join("pkg");
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(pkg.join("usr/bin")).unwrap();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        "Package: cowl-test-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: cowl <cowl@example.org>\nDescription: cowl test package\n",
    )
    .unwrap();
    std::fs::write(
        pkg.join("usr/bin/cowl-test-hello"),
        "#!/bin/sh\necho hello from the package\n",
    )
    .unwrap();
    let st = Command::new("chmod")
        .args(["755"])
        .arg(pkg.join("usr/bin/cowl-test-hello"))
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&pkg)
        .arg(w.host().join("hello.deb"))
        .output()
        .unwrap();
    assert_success(&st, "dpkg-deb");

    let status_before = std::fs::read("/var/lib/dpkg/status").unwrap();
    let out = w.cmd(&[
        "run",
        "--system",
        "tools",
        "--",
        "dpkg",
        "-i",
        "./hello.deb",
    ]);
    assert_success(&out, "dpkg -i");
    let out = w.cmd(&[
        "run",
        "--system",
        "tools",
        "--",
        "sh",
        "-c",
        "cowl-test-hello && dpkg -s cowl-test-hello | grep Status",
    ]);
    assert_success(&out, "installed package");
    assert_eq!(
        stdout(&out),
        "hello from the package\nStatus: install ok installed\n"
    );

    assert!(!std::path::Path::new("/usr/bin/cowl-test-hello").exists());
    assert_eq!(
        std::fs::read("/var/lib/dpkg/status").unwrap(),
        status_before
    );
    assert!(!Command::new("dpkg")
        .args(["-s", "cowl-test-hello"])
        .output()
        .unwrap()
        .status
        .success());

    // The box keeps its mode: a rootless run of it is refused, as is
    // --system on a rootless box.
    let out = w.cmd(&["run", "tools", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--system"), "{}", stderr(&out));
    w.ok("plain", "true");
    assert_eq!(
        w.cmd(&["run", "--system", "plain", "--", "true"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn a_system_box_can_be_joined() {
    let w = World::new("system-join");
    if !is_root() {
        assert_eq!(
            w.cmd(&["run", "--system", "sj", "--", "true"])
                .status
                .code(),
            Some(2)
        );
        return;
    }
    let first = w
        .cowl()
        .args([
            "run",
            "--system",
            "sj",
            "--",
            "sh",
            "-c",
            "echo ready > /ready; while [ ! -e /done ]; do sleep 0.02; done; cat /done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ready = w.store.join("boxes/sj/live/upper/ready");
    wait_until(|| ready.exists());
    let out = w.cmd(&[
        "run",
        "--system",
        "sj",
        "--",
        "sh",
        "-c",
        "cat /ready; echo joined > /done",
    ]);
    assert_success(&out, "join");
    assert_eq!(stdout(&out), "ready\n");
    let out = first.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "joined\n");
    assert!(!std::path::Path::new("/ready").exists());
}
