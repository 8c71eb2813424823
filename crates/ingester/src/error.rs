//! Errors of the ingester.

use kiln_model::{ErrorCode, HasErrorCode};

/// Why a push was not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngesterError {
    /// The request is malformed.
    #[error("invalid push: {0}")]
    InvalidPush(String),
    /// Too much data is waiting to be written; retry later.
    #[error("ingester buffers are full ({buffered} bytes buffered, limit {limit})")]
    Overloaded {
        /// Bytes buffered now.
        buffered: usize,
        /// The limit.
        limit: usize,
    },
    /// The ingester is shutting down.
    #[error("ingester is shutting down")]
    ShuttingDown,
    /// Writing the segment to object storage failed.
    #[error("failed to write segment {block_id} for tenant {tenant}: {reason}")]
    Upload {
        /// Tenant.
        tenant: String,
        /// Segment id.
        block_id: String,
        /// Cause.
        reason: String,
    },
    /// Registering the segment in the metastore failed.
    #[error("failed to register segment {block_id} for tenant {tenant}: {reason}")]
    Register {
        /// Tenant.
        tenant: String,
        /// Segment id.
        block_id: String,
        /// Cause.
        reason: String,
    },
    /// Encoding the segment failed.
    #[error("failed to encode segment for tenant {tenant}: {reason}")]
    Encode {
        /// Tenant.
        tenant: String,
        /// Cause.
        reason: String,
    },
}

impl HasErrorCode for IngesterError {
    fn code(&self) -> ErrorCode {
        match self {
            IngesterError::InvalidPush(_) => ErrorCode::InvalidArgument,
            IngesterError::Overloaded { .. } => ErrorCode::ResourceExhausted,
            IngesterError::ShuttingDown
            | IngesterError::Upload { .. }
            | IngesterError::Register { .. } => ErrorCode::Unavailable,
            IngesterError::Encode { .. } => ErrorCode::Internal,
        }
    }
}

impl IngesterError {
    /// A short, bounded name of the error, for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            IngesterError::InvalidPush(_) => "invalid",
            IngesterError::Overloaded { .. } => "overloaded",
            IngesterError::ShuttingDown => "shutting_down",
            IngesterError::Upload { .. } => "upload_failed",
            IngesterError::Register { .. } => "register_failed",
            IngesterError::Encode { .. } => "encode_failed",
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = IngesterError> = std::result::Result<T, E>;
