//! The commands that manage boxes as a whole: `config`, `ls`, `ps`, `stop`
//! and `rm`, and stopping a box's run (also asked by rollback).

use crate::cli::{ConfigArgs, ListArgs, RmArgs, StopArgs};
use crate::common::{alive, box_name, human_bytes, open_store, store_root, usage};
use crate::policy::{check_syscall_names, effective_hidden};
use anyhow::{bail, Result};
use cowl_sandbox::sys;
use cowl_store::{BoxDir, BoxHolder, BoxName, RunState, Store, StoreError};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(crate) fn config(a: ConfigArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let mut b = store.open_box(&name)?.recover()?;
    let to_table =
        |s: &cowl_store::BoxSettings| -> Result<toml::Table> { Ok(toml::Table::try_from(s)?) };
    let mut table = to_table(&b.settings)?;
    let mut changed = false;
    let mut shown = Vec::new();
    for item in &a.items {
        match item.split_once('=') {
            None => match table.get(item.as_str()) {
                Some(v) => shown.push((item.clone(), v.clone())),
                None => {
                    return Err(usage(format!(
                        "box.toml has no key {item:?}: `cowl config {name}` lists them"
                    )))
                }
            },
            Some((k, v)) => {
                if matches!(k, "mode" | "created") {
                    return Err(usage(format!("{k} is fixed when a box is made")));
                }
                // A TOML value if it is one, else a plain string.
                let value = toml::from_str::<toml::Table>(&format!("v = {v}"))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or_else(|| toml::Value::String(v.to_owned()));
                table.insert(k.to_owned(), value);
                changed = true;
            }
        }
    }
    if changed {
        let settings: cowl_store::BoxSettings = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| usage(format!("invalid setting: {}", e.message())))?;
        check_syscall_names(&settings.allow_syscalls)?;
        crate::policy::check_policy_paths("hide", &settings.hide)?;
        crate::policy::check_policy_paths("expose", &settings.expose)?;
        b.save_settings(settings)?;
    }
    if !shown.is_empty() {
        for (k, v) in shown {
            if a.json {
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!("{k} = {v}");
            }
        }
    } else if !changed {
        let hidden = effective_hidden(&b.settings, &[], &[], b.settings.mode);
        if a.json {
            let mut v = serde_json::to_value(&b.settings)?;
            v["hidden_paths"] = serde_json::to_value(&hidden)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            print!("{}", b.settings.to_toml());
            println!("# hidden in the box (default list, `hide`, less `expose`):");
            for h in hidden {
                println!("#   {}", h.display());
            }
        }
    }
    Ok(0)
}

#[derive(Serialize)]
struct BoxRow {
    name: String,
    bytes: u64,
    running: bool,
    pid: Option<i32>,
    /// `None` for a damaged box whose box.toml cannot be read.
    mode: Option<&'static str>,
    created: Option<String>,
    /// Files of its directory are missing, or it was tampered with: no
    /// command but `verify` and `rm` uses it.
    damaged: bool,
    /// What is wrong with a damaged box.
    problems: Vec<String>,
}

pub(crate) fn ls(a: ListArgs) -> Result<i32> {
    let store = open_store()?;
    store.sweep();
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for name in store.list()? {
        let (running, mode, created, problems) =
            match store.open_box(&name).and_then(cowl_store::Opened::recover) {
                Ok(b) => (
                    b.running()?,
                    Some(b.settings.mode.as_str()),
                    Some(cowl_store::time::rfc3339(b.settings.created)),
                    Vec::new(),
                ),
                // A damaged box is listed as such, not left out: `rm` is how
                // it goes, and the user must see it to know.
                Err(e) => {
                    let problems = match &e {
                        StoreError::Damaged { problems, .. } => problems.clone(),
                        other => vec![other.to_string()],
                    };
                    warnings.push(e);
                    // Gone meanwhile (a concurrent `rm`): not running.
                    let running = running_init(&store, &name).ok().flatten();
                    (running, None, None, problems)
                }
            };
        rows.push(BoxRow {
            name: name.to_string(),
            bytes: cowl_store::usage::allocated_bytes(&store.box_path(&name)),
            running: running.is_some(),
            pid: running.map(|s| s.pid),
            mode,
            created,
            damaged: !problems.is_empty(),
            problems,
        });
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<24} {:>10} {:<8} {:<8} CREATED",
            "NAME", "SIZE", "STATE", "MODE"
        );
        for r in &rows {
            println!(
                "{:<24} {:>10} {:<8} {:<8} {}",
                r.name,
                human_bytes(r.bytes),
                match (r.damaged, r.running) {
                    (true, _) => "damaged",
                    (false, true) => "running",
                    (false, false) => "stopped",
                },
                r.mode.unwrap_or("-"),
                r.created.as_deref().unwrap_or("-")
            );
        }
    }
    // The JSON says it already, for scripts; a human is warned.
    if !a.json {
        for e in warnings {
            eprintln!("cowl: warning: {e}");
        }
    }
    Ok(0)
}

