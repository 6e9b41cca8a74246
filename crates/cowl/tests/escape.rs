//! Escape tests: cowl-probe runs inside a box and tries each attack of the
//! security matrix that cowl's policy owns so far; every one must fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::PathBuf;

/// The probe, copied beside the test's fixtures: the build directory may
/// be anywhere, /tmp included, which a box does not see (it has its own).
fn probe_bin() -> PathBuf {
    let built = std::env::var_os("NEXTEST_BIN_EXE_cowl-probe")
        .or_else(|| std::env::var_os("NEXTEST_BIN_EXE_cowl_probe"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cowl-probe")));
    let base = std::env::var_os("COWL_TEST_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/cowl-tests"));
    std::fs::create_dir_all(&base).unwrap();
    // One copy per build, shared by the tests; made whole, then renamed.
    let stamp = std::fs::metadata(&built).unwrap().modified().unwrap();
    let stamp = stamp
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let copy = base.join(format!("cowl-probe-{stamp}"));
    if !copy.exists() {
        let tmp = base.join(format!(".cowl-probe-{}", std::process::id()));
        std::fs::copy(&built, &tmp).unwrap();
        std::fs::rename(&tmp, &copy).unwrap();
    }
    copy
}

/// Every verdict the probe printed must be `blocked` (`unavailable` is
/// accepted only for an entry point the kernel lacks).
fn check(out: &std::process::Output, what: &str) {
    assert_success(out, what);
    let text = stdout(out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() >= 40,
        "{what}: the probe printed too little:\n{text}"
    );
    let bad: Vec<&&str> = lines
        .iter()
        .filter(|l| {
            let mut f = l.split_whitespace();
            let (name, verdict) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
            !(verdict == "blocked" || (verdict == "unavailable" && name == "i386_keyctl"))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: attacks that were not blocked:\n{bad:#?}\nall:\n{text}"
    );
}

fn probe_args() -> Vec<String> {
    vec![
        "--".into(),
        probe_bin().display().to_string(),
        std::process::id().to_string(),
    ]
}

#[test]
fn every_attack_of_the_probe_fails_in_a_rootless_box() {
    let w = World::new("escape");
    let mut args = vec!["run".to_string(), "b".into()];
    args.extend(probe_args());
    let out = w.cowl().args(&args).output().unwrap();
    check(&out, "rootless box");
}

#[test]
fn every_attack_of_the_probe_fails_in_a_joined_run() {
    let w = World::new("escape-join");
    let mut child = w.start_sleeping("b");
    let mut args = vec!["run".to_string(), "b".into()];
    args.extend(probe_args());
    let out = w.cowl().args(&args).output().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    check(&out, "joined run");
}

#[test]
fn every_attack_of_the_probe_fails_in_a_system_box() {
    let w = World::new("escape-system");
    let mut args = vec!["run".to_string(), "--system".into(), "s".into()];
    args.extend(probe_args());
    let out = w.cowl().args(&args).output().unwrap();
    if !is_root() {
        assert_eq!(out.status.code(), Some(2));
        return;
    }
    // Root in a system box keeps the capabilities of its own user namespace.
    let text = stdout(&out)
        .lines()
        .filter(|l| !l.starts_with("capabilities "))
        .collect::<Vec<_>>()
        .join("\n");
    let filtered = std::process::Output {
        status: out.status,
        stdout: text.into_bytes(),
        stderr: out.stderr,
    };
    check(&filtered, "system box");
}

#[test]
fn secrets_are_hidden_unless_exposed() {
    let w = World::new("secrets");
    let home = w.host().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE KEY").unwrap();
    std::fs::write(home.join(".netrc"), "machine x password y").unwrap();
    std::fs::write(home.join("notes.txt"), "fine").unwrap();
    std::fs::create_dir_all(home.join("vault")).unwrap();
    std::fs::write(home.join("vault/token"), "t").unwrap();
    let run = |extra: &[&str], script: &str| {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend(["b", "--", "sh", "-c", script]);
        w.cowl().env("HOME", &home).args(&args).output().unwrap()
    };
    let out = run(&[], "cat ~/.ssh/id_ed25519; cat ~/.netrc; cat ~/notes.txt");
    let text = stdout(&out);
    assert!(
        !text.contains("PRIVATE") && !text.contains("password"),
        "{text}"
    );
    assert!(text.contains("fine"), "{text}");
    let out = run(&["--hide", "~/vault"], "cat ~/vault/token");
    assert!(!out.status.success() && stdout(&out).is_empty());
    let out = run(&["--expose", "~/.ssh"], "cat ~/.ssh/id_ed25519");
    assert_eq!(stdout(&out), "PRIVATE KEY");
    // Kept in box.toml, shown by cowl config.
    assert_success(
        &w.cowl()
            .env("HOME", &home)
            .args(["config", "b", "hide=[\"~/vault\"]"])
            .output()
            .unwrap(),
        "config",
    );
    let cfg = stdout(
        &w.cowl()
            .env("HOME", &home)
            .args(["config", "b"])
            .output()
            .unwrap(),
    );
    assert!(cfg.contains("vault") && cfg.contains(".ssh"), "{cfg}");
    let out = run(&[], "cat ~/vault/token");
    assert!(!out.status.success());
    assert!(home.join(".ssh/id_ed25519").exists());
}

#[test]
fn a_syscall_can_be_allowed_back_by_name_and_unknown_names_are_refused() {
    let w = World::new("allow");
    let prog = "import ctypes; l = ctypes.CDLL(None, use_errno=True); r = l.syscall(ctypes.c_long(PERSONALITY), 0x0040000); print(r, ctypes.get_errno())";
    let nr = if cfg!(target_arch = "x86_64") {
        "135"
    } else {
        "92"
    };
    let prog = prog.replace("PERSONALITY", nr);
    let out = w.cmd(&["run", "b", "--", "python3", "-c", &prog]);
    assert_eq!(
        stdout(&out).split_whitespace().nth(1),
        Some("1"),
        "{}",
        stdout(&out)
    );
    assert_success(
        &w.cmd(&["config", "b", "allow_syscalls=[\"personality\"]"]),
        "config",
    );
    let out = w.cmd(&["run", "b", "--", "python3", "-c", &prog]);
    assert_eq!(
        stdout(&out).split_whitespace().nth(1),
        Some("0"),
        "{}",
        stdout(&out)
    );
    let out = w.cmd(&["config", "b", "allow_syscalls=[\"frobnicate\"]"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("frobnicate"), "{}", stderr(&out));
}

#[test]
fn setuid_bits_and_file_capabilities_never_leave_the_box() {
    // CVE-2021-3493 / CVE-2023-0386: privilege smuggled through the upper.
    let w = World::new("setuid");
    let out = w.sh(
        "b",
        "cp /bin/true ./suid && chmod u+s ./suid && cp /bin/true ./sgid && chmod g+s ./sgid && stat -c %a suid sgid",
    );
    assert_success(&out, "chmod u+s");
    assert!(stderr(&out).contains("removed them"), "{}", stderr(&out));
    for name in ["suid", "sgid"] {
        let f = w.in_layers("b", &w.host().join(name));
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&f).unwrap().permissions());
        assert_eq!(
            mode & 0o6000,
            0,
            "{name} kept mode {mode:o} in {}",
            f.display()
        );
    }
    // Inside, while it ran, the mount was nosuid anyway.
    let mounts = w.ok("b", "grep ' / ' /proc/self/mountinfo | head -1");
    assert!(
        mounts.contains("nosuid") && mounts.contains("nodev"),
        "{mounts}"
    );
}

#[test]
fn the_security_posture_matches_the_golden_file() {
    // Credentials, capabilities, seccomp, no_new_privs, namespaces, fds,
    // id maps: any drift from the reviewed posture fails here.
    let w = World::new("posture");
    let mut args = vec![
        "run".to_string(),
        "b".into(),
        "--".into(),
        probe_bin().display().to_string(),
        "posture".into(),
    ];
    for ns in ["user", "mnt", "pid", "net", "uts", "ipc", "cgroup"] {
        let link = std::fs::read_link(format!("/proc/self/ns/{ns}"))
            .unwrap()
            .display()
            .to_string();
        let ino: String = link.chars().filter(char::is_ascii_digit).collect();
        args.push(format!("{ns}={ino}"));
    }
    // SAFETY: plain queries.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let out = w
        .cowl()
        .env("COWL_PROBE_CALLER_UID", uid.to_string())
        .env("COWL_PROBE_CALLER_GID", gid.to_string())
        .env("COWL_PROBE_BOX", "b")
        .args(&args)
        .output()
        .unwrap();
    assert_success(&out, "posture");
    let golden = include_str!("golden/posture.txt");
    assert_eq!(
        stdout(&out),
        golden,
        "the posture drifted from tests/golden/posture.txt"
    );
}

#[test]
fn a_hard_link_to_a_host_file_never_touches_the_host_file() {
    let w = World::new("hardlink");
    let before = std::fs::metadata("/etc/passwd").unwrap();
    let out = w.sh(
        "b",
        "ln /etc/passwd /etc/cowl-link && echo linked; stat -c %i /etc/passwd /etc/cowl-link 2>/dev/null",
    );
    let after = std::fs::metadata("/etc/passwd").unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (before.ino(), before.nlink(), before.mtime()),
        (after.ino(), after.nlink(), after.mtime())
    );
    let text = stdout(&out);
    if text.contains("linked") {
        // Root's box may link its own copy, never the host's inode (the
        // overlay reports the original inode number; the layer shows the truth).
        let copy = w.in_layers("b", std::path::Path::new("/etc/passwd"));
        assert_ne!(std::fs::metadata(copy).unwrap().ino(), before.ino());
    } else {
        assert!(!is_root(), "root's box could not link: {}", stderr(&out));
    }
}

#[test]
fn odd_directory_names_cannot_inject_overlay_options() {
    // bubblewrap's "--overlay path escaping": a host directory named like
    // mount options. cowl passes each layer with "lowerdir+", one path per
    // call, never parsed.
    let w = World::new("inject");
    let odd = if is_root() {
        // A top-level directory gets an overlay of its own.
        std::path::PathBuf::from(format!(
            "/cowl-inject-{},upperdir=x:y\\\\",
            std::process::id()
        ))
    } else {
        w.host().join("a,upperdir=x:y\\\\,lowerdir=/etc")
    };
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(odd.join("f"), "host").unwrap();
    let out = w.sh(
        "b",
        &format!(
            "cat '{0}/f'; echo; echo box > '{0}/g'; grep -c 'upperdir=x' /proc/self/mountinfo || true",
            odd.display()
        ),
    );
    let text = stdout(&out);
    let _ = std::fs::remove_dir_all(&odd);
    assert_success(&out, "odd names");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "host");
    // At most the path itself shows the text; no mount took it as options.
    assert!(lines[1].parse::<u32>().unwrap() <= 1, "{text}");
    assert!(!odd.join("g").exists(), "a write reached the host");
}

#[test]
fn a_dev_null_swapped_for_a_symlink_does_not_survive_into_the_next_run() {
    // The device row of the matrix: /dev is made fresh for every run, so a
    // box that replaces /dev/null with a symlink to a file it wants
    // clobbered gets a real /dev/null again next time; the host's is
    // untouched.
    let w = World::new("devnull");
    let target = w.host().join("victim");
    std::fs::write(&target, "keep\n").unwrap();
    let out = w.sh(
        "b",
        &format!(
            "rm -f /dev/null && ln -s '{}' /dev/null && echo swapped",
            target.display()
        ),
    );
    let swapped = stdout(&out).contains("swapped");
    let text = w.ok(
        "b",
        "stat -c '%F %t:%T' /dev/null; echo clobber > /dev/null; cat /dev/null | wc -c",
    );
    assert_eq!(
        text, "character special file 1:3\n0\n",
        "swapped: {swapped}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
    use std::os::unix::fs::FileTypeExt;
    let host = std::fs::symlink_metadata("/dev/null").unwrap();
    assert!(host.file_type().is_char_device());
    assert!(!w.in_layers("b", std::path::Path::new("/dev/null")).exists());
}
