//! Test support for the history modules: a scratch store with one box in a
//! temporary directory (removed when dropped), writing into its live layer,
//! snapshots with a plain layout, and crashes at the store's fault points.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{snapshot, Layout, SnapshotRequest};
use crate::manifest::Made;
use crate::{BoxDir, BoxName, Mode, Store};
use std::cell::Cell;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A store in its own temporary directory, holding box `b`.
pub(super) struct Scratch {
    dir: PathBuf,
    /// The store.
    pub(super) store: Store,
    /// The box, as `open_or_create` made it.
    pub(super) b: BoxDir,
}

impl Scratch {
    /// A new store under `std::env::temp_dir()`, named after `tag`, the
    /// process and a counter (tests run in parallel threads).
    pub(super) fn new(tag: &str) -> Scratch {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cowl-history-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = crate::boxdir::remove_tree(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let uid = std::fs::metadata(&dir).unwrap().uid();
        let store = Store::open(&dir.join("store"), uid).unwrap();
        let (opened, _) = store
            .open_or_create(&BoxName::new("b").unwrap(), Mode::Rootless)
            .unwrap();
        let b = opened.recover().unwrap();
        Scratch { dir, store, b }
    }

    /// A directory of the scratch area outside the store, made now.
    pub(super) fn outside(&self, name: &str) -> PathBuf {
        let d = self.dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = crate::boxdir::remove_tree(&self.dir);
    }
}

/// No directory is a mount point.
fn no_mount_points(_: &Path) -> bool {
    false
}

/// A layout without mount points or private directories.
pub(super) fn layout() -> Layout<'static> {
    Layout {
        structural: &no_mount_points,
        private: &[],
    }
}

/// Writes `text` to `rel` in the box's live layer (made if needed). The
/// paths the tests use do not exist on the host, which the stack shows
/// below the versions.
pub(super) fn write_live(b: &BoxDir, rel: &str, text: &str) {
    let p = b.upper().join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Snapshots the live layer (made by `cowl snapshot`, unpinned).
pub(super) fn snap(b: &BoxDir, message: &str) -> Option<u64> {
    let req = SnapshotRequest {
        message,
        made: Made::Snapshot,
        pin: false,
        allow_empty: false,
    };
    snapshot(b, &req, &layout()).unwrap()
}

/// Makes one version per text, each writing `cowl-history-test/f<i>`.
pub(super) fn versions_of(b: &BoxDir, texts: &[&str]) {
    for (i, t) in texts.iter().enumerate() {
        write_live(b, &format!("cowl-history-test/f{i}"), t);
        assert_eq!(snap(b, t), Some(i as u64 + 1));
    }
}

/// The names in `dir`, sorted (none when it does not exist).
pub(super) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The numbers of the box's versions, oldest first.
pub(super) fn numbers(b: &BoxDir) -> Vec<u64> {
    b.versions().unwrap().iter().map(|v| v.number).collect()
}

thread_local! {
    /// The fault point at which this thread "crashes" next.
    static CRASH_AT: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// What a crash at a fault point unwinds with.
struct Crashed;

/// The fault hook of the tests: unwinds from the point this thread armed.
fn hook(name: &str) {
    if CRASH_AT.with(|c| c.get()) == Some(name) {
        CRASH_AT.with(|c| c.set(None));
        std::panic::resume_unwind(Box::new(Crashed));
    }
}

/// Runs `f`, stopping it at the first pass of fault point `at`: what it
/// wrote stays and the locks it held are released, as after a `kill -9`,
/// but unwinding runs destructors a kill does not (a layer opened for
/// reading is closed again), so the SIGKILL tests of `tests/` stay the
/// authority on a real crash. Panics when `f` never got there.
pub(super) fn crash_at<T>(at: &'static str, f: impl FnOnce() -> T) {
    crate::fault::set_hook(hook);
    CRASH_AT.with(|c| c.set(Some(at)));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CRASH_AT.with(|c| c.set(None));
    match r {
        Err(e) if e.is::<Crashed>() => {}
        Err(e) => std::panic::resume_unwind(e),
        Ok(_) => panic!("never reached the fault point {at}"),
    }
}
