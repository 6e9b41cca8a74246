//! Policy from flags and box.toml: hidden paths, resource limits, the
//! Landlock domain, the proxy allowlist, and the check that the kernel can
//! enforce what the policy asks.

use crate::cli::RunArgs;
use crate::common::usage;
use anyhow::{bail, Result};
use cowl_store::{Mode, NetMode};
use std::path::{Path, PathBuf};

/// `~/x` as `$HOME/x`, `~` as `$HOME`.
pub(crate) fn expand(p: &str) -> PathBuf {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    match (p, p.strip_prefix("~/"), home) {
        ("~", _, Some(home)) => PathBuf::from(home),
        (_, Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// Paths of `hide` and `expose` (flags and box.toml) are absolute or start
/// at `~`: a relative one would name a different place for every working
/// directory, so a hide meant for one would silently hide nothing.
pub(crate) fn check_policy_paths(what: &str, paths: &[String]) -> Result<()> {
    for p in paths {
        let p = p.as_str();
        if p == "~" || p.starts_with("~/") {
            if std::env::var_os("HOME").filter(|h| !h.is_empty()).is_none() {
                return Err(usage(format!(
                    "{what} {p}: HOME is not set, so `~` names nothing; give the absolute path"
                )));
            }
        } else if !p.starts_with('/') {
            return Err(usage(format!(
                "{what} {p}: give an absolute path or one starting at ~/ (a relative path would name a different place from every working directory)"
            )));
        }
    }
    Ok(())
}

/// The paths a box may not read: the default list and box.toml's `hide`
/// and the run's `--hide`, less what box.toml's `expose` or `--expose` lets
/// through. A system box (run by root, often through sudo) also hides the
/// secrets of every home of the machine, the sudo user's first, and of
/// every user's runtime directory.
pub(crate) fn effective_hidden(
    s: &cowl_store::BoxSettings,
    hide: &[String],
    expose: &[String],
    mode: Mode,
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
    let mut v = cowl_sandbox::hidden::default_hidden(
        env("HOME").as_deref(),
        env("XDG_RUNTIME_DIR").as_deref(),
        env("SSH_AUTH_SOCK").as_deref(),
    );
    v.extend(extra_hidden);
    // The caller's own home by the password database too, when HOME names
    // another place (`HOME=/tmp/x cowl run …` must not show ~/.ssh).
    if let Some(home) = passwd_home(cowl_sandbox::sys::geteuid()) {
        if env("HOME").as_deref() != Some(home.as_path()) {
            v.extend(cowl_sandbox::hidden::home_secrets(&home));
        }
    }
    if mode == Mode::System {
        for home in machine_homes() {
            v.extend(cowl_sandbox::hidden::home_secrets(&home));
        }
        for rt in dirs_in(Path::new("/run/user")) {
            v.extend(cowl_sandbox::hidden::runtime_secrets(&rt));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|h| seen.insert(h.clone()));
    v.retain(|h| !exposed.iter().any(|e| h.starts_with(e)));
    v.extend(s.hide.iter().chain(hide).map(|p| expand(p)));
    v
}

/// The home directory of `uid` in the password database.
fn passwd_home(uid: u32) -> Option<PathBuf> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let uid = uid.to_string();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[2] == uid && f[5].starts_with('/'))
        .map(|f| PathBuf::from(f[5]))
}

/// Every home directory of the machine that exists: the sudo user's (who
/// ran `sudo cowl run --system`), each of the password database's, each
/// directory under /home, and root's.
fn machine_homes() -> Vec<PathBuf> {
    let mut homes = Vec::new();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let home_of = |user: &str| {
        passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 5 && f[0] == user)
            .map(|f| PathBuf::from(f[5]))
    };
    if let Some(u) = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty()) {
        // Not in /etc/passwd (a directory user): the usual place.
        homes.push(home_of(&u).unwrap_or_else(|| Path::new("/home").join(&u)));
    }
    homes.extend(
        passwd
            .lines()
            .filter_map(|l| l.split(':').nth(5))
            .filter(|h| h.starts_with('/'))
            .map(PathBuf::from),
    );
    homes.extend(dirs_in(Path::new("/home")));
    homes.push(PathBuf::from("/root"));
    let mut seen = std::collections::BTreeSet::new();
    homes.retain(|h| h != Path::new("/") && h.is_dir() && seen.insert(h.clone()));
    homes
}

