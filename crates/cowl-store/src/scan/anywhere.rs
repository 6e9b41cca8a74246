//! The rules that look at every path of the box, in a home or not:
//! privilege (set-id bits, file capabilities), git repositories (hooks and
//! configuration that run commands) and droppers (device nodes, executables
//! in temporary or hidden directories). Their paths are relative to `/`.

use super::engine::{Detail, Kinds, Matcher, Rule, Scope, Subject, Table};
use super::finding::Severity;
use std::path::Path;

use Matcher::{
    All, Always, Elf, Mentions, ModeBits, Name, Not, ParentName, Test, UnderOneOf, Xattr,
};

/// Temporary directories, where an executable is a dropper's or a
/// compiler's.
const TMP_DIRS: &[&str] = &["tmp", "var/tmp", "dev/shm"];

/// The first rules: privilege the box gave a file.
pub(crate) const PRIVILEGE: Table = Table {
    scope: Scope::Root,
    rules: &[
        Rule {
            id: "privilege.setuid",
            severity: Severity::Critical,
            kinds: Kinds::File,
            matcher: ModeBits(0o6000),
            detail: Detail::Mode,
        },
        Rule {
            id: "privilege.capability",
            severity: Severity::Critical,
            kinds: Kinds::Any,
            matcher: Xattr("security.capability"),
            detail: Detail::Text("file capabilities (security.capability)"),
        },
    ],
};

/// Rules of git repositories, after those of the system. Git hooks run on
/// the user's next commit, checkout or fetch; in a repository this very
/// version made (clone, init: its `description` is new too), tools install
/// hooks as a matter of course.
pub(crate) const REPOSITORIES: Table = Table {
    scope: Scope::Root,
    rules: &[
        Rule {
            id: "persistence.git-hook",
            severity: Severity::Medium,
            kinds: Kinds::Written,
            matcher: All(&[Test(git_hook), Test(new_repository)]),
            detail: Detail::Text("git hook of a repository made in this version"),
        },
        Rule {
            id: "persistence.git-hook",
            severity: Severity::High,
            kinds: Kinds::Written,
            matcher: All(&[Test(git_hook), Not(&Test(new_repository))]),
            detail: Detail::Text("git hook (runs on the next git command)"),
        },
        Rule {
            id: "persistence.git-config",
            severity: Severity::High,
            kinds: Kinds::Written,
            matcher: All(&[
                Name("config"),
                ParentName(".git"),
                Mentions(super::engine::GIT_EXEC_KEYS),
            ]),
            detail: Detail::Text(
                "repository configuration that runs commands (hooksPath, fsmonitor, sshCommand, askPass)",
            ),
        },
    ],
};

/// An executable in a hidden directory that is neither temporary nor a git
/// hook's.
const HIDDEN: Matcher = All(&[
    Not(&UnderOneOf(TMP_DIRS)),
    Test(hidden_dir),
    Not(&Test(git_hook)),
]);

/// Rules of droppers, after those of repositories.
pub(crate) const DROPPERS: Table = Table {
    scope: Scope::Root,
    rules: &[
        Rule {
            id: "dropper.device",
            severity: Severity::High,
            kinds: Kinds::Device,
            matcher: Always,
            detail: Detail::Node,
        },
        // Compilers write binaries there too.
        Rule {
            id: "dropper.tmp-exec",
            severity: Severity::Medium,
            kinds: Kinds::Exec,
            matcher: All(&[UnderOneOf(TMP_DIRS), Elf]),
            detail: Detail::Text("executable binary in a temporary directory"),
        },
        Rule {
            id: "dropper.tmp-exec",
            severity: Severity::Medium,
            kinds: Kinds::Exec,
            matcher: All(&[UnderOneOf(TMP_DIRS), Not(&Elf)]),
            detail: Detail::Text("executable file in a temporary directory"),
        },
        Rule {
            id: "dropper.hidden-exec",
            severity: Severity::Medium,
            kinds: Kinds::Exec,
            matcher: All(&[HIDDEN, Elf]),
            detail: Detail::Text("executable binary in a hidden directory"),
        },
        Rule {
            id: "dropper.hidden-exec",
            severity: Severity::Low,
            kinds: Kinds::Exec,
            matcher: All(&[HIDDEN, Not(&Elf)]),
            detail: Detail::Text("executable file in a hidden directory"),
        },
    ],
};

/// A hook of a repository (`.git/hooks/x`) or of a bare one (`x.git/hooks/y`),
/// other than git's own samples.
fn git_hook(_: &Subject<'_>, rel: &Path) -> bool {
    let Some(parent) = rel.parent() else {
        return false;
    };
    let repo = parent.parent().and_then(Path::file_name);
    parent.file_name().is_some_and(|n| n == "hooks")
        && repo.is_some_and(|r| r.to_string_lossy().ends_with(".git"))
        && rel.extension().is_none_or(|x| x != "sample")
}

/// Whether the repository of the hook at `rel` is new in this version: its
/// `description` is one of the version's entries.
fn new_repository(s: &Subject<'_>, rel: &Path) -> bool {
    rel.parent().and_then(Path::parent).is_some_and(|git| {
        s.paths
            .contains(git.join("description").to_string_lossy().as_ref())
    })
}

/// Whether a directory `rel` is in has a name that starts with a dot.
fn hidden_dir(_: &Subject<'_>, rel: &Path) -> bool {
    let Some(parent) = rel.parent() else {
        return false;
    };
    parent
        .components()
        .any(|c| c.as_os_str().as_encoded_bytes().first() == Some(&b'.'))
}
