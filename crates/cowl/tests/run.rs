//! `cowl run`: the main job, driven through the real binary with real
//! programs. Every test that writes checks that the host tree it touched is
//! byte-for-byte unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[test]
fn files_created_changed_and_deleted_persist_across_runs_and_the_host_is_unchanged() {
    let w = World::new("persist");
    let h = w.host();
    std::fs::create_dir_all(h.join("dir/sub")).unwrap();
    std::fs::write(h.join("keep.txt"), "host\n").unwrap();
    std::fs::write(h.join("edit.txt"), "old\n").unwrap();
    std::fs::write(h.join("gone.txt"), "bye\n").unwrap();
    std::fs::write(h.join("dir/sub/f"), "in dir\n").unwrap();
    std::fs::write(h.join("mv-src.txt"), "moved\n").unwrap();
    std::fs::write(h.join("chmod.sh"), "#!/bin/sh\n").unwrap();
    let before = fingerprint(&h);

    w.ok(
        "b",
        "set -e
         echo new > new.txt
         echo changed > edit.txt
         rm gone.txt
         mv mv-src.txt mv-dst.txt
         mv dir dir2
         chmod 700 chmod.sh
         ln -s keep.txt link
         ln new.txt hard
         mkfifo fifo
         mkdir -p deep/a/b && echo x > deep/a/b/c
         truncate -s 3G sparse
         python3 -c 'import os; os.setxattr(\"new.txt\", \"user.cowl\", b\"v\")'",
    );
    assert_eq!(fingerprint(&h), before, "the host fixture changed");

    let out = w.ok(
        "b",
        "set -e
         cat new.txt edit.txt keep.txt mv-dst.txt dir2/sub/f deep/a/b/c
         test ! -e gone.txt && echo gone-is-gone
         test ! -e mv-src.txt && test ! -e dir && echo renamed
         stat -c %a chmod.sh
         readlink link
         test \"$(stat -c %i new.txt)\" = \"$(stat -c %i hard)\" && echo hardlinked
         test -p fifo && echo fifo
         stat -c '%s %b' sparse
         python3 -c 'import os; print(os.getxattr(\"new.txt\", \"user.cowl\").decode())'",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..6],
        ["new", "changed", "host", "moved", "in dir", "x"],
        "{out}"
    );
    assert_eq!(lines[6], "gone-is-gone");
    assert_eq!(lines[7], "renamed");
    assert_eq!(lines[8], "700");
    assert_eq!(lines[9], "keep.txt");
    assert_eq!(lines[10], "hardlinked");
    assert_eq!(lines[11], "fifo");
    let (size, blocks) = lines[12].split_once(' ').unwrap();
    assert_eq!(size, "3221225472");
    assert!(
        blocks.parse::<u64>().unwrap() < 1024,
        "sparse file lost its holes: {blocks} blocks"
    );
    assert_eq!(lines[13], "v");
    assert_eq!(fingerprint(&h), before, "the host fixture changed");
}

#[test]
fn a_one_gib_host_file_is_copied_up_whole_and_the_original_kept() {
    let w = World::new("bigfile");
    let big = w.host().join("big.bin");
    let f = std::fs::File::create(&big).unwrap();
    // Real data, not a hole: copy-up must move every byte.
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    {
        use std::io::Write;
        let mut bw = std::io::BufWriter::new(f);
        for _ in 0..1024 {
            bw.write_all(&chunk).unwrap();
        }
    }
    let before = fingerprint(&w.host());
    w.ok("b", "printf END >> big.bin");
    assert_eq!(fingerprint(&w.host()), before);
    let out = w.ok(
        "b",
        "stat -c %s big.bin; tail -c 3 big.bin; echo; head -c 4 big.bin | od -An -tu1",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], (1024u64 * 1024 * 1024 + 3).to_string());
    assert_eq!(lines[1], "END");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["0", "7", "14", "21"]
    );
    let upper_copy = std::fs::metadata(w.in_layers("b", &big)).unwrap();
    assert_eq!(upper_copy.len(), 1024 * 1024 * 1024 + 3);
}

