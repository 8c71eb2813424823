//! Request ids across roles, so one request's logs can be followed from
//! process to process.
//!
//! Every HTTP and gRPC request a node serves runs inside a `request` span
//! with a `request_id` field: the caller's `x-request-id` header (or gRPC
//! metadata) when it sends a usable one, else a new id. The id is answered
//! in the `x-request-id` response header, and while the request runs it is
//! also held in a task-local, from which the internal clients
//! ([`crate::IngesterClients`], [`crate::QuerierClients`]) copy it into the
//! metadata of their calls. A distributor's push to an ingester, or a
//! query-frontend's share sent to a querier, is then logged under the same
//! `request_id` on both processes.
//!
//! [`RequestIdLayer`] is the tower layer doing this for axum and tonic
//! servers alike. It logs every answer at debug level (`request answered`)
//! and server-side failures at warn level (`request failed`), inside the
//! span, so a failed push shows up with its id on every node it crossed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Request, Response};
use tracing::Instrument;

/// The header (and gRPC metadata key) carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest request id taken from a caller.
const MAX_REQUEST_ID_LEN: usize = 128;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// The id of the request the current task serves, if any.
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

/// Runs `fut` as part of the request `id`: internal calls it makes carry
/// the id.
pub async fn with_request_id<F: Future>(id: Arc<str>, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// Adds the current request id (if any) to an outgoing gRPC request.
pub fn propagate<T>(request: &mut tonic::Request<T>) {
    if let Some(id) = current_request_id()
        && let Ok(v) = id.parse()
    {
        request.metadata_mut().insert(REQUEST_ID_HEADER, v);
    }
}

/// A caller's id if it is usable: 1 to 128 characters out of
/// `[A-Za-z0-9._:-]`, so it is safe in logs and headers.
fn usable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A new request id: 16 hex digits, unique within the process and very
/// likely across processes (time, process id and a counter, mixed).
pub fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mut z = nanos
        ^ (u64::from(std::process::id()) << 40)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("{:016x}", z ^ (z >> 31))
}

/// Tower layer giving every request a `request` span with its id (see the
/// module docs). `protocol` (`http` or `grpc`) is a field of the span.
#[derive(Debug, Clone, Copy)]
pub struct RequestIdLayer {
    protocol: &'static str,
}

impl RequestIdLayer {
    /// A layer for a server speaking `protocol`.
    pub fn new(protocol: &'static str) -> Self {
        RequestIdLayer { protocol }
    }
}

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService {
            inner,
            protocol: self.protocol,
        }
    }
}

/// The service of [`RequestIdLayer`].
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
    protocol: &'static str,
}

impl<S, B, RB> tower::Service<Request<B>> for RequestIdService<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let id: Arc<str> = match request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            Some(id) if usable(id) => Arc::from(id),
            _ => Arc::from(new_request_id()),
        };
        // `/ready` answers 503 until the node is ready: not a failure.
        let readiness = request.uri().path() == "/ready";
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            protocol = self.protocol,
            path = %request.uri().path(),
        );
        // The clone is not ready; keep the service that is (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = {
            let _entered = span.enter();
            inner.call(request)
        };
        let answer_id = Arc::clone(&id);
        Box::pin(with_request_id(
            id,
            async move {
                let started = Instant::now();
                let mut response = future.await?;
                if let Ok(v) = HeaderValue::from_str(&answer_id) {
                    response.headers_mut().insert(REQUEST_ID_HEADER, v);
                }
                let grpc_status = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let status = response.status().as_u16();
                // Failures on the server side (5xx; gRPC unknown, deadline,
                // internal, unavailable, data loss) are worth a line at the
                // default level: that is when one follows a request.
                let failed = (status >= 500 && !readiness)
                    || matches!(grpc_status, "2" | "4" | "13" | "14" | "15");
                if failed {
                    tracing::warn!(
                        status,
                        grpc_status,
                        elapsed = ?started.elapsed(),
                        "request failed"
                    );
                } else {
                    tracing::debug!(
                        status,
                        grpc_status,
                        elapsed = ?started.elapsed(),
                        "request answered"
                    );
                }
                Ok(response)
            }
            .instrument(span),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer, Service, ServiceExt};

    use super::*;

    #[test]
    fn caller_ids_are_checked() {
        assert!(usable("abc-123_x.y:z"));
        assert!(!usable(""));
        assert!(!usable("a b"));
        assert!(!usable("a\nb"));
        assert!(!usable(&"a".repeat(129)));
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(usable(&a));
    }

    /// Answers with the request id its task sees, as a client would send it.
    async fn echo(_: Request<()>) -> Result<Response<String>, Infallible> {
        let mut outgoing = tonic::Request::new(());
        propagate(&mut outgoing);
        let seen = outgoing
            .metadata()
            .get(REQUEST_ID_HEADER)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Ok(Response::new(seen))
    }

    #[tokio::test]
    async fn the_id_reaches_outgoing_calls_and_the_answer() {
        let mut svc = RequestIdLayer::new("http").layer(tower::service_fn(echo));
        let req = Request::builder()
            .header(REQUEST_ID_HEADER, "trace-me-1")
            .body(())
            .unwrap();
        let resp = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(resp.body(), "trace-me-1");
        assert_eq!(resp.headers()[REQUEST_ID_HEADER], "trace-me-1");
        // No (or an unusable) id: a new one, the same in calls and answer.
        let req = Request::builder()
            .header(REQUEST_ID_HEADER, "bad id")
            .body(())
            .unwrap();
        let resp = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(resp.body().len(), 16);
        assert_eq!(resp.headers()[REQUEST_ID_HEADER], resp.body().as_str());
        // Outside a request nothing is added.
        let mut outgoing = tonic::Request::new(());
        propagate(&mut outgoing);
        assert!(outgoing.metadata().get(REQUEST_ID_HEADER).is_none());
    }
}
