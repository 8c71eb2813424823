//! Errors of the format layer.
//!
//! Every variant says what was wrong with the input; all of them are client
//! mistakes. [`FormatError::TooLarge`] (and a JFR recording over its size
//! limit) maps to HTTP 413, everything else to `invalid_argument`.

use kiln_model::{ErrorCode, HasErrorCode, ModelError};

use crate::jfr::JfrError;

/// Why an input could not be turned into profiles.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A gzip stream could not be inflated.
    #[error("decompress gzip: {source}")]
    Gzip {
        /// The inflater's error.
        #[source]
        source: std::io::Error,
    },
    /// A zstd stream could not be decompressed (corrupt, truncated, or its
    /// window is larger than the decoder accepts).
    #[error("decompress zstd: {source}")]
    Zstd {
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// A body names a `Content-Encoding` Kiln does not decode.
    #[error("unsupported content encoding {0:?}: use gzip, zstd or identity")]
    UnsupportedEncoding(String),
    /// Compressing an output with gzip failed.
    #[error("compress gzip: {source}")]
    Compress {
        /// The deflater's error.
        #[source]
        source: std::io::Error,
    },
    /// An input is larger than a byte limit allows.
    #[error("{what} too large: more than {limit} bytes")]
    TooLarge {
        /// The byte limit that was exceeded.
        limit: usize,
        /// What was too large (`"profile"`, `"request body"`, ...).
        what: &'static str,
    },
    /// A count limit (samples, labels per sample, stacks) was exceeded.
    #[error("too many {what}: {actual} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// The count found (or the first count over the limit).
        actual: usize,
    },
    /// The bytes are not a pprof protobuf (this includes invalid UTF-8 in
    /// the string table).
    #[error("decode pprof: {0}")]
    DecodePprof(#[source] prost::DecodeError),
    /// The pprof decoded but breaks a validation rule.
    #[error("invalid profile: {0}")]
    InvalidProfile(String),
    /// The `/ingest` `name` parameter is missing or malformed.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name as given (shortened if long).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A query parameter has a value that cannot be used.
    #[error("invalid query parameter {name}: {reason}")]
    InvalidParam {
        /// The parameter name.
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A series label breaks a rule (missing `__name__`, too long, ...).
    #[error("invalid label {name:?}: {reason}")]
    InvalidLabel {
        /// The label name (shortened if long).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A line of a folded or lines body cannot be parsed.
    #[error("parse line {line}: {reason}")]
    Folded {
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// The profile kind suffix of a legacy app name is unknown.
    #[error("unknown profile type {0:?}")]
    UnknownProfileKind(String),
    /// The `sample_type_config` part is not valid JSON of the expected shape.
    #[error("parse sample_type_config: {0}")]
    SampleTypeConfig(#[source] serde_json::Error),
    /// A multipart body lacks a required part or has a forbidden one.
    #[error("multipart body: {0}")]
    Multipart(String),
    /// A JFR recording or its labels snapshot cannot be converted.
    #[error("convert JFR: {0}")]
    Jfr(#[source] JfrError),
    /// A speedscope body is not valid JSON of the speedscope schema.
    #[error("parse speedscope JSON: {0}")]
    SpeedscopeJson(#[source] serde_json::Error),
    /// A speedscope body parses but its content is unusable.
    #[error("invalid speedscope profile: {0}")]
    Speedscope(String),
    /// A binary trie body is malformed.
    #[error("parse trie body at byte {offset}: {reason}")]
    Trie {
        /// Offset of the node (or field) that is wrong.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A binary tree body is malformed.
    #[error("parse tree body: {0}")]
    Tree(#[source] ModelError),
    /// The bytes are not an OTLP `ExportProfilesServiceRequest`.
    #[error("decode OTLP profiles request: {0}")]
    DecodeOtlp(#[source] prost::DecodeError),
    /// An OTLP profiles request decodes but refers to missing table
    /// entries or lacks required parts.
    #[error("invalid OTLP profiles request: {0}")]
    InvalidOtlp(String),
    /// A model-level parse error (for example a time expression).
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl HasErrorCode for FormatError {
    fn code(&self) -> ErrorCode {
        match self {
            FormatError::TooLarge { .. } | FormatError::Jfr(JfrError::TooLarge { .. }) => {
                ErrorCode::PayloadTooLarge
            }
            _ => ErrorCode::InvalidArgument,
        }
    }
}

/// A short form of untrusted text for error messages: at most 64 characters.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_is_413_everything_else_400() {
        let e = FormatError::TooLarge {
            limit: 10,
            what: "profile",
        };
        assert_eq!(e.code(), ErrorCode::PayloadTooLarge);
        assert_eq!(e.to_string(), "profile too large: more than 10 bytes");
        let e = FormatError::InvalidProfile("x".into());
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        let e = FormatError::LimitExceeded {
            what: "samples",
            limit: 1,
            actual: 2,
        };
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        let e = FormatError::Jfr(JfrError::TooLarge {
            what: "JFR recording",
            limit: 1,
        });
        assert_eq!(e.code(), ErrorCode::PayloadTooLarge);
        let e = FormatError::Jfr(JfrError::EmptyRecording);
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert_eq!(e.to_string(), "convert JFR: the JFR recording is empty");
    }

    #[test]
    fn shortens_long_text_on_char_boundaries() {
        assert_eq!(shorten("abc"), "abc");
        let long = "é".repeat(100);
        let s = shorten(&long);
        assert_eq!(s.chars().count(), 67);
        assert!(s.ends_with("..."));
    }
}
