//! `cowl netlog`, and the one line `cowl run` prints when a run that looked
//! up names it could not reach ends non-zero: what the box tried, and the
//! flag that lets it.

use crate::cli::NetlogArgs;
use crate::common::{box_name, open_store};
use anyhow::Result;
use cowl_sandbox::netlog::{self, LogEntry};
use cowl_sandbox::proxy::AllowRule;
use cowl_store::NetMode;
use std::path::{Path, PathBuf};

/// Lists a box's network log.
pub fn netlog(a: NetlogArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let b = store.open_box(&name)?.recover()?;
    // The older log first (a run that starts the box's network moves a
    // log over its size aside), then the current one.
    let mut text = std::fs::read(netlog::older(&b.netlog())).unwrap_or_default();
    text.push(b'\n');
    text.extend(std::fs::read(b.netlog()).unwrap_or_default());
    let entries = netlog::parse(&text);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(0);
    }
    println!(
        "{:<20}  {:<10} {:<8} {:<30} REASON",
        "TIME", "VERDICT", "VIA", "HOST:PORT"
    );
    // The host is what the box asked for (and the reason may name it):
    // quoted, so that it cannot print a fake line of the log.
    for e in &entries {
        let host = cowl_store::quote::text(&e.host);
        let target = match (e.host.as_str(), e.port) {
            // Refused before it named a host.
            ("", 0) => "-".to_owned(),
            // A name looked up: no port.
            (_, 0) if e.via == "dns" => host.to_string(),
            (h, p) if h.contains(':') => format!("[{host}]:{p}"),
            (_, p) => format!("{host}:{p}"),
        };
        let line = format!(
            "{:<20}  {:<10} {:<8} {:<30} {}",
            cowl_store::time::rfc3339(e.time),
            e.verdict,
            e.via,
            target,
            cowl_store::quote::text(e.reason.as_deref().unwrap_or(""))
        );
        println!("{}", line.trim_end());
    }
    Ok(0)
}

/// Where a run's own entries of the box's network log begin: taken before
/// it starts, read by [`RunLog::hint`] when it ends.
pub struct RunLog {
    path: PathBuf,
    start: u64,
}

impl RunLog {
    /// Marks the log's end now, before a run of the box at `box_dir`.
    pub fn mark(box_dir: &Path) -> RunLog {
        let path = cowl_store::BoxDir::netlog_in(box_dir);
        RunLog {
            start: netlog::end(&path),
            path,
        }
    }

    /// The hint for a run that ended with `code` in network mode `net`:
    /// printed only when the run failed and looked up names. Reads only
    /// what this run logged.
    pub fn hint(
        &self,
        code: i32,
        net: NetMode,
        box_name: &str,
        allow: &[AllowRule],
    ) -> Option<String> {
        if code == 0 || !crate::to_sandbox::net(net).has_own_namespace() {
            return None;
        }
        hint(
            &netlog::read_from(&self.path, self.start),
            net,
            box_name,
            allow,
        )
    }
}

/// The names a run looked up with the box's resolver, first asked first,
/// each once: those an `--allow` could name (no reverse lookups, nothing
/// that is no host name).
fn names_looked_up(entries: &[LogEntry]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for e in entries.iter().filter(|e| e.via == "dns") {
        let n = e.host.as_str();
        let reverse = n.ends_with(".arpa");
        let host_name = !n.contains('\\') && AllowRule::parse(n).is_some();
        if host_name && !reverse && !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// The line for a failed run that looked up the names of `entries`; `None`
/// when it looked up none.
pub fn hint(
    entries: &[LogEntry],
    net: NetMode,
    box_name: &str,
    allow: &[AllowRule],
) -> Option<String> {
    let names = names_looked_up(entries);
    let first = *names.first()?;
    let more = match names.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more: `cowl netlog {box_name}`)"),
    };
    Some(match net {
        NetMode::Proxy => {
            let allowed = allow
                .iter()
                .any(|r| r.allows(first, r.port.unwrap_or(443)));
            let and_allow = if allowed {
                String::new()
            } else {
                format!(", and run with --allow {first}")
            };
            format!(
                "cowl: the box looked up {first}{more} itself, around its proxy, but in proxy mode only the proxy reaches the network: make the app use HTTP_PROXY or ALL_PROXY (both are set in the box){and_allow}"
            )
        }
        _ => format!(
            "cowl: the box tried to reach {first}{more} but has no network: run with --net proxy --allow {first}"
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dns(name: &str) -> LogEntry {
        LogEntry::now(name, 0, "no-network", "dns", Some("A query"))
    }

    #[test]
    fn the_hint_names_the_first_host_and_counts_the_others() {
        let entries = [
            dns("deb.debian.org"),
            dns("deb.debian.org"),
            LogEntry::now("x.org", 443, "refused", "connect", None),
            dns("security.debian.org"),
            dns("4.3.2.1.in-addr.arpa"),
            dns("odd\\032name"),
            dns("ftp.debian.org"),
        ];
        assert_eq!(
            hint(&entries, NetMode::None, "b", &[]).unwrap(),
            "cowl: the box tried to reach deb.debian.org (and 2 more: `cowl netlog b`) but has no network: run with --net proxy --allow deb.debian.org"
        );
        assert_eq!(
            hint(&[dns("example.org")], NetMode::None, "b", &[]).unwrap(),
            "cowl: the box tried to reach example.org but has no network: run with --net proxy --allow example.org"
        );
        assert_eq!(
            hint(&[dns("1.0.0.127.in-addr.arpa")], NetMode::None, "b", &[]),
            None
        );
        assert_eq!(hint(&[], NetMode::None, "b", &[]), None);
    }

    #[test]
    fn in_proxy_mode_the_hint_says_the_app_went_around_the_proxy() {
        let allowed = [AllowRule::parse("*.example.org").unwrap()];
        let h = hint(&[dns("a.example.org")], NetMode::Proxy, "b", &allowed).unwrap();
        assert!(
            h.contains("around its proxy") && h.contains("HTTP_PROXY"),
            "{h}"
        );
        assert!(!h.contains("--allow"), "{h}");
        let h = hint(&[dns("pypi.org")], NetMode::Proxy, "b", &allowed).unwrap();
        assert!(h.ends_with(", and run with --allow pypi.org"), "{h}");
    }
}
