//! From what the user asked for (`Spec`, plain data) to what will be mounted
//! (`Plan`, resolved against the host's filesystem and mount table).
//!
//! Resolving reads directories and the mount table but changes nothing, so
//! `cowl run --dry-run --json` can print exactly what a run would do.

use crate::mountinfo::MountEntry;
use crate::policy::{Durability, Mode, NetMode};
use crate::view::{depth, is_under_any, layer};
pub use crate::view::{
    rel, Base, LayerMount, SkeletonEntry, SkeletonKind, PRIVATE_DIRS, SPECIAL_DIRS,
};
use serde::Serialize;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

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

/// The box's directories a run uses, as the store names them: `dir` is the
/// box's directory; the others are relative to it and opened beneath it
/// without following a symlink (a box tampered with is refused).
#[derive(Debug, Clone, Serialize)]
pub struct RunPaths {
    /// The box's directory.
    pub dir: PathBuf,
    /// The live layer's directory (holds `upper` and `work`).
    pub live: PathBuf,
    /// The live layer: the root overlay's upper.
    pub upper: PathBuf,
    /// Where each run gets fresh overlay work directories.
    pub work: PathBuf,
    /// The mount point of the run's scratch filesystem (skeletons, the new root).
    pub scratch: PathBuf,
    /// The network log (absolute).
    pub netlog: PathBuf,
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
    /// The box's directories the run uses.
    pub paths: RunPaths,
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
    /// The host's mounts, each with its class: how the box shows it.
    pub mounts: Vec<crate::hostmounts::HostMount>,
    /// The overlays and binds, shallowest first; the first is `/`.
    pub layers: Vec<LayerMount>,
}

/// Resolves a spec against the host.
///
/// * `paths`: the box's directories; `store`: the store root, hidden inside.
/// * `versions`: the box's frozen layer roots, newest first.
/// * `mounts`: the host's mount table.
pub fn resolve(
    spec: &Spec,
    paths: &RunPaths,
    store: &Path,
    versions: &[PathBuf],
    mounts: &[MountEntry],
) -> Plan {
    let mut hidden = crate::hidden::hidden_paths(store, &spec.hide);
    // One read of the mount table: the mounts a process sees, each classed
    // by what it is; a second path to a hidden one is hidden too.
    crate::trace::mark("plan: start");
    let visible = crate::mountinfo::visible(mounts);
    crate::trace::mark("plan: visible mounts");
    let skip = |p: &Path| is_under_any(p, &SPECIAL_DIRS);
    // SAFETY: getuid always succeeds.
    let uid = unsafe { libc::getuid() };
    let (classed, aliases) = crate::hostmounts::classify(&visible, &hidden, uid, &skip);
    crate::trace::mark("plan: classified");
    let store_aliases: Vec<PathBuf> = aliases
        .iter()
        .filter(|a| !hidden.contains(a))
        .cloned()
        .collect();
    hidden.extend(store_aliases);
    let hidden = crate::hidden::hidden_paths(store, &hidden);
    let stores: Vec<PathBuf> = std::iter::once(store.to_owned())
        .chain(crate::hostmounts::aliases_of(&visible, store))
        .collect();
    let mut layers = match spec.mode {
        Mode::System => crate::placement::privileged(&classed, &stores, &hidden),
        Mode::Rootless => crate::placement::rootless(&classed, &stores, &hidden),
    };
    crate::trace::mark("plan: placed");
    // A private directory below an overlaid one is mounted on top of it.
    for p in PRIVATE_DIRS.map(Path::new) {
        if !layers.iter().any(|l| l.path == p) && p.is_dir() {
            layers.push(layer(p, Base::Empty));
        }
    }
    for l in layers.iter_mut().filter(|l| l.base == Base::Host) {
        l.holds_store = stores.iter().any(|s| s.starts_with(&l.path));
    }
    attach_versions(&mut layers, versions);
    layers.sort_by(|a, b| {
        depth(&a.path)
            .cmp(&depth(&b.path))
            .then_with(|| a.path.cmp(&b.path))
    });
    crate::trace::mark("plan: versions attached");
    let mut covered = crate::hidden::assign_hidden(&mut layers, &hidden);
    // A socket bound onto a file is never the host's in the box: a
    // placeholder in a skeleton, left out otherwise, and covered wherever a
    // read-only bind of a tree carries it.
    covered.extend(
        classed
            .iter()
            .filter(|m| m.class == crate::hostmounts::MountClass::Socket)
            .map(|m| m.path.clone()),
    );
    Plan {
        box_name: spec.box_name.clone(),
        mode: spec.mode,
        net: spec.net,
        command: spec.command.clone(),
        cwd: spec.cwd.clone(),
        durability: spec.durability,
        paths: paths.clone(),
        hidden,
        covered,
        allow_syscalls: spec.allow_syscalls.clone(),
        landlock: spec.landlock.clone(),
        binds: spec.binds.clone(),
        proxy_allow: spec.proxy_allow.clone(),
        env: spec.env.clone(),
        env_dropped: spec.env_dropped.clone(),
        mounts: classed,
        layers,
    }
}

