//! The Connect protocol (unary) on the HTTP port, plus gRPC framing for
//! clients that speak gRPC (over h2c) to the same paths.
//!
//! Connect: `POST /<package>.<Service>/<Method>` with `application/proto`
//! or `application/json` bodies, optionally `Content-Encoding: gzip` (or
//! `zstd`), decoded under the body limit;
//! success is HTTP 200 with the same content type, failure an HTTP error
//! status with a JSON body `{"code": ..., "message": ...}` — never a 200,
//! because agents only look at the status. gRPC requests
//! (`application/grpc[+proto]`) get length-prefixed frames and a status in
//! trailers.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures::stream;
use http_body::Frame;
use http_body_util::{BodyExt, Limited, StreamBody};
use kiln_model::ErrorCode;
use kiln_proto::json::NamedMessage;

use crate::http::ApiError;

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Proto,
    Json,
    Grpc,
}

fn codec_of(headers: &HeaderMap) -> Result<Codec, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/proto");
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/proto"
        | "application/protobuf"
        | "application/x-protobuf"
        | "application/octet-stream"
        | "" => Ok(Codec::Proto),
        "application/json" => Ok(Codec::Json),
        "application/grpc" | "application/grpc+proto" => Ok(Codec::Grpc),
        other => Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!(
                "unsupported content type {other:?}: use application/proto, application/json or application/grpc"
            ),
        )),
    }
}

/// Reads a body of at most `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body too large: the limit is {limit} bytes"),
        )
    };
    // A declared length over the limit is refused before the body is read,
    // so a client waiting for "100 Continue" never uploads it.
    if http_body::Body::size_hint(&body).lower() > limit as u64 {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(ApiError::invalid(format!(
            "failed to read the request body: {e}"
        ))),
    }
}

fn is_gzip_encoded(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|e| {
                e.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("gzip")
            })
        })
}

fn gunzip(data: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    match kiln_formats::compress::bounded_gunzip(data, limit, "request message") {
        Ok(b) => Ok(Bytes::from(b)),
        Err(e) => Err(ApiError::from_err(&e)),
    }
}

/// Decodes a body by its `Content-Encoding` (none, `gzip` or `zstd`) into at
/// most `limit` bytes; other encodings are refused.
fn decode_body(headers: &HeaderMap, raw: Bytes, limit: usize) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("(not ASCII)"));
    match kiln_formats::compress::decode_content_encoding(encoding, &raw, limit, "request body") {
        Ok(std::borrow::Cow::Borrowed(_)) => Ok(raw),
        Ok(std::borrow::Cow::Owned(b)) => Ok(Bytes::from(b)),
        Err(e) => Err(ApiError::from_err(&e)),
    }
}

fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    kiln_formats::compress::gzip(data).ok()
}

/// Extracts the message of a gRPC request body (a single frame).
fn grpc_message(body: &[u8], headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    if body.len() < 5 {
        return Err(ApiError::invalid(
            "gRPC request without a complete message frame",
        ));
    }
    let compressed = body[0] == 1;
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if body.len() < 5 + len {
        return Err(ApiError::invalid("gRPC message frame is truncated"));
    }
    let msg = &body[5..5 + len];
    if compressed {
        if !is_gzip_encoded(headers, "grpc-encoding") {
            return Err(ApiError::invalid(
                "compressed gRPC message without grpc-encoding: gzip",
            ));
        }
        return gunzip(msg, limit);
    }
    Ok(Bytes::copy_from_slice(msg))
}

fn timeout_of(headers: &HeaderMap, codec: Codec) -> Option<Duration> {
    match codec {
        Codec::Grpc => headers
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout),
        _ => headers
            .get("connect-timeout-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis),
    }
}

fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn grpc_status_code(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::InvalidArgument => 3,
        ErrorCode::Timeout => 4,
        ErrorCode::NotFound => 5,
        ErrorCode::AlreadyExists => 6,
        ErrorCode::PermissionDenied => 7,
        ErrorCode::ResourceExhausted | ErrorCode::PayloadTooLarge => 8,
        ErrorCode::Internal => 13,
        ErrorCode::Unavailable => 14,
        ErrorCode::Unauthenticated => 16,
    }
}

