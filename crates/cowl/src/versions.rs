//! The version commands: snapshot, log, diff, rollback, squash, verify, gc,
//! and what happens when a run ends (automatic snapshot and retention).

use crate::cli::{
    DiffArgs, GcArgs, LogArgs, PinArgs, RollbackArgs, SnapshotArgs, SquashArgs, VerifyArgs,
};
use crate::common::{box_name, human_bytes, open_store, usage};
use anyhow::{bail, Context, Result};
use cowl_sandbox::mountinfo;
use cowl_sandbox::plan::{self, Plan, Spec};
use cowl_store::diff::{diff_stacks, layer_paths, patch, ChangeKind, DiffRules};
use cowl_store::history::{self, Layout, SnapshotRequest, Version};
use cowl_store::manifest::Made;
use cowl_store::quote;
use cowl_store::squash::{self, Eligible};
use cowl_store::stack::Stack;
use cowl_store::{BoxDir, Store, StoreError};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The box's mount points (from a plan of it) and private directories: what
/// diffs must read as cowl's, not the app's.
pub struct BoxLayout {
    plan: Plan,
    private: Vec<PathBuf>,
}

impl BoxLayout {
    pub fn of(store: &Store, b: &BoxDir) -> Result<BoxLayout> {
        let mounts = mountinfo::read_own().context("cannot read /proc/self/mountinfo")?;
        let spec = Spec {
            box_name: b.name().to_string(),
            command: Vec::new(),
            mode: crate::to_sandbox::mode(b.settings.mode),
            net: crate::to_sandbox::net(b.settings.net),
            cwd: "/".into(),
            durability: crate::to_sandbox::durability(b.settings.durability),
            hide: Vec::new(),
            allow_syscalls: Vec::new(),
            landlock: cowl_sandbox::landlock::LandlockPolicy {
                scope: true,
                ports: None,
            },
            binds: Vec::new(),
            proxy_allow: Vec::new(),
            env: Vec::new(),
            env_dropped: Vec::new(),
        };
        Ok(BoxLayout {
            plan: plan::resolve(
                &spec,
                &crate::to_sandbox::run_paths(b.path()),
                store.root(),
                &[],
                &mounts,
            ),
            private: plan::PRIVATE_DIRS
                .iter()
                .map(|p| plan::rel(Path::new(p)))
                .collect(),
        })
    }

    /// The layout of a plan already resolved for a run.
    pub fn from_plan(plan: Plan) -> BoxLayout {
        BoxLayout {
            plan,
            private: plan::PRIVATE_DIRS
                .iter()
                .map(|p| plan::rel(Path::new(p)))
                .collect(),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&Layout) -> R) -> R {
        let structural = |p: &Path| self.plan.layers.iter().any(|l| l.path.starts_with(p));
        f(&Layout {
            structural: &structural,
            private: &self.private,
        })
    }
}

/// Whether the box's state file names a run whose init still lives (a
/// state file a crash left names a dead or reused pid).
fn live_run(b: &BoxDir) -> bool {
    b.read_state().is_some_and(|s| crate::common::alive(&s))
}

