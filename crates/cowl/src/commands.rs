//! One short function per command.

use crate::cli::{Cli, Command, ConfigArgs, ListArgs, NetArg, RmArgs, RunArgs, StopArgs};
use crate::policy::{
    check_policy_paths, check_syscall_names, effective_hidden, enforceable, expand,
    landlock_policy, limits_of, proxy_rules,
};
use crate::versions;
use crate::workdir;
use anyhow::{bail, Context, Result};
use cowl_sandbox::join::{self, JoinTarget};
use cowl_sandbox::plan::{self, Base, Spec};
use cowl_sandbox::spawn::{self, Observer};
use cowl_sandbox::{mountinfo, sys};
use cowl_store::{BoxDir, BoxHolder, BoxLock, BoxName, Mode, NetMode, RunState, Store, StoreError};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A mistake in how cowl was called: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

pub fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(a) => run(a),
        Command::Config(a) => config(a),
        Command::Netlog(a) => crate::netlog::netlog(a),
        Command::Scan(a) => crate::review::scan(a),
        Command::Commit(a) => crate::commit::commit(a),
        Command::Export(a) => crate::review::export(a),
        Command::Ls(a) => ls(a),
        Command::Diff(a) => versions::diff(a),
        Command::Snapshot(a) => versions::snapshot(a),
        Command::Pin(a) => versions::pin(a, true),
        Command::Unpin(a) => versions::pin(a, false),
        Command::Log(a) => versions::log(a),
        Command::Rollback(a) => versions::rollback(a),
        Command::Squash(a) => versions::squash_cmd(a),
        Command::Verify(a) => versions::verify(a),
        Command::Gc(a) => versions::gc(a),
        Command::Ps(a) => ps(a),
        Command::Stop(a) => stop(a),
        Command::Rm(a) => rm(a),
        Command::Push(a) => crate::mirror::push(a),
        Command::Pull(a) => crate::mirror::pull(a),
    }
}

pub(crate) fn box_name(s: &str) -> Result<BoxName> {
    BoxName::new(s).map_err(|e| usage(e.to_string()))
}

/// Where the store is, from the environment.
fn store_root() -> Result<PathBuf> {
    cowl_store::home::store_root(sys::geteuid() == 0)
        .context("cannot find the store: set COWL_HOME (or HOME) to a directory you own")
}

pub(crate) fn open_store() -> Result<Store> {
    Ok(Store::open(&store_root()?, sys::geteuid())?)
}

