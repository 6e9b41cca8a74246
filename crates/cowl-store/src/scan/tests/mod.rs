//! Tests of the scan: what it reports for ordinary work and for typical
//! persistence, and (in `table`) the rule tables themselves.

use super::*;
use crate::layer::EntryKind;
use std::collections::BTreeMap;

mod table;

/// An entry of `kind` at `path` with `mode`, owned by root.
fn e(path: &str, kind: EntryKind, mode: u32) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        mtime_nsec: 0,
        xattrs: BTreeMap::new(),
        blake3: None,
    }
}

/// A machine with one user, `u`, and root.
fn cx() -> Context {
    Context {
        homes: vec!["home/u".into(), "root".into()],
        system_bins: vec!["usr/bin".into(), "bin".into()],
        host: "/".into(),
    }
}

/// The path, rule and severity of each finding for `entries`, whose
/// content is nowhere.
fn rules(entries: &[Entry]) -> Vec<(String, &'static str, Severity)> {
    scan_entries(entries, Path::new("/nonexistent"), &cx())
        .into_iter()
        .map(|f| (f.path.display().to_string(), f.rule, f.severity))
        .collect()
}

#[test]
fn persistence_in_a_home_is_high() {
    let got = rules(&[
        e("home/u/.bashrc", EntryKind::File, 0o100644),
        e("home/u/.ssh/authorized_keys", EntryKind::File, 0o100600),
        e("home/u/.ssh/authorized_keys2", EntryKind::File, 0o100600),
        e(
            "home/u/.config/autostart/x.desktop",
            EntryKind::File,
            0o100644,
        ),
        e(
            "home/u/.config/systemd/user/x.service",
            EntryKind::File,
            0o100644,
        ),
        e(
            "home/u/src/.git/hooks/pre-commit",
            EntryKind::File,
            0o100755,
        ),
    ]);
    let names: Vec<_> = got.iter().map(|g| g.1).collect();
    assert_eq!(
        names,
        [
            "persistence.shell-rc",
            "persistence.ssh-keys",
            "persistence.ssh-keys",
            "persistence.autostart",
            "persistence.systemd",
            "persistence.git-hook"
        ]
    );
    assert!(got.iter().all(|g| g.2 == Severity::High));
}

#[test]
fn ordinary_work_raises_nothing_high() {
    let got = rules(&[
        e(
            "home/u/proj/.git/hooks/pre-commit.sample",
            EntryKind::File,
            0o100755,
        ),
        e("home/u/proj/.git/config", EntryKind::File, 0o100644),
        e("home/u/proj/.venv/bin/activate", EntryKind::File, 0o100644),
        e(
            "home/u/proj/.venv/bin/python3",
            EntryKind::Symlink,
            0o120777,
        ),
        e("home/u/proj/main.py", EntryKind::File, 0o100644),
        e("home/u/.cache/pip/x", EntryKind::File, 0o100644),
        e("home/u/.viminfo", EntryKind::File, 0o100600),
        e("tmp/build.log", EntryKind::File, 0o100644),
    ]);
    assert!(got.iter().all(|g| g.2 < Severity::High), "{got:?}");
}

