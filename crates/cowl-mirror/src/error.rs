//! Errors of pushing and pulling, one variant per operation that failed.

use std::path::PathBuf;

/// What went wrong talking to a mirror or restoring from it.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The mirror URL is not one cowl knows.
    #[error("{url:?} is not a mirror cowl can use: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// Reading or writing the local mirror directory failed.
    #[error("{op} {path}: {source}")]
    Local {
        /// What cowl was doing.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A request to the object store failed.
    #[error("{op} {key} on {url}: {message}")]
    Remote {
        /// What cowl was doing.
        op: &'static str,
        /// The object.
        key: String,
        /// The mirror.
        url: String,
        /// The store's error.
        message: String,
    },
    /// The mirror holds no image layout, or not the object asked for.
    #[error("{url} has no {key}: is it a cowl mirror? (`cowl push BOX {url}` makes one)")]
    Missing {
        /// The mirror.
        url: String,
        /// The object.
        key: String,
    },
    /// Something in the mirror is not what cowl wrote.
    #[error("the mirror is not valid: {0}")]
    Format(String),
    /// A blob or a version does not match its digest or the chain.
    #[error("verification failed, nothing was changed: {0}")]
    Verify(String),
    /// Encryption or decryption failed.
    #[error("{0}")]
    Crypto(String),
    /// The operation would lose history; `--force` says to go on.
    #[error("{0}")]
    Refused(String),
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] cowl_store::StoreError),
    /// Writing a layer as tar failed.
    #[error(transparent)]
    LayerTar(#[from] cowl_store::layertar::LayerTarError),
    /// A layer archive was refused or could not be extracted.
    #[error(transparent)]
    Import(#[from] cowl_store::layerimport::ImportError),
    /// A stream between cowl and the mirror failed.
    #[error("{op}: {source}")]
    Stream {
        /// What cowl was doing.
        op: String,
        /// Why.
        source: std::io::Error,
    },
}

impl MirrorError {
    pub(crate) fn local(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| MirrorError::Local { op, path, source }
    }

    pub(crate) fn stream(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let op = op.into();
        move |source| MirrorError::Stream { op, source }
    }
}
