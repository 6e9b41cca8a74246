//! A run's hold on its box, from start to version: `BoxDir::begin_run`
//! takes the run lock the caller got, and the stack of layers the run
//! mounts; `RunLease::end` does what a run's end does to the store — strips
//! privilege bits the box set, records the host's state where the box
//! wrote, takes the run's version (or the one `cowl snapshot` asked for
//! while the box ran), applies retention and brings the run cache up to
//! date. The lock is let go when the lease is dropped, so that what follows
//! a version (a push) still holds it.

use crate::boxdir::{write_atomic, BoxDir, BoxLock};
use crate::error::StoreError;
use crate::history::{self, Layout, SnapshotRequest};
use crate::manifest::Made;
use crate::settings::SnapshotPolicy;
use crate::squash::{self, Eligible};
use std::path::{Path, PathBuf};

/// Versions kept at most before the oldest unpinned ones are squashed:
/// overlayfs stacks at most 500 layers, the host and the live layer included.
pub const MAX_VERSIONS: usize = 400;

/// A run of a box under way.
pub struct RunLease<'b> {
    b: &'b BoxDir,
    lock: BoxLock,
    layers: Vec<PathBuf>,
}

/// What the end of a run did.
#[derive(Debug, Default)]
pub struct RunEnd {
    /// Files the box gave setuid, setgid or file capabilities, which were
    /// removed (paths as the box saw them).
    pub stripped: Vec<PathBuf>,
    /// Whether a new version was taken.
    pub version_taken: bool,
}

impl BoxDir {
    /// Begins a run of the box under `lock` (its run lock): the layers the
    /// run stacks, newest first (the run cache when it is current).
    pub fn begin_run(&self, lock: BoxLock) -> Result<RunLease<'_>, StoreError> {
        let layers = crate::cache::run_layers(self)?;
        Ok(RunLease {
            b: self,
            lock,
            layers,
        })
    }

    /// Where `cowl snapshot` of a running box leaves its request.
    fn snapshot_request_path(&self) -> PathBuf {
        self.path().join("snapshot-request.json")
    }

    /// Asks for a snapshot the moment the running box's run ends.
    pub fn request_snapshot(&self, message: &str, pin: bool) -> Result<(), StoreError> {
        let req = serde_json::json!({"message": message, "pin": pin});
        write_atomic(&self.snapshot_request_path(), req.to_string().as_bytes())
    }
}

impl RunLease<'_> {
    /// The layers the run stacks.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// The run lock held.
    pub fn lock(&self) -> &BoxLock {
        &self.lock
    }

    /// Ends the run of `command`, which exited with `code` and started at
    /// `started` (nanoseconds since the epoch): see the module's comment.
    pub fn end(
        &self,
        command: &[String],
        code: i32,
        started: i128,
        layout: &Layout,
    ) -> Result<RunEnd, StoreError> {
        let b = self.b;
        let mut end = RunEnd::default();
        let stripped = {
            let _ops = b.ops_lock(true)?;
            crate::privilege::strip(&b.upper(), &b.pending_dir())?
        };
        if !stripped.is_empty() {
            let upper = b.upper();
            end.stripped = stripped
                .iter()
                .map(|p| Path::new("/").join(p.strip_prefix(&upper).unwrap_or(p)))
                .collect();
            let names: Vec<String> = end
                .stripped
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            history::note_stripped(b, &names)?;
        }
        // What the host held where the box wrote, for `cowl commit` to tell
        // whether the host changed there since.
        crate::baseline::record_layer(b, &b.upper(), started, layout)?;
        let req: Option<serde_json::Value> = std::fs::read(b.snapshot_request_path())
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok());
        let (message, made, pin) = match &req {
            Some(r) => (
                r["message"].as_str().unwrap_or("snapshot").to_owned(),
                Made::Snapshot,
                r["pin"].as_bool().unwrap_or(false),
            ),
            None if b.settings.snapshot == SnapshotPolicy::OnExit => (
                format!("{} (exit {code})", command.join(" ")),
                Made::Run,
                false,
            ),
            None => return Ok(end),
        };
        let request = SnapshotRequest {
            message: &message,
            made,
            pin,
            allow_empty: false,
        };
        let made = history::snapshot(b, &request, layout)?;
        let _ = std::fs::remove_file(b.snapshot_request_path());
        if made.is_none() {
            // `cowl snapshot --pin` of a box that then changed nothing: the
            // newest version is what it pins, as for a stopped box.
            if pin {
                match history::pin(b, None, true) {
                    Ok(_) | Err(StoreError::NoVersions { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            refresh_cache(b)?;
            return Ok(end);
        }
        // Retention reads the versions only when there are more than it
        // keeps: reading every manifest at each run would cost more than the
        // run itself.
        let count = b.version_layers()?.len();
        let keep = b.settings.keep as usize;
        if count > keep {
            let versions = {
                let _ops = b.ops_lock(false)?;
                b.versions()?
            };
            if !squash::plan(&versions, keep, Eligible::Automatic).is_empty() {
                squash::squash(b, keep, Eligible::Automatic, layout)?;
            }
        }
        if count > MAX_VERSIONS {
            squash::squash(b, MAX_VERSIONS / 2, Eligible::Unpinned, layout)?;
        }
        refresh_cache(b)?;
        end.version_taken = true;
        Ok(end)
    }
}

/// Brings the run cache up to date (the box is stopped and locked).
pub fn refresh_cache(b: &BoxDir) -> Result<(), StoreError> {
    let _ops = b.ops_lock(true)?;
    crate::cache::refresh(b)
}
