//! Errors of the format layer.

use kiln_model::{ErrorCode, HasErrorCode};

/// Why an input could not be turned into profiles.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The input is malformed.
    #[error("{0}")]
    Invalid(String),
}

impl HasErrorCode for FormatError {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }
}