pub fn snapshot(a: SnapshotArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let b = store.open_box(&name)?.recover()?;
    let message = a.message.clone().unwrap_or_else(|| "snapshot".into());
    // A running box's layer changes under our feet: the snapshot is taken
    // the moment its last process exits, never torn. Another holder of the
    // box (a run starting or ending, a pull, a push) is waited for.
    let mut requested: Option<PathBuf> = None;
    let mut said_waiting = false;
    let lock = loop {
        if let Some(lock) = b.try_lock()? {
            if let Some(r) = &requested {
                if !b.withdraw_snapshot_request(r)? {
                    eprintln!(
                        "cowl: box {name} stopped meanwhile and its run's end took the request (`cowl log {name}`)"
                    );
                    return Ok(0);
                }
            }
            break lock;
        }
        if live_run(&b) {
            if requested.is_none() {
                requested = Some(b.request_snapshot(&message, a.pin)?);
            }
            // Still running once the request is there: its end claims it,
            // as it removes the state file before it looks.
            if live_run(&b) {
                eprintln!("cowl: box {name} is running: the snapshot will be taken when it stops");
                return Ok(0);
            }
        } else if !said_waiting {
            eprintln!("cowl: box {name} is busy (another cowl command holds it): waiting");
            said_waiting = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let layout = BoxLayout::of(&store, &b)?;
    let made = layout.with(|l| {
        history::snapshot(
            &b,
            &SnapshotRequest {
                message: &message,
                made: Made::Snapshot,
                pin: a.pin,
                allow_empty: false,
            },
            l,
        )
    })?;
    b.drop_snapshot_requests();
    drop(lock);
    if made.is_some() {
        crate::mirror::after_snapshot(&b);
    }
    match made {
        Some(n) => println!("version {n}"),
        // A run that changed something already made its version: pinning
        // is what is left to do.
        None if a.pin => match history::pin(&b, None, true) {
            Ok(c) => println!(
                "version {} {} (box {name} has no changes since it: nothing new to snapshot)",
                c.version,
                if c.changed {
                    "pinned"
                } else {
                    "was already pinned"
                }
            ),
            Err(StoreError::NoVersions { .. }) => bail!(
                "box {name} has no changes to snapshot and no version to pin: run it (`cowl run {name}`) and snapshot or pin after"
            ),
            Err(e) => return Err(e.into()),
        },
        None => eprintln!(
            "cowl: box {name} has no changes since its newest version: nothing to snapshot"
        ),
    }
    Ok(0)
}

/// `cowl pin` (`pinned`) and `cowl unpin`.
pub fn pin(a: PinArgs, pinned: bool) -> Result<i32> {
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let b = store.open_box(&name)?.recover()?;
    let c = match history::pin(&b, a.version, pinned) {
        // A number the box does not have is a mistake in the command line.
        Err(e @ StoreError::NoSuchVersionOf { .. }) => return Err(usage(e.to_string())),
        other => other?,
    };
    if a.json {
        let v = serde_json::json!({
            "box": name.as_str(),
            "version": c.version,
            "pinned": c.pinned,
            "changed": c.changed,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let what = match (c.pinned, c.changed) {
        (true, true) => "is pinned: squashes and retention keep it",
        (true, false) => "was already pinned",
        (false, true) => "is unpinned: squashes and retention may merge it",
        (false, false) => "was not pinned",
    };
    println!("version {} of box {name} {what}", c.version);
    Ok(0)
}

/// Ends a run through its lease: says which privilege bits the box set
/// were removed (whatever else failed), and pushes the new version when
/// box.toml asks.
pub fn after_run(
    lease: &cowl_store::lease::RunLease,
    layout: &BoxLayout,
    command: &[String],
    code: i32,
    started: i128,
) -> Result<()> {
    let end = layout.with(|l| lease.end(command, code, started, l))?;
    if !end.stripped.is_empty() {
        let shown: Vec<String> = end
            .stripped
            .iter()
            .map(|p| quote::path(p).to_string())
            .collect();
        eprintln!(
            "cowl: the box set setuid, setgid or file capabilities on {} file(s); cowl removed them: {}",
            shown.len(),
            shown.join(", ")
        );
    }
    if end.version? {
        crate::mirror::after_snapshot(lease.box_dir());
    }
    Ok(())
}

#[derive(Serialize)]
struct LogRow {
    version: u64,
    created: String,
    message: String,
    made: &'static str,
    added: u64,
    modified: u64,
    deleted: u64,
    entries: u64,
    bytes: u64,
    digest: String,
    pinned: bool,
}

fn row(v: &Version) -> LogRow {
    let m = &v.manifest.body;
    LogRow {
        version: v.number,
        created: cowl_store::time::rfc3339(m.created),
        message: m.message.clone(),
        made: m.made.as_str(),
        added: m.totals.added,
        modified: m.totals.modified,
        deleted: m.totals.deleted,
        entries: m.totals.entries,
        bytes: m.totals.bytes,
        digest: v.manifest.digest.clone(),
        pinned: v.pinned,
    }
}

/// One line per version. A message is text the user or the box chose (a
/// run's command line, `snapshot -m`): it prints quoted when it holds a
/// newline or a terminal control, so it cannot forge or hide a line.
fn print_rows(rows: &[LogRow], indent: &str) {
    for r in rows {
        println!(
            "{indent}{:>4}  {}  {:<8} +{:<5} ~{:<5} -{:<5} {:>10}  {}{}  {}",
            r.version,
            r.created,
            r.made,
            r.added,
            r.modified,
            r.deleted,
            human_bytes(r.bytes),
            &r.digest[..12],
            if r.pinned { " pinned" } else { "" },
            quote::text(&r.message)
        );
    }
}

pub fn log(a: LogArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let b = store.open_box(&name)?.recover()?;
    let _ops = b.ops_lock(false)?;
    if a.quarantine {
        #[derive(Serialize)]
        struct Q {
            stamp: String,
            time: String,
            target: u64,
            live: bool,
            versions: Vec<LogRow>,
        }
        let qs: Vec<Q> = history::quarantine(&b)?
            .into_iter()
            .map(|q| Q {
                stamp: q.stamp,
                time: cowl_store::time::rfc3339(q.time),
                target: q.target,
                live: q.live,
                versions: q.versions.iter().map(row).collect(),
            })
            .collect();
        if a.json {
            println!("{}", serde_json::to_string_pretty(&qs)?);
        } else {
            for q in &qs {
                println!(
                    "{}  rollback to {} (quarantine {}){}",
                    q.time,
                    q.target,
                    q.stamp,
                    if q.live { ", with a live layer" } else { "" }
                );
                print_rows(&q.versions, "  ");
            }
        }
        return Ok(0);
    }
    let rows: Vec<LogRow> = b.versions()?.iter().rev().map(row).collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:>4}  {:<20}  {:<8} {:<6} {:<6} {:<6} {:>10}  {:<12}  MESSAGE",
            "VER", "CREATED", "MADE", "ADDED", "MODIF", "DELET", "BYTES", "DIGEST"
        );
        print_rows(&rows, "");
    }
    Ok(0)
}

/// A view of the box: a version number (0 = the bare host) or the live layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Version(u64),
    Live,
}

fn parse_view(s: &str, newest: u64) -> Result<View> {
    if s == "live" {
        return Ok(View::Live);
    }
    let n: u64 = s.parse().map_err(|_| {
        usage(format!(
            "{s:?} is not a version: give a number from 0 (the host) to {newest}, or `live`"
        ))
    })?;
    if n > newest {
        return Err(usage(format!(
            "there is no version {n}: the newest is {newest}"
        )));
    }
    Ok(View::Version(n))
}

pub fn diff(a: DiffArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let b = store.open_box(&name)?.recover()?;
    let layout = BoxLayout::of(&store, &b)?;
    let _ops = b.ops_lock(false)?;
    // Layer paths only: no manifest needs reading to compare two views.
    let all = b.version_layers()?;
    let number = |l: &PathBuf| -> u64 {
        l.parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let newest = all.first().map_or(0, number);
    let from = parse_view(a.from.as_deref().unwrap_or("0"), newest)?;
    let to = parse_view(a.to.as_deref().unwrap_or("live"), newest)?;
    let upper = b.upper();
    let layers_of = |v: View| -> Vec<PathBuf> {
        match v {
            View::Version(n) => all.iter().filter(|l| number(l) <= n).cloned().collect(),
            View::Live => {
                let mut l = all.clone();
                l.insert(0, upper.clone());
                l
            }
        }
    };
    let (la, lb) = (layers_of(from), layers_of(to));
    let every: Vec<&Path> = la.iter().chain(lb.iter()).map(PathBuf::as_path).collect();
    let _opened = cowl_store::layer::open_for_reading(&b.path().join("pending"), &every);
    // Only the layers one view has and the other has not can differ.
    let mut cands = BTreeSet::new();
    for l in la
        .iter()
        .filter(|l| !lb.contains(l))
        .chain(lb.iter().filter(|l| !la.contains(l)))
    {
        layer_paths(l, &mut cands);
    }
    let changes = layout.with(|l| {
        let host = Some(Path::new("/"));
        let sa = Stack::new(la.clone(), host, l.private);
        let sb = Stack::new(lb.clone(), host, l.private);
        diff_stacks(
            &sa,
            &sb,
            cands,
            &DiffRules {
                structural: l.structural,
            },
        )
    });
    // One write per screenful, not per line: a diff can list 100,000 paths.
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &changes)?;
        writeln!(out)?;
    } else if a.patch {
        for c in &changes {
            write!(out, "{}", patch(c))?;
        }
    } else if a.stat {
        let mut counts = [0usize; 5];
        let mut bytes = 0;
        for c in &changes {
            counts[match c.change {
                ChangeKind::Added => 0,
                ChangeKind::Modified => 1,
                ChangeKind::Deleted => 2,
                ChangeKind::TypeChanged => 3,
                ChangeKind::MetadataChanged => 4,
            }] += 1;
            if c.change != ChangeKind::Deleted {
                bytes += c.size;
            }
            writeln!(
                out,
                "{} {:>10}  {}",
                c.change.letter(),
                human_bytes(c.size),
                quote::path(&c.path)
            )?;
        }
        writeln!(
            out,
            "{} added, {} modified, {} deleted, {} type changed, {} metadata changed; {} written",
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            counts[4],
            human_bytes(bytes)
        )?;
    } else {
        for c in &changes {
            writeln!(out, "{} {}", c.change.letter(), quote::path(&c.path))?;
        }
    }
    out.flush()?;
    Ok(0)
}

