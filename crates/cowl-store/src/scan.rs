//! Finding what a compromised app leaves behind: built-in rules over the
//! entries of each version (persistence, privilege, droppers, system
//! changes), read from manifests and layers only. Nothing of the box is
//! executed; file content is read only where a rule needs it (a few bytes
//! for an ELF header, environment files for `LD_PRELOAD`).

use crate::layer::EntryKind;
use crate::manifest::Entry;
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Unusual for ordinary work.
    Medium,
    /// What malware does to stay or to spread.
    High,
    /// Privilege or the system's own trust.
    Critical,
}

impl Severity {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The path as the box sees it.
    pub path: PathBuf,
    /// The rule, e.g. `persistence.shell-rc`.
    pub rule: &'static str,
    /// How bad.
    pub severity: Severity,
    /// What the rule saw.
    pub detail: String,
}

/// What the rules need to know about the machine.
#[derive(Debug, Clone)]
pub struct Context {
    /// Home directories, relative to `/` (the caller's, root's, /home/*).
    pub homes: Vec<PathBuf>,
    /// Directories of system commands, relative to `/`, to tell a command
    /// that shadows one (`usr/bin`, `bin`, …).
    pub system_bins: Vec<PathBuf>,
    /// The host's root (to look up shadowed commands).
    pub host: PathBuf,
}

impl Context {
    /// The context of this machine for a caller whose home is `home`.
    pub fn of_host(home: Option<&Path>) -> Context {
        let mut homes: Vec<PathBuf> = Vec::new();
        if let Some(h) = home {
            if let Ok(r) = h.strip_prefix("/") {
                if !r.as_os_str().is_empty() {
                    homes.push(r.to_owned());
                }
            }
        }
        homes.push("root".into());
        if let Ok(rd) = std::fs::read_dir("/home") {
            for e in rd.flatten() {
                homes.push(Path::new("home").join(e.file_name()));
            }
        }
        homes.sort();
        homes.dedup();
        Context {
            homes,
            system_bins: ["usr/bin", "bin", "usr/sbin", "sbin"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            host: "/".into(),
        }
    }

    /// `path` relative to the home it is in, if it is in one.
    fn in_home<'p>(&self, path: &'p Path) -> Option<&'p Path> {
        self.homes
            .iter()
            .filter_map(|h| path.strip_prefix(h).ok())
            .min_by_key(|r| r.components().count())
    }
}

const SHELL_RC: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zprofile",
    ".zshenv",
    ".zlogin",
    ".kshrc",
    ".cshrc",
    ".tcshrc",
    ".xprofile",
    ".xsessionrc",
    ".xinitrc",
    ".config/fish/config.fish",
    ".bash_aliases",
];

/// Directories whose every file a shell or session runs at start.
const RC_DIRS: &[&str] = &[".bashrc.d", ".config/fish/conf.d", ".zshrc.d"];

const PATH_DIRS_HOME: &[&str] = &[".local/bin", "bin"];
const PATH_DIRS_SYSTEM: &[&str] = &["usr/local/bin", "usr/local/sbin"];

fn under(p: &Path, dir: &str) -> bool {
    p.starts_with(dir) && p != Path::new(dir)
}

fn is_exec(e: &Entry) -> bool {
    e.kind == EntryKind::File && e.mode & 0o111 != 0
}