/// Gives each layer the versions that hold something for it, newest first.
/// A version's root is read once; a layer's path is looked at only in the
/// versions whose root has its first component. The root overlay takes a
/// version only if that version has something at the root that no other
/// overlay covers, so a deep history of changes under /home does not stack
/// hundreds of empty lowers on `/`.
fn attach_versions(layers: &mut [LayerMount], versions: &[PathBuf]) {
    let layers: Vec<&mut LayerMount> = layers.iter_mut().filter(|l| l.base.is_overlay()).collect();
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
    for l in layers {
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

    fn paths(dir: &Path) -> RunPaths {
        RunPaths {
            dir: dir.to_owned(),
            live: "live".into(),
            upper: "live/upper".into(),
            work: "live/work".into(),
            scratch: "mnt".into(),
            netlog: dir.join("netlog"),
        }
    }

    /// A mount table with `points` as ext4 mounts (ids in order, each on
    /// the root) and the given extra lines.
    fn mounts(points: &[&str]) -> Vec<MountEntry> {
        let mut text = String::from("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n");
        for (i, p) in points.iter().enumerate() {
            let fs = if p.starts_with("/proc") {
                "proc"
            } else {
                "ext4"
            };
            // Mounted on the deepest earlier mount above it.
            let parent = points[..i]
                .iter()
                .enumerate()
                .filter(|(_, q)| Path::new(p).starts_with(q))
                .max_by_key(|(_, q)| q.len())
                .map_or(1, |(j, _)| j + 2);
            text.push_str(&format!(
                "{} {parent} 8:{} / {p} rw - {fs} x rw\n",
                i + 2,
                i + 2
            ));
        }
        crate::mountinfo::parse(&text)
    }

    #[test]
    fn system_mode_is_one_overlay_of_root_plus_each_nested_mount_by_class() {
        // Not under /tmp, which a box has of its own.
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/".into());
        let base = home.join(format!(".cache/cowl-tests/plan-{}", std::process::id()));
        let d = |rel: &str| base.join(rel).display().to_string();
        for dir in ["boot/efi", "iso", "store/a"] {
            let _ = std::fs::create_dir_all(base.join(dir));
        }
        let _ = std::fs::write(base.join("resolv.conf"), "");
        let mut m = mounts(&[
            "/proc",
            "/proc/sys/fs/binfmt_misc",
            &d("boot"),
            &d("boot/efi"),
            "/tmp/x",
            &d("store/a"),
            &d("resolv.conf"),
        ]);
        m.extend(crate::mountinfo::parse(&format!(
            "20 1 7:0 / {} ro - iso9660 /dev/loop0 ro\n",
            d("iso")
        )));
        let plan = resolve(
            &spec(Mode::System),
            &paths(&base.join("store/boxes/t")),
            &base.join("store"),
            &[],
            &m,
        );
        let _ = std::fs::remove_dir_all(&base);
        let got: Vec<(String, Base)> = plan
            .layers
            .iter()
            .map(|l| (l.path.display().to_string(), l.base.clone()))
            .filter(|(p, _)| p.starts_with(base.to_str().unwrap_or("-")) || p == "/")
            .collect();
        assert_eq!(
            got,
            [
                ("/".to_owned(), Base::Host),
                (d("boot"), Base::Host),
                (d("iso"), Base::HostReadOnly),
                (d("resolv.conf"), Base::HostFile),
                (d("boot/efi"), Base::Host),
            ]
        );
        assert!(plan
            .layers
            .iter()
            .any(|l| l.path == Path::new("/tmp") && l.base == Base::Empty));
        assert!(!plan.layers.iter().any(|l| l.path.starts_with("/proc")));
    }

    #[test]
    fn rootless_root_is_a_skeleton_and_leaves_are_host_overlays() {
        let m = mounts(&["/proc", "/dev", "/sys"]);
        let plan = resolve(
            &spec(Mode::Rootless),
            &paths(Path::new("/nonexistent/b")),
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