pub fn rollback(a: RollbackArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let b = store.open_box(&name)?.recover()?;
    if let Some(s) = b.running()? {
        if !a.stop {
            bail!(
                "box {name} is running (pid {}): stop it first, or pass --stop",
                s.pid
            );
        }
        crate::boxes::stop_box(&b, std::time::Duration::from_secs(10))?;
    }
    let Some(_lock) = b.try_lock()? else {
        bail!("box {name} started again while rolling back: stop it and retry");
    };
    let target = match a.version {
        Some(v) => v,
        None => {
            let min = crate::review::severity(a.min_severity);
            let rows = crate::review::findings(&b, crate::review::Scope::Versions, None)?;
            let Some((bad, found)) = crate::review::first_bad(&rows, min) else {
                bail!(
                    "no version of box {name} has a finding of {} or above: nothing to roll back (`cowl scan {name}` lists every finding)",
                    min.as_str()
                );
            };
            let t = crate::review::before(&b.versions()?, bad);
            eprintln!(
                "cowl: version {bad} is the first bad one ({} finding(s) of {} or above, e.g. {} {}): rolling back to {t}",
                found.len(),
                min.as_str(),
                found.first().map_or("", |r| r.finding.rule),
                found.first().map_or(String::new(), |r| quote::path(&r.finding.path).to_string()),
            );
            t
        }
    };
    let q = history::rollback(&b, target)?;
    cowl_store::lease::refresh_cache(&b)?;
    println!(
        "box {name} is at version {}; later versions and the live layer are in quarantine {} (`cowl log --quarantine {name}`)",
        target,
        q.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    );
    Ok(0)
}

