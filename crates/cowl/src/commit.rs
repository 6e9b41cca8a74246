//! `cowl commit`: apply a box's changes to the host, safely.
//!
//! * The box cannot move anything under our feet: a stopped box is locked,
//!   a running one is frozen (every process stopped) for the duration.
//! * Paths are resolved without following symlinks, on both sides
//!   (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, then `*at` calls
//!   on the parent directory), so a box cannot make a commit write outside
//!   its target (CVE-2018-15664).
//! * Each path is applied atomically: a temporary entry beside the target,
//!   fsynced, renamed (or exchanged) over it.
//! * A host path that changed since the box recorded its change is a
//!   conflict: nothing is applied unless --force.
//! * Committed paths leave the box (a version with a cut, see
//!   `cowl_store::cut`), so the box sees the host's copy from then on.

use crate::cli::CommitArgs;
use crate::common::{box_name, open_store, usage};
use crate::freeze::Still;
use crate::versions::BoxLayout;
use anyhow::{bail, Context, Result};
use cowl_sandbox::sys;
use cowl_store::baseline::{self, HostState};
use cowl_store::diff::{diff_stacks, layer_paths, Change, ChangeKind, DiffRules};
use cowl_store::layer::EntryKind;
use cowl_store::quote;
use cowl_store::stack::Stack;
use cowl_store::{history, BoxDir};
use libc::{RENAME_EXCHANGE, RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize)]
struct Planned {
    path: PathBuf,
    change: ChangeKind,
    kind: EntryKind,
    /// Whether it leaves the box once applied.
    leaves_box: bool,
}

