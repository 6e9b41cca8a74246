//! Review and recovery: `cowl scan` (and the first bad version a rollback
//! returns to before). Reads manifests and layers; runs nothing of the box.

use crate::cli::{FailOnArg, ScanArgs, SeverityArg};
use crate::common::{box_name, open_store, usage};
use anyhow::{Context as _, Result};
use cowl_store::history::Version;
use cowl_store::manifest::scan_layer;
use cowl_store::quote;
use cowl_store::scan::{scan_entries, Context, Finding, Severity};
use cowl_store::BoxDir;
use serde::Serialize;
use std::path::{Path, PathBuf};

pub fn severity(s: SeverityArg) -> Severity {
    match s {
        SeverityArg::Low => Severity::Low,
        SeverityArg::Medium => Severity::Medium,
        SeverityArg::High => Severity::High,
        SeverityArg::Critical => Severity::Critical,
    }
}

/// Which part of a box a finding is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Where {
    Version(u64),
    Live,
}

impl Serialize for Where {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Where::Version(n) => s.serialize_u64(*n),
            Where::Live => s.serialize_str("live"),
        }
    }
}

impl std::fmt::Display for Where {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Where::Version(n) => write!(f, "{n}"),
            Where::Live => f.write_str("live"),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub version: Where,
    #[serde(flatten)]
    pub finding: Finding,
}

/// Which parts of a box to scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every version and the live layer.
    All,
    /// Every version (frozen layers only: nothing to hold still).
    Versions,
    /// One version, or the live layer.
    One(Where),
}

impl Scope {
    fn has(self, w: Where) -> bool {
        match self {
            Scope::All => true,
            Scope::Versions => w != Where::Live,
            Scope::One(o) => o == w,
        }
    }
}

/// Every finding of the built-in rules (and of `with`, if given) in the
/// chosen parts of the box, oldest version first.
pub fn findings(b: &BoxDir, scope: Scope, with: Option<&str>) -> Result<Vec<Row>> {
    // The live layer of a running box is read with the box frozen, so that
    // no symlink it swaps in meanwhile can point a read elsewhere.
    let _still = if scope.has(Where::Live) {
        Some(crate::freeze::Still::hold(b, "scan")?)
    } else {
        None
    };
    let _ops = b.ops_lock(false)?;
    let versions = b.versions()?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let cx = Context::of_host(home.as_deref());
    let mut rows = Vec::new();
    let mut parts: Vec<(
        Where,
        PathBuf,
        Vec<cowl_store::manifest::Entry>,
        Vec<String>,
    )> = Vec::new();
    for v in &versions {
        let w = Where::Version(v.number);
        if !scope.has(w) {
            continue;
        }
        parts.push((
            w,
            v.layer(),
            v.manifest.body.entries.clone(),
            v.manifest.body.stripped.clone(),
        ));
    }
    let upper = b.upper();
    if scope.has(Where::Live) && upper.is_dir() {
        let every = [upper.as_path()];
        let opened = cowl_store::layer::open_for_reading(&b.pending_dir(), &every);
        let mut entries = scan_layer(&upper)?;
        cowl_store::manifest::correct_modes(&opened, &upper, &mut entries);
        drop(opened);
        if !entries.is_empty() {
            parts.push((Where::Live, upper.clone(), entries, Vec::new()));
        }
    }
    let layers: Vec<PathBuf> = parts.iter().map(|p| p.1.clone()).collect();
    let roots: Vec<&Path> = layers.iter().map(PathBuf::as_path).collect();
    let _opened = cowl_store::layer::open_for_reading(&b.pending_dir(), &roots);
    for (w, layer, entries, stripped) in parts {
        for f in scan_entries(&entries, &layer, &cx) {
            rows.push(Row {
                version: w,
                finding: f,
            });
        }
        for s in stripped {
            rows.push(Row {
                version: w,
                finding: Finding {
                    path: s.into(),
                    rule: "privilege.setuid",
                    severity: Severity::High,
                    detail: "the box set setuid, setgid or file capabilities; cowl removed them"
                        .into(),
                },
            });
        }
        if let Some(cmd) = with {
            for e in &entries {
                if e.kind != cowl_store::layer::EntryKind::File {
                    continue;
                }
                if let Some(f) = external(cmd, &layer, &e.path)? {
                    rows.push(Row {
                        version: w,
                        finding: f,
                    });
                }
            }
        }
    }
    Ok(rows)
}

