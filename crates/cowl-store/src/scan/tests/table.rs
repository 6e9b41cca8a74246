//! Tests that pin the rule tables: the ids and their severities, that no
//! rule is there twice, the order of the tables, and the findings (id,
//! severity and text) of representative paths, one or more for every id.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::scan::engine::{Rule, Scope};
use crate::scan::TABLES;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Every rule of every table, with the scope of its table.
fn every_rule() -> impl Iterator<Item = (Scope, &'static Rule)> {
    TABLES
        .iter()
        .flat_map(|t| t.rules.iter().map(move |r| (t.scope, r)))
}

/// Every id is `family.name`, and the tables hold exactly these ids with
/// exactly these severities.
#[test]
fn every_id_has_a_family_a_name_and_fixed_severities() {
    let mut got: BTreeMap<&str, Vec<Severity>> = BTreeMap::new();
    for (_, r) in every_rule() {
        let (family, name) = r.id.split_once('.').unwrap_or(("", ""));
        assert!(
            ["privilege", "persistence", "dropper", "system"].contains(&family),
            "{}",
            r.id
        );
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "{}",
            r.id
        );
        let sevs = got.entry(r.id).or_default();
        if !sevs.contains(&r.severity) {
            sevs.push(r.severity);
            sevs.sort();
        }
    }
    use Severity::{Critical, High, Low, Medium};
    let want: BTreeMap<&str, Vec<Severity>> = [
        ("dropper.device", vec![High]),
        ("dropper.hidden-exec", vec![Low, Medium]),
        ("dropper.tmp-exec", vec![Medium]),
        ("persistence.autostart", vec![High]),
        ("persistence.cron", vec![High]),
        ("persistence.desktop-entry", vec![Medium]),
        ("persistence.git-config", vec![High]),
        ("persistence.git-hook", vec![Medium, High]),
        ("persistence.kernel-module", vec![High]),
        ("persistence.ld-preload", vec![High, Critical]),
        ("persistence.pam", vec![Critical]),
        ("persistence.path-shadow", vec![High]),
        ("persistence.python-startup", vec![High]),
        ("persistence.shell-rc", vec![High]),
        ("persistence.ssh-config", vec![Medium, High]),
        ("persistence.ssh-keys", vec![High]),
        ("persistence.sudoers", vec![Critical]),
        ("persistence.symlinked-dir", vec![High]),
        ("persistence.systemd", vec![High]),
        ("persistence.udev", vec![High]),
        ("privilege.capability", vec![Critical]),
        ("privilege.setuid", vec![Critical]),
        ("system.etc-change", vec![Medium]),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
}

/// No rule is in the tables twice.
#[test]
fn no_two_rules_are_the_same() {
    let mut seen = std::collections::HashSet::new();
    for (scope, r) in every_rule() {
        assert!(seen.insert(format!("{scope:?} {r:?}")), "{r:?}");
    }
}

/// The tables come in the order of the findings they report, each with its
/// scope, and the `/etc` fallback is last.
#[test]
fn tables_keep_their_order_and_scopes() {
    let order: Vec<_> = TABLES
        .iter()
        .map(|t| (t.scope, t.rules.first().map(|r| r.id)))
        .collect();
    use Scope::{Home, Root};
    assert_eq!(
        order,
        [
            (Root, Some("privilege.setuid")),
            (Home, Some("persistence.shell-rc")),
            (Root, Some("persistence.path-shadow")),
            (Root, Some("persistence.git-hook")),
            (Root, Some("dropper.device")),
            (Root, Some("system.etc-change")),
        ]
    );
    // The fallback only ever sees entries no earlier rule reported.
    assert!(TABLES
        .last()
        .is_some_and(|t| t.rules.iter().all(|r| r.id == "system.etc-change")));
}

