//! Operational endpoints: `/ready`, `/metrics`, build info.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::AppState;

/// `GET /ready`: 200 once every module has started, 503 before and while
/// shutting down.
pub(super) async fn ready(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    let registry = state
        .registry
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to encode metrics: {e}"),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// `GET /api/v1/status/buildinfo`.
pub(super) async fn buildinfo() -> Response {
    let body = serde_json::json!({
        "status": "success",
        "data": { "version": env!("CARGO_PKG_VERSION"), "application": "kiln" }
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
