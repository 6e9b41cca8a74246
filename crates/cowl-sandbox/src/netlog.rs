//! The box's network log, `netlog.jsonl` in its directory: one JSON line for
//! each attempt the box made to reach out, written by cowl's network
//! process outside the box (the proxies of `proxy` mode, the resolver of
//! `none` and `proxy` modes) and read by `cowl netlog` and by `cowl run`
//! for the hint it prints when a run fails. The box cannot see the file.

use serde::Serialize;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

/// The most bytes of the log [`read_from`] reads: a box that flooded its
/// log does not make `cowl run` read all of it when the run ends.
pub const MAX_READ: u64 = 4 << 20;

/// One logged attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LogEntry {
    /// Seconds since the epoch.
    pub time: u64,
    /// The host asked for (for "dns": the name looked up, in the
    /// presentation format of DNS: lower case, odd bytes as `\DDD`); empty
    /// when the attempt was refused before it named a host.
    pub host: String,
    /// The port asked for; 0 when not told, and for "dns".
    pub port: u16,
    /// "allowed", "refused", "failed" (allowed, but the connection failed),
    /// "closed" (allowed, then closed by the proxy for being idle) or
    /// "no-network" (a name looked up in a box without network).
    pub verdict: String,
    /// "http", "connect" or "socks5" ("http" too for an HTTP client refused
    /// before its request was read): through a proxy; "dns": a name looked
    /// up with the box's resolver.
    pub via: String,
    /// Why the attempt was refused, failed or closed; for an allowed
    /// connection, the addresses skipped on the way. Absent in logs of
    /// older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl LogEntry {
    /// An entry stamped now.
    pub fn now(host: &str, port: u16, verdict: &str, via: &str, reason: Option<&str>) -> Self {
        LogEntry {
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            host: host.to_owned(),
            port,
            verdict: verdict.to_owned(),
            via: via.to_owned(),
            reason: reason.map(str::to_owned),
        }
    }
}

/// What one run may add to the log: a box that floods its resolver with
/// names cannot fill the disk with their record. Past it, one line says
/// that what follows was not recorded (verdict `unrecorded`); the next run
/// records again, after [`rotate`] moved a log over this size aside.
pub const MAX_LOG: u64 = 64 << 20;

/// The log as the network process writes it: appended to, one whole line
/// per write, by any of its threads.
pub struct NetLog {
    file: Mutex<Option<Appender>>,
    limit: u64,
}

struct Appender {
    file: std::fs::File,
    /// What this run wrote.
    written: u64,
    /// Whether the run reached its limit (and said so).
    full: bool,
}

impl NetLog {
    /// Opens (creating) the log at `path` to append. A log that cannot be
    /// opened is no reason to keep the box from the network it may have:
    /// nothing is written then.
    pub fn open(path: &Path) -> NetLog {
        Self::open_with_limit(path, MAX_LOG)
    }

    fn open_with_limit(path: &Path, limit: u64) -> NetLog {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .ok()
            .map(|file| Appender {
                file,
                written: 0,
                full: false,
            });
        NetLog {
            file: Mutex::new(file),
            limit,
        }
    }

    /// Appends `entry` as one line, unless this run's share is used up.
    pub fn write(&self, entry: &LogEntry) {
        let mut line = serde_json::to_vec(entry).unwrap_or_default();
        line.push(b'\n');
        let Ok(mut g) = self.file.lock() else {
            return;
        };
        let Some(a) = g.as_mut() else {
            return;
        };
        if a.full {
            return;
        }
        if a.written + line.len() as u64 > self.limit {
            a.full = true;
            let note = LogEntry::now(
                "",
                0,
                "unrecorded",
                "log",
                Some(&format!(
                    "this run's log reached {} MiB: the attempts after this line were not recorded",
                    self.limit >> 20
                )),
            );
            line = serde_json::to_vec(&note).unwrap_or_default();
            line.push(b'\n');
        }
        if a.file.write_all(&line).is_ok() {
            a.written += line.len() as u64;
        }
    }
}

/// The older log beside `path`, which [`rotate`] keeps.
pub fn older(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    p.into()
}

/// Before a run that starts the box's network: a log over [`MAX_LOG`]
/// becomes the older log (replacing the one before), so that the box's
/// record stays within four times that.
pub fn rotate(path: &Path) {
    if end(path) > MAX_LOG {
        let _ = std::fs::rename(path, older(path));
    }
}

/// Where the log ends now: what a run reads from when it ends
/// ([`read_from`]), so it sees its own entries only.
pub fn end(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The entries of the log from byte `offset` on (at most [`MAX_READ`]
/// bytes of it); lines that do not parse (a line cut short) are skipped.
pub fn read_from(path: &Path, offset: u64) -> Vec<LogEntry> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return Vec::new();
    }
    let mut text = Vec::new();
    if f.take(MAX_READ).read_to_end(&mut text).is_err() {
        return Vec::new();
    }
    parse(&text)
}

/// The entries of a log's text.
pub fn parse(text: &[u8]) -> Vec<LogEntry> {
    text.split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_run_past_its_share_says_so_once_and_the_next_run_records_again() {
        let dir = std::env::temp_dir().join(format!("cowl-netlog-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("netlog.jsonl");
        let _ = std::fs::remove_file(&path);
        let log = NetLog::open_with_limit(&path, 300);
        for i in 0..100 {
            log.write(&LogEntry::now(
                &format!("n{i}.org"),
                0,
                "no-network",
                "dns",
                None,
            ));
        }
        let entries = read_from(&path, 0);
        assert!(
            entries.len() > 1 && entries.len() < 100,
            "{}",
            entries.len()
        );
        assert_eq!(entries[0].host, "n0.org");
        let last = entries.last().unwrap();
        assert_eq!(last.verdict, "unrecorded");
        assert_eq!(
            entries.iter().filter(|e| e.verdict == "unrecorded").count(),
            1
        );
        // The next run of the box records from its own start.
        let len = end(&path);
        let log = NetLog::open_with_limit(&path, 300);
        log.write(&LogEntry::now("late.org", 0, "no-network", "dns", None));
        assert_eq!(read_from(&path, len)[0].host, "late.org");
        // A log over the size is moved aside before the next run.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .set_len(MAX_LOG + 1)
            .unwrap();
        rotate(&path);
        assert_eq!(end(&path), 0);
        assert_eq!(end(&older(&path)), MAX_LOG + 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn log_lines_of_older_versions_still_read() {
        let old = r#"{"time":1,"host":"a.org","port":443,"verdict":"allowed","via":"connect"}"#;
        let e: LogEntry = serde_json::from_str(old).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.reason, None);
    }

    #[test]
    fn a_run_reads_the_entries_written_after_its_start_and_skips_cut_lines() {
        let dir = std::env::temp_dir().join(format!("cowl-netlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("netlog.jsonl");
        let _ = std::fs::remove_file(&path);
        let log = NetLog::open(&path);
        log.write(&LogEntry::now("old.org", 443, "refused", "connect", None));
        let start = end(&path);
        log.write(&LogEntry::now("a.org", 0, "no-network", "dns", Some("A")));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"time\":1,\"ho")
            .unwrap();
        let got = read_from(&path, start);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            (got[0].host.as_str(), got[0].via.as_str()),
            ("a.org", "dns")
        );
        assert!(read_from(&dir.join("none"), 0).is_empty());
    }
}
