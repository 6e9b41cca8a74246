//! `cowl run`: flags and box.toml become a Spec, the sandbox plans and
//! runs it under the box's lock (or joins the run that holds it), and the
//! run's version is taken when it ends; `--plan` prints the plan instead.

use crate::cli::{NetArg, RunArgs};
use crate::common::{box_name, open_store, usage};
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
use cowl_store::{BoxDir, BoxLock, BoxName, Mode, NetMode, RunState, StoreError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) fn run(a: RunArgs) -> Result<i32> {
    cowl_sandbox::trace::mark("main");
    let name = box_name(&a.name)?;
    let is_root = sys::geteuid() == 0;
    if a.system && !is_root {
        return Err(usage("--system maps every id and needs root: run it with sudo, or drop --system for a rootless box"));
    }
    let store = open_store()?;
    let existing = match store.open_box(&name).and_then(cowl_store::Opened::recover) {
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
        None => {
            let (opened, created) = store.open_or_create(&name, mode)?;
            (opened.recover()?, created)
        }
    };
    check_mode(&b, mode)?;
    let lease = match wait_for_box(&b)? {
        Holder::Free(lock) => b.begin_run(lock)?,
        Holder::Running(state) => return join(&b, &spec, state, store.root(), &user_hide),
    };
    spawn::preflight(store.root())?;
    let mounts = mountinfo::read_own().context("cannot read /proc/self/mountinfo")?;
    let run_layers = lease.layers();
    let plan = plan::resolve(
        &spec,
        &crate::to_sandbox::run_paths(b.path()),
        store.root(),
        run_layers,
        &mounts,
    );
    // Before the run, and before anything it prints: where the command
    // runs, when that is not the caller's directory as the host has it.
    let start = planned_start(
        &plan,
        &spec.hide,
        Some(b.upper()),
        run_layers,
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
        lock: lease.lock(),
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
    cowl_sandbox::netlog::rotate(&b.netlog());
    let run_log = crate::netlog::RunLog::mark(b.path());
    let code = spawn::run(&plan, &enforcement, &mut obs);
    cowl_sandbox::limits::cleanup(&enforcement);
    let code = code?;
    // Said once the run's version is taken: a reader of stderr that went
    // away (SIGPIPE) must not cost the snapshot.
    let hint = run_log.hint(code, net, name.as_str(), &plan.proxy_allow);
    let layout = versions::BoxLayout::from_plan(plan);
    // The box has ended (its init is reaped, its mounts gone): freeze what
    // it changed while this process still holds the run lock.
    if let Err(e) = versions::after_run(&lease, &layout, &spec.command, code, started) {
        eprintln!(
            "cowl: warning: the box ran, but its automatic snapshot failed: {}",
            crate::render(&e)
        );
    }
    drop(lease);
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
            if crate::common::alive(&s) {
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