#[test]
fn python_git_and_sqlite_work_in_a_box_home() {
    let w = World::new("apps");
    let home = w.host().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let before = fingerprint(&w.host());
    let run = |script: &str| {
        let out = w
            .cowl()
            .env("HOME", &home)
            .args(["run", "apps", "--", "sh", "-c", script])
            .output()
            .unwrap();
        assert_success(&out, script);
        stdout(&out)
    };
    run("set -e; cd \"$HOME\"
         python3 -c 'import pathlib; [pathlib.Path(f\"p{i}\").write_text(str(i)) for i in range(50)]'
         python3 -c 'import os; [os.remove(f\"p{i}\") for i in range(0, 50, 2)]'
         git init -q repo && cd repo
         git config user.email t@example.org && git config user.name t
         echo hello > README && git add README && git commit -qm first
         sqlite3 db.sqlite 'create table t(x); insert into t values (1),(2),(3);'");
    assert_eq!(fingerprint(&w.host()), before, "the host changed");
    let out = run("cd \"$HOME\"; ls | grep -c '^p'; cd repo && git log --format=%s && git status --porcelain | wc -l && sqlite3 db.sqlite 'select sum(x) from t'");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["25", "first", "1", "6"]);
}

#[test]
fn exit_status_is_the_apps_and_128_plus_signal() {
    let w = World::new("exit");
    assert_eq!(w.sh("b", "exit 7").status.code(), Some(7));
    assert_eq!(w.sh("b", "kill -TERM $$").status.code(), Some(143));
    assert_eq!(w.sh("b", "kill -KILL $$").status.code(), Some(137));
    let out = w.cmd(&["run", "b", "--", "no-such-command-here"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("no-such-command-here"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn signals_sent_to_cowl_reach_the_app() {
    for (sig, name) in [
        (libc::SIGTERM, "TERM"),
        (libc::SIGINT, "INT"),
        (libc::SIGHUP, "HUP"),
    ] {
        let w = World::new(&format!("sig-{name}"));
        let ready = w.host().join("ready");
        let child = w
            .cowl()
            .args(["run", "b", "--", "sh", "-c", &format!("trap 'echo got-{name}; exit 5' {name}; touch ready; while :; do sleep 0.05; done")])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_until(|| ready_in_box(&w, &ready));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(5), "{name}");
        assert_eq!(stdout(&out).trim(), format!("got-{name}"));
    }
}

/// The box writes `ready` into its own layer; the test sees it there.
fn ready_in_box(w: &World, host_path: &Path) -> bool {
    w.store
        .join("boxes/b/live/upper")
        .join(host_path.strip_prefix("/").unwrap())
        .exists()
}

#[test]
fn init_reaps_orphaned_zombies() {
    let w = World::new("reap");
    // The inner sh exits at once, orphaning a child that exits soon after:
    // only pid 1 can reap it.
    let out = w.ok(
        "b",
        "sh -c 'sleep 0.2 & exit 0'; sleep 0.6
         grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l
         echo pid1=$(cat /proc/1/comm)",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "zombies left: {out}");
    assert!(lines[1].starts_with("pid1="));
}

#[test]
fn cwd_environment_and_hostname() {
    let w = World::new("env");
    std::fs::create_dir_all(w.host().join("work/dir")).unwrap();
    let out = w
        .cowl()
        .current_dir(w.host().join("work/dir"))
        .env("COWL_TEST_VALUE", "passes through")
        .args([
            "run",
            "my-box.1",
            "--",
            "sh",
            "-c",
            "pwd; echo $COWL_TEST_VALUE; hostname; cat /proc/sys/kernel/hostname",
        ])
        .output()
        .unwrap();
    assert_success(&out, "env");
    let want = format!(
        "{}\npasses through\nmy-box.1\nmy-box.1\n",
        w.host().join("work/dir").display()
    );
    assert_eq!(stdout(&out), want);
}

#[test]
fn a_missing_working_directory_falls_back_to_home() {
    let w = World::new("cwd");
    let gone = w.host().join("gone");
    std::fs::create_dir_all(&gone).unwrap();
    // The box deletes the directory; the next run starts from there.
    w.ok("b", &format!("rmdir {}", gone.display()));
    let out = w
        .cowl()
        .current_dir(&gone)
        .env("HOME", w.host())
        .args(["run", "b", "--", "pwd"])
        .output()
        .unwrap();
    assert_success(&out, "pwd");
    assert_eq!(stdout(&out).trim(), w.host().to_str().unwrap());
    // And says so, before the run, naming where it runs instead.
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not in box b"), "{err}");
    assert!(err.contains("cowl diff b"), "{err}");
    assert!(
        err.contains(&format!("runs in {} instead", w.host().display())),
        "{err}"
    );
}

/// A directory of the host's /tmp, removed when the test ends.
struct HostTmp(std::path::PathBuf);

impl Drop for HostTmp {
    fn drop(&mut self) {
        remove_tree(&self.0);
    }
}

#[test]
fn a_working_directory_the_box_does_not_show_is_named_with_where_the_command_runs_instead() {
    let w = World::new("cwd-note");
    let tmp = HostTmp(std::path::PathBuf::from(format!(
        "/tmp/cowl-cwd-note-{}",
        std::process::id()
    )));
    let pkg = tmp.0.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("x.deb"), "not in the box").unwrap();
    let home = w.host();
    let run_in = |dir: &Path, args: &[&str]| {
        w.cowl()
            .current_dir(dir)
            .env("HOME", &home)
            .args(args)
            .output()
            .unwrap()
    };
    let pwd = ["run", "b", "--", "sh", "-c", "pwd; ls"];
    // Where the box shows the directory: the command runs there, and
    // nothing is said.
    let out = run_in(&home, &pwd);
    assert_success(&out, "in a visible directory");
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out).lines().next(), home.to_str());

    // Under the host's /tmp: the box has its own, so $HOME, said in one
    // line naming it and what to do, which is not --expose.
    let out = run_in(&pkg, &pwd);
    assert_success(&out, "under /tmp");
    assert_eq!(stdout(&out).lines().next(), home.to_str());
    assert!(!stdout(&out).contains("x.deb"));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    for want in [
        &pkg.display().to_string()[..],
        "the box has its own /tmp",
        &format!("runs in {} instead", home.display()),
        "copy them to a directory",
    ] {
        assert!(err.contains(want), "{want:?} not in: {err}");
    }
    assert!(!err.contains("--expose"), "{err}");
    // A joined run is told the same.
    let running = w.start("b", "sleep 1000");
    let out = run_in(&pkg, &pwd);
    assert_success(&out, "joined, under /tmp");
    assert_eq!(stdout(&out).lines().next(), home.to_str());
    assert_eq!(stderr(&out), err);
    drop(running);
    // --dry-run --json says it for scripts.
    let out = run_in(&pkg, &["run", "--dry-run", "--json", "b"]);
    assert_success(&out, "dry run");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["start_dir"], home.to_str().unwrap());
    assert!(plan["start_dir_note"]
        .as_str()
        .unwrap()
        .contains("has its own /tmp"));

    // /tmp itself: the box's own /tmp, without the host's files.
    let out = run_in(Path::new("/tmp"), &["run", "b", "--", "pwd"]);
    assert_success(&out, "in /tmp");
    assert_eq!(stdout(&out), "/tmp\n");
    assert!(
        stderr(&out).contains("runs in the box's /tmp"),
        "{}",
        stderr(&out)
    );

    // A hidden directory: $HOME, and --expose is what shows it.
    let ssh = home.join(".ssh/keys");
    std::fs::create_dir_all(&ssh).unwrap();
    let out = run_in(&ssh, &["run", "b", "--", "pwd"]);
    assert_success(&out, "in ~/.ssh");
    assert_eq!(stdout(&out).trim(), home.to_str().unwrap());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is hidden in the box"), "{err}");
    assert!(
        err.contains(&format!("--expose {}", home.join(".ssh").display())),
        "{err}"
    );
    let out = run_in(&ssh, &["run", "--expose", "~/.ssh", "b", "--", "pwd"]);
    assert_success(&out, "--expose ~/.ssh");
    assert_eq!(stdout(&out).trim(), ssh.to_str().unwrap());
    assert_eq!(stderr(&out), "");
}

