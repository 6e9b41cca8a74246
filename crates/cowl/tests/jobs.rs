//! Job control behaves as when the command runs directly: Ctrl-Z (or
//! SIGTSTP) stops the app and cowl with it, so the caller's shell gets its
//! prompt back; `fg` or `bg` (SIGCONT) continue both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::io::Read;
use std::time::{Duration, Instant};

/// The state letter of a process (`T` when stopped).
fn state(pid: u32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    s.rsplit(')')
        .next()
        .and_then(|r| r.trim_start().chars().next())
        .unwrap_or('?')
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The app the stop tests stop: one process that prints a line every 50 ms.
/// (Not a shell loop around `sleep`: a Ctrl-Z that lands between dash's
/// vfork and the child's exec stops the child, and dash itself stays in
/// vfork, not stopped, until continued. That is so without cowl as well,
/// and the test would wait for a stop that never comes.)
const TICKER: [&str; 3] = [
    "python3",
    "-c",
    "import time\nwhile True:\n print('tick', flush=True)\n time.sleep(0.05)",
];

/// What every pty driver below shares: `read_for(t)` reads the terminal's
/// master `fd` for `t` seconds, `read_until(word, t)` until `word` shows;
/// `TICKER` is the argv above.
const PTY_HELPERS: &str = r#"
def read_for(t):
    out = b''
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    return out
def read_until(word, t):
    out = b''
    end = time.time() + t
    while word not in out and time.time() < end:
        out += read_for(0.1)
    return out
"#;

/// Runs the Python pty driver `py` (cowl's path as its argv[1]), the
/// helpers above defined first.
fn pty_driver(w: &World, py: &str) -> std::process::Output {
    let imports = "import os, pty, sys, time, signal, select\n";
    let ticker = format!("TICKER = {TICKER:?}\n");
    std::process::Command::new("python3")
        .args([
            "-c",
            &format!("{imports}{ticker}{PTY_HELPERS}{py}"),
            cowl_bin().to_str().unwrap(),
        ])
        .env("COWL_HOME", &w.store)
        .current_dir(w.host())
        .output()
        .unwrap()
}

#[test]
fn sigtstp_stops_the_app_and_cowl_and_sigcont_resumes_both() {
    // Stdout a pipe: the app has no terminal; a Ctrl-Z on the caller's
    // terminal reaches cowl as SIGTSTP.
    let w = World::new("tstp");
    let mut child = w
        .cowl()
        .args(["run", "b", "--"])
        .args(TICKER)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&out);
    // SAFETY: making our end of the pipe non-blocking.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    let mut got = Vec::new();
    let mut drain = |got: &mut Vec<u8>| {
        let mut b = [0u8; 4096];
        while let Ok(n) = out.read(&mut b) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&b[..n]);
        }
    };
    wait_for("output", || {
        drain(&mut got);
        got.len() > 10
    });
    let pid = child.id();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTSTP) };
    wait_for("cowl stopped", || state(pid) == 'T');
    std::thread::sleep(Duration::from_millis(300));
    drain(&mut got);
    let at_stop = got.len();
    std::thread::sleep(Duration::from_millis(600));
    drain(&mut got);
    assert_eq!(got.len(), at_stop, "the app went on while stopped");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    wait_for("output again", || {
        drain(&mut got);
        got.len() > at_stop + 20
    });
    assert_ne!(state(pid), 'T');
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn ctrl_z_on_the_boxs_terminal_stops_cowl_and_fg_resumes_it() {
    // Under a terminal: Ctrl-Z is typed into the box's own pty and stops
    // the app there; cowl stops too (the shell would print "Stopped"), and
    // SIGCONT (what `fg` sends) resumes both.
    let w = World::new("ctrl-z");
    let py = r#"
import os, pty, sys, time, signal, select
cowl = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(cowl, [cowl, "run", "b", "--"] + TICKER)
first = b''
end = time.time() + 20
while b'tick' not in first and time.time() < end:
    first += read_for(0.1)
os.write(fd, b'\x1a')
stopped = False
end = time.time() + 10
while time.time() < end:
    p, status = os.waitpid(pid, os.WUNTRACED | os.WNOHANG)
    if p == pid and os.WIFSTOPPED(status):
        stopped = True
        break
    read_for(0.05)
read_for(0.3)
quiet = read_for(0.8)
os.kill(pid, signal.SIGCONT)
again = read_for(1.5)
os.write(fd, b'\x03')
end = time.time() + 10
code = None
while time.time() < end:
    p, status = os.waitpid(pid, os.WNOHANG)
    if p == pid:
        code = os.waitstatus_to_exitcode(status)
        break
    read_for(0.05)
print(b'tick' in first, stopped, quiet.count(b'tick'), again.count(b'tick') > 3, code)
"#;
    let out = pty_driver(&w, py);
    assert_success(&out, "pty driver");
    assert_eq!(
        stdout(&out).trim(),
        format!("True True 0 True {}", 128 + libc::SIGINT),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ctrl_z_stops_a_wrapper_script_that_runs_cowl_with_it() {
    // A shell's job is a script that runs cowl: the script and cowl share
    // the job's process group, whose parent is the shell. Ctrl-Z in the box
    // stops the whole job, so the shell sees it stopped (and gets its
    // prompt back); `fg` continues the job and the box with it.
    let w = World::new("ctrl-z-wrap");
    let py = r#"
import os, pty, sys, time, signal, select
cowl = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    # The session leader plays the interactive shell.
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    job = os.fork()
    if job == 0:
        os.setpgid(0, 0)
        os.execv("/bin/sh", ["sh", "-c", '"$0" run b -- "$@"; echo wrapper-done', cowl] + TICKER)
    os.setpgid(job, job)
    os.tcsetpgrp(0, job)
    _, st = os.waitpid(job, os.WUNTRACED)
    os.tcsetpgrp(0, os.getpgrp())
    print("JOB-STOPPED" if os.WIFSTOPPED(st) else "JOB-ENDED", flush=True)
    time.sleep(0.5)
    os.tcsetpgrp(0, job)
    os.killpg(job, signal.SIGCONT)
    _, st = os.waitpid(job, 0)
    os._exit(0)
first = read_until(b'tick', 20)
os.write(fd, b'\x1a')
stop = read_until(b'JOB-', 10)
again = read_until(b'tick', 10) if b'JOB-STOPPED' in stop else b''
os.write(fd, b'\x03')
rest = read_until(b'wrapper-done', 10)
end = time.time() + 10
while time.time() < end:
    p, _ = os.waitpid(pid, os.WNOHANG)
    if p == pid:
        break
    read_for(0.05)
print(b'tick' in first, b'JOB-STOPPED' in stop, b'tick' in again, b'wrapper-done' in rest)
"#;
    let out = pty_driver(&w, py);
    assert_success(&out, "pty driver");
    assert_eq!(
        stdout(&out).trim(),
        "True True True True",
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_job_started_in_the_background_reads_its_terminal_once_brought_forward() {
    // `cowl run b -- … &` then `fg`: a shell brings a running job to the
    // foreground without a signal. cowl then reads the terminal for the
    // box (and puts it in raw mode), though nothing woke it.
    let w = World::new("bg-fg");
    let py = r#"
import os, pty, sys, time, signal, select
cowl = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    job = os.fork()
    if job == 0:
        os.setpgid(0, 0)
        os.execv(cowl, [cowl, "run", "b", "--", "sh", "-c", "echo started; read line; echo got-$line"])
    os.setpgid(job, job)
    # In the background: the shell keeps the terminal.
    time.sleep(2)
    print("FG", flush=True)
    os.tcsetpgrp(0, job)
    _, st = os.waitpid(job, 0)
    os.tcsetpgrp(0, os.getpgrp())
    os._exit(0)
out = read_until(b'FG', 20)
time.sleep(0.5)
os.write(fd, b'hello\r')
out += read_until(b'got-hello', 10)
end = time.time() + 10
while time.time() < end:
    p, _ = os.waitpid(pid, os.WNOHANG)
    if p == pid:
        break
    read_for(0.05)
print(b'started' in out, b'got-hello' in out)
"#;
    let out = pty_driver(&w, py);
    assert_success(&out, "pty driver");
    assert_eq!(stdout(&out).trim(), "True True", "{}", stderr(&out));
}
