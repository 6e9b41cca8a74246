//! The sandbox's own words for what a box is allowed: how ids are mapped,
//! which network it sees, what its fsyncs promise. Plain values the caller
//! (the CLI, from a box's settings) hands in; the sandbox knows nothing of
//! where they are kept.

use serde::Serialize;

/// How a box maps identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The caller's uid and gid map to themselves: the app has the caller's
    /// own rights and nothing more.
    #[default]
    Rootless,
    /// Run by root: ids map one to one, so installers can write anywhere in
    /// the box. The mounts are made before the user namespace.
    System,
}

impl Mode {
    /// The name said to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rootless => "rootless",
            Mode::System => "system",
        }
    }
}

/// Which network a box sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NetMode {
    /// Its own network namespace with only loopback.
    #[default]
    None,
    /// The host's network; the host's abstract unix sockets stay unreachable.
    Host,
    /// The host's network, TCP only, to and on the allowed ports (Landlock);
    /// UDP, raw and packet sockets refused (seccomp).
    Ports,
    /// Its own network namespace with no route out; cowl's proxies outside
    /// the box connect to the allowlist.
    Proxy,
}

impl NetMode {
    /// Whether the box gets its own network namespace.
    pub fn has_own_namespace(self) -> bool {
        matches!(self, NetMode::None | NetMode::Proxy)
    }

    /// Whether internet sockets other than TCP are refused.
    pub fn tcp_only(self) -> bool {
        matches!(self, NetMode::Ports)
    }

    /// The name said to users.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// The overlays are volatile: the app's fsyncs return at once, and
    /// ending a box does not sync the host's disk.
    #[default]
    Volatile,
    /// The app's fsyncs reach the disk.
    Fsync,
}