#[test]
fn the_box_dies_with_cowl() {
    let w = World::new("die");
    let mut child = w.start_sleeping("b");
    let state = w.store.join("boxes/b/state");
    let text = std::fs::read_to_string(&state).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let init = v["pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{init}")).exists());
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(|| !Path::new(&format!("/proc/{init}")).exists());
}

#[test]
fn a_second_run_joins_the_running_box_and_both_write_at_once() {
    let w = World::new("join");
    let h = w.host();
    let first = w
        .cowl()
        .args([
            "run",
            "b",
            "--",
            "sh",
            "-c",
            "touch ready; for i in $(seq 1 100); do echo a > a$i; done; while [ ! -e done ]; do sleep 0.02; done; cat from-second; ls | grep -c '^[ab][0-9]'",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(|| ready_in_box(&w, &h.join("ready")));
    let ps = w.cmd(&["ps", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    assert_eq!(rows[0]["name"], "b", "{rows}");
    let second = w.sh("b", "for i in $(seq 1 100); do echo b > b$i; done; echo hello > from-second; cat /proc/1/comm; touch done");
    assert_success(&second, "second run");
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), ["hello", "200"]);
    // Both wrote through the one overlay: a new run sees all of it.
    assert_eq!(w.ok("b", "ls | grep -c '^[ab][0-9]'").trim(), "200");
    assert!(!h.join("a1").exists() && !h.join("b1").exists());
}

#[test]
fn stop_ends_a_running_box_and_ps_forgets_it() {
    let w = World::new("stop");
    let mut child = w.start_sleeping("b");
    let out = w.cmd(&["stop", "--grace", "5", "b"]);
    assert_success(&out, "stop");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let ps = w.cmd(&["ps", "--json"]);
    assert_eq!(stdout(&ps).trim(), "[]");
}

#[test]
fn invalid_box_names_are_usage_errors() {
    let w = World::new("names");
    for bad in ["Upper", "../x", "-x", ".hidden", "a/b", &"x".repeat(64)] {
        let out = w.cmd(&["run", bad, "--", "true"]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        if !bad.starts_with('-') {
            assert!(
                stderr(&out).contains("invalid box name"),
                "{}",
                stderr(&out)
            );
        }
    }
    assert!(
        !w.store.join("boxes").exists()
            || std::fs::read_dir(w.store.join("boxes")).unwrap().count() == 0
    );
}

#[test]
fn ls_shows_boxes_and_rm_refuses_a_running_one() {
    let w = World::new("lsrm");
    w.ok("one", "head -c 300000 /dev/urandom > blob");
    w.ok("two", "true");
    let ls = w.cmd(&["ls", "--json"]);
    assert_success(&ls, "ls");
    let rows: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["name"], "one");
    assert!(rows[0]["bytes"].as_u64().unwrap() >= 300_000, "{rows}");
    assert_eq!(rows[0]["running"], false);
    assert!(rows[0]["created"].as_str().unwrap().ends_with('Z'));

    let mut child = w.start_sleeping("two");
    let out = w.cmd(&["rm", "two"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("running"), "{}", stderr(&out));
    assert_success(&w.cmd(&["rm", "--force", "two"]), "rm --force");
    child.wait().unwrap();
    assert_success(&w.cmd(&["rm", "one"]), "rm");
    let rows: serde_json::Value = serde_json::from_slice(&w.cmd(&["ls", "--json"]).stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 0);
    assert_eq!(w.cmd(&["rm", "one"]).status.code(), Some(1));
}

#[test]
fn a_box_directory_replaced_by_a_symlink_is_refused() {
    // The CVE-2024-42472 class: between runs, a path of the box becomes a
    // symlink to somewhere else; cowl must not follow it.
    let w = World::new("tamper");
    w.ok("b", "echo 1 > f");
    assert_success(&w.cmd(&["config", "b", "snapshot=manual"]), "config");
    w.ok("b", "echo 2 > g");
    let victim = w.host().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    let before = fingerprint(&victim);
    for rel in [
        "live/upper",
        "live/work",
        "live",
        "mnt",
        "versions/1/layer",
        "versions",
    ] {
        let p = w.store.join("boxes/b").join(rel);
        let saved = w.store.join("saved");
        // Moving a directory needs write access to it (its ".." changes);
        // the live upper carries the mode of the host's `/`.
        let mode = std::fs::metadata(&p).unwrap().permissions();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        std::fs::rename(&p, &saved).unwrap();
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        let out = w.sh("b", "echo pwned > pwned");
        assert_eq!(out.status.code(), Some(1), "{rel}: {}", stderr(&out));
        assert!(stderr(&out).contains("tampered"), "{rel}: {}", stderr(&out));
        std::fs::remove_file(&p).unwrap();
        std::fs::rename(&saved, &p).unwrap();
        std::fs::set_permissions(&p, mode).unwrap();
    }
    assert_eq!(fingerprint(&victim), before);
    assert_eq!(
        w.ok("b", "cat f g").split_whitespace().collect::<Vec<_>>(),
        ["1", "2"]
    );
}

#[test]
fn the_store_is_not_visible_inside_a_box() {
    let w = World::new("hidden");
    w.ok("other", "echo secret > s");
    let store = w.store.display().to_string();
    let out = w.sh(
        "b",
        &format!("ls -A {store} 2>/dev/null | wc -l; cat {store}/boxes/other/box.toml; find {store} -mindepth 1 2>/dev/null | wc -l"),
    );
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["0", "0"],
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("box.toml"), "{}", stderr(&out));
}

#[test]
fn the_app_gets_no_privileges_and_no_stray_descriptors() {
    let w = World::new("sec");
    let out = w.ok(
        "b",
        "grep -E '^(NoNewPrivs|CapEff|CapPrm|CapBnd|CapAmb)' /proc/self/status; ls /proc/self/fd | sort -n | tr '\\n' ' '; echo",
    );
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    for cap in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert!(
            out.contains(&format!("{cap}:\t0000000000000000")),
            "{cap}: {out}"
        );
    }
    // ls's own directory descriptor is 3; nothing of cowl's is inherited.
    assert_eq!(out.lines().last().unwrap().trim(), "0 1 2 3");
    if is_root() {
        // Root in a rootless box holds no capability: it cannot give a file away.
        let out = w.sh("b", "touch f && chown 1:1 f");
        assert!(!out.status.success());
    } else {
        // A setuid-root program runs without its privileges.
        let out = w.sh("b", "su root -c true </dev/null");
        assert!(!out.status.success());
    }
}

#[test]
fn the_app_cannot_type_into_the_callers_terminal() {
    // CVE-2017-5226: with the caller's terminal as stdin, TIOCSTI must fail
    // (the app has its own session, so it is not its controlling terminal).
    let w = World::new("tiocsti");
    let py = r#"
import os, pty, sys, subprocess, select
master, slave = pty.openpty()
p = subprocess.Popen([sys.argv[1], "run", "b", "--", "python3", "-c",
  "import fcntl, termios\ntry:\n  fcntl.ioctl(0, termios.TIOCSTI, b'X')\n  print('injected')\nexcept OSError as e:\n  print('refused', e.errno)"],
  stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
os.close(slave)
out, err = p.communicate(timeout=60)
got = b''
while select.select([master], [], [], 0.2)[0]:
    try:
        got += os.read(master, 100)
    except OSError:
        break
print(out.decode().strip(), repr(got), p.returncode)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", py, cowl_bin().to_str().unwrap()])
        .env("COWL_HOME", &w.store)
        .current_dir(w.host())
        .output()
        .unwrap();
    assert_success(&out, "tiocsti probe");
    let text = stdout(&out);
    assert!(text.starts_with("refused"), "{text}");
    assert!(
        text.contains("b''"),
        "the caller's terminal received input: {text}"
    );
}

#[test]
fn an_interactive_shell_and_vi_work_under_a_terminal() {
    let w = World::new("pty");
    let py = r#"
import os, pty, sys, time
cowl = sys.argv[1]
def session(args, keys):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(cowl, [cowl] + args)
    out = b''
    for k in keys:
        time.sleep(0.5)
        os.write(fd, k)
    while True:
        try:
            b = os.read(fd, 4096)
        except OSError:
            break
        if not b:
            break
        out += b
    _, status = os.waitpid(pid, 0)
    return out.decode(errors='replace'), os.waitstatus_to_exitcode(status)
out, code = session(["run", "b", "--", "sh", "-i"], [b"echo $((6*7)); tty; test -t 0 && echo isatty\n", b"exit 3\n"])
print(code, "42" in out, "/dev/pts/" in out, "isatty" in out)
out, code = session(["run", "b", "--", "vi", "note.txt"], [b"ihello from vi\x1b", b":wq\r"])
print(code)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", py, cowl_bin().to_str().unwrap()])
        .env("COWL_HOME", &w.store)
        .env("TERM", "xterm")
        .current_dir(w.host())
        .output()
        .unwrap();
    assert_success(&out, "pty driver");
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        ["3 True True True", "0"],
        "{}",
        stderr(&out)
    );
    assert_eq!(w.ok("b", "cat note.txt").trim(), "hello from vi");
    assert!(!w.host().join("note.txt").exists());
}

#[test]
fn nested_host_mounts_are_visible_and_writes_to_them_are_captured() {
    // Every host mount point below a top-level directory must show its own
    // contents in the box (not an empty directory) and take writes into the
    // layer. /proc/self/mountinfo names them.
    let w = World::new("nested");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let store = w.store.display().to_string();
    let mut checked = 0;
    for line in mounts.lines() {
        let mp = line.split(' ').nth(4).unwrap();
        if mp == "/"
            || ["/proc", "/sys", "/dev", "/tmp", "/var/tmp", "/run/user"]
                .iter()
                .any(|p| mp.starts_with(p))
            || mp.contains('\\')
            || mp.starts_with(&store)
        {
            continue;
        }
        let Ok(md) = std::fs::metadata(mp) else {
            continue;
        };
        if !md.is_dir() {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(mp) else {
            continue;
        };
        let host: Vec<String> = {
            let mut v: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let out = w.sh("b", &format!("ls -A1 '{mp}' | LC_ALL=C sort"));
        assert_success(&out, mp);
        let mut inside: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
        inside.sort();
        assert_eq!(inside, host, "{mp} shows different entries in the box");
        checked += 1;
    }
    assert!(checked > 0, "no nested host mount to check");
}

#[test]
fn root_owned_host_files_are_read_only_for_a_rootless_non_root_caller() {
    let w = World::new("eacces");
    let before = std::fs::metadata("/etc/passwd").unwrap();
    let out = w.sh(
        "b",
        "echo evil >> /etc/passwd; echo $?; touch /etc/new-file; echo $?",
    );
    let text = stdout(&out);
    let codes: Vec<&str> = text.lines().map(str::trim).collect();
    if is_root() {
        // Root's rootless box maps uid 0 to itself: it may change its copy.
        assert_eq!(codes, ["0", "0"], "{}", stderr(&out));
        let copy = w.in_layers("b", Path::new("/etc/passwd"));
        assert!(std::fs::read_to_string(copy).unwrap().ends_with("evil\n"));
    } else {
        assert!(codes.iter().all(|c| *c != "0"), "{codes:?}");
        assert!(
            stderr(&out).contains("Permission denied"),
            "{}",
            stderr(&out)
        );
    }
    let after = std::fs::metadata("/etc/passwd").unwrap();
    assert_eq!(
        (before.len(), before.mtime(), before.ino()),
        (after.len(), after.mtime(), after.ino())
    );
}

#[test]
fn a_failed_start_leaves_the_live_layer_as_it_was() {
    // A start that fails midway (here: the live upper of /usr made a
    // symlink, found when that overlay is made, after the deeper ones) must
    // not leave the upper directories it had made for other overlays in
    // the live layer, where a commit would take them for the app's.
    let w = World::new("failed-start");
    w.ok("b", "true");
    assert_success(&w.cmd(&["config", "b", "snapshot=manual"]), "config");
    w.ok("b", "echo 1 > f");
    let upper = w.store.join("boxes/b/live/upper");
    // What the app wrote, and nothing of cowl's (the empty directories it
    // made for its overlays).
    // (Made writable first: cowl's directories carry the host's modes.)
    let opened = std::process::Command::new("chmod")
        .args(["-R", "u+rwX"])
        .arg(&upper)
        .status()
        .unwrap();
    assert!(opened.success());
    let prune = std::process::Command::new("find")
        .arg(&upper)
        .args([
            "-mindepth",
            "1",
            "-depth",
            "-type",
            "d",
            "-empty",
            "-delete",
        ])
        .status()
        .unwrap();
    assert!(prune.success());
    let decoy = w.dir.join("decoy");
    std::fs::create_dir_all(&decoy).unwrap();
    std::os::unix::fs::symlink(&decoy, upper.join("usr")).unwrap();
    let listing = |p: &std::path::Path| {
        let out = std::process::Command::new("find").arg(p).output().unwrap();
        let mut v: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    let before = listing(&upper);
    let out = w.sh("b", "true");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("tampered"), "{}", stderr(&out));
    assert_eq!(
        listing(&upper),
        before,
        "the failed start changed the live layer"
    );
    assert!(listing(&decoy).len() == 1, "the decoy was written");
    std::fs::remove_file(upper.join("usr")).unwrap();
    assert_eq!(w.ok("b", "cat f"), "1\n");
}

#[test]
fn a_version_holds_only_what_the_app_wrote_not_the_mount_points_cowl_made() {
    // The live layer gets an upper directory for every overlay, with the
    // host's mode (0555, or 000 where the caller may not enter); a version
    // of a run that wrote one file holds that file and its parents only.
    let w = World::new("clean-layer");
    w.ok("b", "echo x > written");
    let tarball = w.dir.join("v1.tar");
    let out = w.cmd(&["export", "b", "1", "-o", tarball.to_str().unwrap()]);
    assert_success(&out, "export");
    let list = std::process::Command::new("tar")
        .args(["-tf", tarball.to_str().unwrap()])
        .output()
        .unwrap();
    assert_success(&list, "tar -t");
    let names: Vec<String> = stdout(&list).lines().map(str::to_owned).collect();
    let want = w.host().join("written");
    let want = want.strip_prefix("/").unwrap();
    for n in &names {
        let n = n.trim_end_matches('/');
        assert!(
            want.starts_with(n),
            "version 1 holds {n}, which the app did not write: {names:?}"
        );
    }
    assert!(
        names
            .iter()
            .any(|n| n.trim_end_matches('/') == want.to_str().unwrap()),
        "{names:?}"
    );
}