/// Runs a host scanner on one file of a layer: `{}` becomes the file,
/// passed as an argument (never spliced into the shell text).
fn external(cmd: &str, layer: &Path, rel: &str) -> Result<Option<Finding>> {
    let file = layer.join(rel);
    // `{}`, quoted or not, is the first argument of the shell.
    let script = if cmd.contains("{}") {
        cmd.replace("'{}'", "\"$1\"")
            .replace("\"{}\"", "\"$1\"")
            .replace("{}", "\"$1\"")
    } else {
        format!("{cmd} \"$1\"")
    };
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .arg("sh")
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run the scanner `{cmd}`"))?;
    match out.status.code() {
        Some(0) => return Ok(None),
        // Scanners say "found" with 1 (clamscan, grep, …).
        Some(1) => {}
        code => anyhow::bail!(
            "the scanner `{cmd}` failed on {} (exit {}): {}; a scanner exits 0 for clean and 1 for found",
            quote::text(&format!("/{rel}")),
            code.map_or("by a signal".into(), |c| c.to_string()),
            quote::text(String::from_utf8_lossy(&out.stderr).trim())
        ),
    }
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .replace(&file.display().to_string(), &format!("/{rel}"));
    Ok(Some(Finding {
        path: Path::new("/").join(rel),
        rule: "external",
        severity: Severity::High,
        detail: format!(
            "`{cmd}` exited {}: {first}",
            out.status.code().unwrap_or(-1)
        ),
    }))
}

/// The earliest version with a finding of at least `min`, and its findings.
pub fn first_bad(rows: &[Row], min: Severity) -> Option<(u64, Vec<&Row>)> {
    let n = rows
        .iter()
        .filter(|r| r.finding.severity >= min)
        .filter_map(|r| match r.version {
            Where::Version(n) => Some(n),
            Where::Live => None,
        })
        .min()?;
    Some((
        n,
        rows.iter()
            .filter(|r| r.version == Where::Version(n) && r.finding.severity >= min)
            .collect(),
    ))
}

/// The version to roll back to, to be before version `bad`.
pub fn before(versions: &[Version], bad: u64) -> u64 {
    versions
        .iter()
        .map(|v| v.number)
        .filter(|&n| n < bad)
        .max()
        .unwrap_or(0)
}

/// The least severity that makes `cowl scan` exit 1; `None`: nothing does.
fn fail_threshold(f: FailOnArg) -> Option<Severity> {
    match f {
        FailOnArg::Low => Some(Severity::Low),
        FailOnArg::Medium => Some(Severity::Medium),
        FailOnArg::High => Some(Severity::High),
        FailOnArg::Critical => Some(Severity::Critical),
        FailOnArg::Never => None,
    }
}

/// What a scan's exit status says: whether the box has a finding at or
/// above `--fail-on`, among all it found (shown or not).
struct Verdict {
    /// Why the scan fails, for stderr (stdout may be JSON); `None`: it passes.
    failing: Option<String>,
}

impl Verdict {
    fn of(name: &cowl_store::BoxName, rows: &[Row], fail_on: FailOnArg) -> Verdict {
        let failing = fail_threshold(fail_on).and_then(|t| {
            let n = rows.iter().filter(|r| r.finding.severity >= t).count();
            (n > 0).then(|| {
                format!(
                    "cowl: box {name} has {n} finding(s) of {} or above: exit status 1 (`--fail-on never` exits 0)",
                    t.as_str()
                )
            })
        });
        Verdict { failing }
    }

    /// Says why the scan fails, after its report; the exit status.
    fn status(self) -> i32 {
        match self.failing {
            Some(why) => {
                eprintln!("{why}");
                1
            }
            None => 0,
        }
    }
}

pub fn scan(a: ScanArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let b = store.open_box(&name)?.recover()?;
    let only = match a.version.as_deref() {
        None => None,
        Some("live") => Some(Where::Live),
        Some(v) => Some(Where::Version(v.parse().map_err(|_| {
            usage(format!(
                "{v:?} is not a version: give a version number or `live`"
            ))
        })?)),
    };
    if let Some(Where::Version(n)) = only {
        if !b.versions()?.iter().any(|v| v.number == n) {
            return Err(usage(format!(
                "box {name} has no version {n} (`cowl log {name}` lists them)"
            )));
        }
    }
    let rows = findings(&b, only.map_or(Scope::All, Scope::One), a.with.as_deref())?;
    let verdict = Verdict::of(&name, &rows, a.fail_on);
    let min = a.min_severity.map(severity);
    if a.first_bad {
        let min = min.unwrap_or(Severity::High);
        let found = first_bad(&rows, min);
        let to = found
            .as_ref()
            .map(|(n, _)| before(&b.versions().unwrap_or_default(), *n));
        if a.json {
            let v = serde_json::json!({
                "first_bad": found.as_ref().map(|f| f.0),
                "min_severity": min,
                "findings": found.as_ref().map(|f| &f.1),
                "rollback_to": to,
                "command": to.map(|t| format!("cowl rollback {name} {t}")),
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(verdict.status());
        }
        match (found, to) {
            (Some((n, rows)), Some(t)) => {
                println!(
                    "first bad version: {n} ({} finding(s) of {} or above)",
                    rows.len(),
                    min.as_str()
                );
                for r in rows {
                    println!(
                        "  {:<8}  {:<26}  {}  ({})",
                        r.finding.severity.as_str(),
                        r.finding.rule,
                        quote::path(&r.finding.path),
                        quote::text(&r.finding.detail)
                    );
                }
                println!(
                    "to return to the version before it (later versions kept in quarantine):\n  cowl rollback {name} {t}\nor: cowl rollback {name} --before-first-bad"
                );
            }
            _ => println!(
                "no version of box {name} has a finding of {} or above",
                min.as_str()
            ),
        }
        let live = rows
            .iter()
            .filter(|r| r.version == Where::Live && r.finding.severity >= min)
            .count();
        if live > 0 {
            let top = b.versions()?.last().map_or(0, |v| v.number);
            println!(
                "the live layer (changes not yet a version) has {live} finding(s) of {} or above: `cowl scan {name} --version live` lists them; `cowl rollback {name} {top}` discards the live layer (kept in quarantine)",
                min.as_str()
            );
        }
        return Ok(verdict.status());
    }
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| min.is_none_or(|m| r.finding.severity >= m))
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(verdict.status());
    }
    if rows.is_empty() {
        match min {
            Some(m) => println!("no findings of {} or above in box {name}", m.as_str()),
            None => println!("no findings in box {name}"),
        }
        return Ok(verdict.status());
    }
    // Paths and details hold names the box chose: quoted, so that a name
    // cannot erase its own finding from the screen or print a fake one.
    println!("{:<7}  {:<8}  {:<26}  path", "version", "severity", "rule");
    for r in &rows {
        println!(
            "{:<7}  {:<8}  {:<26}  {}  ({})",
            r.version.to_string(),
            r.finding.severity.as_str(),
            r.finding.rule,
            quote::path(&r.finding.path),
            quote::text(&r.finding.detail)
        );
    }
    Ok(verdict.status())
}

