//! What a scan reports (a finding and its severity) and what it knows of
//! the machine it scans for (`Context`: the homes, the commands on PATH).

use serde::Serialize;
use std::path::{Path, PathBuf};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Unusual for ordinary work.
    Medium,
    /// What malware does to stay or to spread.
    High,
    /// Privilege or the system's own trust.
    Critical,
}

impl Severity {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The path as the box sees it.
    pub path: PathBuf,
    /// The rule, e.g. `persistence.shell-rc`.
    pub rule: &'static str,
    /// How bad.
    pub severity: Severity,
    /// What the rule saw.
    pub detail: String,
}

/// What the rules need to know about the machine.
#[derive(Debug, Clone)]
pub struct Context {
    /// Home directories, relative to `/` (the caller's, root's, /home/*).
    pub homes: Vec<PathBuf>,
    /// Directories of system commands, relative to `/`, to tell a command
    /// that shadows one (`usr/bin`, `bin`, …).
    pub system_bins: Vec<PathBuf>,
    /// The host's root (to look up shadowed commands).
    pub host: PathBuf,
}

impl Context {
    /// The context of this machine for a caller whose home is `home`.
    pub fn of_host(home: Option<&Path>) -> Context {
        let mut homes: Vec<PathBuf> = Vec::new();
        if let Some(h) = home {
            if let Ok(r) = h.strip_prefix("/") {
                if !r.as_os_str().is_empty() {
                    homes.push(r.to_owned());
                }
            }
        }
        homes.push("root".into());
        if let Ok(rd) = std::fs::read_dir("/home") {
            for e in rd.flatten() {
                homes.push(Path::new("home").join(e.file_name()));
            }
        }
        homes.sort();
        homes.dedup();
        Context {
            homes,
            system_bins: ["usr/bin", "bin", "usr/sbin", "sbin"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            host: "/".into(),
        }
    }

    /// `path` relative to the home it is in, if it is in one.
    pub(super) fn in_home<'p>(&self, path: &'p Path) -> Option<&'p Path> {
        self.homes
            .iter()
            .filter_map(|h| path.strip_prefix(h).ok())
            .min_by_key(|r| r.components().count())
    }
}
