//! The HTTP listener: Connect APIs, the legacy ingest and render APIs, and
//! operational endpoints, all on one port.

mod connect;
mod error;
mod ingest;
mod ops;
mod render;
pub mod ui_api;
mod unread;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kiln_distributor::Distributor;
use kiln_model::{ErrorCode, TenantId};
use kiln_proto::push::v1::{PushRequest, PushResponse};
use kiln_querier::Querier;
use prometheus_client::registry::Registry;

pub(crate) use connect::grpc_error;
pub use connect::read_body;
pub use error::ApiError;

use crate::auth::{self, Auth, Scope};
use crate::tenant::{tenant_for_write, tenants_for_read};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The distributor, if this node runs one.
    pub distributor: Option<Distributor>,
    /// The querier, if this node runs one.
    pub querier: Option<Arc<Querier>>,
    /// Whether `X-Scope-OrgID` is required.
    pub multitenancy: bool,
    /// Largest request body accepted.
    pub body_limit: usize,
    /// Metrics of this node.
    pub registry: Arc<Mutex<Registry>>,
    /// Readiness.
    pub ready: Arc<AtomicBool>,
    /// Credentials checker, when auth is on.
    pub auth: Option<Arc<Auth>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("multitenancy", &self.multitenancy)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

/// Paths of the ingest APIs (the `write` scope).
pub const WRITE_ROUTES: &[&str] = &[
    "/ingest",
    "/pyroscope/ingest",
    "/push.v1.PusherService/Push",
    "/v1development/profiles",
    "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
];

/// Paths of the query APIs (the `read` scope); `{method}` stands for every
/// method of the service.
pub const READ_ROUTES: &[&str] = &[
    "/querier.v1.QuerierService/{method}",
    "/pyroscope/render",
    "/pyroscope/render-diff",
    "/pyroscope/label-values",
    "/pyroscope/labels",
    "/kiln.ui.v1/{method}",
];

/// Paths open without credentials.
pub const OPEN_ROUTES: &[&str] = &["/ready", "/metrics", "/api/v1/status/buildinfo"];

/// Builds the router. With auth on, the ingest routes need the `write`
/// scope and the query routes the `read` scope.
pub fn router(state: AppState) -> Router {
    let write = Router::new()
        .route("/ingest", post(ingest::ingest))
        .route("/pyroscope/ingest", post(ingest::ingest))
        .route("/push.v1.PusherService/Push", post(push))
        .route("/v1development/profiles", post(otlp_http))
        .route(
            "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
            post(otlp_export),
        );
    let read = Router::new()
        .route("/querier.v1.QuerierService/{method}", post(querier_method))
        .route("/pyroscope/render", get(render::render))
        .route("/pyroscope/render-diff", get(render::render_diff))
        .route("/pyroscope/label-values", get(render::label_values))
        .route("/pyroscope/labels", get(render::labels))
        .merge(ui_api::routes());
    let (write, read) = match &state.auth {
        Some(auth) => (
            write.route_layer(axum::middleware::from_fn_with_state(
                (Arc::clone(auth), Scope::Write),
                auth::require,
            )),
            read.route_layer(axum::middleware::from_fn_with_state(
                (Arc::clone(auth), Scope::Read),
                auth::require,
            )),
        ),
        None => (write, read),
    };
    Router::new()
        .merge(write)
        .merge(read)
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/api/v1/status/buildinfo", get(ops::buildinfo))
        .layer(axum::middleware::from_fn(unread::finish_body))
        .with_state(state)
}

fn not_running(role: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("this node does not run the {role}"),
    )
}

/// The tenant of a write and its body limit: the tenant's `max_body_bytes`
/// (overrides included), or the node's default when there is no tenant (the
/// handler then refuses the request for that).
fn write_tenant_and_limit(
    state: &AppState,
    headers: &HeaderMap,
) -> (Result<TenantId, ApiError>, usize) {
    let tenant = tenant_for_write(headers, state.multitenancy);
    let limit = match (&state.distributor, &tenant) {
        (Some(d), Ok(tenant)) => d.tenant_limits(tenant).max_body_bytes,
        _ => state.body_limit,
    };
    (tenant, limit)
}

/// `POST /push.v1.PusherService/Push` (Connect, gRPC framing also accepted).
async fn push(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (tenant, limit) = write_tenant_and_limit(&state, &headers);
    connect::unary(headers, body, limit, |req: PushRequest, size| async move {
        let distributor = state
            .distributor
            .as_ref()
            .ok_or_else(|| not_running("distributor"))?;
        let tenant = tenant?;
        if req.series.iter().all(|s| s.samples.is_empty()) {
            return Err(ApiError::invalid("no profiles received"));
        }
        distributor
            .push(&tenant, req, size)
            .await
            .map_err(|e| ApiError::from_err(&e))?;
        Ok(PushResponse {})
    })
    .await
}

type OtlpRequest = kiln_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest;
type OtlpResponse = kiln_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceResponse;

