//! Where the app starts, and the one line that says so when it is not where
//! the caller is.
//!
//! The box runs the command in the caller's working directory when the box
//! shows a directory there; otherwise the sandbox (`process::exec_app`)
//! falls back to `$HOME`, then `/`. A directory the box has of its own
//! (`/tmp`, `/var/tmp`, `/dev/shm`), a hidden one, one below a mount the box
//! shows empty, or one the box deleted is not the host's directory in the
//! box: `cd /tmp/pkg && sudo cowl run --system b -- dpkg -i ./x.deb` would
//! find no file. The caller is told before the run, naming the directory the
//! command runs in instead and what makes the files visible.

use cowl_store::quote;
use std::path::{Component, Path, PathBuf};

/// Directories a box has of its own: what the host holds there is not in
/// the box. `/tmp` and `/var/tmp` are in the box's layers (they persist);
/// `/dev/shm` is a fresh tmpfs of each run.
fn own_dirs() -> impl Iterator<Item = (&'static Path, bool)> {
    cowl_sandbox::plan::PRIVATE_DIRS
        .iter()
        .map(|d| (Path::new(*d), true))
        .chain(std::iter::once((Path::new("/dev/shm"), false)))
}

/// How a hidden path came to be hidden: what the caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiddenBy {
    /// The default list (credentials, agent sockets): `--expose` lets the
    /// box read it.
    DefaultList,
    /// `--hide` or box.toml `hide`.
    Policy,
    /// The cowl store, hidden in every box.
    Store,
    /// A second path (another mount of the same filesystem) to a hidden one.
    Alias,
}

/// Why the box does not show the caller's directory as the host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unseen {
    /// At or below a directory the box has of its own.
    Own {
        /// That directory (`/tmp`).
        dir: PathBuf,
    },
    /// At or below a path hidden in the box.
    Hidden {
        /// The hidden path.
        path: PathBuf,
        /// Why it is hidden.
        by: HiddenBy,
    },
    /// At or below a host mount the box shows as an empty directory.
    Unreachable {
        /// The mount point.
        mount: PathBuf,
        /// Why cowl could not show it.
        why: String,
    },
    /// The box deleted it, or made something else of it, in its layers.
    Deleted,
}

/// What the box is known to show: the places where it differs from the
/// host, and a way to ask whether a directory exists in it.
pub struct View<'a> {
    /// Hidden paths, each with why.
    pub hidden: Vec<(PathBuf, HiddenBy)>,
    /// Mount points shown as empty directories, each with why.
    pub unreachable: Vec<(PathBuf, String)>,
    /// Whether the box shows a directory at this path (its own, the
    /// host's, whichever it is).
    pub shows_dir: Box<dyn Fn(&Path) -> bool + 'a>,
}

/// Where a run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartDir {
    /// The directory the command runs in, as the box sees it.
    pub path: PathBuf,
    /// Why that is not the caller's directory as the host has it.
    pub unseen: Option<Unseen>,
}

impl View<'_> {
    /// Why the box does not show host directory `dir` as the host has it,
    /// if it does not.
    fn unseen(&self, dir: &Path) -> Option<Unseen> {
        if let Some((own, _)) = own_dirs().find(|(d, _)| dir.starts_with(d)) {
            return Some(Unseen::Own {
                dir: own.to_owned(),
            });
        }
        // The innermost hidden path: the most specific reason.
        if let Some((path, by)) = self
            .hidden
            .iter()
            .filter(|(h, _)| dir.starts_with(h))
            .max_by_key(|(h, _)| h.components().count())
        {
            return Some(Unseen::Hidden {
                path: path.clone(),
                by: *by,
            });
        }
        if let Some((mount, why)) = self.unreachable.iter().find(|(m, _)| dir.starts_with(m)) {
            return Some(Unseen::Unreachable {
                mount: mount.clone(),
                why: why.clone(),
            });
        }
        (!(self.shows_dir)(dir)).then_some(Unseen::Deleted)
    }

    /// Where a command run from `cwd` starts: there if the box shows a
    /// directory there, else `home` if it shows that, else `/`, as
    /// `process::exec_app` chooses.
    pub fn start_dir(&self, cwd: &Path, home: Option<&Path>) -> StartDir {
        let unseen = self.unseen(cwd);
        if (self.shows_dir)(cwd) {
            return StartDir {
                path: cwd.to_owned(),
                unseen,
            };
        }
        let path = home
            .filter(|h| !h.as_os_str().is_empty() && (self.shows_dir)(h))
            .map_or_else(|| PathBuf::from("/"), Path::to_owned);
        StartDir { path, unseen }
    }
}