pub fn squash_cmd(a: SquashArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let b = store.open_box(&name)?.recover()?;
    let Some(_lock) = b.try_lock()? else {
        bail!("box {name} is running: squash it when it stops");
    };
    let layout = BoxLayout::of(&store, &b)?;
    let done = layout.with(|l| squash::squash(&b, a.keep, Eligible::Unpinned, l))?;
    cowl_store::lease::refresh_cache(&b)?;
    if done.is_empty() {
        println!("nothing to squash");
    }
    for (x, y) in done {
        println!("squashed versions {x}-{y} into version {y}");
    }
    Ok(0)
}

pub fn verify(a: VerifyArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let b = match store.open_box(&name).and_then(cowl_store::Opened::recover) {
        // The detail every other command points here for.
        Err(StoreError::Damaged { problems, .. }) => {
            eprintln!(
                "cowl: box {name} is damaged: {} problem(s) in {}:",
                problems.len(),
                quote::path(&store.box_path(&name))
            );
            for p in &problems {
                eprintln!("  {p}");
            }
            eprintln!(
                "no command uses it; copy out by hand what you need of it, then `cowl rm --force {name}` removes it"
            );
            return Ok(1);
        }
        other => other?,
    };
    match history::verify(&b)? {
        None => {
            let n = b.versions()?.len();
            println!("box {name}: {n} versions verified");
            Ok(0)
        }
        Some(f) => {
            // One line: the reason holds a name the box chose, quoted, and
            // what follows it cannot be taken for another line.
            let before = version_before(&b, f.version)?;
            eprintln!(
                "cowl: box {name}: version {} does not verify: {}; the box is damaged or was changed by hand: `cowl rollback {name} {before}` returns to the versions below it (version {} and later kept in quarantine), `cowl rm --force {name}` removes the box",
                f.version, f.reason, f.version
            );
            Ok(1)
        }
    }
}

/// The newest version below `n` (0: the bare host).
fn version_before(b: &BoxDir, n: u64) -> Result<u64> {
    Ok(history::version_numbers(b)?
        .iter()
        .map(|v| v.0)
        .filter(|&v| v < n)
        .max()
        .unwrap_or(0))
}

pub fn gc(a: GcArgs) -> Result<i32> {
    let store = open_store()?;
    store.sweep();
    let mut total = 0;
    for name in store.list()? {
        let b = match store.open_box(&name).and_then(cowl_store::Opened::recover) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("cowl: warning: {e}");
                continue;
            }
        };
        let days = a
            .older_than
            .unwrap_or(f64::from(b.settings.quarantine_days));
        if !days.is_finite() || days < 0.0 {
            return Err(usage("--older-than takes a number of days, 0 or more"));
        }
        let n = history::gc(&b, (days * 86_400.0) as u64)?;
        if n > 0 {
            println!("box {name}: purged {n} quarantined rollback(s)");
        }
        total += n;
    }
    if total == 0 {
        println!("nothing to purge");
    }
    Ok(0)
}

/// In test builds, `COWL_FAULT=<step>` kills cowl with SIGKILL at that step
/// of a store operation, and `COWL_PAUSE=<step>` holds it there for 1.5 s
/// (saying so on stderr), for a test to act in the meantime.
pub fn install_fault_hook() {
    #[cfg(debug_assertions)]
    cowl_store::fault::set_hook(|name| {
        if std::env::var("COWL_FAULT").as_deref() == Ok(name) {
            let _ = cowl_sandbox::sys::kill(std::process::id() as i32, libc::SIGKILL);
        }
        if std::env::var("COWL_PAUSE").as_deref() == Ok(name) {
            eprintln!("cowl: paused at {name}");
            std::thread::sleep(std::time::Duration::from_millis(1500));
        }
    });
}
