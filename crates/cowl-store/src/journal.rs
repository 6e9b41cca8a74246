//! `journal.jsonl`: an append-only, hash-chained record of what happened to
//! a box. Written by cowl (never by the app, which cannot see the store).

use crate::StoreError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// When, seconds since the epoch.
    pub time: u64,
    /// What: "snapshot", "rollback", "squash", "gc", …
    pub event: String,
    /// Details.
    pub detail: serde_json::Value,
    /// The hash of the previous line ("" for the first).
    pub prev: String,
    /// BLAKE3 of `prev` and this event's other fields.
    pub hash: String,
}

/// Appends an event, chained to the last line, and syncs it.
pub fn append(path: &Path, event: &str, detail: serde_json::Value) -> Result<(), StoreError> {
    let prev = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .last()
                .and_then(|l| serde_json::from_str::<Event>(l).ok())
        })
        .map(|e| e.hash)
        .unwrap_or_default();
    let time = crate::time::now();
    let mut h = blake3::Hasher::new();
    h.update(prev.as_bytes());
    h.update(&time.to_le_bytes());
    h.update(event.as_bytes());
    h.update(detail.to_string().as_bytes());
    let e = Event {
        time,
        event: event.to_owned(),
        detail,
        prev,
        hash: h.finalize().to_hex().to_string(),
    };
    let mut line = serde_json::to_vec(&e).unwrap_or_default();
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(StoreError::io("open", path))?;
    f.write_all(&line)
        .map_err(StoreError::io("append to", path))?;
    f.sync_data().map_err(StoreError::io("sync", path))
}
