//! Shared helpers of the integration tests: each test gets its own store and
//! fixture directory, runs the real `cowl` binary, and can fingerprint a host
//! tree to prove the box left it unchanged.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod mirror;
pub mod net;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The cowl binary under test: `COWL_BIN`, else the one nextest extracted
/// from an archive (the suite's run as another user), else the one cargo built.
pub fn cowl_bin() -> PathBuf {
    std::env::var_os("COWL_BIN")
        .or_else(|| std::env::var_os("NEXTEST_BIN_EXE_cowl"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cowl")))
}

pub fn is_root() -> bool {
    // SAFETY: always succeeds.
    unsafe { libc::geteuid() == 0 }
}

/// One test's world: a store and a fixture directory on the host, outside
/// /tmp (a box has its own /tmp, so host /tmp is not visible inside).
pub struct World {
    pub dir: PathBuf,
    pub store: PathBuf,
}

impl World {
    pub fn new(name: &str) -> World {
        let base = std::env::var_os("COWL_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/cowl-tests")
            });
        let dir = base.join(format!("{name}-{}", std::process::id()));
        remove_tree(&dir);
        std::fs::create_dir_all(dir.join("host")).unwrap();
        World {
            store: dir.join("store"),
            dir,
        }
    }

    /// The fixture directory: host files the tests plant and then check.
    pub fn host(&self) -> PathBuf {
        self.dir.join("host")
    }

    pub fn cowl(&self) -> Command {
        let mut c = Command::new(cowl_bin());
        c.env("COWL_HOME", &self.store)
            .current_dir(self.host())
            .stdin(Stdio::null());
        c
    }

    /// `cowl ARGS…`, output captured.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.cowl().args(args).output().unwrap()
    }

    /// `cowl run BOX -- sh -c SCRIPT`, output captured.
    pub fn sh(&self, boxname: &str, script: &str) -> Output {
        self.cmd(&["run", boxname, "--", "sh", "-c", script])
    }

    /// Like `sh`, asserting success; returns stdout.
    pub fn ok(&self, boxname: &str, script: &str) -> String {
        let out = self.sh(boxname, script);
        assert_success(&out, script);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl World {
    /// Where the box keeps its copy of host path `p`: the live layer, else
    /// the newest version that has it.
    pub fn in_layers(&self, boxname: &str, p: &Path) -> PathBuf {
        let rel = p.strip_prefix("/").unwrap();
        let b = self.store.join("boxes").join(boxname);
        let live = b.join("live/upper").join(rel);
        if live.symlink_metadata().is_ok() {
            return live;
        }
        let mut vs: Vec<u64> = std::fs::read_dir(b.join("versions"))
            .map(|r| {
                r.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        vs.sort();
        for v in vs.iter().rev() {
            let f = b
                .join("versions")
                .join(v.to_string())
                .join("layer")
                .join(rel);
            if f.symlink_metadata().is_ok() {
                return f;
            }
        }
        live
    }
}

impl World {
    /// Starts `cowl run BOX -- sleep 1000` and waits until the box runs.
    pub fn start_sleeping(&self, boxname: &str) -> std::process::Child {
        let child = self
            .cowl()
            .args(["run", boxname, "--", "sleep", "1000"])
            .spawn()
            .unwrap();
        let state = self.store.join("boxes").join(boxname).join("state");
        wait_until(|| state.exists());
        child
    }
}

/// A box started in the background, stopped however the test ends.
pub struct Running<'a> {
    w: &'a World,
    name: String,
    child: Option<std::process::Child>,
}

impl World {
    /// Starts `cowl run BOX -- sh -c SCRIPT` and waits until the box runs.
    pub fn start(&self, boxname: &str, script: &str) -> Running<'_> {
        let child = self
            .cowl()
            .args(["run", boxname, "--", "sh", "-c", script])
            .spawn()
            .unwrap();
        let state = self.store.join("boxes").join(boxname).join("state");
        let r = Running {
            w: self,
            name: boxname.to_owned(),
            child: Some(child),
        };
        wait_until(|| state.exists());
        r
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = self.w.cmd(&["stop", &self.name]);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

/// Waits (at most 20 s) until `f` holds.
pub fn wait_until(mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed().as_secs() < 20, "timed out waiting");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl Drop for World {
    fn drop(&mut self) {
        remove_tree(&self.dir);
    }
}

pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Removes a tree whatever modes a box left in it.
pub fn remove_tree(p: &Path) {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return;
    };
    if md.is_dir() {
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                remove_tree(&e.path());
            }
        }
        let _ = std::fs::remove_dir(p);
    } else {
        let _ = std::fs::remove_file(p);
    }
}

/// A fingerprint of a host tree: every entry's path, type, mode, owner,
/// size, mtime, link target and content. Equal before and after a box ran
/// means the box changed nothing there.
pub fn fingerprint(root: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    let mut stack = vec![root.to_path_buf()];
    let mut entries = Vec::new();
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        entries.push(p.clone());
        if md.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    entries.sort();
    for p in entries {
        let md = std::fs::symlink_metadata(&p).unwrap();
        (
            p.as_os_str(),
            md.mode(),
            md.uid(),
            md.gid(),
            md.size(),
            md.mtime(),
            md.mtime_nsec(),
            md.ino(),
        )
            .hash(&mut h);
        if md.file_type().is_symlink() {
            std::fs::read_link(&p).unwrap().hash(&mut h);
        } else if md.is_file() {
            std::fs::read(&p).unwrap().hash(&mut h);
        }
    }
    h.finish()
}