/// A directory of its own under the system's temporary one, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    /// A new, empty one for `name`.
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("cowl-scan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    /// Writes `content` to `rel` in it, making the directories on the way.
    fn write(&self, rel: &str, content: &[u8]) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A finding a test wants: its rule, severity and text.
type Want<'a> = (&'static str, Severity, &'a str);

/// Representative entries get exactly these findings, in this order, and
/// among them is every id of the tables.
#[test]
fn representative_paths_map_to_their_rules() {
    let layer = Scratch::new("layer");
    let host = Scratch::new("host");
    host.write("usr/bin/ls", b"");
    let cx = Context {
        host: host.0.clone(),
        ..cx()
    };
    use Severity::{Critical, High, Low, Medium};
    let shadows = format!(
        "shadows the system command {}",
        host.0.join("usr/bin/ls").display()
    );
    // Each entry, what its layer holds, and its findings in order.
    let cases: Vec<(Entry, &[u8], Vec<Want>)> = vec![
        (
            e("home/u/.local/bin/ls", EntryKind::File, 0o104755),
            b"#!/bin/sh\n",
            vec![
                ("privilege.setuid", Critical, "mode 4755"),
                ("persistence.path-shadow", High, &shadows),
                ("dropper.hidden-exec", Low, "executable file in a hidden directory"),
            ],
        ),
        (
            e("home/u/.zshrc", EntryKind::Symlink, 0o120777),
            b"",
            vec![("persistence.shell-rc", High, "shell start-up file")],
        ),
        (
            e("home/u/.config/autostart", EntryKind::Symlink, 0o120777),
            b"",
            vec![(
                "persistence.symlinked-dir",
                High,
                "a persistence directory replaced by a symlink",
            )],
        ),
        (
            e("home/u/.ssh/config", EntryKind::File, 0o100600),
            b"Host x\n  ProxyCommand nc %h %p\n",
            vec![(
                "persistence.ssh-config",
                High,
                "ssh client configuration that runs commands",
            )],
        ),
        (
            e("root/.ssh/config", EntryKind::File, 0o100600),
            b"Host x\n  User y\n",
            vec![("persistence.ssh-config", Medium, "ssh client configuration")],
        ),
        (
            e("root/.gitconfig", EntryKind::File, 0o100644),
            b"[core]\n\thooksPath = /x\n",
            vec![(
                "persistence.git-config",
                High,
                "git configuration that runs commands (hooksPath, fsmonitor, sshCommand, askPass)",
            )],
        ),
        (
            e("home/u/.local/share/applications/x.desktop", EntryKind::File, 0o100644),
            b"",
            vec![("persistence.desktop-entry", Medium, "desktop application entry")],
        ),
        (
            e("home/u/.local/lib/python3.12/site-packages/sitecustomize.py", EntryKind::File, 0o100644),
            b"",
            vec![(
                "persistence.python-startup",
                High,
                "code every Python of this user runs at start",
            )],
        ),
        (
            e("home/u/.pam_environment", EntryKind::File, 0o100644),
            b"LD_PRELOAD=/x.so\n",
            vec![("persistence.ld-preload", High, "LD_PRELOAD in an environment file")],
        ),
        (
            e("home/u/.ssh/rc", EntryKind::File, 0o100644),
            b"",
            vec![("persistence.ssh-keys", High, "ssh login key or rc")],
        ),
        // Home rules need a home.
        (e("srv/.bashrc", EntryKind::File, 0o100644), b"", vec![]),
        (
            e("usr/local/bin/ls", EntryKind::Symlink, 0o120777),
            b"",
            vec![("persistence.path-shadow", High, &shadows)],
        ),
        (
            e("etc/xdg/autostart/x.desktop", EntryKind::File, 0o100644),
            b"",
            vec![("persistence.autostart", High, "system autostart entry")],
        ),
        (
            e("lib/systemd/system/x.service", EntryKind::File, 0o100644),
            b"",
            vec![("persistence.systemd", High, "systemd unit")],
        ),
        (
            e("var/spool/cron/crontabs/root", EntryKind::File, 0o100600),
            b"",
            vec![("persistence.cron", High, "crontab")],
        ),
        (
            e("usr/lib/udev/rules.d/99-x.rules", EntryKind::File, 0o100644),
            b"",
            vec![("persistence.udev", High, "udev rule")],
        ),
        (
            e("etc/sudoers", EntryKind::File, 0o100440),
            b"",
            vec![("persistence.sudoers", Critical, "sudoers")],
        ),
        (
            e("etc/pam.d/sshd", EntryKind::File, 0o100644),
            b"",
            vec![("persistence.pam", Critical, "PAM configuration")],
        ),
        (
            e("etc/modules", EntryKind::File, 0o100644),
            b"",
            vec![("persistence.kernel-module", High, "kernel module loaded at boot")],
        ),
        (
            e("etc/ssh/sshd_config", EntryKind::File, 0o100644),
            b"",
            vec![("persistence.ssh-keys", High, "ssh server configuration")],
        ),
        (
            e("etc/environment", EntryKind::File, 0o100644),
            b"LD_PRELOAD=/x.so\n",
            vec![(
                "persistence.ld-preload",
                Critical,
                "LD_PRELOAD in a system environment file",
            )],
        ),
        (
            e("etc/environment.d/x.conf", EntryKind::File, 0o100644),
            b"PATH=/x\n",
            vec![("system.etc-change", Medium, "system configuration changed")],
        ),
        (
            e("etc/motd", EntryKind::Whiteout, 0o20000),
            b"",
            vec![("system.etc-change", Medium, "deleted")],
        ),
        (e("etc/ssl", EntryKind::Dir, 0o40755), b"", vec![]),
        (
            e("srv/w/.git/config", EntryKind::File, 0o100644),
            b"[core]\n\tfsmonitor = /x\n",
            vec![(
                "persistence.git-config",
                High,
                "repository configuration that runs commands (hooksPath, fsmonitor, sshCommand, askPass)",
            )],
        ),
        (
            e("srv/w/.git/hooks/pre-commit", EntryKind::File, 0o100755),
            b"#!/bin/sh\n",
            vec![("persistence.git-hook", High, "git hook (runs on the next git command)")],
        ),
        (e("srv/n/.git/description", EntryKind::File, 0o100644), b"", vec![]),
        (
            e("srv/n/.git/hooks/post-checkout", EntryKind::File, 0o100755),
            b"#!/bin/sh\n",
            vec![(
                "persistence.git-hook",
                Medium,
                "git hook of a repository made in this version",
            )],
        ),
        (
            e("usr/bin/ping", EntryKind::File, 0o100755),
            b"",
            vec![("privilege.capability", Critical, "file capabilities (security.capability)")],
        ),
        (
            e("srv/disk", EntryKind::BlockDevice, 0o60600),
            b"",
            vec![("dropper.device", High, "block-device node")],
        ),
        (
            e("var/tmp/a.out", EntryKind::File, 0o100755),
            b"\x7fELF\x02\x01\x01",
            vec![(
                "dropper.tmp-exec",
                Medium,
                "executable binary in a temporary directory",
            )],
        ),
        (
            e("opt/.cache/x", EntryKind::File, 0o100700),
            b"\x7fELF\x02\x01\x01",
            vec![(
                "dropper.hidden-exec",
                Medium,
                "executable binary in a hidden directory",
            )],
        ),
    ];
    let mut entries = Vec::new();
    let mut want = Vec::new();
    for (mut entry, content, findings) in cases {
        if entry.kind == EntryKind::File {
            layer.write(&entry.path, content);
        }
        if entry.path == "usr/bin/ping" {
            entry
                .xattrs
                .insert("security.capability".into(), "0100000200200000".into());
        }
        for (rule, severity, detail) in findings {
            want.push(Finding {
                path: Path::new("/").join(&entry.path),
                rule,
                severity,
                detail: detail.into(),
            });
        }
        entries.push(entry);
    }
    let got = scan_entries(&entries, &layer.0, &cx);
    assert_eq!(got, want);
    // Every id of the tables is among them, and only those.
    let hit: BTreeSet<&str> = want.iter().map(|f| f.rule).collect();
    let ids: BTreeSet<&str> = every_rule().map(|(_, r)| r.id).collect();
    assert_eq!(hit, ids);
}
