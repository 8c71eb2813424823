//! Error classification shared by every crate.
//!
//! Each crate has its own error type; all of them implement [`HasErrorCode`]
//! so that the transport layers can map them to HTTP statuses, Connect codes
//! and gRPC codes in exactly one place.

use std::fmt;

/// What kind of failure an error is, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed or violates a validation rule (HTTP 400).
    InvalidArgument,
    /// The caller did not identify itself (HTTP 401).
    Unauthenticated,
    /// The caller is not allowed to do this (HTTP 403).
    PermissionDenied,
    /// The requested thing does not exist (HTTP 404).
    NotFound,
    /// The thing to create exists already (HTTP 409).
    AlreadyExists,
    /// The request body is larger than allowed (HTTP 413).
    PayloadTooLarge,
    /// A limit or quota was hit; retry later (HTTP 429).
    ResourceExhausted,
    /// A dependency is unavailable; retry later (HTTP 503).
    Unavailable,
    /// The operation did not finish in time (HTTP 504).
    Timeout,
    /// A bug or an unexpected failure (HTTP 500).
    Internal,
}

impl ErrorCode {
    /// The Connect protocol's name of this code.
    pub fn connect_name(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            // Connect has no "payload too large"; resource_exhausted is the
            // closest code, while HTTP still answers 413.
            ErrorCode::PayloadTooLarge => "resource_exhausted",
            ErrorCode::ResourceExhausted => "resource_exhausted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "deadline_exceeded",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status a plain HTTP (non-Connect) handler answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::ResourceExhausted => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Timeout => 504,
            ErrorCode::Internal => 500,
        }
    }

    /// Whether a client may retry the same request unchanged.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::ResourceExhausted
                | ErrorCode::Unavailable
                | ErrorCode::Timeout
                | ErrorCode::Internal
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.connect_name())
    }
}

/// Implemented by every crate's error type.
pub trait HasErrorCode {
    /// The classification of this error. Pure: no logging.
    fn code(&self) -> ErrorCode;

    /// Whether retrying the same request may succeed.
    fn is_retryable(&self) -> bool {
        self.code().is_retryable()
    }

    /// How long the client should wait before retrying, when the server
    /// knows (rate limits); sent as `Retry-After`.
    fn retry_after(&self) -> Option<std::time::Duration> {
        None
    }
}

/// An error of the model itself: always a client mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A label selector could not be parsed.
    #[error("invalid label selector {selector:?}: {reason}")]
    InvalidSelector {
        /// The selector text as given.
        selector: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A profile type ID is not `name:type:unit:period_type:period_unit`.
    #[error(
        "invalid profile type {0:?}: expected name:sample_type:sample_unit:period_type:period_unit"
    )]
    InvalidProfileType(String),
    /// A tenant ID breaks the naming rules.
    #[error("invalid tenant id {id:?}: {reason}")]
    InvalidTenant {
        /// The tenant as given.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A time expression could not be parsed.
    #[error("invalid time {0:?}")]
    InvalidTime(String),
    /// A label name or value breaks a rule.
    #[error("invalid label: {0}")]
    InvalidLabel(String),
    /// A serialized tree is malformed.
    #[error("invalid tree encoding: {0}")]
    InvalidTree(String),
}

impl HasErrorCode for ModelError {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }
}
