//! `POST /ingest` (and `/pyroscope/ingest`): the legacy write API.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use kiln_formats::ingest::{
    IngestBody, IngestFormat, IngestParams, MultipartPart, detect_format, is_multipart_content_type,
};

use crate::http::connect::read_body;
use crate::http::{ApiError, AppState, now_ns};
use crate::tenant::tenant_for_write;

/// `format` values `/ingest` understands.
const KNOWN_FORMATS: &[&str] = &[
    "",
    "folded",
    "collapsed",
    "lines",
    "pprof",
    "jfr",
    "speedscope",
    "trie",
    "tree",
    "groups",
];

/// Handles `/ingest`.
pub(super) async fn ingest(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(state, query, headers, body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: AppState,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(), ApiError> {
    let Some(distributor) = state.distributor.as_ref() else {
        return Err(ApiError::new(
            kiln_model::ErrorCode::NotFound,
            "this node does not run the distributor",
        ));
    };
    let tenant = tenant_for_write(&headers, state.multitenancy)?;
    let format = query
        .iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.trim().to_ascii_lowercase());
    if let Some(f) = &format
        && !KNOWN_FORMATS.contains(&f.as_str())
    {
        return Err(ApiError::invalid(format!(
            "unknown format {f:?}: use folded, lines, pprof, jfr, speedscope, trie or tree"
        )));
    }
    let params = IngestParams::from_query(&query, now_ns()).map_err(|e| ApiError::from_err(&e))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = distributor.tenant_limits(&tenant).max_body_bytes;
    let body = match detect_format(params.format.as_deref(), content_type.as_deref()) {
        IngestFormat::Pprof | IngestFormat::Jfr
            if is_multipart_content_type(content_type.as_deref()) =>
        {
            IngestBody::Multipart(
                read_multipart(content_type.as_deref().unwrap_or(""), body, limit).await?,
            )
        }
        _ => IngestBody::Raw(read_body(body, limit).await?),
    };
    distributor
        .ingest(&tenant, params, content_type, body)
        .await
        .map_err(|e| ApiError::from_err(&e))
}

/// Reads the parts of a `multipart/form-data` body, bounded by `limit` bytes in all.
async fn read_multipart(
    content_type: &str,
    body: Body,
    limit: usize,
) -> Result<Vec<MultipartPart>, ApiError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| ApiError::invalid(format!("invalid multipart content type: {e}")))?;
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit as u64));
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut parts = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e, limit)),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(|m| m.to_string());
        let data = field.bytes().await.map_err(|e| multipart_error(e, limit))?;
        parts.push(MultipartPart {
            name,
            filename,
            content_type,
            data,
        });
    }
    Ok(parts)
}

fn multipart_error(e: multer::Error, limit: usize) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::new(
                kiln_model::ErrorCode::PayloadTooLarge,
                format!("request body too large: the limit is {limit} bytes"),
            )
        }
        e => ApiError::invalid(format!("invalid multipart body: {e}")),
    }
}
