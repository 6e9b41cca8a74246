//! cowl: run an application in a persistent copy-on-write box over the host.
//!
//! The binary is glue: flags become a `Spec`, the sandbox crate resolves it
//! into a `Plan` and runs it; the store crate keeps the boxes.

#![forbid(unsafe_code)]

mod boxes;
mod cli;
mod commands;
mod commit;
mod common;
mod freeze;
mod mirror;
mod netlog;
mod policy;
mod review;
mod run;
mod to_sandbox;
mod versions;
mod workdir;

use std::process::ExitCode;

fn main() -> ExitCode {
    cowl_sandbox::sys::default_sigpipe();
    versions::install_fault_hook();
    let args = cli::parse();
    match commands::dispatch(args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("cowl: {}", render(&e));
            ExitCode::from(if e.is::<common::UsageError>() { 2 } else { 1 })
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text an
/// outer message already quotes.
pub(crate) fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