#[derive(Debug, Serialize)]
struct Conflict {
    path: PathBuf,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Report {
    dry_run: bool,
    /// What `cowl scan`'s rules flag (high or worse) in what would be applied.
    risky: Vec<cowl_store::scan::Finding>,
    applied: Vec<Planned>,
    skipped: Vec<Conflict>,
    conflicts: Vec<Conflict>,
    version: Option<u64>,
}

pub fn commit(a: CommitArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    if a.paths.is_empty() && !a.all {
        return Err(usage(format!(
            "name the paths to commit (`cowl diff {name}` lists the changes), or pass --all"
        )));
    }
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let wanted: Vec<PathBuf> = a
        .paths
        .iter()
        .map(|p| normalize(&cwd.join(p)))
        .collect::<Result<_>>()?;
    let store = open_store()?;
    let b = store.open_box(&name)?.recover()?;
    let layout = BoxLayout::of(&store, &b)?;

    // Nothing of the box may move while we read it and write the host.
    let still = Still::hold(&b, "commit")?;
    let running = still.running();
    let _ops = b.ops_lock(true)?;
    history::recover(&b)?;

    let upper = b.upper();
    let versions = b.version_layers()?;
    let mut layers = versions.clone();
    if upper.is_dir() {
        layers.insert(0, upper.clone());
    }
    let roots: Vec<&Path> = layers.iter().map(PathBuf::as_path).collect();
    let _opened = cowl_store::layer::open_for_reading(&b.pending_dir(), &roots);
    let private = layout.with(|l| l.private.to_vec());
    let changes = layout.with(|l| {
        let mut cands = BTreeSet::new();
        for layer in &layers {
            layer_paths(layer, &mut cands);
        }
        let host = Some(Path::new("/"));
        let from = Stack::new(Vec::new(), host, l.private);
        let to = Stack::new(layers.clone(), host, l.private);
        diff_stacks(
            &from,
            &to,
            cands,
            &DiffRules {
                structural: l.structural,
            },
        )
    });

    // What to apply: the named paths and what is below them; the box's
    // own /tmp and /var/tmp only when named.
    let is_private = |p: &Path| {
        private
            .iter()
            .any(|d| p.strip_prefix("/").is_ok_and(|r| r.starts_with(d)))
    };
    let mut selected: Vec<&Change> = changes
        .iter()
        .filter(|c| {
            if wanted.is_empty() {
                !is_private(&c.path)
            } else {
                wanted.iter().any(|w| c.path.starts_with(w))
            }
        })
        .collect();
    for w in &wanted {
        if !changes.iter().any(|c| c.path.starts_with(w)) {
            bail!(
                "box {name} has no change at or under {} (`cowl diff {name}` lists them)",
                quote::path(w)
            );
        }
    }
    // New directories on the way to a selected path come along.
    let mut extra = Vec::new();
    for c in &selected {
        for anc in c.path.ancestors().skip(1) {
            if let Some(d) = changes
                .iter()
                .find(|x| x.path == anc && x.change == ChangeKind::Added && x.kind.is_dir())
            {
                extra.push(d);
            }
        }
    }
    selected.extend(extra);
    selected.sort_by(|x, y| x.path.as_os_str().cmp(y.path.as_os_str()));
    selected.dedup_by(|x, y| x.path == y.path);

    // Conflicts: the host changed since the box recorded its change.
    let base = baseline::load(&b)?;
    // A running box's newest changes are recorded only when its run ends:
    // for them, anything the host changed since the run began.
    let running_since = match (running, b.running()?) {
        (true, Some(state)) => Some(state.started as i128 * 1_000_000_000),
        _ => None,
    };
    let mut conflicts = Vec::new();
    let chosen: BTreeSet<&Path> = selected.iter().map(|c| c.path.as_path()).collect();
    for c in &selected {
        let rel = rel_of(&c.path);
        // The directory it goes into must still be one (unless the commit
        // makes it).
        if let Some(parent) = c.path.parent().filter(|p| !chosen.contains(p)) {
            if !std::fs::symlink_metadata(parent).is_ok_and(|m| m.is_dir()) {
                conflicts.push(Conflict {
                    path: c.path.clone(),
                    reason: format!("{} is no longer a directory on the host", parent.display()),
                });
                continue;
            }
        }
        // A path recorded with no entry of its own (below a directory the
        // box replaced): its nearest recorded directory says since when.
        let since = running_since.or_else(|| {
            rel.ancestors()
                .skip(1)
                .find_map(|a| base.get(&a.to_string_lossy().into_owned()))
                .map(|h| h.since_ns)
        });
        if let Some(reason) = conflict(c, base.get(&rel.to_string_lossy().into_owned()), since) {
            conflicts.push(Conflict {
                path: c.path.clone(),
                reason,
            });
        }
    }
    let risky = risky(&selected, &layers);
    let mut report = Report {
        risky,
        dry_run: a.dry_run,
        applied: Vec::new(),
        skipped: Vec::new(),
        conflicts,
        version: None,
    };
    if !report.conflicts.is_empty() && !a.force {
        print(&report, a.json, name.as_str())?;
        eprintln!(
            "cowl: nothing was committed: {} path(s) may hold host changes the commit would overwrite (listed with !); check them, then `cowl commit --force` applies anyway",
            report.conflicts.len()
        );
        return Ok(1);
    }

    if !report.risky.is_empty() && !a.allow_risky && !a.dry_run {
        print(&report, a.json, name.as_str())?;
        eprintln!(
            "cowl: nothing was committed: {} change(s) would put persistence or privilege on the host (listed with ⚠; `cowl scan {name}` explains the rules); review them, then `cowl commit --allow-risky` applies anyway",
            report.risky.len()
        );
        return Ok(1);
    }

    // A path leaves the box when the host shows through every directory
    // above it in the box; else (below a directory the box replaced) the
    // box keeps its copy, which is now the host's too. The box's own /tmp
    // and /var/tmp never show the host, and a running box keeps what its
    // live layer holds until it stops.
    let reaches_host = |rel: &Path| {
        rel.ancestors()
            .skip(1)
            .filter(|x| !x.as_os_str().is_empty())
            .all(|anc| {
                layers.iter().all(|l| match EntryKind::of(&l.join(anc)) {
                    None | Some((EntryKind::Dir, _)) => true,
                    Some(_) => false,
                })
            })
    };
    // If cowl dies mid-way, the next operation on the box removes the
    // temporary entries it left beside its targets.
    let intent = if a.dry_run {
        None
    } else {
        let dirs: BTreeSet<PathBuf> = selected
            .iter()
            .filter_map(|c| c.path.parent().map(Path::to_path_buf))
            .collect();
        Some(history::note_commit_intent(
            &b,
            &format!(".cowl-commit-{}-", std::process::id()),
            &dirs.into_iter().collect::<Vec<_>>(),
        )?)
    };
    let root = sys::openat(None, Path::new("/"), libc::O_DIRECTORY | libc::O_RDONLY, 0)
        .context("cannot open /")?;
    let named: BTreeSet<&Path> = selected
        .iter()
        .filter(|c| wanted.is_empty() || wanted.iter().any(|w| c.path.starts_with(w)))
        .map(|c| c.path.as_path())
        .collect();
    let mut not_applied: Vec<PathBuf> = Vec::new();
    let mut failure = None;
    for c in &selected {
        let rel = rel_of(&c.path);
        let leaves = reaches_host(&rel)
            && !is_private(&c.path)
            && !(running && upper.join(&rel).symlink_metadata().is_ok())
            && named.contains(c.path.as_path());
        let planned = Planned {
            path: c.path.clone(),
            change: c.change,
            kind: c.kind,
            leaves_box: leaves,
        };
        if !a.dry_run {
            if let Err(e) = apply(&root, c, &rel, &layers) {
                not_applied.push(c.path.clone());
                match e.downcast::<Skip>() {
                    Ok(Skip(reason)) => {
                        report.skipped.push(Conflict {
                            path: c.path.clone(),
                            reason,
                        });
                        continue;
                    }
                    Err(e) => {
                        failure = Some(e.context(format!(
                            "cannot commit {} ({} path(s) before it were committed, the rest not)",
                            quote::path(&c.path),
                            report.applied.len()
                        )));
                        break;
                    }
                }
            }
        }
        report.applied.push(planned);
    }
    if failure.is_some() {
        // Nothing after the failure was applied.
        let done: BTreeSet<&Path> = report.applied.iter().map(|p| p.path.as_path()).collect();
        not_applied.extend(
            selected
                .iter()
                .filter(|c| !done.contains(c.path.as_path()))
                .map(|c| c.path.clone()),
        );
    }
    // Cut what left the box: a directory only if nothing at or below it
    // stayed behind.
    let mut cut: BTreeSet<PathBuf> = BTreeSet::new();
    for p in report.applied.iter().filter(|p| p.leaves_box) {
        let whole = !not_applied.iter().any(|n| n.starts_with(&p.path));
        if whole && !cut.iter().any(|c: &PathBuf| rel_of(&p.path).starts_with(c)) {
            cut.insert(rel_of(&p.path));
        }
    }
    if !a.dry_run && !report.applied.is_empty() {
        let applied: Vec<PathBuf> = report.applied.iter().map(|p| p.path.clone()).collect();
        let v = finish(&b, &upper, running, &cut, &applied);
        match (v, failure) {
            (Ok(v), None) => report.version = Some(v),
            (Ok(_), Some(e)) => return Err(e),
            (Err(e), None) => return Err(e),
            (Err(e2), Some(e)) => {
                return Err(e.context(format!("and the commit was not recorded: {e2:#}")))
            }
        }
    } else if let Some(e) = failure {
        return Err(e);
    }
    if let Some(p) = intent {
        let _ = std::fs::remove_file(p);
    }
    print(&report, a.json, name.as_str())?;
    Ok(if report.skipped.is_empty() { 0 } else { 1 })
}

/// What the scan rules flag, high or worse, among the changes to apply.
fn risky(selected: &[&Change], layers: &[PathBuf]) -> Vec<cowl_store::scan::Finding> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let cx = cowl_store::scan::Context::of_host(home.as_deref());
    let mut by_layer: std::collections::BTreeMap<&Path, Vec<cowl_store::manifest::Entry>> =
        Default::default();
    for c in selected {
        let Some(after) = &c.after else { continue };
        let rel = rel_of(&c.path);
        let Some(layer) = layers.iter().find(|l| after == &l.join(&rel)) else {
            continue;
        };
        let Some((kind, md)) = EntryKind::of(after) else {
            continue;
        };
        if let Ok(e) = cowl_store::manifest::entry(after, &rel, kind, &md) {
            by_layer.entry(layer.as_path()).or_default().push(e);
        }
    }
    by_layer
        .into_iter()
        .flat_map(|(layer, entries)| cowl_store::scan::scan_entries(&entries, layer, &cx))
        .filter(|f| f.severity >= cowl_store::scan::Severity::High)
        .collect()
}

