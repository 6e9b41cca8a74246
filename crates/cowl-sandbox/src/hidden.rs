//! What a box must not see: the credentials of homes and runtime
//! directories, the store, and every path the policy hides; resolved on the
//! host and given to the overlays that show them, to be whited out there.

use crate::view::{Base, LayerMount};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// Credentials and keys under a home directory that a box cannot read
/// unless its policy exposes them (relative to the home).
pub const HOME_SECRETS: [&str; 27] = [
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".kube",
    ".docker",
    ".netrc",
    ".password-store",
    ".local/share/keyrings",
    ".mozilla",
    ".config/google-chrome",
    ".config/chromium",
    ".git-credentials",
    ".config/gh",
    ".config/hub",
    ".npmrc",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".config/containers/auth.json",
    ".vault-token",
    ".terraform.d/credentials.tfrc.json",
    ".config/op",
    ".pgpass",
    ".my.cnf",
    ".config/rclone",
];

/// Sockets and secrets under a user's runtime directory
/// (`$XDG_RUNTIME_DIR`, `/run/user/UID`).
pub const RUNTIME_SECRETS: [&str; 11] = [
    "gnupg",
    "bus",
    "keyring",
    "wayland-0",
    "wayland-1",
    "wayland-2",
    "pulse",
    "pipewire-0",
    "ssh-agent.socket",
    "gcr",
    "containers/auth.json",
];

/// The secrets of one home directory.
pub fn home_secrets(home: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    HOME_SECRETS.iter().map(move |rel| home.join(rel))
}

/// The secrets of one runtime directory.
pub fn runtime_secrets(runtime: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    RUNTIME_SECRETS.iter().map(move |rel| runtime.join(rel))
}

/// What a box cannot read unless its policy exposes it: credentials, keys,
/// browser profiles, and the sockets of agents and desktop buses. `home` and
/// `runtime` are the caller's `$HOME` and `$XDG_RUNTIME_DIR`.
pub fn default_hidden(
    home: Option<&Path>,
    runtime: Option<&Path>,
    ssh_auth_sock: Option<&Path>,
) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(h) = home {
        v.extend(home_secrets(h));
    }
    if let Some(r) = runtime {
        v.extend(runtime_secrets(r));
    }
    v.extend(ssh_auth_sock.map(Path::to_path_buf));
    v.push(PathBuf::from("/run/dbus/system_bus_socket"));
    v.push(PathBuf::from("/var/run/dbus/system_bus_socket"));
    v.push(PathBuf::from("/tmp/.X11-unix"));
    v
}

/// The store and the policy's hidden paths, each as given (a symlink
/// itself) and as resolved on the host (what it leads to), whether it
/// exists yet or not; none below another.
pub(crate) fn hidden_paths(store: &Path, hide: &[PathBuf]) -> Vec<PathBuf> {
    let mut all: BTreeSet<PathBuf> = BTreeSet::new();
    all.insert(store.to_owned());
    // The secrets of a home share its directories: each looked at once.
    let mut dirs = std::collections::HashMap::new();
    for p in hide.iter().filter(|p| p.is_absolute()) {
        all.insert(normal(p));
        all.insert(resolve_existing(p, &mut dirs));
    }
    let all: Vec<PathBuf> = all.into_iter().collect();
    all.iter()
        .filter(|p| !all.iter().any(|q| q != *p && p.starts_with(q)))
        .cloned()
        .collect()
}

/// `p` without `.` and `..` components (lexically).
fn normal(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// What a path of the host is, for `resolve_existing`.
#[derive(Clone)]
enum Seen {
    /// A directory (not a symlink).
    Dir,
    /// Nothing there.
    Missing,
    /// A symlink or file: resolved as a whole by the kernel.
    Other,
}

/// `p` with symlinks resolved as far as it exists on the host; the rest
/// appended as given. Walks down from `/` with one lstat per directory not
/// seen before (`dirs` remembers them across calls); only a path with a
/// symlink on the way goes to `canonicalize`.
fn resolve_existing(p: &Path, dirs: &mut std::collections::HashMap<PathBuf, Seen>) -> PathBuf {
    let p = normal(p);
    let mut head = PathBuf::from("/");
    let comps: Vec<_> = p.components().skip(1).collect();
    for (i, c) in comps.iter().enumerate() {
        head.push(c);
        let seen = dirs
            .entry(head.clone())
            .or_insert_with(|| match std::fs::symlink_metadata(&head) {
                Ok(m) if m.is_dir() => Seen::Dir,
                Ok(_) => Seen::Other,
                Err(_) => Seen::Missing,
            })
            .clone();
        match seen {
            Seen::Dir => {}
            Seen::Missing => {
                head.pop();
                for rest in &comps[i..] {
                    head.push(rest);
                }
                return head;
            }
            Seen::Other => {
                let Ok(mut real) = std::fs::canonicalize(&head) else {
                    return p;
                };
                for rest in &comps[i + 1..] {
                    real.push(rest);
                }
                return real;
            }
        }
    }
    head
}

/// Gives each hidden path to the deepest overlay of a host directory that
/// holds it (to be whited out there); returns those no overlay holds and
/// that are not simply left out of a skeleton: they are covered by a mount.
pub(crate) fn assign_hidden(layers: &mut [LayerMount], hidden: &[PathBuf]) -> Vec<PathBuf> {
    let mut covered = Vec::new();
    for h in hidden {
        let deepest = layers
            .iter_mut()
            .filter(|l| l.path != *h && h.starts_with(&l.path))
            .max_by_key(|l| crate::view::depth(&l.path));
        match deepest {
            Some(l) if l.base == Base::Host => {
                if let Ok(rel) = h.strip_prefix(&l.path) {
                    l.hidden.push(rel.to_owned());
                }
            }
            // The box's own empty directory: nothing of the host to hide.
            Some(l) if l.base == Base::Empty => {}
            // In a skeleton, a hidden entry is left out (skeleton_level);
            // one below a skeleton entry that is not a directory cannot be.
            Some(l) if matches!(l.base, Base::Skeleton { .. }) => {}
            _ => covered.push(h.clone()),
        }
    }
    covered
}

pub(crate) fn is_hidden(p: &Path, hidden: &[PathBuf]) -> bool {
    hidden.iter().any(|h| p.starts_with(h))
}
