//! From what the user asked for (`Spec`, plain data) to what will be mounted
//! (`Plan`, resolved against the host's filesystem and mount table).
//!
//! Resolving reads directories and the mount table but changes nothing, so
//! `cowl run --dry-run --json` can print exactly what a run would do.

use crate::mountinfo::MountEntry;
use cowl_store::{Durability, Mode, NetMode};
use serde::Serialize;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// What the user asked for: validated, but not yet looked up anywhere.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The box name, also the hostname inside.
    pub box_name: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Identity mapping.
    pub mode: Mode,
    /// Network policy.
    pub net: NetMode,
    /// The caller's working directory, kept inside when it exists there.
    pub cwd: PathBuf,
    /// What the app's fsyncs promise.
    pub durability: Durability,
    /// Host paths the box must not read (secrets, agent sockets).
    pub hide: Vec<PathBuf>,
    /// System calls allowed back through the seccomp filter.
    pub allow_syscalls: Vec<String>,
    /// The Landlock domain.
    pub landlock: crate::landlock::LandlockPolicy,
    /// Host paths bound read-only at the same place (`--gui` sockets).
    pub binds: Vec<PathBuf>,
    /// In `proxy` network mode: what the proxies let through.
    pub proxy_allow: Vec<crate::proxy::AllowRule>,
    /// The app's environment (the caller's, less what the policy drops).
    pub env: Vec<(OsString, OsString)>,
    /// Names of the caller's variables the policy dropped (credentials).
    pub env_dropped: Vec<String>,
}

/// The display sockets `--gui` passes through, from the caller's
/// environment: the Wayland socket, and X11's socket directory and
/// authority file.
pub fn gui_paths(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(w) = env("WAYLAND_DISPLAY").filter(|w| !w.is_empty()) {
        let p = PathBuf::from(&w);
        if p.is_absolute() {
            v.push(p);
        } else if let Some(r) = env("XDG_RUNTIME_DIR") {
            v.push(PathBuf::from(r).join(p));
        }
    }
    if env("DISPLAY").is_some_and(|d| d.starts_with(':')) {
        v.push(PathBuf::from("/tmp/.X11-unix"));
        if let Some(x) = env("XAUTHORITY").filter(|x| !x.is_empty()) {
            v.push(PathBuf::from(x));
        }
    }
    v
}

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

/// Host directories that a box never sees: it has its own, in its layer.
pub const PRIVATE_DIRS: [&str; 2] = ["/tmp", "/var/tmp"];

/// Host directories replaced by fresh kernel filesystems inside the box.
pub const SPECIAL_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The lower base of one overlay, under the box's versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Base {
    /// The host directory at the same path.
    Host,
    /// Rootless, the root: a skeleton of the host directories the kernel will
    /// not take as lower layers in a user namespace because host mounts lie
    /// below them (see `place_rootless`).
    Skeleton {
        /// Its entries, parents before children, as paths relative to `/`.
        entries: Vec<SkeletonEntry>,
    },
    /// Nothing of the host: the box's own directory (`/tmp`, `/var/tmp`).
    Empty,
    /// Cannot be overlaid: the host directory bound read-only.
    ReadOnly {
        /// Why.
        reason: String,
    },
}

/// One entry of a skeleton directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkeletonEntry {
    /// Its path relative to the skeleton's root.
    pub name: PathBuf,
    /// What it is.
    #[serde(flatten)]
    pub kind: SkeletonKind,
}

/// What a skeleton entry is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SkeletonKind {
    /// A directory: something is mounted on it, or it is empty on the host.
    Dir {
        /// Its host mode.
        mode: u32,
        /// Its host owner.
        uid: u32,
        /// Its host group.
        gid: u32,
    },
    /// A symlink, recreated with the same target.
    Symlink {
        /// The link's target.
        target: PathBuf,
    },
    /// A file (or fifo) bound read-only from the host.
    File,
    /// A socket: an empty placeholder, never the host's socket. A read-only
    /// bind of a socket still lets the box connect to its listener (a
    /// bind-mounted docker.sock would hand it root on the host).
    Socket,
}

