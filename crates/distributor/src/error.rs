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
    /// The tenant's ingestion rate is used up.
    #[error("ingestion rate limit ({rate_mb} MB/s) reached; retry after {retry_after:?}")]
    RateLimited {
        /// The tenant's limit.
        rate_mb: f64,
        /// When enough budget will be back.
        retry_after: std::time::Duration,
    },
    /// The push would create more active series than the tenant may have.
    #[error("series limit reached: the tenant has {active} active series and may have {limit}")]
    SeriesLimit {
        /// The tenant's limit.
        limit: usize,
        /// Active series now.
        active: usize,
    },
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
            DistributorError::RateLimited { .. } | DistributorError::SeriesLimit { .. } => {
                ErrorCode::ResourceExhausted
            }
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            DistributorError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = DistributorError> = std::result::Result<T, E>;
