//! Resource limits hold for the box as a whole, or the run is refused.
//!
//! Where a cgroup can hold them (cgroup v1 or v2 as root, a cgroup v2
//! delegated to the caller), a fork bomb stops at the process limit and
//! processes that together exceed the memory limit do not all get their
//! memory. Where only rlimits remain (per process, per user), a plain limit
//! is refused with exit 1 and `--best-effort` runs with the rlimit and says
//! what holds instead. Each test runs as root and as an unprivileged user
//! and asserts what holds in the case it finds itself in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::Path;

/// Whether the caller's cgroup v2 parent has `controllers` enabled for its
/// children and is writable: where cowl makes a box's cgroup rootless.
fn delegated_cgroup_v2(controllers: &[&str]) -> bool {
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return false;
    };
    let Some(rel) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    let root = Path::new("/sys/fs/cgroup");
    if !root.join("cgroup.controllers").exists() {
        return false;
    }
    let dir = root.join(rel.trim_start_matches('/'));
    let Some(parent) = dir.parent() else {
        return false;
    };
    let enabled =
        std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
    let writable = {
        let c = std::ffi::CString::new(parent.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    };
    writable
        && controllers
            .iter()
            .all(|c| enabled.split_whitespace().any(|e| e == *c))
}

/// Whether a limit on `controllers` holds box-wide for this caller: as
/// root through cgroup v1 (or v2), else through a delegated cgroup v2.
fn box_wide(controllers: &[&str]) -> bool {
    is_root() || delegated_cgroup_v2(controllers)
}

/// Asserts that the run was refused for a limit that would not hold
/// box-wide, and that the error says why and what to do.
fn assert_refused(out: &std::process::Output, limit: &str, fallback: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for want in [
        limit,
        "not enforced box-wide",
        fallback,
        "--best-effort",
        "cgroup v2",
        "root",
    ] {
        assert!(err.contains(want), "{want:?} not in: {err}");
    }
    assert!(stdout(out).is_empty(), "the box ran: {}", stdout(out));
}

/// cgroups named after box `b` left in cowl's cgroup v1 directory of `ctrl`.
fn leftover_cgroups(ctrl: &str) -> usize {
    std::fs::read_dir(format!("/sys/fs/cgroup/{ctrl}/cowl"))
        .map(|r| {
            r.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("cowl-b-"))
                .count()
        })
        .unwrap_or(0)
}

const FORKS: &str = r#"
import os, time
n = 0
for i in range(400):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(2)
        os._exit(0)
    n += 1
print(n)
"#;

fn forks_made(out: &std::process::Output) -> u32 {
    assert_success(out, "forks");
    stdout(out).trim().parse().unwrap()
}

#[test]
fn a_fork_bomb_stops_at_the_process_limit_of_the_box_or_is_refused() {
    let w = World::new("pids");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "-v", "--pids", "40"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["b", "--", "python3", "-c", FORKS]);
        w.cmd(&args)
    };
    if box_wide(&["pids"]) {
        let out = run(&[]);
        let n = forks_made(&out);
        assert!(n < 40, "{n} processes under a limit of 40");
        assert!(n > 5, "only {n} processes: the limit is far too tight");
        let how = stderr(&out);
        assert!(
            how.contains("cgroup v1 pids.max") || how.contains("cgroup v2 pids.max"),
            "{how}"
        );
        assert!(!how.contains("not enforced"), "{how}");
        return;
    }
    // RLIMIT_NPROC would count every process of the user: refused.
    assert_refused(&run(&[]), "pids 40", "RLIMIT_NPROC");
    // Accepted as what it is: the user's processes, the box's among them.
    let out = run(&["--best-effort"]);
    let n = forks_made(&out);
    assert!(n < 40, "{n} processes under RLIMIT_NPROC 40");
    let how = stderr(&out);
    assert!(
        how.contains("warning: pids 40 is not enforced box-wide: RLIMIT_NPROC limits all of your user's processes"),
        "{how}"
    );
}

/// Four processes at once, each holding 100 MiB it wrote, for a moment
/// together; prints how many held theirs to the end.
const FOUR_HOLD_100M: &str = r#"
import os, time
kids = []
for i in range(4):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            b = bytearray(100 << 20)
            b[::4096] = b"x" * len(b[::4096])
            os.write(w, b"1")
        except MemoryError:
            os._exit(3)
        time.sleep(3)
        os._exit(0)
    os.close(w)
    kids.append((pid, r))