/// Why committing `c` could overwrite a host change, if it could.
/// `then`: the host state recorded when the box changed the path;
/// `fallback_since`: for a path not recorded (a running box's newest
/// change, or a path below a directory the box replaced), since when the
/// box may have changed it.
fn conflict(c: &Change, then: Option<&HostState>, fallback_since: Option<i128>) -> Option<String> {
    let now = HostState::of(&c.path);
    let since = match then {
        Some(then) => {
            if let Some(r) = then.changed(&now) {
                return Some(format!("the host's copy changed since the box changed it: {r}"));
            }
            then.since_ns
        }
        None => match fallback_since {
            Some(t) => t,
            // Creating what is still absent overwrites nothing.
            None if now.kind == "missing" => return None,
            None => {
                return Some(
                    "cowl has no record of the host's copy from when the box changed it (a box from an older cowl, or pulled from a mirror)".into(),
                )
            }
        },
    };
    if since == 0 {
        return None;
    }
    // A directory the commit removes or replaces: anything below it.
    let deep = now.kind == "dir"
        && (c.change == ChangeKind::Deleted || c.change == ChangeKind::TypeChanged);
    if deep {
        return baseline::changed_below(&c.path, since, 100_000).map(|p| {
            format!(
                "{} changed on the host after the box changed this",
                p.display()
            )
        });
    }
    match baseline::ctime_ns(&c.path) {
        Some(t) if t > since => Some("it changed on the host after the box changed it".into()),
        _ => None,
    }
}

