//! The error answer of every HTTP and Connect endpoint:
//! `{"code": "<connect code>", "message": "..."}` with the matching status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kiln_model::{ErrorCode, HasErrorCode};

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Classification.
    pub code: ErrorCode,
    /// Message for the client.
    pub message: String,
    /// When the client may retry (sent as `Retry-After`, in whole seconds,
    /// at least 1).
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 400 / `invalid_argument` error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// Converts a classified error; internal errors are logged in full and
    /// masked towards the client.
    pub fn from_err<E: HasErrorCode + std::fmt::Display>(err: &E) -> Self {
        let code = err.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = %err, "internal error");
            return ApiError::new(code, "internal error; see the server log");
        }
        ApiError {
            retry_after: err.retry_after(),
            ..ApiError::new(code, err.to_string())
        }
    }

    /// The `Retry-After` value in whole seconds (rounded up, at least 1).
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .map(|s| s.max(1))
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({"code": self.code.connect_name(), "message": self.message}).to_string()
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), self.body()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after_secs() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