impl StartDir {
    /// The line to tell the caller before the run (without the `cowl: `
    /// prefix), or `None` when the command runs in the caller's directory
    /// as the host has it.
    pub fn note(&self, cwd: &Path, box_name: &str) -> Option<String> {
        let unseen = self.unseen.as_ref()?;
        let here = quote::path(cwd);
        let start = quote::path(&self.path);
        let own_copy = self.path == cwd;
        const COPY: &str = "copy them to a directory the box shares with the host (not /tmp, /var/tmp or /dev/shm) and run cowl from there";
        Some(match unseen {
            Unseen::Own { dir } if own_copy => format!(
                "the box has its own {}: the command runs in the box's {here}, which holds none of the host's files there; to use them, {COPY}",
                dir.display()
            ),
            Unseen::Own { dir } => format!(
                "{here} is not in the box: the box has its own {}, so the command runs in {start} instead; to use files from there, {COPY}",
                dir.display()
            ),
            Unseen::Hidden { path, by } => {
                let runs = if own_copy {
                    format!("the command runs in the box's own {here}, not the host's")
                } else {
                    format!("the command runs in {start} instead")
                };
                let what = quote::path(path);
                match by {
                    HiddenBy::Store => format!(
                        "{here} is in the cowl store, which no box sees: {runs}; run cowl from another directory"
                    ),
                    HiddenBy::DefaultList => format!(
                        "{here} is hidden in the box ({what} is on the default list of secrets): {runs}; --expose {what} (or box.toml expose) lets the box read it"
                    ),
                    HiddenBy::Policy => format!(
                        "{here} is hidden in the box (--hide or box.toml hide names {what}): {runs}; `cowl config {box_name} hide` shows the setting"
                    ),
                    HiddenBy::Alias => format!(
                        "{here} is hidden in the box ({what} is a second path to a hidden directory): {runs}; run cowl from another directory"
                    ),
                }
            }
            Unseen::Unreachable { why, .. } if own_copy => format!(
                "{here} is an empty directory in the box ({why}): the command runs there, without the host's files; run cowl from another directory"
            ),
            Unseen::Unreachable { mount, why } => format!(
                "{here} is not in the box: {} is an empty directory there ({why}), so the command runs in {start} instead; run cowl from another directory",
                quote::path(mount)
            ),
            Unseen::Deleted => format!(
                "{here} is not in box {box_name}: the box deleted it or made something else of it (`cowl diff {box_name}` shows it), so the command runs in {start} instead"
            ),
        })
    }
}

/// Whether a stack of the box's layers (topmost first; `cowl_store::stack`
/// reads them as overlayfs does) over the host, or over nothing, shows a
/// directory at `dir`.
pub fn stack_shows_dir(stack: &cowl_store::stack::Stack, dir: &Path) -> bool {
    let rel = cowl_sandbox::plan::rel(dir);
    if rel.as_os_str().is_empty() {
        return true;
    }
    stack.lookup(&rel).is_some_and(|f| f.kind.is_dir())
}

/// The view of a box about to start: `layers` are its live layer and its
/// run layers, topmost first; the plan gives what is hidden and what is
/// unreachable.
pub fn planned_view<'a>(
    plan: &cowl_sandbox::Plan,
    layers: &'a [PathBuf],
    private: &'a [PathBuf],
    hidden: Vec<(PathBuf, HiddenBy)>,
) -> View<'a> {
    use cowl_sandbox::hostmounts::MountClass;
    let unreachable: Vec<(PathBuf, String)> = plan
        .mounts
        .iter()
        .filter_map(|m| match &m.class {
            MountClass::Unreachable { why } => Some((m.path.clone(), why.clone())),
            _ => None,
        })
        .collect();
    let over_host = cowl_store::stack::Stack::new(layers.to_vec(), Some(Path::new("/")), private);
    let own = cowl_store::stack::Stack::new(layers.to_vec(), None, private);
    let hidden_paths: Vec<PathBuf> = hidden.iter().map(|(h, _)| h.clone()).collect();
    let empty_mounts: Vec<PathBuf> = unreachable.iter().map(|(m, _)| m.clone()).collect();
    View {
        hidden,
        unreachable,
        shows_dir: Box::new(move |dir: &Path| {
            if let Some((d, in_layers)) = own_dirs().find(|(d, _)| dir.starts_with(d)) {
                // The box's own directory itself is always there; below it,
                // only what the box's layers hold (nothing, for /dev/shm).
                return dir == d || (in_layers && stack_shows_dir(&own, dir));
            }
            if hidden_paths.iter().any(|h| dir.starts_with(h)) {
                return stack_shows_dir(&own, dir);
            }
            if let Some(m) = empty_mounts.iter().find(|m| dir.starts_with(m)) {
                return dir == m;
            }
            stack_shows_dir(&over_host, dir)
        }),
    }
}

