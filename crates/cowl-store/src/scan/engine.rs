//! The rule engine of the scan: what a rule is (an id, a severity, the kinds
//! of entry it looks at, a matcher and the detail it reports), the matcher
//! kinds, and the one loop that applies an ordered table of rules to one
//! entry. Content of the layer is read here only, lazily and at most once
//! per entry.

use super::finding::{Context, Finding, Severity};
use crate::layer::EntryKind;
use crate::manifest::Entry;
use std::cell::OnceCell;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What a rule's paths are relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The root of the box: the rule sees every entry, its path relative to `/`.
    Root,
    /// The home an entry is in: the rule sees only entries in a home, their
    /// path relative to that home.
    Home,
}

/// An ordered list of rules that share a scope.
#[derive(Debug)]
pub(crate) struct Table {
    /// What the paths of its rules are relative to.
    pub(crate) scope: Scope,
    /// Its rules, in the order their findings are reported.
    pub(crate) rules: &'static [Rule],
}

/// One rule: it reports a finding for an entry of the kinds it looks at
/// whose path and content its matcher accepts.
#[derive(Debug)]
pub(crate) struct Rule {
    /// The id of its findings, e.g. `persistence.shell-rc`.
    pub(crate) id: &'static str,
    /// The severity of its findings.
    pub(crate) severity: Severity,
    /// The kinds of entry it looks at.
    pub(crate) kinds: Kinds,
    /// What it looks for in an entry of those kinds.
    pub(crate) matcher: Matcher,
    /// What its findings say.
    pub(crate) detail: Detail,
}

/// The kinds of entry a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kinds {
    /// Every entry.
    Any,
    /// Anything the version wrote: neither a directory nor a whiteout.
    Written,
    /// A whiteout: something the version deleted.
    Deleted,
    /// A regular file.
    File,
    /// A regular file with an execute bit.
    Exec,
    /// A symbolic link.
    Symlink,
    /// A regular file with an execute bit, or a symbolic link.
    ExecOrSymlink,
    /// A character or block device.
    Device,
}

impl Kinds {
    /// Whether `e` is of these kinds.
    fn admit(self, e: &Entry) -> bool {
        match self {
            Kinds::Any => true,
            Kinds::Written => e.kind != EntryKind::Whiteout && !e.kind.is_dir(),
            Kinds::Deleted => e.kind == EntryKind::Whiteout,
            Kinds::File => e.kind == EntryKind::File,
            Kinds::Exec => is_exec(e),
            Kinds::Symlink => e.kind == EntryKind::Symlink,
            Kinds::ExecOrSymlink => is_exec(e) || e.kind == EntryKind::Symlink,
            Kinds::Device => matches!(e.kind, EntryKind::CharDevice | EntryKind::BlockDevice),
        }
    }
}