#[test]
fn more_persistence_and_fewer_false_alarms() {
    let got = rules(&[
        e("home/u/.bash_aliases", EntryKind::File, 0o100644),
        e("home/u/.bashrc.d/x.sh", EntryKind::File, 0o100644),
        e("home/u/.config/autostart", EntryKind::Symlink, 0o120777),
        e(
            "home/u/.local/lib/python3.11/site-packages/evil.pth",
            EntryKind::File,
            0o100644,
        ),
        e("srv/repo.git/hooks/post-receive", EntryKind::File, 0o100755),
        // A repository made in this version: its hooks are the tools'.
        e("home/u/lfs/.git/description", EntryKind::File, 0o100644),
        e("home/u/lfs/.git/hooks/pre-push", EntryKind::File, 0o100755),
        // A venv's own .pth files are not the user's site.
        e(
            "home/u/p/.venv/lib/python3.11/site-packages/_virtualenv.pth",
            EntryKind::File,
            0o100644,
        ),
    ]);
    let high: Vec<_> = got
        .iter()
        .filter(|g| g.2 >= Severity::High)
        .map(|g| (g.0.as_str(), g.1))
        .collect();
    assert_eq!(
        high,
        [
            ("/home/u/.bash_aliases", "persistence.shell-rc"),
            ("/home/u/.bashrc.d/x.sh", "persistence.shell-rc"),
            ("/home/u/.config/autostart", "persistence.symlinked-dir"),
            (
                "/home/u/.local/lib/python3.11/site-packages/evil.pth",
                "persistence.python-startup"
            ),
            ("/srv/repo.git/hooks/post-receive", "persistence.git-hook"),
        ]
    );
    assert!(got
        .iter()
        .any(|g| g.0 == "/home/u/lfs/.git/hooks/pre-push" && g.2 == Severity::Medium));
}

#[test]
fn system_rules() {
    let got = rules(&[
        e("etc/sudoers.d/evil", EntryKind::File, 0o100440),
        e("etc/cron.d/job", EntryKind::File, 0o100644),
        e("etc/hostname", EntryKind::File, 0o100644),
        e("etc/motd", EntryKind::Whiteout, 0o20000),
        e("usr/local/bin/x", EntryKind::File, 0o104755),
        e("dev/shm/x", EntryKind::File, 0o100755),
        e("home/u/dev", EntryKind::CharDevice, 0o20644),
    ]);
    let names: Vec<_> = got.iter().map(|g| (g.0.as_str(), g.1)).collect();
    assert!(names.contains(&("/etc/sudoers.d/evil", "persistence.sudoers")));
    assert!(names.contains(&("/etc/cron.d/job", "persistence.cron")));
    assert!(names.contains(&("/etc/hostname", "system.etc-change")));
    assert!(names.contains(&("/etc/motd", "system.etc-change")));
    assert!(names.contains(&("/usr/local/bin/x", "privilege.setuid")));
    assert!(names.contains(&("/dev/shm/x", "dropper.tmp-exec")));
    assert!(names.contains(&("/home/u/dev", "dropper.device")));
    // /etc/cron.d/job is not also reported as a plain /etc change.
    assert_eq!(names.iter().filter(|n| n.0 == "/etc/cron.d/job").count(), 1);
}

/// What the box wrote where a rule reads content is read only when it is a
/// regular file of the layer: a FIFO at `~/.gitconfig` must not hang the
/// scan, and a symlink at `~/.ssh/config` is not followed to what it names.
#[test]
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn content_rules_read_neither_fifos_nor_through_symlinks() {
    let layer = std::env::temp_dir().join(format!("cowl-scan-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&layer);
    std::fs::create_dir_all(layer.join("home/u/.ssh")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        layer.join("home/u/.gitconfig"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let outside = layer.join("outside");
    std::fs::write(&outside, "Host *\n  ProxyCommand sh -c evil\n").unwrap();
    std::os::unix::fs::symlink(&outside, layer.join("home/u/.ssh/config")).unwrap();
    let entries = [
        e("home/u/.gitconfig", EntryKind::Fifo, 0o010644),
        e("home/u/.ssh/config", EntryKind::Symlink, 0o120777),
    ];
    // Run apart, so that a scan stuck on the FIFO fails the test instead
    // of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let dir = layer.clone();
    std::thread::spawn(move || {
        let got: Vec<(String, &'static str, Severity)> = scan_entries(&entries, &dir, &cx())
            .into_iter()
            .map(|f| (f.path.display().to_string(), f.rule, f.severity))
            .collect();
        let _ = tx.send(got);
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the scan blocked on a FIFO");
    let _ = std::fs::remove_dir_all(&layer);
    assert!(
        got.iter().all(|(p, r, s)| !(p.ends_with(".ssh/config")
            && *r == "persistence.ssh-config"
            && *s == Severity::High)),
        "followed the symlink to a file outside the layer: {got:?}"
    );
}