/// Records the commit (a version with the cut), takes the cut paths out of
/// the live layer of a stopped box, and brings the run cache up to date.
/// The record of host states: cut paths are forgotten; what was applied
/// but stays in the box is recorded afresh (the host now holds the box's
/// copy), and so are the directories the commit wrote into.
fn finish(
    b: &BoxDir,
    upper: &Path,
    running: bool,
    cut: &BTreeSet<PathBuf>,
    applied: &[PathBuf],
) -> Result<u64> {
    // The version first: if cowl dies after it, the live layer still holds
    // copies equal to the host's, which is harmless.
    let n = history::record_commit(b, cut, applied.len())?;
    if !running {
        for rel in cut {
            cowl_store::boxdir::remove_beneath(upper, rel).with_context(|| {
                format!(
                    "cannot remove {} from the live layer",
                    quote::path(&upper.join(rel))
                )
            })?;
        }
        cowl_store::cache::refresh(b)?;
    }
    let mut base = baseline::load(b)?;
    base.retain(|k, _| !cut.iter().any(|c| Path::new(k).starts_with(c)));
    let now = baseline::now_ns();
    for p in applied {
        let rel = rel_of(p);
        let mut keys = vec![rel.clone()];
        keys.extend(
            rel.ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .map(Path::to_path_buf),
        );
        for k in keys {
            let key = k.to_string_lossy().into_owned();
            let in_cut = cut.iter().any(|c| k.starts_with(c));
            if !in_cut && (k == rel || base.contains_key(&key)) {
                base.insert(
                    key,
                    HostState {
                        since_ns: now,
                        ..HostState::of(&Path::new("/").join(&k))
                    },
                );
            }
        }
    }
    baseline::save(b, &base)?;
    Ok(n)
}

fn rel_of(p: &Path) -> PathBuf {
    p.strip_prefix("/").unwrap_or(p).to_path_buf()
}

/// `.` and `..` resolved lexically (the path need not exist on the host).
fn normalize(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    if out == Path::new("/") {
        return Err(usage(
            "commit the box's paths, not / (pass --all for every change)",
        ));
    }
    Ok(out)
}

/// A path not applied, and why.
#[derive(Debug)]
struct Skip(String);

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skip {}

/// The parent directory of `rel` beneath `root`, reached without following
/// any symlink, and the last component.
fn parent_of(root: &OwnedFd, rel: &Path) -> Result<(OwnedFd, PathBuf)> {
    let name = rel
        .file_name()
        .map(PathBuf::from)
        .context("a path without a name")?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    let fd = if parent.as_os_str().is_empty() {
        sys::openat(
            Some(root.as_raw_fd()),
            Path::new("."),
            libc::O_DIRECTORY | libc::O_RDONLY,
            0,
        )
    } else {
        sys::openat2(
            root.as_raw_fd(),
            parent,
            (libc::O_DIRECTORY | libc::O_RDONLY) as u64,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
        )
    };
    match fd {
        Ok(fd) => Ok((fd, name)),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(Skip(
            "a directory above it is a symlink (commit that directory first): not followed".into(),
        )
        .into()),
        Err(e)
            if e.raw_os_error() == Some(libc::ENOENT)
                || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            Err(Skip("its parent directory is not on the host (commit it too)".into()).into())
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "cannot open {}",
            quote::path(&Path::new("/").join(parent))
        ))),
    }
}

