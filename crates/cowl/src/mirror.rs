//! `cowl push` and `cowl pull`: a box's versions to and from a mirror (an
//! OCI image layout in a directory or S3-compatible object storage), and
//! the push after each snapshot that box.toml can ask for.

use crate::common::{box_name, human_bytes, open_store, usage};
use anyhow::{Context, Result};
use clap::Args;
use cowl_mirror::{PullOptions, PushOptions, Remote};
use cowl_store::layerimport::ImportLimits;
use cowl_store::settings::PushPolicy;
use cowl_store::BoxDir;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Encrypt every blob to this age recipient (age1…, or a file of them);
    /// repeatable. Default: box.toml `encrypt_to`.
    #[arg(long, value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,
    /// Replace the mirror's history when it is not a prefix of the box's
    /// (after a rollback or squash), or when it holds another box.
    #[arg(long)]
    pub force: bool,
    /// No progress display.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print what was sent as JSON.
    #[arg(long)]
    pub json: bool,
    /// The box.
    #[arg(value_name = "BOX")]
    pub name: String,
    /// A directory (PATH or file://PATH) or s3://BUCKET/PREFIX. Default:
    /// box.toml `mirror`.
    #[arg(value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// age identity file to decrypt an encrypted mirror.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Take the mirror's history even when the box has versions or live
    /// changes the mirror does not (they go to quarantine).
    #[arg(long)]
    pub force: bool,
    /// Refuse a layer that expands to more than this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 30)]
    pub max_bytes: u64,
    /// Refuse a layer whose content expands more than this many times over
    /// its compressed size (past its first 64 MiB).
    #[arg(long, value_name = "RATIO", default_value_t = 1000)]
    pub max_ratio: u64,
    /// No progress display.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print what was received as JSON.
    #[arg(long)]
    pub json: bool,
    /// A directory (PATH or file://PATH) or s3://BUCKET/PREFIX.
    #[arg(value_name = "URL")]
    pub url: String,
    /// The box to restore into. Default: the name the mirror gives.
    #[arg(value_name = "BOX")]
    pub name: Option<String>,
}

fn push_box(b: &BoxDir, url: &str, a: &PushOptions) -> Result<cowl_mirror::PushReport> {
    let remote = Remote::open(url)?;
    Ok(cowl_mirror::push(b, &remote, a)?)
}

pub fn push(a: PushArgs) -> Result<i32> {
    let name = box_name(&a.name)?;
    let store = open_store()?;
    let b = store.open_box(&name)?.recover()?;
    let url = match a.url.clone().or_else(|| b.settings.mirror.clone()) {
        Some(u) => u,
        None => {
            return Err(usage(format!(
                "no mirror URL: give one (`cowl push {name} s3://bucket/prefix`), or set it with `cowl config {name} mirror=URL`"
            )))
        }
    };
    let encrypt_to = if a.encrypt_to.is_empty() {
        b.settings.encrypt_to.clone()
    } else {
        a.encrypt_to.clone()
    };
    let opts = PushOptions {
        encrypt_to,
        force: a.force,
        progress: !a.quiet && !a.json,
    };
    let r = push_box(&b, &url, &opts).with_context(|| format!("push {name} to {url}"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else if r.versions_sent == 0 && r.blobs_sent == 0 {
        println!("{url} is up to date: {} versions of {name}", r.versions);
    } else {
        println!(
            "pushed {} of {} versions of {name} to {url}: {} blobs, {}{}",
            r.versions_sent,
            r.versions,
            r.blobs_sent,
            human_bytes(r.bytes_sent),
            if r.encrypted { ", encrypted" } else { "" }
        );
        if r.replaced > 0 {
            println!(
                "it replaced {} version(s) the mirror had and {name} no longer has (squashed, or --force)",
                r.replaced
            );
        }
    }
    Ok(0)
}

pub fn pull(a: PullArgs) -> Result<i32> {
    let name = a.name.as_deref().map(box_name).transpose()?;
    let store = open_store()?;
    let remote = Remote::open(&a.url)?;
    let opts = PullOptions {
        name,
        identity: a.identity.clone(),
        force: a.force,
        progress: !a.quiet && !a.json,
        limits: ImportLimits {
            max_bytes: a.max_bytes,
            max_ratio: a.max_ratio,
            ..ImportLimits::default()
        },
    };
    let r = cowl_mirror::pull(&store, &remote, &opts).with_context(|| format!("pull {}", a.url))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else if r.versions_pulled == 0 {
        println!(
            "box {} is up to date with {}: {} versions",
            r.box_name, a.url, r.versions
        );
    } else {
        println!(
            "pulled {} of {} versions into box {}{}: {} blobs, {}",
            r.versions_pulled,
            r.versions,
            r.box_name,
            if r.created { " (new)" } else { "" },
            r.blobs_received,
            human_bytes(r.bytes_received)
        );
        if let Some(q) = &r.quarantined {
            println!(
                "what box {} had beyond the mirror is in quarantine {q}: `cowl log --quarantine {}`",
                r.box_name, r.box_name
            );
        }
    }
    Ok(0)
}

/// After a version was made: the push box.toml asks for (`mirror = URL`,
/// `push = "on-snapshot"`). A failed push is a warning: the version stays.
pub fn after_snapshot(b: &BoxDir) {
    if b.settings.push != PushPolicy::OnSnapshot {
        return;
    }
    let Some(url) = b.settings.mirror.clone() else {
        eprintln!(
            "cowl: warning: box.toml says push = \"on-snapshot\" but sets no mirror: `cowl config {} mirror=URL`",
            b.name()
        );
        return;
    };
    let opts = PushOptions {
        encrypt_to: b.settings.encrypt_to.clone(),
        force: false,
        progress: false,
    };
    match push_box(b, &url, &opts) {
        Ok(r) if r.versions_sent > 0 => eprintln!(
            "cowl: pushed {} version(s) of {} to {url}",
            r.versions_sent,
            b.name()
        ),
        Ok(_) => {}
        Err(e) => eprintln!(
            "cowl: warning: the push to {url} after the snapshot failed: {}",
            crate::render(&e)
        ),
    }
}
