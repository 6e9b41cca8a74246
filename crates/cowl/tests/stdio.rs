//! The app's stdin, stdout and stderr are never the caller's own
//! descriptors: cowl relays them through pipes (or the box's pty), so a box
//! cannot reopen them through /proc/self/fd and reach the host file or
//! directory behind them. Streams still behave as when the command runs
//! directly: end of input, exit status, SIGPIPE, the order of `2>&1`, and
//! close order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;

/// The modes a box runs in here: rootless always, system as root.
fn modes() -> Vec<Vec<&'static str>> {
    let mut v = vec![vec![]];
    if is_root() {
        v.push(vec!["--system"]);
    }
    v
}

fn run_with(
    w: &World,
    extra: &[&str],
    boxname: &str,
    script: &str,
    stdin: Stdio,
    stdout: Stdio,
) -> std::process::Output {
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend([boxname, "--", "sh", "-c", script]);
    w.cowl()
        .args(&args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn stdin_a_host_file_is_not_written_through_proc_self_fd() {
    for extra in modes() {
        let w = World::new("stdin-file");
        let notes = w.host().join("notes.txt");
        std::fs::write(&notes, "mine\n").unwrap();
        let before = fingerprint(&w.host());
        let out = run_with(
            &w,
            &extra,
            "b",
            "echo X >> /proc/self/fd/0; echo Y > /proc/self/fd/0; chmod 777 /proc/self/fd/0; truncate -s 0 /proc/self/fd/0; cat",
            Stdio::from(File::open(&notes).unwrap()),
            Stdio::piped(),
        );
        assert_eq!(
            std::fs::read_to_string(&notes).unwrap(),
            "mine\n",
            "{extra:?}"
        );
        assert_eq!(
            std::fs::metadata(&notes).unwrap().mode() & 0o777,
            0o644 & !umask(),
            "{extra:?}"
        );
        assert_eq!(
            before,
            fingerprint(&w.host()),
            "{extra:?}: the host changed"
        );
        // The app still reads what the file holds.
        assert!(stdout(&out).contains("mine"), "{extra:?}: {}", stderr(&out));
    }
}

fn umask() -> u32 {
    // SAFETY: umask is read by setting it and setting it back.
    unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    }
}

#[test]
fn stdin_a_host_directory_cannot_be_entered_through_proc_self_fd() {
    // With `< ~` an earlier cowl let the box read a hidden key and edit the
    // host's ~/.bashrc through /proc/self/fd/0.
    for extra in modes() {
        let w = World::new("stdin-dir");
        let home = w.host().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE KEY").unwrap();
        std::fs::write(home.join(".bashrc"), "# mine\n").unwrap();
        let before = fingerprint(&w.host());
        let out = run_with(
            &w,
            &extra,
            "b",
            "cat /proc/self/fd/0/.ssh/id_ed25519; echo evil >> /proc/self/fd/0/.bashrc; touch /proc/self/fd/0/dropped; ls -a /proc/self/fd/0/; true",
            Stdio::from(File::open(&home).unwrap()),
            Stdio::piped(),
        );
        assert!(
            !stdout(&out).contains("PRIVATE"),
            "{extra:?}: {}",
            stdout(&out)
        );
        assert!(
            !stdout(&out).contains(".bashrc"),
            "{extra:?}: {}",
            stdout(&out)
        );
        assert_eq!(
            before,
            fingerprint(&w.host()),
            "{extra:?}: the host changed"
        );
    }
}

#[test]
fn stdout_a_new_host_file_cannot_be_made_setuid_through_proc_self_fd() {
    // In a system box, with stdout a new root-owned file, an earlier cowl
    // let `cat /bin/sh >/proc/self/fd/1; chmod 4755 /proc/self/fd/1` leave a
    // setuid-root shell on the host.
    for extra in modes() {
        let w = World::new("stdout-file");
        let out_file = w.host().join("out");
        let f = File::create(&out_file).unwrap();
        let out = run_with(
            &w,
            &extra,
            "b",
            "cat /bin/true >/proc/self/fd/1; chmod 4755 /proc/self/fd/1; chmod 4755 /proc/self/fd/2; chown 0:0 /proc/self/fd/1; true",
            Stdio::null(),
            Stdio::from(f),
        );
        assert_success(&out, "setuid through stdout");
        let md = std::fs::metadata(&out_file).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o644 & !umask(), "{extra:?}");
        // What the app wrote to its stdout is the file's content, as it
        // would be run directly.
        let (got, want) = (
            std::fs::read(&out_file).unwrap(),
            std::fs::read("/bin/true").unwrap(),
        );
        assert!(
            got == want,
            "{extra:?}: stdout holds {} bytes, not /bin/true's {}; stderr: {}",
            got.len(),
            want.len(),
            stderr(&out)
        );
    }
}

#[test]
fn the_probe_finds_no_host_inode_behind_stdio_or_inits() {
    // The probe's stdio_host_inode check, with stdin a host file and stdout
    // a host file: neither the app's 0-2 nor its init's are host inodes.
    for extra in modes() {
        let w = World::new("stdio-probe");
        std::fs::write(w.host().join("in"), "x").unwrap();
        let probe = w.host().join("probe");
        let built = std::env::var_os("NEXTEST_BIN_EXE_cowl-probe")
            .or_else(|| std::env::var_os("NEXTEST_BIN_EXE_cowl_probe"))
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_cowl-probe").into());
        std::fs::copy(built, &probe).unwrap();
        let out_file = w.host().join("out");
        let mut args = vec!["run"];
        args.extend_from_slice(&extra);
        let probe_s = probe.display().to_string();
        let me = std::process::id().to_string();
        args.extend(["b", "--", probe_s.as_str(), me.as_str()]);
        let st = w
            .cowl()
            .args(&args)
            .stdin(File::open(w.host().join("in")).unwrap())
            .stdout(File::create(&out_file).unwrap())
            .status()
            .unwrap();
        assert!(st.success(), "{extra:?}");
        let text = std::fs::read_to_string(&out_file).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("stdio_host_inode "))
            .unwrap_or_else(|| panic!("no stdio_host_inode verdict:\n{text}"));
        assert!(line.contains(" blocked "), "{extra:?}: {line}");
    }
}

