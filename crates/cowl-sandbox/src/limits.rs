//! Resource limits of a box: memory, processes and CPU, through cgroup v2
//! where it is delegated to the caller, cgroup v1 when cowl runs as root on
//! a machine whose controllers are on v1, and rlimits as a last resort.
//! What no mechanism can enforce is an error, unless the user accepts
//! running without it (--best-effort).

use crate::error::SandboxError;
use std::path::{Path, PathBuf};

/// The limits asked for.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Limits {
    /// Bytes of memory.
    pub memory: Option<u64>,
    /// Processes and threads.
    pub pids: Option<u64>,
    /// CPUs' worth of time (1.5 = one and a half CPUs).
    pub cpus: Option<f64>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory.is_some() || self.pids.is_some() || self.cpus.is_some()
    }
}

/// How the limits are enforced for one run.
#[derive(Debug, Default)]
pub struct Enforcement {
    /// Cgroup directories the box's init joins, removed when it ends.
    pub cgroups: Vec<PathBuf>,
    /// rlimits the app sets before exec: (resource, value).
    pub rlimits: Vec<(u32, u64)>,
    /// What enforces what, for `cowl run -v`.
    pub report: Vec<String>,
}

fn write(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(file), value)
}

fn v1(ctrl: &str) -> Option<PathBuf> {
    let p = PathBuf::from("/sys/fs/cgroup").join(ctrl);
    p.join("cgroup.procs").exists().then_some(p)
}

/// A delegated cgroup v2 directory of the caller, with the controllers
/// enabled for children, if there is one.
fn v2_base(needed: &[&str]) -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let root = Path::new("/sys/fs/cgroup");
    if !root.join("cgroup.controllers").exists() {
        return None;
    }
    // Our own cgroup holds us, so a child is made beside us: the parent.
    let dir = root.join(rel.trim_start_matches('/'));
    let parent = dir.parent()?;
    let enabled = std::fs::read_to_string(parent.join("cgroup.subtree_control")).ok()?;
    if needed
        .iter()
        .all(|c| enabled.split_whitespace().any(|e| e == *c))
        && access_w(parent)
    {
        Some(parent.to_path_buf())
    } else {
        None
    }
}

