//! The sandbox on its own, without the CLI or the store: a Spec for a box
//! whose directories are plain temporary ones, resolved against this
//! process's mount table, run. What the app writes lands in the live layer;
//! the host is unchanged; hidden paths and the store stay out of reach; the
//! exit status is the app's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cowl_sandbox::landlock::LandlockPolicy;
use cowl_sandbox::plan::{self, RunPaths, Spec};
use cowl_sandbox::policy::{Durability, Mode, NetMode};
use cowl_sandbox::spawn::{self, Observer};
use std::path::{Path, PathBuf};

/// A box's directories under a fresh temporary directory: `store/b` is the
/// box, `host` holds files the test plants on the host.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let base = std::env::var_os("COWL_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/cowl-tests")
            });
        let dir = base.join(format!("sandbox-{name}-{}", std::process::id()));
        remove(&dir);
        for d in [
            "host",
            "store/b/live/upper",
            "store/b/live/work",
            "store/b/mnt",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        Scratch { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    fn host(&self) -> PathBuf {
        self.dir.join("host")
    }

    fn upper(&self) -> PathBuf {
        self.dir.join("store/b/live/upper")
    }

    fn paths(&self) -> RunPaths {
        let dir = self.dir.join("store/b");
        RunPaths {
            netlog: dir.join("netlog.jsonl"),
            dir,
            live: "live".into(),
            upper: "live/upper".into(),
            work: "live/work".into(),
            scratch: "mnt".into(),
        }
    }

    fn spec(&self, script: &str, hide: Vec<PathBuf>) -> Spec {
        Spec {
            box_name: "b".into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            mode: Mode::Rootless,
            net: NetMode::None,
            cwd: self.host(),
            durability: Durability::Volatile,
            hide,
            allow_syscalls: Vec::new(),
            landlock: LandlockPolicy {
                scope: cowl_sandbox::landlock::abi() >= 6,
                ports: None,
            },
            binds: Vec::new(),
            proxy_allow: Vec::new(),
            env: vec![("PATH".into(), "/usr/bin:/bin:/usr/sbin:/sbin".into())],
            env_dropped: Vec::new(),
        }
    }

    /// Runs `script` in the box; its exit status. The sandbox runs only in
    /// a single-threaded process (the test harness has threads): in a
    /// child of the test's own, which exits with the run's status.
    fn run(&self, script: &str, hide: Vec<PathBuf>) -> i32 {
        // SAFETY: the child only runs the sandbox and leaves with _exit;
        // the harness's other thread waits for this one and holds no lock.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.run_here(script, hide)
            }))
            .unwrap_or(250);
            // SAFETY: leaving the forked child without running the
            // harness's exit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "the run's process died: {status}");
        let code = libc::WEXITSTATUS(status);
        assert_ne!(code, 250, "the run panicked in the forked child (its message went to the child's own copy of the captured output)");
        code
    }

    fn run_here(&self, script: &str, hide: Vec<PathBuf>) -> i32 {
        spawn::preflight(&self.store()).unwrap();
        let mounts = cowl_sandbox::mountinfo::read_own().unwrap();
        let plan = plan::resolve(
            &self.spec(script, hide),
            &self.paths(),
            &self.store(),
            &[],
            &mounts,
        );
        let limits = cowl_sandbox::limits::prepare(&Default::default(), "b", false).unwrap();
        let mut obs = Quiet::default();
        let code = spawn::run(&plan, &limits, &mut obs).unwrap();
        cowl_sandbox::limits::cleanup(&limits);
        assert!(obs.started.is_some(), "the box's init was never reported");
        code
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove(&self.dir);
    }
}

/// Removes a tree whatever the modes in it (a layer keeps host modes).
fn remove(p: &Path) {
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+rwx"])
        .arg(p)
        .stderr(std::process::Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(p);
}

#[derive(Default)]
struct Quiet {
    started: Option<i32>,
}

impl Observer for Quiet {
    fn started(&mut self, pid: i32) {
        self.started = Some(pid);
    }
    fn warning(&mut self, msg: &str) {
        eprintln!("warning: {msg}");
    }
    fn remove_tree(&self, path: &Path) {
        remove(path);
    }
}

#[test]
fn writes_land_in_the_live_layer_and_the_host_is_unchanged() {
    let s = Scratch::new("writes");
    let host = s.host();
    std::fs::write(host.join("notes.txt"), "host\n").unwrap();
    let script = format!(
        "echo box >> {h}/notes.txt && echo new > {h}/new.txt && rm -f {h}/gone.txt; exit 7",
        h = host.display()
    );
    std::fs::write(host.join("gone.txt"), "stays\n").unwrap();
    assert_eq!(s.run(&script, Vec::new()), 7, "the app's exit status");
    // The host as it was.
    assert_eq!(
        std::fs::read_to_string(host.join("notes.txt")).unwrap(),
        "host\n"
    );
    assert!(!host.join("new.txt").exists());
    assert!(host.join("gone.txt").exists());
    // The box's changes in its layer, the deletion a whiteout.
    let rel = host.strip_prefix("/").unwrap();
    let up = s.upper().join(rel);
    assert_eq!(
        std::fs::read_to_string(up.join("notes.txt")).unwrap(),
        "host\nbox\n"
    );
    assert_eq!(
        std::fs::read_to_string(up.join("new.txt")).unwrap(),
        "new\n"
    );
    let gone = std::fs::symlink_metadata(up.join("gone.txt")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(gone.file_type().is_char_device(), "a whiteout");
}

#[test]
fn a_process_with_threads_is_refused_not_left_hanging() {
    let s = Scratch::new("threads");
    // This test runs on a thread of the harness: the process has others.
    let mounts = cowl_sandbox::mountinfo::read_own().unwrap();
    let plan = plan::resolve(
        &s.spec("true", Vec::new()),
        &s.paths(),
        &s.store(),
        &[],
        &mounts,
    );
    let limits = cowl_sandbox::limits::prepare(&Default::default(), "b", false).unwrap();
    let err = spawn::run(&plan, &limits, &mut Quiet::default()).unwrap_err();
    assert!(err.to_string().contains("single-threaded"), "{err}");
}

#[test]
fn hidden_paths_and_the_store_are_out_of_reach() {
    let s = Scratch::new("hidden");
    let host = s.host();
    std::fs::create_dir_all(host.join("vault")).unwrap();
    std::fs::write(host.join("vault/key"), "secret").unwrap();
    let script = format!(
        "cat {h}/vault/key && exit 10; ls {st} && exit 11; ls {st}/b/live && exit 12; exit 0",
        h = host.display(),
        st = s.store().display()
    );
    assert_eq!(s.run(&script, vec![host.join("vault")]), 0);
    // Without the hide, the same read works: the test can fail.
    assert_eq!(
        s.run(
            &format!("cat {}/vault/key >/dev/null", host.display()),
            Vec::new()
        ),
        0
    );
}
