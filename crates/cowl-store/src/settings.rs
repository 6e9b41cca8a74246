//! `box.toml`: a box's settings and policy, as a value.

use crate::StoreError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How a box maps identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The caller's uid and gid map to themselves; the app has the caller's
    /// own rights and nothing more.
    #[default]
    Rootless,
    /// Run by root: ids map one to one, so installers can write anywhere in
    /// the box. The mounts are made before the user namespace.
    System,
}

impl Mode {
    /// The name used in box.toml and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rootless => "rootless",
            Mode::System => "system",
        }
    }
}

/// Which network a box sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NetMode {
    /// Its own network namespace with only loopback.
    #[default]
    None,
    /// The host's network; the host's abstract unix sockets stay unreachable.
    Host,
    /// The host's network, TCP only, to and on the ports of `allow`
    /// (Landlock); UDP, raw and packet sockets refused (seccomp).
    Ports,
    /// Its own network namespace with no route out; HTTP and SOCKS5
    /// proxies, run by cowl outside the box, connect to what `allow` lists.
    Proxy,
}

impl NetMode {
    /// The name used in box.toml and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            NetMode::None => "none",
            NetMode::Host => "host",
            NetMode::Ports => "ports",
            NetMode::Proxy => "proxy",
        }
    }
}

/// What an fsync inside the box promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Writes reach the disk by the kernel's normal writeback; the app's
    /// fsyncs return at once, and ending a box does not sync the host's disk.
    /// A host crash (not a crash of the app or of cowl) can lose the box's
    /// last seconds of writes. The default: fast starts and exits.
    #[default]
    Volatile,
    /// The app's fsyncs reach the disk. Each overlay syncs the store's
    /// filesystem when the box ends.
    Fsync,
}

impl Durability {
    /// The name used in box.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Volatile => "volatile",
            Durability::Fsync => "fsync",
        }
    }
}

/// When versions are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotPolicy {
    /// When a run of the box ends and it changed something.
    #[default]
    OnExit,
    /// Only by `cowl snapshot`.
    Manual,
}

/// When a box's versions are pushed to its mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PushPolicy {
    /// Only by `cowl push`.
    #[default]
    Manual,
    /// After each snapshot (automatic or by hand), to `mirror`.
    OnSnapshot,
}

impl PushPolicy {
    fn is_manual(&self) -> bool {
        *self == PushPolicy::Manual
    }
}

fn default_keep() -> u32 {
    50
}

fn default_quarantine_days() -> u32 {
    30
}

/// Everything `box.toml` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxSettings {
    /// When the box was created, seconds since the epoch.
    pub created: u64,
    /// Identity mapping; fixed when the box is created.
    #[serde(default)]
    pub mode: Mode,
    /// The command run when `cowl run BOX` is given none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Network policy.
    #[serde(default)]
    pub net: NetMode,
    /// What the app's fsyncs promise.
    #[serde(default)]
    pub durability: Durability,
    /// When versions are made.
    #[serde(default)]
    pub snapshot: SnapshotPolicy,
    /// Automatic versions kept before older ones are squashed.
    #[serde(default = "default_keep")]
    pub keep: u32,
    /// Days a rollback's quarantine is kept before `cowl gc` purges it.
    #[serde(default = "default_quarantine_days")]
    pub quarantine_days: u32,
    /// Paths hidden in addition to the default list (`~/` is $HOME).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hide: Vec<String>,
    /// Paths of the default hidden list the box may read after all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// System calls allowed back through the seccomp filter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_syscalls: Vec<String>,
    /// Environment variables passed to the box although their names say
    /// they hold credentials (dropped by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_pass: Vec<String>,
    /// Memory limit ("2G", "512M").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Process limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// CPU limit, in CPUs (1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// In `ports` network mode: the TCP ports the box may connect to
    /// ("443") or bind ("bind:8080").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// The mirror `cowl push` uses when given no URL: a directory or
    /// `s3://bucket/prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// When versions are pushed to `mirror`.
    #[serde(default, skip_serializing_if = "PushPolicy::is_manual")]
    pub push: PushPolicy,
    /// age recipients pushes encrypt to when given none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypt_to: Vec<String>,
}

impl BoxSettings {
    /// Settings of a box made now.
    pub fn new(mode: Mode) -> Self {
        BoxSettings {
            created: crate::time::now(),
            mode,
            command: Vec::new(),
            net: NetMode::None,
            durability: Durability::default(),
            snapshot: SnapshotPolicy::default(),
            keep: default_keep(),
            quarantine_days: default_quarantine_days(),
            hide: Vec::new(),
            expose: Vec::new(),
            allow_syscalls: Vec::new(),
            env_pass: Vec::new(),
            allow: Vec::new(),
            memory: None,
            pids: None,
            cpus: None,
            mirror: None,
            push: PushPolicy::Manual,
            encrypt_to: Vec::new(),
        }
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let text = std::fs::read_to_string(path).map_err(StoreError::io("read", path))?;
        toml::from_str(&text).map_err(|e| StoreError::BadSettings {
            path: path.to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        })
    }

    /// Serializes to TOML text.
    pub fn to_toml(&self) -> String {
        // Serializing a struct of plain fields cannot fail.
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_toml() {
        let mut s = BoxSettings::new(Mode::System);
        s.command = vec!["bash".into(), "-l".into()];
        let text = s.to_toml();
        assert_eq!(toml::from_str::<BoxSettings>(&text).ok(), Some(s));
    }

    #[test]
    fn unknown_keys_are_an_error_not_ignored() {
        assert!(toml::from_str::<BoxSettings>("created = 1\nnetwork = \"host\"\n").is_err());
    }

    #[test]
    fn defaults_are_rootless_and_no_network() {
        let s: BoxSettings = toml::from_str("created = 5").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.mode, Mode::Rootless);
        assert_eq!(s.net, NetMode::None);
    }
}
