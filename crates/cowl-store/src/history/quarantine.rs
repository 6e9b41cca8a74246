//! The quarantine of a box: what its rollbacks cut off, one entry per
//! rollback.

use super::versions::{list_versions, Version};
use crate::{BoxDir, StoreError};
use std::fs;

/// One rollback's leftovers.
#[derive(Debug)]
pub struct Quarantined {
    /// Its directory name (`<unix time>-<pid>`).
    pub stamp: String,
    /// When it was cut off, seconds since the epoch.
    pub time: u64,
    /// The version the box was rolled back to.
    pub target: u64,
    /// The versions it holds.
    pub versions: Vec<Version>,
    /// Whether it holds a live layer.
    pub live: bool,
}

/// The box's quarantine, oldest first.
pub fn quarantine(b: &BoxDir) -> Result<Vec<Quarantined>, StoreError> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(b.quarantine_dir()) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let d = e.path();
        let info: serde_json::Value = fs::read(d.join("rollback.json"))
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok())
            .unwrap_or_default();
        out.push(Quarantined {
            stamp: e.file_name().to_string_lossy().into_owned(),
            time: info["time"].as_u64().unwrap_or(0),
            target: info["target"].as_u64().unwrap_or(0),
            versions: list_versions(&d.join("versions"))?,
            live: d.join("live/upper").exists(),
        });
    }
    out.sort_by_key(|q| q.time);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::testing::Scratch;
    use super::quarantine;

    /// Entries as a rollback leaves them, listed by the time in their plan;
    /// one without a readable plan reads as time 0, target 0.
    #[test]
    fn the_quarantine_is_listed_oldest_first() {
        let s = Scratch::new("quarantine");
        assert!(quarantine(&s.b).unwrap().is_empty());
        let q = s.b.quarantine_dir();
        for (stamp, time, target) in [("300-1", 300, 2), ("100-1", 100, 1)] {
            std::fs::create_dir_all(q.join(stamp).join("versions")).unwrap();
            let plan = serde_json::json!({"target": target, "from": 3, "time": time});
            std::fs::write(q.join(stamp).join("rollback.json"), plan.to_string()).unwrap();
        }
        std::fs::create_dir_all(q.join("junk")).unwrap();
        let got: Vec<(String, u64, u64)> = quarantine(&s.b)
            .unwrap()
            .into_iter()
            .map(|e| (e.stamp, e.time, e.target))
            .collect();
        assert_eq!(
            got,
            [
                ("junk".to_owned(), 0, 0),
                ("100-1".to_owned(), 100, 1),
                ("300-1".to_owned(), 300, 2)
            ]
        );
    }
}
