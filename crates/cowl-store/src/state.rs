//! The state of a running box: who its init is, so that a second `cowl run`
//! can join it and `cowl stop` can end it.

use serde::{Deserialize, Serialize};

use crate::{Mode, NetMode};

/// Written by the supervisor once the box's init runs; removed when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// The init's pid on the host.
    pub pid: i32,
    /// The init's start time in clock ticks after boot (field 22 of
    /// /proc/PID/stat), so a reused pid is never mistaken for the box.
    pub start_ticks: u64,
    /// The supervising cowl process.
    pub supervisor: i32,
    /// The identity mapping the box runs with.
    pub mode: Mode,
    /// The command the box was started with.
    pub command: Vec<String>,
    /// When it started, seconds since the epoch.
    pub started: u64,
    /// The network it runs with (a joining process gets the same policy).
    #[serde(default)]
    pub net: NetMode,
    /// Its `ports` allowances.
    #[serde(default)]
    pub allow: Vec<String>,
    /// The cgroups that hold it (a joining process joins them too).
    #[serde(default)]
    pub cgroups: Vec<std::path::PathBuf>,
    /// The rlimits its processes run with: (resource, value).
    #[serde(default)]
    pub rlimits: Vec<(u32, u64)>,
}