/// `POST /v1development/profiles`: OTLP/HTTP profiles (protobuf or JSON,
/// gzip allowed); the answer is an `ExportProfilesServiceResponse`.
async fn otlp_http(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let media = ct.split(';').next().unwrap_or("").trim().to_owned();
    if !matches!(
        media.as_str(),
        "application/x-protobuf" | "application/protobuf" | "application/json" | ""
    ) {
        return (
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::invalid(format!(
                "unsupported content type {media:?}: use application/x-protobuf or application/json"
            ))
            .body(),
        )
            .into_response();
    }
    // OTLP/HTTP uses the same unary shape as Connect (JSON or protobuf bodies).
    let mut headers = headers;
    if media != "application/json" {
        headers.insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/proto"),
        );
    }
    otlp_export(State(state), headers, body).await
}

/// `ProfilesService/Export` on the HTTP port (Connect or gRPC framing).
async fn otlp_export(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (tenant, limit) = write_tenant_and_limit(&state, &headers);
    connect::unary(headers, body, limit, |req: OtlpRequest, size| async move {
        let distributor = state
            .distributor
            .as_ref()
            .ok_or_else(|| not_running("distributor"))?;
        let tenant = tenant?;
        distributor
            .otlp_request(&tenant, req, size)
            .await
            .map_err(|e| ApiError::from_err(&e))?;
        Ok(OtlpResponse::default())
    })
    .await
}

/// Whether the client accepts UTF-8 label names (`allow-utf8-labelnames=true`
/// as a media-type parameter of `Accept`).
fn allow_utf8_labels(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.replace(' ', "").contains("allow-utf8-labelnames=true"))
}

/// `POST /querier.v1.QuerierService/<Method>`.
async fn querier_method(
    State(state): State<AppState>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use kiln_proto::querier::v1 as q;
    use kiln_proto::types::v1 as t;
    let Some(querier) = state.querier.clone() else {
        return not_running("querier").into_response();
    };
    let tenants = match tenants_for_read(&headers, state.multitenancy) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let limit = 16 << 20;
    let utf8 = allow_utf8_labels(&headers);
    let err = |e: kiln_querier::QuerierError| ApiError::from_err(&e);
    let tenants = &tenants;
    let querier = &querier;
    match method.as_str() {
        "ProfileTypes" => {
            connect::unary(
                headers,
                body,
                limit,
                |r: q::ProfileTypesRequest, _| async move {
                    querier.profile_types(tenants, r).await.map_err(err)
                },
            )
            .await
        }
        "LabelNames" => {
            connect::unary(
                headers,
                body,
                limit,
                |r: t::LabelNamesRequest, _| async move {
                    querier.label_names(tenants, r, utf8).await.map_err(err)
                },
            )
            .await
        }
        "LabelValues" => {
            connect::unary(
                headers,
                body,
                limit,
                |r: t::LabelValuesRequest, _| async move {
                    querier.label_values(tenants, r).await.map_err(err)
                },
            )
            .await
        }
        "Series" => {
            connect::unary(headers, body, limit, |r: q::SeriesRequest, _| async move {
                querier.series(tenants, r, utf8).await.map_err(err)
            })
            .await
        }
        "SelectMergeStacktraces" => {
            connect::unary(
                headers,
                body,
                limit,
                |r: q::SelectMergeStacktracesRequest, _| async move {
                    querier
                        .select_merge_stacktraces(tenants, r)
                        .await
                        .map_err(err)
                },
            )
            .await
        }
        "SelectMergeSpanProfile" => {
            connect::unary(
                headers,
                body,
                limit,
                |r: q::SelectMergeSpanProfileRequest, _| async move {
                    querier
                        .select_merge_span_profile(tenants, r)
                        .await
                        .map_err(err)
                },
            )
            .await
        }
        "SelectMergeProfile" => {
            connect::unary(
                headers,
                body,
                limit,
                |r: q::SelectMergeProfileRequest, _| async move {
                    querier.select_merge_profile(tenants, r).await.map_err(err)
                },
            )
            .await
        }
        "SelectSeries" => {
            connect::unary(
                headers,
                body,
                limit,
                |r: q::SelectSeriesRequest, _| async move {
                    querier.select_series(tenants, r).await.map_err(err)
                },
            )
            .await
        }
        "Diff" => {
            connect::unary(headers, body, limit, |r: q::DiffRequest, _| async move {
                querier.diff(tenants, r).await.map_err(err)
            })
            .await
        }
        "GetProfileStats" => {
            connect::unary(
                headers,
                body,
                limit,
                |_: t::GetProfileStatsRequest, _| async move {
                    querier.profile_stats(tenants).await.map_err(err)
                },
            )
            .await
        }
        other => ApiError::new(
            ErrorCode::NotFound,
            format!("unknown method querier.v1.QuerierService/{other}"),
        )
        .into_response(),
    }
}