/// Applies every built-in rule to the entries of one layer; `layer` is where
/// the entries are (to read content where a rule needs it).
pub fn scan_entries(entries: &[Entry], layer: &Path, cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let paths: std::collections::HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    for e in entries {
        let before = out.len();
        let rel = Path::new(&e.path);
        let mut add = |rule: &'static str, severity: Severity, detail: String| {
            out.push(Finding {
                path: Path::new("/").join(rel),
                rule,
                severity,
                detail,
            })
        };
        let deleted = e.kind == EntryKind::Whiteout;
        let written = !deleted && !e.kind.is_dir();

        // Privilege: setuid/setgid bits and file capabilities.
        if e.kind == EntryKind::File && e.mode & 0o6000 != 0 {
            add(
                "privilege.setuid",
                Severity::Critical,
                format!("mode {:o}", e.mode & 0o7777),
            );
        }
        if e.xattrs.contains_key("security.capability") {
            add(
                "privilege.capability",
                Severity::Critical,
                "file capabilities (security.capability)".into(),
            );
        }

        // Persistence in a home directory.
        if let Some(h) = cx.in_home(rel) {
            if written
                && (SHELL_RC.iter().any(|r| h == Path::new(r))
                    || RC_DIRS.iter().any(|d| under(h, d)))
            {
                add(
                    "persistence.shell-rc",
                    Severity::High,
                    "shell start-up file".into(),
                );
            }
            if written && under(h, ".config/autostart") {
                add(
                    "persistence.autostart",
                    Severity::High,
                    "desktop autostart entry".into(),
                );
            }
            if written
                && (under(h, ".config/systemd/user") || under(h, ".local/share/systemd/user"))
            {
                add(
                    "persistence.systemd",
                    Severity::High,
                    "systemd user unit".into(),
                );
            }
            // A persistence directory replaced by a symlink to one the box
            // filled elsewhere.
            if e.kind == EntryKind::Symlink
                && [
                    ".config/autostart",
                    ".config/systemd/user",
                    ".config/systemd",
                    ".local/share/systemd/user",
                    ".ssh",
                    ".config/environment.d",
                    ".local/bin",
                ]
                .iter()
                .any(|d| h == Path::new(d))
            {
                add(
                    "persistence.symlinked-dir",
                    Severity::High,
                    "a persistence directory replaced by a symlink".into(),
                );
            }
            if written && h == Path::new(".ssh/config") {
                let hooks = mentions(
                    &layer.join(rel),
                    &[b"ProxyCommand", b"LocalCommand", b"Match exec"],
                );
                add(
                    "persistence.ssh-config",
                    if hooks {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    if hooks {
                        "ssh client configuration that runs commands".into()
                    } else {
                        "ssh client configuration".into()
                    },
                );
            }
            if written && h == Path::new(".gitconfig") && mentions(&layer.join(rel), GIT_EXEC_KEYS)
            {
                add(
                    "persistence.git-config",
                    Severity::High,
                    "git configuration that runs commands (hooksPath, fsmonitor, sshCommand, askPass)".into(),
                );
            }
            if written && under(h, ".local/share/applications") {
                add(
                    "persistence.desktop-entry",
                    Severity::Medium,
                    "desktop application entry".into(),
                );
            }
            if written && under(h, ".local/lib") {
                let name = rel
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let in_site = rel
                    .parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n == "site-packages");
                if in_site
                    && (name.ends_with(".pth")
                        || name == "sitecustomize.py"
                        || name == "usercustomize.py")
                {
                    add(
                        "persistence.python-startup",
                        Severity::High,
                        "code every Python of this user runs at start".into(),
                    );
                }
            }
            if written && (h.starts_with(".ssh/authorized_keys") || h == Path::new(".ssh/rc")) {
                add(
                    "persistence.ssh-keys",
                    Severity::High,
                    "ssh login key or rc".into(),
                );
            }
            if written
                && (h == Path::new(".pam_environment") || under(h, ".config/environment.d"))
                && mentions_preload(&layer.join(rel))
            {
                add(
                    "persistence.ld-preload",
                    Severity::High,
                    "LD_PRELOAD in an environment file".into(),
                );
            }
            for d in PATH_DIRS_HOME {
                if h.parent() == Some(Path::new(d)) {
                    if let Some(f) = shadowing(e, h, cx) {
                        add("persistence.path-shadow", Severity::High, f);
                    }
                }
            }
        }
        for d in PATH_DIRS_SYSTEM {
            if rel.parent() == Some(Path::new(d)) {
                if let Some(f) = shadowing(e, rel, cx) {
                    add("persistence.path-shadow", Severity::High, f);
                }
            }
        }

        // System-wide persistence.
        let system: &[(&str, &'static str, Severity, &str)] = &[
            (
                "etc/profile.d",
                "persistence.shell-rc",
                Severity::High,
                "system shell start-up file",
            ),
            (
                "etc/xdg/autostart",
                "persistence.autostart",
                Severity::High,
                "system autostart entry",
            ),
            (
                "etc/systemd",
                "persistence.systemd",
                Severity::High,
                "systemd unit or configuration",
            ),
            (
                "usr/lib/systemd",
                "persistence.systemd",
                Severity::High,
                "systemd unit",
            ),
            (
                "lib/systemd",
                "persistence.systemd",
                Severity::High,
                "systemd unit",
            ),
            ("etc/cron.d", "persistence.cron", Severity::High, "cron job"),
            (
                "etc/cron.hourly",
                "persistence.cron",
                Severity::High,
                "cron job",
            ),
            (
                "etc/cron.daily",
                "persistence.cron",
                Severity::High,
                "cron job",
            ),
            (
                "etc/cron.weekly",
                "persistence.cron",
                Severity::High,
                "cron job",
            ),
            (
                "etc/cron.monthly",
                "persistence.cron",
                Severity::High,
                "cron job",
            ),
            (
                "var/spool/cron",
                "persistence.cron",
                Severity::High,
                "crontab",
            ),
            ("var/spool/at", "persistence.cron", Severity::High, "at job"),
            (
                "etc/udev/rules.d",
                "persistence.udev",
                Severity::High,
                "udev rule",
            ),
            (
                "lib/udev/rules.d",
                "persistence.udev",
                Severity::High,
                "udev rule",
            ),
            (
                "usr/lib/udev/rules.d",
                "persistence.udev",
                Severity::High,
                "udev rule",
            ),
            (
                "etc/sudoers.d",
                "persistence.sudoers",
                Severity::Critical,
                "sudoers rule",
            ),
            (
                "etc/pam.d",
                "persistence.pam",
                Severity::Critical,
                "PAM configuration",
            ),
            (
                "etc/modprobe.d",
                "persistence.kernel-module",
                Severity::High,
                "kernel module configuration",
            ),
            (
                "etc/modules-load.d",
                "persistence.kernel-module",
                Severity::High,
                "kernel module loaded at boot",
            ),
            (
                "usr/lib/modprobe.d",
                "persistence.kernel-module",
                Severity::High,
                "kernel module configuration",
            ),
            (
                "lib/modules",
                "persistence.kernel-module",
                Severity::High,
                "kernel module",
            ),
            (
                "usr/lib/modules",
                "persistence.kernel-module",
                Severity::High,
                "kernel module",
            ),
        ];
        for (dir, rule, sev, what) in system {
            if written && under(rel, dir) {
                add(rule, *sev, (*what).into());
            }
        }
        let files: &[(&str, &'static str, Severity, &str)] = &[
            (
                "etc/profile",
                "persistence.shell-rc",
                Severity::High,
                "system shell start-up file",
            ),
            (
                "etc/bash.bashrc",
                "persistence.shell-rc",
                Severity::High,
                "system shell start-up file",
            ),
            (
                "etc/zsh/zshrc",
                "persistence.shell-rc",
                Severity::High,
                "system shell start-up file",
            ),
            (
                "etc/crontab",
                "persistence.cron",
                Severity::High,
                "system crontab",
            ),
            (
                "etc/anacrontab",
                "persistence.cron",
                Severity::High,
                "anacron table",
            ),
            (
                "etc/sudoers",
                "persistence.sudoers",
                Severity::Critical,
                "sudoers",
            ),
            (
                "etc/ld.so.preload",
                "persistence.ld-preload",
                Severity::Critical,
                "library preloaded into every program",
            ),
            (
                "etc/modules",
                "persistence.kernel-module",
                Severity::High,
                "kernel module loaded at boot",
            ),
            (
                "etc/ssh/sshd_config",
                "persistence.ssh-keys",
                Severity::High,
                "ssh server configuration",
            ),
        ];
        for (file, rule, sev, what) in files {
            if written && rel == Path::new(file) {
                add(rule, *sev, (*what).into());
            }
        }
        if written
            && (rel == Path::new("etc/environment") || under(rel, "etc/environment.d"))
            && mentions_preload(&layer.join(rel))
        {
            add(
                "persistence.ld-preload",
                Severity::Critical,
                "LD_PRELOAD in a system environment file".into(),
            );
        }
        // Git hooks run on the user's next commit, checkout or fetch. In a
        // repository this very version made (clone, init: its `description`
        // is new too), tools install hooks as a matter of course.
        if written && is_git_hook(rel) {
            let new_repo = rel.parent().and_then(Path::parent).is_some_and(|git| {
                paths.contains(git.join("description").to_string_lossy().as_ref())
            });
            add(
                "persistence.git-hook",
                if new_repo {
                    Severity::Medium
                } else {
                    Severity::High
                },
                if new_repo {
                    "git hook of a repository made in this version".into()
                } else {
                    "git hook (runs on the next git command)".into()
                },
            );
        }
        if written
            && rel.file_name().is_some_and(|n| n == "config")
            && rel
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == ".git")
            && mentions(&layer.join(rel), GIT_EXEC_KEYS)
        {
            add(
                "persistence.git-config",
                Severity::High,
                "repository configuration that runs commands (hooksPath, fsmonitor, sshCommand, askPass)".into(),
            );
        }

        // Droppers.
        if e.kind == EntryKind::CharDevice || e.kind == EntryKind::BlockDevice {
            add(
                "dropper.device",
                Severity::High,
                format!("{} node", e.kind.as_str()),
            );
        }
        if is_exec(e) {
            let tmp = ["tmp", "var/tmp", "dev/shm"].iter().any(|d| under(rel, d));
            let elf = is_elf(&layer.join(rel));
            if tmp {
                add(
                    "dropper.tmp-exec",
                    // Compilers write binaries there too.
                    Severity::Medium,
                    format!(
                        "executable {} in a temporary directory",
                        if elf { "binary" } else { "file" }
                    ),
                );
            } else if hidden_dir(rel) && !is_git_hook(rel) {
                add(
                    "dropper.hidden-exec",
                    if elf { Severity::Medium } else { Severity::Low },
                    format!(
                        "executable {} in a hidden directory",
                        if elf { "binary" } else { "file" }
                    ),
                );
            }
        }

        // Anything else under /etc.
        if under(rel, "etc") && !e.kind.is_dir() && out.len() == before {
            out.push(Finding {
                path: Path::new("/").join(rel),
                rule: "system.etc-change",
                severity: Severity::Medium,
                detail: if deleted {
                    "deleted".into()
                } else {
                    "system configuration changed".into()
                },
            });
        }
    }
    out
}

