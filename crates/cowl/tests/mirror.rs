//! Mirrors: push a box's versions to an OCI image layout (a directory or a
//! real S3-compatible server on 127.0.0.1), pull them into another store,
//! run the box there; incremental pushes, refusals that keep local history,
//! age encryption. Hostile mirrors are in `mirror_hostile.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::mirror::*;
use common::*;

use serde_json::Value;

use std::path::{Path, PathBuf};

use std::process::Output;

#[test]
fn a_pushed_box_pulls_into_another_store_and_runs_there_the_same() {
    let w = World::new("mirror-local");
    make_box(&w, "b");
    // A socket left behind by a run: a tar cannot hold it, the pull goes on.
    w.ok(
        "b",
        "python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('sock')\"",
    );
    let mirror = w.dir.join("mirror");
    let m = mirror.to_str().unwrap();
    let r = json_of(&w.cmd(&["push", "--json", "b", m]), "push");
    assert_eq!(r["versions_sent"], 3, "{r}");
    assert!(mirror.join("oci-layout").is_file());
    assert!(mirror.join("index.json").is_file());

    // A second push of the unchanged box sends nothing.
    let r = json_of(&w.cmd(&["push", "--json", "b", m]), "push again");
    assert_eq!(
        (
            r["versions_sent"].as_u64(),
            r["blobs_sent"].as_u64(),
            r["bytes_sent"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{r}"
    );

    let other = w.dir.join("other-store");
    let url = format!("file://{m}");
    let r = json_of(&cmd_in(&w, &other, &["pull", "--json", &url]), "pull");
    assert_eq!(
        (r["box"].as_str(), r["versions_pulled"].as_u64()),
        (Some("b"), Some(3)),
        "{r}"
    );
    assert_eq!(digests(&w, &w.store, "b"), digests(&w, &other, "b"));
    // The same diff, but for the socket, which stays behind.
    let sockets_out = |text: String| {
        let v: Value = serde_json::from_str(&text).unwrap();
        let all = v.as_array().unwrap().clone();
        let kept: Vec<Value> = all
            .iter()
            .filter(|c| c["kind"] != "socket")
            .cloned()
            .collect();
        (kept, all.len())
    };
    let (here, n_here) = sockets_out(diff_json(&w, &w.store, "b"));
    let (there, n_there) = sockets_out(diff_json(&w, &other, "b"));
    assert_eq!(here, there);
    assert_eq!((n_here, n_there), (here.len() + 1, there.len()));
    assert_success(
        &cmd_in(&w, &other, &["verify", "b"]),
        "verify the pulled box",
    );
    let out = cmd_in(
        &w,
        &other,
        &[
            "run",
            "b",
            "--",
            "sh",
            "-c",
            "cat a b olddir/n; ls olddir d/e doomed 2>&1; readlink link",
        ],
    );
    assert_success(&out, "run the pulled box");
    let text = stdout(&out);
    for want in ["one\ntwo\nnew\n", "olddir:\nn\n", "No such file", "\na\n"] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(
        !text.contains("keep"),
        "the opaque directory shows the host's files:\n{text}"
    );

    // Incremental: one more version sends one layer; the pull takes just it.
    w.ok("b", "echo three > c");
    let r = json_of(&w.cmd(&["push", "--json", "b", m]), "push one more");
    assert_eq!(r["versions_sent"], 1, "{r}");
    let r = json_of(&cmd_in(&w, &other, &["pull", "--json", m]), "pull one more");
    assert_eq!(r["versions_pulled"], 1, "{r}");
    assert_eq!(digests(&w, &w.store, "b"), digests(&w, &other, "b"));
    let r = json_of(&cmd_in(&w, &other, &["pull", "--json", m]), "pull again");
    assert_eq!(r["versions_pulled"], 0, "{r}");
}

#[test]
fn skopeo_reads_the_mirror_as_an_oci_layout() {
    let w = World::new("mirror-skopeo");
    make_box(&w, "b");
    let mirror = w.dir.join("mirror");
    assert_success(&w.cmd(&["push", "b", mirror.to_str().unwrap()]), "push");
    let skopeo = ["/usr/bin/skopeo", "/usr/local/bin/skopeo"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("skopeo is not installed: run scripts/test, which installs it");
    let out = std::process::Command::new(skopeo)
        .args(["inspect", &format!("oci:{}:latest", mirror.display())])
        .output()
        .unwrap();
    assert_success(&out, "skopeo inspect");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{v}");
    let dest = w.dir.join("copied");
    let out = std::process::Command::new(skopeo)
        .args([
            "copy",
            &format!("oci:{}:v1", mirror.display()),
            &format!("dir:{}", dest.display()),
        ])
        .output()
        .unwrap();
    assert_success(&out, "skopeo copy");
    assert!(dest.join("manifest.json").is_file());
}

#[test]
fn a_pull_never_replaces_newer_local_history_without_force() {
    let w = World::new("mirror-newer");
    make_box(&w, "b");
    let mirror = w.dir.join("mirror");
    let m = mirror.to_str().unwrap();
    assert_success(&w.cmd(&["push", "b", m]), "push");
    let other = w.dir.join("other-store");
    assert_success(&cmd_in(&w, &other, &["pull", m]), "pull");
    // The other side goes on: a version the mirror does not have.
    let out = cmd_in(
        &w,
        &other,
        &["run", "b", "--", "sh", "-c", "echo local > mine"],
    );
    assert_success(&out, "run");
    // And the first side too.
    w.ok("b", "echo upstream > theirs");
    assert_success(&w.cmd(&["push", "b", m]), "push");
    let before = digests(&w, &other, "b");
    let out = cmd_in(&w, &other, &["pull", m]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("does not have") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        digests(&w, &other, "b"),
        before,
        "the refused pull changed the box"
    );
    // The push side refuses the diverged mirror too.
    let out = cmd_in(&w, &other, &["push", "b", m]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    // --force takes the mirror's history; the local version goes to quarantine.
    let r = json_of(
        &cmd_in(&w, &other, &["pull", "--force", "--json", m]),
        "pull --force",
    );
    assert!(r["quarantined"].is_string(), "{r}");
    assert_eq!(digests(&w, &w.store, "b"), digests(&w, &other, "b"));
    let q = cmd_in(&w, &other, &["log", "--quarantine", "--json", "b"]);
    assert!(stdout(&q).contains("mine") || !stdout(&q).trim().is_empty());
}

#[test]
fn an_encrypted_mirror_needs_the_right_identity_and_a_wrong_one_changes_nothing() {
    let w = World::new("mirror-age");
    make_box(&w, "b");
    let (public, key) = age_keys(&w.dir);
    let (_, wrong) = age_keys(&w.dir);
    let mirror = w.dir.join("mirror");
    let m = mirror.to_str().unwrap();
    let r = json_of(
        &w.cmd(&["push", "--json", "--encrypt-to", &public, "b", m]),
        "push",
    );
    assert_eq!(r["encrypted"], true, "{r}");
    // Nothing of the box is readable in the mirror: no plain zstd frames,
    // no message in the index or manifests.
    for e in std::fs::read_dir(mirror.join("blobs/sha256")).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        assert!(
            !data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            "a blob is not encrypted"
        );
        assert!(!String::from_utf8_lossy(&data).contains("echo one"));
    }
    let other = w.dir.join("other-store");
    let out = cmd_in(&w, &other, &["pull", m]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--identity"), "{}", stderr(&out));
    let out = cmd_in(
        &w,
        &other,
        &["pull", "--identity", wrong.to_str().unwrap(), m],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot decrypt"), "{}", stderr(&out));
    assert!(!other.join("boxes/b").exists(), "a failed pull left a box");
    let r = json_of(
        &cmd_in(
            &w,
            &other,
            &["pull", "--json", "--identity", key.to_str().unwrap(), m],
        ),
        "pull with the key",
    );
    assert_eq!(r["versions_pulled"], 2, "{r}");
    assert_eq!(digests(&w, &w.store, "b"), digests(&w, &other, "b"));
}

#[test]
fn box_toml_mirror_and_push_on_snapshot_push_after_each_version() {
    let w = World::new("mirror-onsnap");
    let mirror = w.dir.join("mirror");
    w.ok("b", "echo one > a");
    let setting = format!("mirror={}", mirror.display());
    assert_success(
        &w.cmd(&["config", "b", &setting, "push=on-snapshot"]),
        "config",
    );
    assert!(stdout(&w.cmd(&["config", "b", "push"])).contains("on-snapshot"));
    w.ok("b", "echo two > b");
    let other = w.dir.join("other-store");
    let r = json_of(
        &cmd_in(&w, &other, &["pull", "--json", mirror.to_str().unwrap()]),
        "pull",
    );
    assert_eq!(r["versions_pulled"], 2, "{r}");
    // `cowl push BOX` with no URL uses box.toml's.
    let r = json_of(&w.cmd(&["push", "--json", "b"]), "push");
    assert_eq!(r["versions_sent"], 0, "{r}");
}

/// A host path's copy in the newest layer of `home`'s box that has it.
fn in_layers_of(w: &World, home: &Path, b: &str, p: &Path) -> PathBuf {
    // A view of the other store (its dir does not exist: dropping it
    // removes nothing).
    let view = World {
        dir: w.dir.join("no-such-dir"),
        store: home.to_path_buf(),
    };
    view.in_layers(b, p)
}

#[test]
fn posix_acls_travel_and_host_labels_stay_with_their_host() {
    let w = World::new("mirror-xattrs");
    // A host label on a host file the box changes: the copy the box makes
    // keeps it (the overlay copies it up), as a label-assigning host's
    // would. Only root may write security.* attributes.
    let labelled = w.host().join("labelled");
    std::fs::write(&labelled, "host\n").unwrap();
    let label = b"system_u:object_r:user_home_t:s0\0";
    let can_label = is_root() && xattr::set(&labelled, "security.selinux", label).is_ok();
    // An ACL set by the app: one named-user entry (its own uid) and the mask.
    w.ok(
        "b",
        "echo data > acl; echo more >> labelled; python3 -c \"
import os, struct
e = [(1, 6, 0xffffffff), (2, 4, os.getuid()), (4, 4, 0xffffffff), (0x10, 4, 0xffffffff), (0x20, 4, 0xffffffff)]
os.setxattr('acl', 'system.posix_acl_access', struct.pack('<I', 2) + b''.join(struct.pack('<HHI', *x) for x in e))
\"",
    );
    let acl_here = in_layers_of(&w, &w.store, "b", &w.host().join("acl"));
    let acl = xattr::get(&acl_here, "system.posix_acl_access").unwrap();
    assert!(acl.is_some(), "the ACL did not reach the layer");
    let label_here = in_layers_of(&w, &w.store, "b", &labelled);
    if can_label {
        assert_eq!(
            xattr::get(&label_here, "security.selinux")
                .unwrap()
                .as_deref(),
            Some(&label[..]),
            "the copy-up lost the label: the test cannot show anything"
        );
    }
    let mirror = w.dir.join("mirror");
    let m = mirror.to_str().unwrap();
    assert_success(&w.cmd(&["push", "b", m]), "push");
    let other = w.dir.join("other-store");
    assert_success(&cmd_in(&w, &other, &["pull", m]), "pull");
    assert_eq!(digests(&w, &w.store, "b"), digests(&w, &other, "b"));
    let acl_there = in_layers_of(&w, &other, "b", &w.host().join("acl"));
    assert_eq!(
        xattr::get(&acl_there, "system.posix_acl_access").unwrap(),
        acl
    );
    let label_there = in_layers_of(&w, &other, "b", &labelled);
    assert_eq!(std::fs::read(&label_there).unwrap(), b"host\nmore\n");
    assert_eq!(
        xattr::get(&label_there, "security.selinux").unwrap(),
        None,
        "a host label travelled"
    );
    assert_success(
        &cmd_in(&w, &other, &["verify", "b"]),
        "verify the pulled box",
    );
    assert_success(&w.cmd(&["verify", "b"]), "verify the pushed box");
}

#[test]
fn push_on_snapshot_goes_on_after_retention_squashes_the_history() {
    let w = World::new("mirror-squashed");
    let mirror = w.dir.join("mirror");
    let m = mirror.to_str().unwrap();
    w.ok("b", "echo 1 > f1");
    let setting = format!("mirror={m}");
    assert_success(
        &w.cmd(&["config", "b", &setting, "push=on-snapshot", "keep=2"]),
        "config",
    );
    // Each run makes a version and pushes it; past two, retention merges
    // the oldest (their numbers stay: the box's versions no longer start at 1).
    for i in 2..=5 {
        let out = w.sh("b", &format!("echo {i} > f{i}"));
        assert_success(&out, "run");
        assert!(
            !stderr(&out).contains("warning"),
            "the push after run {i} failed: {}",
            stderr(&out)
        );
    }
    let here = numbered(&w, &w.store, "b");
    assert!(here.len() < 5, "nothing was squashed: {here:?}");
    assert_ne!(here[0].0, 1, "{here:?}");
    // The mirror holds the box as it is now, and a pull restores it.
    let r = json_of(&w.cmd(&["push", "--json", "b"]), "push");
    assert_eq!(r["versions_sent"], 0, "{r}");
    let other = w.dir.join("other-store");
    let r = json_of(&cmd_in(&w, &other, &["pull", "--json", m]), "pull");
    assert_eq!(r["versions_pulled"], here.len(), "{r}");
    assert_eq!(numbered(&w, &other, "b"), here);
    assert_success(&cmd_in(&w, &other, &["verify", "b"]), "verify");
    assert_eq!(diff_json(&w, &other, "b"), diff_json(&w, &w.store, "b"));
    // The next run squashes again; the push replaces the mirror's history
    // once more. A pulled copy cannot tell a squash from another history:
    // it takes the new one with --force only.
    let out = w.sh("b", "echo 6 > f6");
    assert!(stderr(&out).contains("pushed"), "{}", stderr(&out));
    let out = cmd_in(&w, &other, &["pull", m]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = json_of(
        &cmd_in(&w, &other, &["pull", "--force", "--json", m]),
        "pull --force",
    );
    assert!(r["quarantined"].is_string(), "{r}");
    assert_eq!(numbered(&w, &other, "b"), numbered(&w, &w.store, "b"));
    assert_eq!(diff_json(&w, &other, "b"), diff_json(&w, &w.store, "b"));
}

#[test]
fn a_diverged_mirror_is_not_replaced_by_a_push_after_a_rollback() {
    let w = World::new("mirror-rolledback");
    let mirror = w.dir.join("mirror");
    let m = mirror.to_str().unwrap();
    w.ok("b", "echo 1 > f1");
    w.ok("b", "echo 2 > f2");
    assert_success(&w.cmd(&["push", "b", m]), "push");
    assert_success(&w.cmd(&["rollback", "b", "1"]), "rollback");
    w.ok("b", "echo 3 > f3");
    let out = w.cmd(&["push", "b", m]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
}

// ---- S3 ------------------------------------------------------------------

#[path = "../../cowl-mirror/tests/s3_server/mod.rs"]
mod s3_server;

use s3_server::{endpoint as s3_endpoint, make_bucket};

fn s3_cmd(w: &World, home: &Path, ep: &str, args: &[&str]) -> Output {
    w.cowl()
        .env("COWL_HOME", home)
        .env("AWS_ENDPOINT_URL", ep)
        .env("AWS_ACCESS_KEY_ID", "cowltest")
        .env("AWS_SECRET_ACCESS_KEY", "cowltest")
        .env("AWS_REGION", "us-east-1")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn push_and_pull_through_a_real_s3_server() {
    let ep = s3_endpoint();
    let w = World::new("mirror-s3");
    let bucket = format!("cowl-{}-{}", std::process::id(), unsafe { libc::geteuid() });
    make_bucket(&ep, &bucket);
    make_box(&w, "b");
    let url = format!("s3://{bucket}/boxes/b");
    let r = json_of(
        &s3_cmd(&w, &w.store, &ep, &["push", "--json", "b", &url]),
        "push",
    );
    assert_eq!(r["versions_sent"], 2, "{r}");
    let r = json_of(
        &s3_cmd(&w, &w.store, &ep, &["push", "--json", "b", &url]),
        "push again",
    );
    assert_eq!(
        (r["blobs_sent"].as_u64(), r["bytes_sent"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
    let other = w.dir.join("other-store");
    let r = json_of(&s3_cmd(&w, &other, &ep, &["pull", "--json", &url]), "pull");
    assert_eq!(r["versions_pulled"], 2, "{r}");
    assert_eq!(digests(&w, &w.store, "b"), digests(&w, &other, "b"));
    assert_eq!(diff_json(&w, &w.store, "b"), diff_json(&w, &other, "b"));
    let out = cmd_in(&w, &other, &["run", "b", "--", "cat", "a", "b"]);
    assert_success(&out, "run the pulled box");
    assert_eq!(stdout(&out), "one\ntwo\n");
    // A bigger layer goes up in several parts and comes back whole.
    w.ok("b", "head -c 20000000 /dev/urandom > big");
    let r = json_of(
        &s3_cmd(&w, &w.store, &ep, &["push", "--json", "b", &url]),
        "push big",
    );
    assert_eq!(r["versions_sent"], 1, "{r}");
    let r = json_of(
        &s3_cmd(&w, &other, &ep, &["pull", "--json", &url]),
        "pull big",
    );
    assert_eq!(r["versions_pulled"], 1, "{r}");
    assert_success(&cmd_in(&w, &other, &["verify", "b"]), "verify");
    // Credentials from ~/.aws files when the environment has none.
    let home = w.dir.join("awshome");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        "[default]\naws_access_key_id = cowltest\naws_secret_access_key = cowltest\n",
    )
    .unwrap();
    std::fs::write(
        home.join(".aws/config"),
        format!("[default]\nregion = us-east-1\nendpoint_url = {ep}\n"),
    )
    .unwrap();
    let third = w.dir.join("third-store");
    let out = w
        .cowl()
        .env("COWL_HOME", &third)
        .env("HOME", &home)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["pull", "--json", &url])
        .output()
        .unwrap();
    let r = json_of(&out, "pull with ~/.aws files");
    assert_eq!(r["versions_pulled"], 3, "{r}");
}

#[test]
fn a_system_box_keeps_its_owners_through_a_mirror_and_only_root_restores_it() {
    let w = World::new("mirror-system");
    let mirror = w.dir.join("mirror");
    let m = mirror.to_str().unwrap();
    let other = w.dir.join("other-store");
    if !is_root() {
        w.ok("b", "echo one > a");
        assert_success(&w.cmd(&["push", "b", m]), "push");
        let index = mirror.join("index.json");
        let text = std::fs::read_to_string(&index).unwrap();
        std::fs::write(&index, text.replace("\"rootless\"", "\"system\"")).unwrap();
        let out = cmd_in(&w, &other, &["pull", m]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("only root"), "{}", stderr(&out));
        assert!(!other.join("boxes/b").exists());
        return;
    }
    let out = w
        .cowl()
        .args([
            "run",
            "--system",
            "s",
            "--",
            "sh",
            "-c",
            "echo x > owned; chown 1234:5678 owned; mkdir d; chown 42:43 d",
        ])
        .output()
        .unwrap();
    assert_success(&out, "system run");
    assert_success(&w.cmd(&["push", "s", m]), "push");
    let r = json_of(&cmd_in(&w, &other, &["pull", "--json", m]), "pull");
    assert_eq!(r["versions_pulled"], 1, "{r}");
    assert_eq!(digests(&w, &w.store, "s"), digests(&w, &other, "s"));
    assert_success(&cmd_in(&w, &other, &["verify", "s"]), "verify");
    let out = cmd_in(
        &w,
        &other,
        &[
            "run", "--system", "s", "--", "stat", "-c", "%u:%g", "owned", "d",
        ],
    );
    assert_success(&out, "run the pulled system box");
    assert_eq!(stdout(&out), "1234:5678\n42:43\n");
}

#[test]
fn an_interrupted_pull_keeps_complete_versions_and_the_next_pull_resumes() {
    let w = World::new("mirror-resume");
    w.ok("b", "echo one > a");
    w.ok("b", "echo two > b");
    w.ok("b", "echo three > c");
    let mirror = w.dir.join("mirror");
    let m = mirror.to_str().unwrap();
    assert_success(&w.cmd(&["push", "b", m]), "push");
    let other = w.dir.join("other-store");
    let killed = |step: &str| {
        let out = w
            .cowl()
            .env("COWL_HOME", &other)
            .env("COWL_FAULT", step)
            .args(["pull", m])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            None,
            "{step}: not killed: {}",
            stderr(&out)
        );
    };
    // Killed once version 1 is in place, then with version 2 extracted but
    // not yet in place.
    killed("pull:version-in-place");
    assert_eq!(digests(&w, &other, "b").len(), 1);
    killed("pull:layer-extracted");
    assert_eq!(digests(&w, &other, "b").len(), 1);
    assert_success(
        &cmd_in(&w, &other, &["verify", "b"]),
        "verify after the crash",
    );
    let r = json_of(&cmd_in(&w, &other, &["pull", "--json", m]), "pull again");
    assert_eq!(r["versions_pulled"], 2, "{r}");
    assert_eq!(digests(&w, &w.store, "b"), digests(&w, &other, "b"));
    assert_success(&cmd_in(&w, &other, &["verify", "b"]), "verify");
    let pending = other.join("boxes/b/pending");
    let left: Vec<_> = std::fs::read_dir(&pending)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in pending/: {left:?}");
}

#[test]
fn a_rootless_box_pushed_by_one_user_is_restored_by_another() {
    let w = World::new("mirror-otheruser");
    w.ok("b", "echo one > a; mkdir d");
    if !is_root() {
        // Only root can act as a second user here; as the same user, a pull
        // maps no owner.
        let mirror = base_mirror(&w, "mirror");
        let other = w.dir.join("other-store");
        assert_success(
            &cmd_in(&w, &other, &["pull", mirror.to_str().unwrap()]),
            "pull",
        );
        assert!(!other.join("boxes/b/versions/1/owner-map").exists());
        assert_success(&cmd_in(&w, &other, &["verify", "b"]), "verify");
        return;
    }
    // Somewhere the second user can reach (not root's home), with its own
    // copy of the binary.
    let base = PathBuf::from(format!("/tmp/cowl-otheruser-{}", std::process::id()));
    remove_tree(&base);
    std::fs::create_dir_all(&base).unwrap();
    std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mirror = base.join("mirror");
    assert_success(
        &w.cmd(&["push", "b", mirror.to_str().unwrap()]),
        "push as root",
    );
    let bin = base.join("cowl");
    std::fs::copy(cowl_bin(), &bin).unwrap();
    let store = base.join("store");
    std::fs::create_dir(&store).unwrap();
    std::os::unix::fs::chown(&store, Some(12345), Some(12345)).unwrap();
    let as_other = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=12345", "--regid=12345", "--clear-groups"])
            .arg(&bin)
            .args(args)
            .env("COWL_HOME", &store)
            .env("HOME", &base)
            .current_dir(&base)
            .output()
            .unwrap()
    };
    let r = json_of(
        &as_other(&["pull", "--json", mirror.to_str().unwrap()]),
        "pull as uid 12345",
    );
    assert_eq!(r["versions_pulled"], 1, "{r}");
    assert_success(&as_other(&["verify", "b"]), "verify as uid 12345");
    let theirs: Vec<String> = json_of(&as_other(&["log", "--json", "b"]), "log")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(theirs, digests(&w, &w.store, "b"));
    let v1 = store.join("boxes/b/versions/1");
    assert_eq!(
        std::fs::read_to_string(v1.join("owner-map")).unwrap(),
        "0:0 12345:12345\n"
    );
    let a = w.host().join("a");
    let pulled = v1.join("layer").join(a.strip_prefix("/").unwrap());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&pulled).unwrap().uid(), 12345);
    remove_tree(&base);
}

#[test]
fn a_commit_version_keeps_its_cut_through_a_mirror() {
    let w = World::new("mirror-commit");
    w.ok("b", "echo box > x; echo box > y");
    let x = w.host().join("x");
    assert_success(&w.cmd(&["commit", "b", x.to_str().unwrap()]), "commit x");
    let mirror = base_mirror(&w, "mirror");
    let other = w.dir.join("other-store");
    let r = json_of(
        &cmd_in(&w, &other, &["pull", "--json", mirror.to_str().unwrap()]),
        "pull",
    );
    assert_eq!(r["versions_pulled"], 2, "{r}");
    assert_success(&cmd_in(&w, &other, &["verify", "b"]), "verify");
    assert!(other.join("boxes/b/versions/2/committed.json").is_file());
    assert_eq!(digests(&w, &w.store, "b"), digests(&w, &other, "b"));
    assert_eq!(diff_json(&w, &w.store, "b"), diff_json(&w, &other, "b"));
    // The committed file left the box there too: the host shows through.
    std::fs::write(&x, "host later\n").unwrap();
    let out = cmd_in(&w, &other, &["run", "b", "--", "cat", "x", "y"]);
    assert_success(&out, "run");
    assert_eq!(stdout(&out), "host later\nbox\n");
}

#[test]
fn progress_shows_on_a_terminal_only_and_not_with_quiet() {
    let w = World::new("mirror-progress");
    w.ok("b", "echo one > a");
    let bin = cowl_bin();
    // Under `script` (bsdutils, always on Debian) cowl's stderr is a terminal.
    let on_tty = |args: &str, mirror: &str| {
        let cmd = format!("{} {args} b {mirror}", bin.display());
        let out = std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("COWL_HOME", &w.store)
            .current_dir(w.host())
            .output()
            .unwrap();
        assert_success(&out, &cmd);
        stdout(&out)
    };
    let m1 = w.dir.join("m1");
    let text = on_tty("push", m1.to_str().unwrap());
    assert!(
        text.contains("push: 2/2 blobs") && text.contains("MiB/s"),
        "{text:?}"
    );
    let m2 = w.dir.join("m2");
    let text = on_tty("push --quiet", m2.to_str().unwrap());
    assert!(!text.contains("MiB/s"), "{text:?}");
    assert!(text.contains("pushed 1 of 1 versions"), "{text:?}");
    // Not a terminal: no progress either.
    let m3 = w.dir.join("m3");
    let out = w.cmd(&["push", "b", m3.to_str().unwrap()]);
    assert_success(&out, "push");
    assert!(!stderr(&out).contains("MiB/s"), "{}", stderr(&out));
}

#[test]
fn a_mirror_with_broken_metadata_is_an_error_not_a_crash() {
    let w = World::new("mirror-broken");
    w.ok("b", "echo one > a");
    w.ok("b", "echo two > b");
    let base = base_mirror(&w, "base");
    let other = w.dir.join("other-store");
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str); 5] = [
        (
            "no digest",
            |m| {
                m["layers"][0]["annotations"]
                    .as_object_mut()
                    .unwrap()
                    .remove("org.cowl.digest");
            },
            "no org.cowl.digest",
        ),
        (
            "a blob outside the layout",
            |m| {
                m["layers"][0]["digest"] = "sha256:../../../etc/passwd".into();
            },
            "not a sha256 digest",
        ),
        (
            "versions swapped",
            |m| {
                let l = m["layers"].as_array_mut().unwrap();
                l.swap(0, 1);
            },
            "no version number above the one below it",
        ),
        (
            "another manifest",
            |m| {
                let v2 = m["layers"][1]["annotations"]["org.cowl.manifest"].clone();
                m["layers"][0]["annotations"]["org.cowl.manifest"] = v2;
            },
            "is larger than",
        ),
        (
            "a wrong chain digest",
            |m| {
                m["layers"][1]["annotations"]["org.cowl.digest"] = "0".repeat(64).into();
            },
            "breaks the chain",
        ),
    ];
    for (what, edit, want) in cases {
        let mirror = w.dir.join(format!("m-{}", what.replace(' ', "-")));
        copy_dir(&base, &mirror);
        edit_latest_manifest(&mirror, edit);
        let out = cmd_in(&w, &other, &["pull", mirror.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(want),
            "{what}: want {want:?} in {}",
            stderr(&out)
        );
        assert!(!other.join("boxes/b").exists(), "{what}: a box was made");
    }
}

#[test]
fn a_push_never_mixes_plain_and_encrypted_versions() {
    let w = World::new("mirror-mix");
    make_box(&w, "b");
    let (public, _key) = age_keys(&w.dir);
    let mirror = w.dir.join("mirror");
    let m = mirror.to_str().unwrap();
    assert_success(&w.cmd(&["push", "b", m]), "plain push");
    // Adding encryption would leave the old versions in the clear.
    let out = w.cmd(&["push", "--encrypt-to", &public, "b", m]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let r = json_of(
        &w.cmd(&["push", "--json", "--force", "--encrypt-to", &public, "b", m]),
        "forced encrypted push",
    );
    assert_eq!(r["encrypted"], true, "{r}");
    // Every layer the index reaches is encrypted now.
    let index: Value =
        serde_json::from_slice(&std::fs::read(mirror.join("index.json")).unwrap()).unwrap();
    for d in index["manifests"].as_array().unwrap() {
        let digest = d["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let man: Value = serde_json::from_slice(
            &std::fs::read(mirror.join("blobs/sha256").join(digest)).unwrap(),
        )
        .unwrap();
        for l in man["layers"].as_array().unwrap() {
            assert!(
                l["mediaType"].as_str().unwrap().ends_with("+encrypted"),
                "{man}"
            );
        }
    }
    // And back: a plain push over encrypted versions is refused too.
    let out = w.cmd(&["push", "b", m]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn a_directory_mirror_whose_index_is_a_fifo_or_symlink_is_refused_not_waited_on() {
    let w = World::new("mirror-fifo");
    let mirror = w.dir.join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::write(
        mirror.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let out = std::process::Command::new("mkfifo")
        .arg(mirror.join("index.json"))
        .output()
        .unwrap();
    assert_success(&out, "mkfifo");
    let other = w.dir.join("other-store");
    let out = std::process::Command::new("timeout")
        .arg("20")
        .arg(cowl_bin())
        .args(["pull", mirror.to_str().unwrap(), "b"])
        .env("COWL_HOME", &other)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    // A symlink at the index's name is not followed either.
    std::fs::remove_file(mirror.join("index.json")).unwrap();
    std::fs::write(w.dir.join("elsewhere.json"), "{}").unwrap();
    std::os::unix::fs::symlink(w.dir.join("elsewhere.json"), mirror.join("index.json")).unwrap();
    let out = cmd_in(&w, &other, &["pull", mirror.to_str().unwrap(), "b"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!other.join("boxes/b").exists());
}