/// `cowl export`: one version's layer, or the box's whole difference from
/// the host (every version and the live layer merged), as a tar stream in
/// the OCI layer format (whiteouts as `.wh.NAME`, opaque directories as
/// `.wh..wh..opq`, xattrs as PAX records).
pub fn export(a: crate::cli::ExportArgs) -> Result<i32> {
    use std::io::Write;
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let b = store.open_box(&name)?.recover()?;
    // A running box is frozen while its live layer is read.
    let _still = if a.version.as_deref().is_none_or(|v| v == "live") {
        Some(crate::freeze::Still::hold(&b, "export")?)
    } else {
        None
    };
    let _ops = b.ops_lock(false)?;
    let versions = b.versions()?;
    let pending = b.pending_dir();
    let _ = std::fs::create_dir(&pending);
    // The layer to write, and a merged copy to remove afterwards.
    let (layer, scratch) = match a.version.as_deref() {
        Some("live") => (b.upper(), None),
        Some(v) => {
            let n: u64 = v.parse().map_err(|_| {
                usage(format!(
                    "{v:?} is not a version: give a version number or `live`"
                ))
            })?;
            let v = versions.iter().find(|x| x.number == n).ok_or_else(|| {
                usage(format!(
                    "box {name} has no version {n} (`cowl log {name}` lists them)"
                ))
            })?;
            (v.layer(), None)
        }
        None => {
            let mut layers: Vec<PathBuf> = versions.iter().map(Version::layer).collect();
            if b.upper().is_dir() {
                layers.push(b.upper());
            }
            let roots: Vec<&Path> = layers.iter().map(PathBuf::as_path).collect();
            let _opened = cowl_store::layer::open_for_reading(&pending, &roots);
            let dir = pending.join(format!("export-{}", std::process::id()));
            cowl_store::boxdir::remove_tree(&dir)?;
            std::fs::create_dir(&dir)?;
            let merged = dir.join("layer");
            if let Err(e) = cowl_store::squash::merge(&layers, &merged) {
                let _ = cowl_store::boxdir::remove_tree(&dir);
                return Err(e.into());
            }
            (merged, Some(dir))
        }
    };
    let result = (|| -> Result<cowl_store::layertar::LayerTarStats> {
        let every = [layer.as_path()];
        let _opened = cowl_store::layer::open_for_reading(&pending, &every);
        if a.output == Path::new("-") {
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            return Ok(cowl_store::layertar::write_layer_tar(&layer, out)?);
        }
        // Beside the target, renamed over it when complete.
        let tmp = a.output.with_file_name(format!(
            ".{}.cowl-{}",
            a.output
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut out = std::io::BufWriter::new(f);
        let stats = match cowl_store::layertar::write_layer_tar(&layer, &mut out) {
            Ok(s) => s,
            Err(e) => {
                drop(out);
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
        };
        out.flush()?;
        out.get_ref().sync_all()?;
        drop(out);
        std::fs::rename(&tmp, &a.output)
            .with_context(|| format!("cannot write {}", a.output.display()))?;
        Ok(stats)
    })();
    if let Some(dir) = scratch {
        let _ = cowl_store::boxdir::remove_tree(&dir);
    }
    let stats = result?;
    if a.output != Path::new("-") {
        eprintln!(
            "cowl: wrote {} ({} entries, {} bytes of content)",
            quote::path(&a.output),
            stats.entries,
            stats.bytes
        );
    }
    Ok(0)
}