/// Keys of git configuration that make git run a command.
const GIT_EXEC_KEYS: &[&[u8]] = &[
    b"hooksPath",
    b"hookspath",
    b"fsmonitor",
    b"sshCommand",
    b"sshcommand",
    b"askPass",
    b"askpass",
];

/// A hook of a repository (`.git/hooks/x`) or of a bare one (`x.git/hooks/y`).
fn is_git_hook(rel: &Path) -> bool {
    let Some(parent) = rel.parent() else {
        return false;
    };
    let repo = parent.parent().and_then(Path::file_name);
    parent.file_name().is_some_and(|n| n == "hooks")
        && repo.is_some_and(|r| r.to_string_lossy().ends_with(".git"))
        && rel.extension().is_none_or(|x| x != "sample")
}

fn hidden_dir(rel: &Path) -> bool {
    let Some(parent) = rel.parent() else {
        return false;
    };
    parent
        .components()
        .any(|c| c.as_os_str().as_encoded_bytes().first() == Some(&b'.'))
}

fn shadowing(e: &Entry, rel: &Path, cx: &Context) -> Option<String> {
    if !is_exec(e) && e.kind != EntryKind::Symlink {
        return None;
    }
    let name = rel.file_name()?;
    cx.system_bins
        .iter()
        .map(|d| cx.host.join(d).join(name))
        .find(|p| p.symlink_metadata().is_ok())
        .map(|p| format!("shadows the system command {}", p.display()))
}

fn read_head(p: &Path, n: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(p) {
        let _ = f.take(n as u64).read_to_end(&mut buf);
    }
    buf
}

fn is_elf(p: &Path) -> bool {
    read_head(p, 4) == b"\x7fELF"
}

fn mentions(p: &Path, words: &[&[u8]]) -> bool {
    let text = read_head(p, 1 << 20);
    words.iter().any(|w| text.windows(w.len()).any(|x| x == *w))
}

fn mentions_preload(p: &Path) -> bool {
    let text = read_head(p, 1 << 20);
    text.windows(b"LD_PRELOAD".len())
        .any(|w| w == b"LD_PRELOAD")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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

    fn cx() -> Context {
        Context {
            homes: vec!["home/u".into(), "root".into()],
            system_bins: vec!["usr/bin".into(), "bin".into()],
            host: "/".into(),
        }
    }

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
}