/// The directories directly in `dir`.
fn dirs_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an environment variable's name says it holds a credential
/// (case-insensitive): names ending in `_TOKEN`, `PASSWORD`, `PASSWD`,
/// `_API_KEY`, `_APIKEY`, `_ACCESS_KEY`, `_PRIVATE_KEY`, `_SIGNING_KEY`,
/// `_CREDENTIALS` or `_CREDENTIAL`; names holding `SECRET`; and
/// `AWS_ACCESS_KEY_ID`, `AWS_SESSION_TOKEN`, `AWS_SECURITY_TOKEN`,
/// `GH_TOKEN`, `GITHUB_TOKEN`, `TOKEN`, `MYSQL_PWD`, `DOCKER_AUTH_CONFIG`,
/// `NPM_CONFIG__AUTH` and `OP_SESSION_*`.
pub(crate) fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    const SUFFIXES: [&str; 12] = [
        "TOKEN",
        "_PAT",
        "PASSPHRASE",
        "PASSWORD",
        "PASSWD",
        "_API_KEY",
        "_APIKEY",
        "_ACCESS_KEY",
        "_PRIVATE_KEY",
        "_SIGNING_KEY",
        "_CREDENTIALS",
        "_CREDENTIAL",
    ];
    const NAMES: [&str; 8] = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "GH_TOKEN",
        "GITHUB_TOKEN",
        "MYSQL_PWD",
        "DOCKER_AUTH_CONFIG",
        "NPM_CONFIG__AUTH",
    ];
    SUFFIXES.iter().any(|s| n.ends_with(s))
        || n.contains("SECRET")
        || NAMES.contains(&n.as_str())
        || n.starts_with("OP_SESSION_")
}

/// An environment: (name, value) pairs.
pub(crate) type Env = Vec<(std::ffi::OsString, std::ffi::OsString)>;

/// The app's environment: the caller's, less the variables whose names say
/// they hold credentials ([`is_secret_name`]) unless box.toml's `env_pass`
/// or `--env NAME` passes them; `--env NAME=VALUE` sets one. Returns the
/// environment and the names dropped.
pub(crate) fn app_env(
    caller: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    pass: &[String],
    set: &[String],
) -> Result<(Env, Vec<String>)> {
    let mut named: Vec<&str> = pass.iter().map(String::as_str).collect();
    let mut values = Vec::new();
    for e in set {
        let (name, value) = match e.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (e.as_str(), None),
        };
        if name.is_empty() || name.contains('\0') {
            return Err(usage(format!(
                "--env {e:?}: give NAME (pass the caller's value) or NAME=VALUE"
            )));
        }
        match value {
            Some(v) => values.push((name.to_owned(), v.to_owned())),
            None => named.push(name),
        }
    }
    let mut out = Vec::new();
    let mut dropped = Vec::new();
    for (k, v) in caller {
        let name = k.to_string_lossy();
        if values.iter().any(|(n, _)| *n == name) {
            continue;
        }
        if is_secret_name(&name) && !named.contains(&name.as_ref()) {
            dropped.push(name.into_owned());
            continue;
        }
        out.push((k, v));
    }
    for (n, v) in values {
        out.push((n.into(), v.into()));
    }
    dropped.sort();
    Ok((out, dropped))
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
    let missing = if crate::to_sandbox::net(net).has_own_namespace() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_are_dropped_and_others_pass() {
        for n in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SESSION_TOKEN",
            "GITHUB_TOKEN",
            "gh_token",
            "CI_JOB_TOKEN",
            "PGPASSWORD",
            "DB_PASSWORD",
            "OPENAI_API_KEY",
            "AZURE_CLIENT_SECRET",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "OP_SESSION_my",
            "SLACKTOKEN",
            "TOKEN",
            "GITLAB_PAT",
            "GPG_PASSPHRASE",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "PATH",
            "HOME",
            "AWS_REGION",
            "AWS_PROFILE",
            "TERM",
            "LANG",
            "EDITOR",
            "KEYMAP",
            "PATCH_LEVEL",
            "XDG_PATH",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn env_passes_named_secrets_and_sets_values() {
        let caller = vec![
            ("PATH".into(), "/bin".into()),
            ("GITHUB_TOKEN".into(), "t".into()),
            ("NPM_TOKEN".into(), "n".into()),
            ("MODE".into(), "a".into()),
        ];
        let (env, dropped) = app_env(
            caller.into_iter(),
            &["NPM_TOKEN".into()],
            &["MODE=b".into(), "EXTRA=1".into()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("PATH"), Some("/bin".into()));
        assert_eq!(get("GITHUB_TOKEN"), None);
        assert_eq!(get("NPM_TOKEN"), Some("n".into()));
        assert_eq!(get("MODE"), Some("b".into()));
        assert_eq!(get("EXTRA"), Some("1".into()));
        assert_eq!(dropped, ["GITHUB_TOKEN"]);
    }
}
