//! Resource limits: a fork bomb stops at the process limit, an allocation
//! loop dies at the memory limit, and a limit no mechanism here can enforce
//! is an error unless --best-effort.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

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

#[test]
fn a_fork_bomb_stops_at_the_process_limit() {
    let w = World::new("pids");
    let out = w.cmd(&[
        "run", "-v", "--pids", "40", "b", "--", "python3", "-c", FORKS,
    ]);
    assert_success(&out, "forks");
    let n: u32 = stdout(&out).trim().parse().unwrap();
    assert!(n < 40, "{n} processes under a limit of 40");
    assert!(n > 5, "only {n} processes: the limit is far too tight");
    let how = stderr(&out);
    if is_root() {
        assert!(
            how.contains("cgroup v1 pids.max") || how.contains("cgroup v2 pids.max"),
            "{how}"
        );
    } else {
        assert!(
            how.contains("pids.max") || how.contains("RLIMIT_NPROC"),
            "{how}"
        );
    }
}

#[test]
fn an_allocation_loop_dies_at_the_memory_limit() {
    let w = World::new("memory");
    let out = w.cmd(&[
        "run",
        "--memory",
        "100M",
        "b",
        "--",
        "python3",
        "-c",
        "b = bytearray(400 * 1024 * 1024); print('allocated')",
    ]);
    assert!(
        !out.status.success(),
        "allocated 400 MiB under a 100 MiB limit"
    );
    assert!(!stdout(&out).contains("allocated"));
    // The limit is the box's, not the caller's: the same allocation works without it.
    let out = w.cmd(&[
        "run",
        "b",
        "--",
        "python3",
        "-c",
        "b = bytearray(400 * 1024 * 1024); print('allocated')",
    ]);
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
    if is_root() {
        assert_success(&out, "cpus as root");
        assert!(stderr(&out).contains("cpu"), "{}", stderr(&out));
        // The box's cgroups are gone with it.
        let left = std::fs::read_dir("/sys/fs/cgroup/cpu/cowl")
            .map(|r| {
                r.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("cowl-b-"))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(left, 0, "cgroups left behind");
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("--best-effort"), "{}", stderr(&out));
        let out = w.cmd(&["run", "--best-effort", "--cpus", "0.5", "b", "--", "true"]);
        assert_success(&out, "best effort");
        assert!(stderr(&out).contains("not enforced"), "{}", stderr(&out));
    }
}