#[derive(Serialize)]
struct PsRow {
    name: String,
    pid: i32,
    supervisor: i32,
    started: String,
    command: Vec<String>,
}

pub(crate) fn ps(a: ListArgs) -> Result<i32> {
    let store = open_store()?;
    let mut rows = Vec::new();
    for name in store.list()? {
        let Ok(b) = store.open_box(&name).and_then(cowl_store::Opened::recover) else {
            continue;
        };
        if let Some(s) = b.running()? {
            rows.push(PsRow {
                name: name.to_string(),
                pid: s.pid,
                supervisor: s.supervisor,
                started: cowl_store::time::rfc3339(s.started),
                command: s.command,
            });
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{:<24} {:>8} {:<21} COMMAND", "NAME", "PID", "STARTED");
        for r in &rows {
            println!(
                "{:<24} {:>8} {:<21} {}",
                r.name,
                r.pid,
                r.started,
                r.command.join(" ")
            );
        }
    }
    Ok(0)
}

/// Sends SIGTERM to the box's init (which passes it to the app), waits up to
/// `grace`, then SIGKILL: the kernel ends every process of the box with its init.
pub(crate) fn stop_box(b: &BoxDir, grace: Duration) -> Result<bool> {
    let Some(s) = b.running()? else {
        return Ok(false);
    };
    if !alive(&s) {
        return Ok(false);
    }
    stop_init(b.name(), &s, grace, || Ok(b.try_lock()?.is_some()))?;
    Ok(true)
}

/// Whether process `pid` has ended: gone, or a zombie waiting for its
/// parent (which has let go of every file it held).
fn ended(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The command name may hold spaces and parentheses: the state follows
    // the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_none_or(|c| matches!(c, 'Z' | 'X'))
}

/// The running init of box `name`, judged from its lock and state files
/// alone: for a box too damaged to open.
fn running_init(store: &Store, name: &BoxName) -> Result<Option<RunState>> {
    Ok(match store.holder(name)? {
        BoxHolder::Free(_) => None,
        BoxHolder::Held(s) | BoxHolder::NoLock(s) => s.filter(alive),
    })
}

/// Stops the init `s` of box `name`: SIGTERM, then SIGKILL after `grace`.
/// `released` says when the box has let go (its run lock is free).
fn stop_init(
    name: &BoxName,
    s: &RunState,
    grace: Duration,
    mut released: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let _ = sys::kill(s.pid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut killed = false;
    loop {
        if released()? {
            return Ok(());
        }
        if Instant::now() >= deadline && !killed {
            if alive(s) {
                let _ = sys::kill(s.pid, libc::SIGKILL);
            }
            killed = true;
        }
        if Instant::now() >= deadline + Duration::from_secs(10) {
            bail!(
                "box {name} did not stop: its supervisor (pid {}) still holds the lock",
                s.supervisor
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn stop(a: StopArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    if !a.grace.is_finite() || a.grace < 0.0 {
        return Err(usage("--grace takes a number of seconds, 0 or more"));
    }
    let store = open_store()?;
    let grace = Duration::from_secs_f64(a.grace);
    let stopped = match store.open_box(&name).and_then(cowl_store::Opened::recover) {
        Ok(b) => stop_box(&b, grace)?,
        // A damaged box that runs can still be stopped: by its state file,
        // and until its init and supervisor are gone.
        Err(e @ StoreError::Damaged { .. }) => {
            eprintln!("cowl: warning: {e}");
            match running_init(&store, &name)? {
                Some(s) => {
                    stop_init(&name, &s, grace, || Ok(!alive(&s) && ended(s.supervisor)))?;
                    true
                }
                None => false,
            }
        }
        Err(e) => return Err(e.into()),
    };
    if !stopped {
        eprintln!("cowl: box {name} is not running");
    }
    Ok(0)
}

/// What `cowl rm` did, for `--json`.
#[derive(Serialize, Default)]
struct RmReport {
    /// The boxes removed.
    removed: Vec<String>,
    /// Those of them that ran and were stopped first (--force).
    stopped: Vec<String>,
    /// The boxes that were not removed, and why.
    failed: Vec<RmFailure>,
    /// With --all: the store directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<PathBuf>,
    /// With --all: whether the store directory is gone now (true when
    /// there was none).
    #[serde(skip_serializing_if = "Option::is_none")]
    store_removed: Option<bool>,
    /// With --all: what was left in the store because cowl did not make it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    left: Vec<PathBuf>,
}

#[derive(Serialize)]
struct RmFailure {
    #[serde(rename = "box")]
    name: String,
    error: String,
}

pub(crate) fn rm(a: RmArgs) -> Result<i32> {
    let names = a
        .names
        .iter()
        .map(|n| box_name(n))
        .collect::<Result<Vec<_>>>()?;
    let mut report = RmReport::default();
    let mut errors: Vec<anyhow::Error> = Vec::new();
    if a.all {
        let root = store_root()?;
        report.store = Some(root.clone());
        report.store_removed = Some(false);
        let Some(store) = Store::open_existing(&root, sys::geteuid())? else {
            report.store_removed = Some(true);
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("no store at {}: nothing to remove", root.display());
            }
            return Ok(0);
        };
        report.store = Some(store.root().to_owned());
        let names = store.list()?;
        // All or nothing while boxes run: none is removed unless every
        // running one may be stopped.
        if !a.force {
            let mut running = Vec::new();
            for name in &names {
                if let Some(s) = running_init(&store, name)? {
                    running.push((name, s.pid));
                }
            }
            if !running.is_empty() {
                let list = |f: &dyn Fn(&(&BoxName, i32)) -> String| {
                    running.iter().map(f).collect::<Vec<_>>().join(", ")
                };
                bail!(
                    "{} {} {} running: nothing was removed. Stop {} first ({}), or `cowl rm --all --force` stops every box and removes it",
                    if running.len() == 1 { "box" } else { "boxes" },
                    list(&|(n, pid)| format!("{n} (pid {pid})")),
                    if running.len() == 1 { "is" } else { "are" },
                    if running.len() == 1 { "it" } else { "them" },
                    list(&|(n, _)| format!("`cowl stop {n}`"))
                );
            }
        }
        for name in &names {
            remove_into(&store, name, a.force, true, &mut report, &mut errors);
        }
        if errors.is_empty() {
            report.left = store.remove_store()?;
            report.store_removed = Some(report.left.is_empty());
        }
    } else {
        let store = open_store()?;
        for name in &names {
            remove_into(&store, name, a.force, a.force, &mut report, &mut errors);
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for name in &report.removed {
            if report.stopped.contains(name) {
                println!("removed box {name} (stopped it first)");
            } else {
                println!("removed box {name}");
            }
        }
        if let (Some(root), Some(gone)) = (&report.store, report.store_removed) {
            if gone {
                println!("removed the store at {}", root.display());
            } else if !report.left.is_empty() {
                println!(
                    "left the store at {}: it holds what cowl did not make, not removed:",
                    root.display()
                );
                for p in &report.left {
                    println!("  {}", cowl_store::quote::path(p));
                }
            }
        }
    }
    match errors.len() {
        0 => Ok(0),
        1 => Err(errors.swap_remove(0)),
        n => bail!(
            "{n} boxes were not removed: {}",
            report
                .failed
                .iter()
                .map(|f| format!("{}: {}", f.name, f.error))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// Removes box `name` into `report`, or notes why not in `errors`.
fn remove_into(
    store: &Store,
    name: &BoxName,
    force: bool,
    tampered_too: bool,
    report: &mut RmReport,
    errors: &mut Vec<anyhow::Error>,
) {
    match remove_one(store, name, force, tampered_too) {
        Ok(stopped) => {
            report.removed.push(name.to_string());
            if stopped {
                report.stopped.push(name.to_string());
            }
        }
        Err(e) => {
            report.failed.push(RmFailure {
                name: name.to_string(),
                error: crate::render(&e),
            });
            errors.push(e);
        }
    }
}

/// Removes one box, damaged or whole. A running one is refused, or with
/// `force` stopped first; returns whether it was. A tampered box is removed
/// only with `tampered_too` (its error asks the user to inspect it first).
fn remove_one(store: &Store, name: &BoxName, force: bool, tampered_too: bool) -> Result<bool> {
    if !tampered_too {
        // Recovered first: a commit a crash cut short takes back what it
        // left on the host, even of a box about to go.
        if let Err(e @ StoreError::Tampered { .. }) =
            store.open_box(name).and_then(cowl_store::Opened::recover)
        {
            return Err(e.into());
        }
    }
    let mut stopped = false;
    let start = Instant::now();
    loop {
        let (state, locked) = match store.holder(name)? {
            BoxHolder::Free(lock) => {
                store.remove(name, Some(lock))?;
                return Ok(stopped);
            }
            BoxHolder::NoLock(s) => match s.filter(alive) {
                None => {
                    store.remove(name, None)?;
                    return Ok(stopped);
                }
                Some(s) => (s, false),
            },
            BoxHolder::Held(s) => match s.filter(alive) {
                Some(s) => (s, true),
                // Another cowl command has the box (a run starting or
                // ending, a snapshot): wait for it a while.
                None if start.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                None => {
                    return Err(StoreError::InUse {
                        name: name.to_string(),
                    }
                    .into())
                }
            },
        };
        if !force {
            return Err(StoreError::Running {
                name: name.to_string(),
                pid: state.pid,
            }
            .into());
        }
        stop_init(name, &state, Duration::from_secs(2), || {
            Ok(if locked {
                !matches!(store.holder(name)?, BoxHolder::Held(_))
            } else {
                // No lock to tell when the supervisor is done with the box
                // (its last snapshot): its end tells.
                !alive(&state) && ended(state.supervisor)
            })
        })?;
        stopped = true;
    }
}
