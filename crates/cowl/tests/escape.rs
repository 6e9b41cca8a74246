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
    // A relative path would hide nothing from another working directory:
    // refused, not silently kept.
    let out = run(&["--hide", "vault"], "cat ~/vault/token");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("absolute path"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
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
    // A relative path is refused when it is set, not at every run after.
    let out = w
        .cowl()
        .env("HOME", &home)
        .args(["config", "b", "hide=[\"vault\"]"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("absolute path"), "{}", stderr(&out));
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
        .env("AWS_SECRET_ACCESS_KEY", "posture")
        .env("GITHUB_TOKEN", "posture")
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

/// Runs `script` with `sh` in a private mount namespace (as root) or in a
/// user and mount namespace that maps the caller to itself (otherwise),
/// with cowl at $COWL: a host with mounts of the test's own, which no other
/// process sees.
fn in_private_mounts(w: &World, script: &str) -> std::process::Output {
    let ns: &[&str] = if is_root() {
        &["--mount", "--propagation", "private"]
    } else {
        &[
            "--map-current-user",
            "--keep-caps",
            "--mount",
            "--propagation",
            "private",
        ]
    };
    std::process::Command::new("unshare")
        .args(ns)
        .args(["sh", "-c", script])
        .env("COWL", cowl_bin())
        .env("COWL_HOME", &w.store)
        .current_dir(w.host())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_system_box_hides_the_secrets_of_every_home_the_sudo_users_first() {
    // Run through sudo, an installer read the invoking user's ~/.ssh and
    // ~/.aws and every other user's. Here /home is a tmpfs of the test's own
    // with two users' homes, and SUDO_USER names one of them.
    let w = World::new("system-homes");
    if !is_root() {
        // Only root can run a system box; the refusal says so.
        let out = w.cmd(&["run", "--system", "s", "--", "true"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("sudo"), "{}", stderr(&out));
        return;
    }
    let script = r#"set -e
mount -t tmpfs none /home
mkdir -p /home/alice/.ssh /home/alice/.aws /home/bob/.config/gh /home/bob/projects
echo ALICE-KEY > /home/alice/.ssh/id_ed25519
echo ALICE-AWS > /home/alice/.aws/credentials
echo BOB-GH > /home/bob/.config/gh/hosts.yml
echo bob-notes > /home/bob/projects/notes
SUDO_USER=alice "$COWL" run --system s -- sh -c 'cat /home/alice/.ssh/id_ed25519 /home/alice/.aws/credentials /home/bob/.config/gh/hosts.yml /home/bob/projects/notes; true'
echo ---
SUDO_USER=alice "$COWL" run --system --expose /home/alice/.ssh s -- cat /home/alice/.ssh/id_ed25519
"#;
    let out = in_private_mounts(&w, script);
    assert_success(&out, "system homes");
    let text = stdout(&out);
    let (hidden, exposed) = text.split_once("---\n").unwrap();
    for secret in ["ALICE-KEY", "ALICE-AWS", "BOB-GH"] {
        assert!(!hidden.contains(secret), "{secret} readable: {text}");
    }
    assert!(hidden.contains("bob-notes"), "{text}");
    assert_eq!(exposed, "ALICE-KEY\n", "--expose opens one on purpose");
}

#[test]
fn a_hidden_path_that_appears_while_the_box_runs_stays_hidden() {
    // Hiding was decided once, at start: a ~/.aws made on the host while
    // the box ran was readable from it and from a joined run.
    let mut modes = vec![vec![]];
    if is_root() {
        modes.push(vec!["--system"]);
    }
    for extra in modes {
        let w = World::new("late-secret");
        let home = w.host().join("home");
        // ~/.config is there from the start, ~/.aws and ~/.password-store
        // are not: both kinds of later secrets stay hidden.
        std::fs::create_dir_all(home.join(".config")).unwrap();
        // Told to go on by SIGUSR1 (which cowl forwards): a file made on the
        // host would do, but the box may not see it once it looked for it.
        let script = "go=; trap 'go=1' USR1; while [ -z \"$go\" ]; do sleep 0.05; done; cat ~/.aws/credentials ~/.password-store/x ~/.config/gh/hosts.yml 2>/dev/null; ls -a ~ ~/.config";
        let mut args = vec!["run"];
        args.extend_from_slice(&extra);
        args.extend(["b", "--", "sh", "-c", script]);
        let first = w
            .cowl()
            .env("HOME", &home)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let state = w.store.join("boxes/b/state");
        wait_until(|| state.exists());
        for (dir, file, text) in [
            (".aws", "credentials", "AWS-SECRET"),
            (".password-store", "x", "PASS-SECRET"),
            (".config/gh", "hosts.yml", "GH-SECRET"),
        ] {
            std::fs::create_dir_all(home.join(dir)).unwrap();
            std::fs::write(home.join(dir).join(file), text).unwrap();
        }
        let mut join_args = vec!["run"];
        join_args.extend_from_slice(&extra);
        join_args.extend([
            "b",
            "--",
            "sh",
            "-c",
            "cat ~/.aws/credentials ~/.password-store/x ~/.config/gh/hosts.yml 2>/dev/null; ls -a ~ ~/.config",
        ]);
        let joined = w
            .cowl()
            .env("HOME", &home)
            .args(&join_args)
            .output()
            .unwrap();
        assert_success(&joined, "joined run");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(first.id() as i32, libc::SIGUSR1) };
        let first = first.wait_with_output().unwrap();
        for (what, out) in [("running box", &first), ("joined run", &joined)] {
            let text = stdout(out);
            let names: Vec<&str> = text.lines().collect();
            assert!(!text.contains("SECRET"), "{extra:?} {what}: {text}");
            for hidden in [".aws", ".password-store", "gh"] {
                assert!(!names.contains(&hidden), "{extra:?} {what}: {text}");
            }
            assert!(names.contains(&".config"), "{extra:?} {what}: {text}");
        }
    }
}

#[test]
fn credentials_of_common_tools_are_hidden_by_default() {
    let w = World::new("more-secrets");
    let home = w.host().join("home");
    let files = [
        ".git-credentials",
        ".config/gh/hosts.yml",
        ".config/hub",
        ".npmrc",
        ".pypirc",
        ".cargo/credentials",
        ".cargo/credentials.toml",
        ".docker/config.json",
        ".config/containers/auth.json",
        ".vault-token",
        ".terraform.d/credentials.tfrc.json",
        ".config/op/config",
        ".local/share/keyrings/login.keyring",
    ];
    for f in files {
        let p = home.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("SECRET {f}")).unwrap();
    }
    std::fs::write(home.join(".cargo/config.toml"), "fine").unwrap();
    let script = files
        .iter()
        .map(|f| format!("cat ~/{f} 2>/dev/null;"))
        .collect::<String>()
        + " cat ~/.cargo/config.toml";
    let out = w
        .cowl()
        .env("HOME", &home)
        .args(["run", "b", "--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "fine", "{}", stderr(&out));
}

#[test]
fn credential_variables_are_dropped_unless_passed_on_purpose() {
    let w = World::new("secret-env");
    let run = |args: &[&str]| {
        let mut v = vec!["run", "-v"];
        v.extend_from_slice(args);
        v.extend([
            "b",
            "--",
            "sh",
            "-c",
            "echo ${AWS_SECRET_ACCESS_KEY:-none} ${GITHUB_TOKEN:-none} ${NPM_TOKEN:-none} ${PLAIN:-none} ${SET:-none}",
        ]);
        w.cowl()
            .env("AWS_SECRET_ACCESS_KEY", "aws")
            .env("GITHUB_TOKEN", "gh")
            .env("NPM_TOKEN", "npm")
            .env("PLAIN", "plain")
            .args(&v)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert_success(&out, "env");
    assert_eq!(stdout(&out), "none none none plain none\n");
    let err = stderr(&out);
    assert!(
        err.contains("AWS_SECRET_ACCESS_KEY")
            && err.contains("GITHUB_TOKEN")
            && !err.contains("aws\n"),
        "-v names what was dropped, not its value: {err}"
    );
    let out = run(&["--env", "GITHUB_TOKEN", "--env", "SET=x"]);
    assert_eq!(stdout(&out), "none gh none plain x\n", "{}", stderr(&out));
    assert_success(
        &w.cmd(&["config", "b", "env_pass=[\"NPM_TOKEN\"]"]),
        "config",
    );
    let out = run(&[]);
    assert_eq!(
        stdout(&out),
        "none none npm plain none\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_socket_bound_onto_a_file_is_not_reachable_from_any_box() {
    // A host listener bind-mounted onto a file (docker.sock on developer
    // machines) would hand a box root on the host: connect() fails in every
    // network mode, rootless and in a system box.
    let w = World::new("bound-socket");
    let d = w.host();
    let mut modes = vec![""];
    if is_root() {
        modes.push("--system");
    }
    let mut runs = String::new();
    for m in &modes {
        for net in ["none", "host", "ports", "proxy"] {
            runs.push_str(&format!(
                "\"$COWL\" run {m} --net {net} b{} -- python3 -c \"$CONNECT\" {d}/app.sock\n",
                if m.is_empty() { "" } else { "-sys" },
                d = d.display()
            ));
        }
    }
    let script = format!(
        r#"set -e
cd {d}
python3 -c 'import socket, time, sys; s = socket.socket(socket.AF_UNIX); s.bind("listener.sock"); s.listen(); open("up", "w").close(); time.sleep(60)' &
listener=$!
trap 'kill $listener' EXIT
while [ ! -e up ]; do sleep 0.05; done
touch app.sock
# mount(2) itself: mount(8) refuses a caller that is not uid 0, even with
# the capability of its own user namespace.
python3 -c 'import ctypes, sys; l = ctypes.CDLL(None, use_errno=True); r = l.mount(b"listener.sock", b"app.sock", None, 4096, None); sys.exit(0 if r == 0 else ctypes.get_errno())'
python3 -c "$CONNECT" {d}/app.sock
{runs}"#,
        d = d.display()
    );
    let connect = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n  s.connect(sys.argv[1]); print('connected')\nexcept OSError as e:\n  print('refused', e.errno)";
    let out = std::process::Command::new("unshare")
        .args(if is_root() {
            vec!["--mount", "--propagation", "private"]
        } else {
            vec![
                "--map-current-user",
                "--keep-caps",
                "--mount",
                "--propagation",
                "private",
            ]
        })
        .args(["sh", "-c", &script])
        .env("COWL", cowl_bin())
        .env("COWL_HOME", &w.store)
        .env("CONNECT", connect)
        .current_dir(w.host())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_success(&out, "bound socket");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 4 * modes.len(), "{text}\n{}", stderr(&out));
    assert_eq!(
        lines[0], "connected",
        "the host itself reaches its listener"
    );
    for l in &lines[1..] {
        assert!(
            l.starts_with("refused"),
            "a box reached the host's listener: {text}"
        );
    }
}
