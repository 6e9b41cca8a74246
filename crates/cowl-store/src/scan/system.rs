//! The rules of the system outside homes: commands that shadow system ones
//! from `/usr/local`, start-up, cron, udev, sudo, PAM, kernel module and ssh
//! server configuration, library preloading, and, last, any other change
//! under `/etc`. Their paths are relative to `/`.

use super::engine::{Detail, Kinds, Matcher, Rule, Scope, Table};
use super::finding::Severity;

use Matcher::{All, AnyOf, DirectlyIn, Is, Mentions, ShadowsCommand, Unclaimed, Under};
use Severity::{Critical, High};

/// Directories of the system that are on `PATH` before its own commands.
const PATH_DIRS: &[&str] = &["usr/local/bin", "usr/local/sbin"];

/// A rule for anything written below `dir`.
const fn below(
    dir: &'static str,
    id: &'static str,
    severity: Severity,
    what: &'static str,
) -> Rule {
    Rule {
        id,
        severity,
        kinds: Kinds::Written,
        matcher: Under(dir),
        detail: Detail::Text(what),
    }
}

/// A rule for the file at `path` when written.
const fn file(
    path: &'static str,
    id: &'static str,
    severity: Severity,
    what: &'static str,
) -> Rule {
    Rule {
        id,
        severity,
        kinds: Kinds::Written,
        matcher: Is(path),
        detail: Detail::Text(what),
    }
}

/// The rules of the system, in the order their findings are reported; they
/// come after those of homes.
pub(crate) const RULES: Table = Table {
    scope: Scope::Root,
    rules: &[
        Rule {
            id: "persistence.path-shadow",
            severity: High,
            kinds: Kinds::ExecOrSymlink,
            matcher: All(&[DirectlyIn(PATH_DIRS), ShadowsCommand]),
            detail: Detail::ShadowedCommand,
        },
        // Directories whose every file is system persistence.
        below(
            "etc/profile.d",
            "persistence.shell-rc",
            High,
            "system shell start-up file",
        ),
        below(
            "etc/xdg/autostart",
            "persistence.autostart",
            High,
            "system autostart entry",
        ),
        below(
            "etc/systemd",
            "persistence.systemd",
            High,
            "systemd unit or configuration",
        ),
        below(
            "usr/lib/systemd",
            "persistence.systemd",
            High,
            "systemd unit",
        ),
        below("lib/systemd", "persistence.systemd", High, "systemd unit"),
        below("etc/cron.d", "persistence.cron", High, "cron job"),
        below("etc/cron.hourly", "persistence.cron", High, "cron job"),
        below("etc/cron.daily", "persistence.cron", High, "cron job"),
        below("etc/cron.weekly", "persistence.cron", High, "cron job"),
        below("etc/cron.monthly", "persistence.cron", High, "cron job"),
        below("var/spool/cron", "persistence.cron", High, "crontab"),
        below("var/spool/at", "persistence.cron", High, "at job"),
        below("etc/udev/rules.d", "persistence.udev", High, "udev rule"),
        below("lib/udev/rules.d", "persistence.udev", High, "udev rule"),
        below(
            "usr/lib/udev/rules.d",
            "persistence.udev",
            High,
            "udev rule",
        ),
        below(
            "etc/sudoers.d",
            "persistence.sudoers",
            Critical,
            "sudoers rule",
        ),
        below(
            "etc/pam.d",
            "persistence.pam",
            Critical,
            "PAM configuration",
        ),
        below(
            "etc/modprobe.d",
            "persistence.kernel-module",
            High,
            "kernel module configuration",
        ),
        below(
            "etc/modules-load.d",
            "persistence.kernel-module",
            High,
            "kernel module loaded at boot",
        ),
        below(
            "usr/lib/modprobe.d",
            "persistence.kernel-module",
            High,
            "kernel module configuration",
        ),
        below(
            "lib/modules",
            "persistence.kernel-module",
            High,
            "kernel module",
        ),
        below(
            "usr/lib/modules",
            "persistence.kernel-module",
            High,
            "kernel module",
        ),
        // Single files that are system persistence.
        file(
            "etc/profile",
            "persistence.shell-rc",
            High,
            "system shell start-up file",
        ),
        file(
            "etc/bash.bashrc",
            "persistence.shell-rc",
            High,
            "system shell start-up file",
        ),
        file(
            "etc/zsh/zshrc",
            "persistence.shell-rc",
            High,
            "system shell start-up file",
        ),
        file("etc/crontab", "persistence.cron", High, "system crontab"),
        file("etc/anacrontab", "persistence.cron", High, "anacron table"),
        file("etc/sudoers", "persistence.sudoers", Critical, "sudoers"),
        file(
            "etc/ld.so.preload",
            "persistence.ld-preload",
            Critical,
            "library preloaded into every program",
        ),
        file(
            "etc/modules",
            "persistence.kernel-module",
            High,
            "kernel module loaded at boot",
        ),
        file(
            "etc/ssh/sshd_config",
            "persistence.ssh-keys",
            High,
            "ssh server configuration",
        ),
        Rule {
            id: "persistence.ld-preload",
            severity: Critical,
            kinds: Kinds::Written,
            matcher: All(&[
                AnyOf(&[Is("etc/environment"), Under("etc/environment.d")]),
                Mentions(super::engine::LD_PRELOAD),
            ]),
            detail: Detail::Text("LD_PRELOAD in a system environment file"),
        },
    ],
};

/// The last rules: any other change under `/etc`, reported only for an
/// entry no earlier rule reported.
pub(crate) const ETC_CHANGES: Table = Table {
    scope: Scope::Root,
    rules: &[
        Rule {
            id: "system.etc-change",
            severity: Severity::Medium,
            kinds: Kinds::Deleted,
            matcher: All(&[Under("etc"), Unclaimed]),
            detail: Detail::Text("deleted"),
        },
        Rule {
            id: "system.etc-change",
            severity: Severity::Medium,
            kinds: Kinds::Written,
            matcher: All(&[Under("etc"), Unclaimed]),
            detail: Detail::Text("system configuration changed"),
        },
    ],
};
