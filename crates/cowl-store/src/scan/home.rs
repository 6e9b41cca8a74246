//! The rules of home directories: what a compromised app writes into a
//! user's home to run again (shell start-up files, autostart entries,
//! systemd user units, ssh and git configuration, Python start-up code,
//! commands that shadow system ones). Their paths are relative to the home
//! an entry is in; entries outside every home never reach them.

use super::engine::{Detail, Kinds, Matcher, Rule, Scope, Table};
use super::finding::Severity;

use Matcher::{
    All, AnyOf, DirectlyIn, Is, IsOneOf, Mentions, Name, NameEndsWith, Not, ParentName,
    ShadowsCommand, Under, UnderOneOf, Within,
};

/// Files a shell or a session runs at start.
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

/// Directories of a home that are on the user's `PATH`.
const PATH_DIRS: &[&str] = &[".local/bin", "bin"];

/// Persistence directories that, replaced by a symlink, point at one the
/// box filled elsewhere.
const PERSISTENCE_DIRS: &[&str] = &[
    ".config/autostart",
    ".config/systemd/user",
    ".config/systemd",
    ".local/share/systemd/user",
    ".ssh",
    ".config/environment.d",
    ".local/bin",
];

/// Words of ssh client configuration that make ssh run a command.
const SSH_EXEC_KEYS: &[&[u8]] = &[b"ProxyCommand", b"LocalCommand", b"Match exec"];

/// The rules of home directories, in the order their findings are reported.
pub(crate) const RULES: Table = Table {
    scope: Scope::Home,
    rules: &[
        Rule {
            id: "persistence.shell-rc",
            severity: Severity::High,
            kinds: Kinds::Written,
            matcher: AnyOf(&[IsOneOf(SHELL_RC), UnderOneOf(RC_DIRS)]),
            detail: Detail::Text("shell start-up file"),
        },
        Rule {
            id: "persistence.autostart",
            severity: Severity::High,
            kinds: Kinds::Written,
            matcher: Under(".config/autostart"),
            detail: Detail::Text("desktop autostart entry"),
        },
        Rule {
            id: "persistence.systemd",
            severity: Severity::High,
            kinds: Kinds::Written,
            matcher: UnderOneOf(&[".config/systemd/user", ".local/share/systemd/user"]),
            detail: Detail::Text("systemd user unit"),
        },
        Rule {
            id: "persistence.symlinked-dir",
            severity: Severity::High,
            kinds: Kinds::Symlink,
            matcher: IsOneOf(PERSISTENCE_DIRS),
            detail: Detail::Text("a persistence directory replaced by a symlink"),
        },
        Rule {
            id: "persistence.ssh-config",
            severity: Severity::High,
            kinds: Kinds::Written,
            matcher: All(&[Is(".ssh/config"), Mentions(SSH_EXEC_KEYS)]),
            detail: Detail::Text("ssh client configuration that runs commands"),
        },
        Rule {
            id: "persistence.ssh-config",
            severity: Severity::Medium,
            kinds: Kinds::Written,
            matcher: All(&[Is(".ssh/config"), Not(&Mentions(SSH_EXEC_KEYS))]),
            detail: Detail::Text("ssh client configuration"),
        },
        Rule {
            id: "persistence.git-config",
            severity: Severity::High,
            kinds: Kinds::Written,
            matcher: All(&[Is(".gitconfig"), Mentions(super::engine::GIT_EXEC_KEYS)]),
            detail: Detail::Text(
                "git configuration that runs commands (hooksPath, fsmonitor, sshCommand, askPass)",
            ),
        },
        Rule {
            id: "persistence.desktop-entry",
            severity: Severity::Medium,
            kinds: Kinds::Written,
            matcher: Under(".local/share/applications"),
            detail: Detail::Text("desktop application entry"),
        },
        // The user's own site-packages; a venv's are not in `.local/lib`.
        Rule {
            id: "persistence.python-startup",
            severity: Severity::High,
            kinds: Kinds::Written,
            matcher: All(&[
                Under(".local/lib"),
                ParentName("site-packages"),
                AnyOf(&[
                    NameEndsWith(".pth"),
                    Name("sitecustomize.py"),
                    Name("usercustomize.py"),
                ]),
            ]),
            detail: Detail::Text("code every Python of this user runs at start"),
        },
        Rule {
            id: "persistence.ssh-keys",
            severity: Severity::High,
            kinds: Kinds::Written,
            matcher: AnyOf(&[
                Within(".ssh/authorized_keys"),
                Within(".ssh/authorized_keys2"),
                Is(".ssh/rc"),
            ]),
            detail: Detail::Text("ssh login key or rc"),
        },
        Rule {
            id: "persistence.ld-preload",
            severity: Severity::High,
            kinds: Kinds::Written,
            matcher: All(&[
                AnyOf(&[Is(".pam_environment"), Under(".config/environment.d")]),
                Mentions(super::engine::LD_PRELOAD),
            ]),
            detail: Detail::Text("LD_PRELOAD in an environment file"),
        },
        Rule {
            id: "persistence.path-shadow",
            severity: Severity::High,
            kinds: Kinds::ExecOrSymlink,
            matcher: All(&[DirectlyIn(PATH_DIRS), ShadowsCommand]),
            detail: Detail::ShadowedCommand,
        },
    ],
};
