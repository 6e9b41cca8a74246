//! Mirrors of cowl boxes: a box's versions pushed to, and pulled from, an
//! OCI image layout in a local directory or in S3-compatible object storage,
//! optionally encrypted with age.
//!
//! Each version is one layer blob (tar, zstd; see `cowl_store::layertar`)
//! plus a blob of its cowl manifest; the image manifest of version N lists
//! layers 1..N and carries N's metadata in annotations. Pushes send only what
//! the mirror lacks and replace the index last; pulls verify every blob's
//! digest and the chain of versions before a version becomes visible.
//!
//! Async code (object storage) runs only inside `push` and `pull`, on a
//! runtime they make and drop: nothing here touches a box's spawn path.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod crypt;
pub mod error;
pub mod oci;
pub mod progress;
pub mod pull;
pub mod push;
pub mod remote;

pub use error::MirrorError;
pub use pull::{pull, PullOptions, PullReport};
pub use push::{push, PushOptions, PushReport};
pub use remote::Remote;
