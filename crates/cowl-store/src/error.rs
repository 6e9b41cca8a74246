//! Errors of the store, one variant per operation that failed.

use std::io;
use std::path::PathBuf;

/// What went wrong while reading or changing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A box name that does not match `[a-z0-9][a-z0-9._-]{0,62}`.
    #[error("invalid box name {name:?}: use 1 to 63 characters from a-z, 0-9, '.', '_' and '-', starting with a letter or digit")]
    InvalidName {
        /// The name as given.
        name: String,
    },
    /// No box of that name exists.
    #[error("no box named {name:?}: `cowl ls` lists the boxes, `cowl run {name}` creates it")]
    NoSuchBox {
        /// The name asked for.
        name: String,
    },
    /// The store directory could not be found or made.
    #[error("cannot use the store at {path}: {source}; set COWL_HOME to a directory you own")]
    StoreDir {
        /// The store root.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A path inside a box is not what cowl made it: a symlink, a file where a
    /// directory should be, or owned by someone else (the CVE-2024-42472 class).
    #[error("{} has been tampered with ({what}); cowl refuses to use it. Inspect it, then remove the box with `cowl rm --force {name}`", crate::quote::path(.path))]
    Tampered {
        /// The box.
        name: String,
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// Reading or writing a file of the store failed.
    #[error("{op} {}: {source}", crate::quote::path(.path))]
    Io {
        /// What cowl was doing.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// A removed box's files (renamed out of sight) could not all be deleted.
    #[error("the box is removed, but {} could not be deleted ({source}): delete it by hand with `chmod -R u+rwX {0} && rm -rf {0}`", crate::quote::path(.path))]
    Leftover {
        /// The renamed box directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `box.toml` does not parse.
    #[error("{path} is not valid: {message}; fix it by hand or `cowl rm` the box")]
    BadSettings {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A version number the box does not have.
    #[error("box {name:?} has no version {version} (its newest is {newest}): `cowl log {name}` lists them")]
    NoSuchVersion {
        /// The box.
        name: String,
        /// The number asked for.
        version: u64,
        /// The newest version.
        newest: u64,
    },
    /// The box directory is not whole: a file or directory every box has is
    /// missing or unreadable, `box.toml` does not parse, or a version lacks
    /// its layer or manifest. Nothing uses such a box; `verify` lists every
    /// problem, `rm --force` removes it.
    #[error("box {name} is damaged ({}): `cowl verify {name}` lists what is wrong, `cowl rm --force {name}` removes the box", summary(.problems))]
    Damaged {
        /// The box.
        name: String,
        /// What is wrong, one item per problem, each naming its path in
        /// the box directory ("versions/3/layer is missing").
        problems: Vec<String>,
    },
    /// Another cowl command holds the box's run lock, and no init of the
    /// box runs: a snapshot, a squash or a run still starting or ending.
    #[error("box {name} is in use by another cowl command: retry when it is done")]
    InUse {
        /// The box.
        name: String,
    },
    /// A version asked for by number that the box does not have (versions
    /// are not always 1..N: squashes and rollbacks leave gaps).
    #[error("box {name} has no version {version}: it has {} (`cowl log {name}` lists them)", describe_numbers(.existing))]
    NoSuchVersionOf {
        /// The box.
        name: String,
        /// The number asked for.
        version: u64,
        /// The numbers it has, oldest first.
        existing: Vec<u64>,
    },
    /// The box has no version yet, and the operation needs one.
    #[error("box {name} has no versions yet: a run that changes something makes one (box.toml `snapshot = \"on-exit\"`), or `cowl snapshot {name}` after a run")]
    NoVersions {
        /// The box.
        name: String,
    },
    /// The box is running and the operation needs it stopped.
    #[error("box {name:?} is running (pid {pid}): stop it first with `cowl stop {name}`, or pass --force")]
    Running {
        /// The box.
        name: String,
        /// Its init's pid on the host.
        pid: i32,
    },
}

/// The first problem, and how many more there are.
fn summary(problems: &[String]) -> String {
    match problems {
        [] => "no problem named".into(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first}, and {} more", rest.len()),
    }
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }
}

/// Version numbers for a human, runs of consecutive ones as ranges:
/// "versions 1-3, 5 and 9", "version 4", "no versions".
pub fn describe_numbers(numbers: &[u64]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &n in numbers {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == n => *last = n,
            _ => runs.push((n, n)),
        }
    }
    let text: Vec<String> = runs
        .iter()
        .map(|&(a, z)| {
            if a == z {
                a.to_string()
            } else {
                format!("{a}-{z}")
            }
        })
        .collect();
    match (numbers.len(), text.as_slice()) {
        (0, _) => "no versions".into(),
        (1, [one]) => format!("version {one}"),
        (_, [one]) => format!("versions {one}"),
        (_, [init @ .., last]) => format!("versions {} and {last}", init.join(", ")),
        (_, []) => "no versions".into(),
    }
}