/// Whether the running box of init `pid` shows a directory at `dir`,
/// looked up through `/proc/PID/root`. Unknown (that root cannot be read, a
/// symlink on the way, which the box would resolve in its own root) counts
/// as shown: no line is better than a wrong one.
pub fn running_shows_dir(pid: i32, dir: &Path) -> bool {
    let mut p = PathBuf::from(format!("/proc/{pid}/root"));
    if std::fs::symlink_metadata(&p).is_err() || std::fs::read_dir(&p).is_err() {
        return true;
    }
    for c in dir.components() {
        let Component::Normal(c) = c else {
            continue;
        };
        p.push(c);
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.file_type().is_symlink() => return true,
            Ok(md) if md.is_dir() => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(shown: &'static [&'static str]) -> View<'static> {
        View {
            hidden: vec![
                ("/home/u/.ssh".into(), HiddenBy::DefaultList),
                ("/data/cowl".into(), HiddenBy::Store),
            ],
            unreachable: vec![("/mnt/nfs".into(), "no answer".into())],
            shows_dir: Box::new(move |d: &Path| shown.iter().any(|s| Path::new(s) == d)),
        }
    }

    #[test]
    fn a_directory_under_the_boxs_own_tmp_starts_in_home_and_says_so() {
        let v = view(&["/home/u", "/tmp"]);
        let s = v.start_dir(Path::new("/tmp/pkg"), Some(Path::new("/home/u")));
        assert_eq!(s.path, Path::new("/home/u"));
        let note = s.note(Path::new("/tmp/pkg"), "b").unwrap_or_default();
        assert!(note.contains("has its own /tmp"), "{note}");
        assert!(note.contains("runs in /home/u instead"), "{note}");
        assert!(!note.contains("--expose"), "{note}");
    }

    #[test]
    fn tmp_itself_is_the_boxs_own_and_says_so() {
        let v = view(&["/home/u", "/tmp"]);
        let s = v.start_dir(Path::new("/tmp"), Some(Path::new("/home/u")));
        assert_eq!(s.path, Path::new("/tmp"));
        let note = s.note(Path::new("/tmp"), "b").unwrap_or_default();
        assert!(note.contains("the box's /tmp"), "{note}");
    }

    #[test]
    fn a_visible_directory_has_no_note() {
        let v = view(&["/home/u", "/home/u/src"]);
        let s = v.start_dir(Path::new("/home/u/src"), Some(Path::new("/home/u")));
        assert_eq!(s.path, Path::new("/home/u/src"));
        assert_eq!(s.note(Path::new("/home/u/src"), "b"), None);
    }

    #[test]
    fn a_hidden_directory_names_expose_and_a_deleted_one_names_diff() {
        let v = view(&["/home/u"]);
        let s = v.start_dir(Path::new("/home/u/.ssh/keys"), Some(Path::new("/home/u")));
        let note = s
            .note(Path::new("/home/u/.ssh/keys"), "b")
            .unwrap_or_default();
        assert!(note.contains("--expose /home/u/.ssh"), "{note}");
        let s = v.start_dir(Path::new("/home/u/gone"), Some(Path::new("/home/u")));
        let note = s.note(Path::new("/home/u/gone"), "b").unwrap_or_default();
        assert!(note.contains("cowl diff b"), "{note}");
    }

    #[test]
    fn without_a_visible_home_the_command_starts_at_the_root() {
        let v = view(&[]);
        let s = v.start_dir(Path::new("/data/cowl/boxes"), Some(Path::new("/tmp/h")));
        assert_eq!(s.path, Path::new("/"));
        let note = s
            .note(Path::new("/data/cowl/boxes"), "b")
            .unwrap_or_default();
        assert!(note.contains("cowl store"), "{note}");
        assert!(note.contains("runs in / instead"), "{note}");
    }
}
