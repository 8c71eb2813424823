//! Errors of the storage layer.

use kiln_model::{ErrorCode, HasErrorCode};

/// A storage failure; each variant names the operation and the object.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Writing an object failed.
    #[error("failed to write object {key}")]
    Put {
        /// Object key.
        key: String,
        /// Cause.
        #[source]
        source: object_store::Error,
    },
    /// Reading an object failed.
    #[error("failed to read object {key}")]
    Get {
        /// Object key.
        key: String,
        /// Cause.
        #[source]
        source: object_store::Error,
    },
    /// Deleting an object failed.
    #[error("failed to delete object {key}")]
    Delete {
        /// Object key.
        key: String,
        /// Cause.
        #[source]
        source: object_store::Error,
    },
    /// Listing objects failed.
    #[error("failed to list objects under {prefix}")]
    List {
        /// Listed prefix.
        prefix: String,
        /// Cause.
        #[source]
        source: object_store::Error,
    },
    /// The block object is not a valid block.
    #[error("block {key} is corrupt: {reason}")]
    Corrupt {
        /// Object key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The block was written by an unknown format version.
    #[error("block {key} has format version {version}, this build reads up to {supported}")]
    UnsupportedVersion {
        /// Object key.
        key: String,
        /// Version found.
        version: u32,
        /// Highest version supported.
        supported: u32,
    },
    /// Encoding or decoding a Parquet section failed.
    #[error("failed to {operation} section {section}")]
    Parquet {
        /// `encode` or `decode`.
        operation: &'static str,
        /// Section name.
        section: &'static str,
        /// Cause.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Building an Arrow batch failed.
    #[error("failed to build section {section}")]
    Arrow {
        /// Section name.
        section: &'static str,
        /// Cause.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// A profile handed to the block builder is inconsistent.
    #[error("invalid profile: {0}")]
    InvalidProfile(String),
    /// The storage configuration is invalid.
    #[error("invalid storage configuration: {0}")]
    Config(String),
}

impl HasErrorCode for StorageError {
    fn code(&self) -> ErrorCode {
        match self {
            StorageError::Put { .. }
            | StorageError::Get { .. }
            | StorageError::Delete { .. }
            | StorageError::List { .. } => ErrorCode::Unavailable,
            StorageError::InvalidProfile(_) | StorageError::Config(_) => ErrorCode::InvalidArgument,
            StorageError::Corrupt { .. }
            | StorageError::UnsupportedVersion { .. }
            | StorageError::Parquet { .. }
            | StorageError::Arrow { .. } => ErrorCode::Internal,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
