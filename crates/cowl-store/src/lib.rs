//! The on-disk store of cowl: where boxes live, what a box directory holds,
//! its settings (`box.toml`), the per-box lock and the state of a running box.
//!
//! Nothing here makes a namespace or a mount; this crate only reads and
//! writes files, and it does so so that a crash at any point leaves a box
//! that opens: every change is written beside its target and renamed over it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod baseline;
pub mod boxdir;
pub mod cache;
pub mod cut;
pub mod diff;
pub mod error;
pub mod fault;
mod fsutil;
pub mod history;
pub mod home;
pub mod journal;
pub mod layer;
pub mod layerimport;
pub mod layertar;
pub mod lease;
pub mod manifest;
pub mod name;
pub mod privilege;
pub mod quote;
pub mod remove;
pub mod scan;
pub mod settings;
pub mod squash;
pub mod stack;
pub mod state;
mod structure;
pub mod time;
pub mod usage;

pub use boxdir::{BoxDir, BoxLock, Opened, Store};
pub use error::StoreError;
pub use name::BoxName;
pub use remove::BoxHolder;
pub use settings::{BoxSettings, Durability, Mode, NetMode, PushPolicy, SnapshotPolicy};
pub use state::RunState;
