//! A run's hold on its box, from start to version: `BoxDir::begin_run`
//! takes the run lock the caller got, and the stack of layers the run
//! mounts; `RunLease::end` does what a run's end does to the store — strips
//! privilege bits the box set, records the host's state where the box
//! wrote, takes the run's version (or the one `cowl snapshot` asked for
//! while the box ran), applies retention and brings the run cache up to
//! date. The lock is let go when the lease is dropped, so that what follows
//! a version (a push, which is the CLI's) still holds it.

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
#[derive(Debug)]
pub struct RunEnd {
    /// Files the box gave setuid, setgid or file capabilities, which were
    /// removed (paths as the box saw them).
    pub stripped: Vec<PathBuf>,
    /// Whether a new version was taken; an error of the steps after the
    /// strip (the strip's own list above stands either way).
    pub version: Result<bool, StoreError>,
}

/// A `cowl snapshot` of the running box, as its request file holds it.
struct Request {
    message: String,
    pin: bool,
    /// The claimed file.
    claimed: PathBuf,
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

    /// The snapshot requests waiting for the run's end (`.json`) and those
    /// an end claimed (`.claimed`), oldest first: one file each, named
    /// `snapshot-request.<nanoseconds>-<pid>` by who asked.
    fn snapshot_requests(&self, suffix: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.path())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n.starts_with("snapshot-request.") && n.ends_with(suffix)
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Asks for a snapshot the moment the running box's run ends; returns
    /// the request, for [`BoxDir::withdraw_snapshot_request`]. Only while
    /// the box's state file names a live run: its end, which removes the
    /// state file before it claims requests, then sees this one.
    pub fn request_snapshot(&self, message: &str, pin: bool) -> Result<PathBuf, StoreError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = self.path().join(format!(
            "snapshot-request.{now:024}-{}.json",
            std::process::id()
        ));
        let req = serde_json::json!({"message": message, "pin": pin});
        write_atomic(&p, req.to_string().as_bytes())?;
        Ok(p)
    }

    /// Takes back a request no run's end has claimed: true when it was
    /// still there (the caller, holding the box, takes the snapshot itself).
    pub fn withdraw_snapshot_request(&self, request: &Path) -> Result<bool, StoreError> {
        match std::fs::remove_file(request) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("remove", request)(e)),
        }
    }

    /// After a snapshot taken by a command that holds the box: requests
    /// left unclaimed (their run died before its end) are for changes this
    /// snapshot holds, and are dropped rather than applied to a later run.
    pub fn drop_snapshot_requests(&self) {
        for p in self.snapshot_requests(".json") {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Claims the oldest snapshot request, if any, by renaming it away so
    /// that one written meanwhile stays for the next claim. (A claim a
    /// crash or a failed snapshot left is taken again first.) The claim is
    /// let go by `release_claim` once its snapshot is taken.
    fn claim_snapshot_request(&self) -> Result<Option<Request>, StoreError> {
        let claimed = match self.snapshot_requests(".claimed").into_iter().next() {
            Some(c) => c,
            None => {
                let Some(p) = self.snapshot_requests(".json").into_iter().next() else {
                    return Ok(None);
                };
                let c = p.with_extension("claimed");
                match std::fs::rename(&p, &c) {
                    Ok(()) => c,
                    // Taken back meanwhile by the command that asked.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return self.claim_snapshot_request()
                    }
                    Err(e) => return Err(StoreError::io("rename", &p)(e)),
                }
            }
        };
        let r: serde_json::Value = std::fs::read(&claimed)
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok())
            .unwrap_or_default();
        Ok(Some(Request {
            message: r["message"].as_str().unwrap_or("snapshot").to_owned(),
            pin: r["pin"].as_bool().unwrap_or(false),
            claimed,
        }))
    }

    /// Lets go of a claimed request: its snapshot is taken (or there was
    /// nothing to take). A request whose snapshot failed stays claimed and
    /// is taken by the next run's end.
    fn release_claim(&self, claimed: &Path) -> Result<(), StoreError> {
        match std::fs::remove_file(claimed) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::io("remove", claimed)(e))
            }
            _ => Ok(()),
        }
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

    /// The box.
    pub fn box_dir(&self) -> &BoxDir {
        self.b
    }

    /// Ends the run of `command`, which exited with `code` and started at
    /// `started` (nanoseconds since the epoch): see the module's comment.
    /// An error here is of the strip alone: nothing after it was done.
    pub fn end(
        &self,
        command: &[String],
        code: i32,
        started: i128,
        layout: &Layout,
    ) -> Result<RunEnd, StoreError> {
        let b = self.b;
        b.clear_state(&self.lock);
        let stripped = {
            let _ops = b.ops_lock(true)?;
            crate::privilege::strip(&b.upper(), &b.pending_dir())?
        };
        let upper = b.upper();
        let stripped: Vec<PathBuf> = stripped
            .iter()
            .map(|p| Path::new("/").join(p.strip_prefix(&upper).unwrap_or(p)))
            .collect();
        let version = self.take_version(&stripped, command, code, started, layout);
        Ok(RunEnd { stripped, version })
    }

    /// What follows the strip: the note of it, the host's state, the
    /// version(s), retention and the cache.
    fn take_version(
        &self,
        stripped: &[PathBuf],
        command: &[String],
        code: i32,
        started: i128,
        layout: &Layout,
    ) -> Result<bool, StoreError> {
        let b = self.b;
        if !stripped.is_empty() {
            let names: Vec<String> = stripped.iter().map(|p| p.display().to_string()).collect();
            history::note_stripped(b, &names)?;
        }
        // What the host held where the box wrote, for `cowl commit` to tell
        // whether the host changed there since.
        crate::baseline::record_layer(b, &b.upper(), started, layout)?;
        let mut taken = false;
        let mut tried = false;
        // A `cowl snapshot` made while this one is taken is claimed next.
        loop {
            let claim = b.claim_snapshot_request()?;
            let claimed = claim.as_ref().map(|r| r.claimed.clone());
            let (message, made, pin) = match claim {
                Some(r) => (r.message, Made::Snapshot, r.pin),
                None if !tried && b.settings.snapshot == SnapshotPolicy::OnExit => (
                    format!("{} (exit {code})", command.join(" ")),
                    Made::Run,
                    false,
                ),
                None => break,
            };
            tried = true;
            let request = SnapshotRequest {
                message: &message,
                made,
                pin,
                allow_empty: false,
            };
            if history::snapshot(b, &request, layout)?.is_some() {
                taken = true;
            } else if pin {
                // `cowl snapshot --pin` of a box that then changed nothing:
                // the newest version is what it pins, as for a stopped box.
                match history::pin(b, None, true) {
                    Ok(_) | Err(StoreError::NoVersions { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            if let Some(c) = claimed {
                b.release_claim(&c)?;
            }
        }
        if !tried {
            return Ok(false);
        }
        if taken {
            self.retain(layout)?;
        }
        refresh_cache(b)?;
        Ok(taken)
    }

    /// Retention: the box's `keep`, and at most [`MAX_VERSIONS`].
    fn retain(&self, layout: &Layout) -> Result<(), StoreError> {
        let b = self.b;
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
        Ok(())
    }
}

/// Brings the run cache up to date (the box is stopped and locked).
pub fn refresh_cache(b: &BoxDir) -> Result<(), StoreError> {
    let _ops = b.ops_lock(true)?;
    crate::cache::refresh(b)
}