pub(crate) fn grpc_error(err: &ApiError) -> Response {
    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc+proto"),
    );
    h.insert("grpc-status", HeaderValue::from(grpc_status_code(err.code)));
    if let Some(secs) = err.retry_after_secs() {
        h.insert("retry-after", HeaderValue::from(secs));
    }
    if let Ok(v) = HeaderValue::from_str(&percent_encode(&err.message)) {
        h.insert("grpc-message", v);
    }
    resp
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn grpc_ok(message: Vec<u8>) -> Response {
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.put_u8(0);
    framed.put_u32(message.len() as u32);
    framed.put_slice(&message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = stream::iter(vec![
        Ok::<_, std::convert::Infallible>(Frame::data(framed.freeze())),
        Ok(Frame::trailers(trailers)),
    ]);
    let mut resp = Response::new(Body::new(StreamBody::new(frames)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc+proto"),
    );
    resp
}

/// Serves one unary call: decodes `Req`, runs `handler`, encodes `Resp`.
/// `handler` also receives the size of the request body as received.
pub(super) async fn unary<Req, Resp, F, Fut>(
    headers: HeaderMap,
    body: Body,
    limit: usize,
    handler: F,
) -> Response
where
    Req: NamedMessage,
    Resp: NamedMessage,
    F: FnOnce(Req, usize) -> Fut,
    Fut: Future<Output = Result<Resp, ApiError>>,
{
    let codec = match codec_of(&headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let result = async {
        let raw = read_body(body, limit).await?;
        let raw_len = raw.len();
        let payload = match codec {
            Codec::Grpc => grpc_message(&raw, &headers, limit)?,
            _ => decode_body(&headers, raw, limit)?,
        };
        let request: Req = match codec {
            Codec::Json => kiln_proto::json::from_json(&payload).map_err(|e| {
                ApiError::invalid(format!("failed to decode the JSON request: {e}"))
            })?,
            Codec::Proto | Codec::Grpc => Req::decode(payload).map_err(|e| {
                ApiError::invalid(format!("failed to decode the protobuf request: {e}"))
            })?,
        };
        let fut = handler(request, raw_len);
        match timeout_of(&headers, codec) {
            Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
                ApiError::new(ErrorCode::Timeout, format!("request timed out after {t:?}"))
            })?,
            None => fut.await,
        }
    }
    .await;
    match (codec, result) {
        (Codec::Grpc, Ok(resp)) => grpc_ok(resp.encode_to_vec()),
        (Codec::Grpc, Err(e)) => grpc_error(&e),
        (_, Err(e)) => e.into_response(),
        (codec, Ok(resp)) => {
            let (body, content_type) = match codec {
                Codec::Json => match kiln_proto::json::to_json(&resp) {
                    Ok(b) => (b, "application/json"),
                    Err(e) => {
                        return ApiError::new(ErrorCode::Internal, e.to_string()).into_response();
                    }
                },
                _ => (resp.encode_to_vec(), "application/proto"),
            };
            let mut builder = Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, content_type);
            let body = if body.len() > 1024 && accepts_gzip(&headers) {
                match gzip(&body) {
                    Some(z) => {
                        builder = builder.header(header::CONTENT_ENCODING, "gzip");
                        z
                    }
                    None => body,
                }
            } else {
                body
            };
            builder
                .body(Body::from(body))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }

    #[test]
    fn grpc_frames_are_checked() {
        let h = HeaderMap::new();
        assert!(grpc_message(&[0, 0, 0, 0, 3, 1, 2], &h, 100).is_err());
        assert_eq!(
            grpc_message(&[0, 0, 0, 0, 2, 7, 8], &h, 100).unwrap(),
            Bytes::from_static(&[7, 8])
        );
        assert!(grpc_message(&[1, 0, 0, 0, 1, 7], &h, 100).is_err());
    }
}
