//! Errors of the metastore.

use kiln_model::{ErrorCode, HasErrorCode};

/// A metastore failure.
#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    /// The command log or snapshot could not be read or written.
    #[error("metastore storage failed while {operation} {path}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// File involved.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The command log or snapshot is corrupt.
    #[error("metastore file {path} is corrupt: {reason}")]
    Corrupt {
        /// File involved.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A request is invalid.
    #[error("invalid metastore request: {0}")]
    InvalidRequest(String),
}

impl HasErrorCode for MetastoreError {
    fn code(&self) -> ErrorCode {
        match self {
            MetastoreError::Io { .. } => ErrorCode::Unavailable,
            MetastoreError::Corrupt { .. } => ErrorCode::Internal,
            MetastoreError::InvalidRequest(_) => ErrorCode::InvalidArgument,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = MetastoreError> = std::result::Result<T, E>;