#[test]
fn streams_end_exit_and_keep_their_order_as_when_run_directly() {
    let w = World::new("streams");
    let cowl = cowl_bin();
    let c = cowl.display();
    // End of input, the exit status, 2>&1 in order, SIGPIPE's status.
    let script = format!(
        r#"set -u
printf 'a\nb\n' | {c} run b -- cat
echo "cat:$?"
{c} run b -- sh -c 'exit 7'
echo "exit:$?"
for i in 1 2 3 4 5 6 7 8; do
  {c} run b -- sh -c 'echo 1; echo 2 >&2; echo 3; echo 4 >&2; echo 5' 2>&1 | tr -d '\n'; echo
done
{c} run b -- yes | head -n 2 | tr -d '\n'; echo " ${{PIPESTATUS[0]}}"
"#
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .env("COWL_HOME", &w.store)
        .current_dir(w.host())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success(&out, "streams");
    let mut want = vec!["a", "b", "cat:0", "exit:7"];
    want.extend(["12345"; 8]);
    want.push("yy 141");
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        want,
        "{}",
        stderr(&out)
    );
}

#[test]
fn closing_stdout_in_the_box_ends_the_readers_input_before_the_box_ends() {
    // The reader must see the end of its input when the app closes its
    // stdout, not only when cowl exits, as it would with the app run
    // directly. `flag` is written on the host once cowl has exited.
    let w = World::new("close-order");
    let c = cowl_bin();
    let script = format!(
        r#"{{ {c} run b -- sh -c 'echo out; exec >&-; sleep 3' >&3 3>&- & exec 3>&-; wait; touch flag; }} 3>&1 >/dev/null | {{ cat; if [ -e flag ]; then echo late; else echo early; fi; }}"#,
        c = c.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .env("COWL_HOME", &w.store)
        .current_dir(w.host())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success(&out, "close order");
    assert_eq!(stdout(&out), "out\nearly\n", "{}", stderr(&out));
}

#[test]
fn a_seekable_stdin_keeps_what_the_app_did_not_read() {
    // `{ app; cat; } < file`: what the app did not read is still there for
    // the next reader, as with the app run directly (dd reads exactly 5).
    let w = World::new("give-back");
    let data: String = (0..5000).map(|i| format!("{i}\n")).collect();
    std::fs::write(w.host().join("in"), &data).unwrap();
    let c = cowl_bin();
    let script = format!(
        "{{ {} run b -- dd bs=1 count=5 status=none; cat; }} < in",
        c.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("COWL_HOME", &w.store)
        .current_dir(w.host())
        .output()
        .unwrap();
    assert_success(&out, "give back");
    let got = stdout(&out);
    assert!(
        got == data,
        "got {} bytes, not the file's {}: {:?}…",
        got.len(),
        data.len(),
        &got[..got.len().min(40)]
    );
}

#[test]
fn the_callers_terminal_does_not_reach_a_box_through_stdout_or_stderr() {
    // Under `script` cowl's stdout and stderr are a terminal. With stdin
    // not a terminal the box gets no terminal at all: pipes, relayed to it.
    // With stdin and stdout a terminal but stderr a file, stderr is a pipe.
    let w = World::new("no-host-tty");
    let c = cowl_bin();
    let run = |cmd: String| {
        std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("COWL_HOME", &w.store)
            .current_dir(w.host())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(format!(
        "{} run b -- sh -c 'for fd in 0 1 2; do readlink /proc/self/fd/$fd; done; test -t 1 || echo not-a-terminal' < /dev/null",
        c.display()
    ));
    assert_success(&out, "script");
    let text = stdout(&out).replace('\r', "");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], "/dev/null", "{text}");
    assert!(
        lines[1].starts_with("pipe:") && lines[2].starts_with("pipe:"),
        "{text}"
    );
    assert_eq!(lines[3], "not-a-terminal", "{text}");
    let out = run(format!(
        "{} run b -- sh -c 'readlink /proc/self/fd/2; test -t 0 && test -t 1 && echo terminal; echo to-stderr >&2' 2>err",
        c.display()
    ));
    assert_success(&out, "script");
    let text = stdout(&out).replace('\r', "");
    assert!(
        text.contains("pipe:") && text.contains("terminal"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(w.host().join("err")).unwrap(),
        "to-stderr\n"
    );
}

#[test]
fn stdio_of_a_joined_run_is_relayed_too() {
    let w = World::new("stdio-join");
    let _running = w.start("b", "sleep 1000");
    let notes = w.host().join("notes.txt");
    std::fs::write(&notes, "mine\n").unwrap();
    let out = run_with(
        &w,
        &[],
        "b",
        "echo X >> /proc/self/fd/0; readlink /proc/self/fd/0; cat",
        Stdio::from(File::open(&notes).unwrap()),
        Stdio::piped(),
    );
    assert_success(&out, "joined run");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine\n");
    assert!(stdout(&out).starts_with("pipe:"), "{}", stdout(&out));
}
