//! Policy from flags and box.toml: hidden paths, resource limits, the
//! Landlock domain, the proxy allowlist, and the check that the kernel can
//! enforce what the policy asks.

use crate::cli::RunArgs;
use crate::commands::usage;
use anyhow::{bail, Result};
use cowl_sandbox::plan;
use cowl_store::NetMode;
use std::path::PathBuf;

/// `~/x` as `$HOME/x`.
pub(crate) fn expand(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// The paths a box may not read: the default list and box.toml's `hide`
/// and the run's `--hide`, less what box.toml's `expose` or `--expose` lets
/// through.
pub(crate) fn effective_hidden(
    s: &cowl_store::BoxSettings,
    hide: &[String],
    expose: &[String],
) -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut extra_hidden = Vec::new();
    if let (Some(w), Some(r)) = (env("WAYLAND_DISPLAY"), env("XDG_RUNTIME_DIR")) {
        extra_hidden.push(r.join(w));
    }
    let exposed: Vec<PathBuf> = s.expose.iter().chain(expose).map(|p| expand(p)).collect();
    let mut v = plan::default_hidden(
        env("HOME").as_deref(),
        env("XDG_RUNTIME_DIR").as_deref(),
        env("SSH_AUTH_SOCK").as_deref(),
    );
    v.extend(extra_hidden);
    v.retain(|h| !exposed.iter().any(|e| h.starts_with(e)));
    v.extend(s.hide.iter().chain(hide).map(|p| expand(p)));
    v
}

/// The run's limits: flags over box.toml.
pub(crate) fn limits_of(
    s: &cowl_store::BoxSettings,
    a: &RunArgs,
) -> Result<cowl_sandbox::limits::Limits> {
    let memory = match a.memory.as_ref().or(s.memory.as_ref()) {
        Some(m) => Some(
            cowl_sandbox::limits::parse_size(m)
                .ok_or_else(|| usage(format!("memory {m:?}: give a size like 512M or 2G")))?,
        ),
        None => None,
    };
    let cpus = a.cpus.or(s.cpus);
    if cpus.is_some_and(|c| !(c > 0.0 && c.is_finite())) {
        return Err(usage("cpus: give a positive number of CPUs, like 1.5"));
    }
    let pids = a.pids.or(s.pids);
    if pids == Some(0) {
        return Err(usage("pids: give at least 1"));
    }
    Ok(cowl_sandbox::limits::Limits { memory, pids, cpus })
}

/// The Landlock domain of a box: abstract unix sockets and signals scoped to
/// it, and in `ports` mode the TCP ports of `allow`.
pub(crate) fn landlock_policy(
    net: NetMode,
    allow: &[String],
) -> Result<cowl_sandbox::landlock::LandlockPolicy> {
    use cowl_sandbox::landlock::{LandlockPolicy, Ports};
    if net != NetMode::Ports {
        if let (Some(a), false) = (allow.first(), net == NetMode::Proxy) {
            return Err(usage(format!(
                "--allow {a}: allowances are for `--net proxy` (hosts) and `--net ports` (ports)"
            )));
        }
        return Ok(LandlockPolicy {
            scope: true,
            ports: None,
        });
    }
    let mut ports = Ports::default();
    for a in allow {
        let (list, num) = match a.strip_prefix("bind:") {
            Some(p) => (&mut ports.bind, p),
            None => (&mut ports.connect, a.as_str()),
        };
        let port: u16 = num.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
            usage(format!(
                "--allow {a}: give a TCP port (443) or bind:PORT (bind:8080)"
            ))
        })?;
        list.push(port);
    }
    Ok(LandlockPolicy {
        scope: true,
        ports: Some(ports),
    })
}

/// The proxies' allowlist in `proxy` mode.
pub(crate) fn proxy_rules(
    net: NetMode,
    allow: &[String],
) -> Result<Vec<cowl_sandbox::proxy::AllowRule>> {
    if net != NetMode::Proxy {
        return Ok(Vec::new());
    }
    allow
        .iter()
        .map(|a| {
            cowl_sandbox::proxy::AllowRule::parse(a)
                .ok_or_else(|| usage(format!("--allow {a}: give a host (example.org), *.domain, with :PORT if not 80 and 443")))
        })
        .collect()
}

/// Fails closed: a protection the policy needs and the kernel cannot give is
/// an error, unless the user accepts running without it (--best-effort).
/// With its own network namespace a box needs no scoping of abstract
/// sockets (they are per namespace) nor of signals (its pid namespace hides
/// the host's processes): there it is used where available.
pub(crate) fn enforceable(
    p: &cowl_sandbox::landlock::LandlockPolicy,
    net: NetMode,
    best_effort: bool,
) -> Result<()> {
    let abi = cowl_sandbox::landlock::abi();
    let missing = if net.has_own_namespace() {
        Vec::new()
    } else {
        p.missing(abi)
    };
    if missing.is_empty() {
        return Ok(());
    }
    let what = missing.join("; ");
    if best_effort {
        eprintln!("cowl: warning: not enforced on this kernel (Landlock ABI {abi}): {what}");
        Ok(())
    } else {
        bail!("this kernel (Landlock ABI {abi}) cannot enforce {what}: use a newer kernel, another network mode, or --best-effort to run without it")
    }
}

pub(crate) fn check_syscall_names(names: &[String]) -> Result<()> {
    let known = cowl_sandbox::seccomp::known_names();
    for n in names {
        if !known.contains(&n.as_str()) {
            return Err(usage(format!(
                "allow_syscalls: {n:?} is not a system call the filter denies; it knows {}",
                known.join(", ")
            )));
        }
    }
    Ok(())
}
