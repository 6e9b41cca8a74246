//! What the commands share: the usage error (exit status 2), box names
//! from the command line, the store from the environment, and sizes for
//! people.

use anyhow::{Context, Result};
use cowl_sandbox::sys;
use cowl_store::{BoxName, Store};
use std::path::PathBuf;

/// A mistake in how cowl was called: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

pub(crate) fn box_name(s: &str) -> Result<BoxName> {
    BoxName::new(s).map_err(|e| usage(e.to_string()))
}

/// Where the store is, from the environment.
pub(crate) fn store_root() -> Result<PathBuf> {
    cowl_store::home::store_root(sys::geteuid() == 0)
        .context("cannot find the store: set COWL_HOME (or HOME) to a directory you own")
}

pub(crate) fn open_store() -> Result<Store> {
    Ok(Store::open(&store_root()?, sys::geteuid())?)
}

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Whether the init a state file names still runs (not a reused pid).
pub(crate) fn alive(s: &cowl_store::RunState) -> bool {
    cowl_sandbox::sys::process_start_ticks(s.pid) == Some(s.start_ticks)
}