/// The layer that shows `rel` (its change's `after`), opened beneath that
/// layer's root without following symlinks.
fn source(c: &Change, rel: &Path, layers: &[PathBuf]) -> Result<(PathBuf, OwnedFd)> {
    let real = c.after.as_ref().context("no source for the change")?;
    let layer = layers
        .iter()
        .find(|l| real == &l.join(rel))
        .context("the change's source is in no layer")?;
    let lroot = sys::openat(None, layer, libc::O_DIRECTORY | libc::O_RDONLY, 0)
        .with_context(|| format!("cannot open {}", quote::path(layer)))?;
    let fd = sys::openat2(
        lroot.as_raw_fd(),
        rel,
        (libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK) as u64,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
    );
    let fd = match fd {
        Ok(fd) => fd,
        // A symlink itself: opened as a path only.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => match sys::openat2(
            lroot.as_raw_fd(),
            rel,
            (libc::O_PATH | libc::O_NOFOLLOW) as u64,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
        ) {
            Ok(fd) => fd,
            Err(_) => return Err(Skip("it changed in the box while being committed".into()).into()),
        },
        // Gone or changed since the diff (only a syscall the box had in
        // progress when frozen can do that).
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENOTDIR | libc::EXDEV)
            ) =>
        {
            return Err(Skip("it changed in the box while being committed".into()).into())
        }
        // Something else is there now than the diff saw (a directory the
        // box was removing when frozen is now a whiteout, which cannot be
        // opened: ENXIO).
        Err(_) if EntryKind::of(real).map(|(k, _)| k) != Some(c.kind) => {
            return Err(Skip("it changed in the box while being committed".into()).into())
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", quote::path(real))))
        }
    };
    Ok((layer.clone(), fd))
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn temp_name() -> PathBuf {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    PathBuf::from(format!(".cowl-commit-{}-{n}", std::process::id()))
}