/// One overlay (or read-only view) of the box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerMount {
    /// Where it is seen inside the box (and, for `Base::Host`, the host path).
    pub path: PathBuf,
    /// The box's frozen layers for this path, newest first.
    pub versions: Vec<PathBuf>,
    /// The lowest layer.
    pub base: Base,
    /// Host paths below `path` (relative to it) that the box must not see:
    /// whited out in a layer between the box's versions and the host's
    /// directory, so they stay hidden should they appear while the box runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<PathBuf>,
}

impl LayerMount {
    /// The path of this layer's upper relative to the live layer's root.
    pub fn upper_rel(&self) -> PathBuf {
        rel(&self.path)
    }
}

/// Everything a run needs, resolved: printed by `cowl run --dry-run --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The box name and hostname.
    pub box_name: String,
    /// Identity mapping.
    pub mode: Mode,
    /// Network policy.
    pub net: NetMode,
    /// The command.
    pub command: Vec<String>,
    /// Working directory inside, when it exists there.
    pub cwd: PathBuf,
    /// What the app's fsyncs promise.
    pub durability: Durability,
    /// The box directory in the store.
    pub box_dir: PathBuf,
    /// Paths the box cannot read: the store, and the policy's hidden paths,
    /// as given and resolved on the host (symlinks followed, existing or not).
    pub hidden: Vec<PathBuf>,
    /// Hidden paths that no overlay's whiteouts hide (below a read-only
    /// view), and sockets bound onto files: covered with an empty mount at
    /// start wherever the box would see them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub covered: Vec<PathBuf>,
    /// System calls allowed back through the seccomp filter.
    pub allow_syscalls: Vec<String>,
    /// The Landlock domain.
    pub landlock: crate::landlock::LandlockPolicy,
    /// Host paths bound read-only at the same place (`--gui` sockets).
    pub binds: Vec<PathBuf>,
    /// In `proxy` network mode: what the proxies let through.
    pub proxy_allow: Vec<crate::proxy::AllowRule>,
    /// The app's environment; not printed (it is the caller's own).
    #[serde(skip)]
    pub env: Vec<(OsString, OsString)>,
    /// Names of the caller's variables the app does not get (credentials).
    pub env_dropped: Vec<String>,
    /// The overlays, shallowest first; the first is `/`.
    pub layers: Vec<LayerMount>,
}

