//! The dispatcher: one command, one function of its module.

use crate::cli::{Cli, Command};
use crate::{boxes, run, versions};
use anyhow::Result;

pub fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Config(a) => boxes::config(a),
        Command::Netlog(a) => crate::netlog::netlog(a),
        Command::Scan(a) => crate::review::scan(a),
        Command::Commit(a) => crate::commit::commit(a),
        Command::Export(a) => crate::review::export(a),
        Command::Ls(a) => boxes::ls(a),
        Command::Diff(a) => versions::diff(a),
        Command::Snapshot(a) => versions::snapshot(a),
        Command::Pin(a) => versions::pin(a, true),
        Command::Unpin(a) => versions::pin(a, false),
        Command::Log(a) => versions::log(a),
        Command::Rollback(a) => versions::rollback(a),
        Command::Squash(a) => versions::squash_cmd(a),
        Command::Verify(a) => versions::verify(a),
        Command::Gc(a) => versions::gc(a),
        Command::Ps(a) => boxes::ps(a),
        Command::Stop(a) => boxes::stop(a),
        Command::Rm(a) => boxes::rm(a),
        Command::Push(a) => crate::mirror::push(a),
        Command::Pull(a) => crate::mirror::pull(a),
    }
}