/// What is at `name` in `dir` on the host: its mode, or `None`.
fn host_mode(dir: &OwnedFd, name: &Path) -> Result<Option<u32>> {
    match sys::lstatat(dir.as_raw_fd(), name) {
        Ok(st) => Ok(Some(st.0)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_dir_mode(m: u32) -> bool {
    m & libc::S_IFMT == libc::S_IFDIR
}

/// Removes a host tree (the entry is in `dir`), never following symlinks.
fn remove_at(dir: &OwnedFd, name: &Path) -> Result<()> {
    match host_mode(dir, name)? {
        None => Ok(()),
        Some(m) if is_dir_mode(m) => {
            let p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
            std::fs::remove_dir_all(&p)
                .with_context(|| format!("cannot remove {}", quote::path(name)))
        }
        Some(_) => Ok(sys::unlinkat(dir.as_raw_fd(), name, false)?),
    }
}

/// Puts the temporary entry `tmp` in place of `name`: a rename over a file
/// or symlink, an exchange with a directory (then removed).
fn put_in_place(dir: &OwnedFd, tmp: &Path, name: &Path) -> Result<()> {
    let d = dir.as_raw_fd();
    match host_mode(dir, name)? {
        Some(m) if is_dir_mode(m) => {
            sys::renameat2(d, tmp, d, name, RENAME_EXCHANGE)?;
            remove_at(dir, tmp)
        }
        _ => Ok(sys::renameat2(d, tmp, d, name, 0)?),
    }
}

fn set_owner_mode_times(fd: RawFd, md: &std::fs::Metadata, times: bool) -> Result<()> {
    if sys::geteuid() == 0 {
        sys::fchown(fd, md.uid(), md.gid())?;
    }
    // Privilege bits never leave a box.
    sys::fchmod(fd, md.mode() & 0o1777)?;
    if times {
        sys::futimens(fd, md.mtime(), md.mtime_nsec())?;
    }
    Ok(())
}

fn copy_user_xattrs(src: &File, dst: &File) {
    use xattr::FileExt;
    let Ok(names) = src.list_xattr() else { return };
    for n in names {
        let s = n.to_string_lossy();
        if !s.starts_with("user.") || s.starts_with("user.overlay.") {
            continue;
        }
        if let Ok(Some(v)) = src.get_xattr(&n) {
            let _ = dst.set_xattr(&n, &v);
        }
    }
}

fn apply(root: &OwnedFd, c: &Change, rel: &Path, layers: &[PathBuf]) -> Result<()> {
    let (dir, name) = parent_of(root, rel)?;
    let d = dir.as_raw_fd();
    if c.change == ChangeKind::Deleted {
        return remove_at(&dir, &name);
    }
    let (_, src) = source(c, rel, layers)?;
    let src = File::from(src);
    let md = src.metadata()?;
    let tmp = temp_name();
    match c.kind {
        EntryKind::File => {
            let out = sys::openat(
                Some(d),
                &tmp,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                0o600,
            )?;
            let mut out = File::from(out);
            let mut input = &src;
            let r = (|| -> Result<()> {
                std::io::copy(&mut input, &mut out)?;
                copy_user_xattrs(&src, &out);
                set_owner_mode_times(out.as_raw_fd(), &md, true)?;
                out.sync_all()?;
                cowl_store::fault::point("commit:temp-written");
                put_in_place(&dir, &tmp, &name)
            })();
            if r.is_err() {
                let _ = sys::unlinkat(d, &tmp, false);
            }
            r?;
        }
        EntryKind::Symlink => {
            let target = sys::readlinkat(src.as_raw_fd(), Path::new(""))?;
            sys::symlinkat(&target, d, &tmp)?;
            if let Err(e) = put_in_place(&dir, &tmp, &name) {
                let _ = sys::unlinkat(d, &tmp, false);
                return Err(e);
            }
        }
        EntryKind::Fifo => {
            sys::mkfifoat(d, &tmp, md.mode() & 0o777)?;
            if let Err(e) = put_in_place(&dir, &tmp, &name) {
                let _ = sys::unlinkat(d, &tmp, false);
                return Err(e);
            }
        }
        EntryKind::Dir | EntryKind::OpaqueDir => {
            match host_mode(&dir, &name)? {
                Some(m) if is_dir_mode(m) => {}
                None => sys::mkdirat(d, &name, 0o700)?,
                Some(_) => {
                    // A file or symlink becomes a directory.
                    sys::mkdirat(d, &tmp, 0o700)?;
                    sys::renameat2(d, &tmp, d, &name, RENAME_EXCHANGE)?;
                    sys::unlinkat(d, &tmp, false)?;
                }
            }
            let fd = sys::openat(
                Some(d),
                &name,
                libc::O_DIRECTORY | libc::O_RDONLY | libc::O_NOFOLLOW,
                0,
            )?;
            set_owner_mode_times(fd.as_raw_fd(), &md, false)?;
        }
        other => {
            return Err(Skip(format!(
                "a {} is never committed to the host",
                other.as_str()
            ))
            .into())
        }
    }
    let _ = sys::fsync(d);
    Ok(())
}

/// The report: JSON with the exact names, or one line per path for a
/// human, where names the box chose are quoted (and so are reasons and
/// details, which may hold one).
fn print(r: &Report, json: bool, name: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    for c in &r.conflicts {
        println!("! {}  {}", quote::path(&c.path), quote::text(&c.reason));
    }
    for f in &r.risky {
        println!(
            "⚠ {}  {} ({}): {}",
            quote::path(&f.path),
            f.rule,
            f.severity.as_str(),
            quote::text(&f.detail)
        );
    }
    for p in &r.applied {
        println!("{} {}", p.change.letter(), quote::path(&p.path));
    }
    for s in &r.skipped {
        println!("- {}  not committed: {}", quote::path(&s.path), s.reason);
    }
    if r.dry_run {
        eprintln!(
            "cowl: dry run: {} change(s) would be committed from box {name}",
            r.applied.len()
        );
    } else if let Some(v) = r.version {
        eprintln!(
            "cowl: committed {} change(s) from box {name} to the host (version {v})",
            r.applied.len()
        );
    }
    Ok(())
}