fn run(a: RunArgs) -> Result<i32> {
    cowl_sandbox::trace::mark("main");
    let name = box_name(&a.name)?;
    let is_root = sys::geteuid() == 0;
    if a.system && !is_root {
        return Err(usage("--system maps every id and needs root: run it with sudo, or drop --system for a rootless box"));
    }
    let store = open_store()?;
    let existing = match store.open_box(&name) {
        Ok(b) => Some(b),
        Err(StoreError::NoSuchBox { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let mode = run_mode(existing.as_ref(), a.system, is_root, &name)?;
    let settings = existing.as_ref().map(|b| b.settings.clone());
    let mut command = a.command.clone();
    if command.is_empty() {
        command = settings
            .as_ref()
            .map(|s| s.command.clone())
            .unwrap_or_default();
    }
    if command.is_empty() {
        command = vec![std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into())];
    }
    let net = match a.net {
        Some(NetArg::None) => NetMode::None,
        Some(NetArg::Host) => NetMode::Host,
        Some(NetArg::Ports) => NetMode::Ports,
        Some(NetArg::Proxy) => NetMode::Proxy,
        None => settings.as_ref().map(|s| s.net).unwrap_or_default(),
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let defaults = cowl_store::BoxSettings::new(mode);
    let s = settings.as_ref().unwrap_or(&defaults);
    check_syscall_names(&s.allow_syscalls)?;
    let allow: Vec<String> = s.allow.iter().chain(&a.allow).cloned().collect();
    let limits = limits_of(s, &a)?;
    let landlock = landlock_policy(net, &allow)?;
    enforceable(&landlock, net, a.best_effort)?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let binds = if a.gui {
        plan::gui_paths(&env)
    } else {
        Vec::new()
    };
    check_policy_paths("--hide", &a.hide)?;
    check_policy_paths("--expose", &a.expose)?;
    check_policy_paths("box.toml hide:", &s.hide)?;
    check_policy_paths("box.toml expose:", &s.expose)?;
    let mut hide = effective_hidden(s, &a.hide, &a.expose, mode);
    let user_hide: Vec<PathBuf> = s.hide.iter().chain(&a.hide).map(|p| expand(p)).collect();
    let (env, env_dropped) = crate::policy::app_env(std::env::vars_os(), &s.env_pass, &a.env)?;
    hide.retain(|h| !binds.iter().any(|g| h.starts_with(g)));
    if a.gui && binds.is_empty() {
        return Err(usage("--gui: neither WAYLAND_DISPLAY nor DISPLAY is set: there is no display to pass through"));
    }
    let spec = Spec {
        box_name: name.to_string(),
        command,
        mode: crate::to_sandbox::mode(mode),
        net: crate::to_sandbox::net(net),
        cwd,
        durability: crate::to_sandbox::durability(s.durability),
        binds,
        proxy_allow: proxy_rules(net, &allow)?,
        hide,
        allow_syscalls: s.allow_syscalls.clone(),
        landlock,
        env,
        env_dropped,
    };

    if a.dry_run {
        let box_dir = existing
            .as_ref()
            .map(|b| b.path().to_owned())
            .unwrap_or_else(|| store.box_path(&name));
        let mounts = mountinfo::read_own().context("cannot read /proc/self/mountinfo")?;
        let versions = match &existing {
            Some(b) => b.version_layers()?,
            None => Vec::new(),
        };
        let plan = plan::resolve(
            &spec,
            &crate::to_sandbox::run_paths(&box_dir),
            store.root(),
            &versions,
            &mounts,
        );
        let upper = existing.as_ref().map(|b| b.upper());
        let start = planned_start(
            &plan,
            &spec.hide,
            upper,
            &versions,
            store.root(),
            &user_hide,
        );
        let note = start.note(&spec.cwd, name.as_str());
        if let Some(n) = &note {
            eprintln!("cowl: {n}");
        }
        print_plan(&plan, &start, note.as_deref(), a.json)?;
        return Ok(0);
    }

    let (b, _created) = match existing {
        Some(b) => (b, false),
        None => store.open_or_create(&name, mode)?,
    };
    check_mode(&b, mode)?;
    let lock = match wait_for_box(&b)? {
        Holder::Free(lock) => lock,
        Holder::Running(state) => return join(&b, &spec, state, store.root(), &user_hide),
    };
    spawn::preflight(store.root())?;
    let mounts = mountinfo::read_own().context("cannot read /proc/self/mountinfo")?;
    let run_layers = cowl_store::cache::run_layers(&b)?;
    let plan = plan::resolve(
        &spec,
        &crate::to_sandbox::run_paths(b.path()),
        store.root(),
        &run_layers,
        &mounts,
    );
    // Before the run, and before anything it prints: where the command
    // runs, when that is not the caller's directory as the host has it.
    let start = planned_start(
        &plan,
        &spec.hide,
        Some(b.upper()),
        &run_layers,
        store.root(),
        &user_hide,
    );
    if let Some(n) = start.note(&spec.cwd, name.as_str()) {
        eprintln!("cowl: {n}");
    }
    if a.verbose {
        eprintln!(
            "cowl: box {} ({}), network {}: {} overlays over the host, writes go to {}",
            plan.box_name,
            mode.as_str(),
            net.as_str(),
            plan.layers.iter().filter(|l| l.base.is_overlay()).count(),
            b.upper().display()
        );
        for m in &plan.mounts {
            if let cowl_sandbox::hostmounts::MountClass::Unreachable { why } = &m.class {
                eprintln!(
                    "cowl: {} is an empty directory in the box: {why}",
                    cowl_store::quote::path(&m.path)
                );
            }
        }
        let abi = cowl_sandbox::landlock::abi();
        let tcp = if crate::to_sandbox::net(net).tcp_only() {
            ", internet sockets TCP only"
        } else {
            ""
        };
        eprintln!(
            "cowl: policy: seccomp filter (native{}{tcp}); Landlock ABI {abi}: {}{}; {} paths hidden; no_new_privs, {}",
            if cfg!(target_arch = "x86_64") { ", i386 and x32" } else { "" },
            if abi >= 6 { "abstract sockets and signals scoped" } else { "no scoping (needs ABI 6)" },
            match &plan.landlock.ports {
                Some(p) => format!(", TCP connect to {:?}, bind {:?}", p.connect, p.bind),
                None => String::new(),
            },
            plan.hidden.len(),
            if mode == Mode::Rootless { "no capabilities" } else { "root's capabilities in the box's own user namespace" }
        );
    }
    if a.verbose && !plan.env_dropped.is_empty() {
        eprintln!(
            "cowl: environment: not passed (credentials; --env NAME passes one): {}",
            plan.env_dropped.join(" ")
        );
    }
    let enforcement = cowl_sandbox::limits::prepare(&limits, name.as_str(), a.best_effort)?;
    // What --best-effort accepted in place of a box-wide limit is said on
    // every run, not only with -v: the user asked for more than holds.
    for w in &enforcement.warnings {
        eprintln!("cowl: warning: {w}");
    }
    if a.verbose {
        for line in &enforcement.report {
            eprintln!("cowl: limit: {line}");
        }
    }
    let mut obs = StateWriter {
        b: &b,
        lock: &lock,
        command: &spec.command,
        mode,
        net,
        allow: match &plan.landlock.ports {
            Some(p) => p
                .connect
                .iter()
                .map(|p| p.to_string())
                .chain(p.bind.iter().map(|p| format!("bind:{p}")))
                .collect(),
            None => Vec::new(),
        },
        cgroups: enforcement.cgroups.clone(),
        rlimits: enforcement.rlimits.clone(),
    };
    let started = cowl_store::baseline::now_ns();
    let run_log = crate::netlog::RunLog::mark(b.path());
    let code = spawn::run(&plan, &enforcement, &mut obs);
    cowl_sandbox::limits::cleanup(&enforcement);
    let code = code?;
    // Said once the run's version is taken: a reader of stderr that went
    // away (SIGPIPE) must not cost the snapshot.
    let hint = run_log.hint(code, net, name.as_str(), &plan.proxy_allow);
    b.clear_state(&lock);
    let layout = versions::BoxLayout::from_plan(plan);
    // The box has ended (its init is reaped, its mounts gone): freeze what
    // it changed while this process still holds the run lock.
    if let Err(e) = versions::after_run(&b, &layout, &spec.command, code, started) {
        eprintln!(
            "cowl: warning: the box ran, but its automatic snapshot failed: {}",
            crate::render(&e)
        );
    }
    drop(lock);
    if let Some(h) = hint {
        eprintln!("{h}");
    }
    cowl_sandbox::trace::mark("done");
    Ok(code)
}

/// The mode a run of box `name` has. A box's mode is fixed when it is made
/// (box.toml `mode`) and every later run takes it from there: `--system`
/// makes a new box a system box, and is accepted, not needed, for an
/// existing one. Only root runs a system box (its ids map one to one);
/// `--system` never turns a rootless box into one.
fn run_mode(
    existing: Option<&BoxDir>,
    system: bool,
    is_root: bool,
    name: &BoxName,
) -> Result<Mode> {
    match existing.map(|b| b.settings.mode) {
        Some(Mode::System) if !is_root => Err(usage(format!(
            "box {name} is a system box (box.toml mode = \"system\") and runs only as root: sudo cowl run {name} …"
        ))),
        Some(Mode::Rootless) if system => Err(usage(format!(
            "box {name} is rootless (box.toml mode = \"rootless\"): run it without --system, or give --system a new box name to make a system box"
        ))),
        Some(mode) => Ok(mode),
        None if system => Ok(Mode::System),
        None => Ok(Mode::Rootless),
    }
}

/// Refuses a box whose mode is not the run's: one made meanwhile by
/// another cowl, between the first look and `open_or_create`.
fn check_mode(b: &BoxDir, mode: Mode) -> Result<()> {
    if b.settings.mode == mode {
        return Ok(());
    }
    Err(usage(format!(
        "box {} was just made as a {} box by another cowl command: run it again",
        b.name(),
        b.settings.mode.as_str()
    )))
}

struct StateWriter<'a> {
    b: &'a BoxDir,
    lock: &'a BoxLock,
    command: &'a [String],
    mode: Mode,
    net: NetMode,
    allow: Vec<String>,
    cgroups: Vec<PathBuf>,
    rlimits: Vec<(u32, u64)>,
}

impl Observer for StateWriter<'_> {
    fn started(&mut self, pid: i32) {
        let state = RunState {
            pid,
            start_ticks: sys::process_start_ticks(pid).unwrap_or(0),
            supervisor: std::process::id() as i32,
            mode: self.mode,
            command: self.command.to_vec(),
            started: cowl_store::time::now(),
            net: self.net,
            allow: self.allow.clone(),
            cgroups: self.cgroups.clone(),
            rlimits: self.rlimits.clone(),
        };
        if let Err(e) = self.b.write_state(&state, self.lock) {
            eprintln!("cowl: warning: {e} (other cowl commands will not see the box running)");
        }
    }

    fn warning(&mut self, msg: &str) {
        eprintln!("cowl: warning: {msg}");
    }

    fn remove_tree(&self, path: &Path) {
        let _ = cowl_store::boxdir::remove_tree(path);
    }
}

/// Who has a box: nobody (and now we hold its run lock), or a running init.
enum Holder {
    Free(BoxLock),
    Running(RunState),
}

/// Takes the box's run lock, or finds the init of the box that holds it.
/// Another cowl command (a snapshot, a squash, a box still starting or
/// ending) may hold the lock without a running init for a while: wait.
fn wait_for_box(b: &BoxDir) -> Result<Holder> {
    let start = Instant::now();
    let mut said = false;
    loop {
        if let Some(lock) = b.try_lock()? {
            return Ok(Holder::Free(lock));
        }
        if let Some(s) = b.read_state() {
            if sys::process_start_ticks(s.pid) == Some(s.start_ticks) {
                return Ok(Holder::Running(s));
            }
        }
        if !said && start.elapsed() > Duration::from_secs(1) {
            eprintln!(
                "cowl: waiting for box {}: another cowl command holds it",
                b.name()
            );
            said = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Joins a running box.
fn join(
    b: &BoxDir,
    spec: &Spec,
    state: RunState,
    store: &Path,
    user_hide: &[PathBuf],
) -> Result<i32> {
    if state.mode != b.settings.mode {
        bail!("box {} runs in {} mode", b.name(), state.mode.as_str());
    }
    // The running box's own root tells where the joined command can start.
    let pid = state.pid;
    let view = workdir::View {
        hidden: hidden_reasons(store, &spec.hide, user_hide, &[]),
        unreachable: Vec::new(),
        shows_dir: Box::new(move |d: &Path| workdir::running_shows_dir(pid, d)),
    };
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if let Some(n) = view
        .start_dir(&spec.cwd, home.as_deref())
        .note(&spec.cwd, b.name().as_str())
    {
        eprintln!("cowl: {n}");
    }
    let run_log = crate::netlog::RunLog::mark(b.path());
    let code = join::join(
        &JoinTarget {
            name: b.name().as_str(),
            pid: state.pid,
            start_ticks: state.start_ticks,
            mode: crate::to_sandbox::mode(state.mode),
            allow_syscalls: &b.settings.allow_syscalls,
            landlock: &landlock_policy(state.net, &state.allow)?,
            net: crate::to_sandbox::net(state.net),
            cgroups: &state.cgroups,
            rlimits: &state.rlimits,
            env: &spec.env,
        },
        &spec.command,
        &spec.cwd,
    )?;
    if let Some(hint) = run_log.hint(code, state.net, b.name().as_str(), &spec.proxy_allow) {
        eprintln!("{hint}");
    }
    Ok(code)
}

/// Where a run of `plan` starts: the box's live layer `upper` (none for a
/// box not yet made) and `layers` (topmost first) over the host, with what
/// the plan hides (`hide`: as the policy gave it) and shows empty.
fn planned_start(
    plan: &cowl_sandbox::Plan,
    hide: &[PathBuf],
    upper: Option<PathBuf>,
    layers: &[PathBuf],
    store: &Path,
    user_hide: &[PathBuf],
) -> workdir::StartDir {
    let stack: Vec<PathBuf> = upper.into_iter().chain(layers.iter().cloned()).collect();
    let private: Vec<PathBuf> = plan::PRIVATE_DIRS
        .iter()
        .map(|d| plan::rel(Path::new(d)))
        .collect();
    let hidden = hidden_reasons(store, hide, user_hide, &plan.hidden);
    let view = workdir::planned_view(plan, &stack, &private, hidden);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    view.start_dir(&plan.cwd, home.as_deref())
}

/// Each hidden path with why it is hidden: the store, `--hide` and box.toml
/// `hide` (`user_hide`), else the default list; and `resolved`'s other
/// entries (second paths to hidden directories). Paths are also taken as
/// the host resolves them: the caller's directory is.
fn hidden_reasons(
    store: &Path,
    hide: &[PathBuf],
    user_hide: &[PathBuf],
    resolved: &[PathBuf],
) -> Vec<(PathBuf, workdir::HiddenBy)> {
    use workdir::HiddenBy;
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    let mut v: Vec<(PathBuf, HiddenBy)> = Vec::new();
    let mut add = |p: &Path, by: HiddenBy| {
        for q in std::iter::once(p.to_owned()).chain(canon(p)) {
            if !v.iter().any(|(h, _)| *h == q) {
                v.push((q, by));
            }
        }
    };
    add(store, HiddenBy::Store);
    for h in user_hide {
        add(h, HiddenBy::Policy);
    }
    for h in hide {
        add(h, HiddenBy::DefaultList);
    }
    for h in resolved {
        add(h, HiddenBy::Alias);
    }
    v
}

fn print_plan(
    plan: &cowl_sandbox::Plan,
    start: &workdir::StartDir,
    note: Option<&str>,
    json: bool,
) -> Result<()> {
    if json {
        // Where the command would run, and the line `run` says about it.
        let mut v = serde_json::to_value(plan)?;
        v["start_dir"] = serde_json::to_value(&start.path)?;
        v["start_dir_note"] = serde_json::to_value(note)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "box {} ({}), network {}",
        plan.box_name,
        plan.mode.as_str(),
        plan.net.as_str()
    );
    println!("command: {}", plan.command.join(" "));
    for l in &plan.layers {
        let base = match &l.base {
            Base::Host => format!("overlay of host {}", l.path.display()),
            Base::Skeleton { entries } => format!(
                "overlay of a skeleton of host {} ({} entries)",
                l.path.display(),
                entries.len()
            ),
            Base::Empty => "overlay of nothing (the box's own)".into(),
            Base::HostReadOnly => "read-only bind of the host's tree".into(),
            Base::HostFile => "read-only bind of the host's file".into(),
            Base::ReadOnly { reason } => format!("read-only host ({reason})"),
        };
        if l.base.is_overlay() {
            println!(
                "  {:<24} {} version layers + {}",
                l.path.display(),
                l.versions.len(),
                base
            );
        } else {
            println!("  {:<24} {}", l.path.display(), base);
        }
    }
    println!("host mounts:");
    for m in &plan.mounts {
        use cowl_sandbox::hostmounts::MountClass;
        let how = match &m.class {
            MountClass::Writable => "writable: an overlay".to_owned(),
            MountClass::ReadOnly => "read-only: bound read-only".to_owned(),
            MountClass::Kernel => "kernel filesystem: the box's own or left out".to_owned(),
            MountClass::Unreachable { why } => format!("unreachable ({why}): an empty directory"),
            MountClass::File => "file: bound read-only".to_owned(),
            MountClass::Socket => "socket: closed".to_owned(),
            MountClass::Hidden { of } => {
                format!("a second path to hidden {}: hidden", of.display())
            }
        };
        println!("  {:<24} {:<10} {how}", m.path.display(), m.fstype);
    }
    for h in &plan.hidden {
        println!("  {:<24} hidden", h.display());
    }
    Ok(())
}

fn config(a: ConfigArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let mut b = store.open_box(&name)?;
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

fn ls(a: ListArgs) -> Result<i32> {
    let store = open_store()?;
    store.sweep();
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for name in store.list()? {
        let (running, mode, created, problems) = match store.open_box(&name) {
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

fn ps(a: ListArgs) -> Result<i32> {
    let store = open_store()?;
    let mut rows = Vec::new();
    for name in store.list()? {
        let Ok(b) = store.open_box(&name) else {
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

/// Whether the init a state file names still runs (not a reused pid).
fn alive(s: &RunState) -> bool {
    sys::process_start_ticks(s.pid) == Some(s.start_ticks)
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

fn stop(a: StopArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    if !a.grace.is_finite() || a.grace < 0.0 {
        return Err(usage("--grace takes a number of seconds, 0 or more"));
    }
    let store = open_store()?;
    let grace = Duration::from_secs_f64(a.grace);
    let stopped = match store.open_box(&name) {
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

fn rm(a: RmArgs) -> Result<i32> {
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
        if let Err(e @ StoreError::Tampered { .. }) = store.open_box(name) {
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

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