fn access_w(p: &Path) -> bool {
    crate::sys::cpath(p).is_ok_and(|c| {
        // SAFETY: valid C string.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    })
}

/// Sets up the limits for a box; `name` names its cgroups.
pub fn prepare(l: &Limits, name: &str, best_effort: bool) -> Result<Enforcement, SandboxError> {
    let mut e = Enforcement::default();
    if !l.any() {
        return Ok(e);
    }
    let leaf = format!("cowl-{name}-{}", std::process::id());
    let err = |what: String| SandboxError::Unsupported(what);
    let mut missing = Vec::new();
    let needed: Vec<&str> = [
        ("memory", l.memory.is_some()),
        ("pids", l.pids.is_some()),
        ("cpu", l.cpus.is_some()),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(c, _)| *c)
    .collect();
    if let Some(base) = v2_base(&needed) {
        let dir = base.join(&leaf);
        std::fs::create_dir(&dir)
            .map_err(|x| err(format!("cannot create cgroup {}: {x}", dir.display())))?;
        let set = |f: &str, v: String| {
            write(&dir, f, &v).map_err(|x| err(format!("cannot set {f} in {}: {x}", dir.display())))
        };
        if let Some(m) = l.memory {
            set("memory.max", m.to_string())?;
            set("memory.swap.max", "0".into()).ok();
            e.report
                .push(format!("memory {m} bytes: cgroup v2 memory.max"));
        }
        if let Some(p) = l.pids {
            set("pids.max", p.to_string())?;
            e.report.push(format!("pids {p}: cgroup v2 pids.max"));
        }
        if let Some(c) = l.cpus {
            set("cpu.max", format!("{} 100000", (c * 100_000.0) as u64))?;
            e.report.push(format!("cpus {c}: cgroup v2 cpu.max"));
        }
        e.cgroups.push(dir);
        return Ok(e);
    }
    // SAFETY: always succeeds.
    let root = unsafe { libc::geteuid() } == 0;
    let mut v1_dir = |ctrl: &str| -> Result<Option<PathBuf>, SandboxError> {
        if !root {
            return Ok(None);
        }
        let Some(base) = v1(ctrl) else {
            return Ok(None);
        };
        let dir = base.join("cowl").join(&leaf);
        std::fs::create_dir_all(&dir)
            .map_err(|x| err(format!("cannot create cgroup {}: {x}", dir.display())))?;
        e.cgroups.push(dir.clone());
        Ok(Some(dir))
    };
    let v1_set = |dir: &Path, f: &str, v: String| {
        write(dir, f, &v).map_err(|x| err(format!("cannot set {f} in {}: {x}", dir.display())))
    };
    let mut rl = Vec::new();
    let mut report = Vec::new();
    if let Some(m) = l.memory {
        if let Some(d) = v1_dir("memory")? {
            v1_set(&d, "memory.limit_in_bytes", m.to_string())?;
            // With swap accounting, swap counts too; without it, nothing to set.
            let _ = v1_set(&d, "memory.memsw.limit_in_bytes", m.to_string());
            report.push(format!("memory {m} bytes: cgroup v1 memory.limit_in_bytes"));
        } else {
            rl.push((libc::RLIMIT_AS, m));
            report.push(format!(
                "memory {m} bytes: RLIMIT_AS (address space, a rougher measure than memory used)"
            ));
        }
    }
    if let Some(p) = l.pids {
        if let Some(d) = v1_dir("pids")? {
            v1_set(&d, "pids.max", p.to_string())?;
            report.push(format!("pids {p}: cgroup v1 pids.max"));
        } else if root {
            missing.push("a process limit (as root, RLIMIT_NPROC does not apply and there is no pids cgroup)".to_owned());
        } else {
            rl.push((libc::RLIMIT_NPROC, p));
            report.push(format!(
                "pids {p}: RLIMIT_NPROC (counts all of your processes, not only the box's)"
            ));
        }
    }
    if let Some(c) = l.cpus {
        if let Some(d) = v1_dir("cpu")? {
            v1_set(&d, "cpu.cfs_period_us", "100000".into())?;
            v1_set(&d, "cpu.cfs_quota_us", ((c * 100_000.0) as u64).to_string())?;
            report.push(format!("cpus {c}: cgroup v1 cpu.cfs_quota_us"));
        } else {
            missing.push(
                "a CPU limit (no delegated cgroup v2 cpu controller, and cgroup v1 needs root)"
                    .to_owned(),
            );
        }
    }
    e.rlimits = rl;
    e.report = report;
    if !missing.is_empty() {
        let what = missing.join("; ");
        if best_effort {
            e.report.push(format!("NOT enforced: {what}"));
            eprintln!("cowl: warning: not enforced here: {what}");
        } else {
            cleanup(&e);
            return Err(err(format!(
                "cannot enforce {what}: delegate cgroup v2 controllers to your user (systemd: Delegate=yes), run as root, or pass --best-effort"
            )));
        }
    }
    Ok(e)
}

/// Puts the box's init (and so everything it starts) in the cgroups.
pub fn attach(e: &Enforcement, pid: i32) -> Result<(), SandboxError> {
    for d in &e.cgroups {
        write(d, "cgroup.procs", &pid.to_string()).map_err(|x| {
            SandboxError::Unsupported(format!("cannot join cgroup {}: {x}", d.display()))
        })?;
    }
    Ok(())
}

/// Removes the box's cgroups once it has ended.
pub fn cleanup(e: &Enforcement) {
    for d in &e.cgroups {
        let _ = std::fs::remove_dir(d);
    }
}

/// Parses "512M", "2G", "100K" or a number of bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&s[..i], 1 << 20),
        (i, 'G' | 'g') => (&s[..i], 1 << 30),
        (i, 'T' | 't') => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num.parse().ok()?;
    (v > 0.0 && v.is_finite()).then_some((v * mul as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("-1G"), None);
    }
}