held = 0
for pid, r in kids:
    got = os.read(r, 1)
    _, status = os.waitpid(pid, 0)
    if got == b"1" and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        held += 1
print("held", held)
"#;

/// How many of the four processes held their 100 MiB, if the box said.
fn held(out: &std::process::Output) -> Option<u32> {
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix("held "))
        .map(|n| n.trim().parse().unwrap())
}

#[test]
fn processes_that_together_exceed_the_memory_limit_do_not_all_get_it() {
    let w = World::new("memory-shared");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "-v", "--memory", "256M"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["b", "--", "python3", "-c", FOUR_HOLD_100M]);
        w.cmd(&args)
    };
    // Without a limit all four hold theirs: the machine has the memory.
    let free = w.cmd(&["run", "b", "--", "python3", "-c", FOUR_HOLD_100M]);
    assert_success(&free, "no limit");
    assert_eq!(held(&free), Some(4), "{}", stderr(&free));
    if box_wide(&["memory"]) {
        // 400 MiB between them under 256M for the box: each is under the
        // limit on its own (what a per-process RLIMIT_AS would let
        // through), but not all of them together.
        let out = run(&[]);
        let how = stderr(&out);
        assert!(
            how.contains("cgroup v1 memory.limit_in_bytes") || how.contains("cgroup v2 memory.max"),
            "{how}"
        );
        match held(&out) {
            Some(n) => assert!(n < 4, "all four held 100 MiB under a 256M box limit"),
            // The kernel may end the box itself rather than a child.
            None => assert!(!out.status.success(), "{how}"),
        }
        return;
    }
    assert_refused(&run(&[]), "memory 256M", "RLIMIT_AS");
    // What --best-effort warns is exactly what happens: each process gets
    // 256M of address space, and the four together get 400 MiB.
    let out = run(&["--best-effort"]);
    assert_success(&out, "--best-effort");
    let how = stderr(&out);
    assert!(
        how.contains("warning: memory 256M is not enforced box-wide: each process is limited to 256M of address space (RLIMIT_AS)"),
        "{how}"
    );
    assert_eq!(held(&out), Some(4), "{how}");
}

#[test]
fn an_allocation_loop_dies_at_the_memory_limit() {
    let w = World::new("memory");
    let alloc = "b = bytearray(400 * 1024 * 1024); print('allocated')";
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--memory", "100M"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["b", "--", "python3", "-c", alloc]);
        w.cmd(&args)
    };
    let out = if box_wide(&["memory"]) {
        run(&[])
    } else {
        assert_refused(&run(&[]), "memory 100M", "RLIMIT_AS");
        // One process alone is held by the per-process limit too.
        run(&["--best-effort"])
    };
    assert!(
        !out.status.success(),
        "allocated 400 MiB under a 100 MiB limit"
    );
    assert!(!stdout(&out).contains("allocated"));
    // The limit is the box's, not the caller's: the same allocation works without it.
    let out = w.cmd(&["run", "b", "--", "python3", "-c", alloc]);
    assert_eq!(stdout(&out).trim(), "allocated");
    assert_eq!(
        w.cmd(&["run", "--memory", "lots", "b", "--", "true"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn a_cpu_limit_is_enforced_or_refused_never_silently_dropped() {
    let w = World::new("cpus");
    let out = w.cmd(&["run", "-v", "--cpus", "0.5", "b", "--", "true"]);
    if box_wide(&["cpu"]) {
        assert_success(&out, "cpus");
        let how = stderr(&out);
        assert!(
            how.contains("cgroup v1 cpu.cfs_quota_us") || how.contains("cgroup v2 cpu.max"),
            "{how}"
        );
        // The box's cgroups are gone with it.
        assert_eq!(leftover_cgroups("cpu"), 0, "cgroups left behind");
    } else {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("cpus 0.5 is not enforced at all"), "{err}");
        assert!(err.contains("--best-effort"), "{err}");
        let out = w.cmd(&["run", "--best-effort", "--cpus", "0.5", "b", "--", "true"]);
        assert_success(&out, "best effort");
        assert!(
            stderr(&out).contains("warning: cpus 0.5 is not enforced at all"),
            "{}",
            stderr(&out)
        );
    }
}
