//! Errors of the metastore.

use kiln_model::{ErrorCode, HasErrorCode};

/// A metastore failure.
#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    /// Local state could not be read or written.
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
    /// This replica is not the leader; the leader is at `leader_addr`.
    #[error("this metastore replica is not the leader; the leader is at {leader_addr}")]
    NotLeader {
        /// gRPC address of the leader.
        leader_addr: String,
    },
    /// No leader is known (an election is under way or no quorum is reachable).
    #[error("no metastore leader is known (election in progress or quorum lost)")]
    NoLeader,
    /// Raft failed.
    #[error("metastore raft failure: {0}")]
    Raft(String),
    /// A request is invalid.
    #[error("invalid metastore request: {0}")]
    InvalidRequest(String),
}

impl HasErrorCode for MetastoreError {
    fn code(&self) -> ErrorCode {
        match self {
            MetastoreError::Io { .. }
            | MetastoreError::NotLeader { .. }
            | MetastoreError::NoLeader
            | MetastoreError::Raft(_) => ErrorCode::Unavailable,
            MetastoreError::InvalidRequest(_) => ErrorCode::InvalidArgument,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = MetastoreError> = std::result::Result<T, E>;
