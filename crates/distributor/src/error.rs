//! Errors of the distributor.

use kiln_cluster::ClientError;
use kiln_formats::FormatError;
use kiln_model::{ErrorCode, HasErrorCode};

/// Why a write was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DistributorError {
    /// The input could not be parsed or failed validation.
    #[error("{0}")]
    Format(#[from] FormatError),
    /// The request is malformed in a way the parsers don't see.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No ingester is available to take the data.
    #[error("no ingester available for shard {shard}")]
    NoIngester {
        /// The shard.
        shard: u32,
    },
    /// Sending to the ingesters failed.
    #[error("failed to store profiles of shard {shard}: {source}")]
    Ingester {
        /// The shard.
        shard: u32,
        /// Cause.
        #[source]
        source: ClientError,
    },
    /// The ingesters did not answer in time.
    #[error("timed out after {0:?} waiting for the ingesters")]
    Timeout(std::time::Duration),
    /// An internal task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl HasErrorCode for DistributorError {
    fn code(&self) -> ErrorCode {
        match self {
            DistributorError::Format(e) => e.code(),
            DistributorError::InvalidRequest(_) => ErrorCode::InvalidArgument,
            DistributorError::NoIngester { .. } => ErrorCode::Unavailable,
            DistributorError::Ingester { source, .. } => source.code(),
            DistributorError::Timeout(_) => ErrorCode::Timeout,
            DistributorError::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = DistributorError> = std::result::Result<T, E>;
