//! Resource limits of a box: memory, processes and CPU, through cgroup v2
//! where it is delegated to the caller, or cgroup v1 when cowl runs as root
//! on a machine whose controllers are on v1. Only a cgroup holds a limit
//! for the box as a whole.
//!
//! Without one, the rlimits that remain are not the limit asked for:
//! `RLIMIT_AS` caps each process on its own (six processes under
//! `--memory 256M` can hold 6 × 256M between them), and `RLIMIT_NPROC`
//! counts every process of the user, the box's and all others. Such a
//! limit, like one nothing here can enforce at all, is an error unless the
//! user accepts running with what holds instead (--best-effort), and then
//! a warning says exactly what that is.

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
    /// With --best-effort: each limit that does not hold box-wide, and
    /// what holds instead; printed whether or not `-v` is given.
    pub warnings: Vec<String>,
}

/// A size in the largest binary unit that gives a whole number, as
/// `--memory` takes it ("256M"), else in bytes.
fn size(bytes: u64) -> String {
    for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
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

/// Sets up the limits for a box; `name` names its cgroups. A limit that
/// would not hold for the box as a whole (an rlimit standing in for a
/// cgroup, or nothing at all) is an error, unless `best_effort`: then the
/// run gets what holds instead, and `warnings` say what that is.
pub fn prepare(l: &Limits, name: &str, best_effort: bool) -> Result<Enforcement, SandboxError> {
    let mut e = Enforcement::default();
    if !l.any() {
        return Ok(e);
    }
    let leaf = format!("cowl-{name}-{}", std::process::id());
    let err = |what: String| SandboxError::Unsupported(what);
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
    // Limits that hold box-wide, and (only with --best-effort) the
    // rlimits that stand in for those that cannot.
    let mut rl = Vec::new();
    let mut report = Vec::new();
    // Each limit that does not hold box-wide: what holds instead, as a
    // line of the -v report and as the sentence that warns or refuses.
    let mut instead: Vec<(String, String)> = Vec::new();
    if let Some(m) = l.memory {
        let shown = size(m);
        if let Some(d) = v1_dir("memory")? {
            v1_set(&d, "memory.limit_in_bytes", m.to_string())?;
            // With swap accounting, swap counts too; without it, nothing to set.
            let _ = v1_set(&d, "memory.memsw.limit_in_bytes", m.to_string());
            report.push(format!("memory {m} bytes: cgroup v1 memory.limit_in_bytes"));
        } else {
            rl.push((libc::RLIMIT_AS, m));
            instead.push((
                format!("memory {shown}: RLIMIT_AS, per process, not box-wide (--best-effort)"),
                format!("memory {shown} is not enforced box-wide: each process is limited to {shown} of address space (RLIMIT_AS), so several processes together can use more"),
            ));
        }
    }
    if let Some(p) = l.pids {
        if let Some(d) = v1_dir("pids")? {
            v1_set(&d, "pids.max", p.to_string())?;
            report.push(format!("pids {p}: cgroup v1 pids.max"));
        } else if root {
            instead.push((
                format!("pids {p}: not enforced (--best-effort)"),
                format!("pids {p} is not enforced at all: there is no pids cgroup, and RLIMIT_NPROC does not apply to root"),
            ));
        } else {
            rl.push((libc::RLIMIT_NPROC, p));
            instead.push((
                format!("pids {p}: RLIMIT_NPROC, all of your user's processes, not box-wide (--best-effort)"),
                format!("pids {p} is not enforced box-wide: RLIMIT_NPROC limits all of your user's processes, the box's and every other, to {p} (a fork in the box fails once you have {p} in all)"),
            ));
        }
    }
    if let Some(c) = l.cpus {
        if let Some(d) = v1_dir("cpu")? {
            v1_set(&d, "cpu.cfs_period_us", "100000".into())?;
            v1_set(&d, "cpu.cfs_quota_us", ((c * 100_000.0) as u64).to_string())?;
            report.push(format!("cpus {c}: cgroup v1 cpu.cfs_quota_us"));
        } else {
            instead.push((
                format!("cpus {c}: not enforced (--best-effort)"),
                format!("cpus {c} is not enforced at all: there is no delegated cgroup v2 cpu controller, and cgroup v1 needs root"),
            ));
        }
    }
    e.report = report;
    if instead.is_empty() {
        return Ok(e);
    }
    if !best_effort {
        cleanup(&e);
        let remedy = if root {
            "mount the cgroup controllers they need (cgroup v2, or cgroup v1's memory, pids and cpu)"
        } else {
            "run cowl in a cgroup v2 delegated to your user with the memory, pids and cpu controllers (systemd: `systemd-run --user --scope cowl run …`, with Delegate=yes for user@.service), or run cowl as root"
        };
        return Err(err(format!(
            "refusing to run with a limit that does not hold for the box as a whole: {}. To have limits hold box-wide, {remedy}; or pass --best-effort to run with only what holds instead",
            instead
                .iter()
                .map(|(_, why)| why.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    e.rlimits = rl;
    for (line, why) in instead {
        e.report.push(line);
        e.warnings.push(why);
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
    fn sizes_print_as_memory_takes_them() {
        assert_eq!(size(256 << 20), "256M");
        assert_eq!(size(3 << 29), "1536M");
        assert_eq!(size(2 << 30), "2G");
        assert_eq!(size(1536), "1536 bytes");
        assert_eq!(size(1000), "1000 bytes");
    }

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
