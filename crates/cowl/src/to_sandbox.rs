//! A box's settings, as the store keeps them, in the sandbox's words: the
//! sandbox knows nothing of the store, and the CLI is the glue between them.

use std::path::Path;
/// The sandbox's words for a box's identity mapping.
pub(crate) fn mode(m: cowl_store::Mode) -> cowl_sandbox::policy::Mode {
    match m {
        cowl_store::Mode::Rootless => cowl_sandbox::policy::Mode::Rootless,
        cowl_store::Mode::System => cowl_sandbox::policy::Mode::System,
    }
}

/// The sandbox's words for a box's network.
pub(crate) fn net(n: cowl_store::NetMode) -> cowl_sandbox::policy::NetMode {
    match n {
        cowl_store::NetMode::None => cowl_sandbox::policy::NetMode::None,
        cowl_store::NetMode::Host => cowl_sandbox::policy::NetMode::Host,
        cowl_store::NetMode::Ports => cowl_sandbox::policy::NetMode::Ports,
        cowl_store::NetMode::Proxy => cowl_sandbox::policy::NetMode::Proxy,
    }
}

/// The sandbox's words for what a box's fsyncs promise.
pub(crate) fn durability(d: cowl_store::Durability) -> cowl_sandbox::policy::Durability {
    match d {
        cowl_store::Durability::Volatile => cowl_sandbox::policy::Durability::Volatile,
        cowl_store::Durability::Fsync => cowl_sandbox::policy::Durability::Fsync,
    }
}

/// The directories of the box at `dir` a run uses, as the store names them.
pub(crate) fn run_paths(dir: &Path) -> cowl_sandbox::plan::RunPaths {
    let [live, upper, work, scratch] = cowl_store::BoxDir::run_dirs();
    cowl_sandbox::plan::RunPaths {
        dir: dir.to_owned(),
        live: live.into(),
        upper: upper.into(),
        work: work.into(),
        scratch: scratch.into(),
        netlog: cowl_store::BoxDir::netlog_in(dir),
    }
}