/// A path relative to `/` ("" for the root itself).
pub fn rel(p: &Path) -> PathBuf {
    p.strip_prefix("/")
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

fn depth(p: &Path) -> usize {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

fn is_under_any(p: &Path, roots: &[&str]) -> bool {
    roots.iter().any(|r| p.starts_with(r))
}

/// Resolves a spec against the host.
///
/// * `box_dir`: the box's directory; `store`: the store root, hidden inside.
/// * `versions`: the box's frozen layer roots, newest first.
/// * `mounts`: the host's mount table.
pub fn resolve(
    spec: &Spec,
    box_dir: &Path,
    store: &Path,
    versions: &[PathBuf],
    mounts: &[MountEntry],
) -> Plan {
    let hidden = hidden_paths(store, &spec.hide);
    // Every mount point of the host except the root and the kernel's own
    // trees. Mounts under the store count: they still lock what is above them.
    let points: BTreeSet<PathBuf> = mounts
        .iter()
        .map(|m| m.mount_point.clone())
        .filter(|p| p != Path::new("/") && !is_under_any(p, &SPECIAL_DIRS))
        .collect();
    // A socket bound onto a file is never the host's in the box: a
    // placeholder in a skeleton, and covered wherever a read-only view of a
    // tree would carry it (see SkeletonKind::Socket).
    let sockets: Vec<PathBuf> = points
        .iter()
        .filter(|p| {
            std::fs::symlink_metadata(p)
                .map(|m| m.file_type().is_socket())
                .unwrap_or(false)
        })
        .cloned()
        .collect();
    let mut layers = Vec::new();
    match spec.mode {
        Mode::System => place_privileged(&points, store, &hidden, &mut layers),
        Mode::Rootless => place_rootless(&points, store, &hidden, &mut layers),
    }
    // A private directory below an overlaid one is mounted on top of it.
    for p in PRIVATE_DIRS.map(Path::new) {
        if !layers.iter().any(|l| l.path == p) && p.is_dir() {
            layers.push(layer(p, Base::Empty));
        }
    }
    attach_versions(&mut layers, versions);
    layers.sort_by(|a, b| {
        depth(&a.path)
            .cmp(&depth(&b.path))
            .then_with(|| a.path.cmp(&b.path))
    });
    let mut covered = assign_hidden(&mut layers, &hidden);
    covered.extend(sockets);
    Plan {
        box_name: spec.box_name.clone(),
        mode: spec.mode,
        net: spec.net,
        command: spec.command.clone(),
        cwd: spec.cwd.clone(),
        durability: spec.durability,
        box_dir: box_dir.to_owned(),
        hidden,
        covered,
        allow_syscalls: spec.allow_syscalls.clone(),
        landlock: spec.landlock.clone(),
        binds: spec.binds.clone(),
        proxy_allow: spec.proxy_allow.clone(),
        env: spec.env.clone(),
        env_dropped: spec.env_dropped.clone(),
        layers,
    }
}

/// The store and the policy's hidden paths, each as given (a symlink
/// itself) and as resolved on the host (what it leads to), whether it
/// exists yet or not; none below another.
fn hidden_paths(store: &Path, hide: &[PathBuf]) -> Vec<PathBuf> {
    let mut all: BTreeSet<PathBuf> = BTreeSet::new();
    all.insert(store.to_owned());
    for p in hide.iter().filter(|p| p.is_absolute()) {
        all.insert(normal(p));
        all.insert(resolve_existing(p));
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

/// `p` with symlinks resolved as far as it exists on the host; the rest
/// appended as given.
fn resolve_existing(p: &Path) -> PathBuf {
    let p = normal(p);
    let mut head = p.clone();
    let mut tail = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&head) {
            let mut out = real;
            for t in tail.iter().rev() {
                out.push(t);
            }
            return out;
        }
        match (head.file_name().map(|n| n.to_owned()), head.parent()) {
            (Some(name), Some(parent)) => {
                tail.push(name);
                head = parent.to_owned();
            }
            _ => return p,
        }
    }
}

/// Gives each hidden path to the deepest overlay of a host directory that
/// holds it (to be whited out there); returns those no overlay holds and
/// that are not simply left out of a skeleton: they are covered by a mount.
fn assign_hidden(layers: &mut [LayerMount], hidden: &[PathBuf]) -> Vec<PathBuf> {
    let mut covered = Vec::new();
    for h in hidden {
        let deepest = layers
            .iter_mut()
            .filter(|l| l.path != *h && h.starts_with(&l.path))
            .max_by_key(|l| depth(&l.path));
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

/// Gives each layer the versions that hold something for it, newest first.
/// A version's root is read once; a layer's path is looked at only in the
/// versions whose root has its first component. The root overlay takes a
/// version only if that version has something at the root that no other
/// overlay covers, so a deep history of changes under /home does not stack
/// hundreds of empty lowers on `/`.
fn attach_versions(layers: &mut [LayerMount], versions: &[PathBuf]) {
    let top: BTreeSet<std::ffi::OsString> = layers
        .iter()
        .filter(|l| depth(&l.path) == 1)
        .filter_map(|l| l.path.file_name().map(|n| n.to_owned()))
        .collect();
    let roots: Vec<(PathBuf, BTreeSet<std::ffi::OsString>)> = versions
        .iter()
        .map(|v| {
            let names = std::fs::read_dir(v)
                .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            (v.clone(), names)
        })
        .collect();
    for l in layers.iter_mut() {
        let r = l.upper_rel();
        let first = r.components().next().map(|c| c.as_os_str().to_owned());
        l.versions = roots
            .iter()
            .filter(|(v, names)| match &first {
                None => names.iter().any(|n| !top.contains(n)),
                Some(f) => {
                    names.contains(f)
                        && std::fs::symlink_metadata(v.join(&r))
                            .map(|m| m.is_dir())
                            .unwrap_or(false)
                }
            })
            .map(|(v, _)| v.join(&r))
            .collect();
    }
}

fn layer(path: &Path, base: Base) -> LayerMount {
    LayerMount {
        path: path.to_owned(),
        versions: Vec::new(),
        base,
        hidden: Vec::new(),
    }
}

fn is_hidden(p: &Path, hidden: &[PathBuf]) -> bool {
    hidden.iter().any(|h| p.starts_with(h))
}

/// As real root with the mount namespace made before the user namespace,
/// host mounts are not locked: one overlay of `/`, and one per nested mount.
fn place_privileged(
    points: &BTreeSet<PathBuf>,
    store: &Path,
    hidden: &[PathBuf],
    out: &mut Vec<LayerMount>,
) {
    out.push(layer(Path::new("/"), Base::Host));
    for p in points {
        if is_under_any(p, &PRIVATE_DIRS) || p.starts_with(store) || is_hidden(p, hidden) {
            continue;
        }
        // A file mount point is the root overlay's (until mounts are
        // classified); only directories get an overlay of their own.
        if std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()) {
            continue;
        }
        out.push(layer(p, Base::Host));
    }
}

/// In a user namespace the kernel refuses a lower layer that has mounts
/// below it ("failed to clone lowerpath"). Such directories, from `/` down,
/// become one skeleton tree (empty directories, the same symlinks,
/// placeholders for files bound read-only from the host) under the root
/// overlay, whose upper is the live layer's root: writes directly into them
/// still land in the layer at the same paths. Each directory without mounts
/// below gets its own overlay of the host's, except an empty one, which the
/// skeleton stands for at no cost.
fn place_rootless(
    points: &BTreeSet<PathBuf>,
    store: &Path,
    hidden: &[PathBuf],
    out: &mut Vec<LayerMount>,
) {
    let mut entries = Vec::new();
    skeleton_level(Path::new("/"), points, store, hidden, &mut entries, out);
    for p in PRIVATE_DIRS {
        let p = Path::new(p);
        if p.parent() == Some(Path::new("/")) && !out.iter().any(|l| l.path == p) {
            entries.push(SkeletonEntry {
                name: rel(p),
                kind: SkeletonKind::Dir {
                    mode: 0o1777,
                    uid: 0,
                    gid: 0,
                },
            });
            out.push(layer(p, Base::Empty));
        }
    }
    out.push(layer(Path::new("/"), Base::Skeleton { entries }));
}

fn has_mounts_below(dir: &Path, points: &BTreeSet<PathBuf>) -> bool {
    points
        .range(dir.to_path_buf()..)
        .take_while(|p| p.starts_with(dir))
        .any(|p| p != dir)
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut r| r.next().is_none())
        .unwrap_or(false)
}

fn skeleton_level(
    dir: &Path,
    points: &BTreeSet<PathBuf>,
    store: &Path,
    hidden: &[PathBuf],
    entries: &mut Vec<SkeletonEntry>,
    out: &mut Vec<LayerMount>,
) {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            out.push(layer(
                dir,
                Base::ReadOnly {
                    reason: format!("cannot list it to place the mounts below it: {e}"),
                },
            ));
            return;
        }
    };
    let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        if is_hidden(&path, hidden) {
            // Left out of the skeleton: the box never sees the name.
            continue;
        }
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = md.file_type();
        let kind = if ft.is_symlink() {
            match std::fs::read_link(&path) {
                Ok(target) => SkeletonKind::Symlink { target },
                Err(_) => continue,
            }
        } else if ft.is_dir() {
            SkeletonKind::Dir {
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
            }
        } else if ft.is_socket() {
            SkeletonKind::Socket
        } else if ft.is_file() || ft.is_fifo() {
            SkeletonKind::File
        } else {
            continue;
        };
        let is_dir = matches!(kind, SkeletonKind::Dir { .. });
        entries.push(SkeletonEntry {
            name: rel(&path),
            kind,
        });
        if !is_dir {
            continue;
        }
        let p = path.as_path();
        if SPECIAL_DIRS.iter().any(|s| Path::new(s) == p) || p == store {
            // Mounted fresh by the sandbox, or masked.
        } else if PRIVATE_DIRS.iter().any(|s| Path::new(s) == p) {
            out.push(layer(p, Base::Empty));
        } else if has_mounts_below(p, points) {
            skeleton_level(p, points, store, hidden, entries, out);
        } else if points.contains(p) || !is_empty_dir(p) {
            out.push(layer(p, Base::Host));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mode: Mode) -> Spec {
        Spec {
            box_name: "t".into(),
            command: vec!["true".into()],
            mode,
            net: NetMode::None,
            cwd: "/".into(),
            durability: Durability::Volatile,
            hide: Vec::new(),
            allow_syscalls: Vec::new(),
            landlock: crate::landlock::LandlockPolicy {
                scope: true,
                ports: None,
            },
            binds: Vec::new(),
            proxy_allow: Vec::new(),
            env: Vec::new(),
            env_dropped: Vec::new(),
        }
    }

    fn mounts(points: &[&str]) -> Vec<MountEntry> {
        points
            .iter()
            .map(|p| MountEntry {
                mount_point: p.into(),
                fstype: "ext4".into(),
            })
            .collect()
    }

    #[test]
    fn system_mode_is_one_overlay_of_root_plus_each_nested_mount() {
        let m = mounts(&[
            "/",
            "/proc",
            "/proc/sys/fs/binfmt_misc",
            "/boot",
            "/boot/efi",
            "/tmp/x",
            "/store/a",
        ]);
        let plan = resolve(
            &spec(Mode::System),
            Path::new("/store/boxes/t"),
            Path::new("/store"),
            &[],
            &m,
        );
        let paths: Vec<_> = plan
            .layers
            .iter()
            .map(|l| l.path.to_str().unwrap_or(""))
            .collect();
        assert_eq!(paths, ["/", "/boot", "/tmp", "/boot/efi", "/var/tmp"]);
        assert_eq!(plan.layers[0].base, Base::Host);
        assert_eq!(plan.layers[2].base, Base::Empty);
    }

    #[test]
    fn rootless_root_is_a_skeleton_and_leaves_are_host_overlays() {
        let m = mounts(&["/", "/proc", "/dev", "/sys"]);
        let plan = resolve(
            &spec(Mode::Rootless),
            Path::new("/nonexistent/b"),
            Path::new("/nonexistent"),
            &[],
            &m,
        );
        assert_eq!(plan.layers[0].path, Path::new("/"));
        assert!(matches!(plan.layers[0].base, Base::Skeleton { .. }));
        let usr = plan.layers.iter().find(|l| l.path == Path::new("/usr"));
        assert_eq!(usr.map(|l| &l.base), Some(&Base::Host));
        let tmp = plan.layers.iter().find(|l| l.path == Path::new("/tmp"));
        assert_eq!(tmp.map(|l| &l.base), Some(&Base::Empty));
        assert!(!plan.layers.iter().any(|l| l.path == Path::new("/proc")));
    }
}
