//! `cowl diff`: what a box changed compared with the host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn diff_lists_every_kind_of_change_and_nothing_else() {
    let w = World::new("diff");
    let h = w.host();
    std::fs::create_dir_all(h.join("replaced/inner")).unwrap();
    std::fs::write(h.join("replaced/inner/old"), "o").unwrap();
    std::fs::write(h.join("replaced/top"), "t").unwrap();
    std::fs::write(h.join("edit"), "1").unwrap();
    std::fs::write(h.join("same"), "s").unwrap();
    std::fs::write(h.join("perm"), "p").unwrap();
    std::fs::write(h.join("del"), "d").unwrap();
    std::fs::write(h.join("becomes-dir"), "f").unwrap();
    std::fs::write(h.join("untouched"), "u").unwrap();
    w.ok(
        "b",
        "set -e
         echo new > added
         echo 2 > edit
         cat same > /dev/null; touch -a same
         chmod 600 perm
         rm del
         rm becomes-dir && mkdir becomes-dir
         rm -rf replaced && mkdir replaced && echo n > replaced/new
         echo scratch > /tmp/scratch",
    );
    let out = w.cmd(&["diff", "--json", "b"]);
    assert_success(&out, "diff");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let p = c["path"].as_str().unwrap();
            let p = p.strip_prefix(h.to_str().unwrap()).unwrap_or(p).to_owned();
            (p, c["change"].as_str().unwrap().to_owned())
        })
        .collect();
    let want = [
        ("/tmp/scratch", "added"),
        ("/added", "added"),
        ("/becomes-dir", "type-changed"),
        ("/del", "deleted"),
        ("/edit", "modified"),
        ("/perm", "metadata-changed"),
        ("/replaced/inner", "deleted"),
        ("/replaced/new", "added"),
        ("/replaced/top", "deleted"),
    ];
    for (p, c) in want {
        assert!(
            got.iter().any(|(gp, gc)| gp == p && gc == c),
            "missing {p} {c} in {got:?}"
        );
    }
    assert!(
        !got.iter().any(|(p, _)| p == "/untouched" || p == "/same"),
        "{got:?}"
    );
    assert!(
        !got.iter().any(|(p, _)| p == "/tmp" || p == "/var/tmp"),
        "mount points reported: {got:?}"
    );

    let text = stdout(&w.cmd(&["diff", "b"]));
    assert!(
        text.lines().any(|l| l == format!("D {}/del", h.display())),
        "{text}"
    );
    let stat = stdout(&w.cmd(&["diff", "--stat", "b"]));
    assert!(
        stat.trim_end().lines().last().unwrap().contains("deleted"),
        "{stat}"
    );
}

#[test]
fn diff_of_a_fresh_box_is_empty() {
    let w = World::new("diff-empty");
    w.ok("b", "true");
    let out = w.cmd(&["diff", "--json", "b"]);
    assert_success(&out, "diff");
    assert_eq!(stdout(&out).trim(), "[]");
    assert_eq!(w.cmd(&["diff", "nope"]).status.code(), Some(1));
}
