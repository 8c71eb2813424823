//! Errors of the querier.

use kiln_cluster::ClientError;
use kiln_model::{ErrorCode, HasErrorCode, ModelError};
use kiln_storage::StorageError;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QuerierError {
    /// The request is invalid (bad selector, time range, profile type...).
    #[error("{0}")]
    InvalidRequest(String),
    /// A selector or profile type could not be parsed.
    #[error("{0}")]
    Model(#[from] ModelError),
    /// The block index could not be read.
    #[error("failed to list blocks: {0}")]
    Metastore(#[source] Box<ClientError>),
    /// A block could not be read.
    #[error("failed to read block {block}: {source}")]
    Storage {
        /// Block id.
        block: String,
        /// Cause.
        #[source]
        source: Box<StorageError>,
    },
    /// A DataFusion scan failed.
    #[error("failed to scan block {block}: {message}")]
    Scan {
        /// Block id.
        block: String,
        /// Cause.
        message: String,
    },
    /// The query ran out of time.
    #[error("query timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// An internal task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl HasErrorCode for QuerierError {
    fn code(&self) -> ErrorCode {
        match self {
            QuerierError::InvalidRequest(_) | QuerierError::Model(_) => ErrorCode::InvalidArgument,
            QuerierError::Metastore(e) => match e.code() {
                ErrorCode::InvalidArgument => ErrorCode::Internal,
                c => c,
            },
            QuerierError::Storage { source, .. } => source.code(),
            QuerierError::Scan { .. } | QuerierError::Internal(_) => ErrorCode::Internal,
            QuerierError::Timeout(_) => ErrorCode::Timeout,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = QuerierError> = std::result::Result<T, E>;