/// What a rule looks for in an entry. Paths are compared by whole components
/// and are relative to the rule's scope.
#[derive(Debug)]
pub(crate) enum Matcher {
    /// Every entry.
    Always,
    /// The path is this one.
    Is(&'static str),
    /// The path is one of these.
    IsOneOf(&'static [&'static str]),
    /// The path is this one or below it.
    Within(&'static str),
    /// The path is strictly below this directory.
    Under(&'static str),
    /// The path is strictly below one of these directories.
    UnderOneOf(&'static [&'static str]),
    /// The path is directly in one of these directories.
    DirectlyIn(&'static [&'static str]),
    /// The file name is this one.
    Name(&'static str),
    /// The file name ends with this.
    NameEndsWith(&'static str),
    /// The name of the directory the entry is in is this one.
    ParentName(&'static str),
    /// The mode has one of these bits.
    ModeBits(u32),
    /// The entry has this extended attribute.
    Xattr(&'static str),
    /// The first MiB of the content has one of these words.
    Mentions(&'static [&'static [u8]]),
    /// The content starts with an ELF header.
    Elf,
    /// The host has a system command of the entry's name.
    ShadowsCommand,
    /// No earlier rule reported a finding for this entry.
    Unclaimed,
    /// A test of its own on the entry and its path.
    Test(fn(&Subject<'_>, &Path) -> bool),
    /// Every one of these.
    All(&'static [Matcher]),
    /// At least one of these.
    AnyOf(&'static [Matcher]),
    /// Not this one.
    Not(&'static Matcher),
}

impl Matcher {
    /// Whether the entry of `s`, at `path` in the rule's scope, matches;
    /// `claimed` says whether an earlier rule reported it.
    fn matches(&self, s: &Subject<'_>, path: &Path, claimed: bool) -> bool {
        match self {
            Matcher::Always => true,
            Matcher::Is(p) => path == Path::new(p),
            Matcher::IsOneOf(ps) => ps.iter().any(|p| path == Path::new(p)),
            Matcher::Within(d) => path.starts_with(d),
            Matcher::Under(d) => under(path, d),
            Matcher::UnderOneOf(ds) => ds.iter().any(|d| under(path, d)),
            Matcher::DirectlyIn(ds) => ds.iter().any(|d| path.parent() == Some(Path::new(d))),
            Matcher::Name(n) => path.file_name().is_some_and(|f| f == *n),
            Matcher::NameEndsWith(x) => path
                .file_name()
                .is_some_and(|f| f.as_encoded_bytes().ends_with(x.as_bytes())),
            Matcher::ParentName(n) => path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|f| f == *n),
            Matcher::ModeBits(bits) => s.entry.mode & bits != 0,
            Matcher::Xattr(name) => s.entry.xattrs.contains_key(*name),
            Matcher::Mentions(words) => {
                let text = s.text();
                words.iter().any(|w| text.windows(w.len()).any(|x| x == *w))
            }
            Matcher::Elf => s.elf(),
            Matcher::ShadowsCommand => s.shadowed().is_some(),
            Matcher::Unclaimed => !claimed,
            Matcher::Test(f) => f(s, path),
            Matcher::All(ms) => ms.iter().all(|m| m.matches(s, path, claimed)),
            Matcher::AnyOf(ms) => ms.iter().any(|m| m.matches(s, path, claimed)),
            Matcher::Not(m) => !m.matches(s, path, claimed),
        }
    }
}

/// What a finding says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// This text.
    Text(&'static str),
    /// The permission and set-id bits of the entry (`mode 4755`).
    Mode,
    /// The kind of device node (`char-device node`).
    Node,
    /// The system command the entry shadows.
    ShadowedCommand,
}

impl Detail {
    /// The text of a finding for the entry of `s`.
    fn text(self, s: &Subject<'_>) -> String {
        match self {
            Detail::Text(t) => t.into(),
            Detail::Mode => format!("mode {:o}", s.entry.mode & 0o7777),
            Detail::Node => format!("{} node", s.entry.kind.as_str()),
            Detail::ShadowedCommand => match s.shadowed() {
                Some(p) => format!("shadows the system command {}", p.display()),
                None => "shadows a system command".into(),
            },
        }
    }
}

/// One entry under examination, with what the rules learn of it on the way.
pub(crate) struct Subject<'a> {
    /// The entry.
    entry: &'a Entry,
    /// Its path relative to `/`.
    rel: &'a Path,
    /// Its path relative to the home it is in, if it is in one.
    home: Option<&'a Path>,
    /// Every path of the layer, as the manifest spells it.
    pub(crate) paths: &'a HashSet<&'a str>,
    /// Where its content is.
    file: PathBuf,
    /// The machine.
    cx: &'a Context,
    /// Whether its content starts with an ELF header.
    elf: OnceCell<bool>,
    /// The first MiB of its content.
    text: OnceCell<Vec<u8>>,
    /// The system command of its name on the host.
    shadowed: OnceCell<Option<PathBuf>>,
}

impl<'a> Subject<'a> {
    /// The entry `entry` of the layer at `layer`, of which `paths` are
    /// every path.
    pub(crate) fn new(
        entry: &'a Entry,
        layer: &Path,
        paths: &'a HashSet<&'a str>,
        cx: &'a Context,
    ) -> Subject<'a> {
        let rel = Path::new(&entry.path);
        Subject {
            entry,
            rel,
            home: cx.in_home(rel),
            paths,
            file: layer.join(rel),
            cx,
            elf: OnceCell::new(),
            text: OnceCell::new(),
            shadowed: OnceCell::new(),
        }
    }

    /// Its path as rules of `scope` see it; `None` if they do not see it.
    fn path(&self, scope: Scope) -> Option<&'a Path> {
        match scope {
            Scope::Root => Some(self.rel),
            Scope::Home => self.home,
        }
    }

    /// Whether its content starts with an ELF header.
    fn elf(&self) -> bool {
        *self
            .elf
            .get_or_init(|| read_head(&self.file, 4) == b"\x7fELF")
    }

    /// The first MiB of its content (less if it is shorter, nothing if it
    /// cannot be read).
    fn text(&self) -> &[u8] {
        self.text.get_or_init(|| read_head(&self.file, 1 << 20))
    }

    /// The host's system command of its name, if there is one.
    fn shadowed(&self) -> Option<&Path> {
        self.shadowed
            .get_or_init(|| {
                let name = self.rel.file_name()?;
                self.cx
                    .system_bins
                    .iter()
                    .map(|d| self.cx.host.join(d).join(name))
                    .find(|p| p.symlink_metadata().is_ok())
            })
            .as_deref()
    }
}

/// Applies `tables`, in order, to the entry of `s`, appending its findings
/// to `out`.
pub(crate) fn apply(tables: &[&Table], s: &Subject<'_>, out: &mut Vec<Finding>) {
    let before = out.len();
    for table in tables {
        let Some(path) = s.path(table.scope) else {
            continue;
        };
        for rule in table.rules {
            if rule.kinds.admit(s.entry) && rule.matcher.matches(s, path, out.len() > before) {
                out.push(Finding {
                    path: Path::new("/").join(s.rel),
                    rule: rule.id,
                    severity: rule.severity,
                    detail: rule.detail.text(s),
                });
            }
        }
    }
}

/// Whether `p` is strictly below `dir`.
fn under(p: &Path, dir: &str) -> bool {
    p.starts_with(dir) && p != Path::new(dir)
}

/// Whether `e` is a regular file with an execute bit.
fn is_exec(e: &Entry) -> bool {
    e.kind == EntryKind::File && e.mode & 0o111 != 0
}

/// The first `n` bytes of the regular file at `p`; what could be read if
/// less, and nothing if it cannot be opened or is anything else. A symlink
/// is not followed (it could lead to the host) and a FIFO or device is
/// never read (an app's `mkfifo ~/.gitconfig` must not hang a review).
fn read_head(p: &Path, n: usize) -> Vec<u8> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut buf = Vec::new();
    // Looked at before it is opened: a device node is never opened at all.
    if !std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()) {
        return buf;
    }
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(p)
    else {
        return buf;
    };
    if f.metadata().is_ok_and(|m| m.is_file()) {
        let _ = f.take(n as u64).read_to_end(&mut buf);
    }
    buf
}

/// Keys of git configuration that make git run a command.
pub(super) const GIT_EXEC_KEYS: &[&[u8]] = &[
    b"hooksPath",
    b"hookspath",
    b"fsmonitor",
    b"sshCommand",
    b"sshcommand",
    b"askPass",
    b"askpass",
];

/// The word of environment files that preloads a library into programs.
pub(super) const LD_PRELOAD: &[&[u8]] = &[b"LD_PRELOAD"];
