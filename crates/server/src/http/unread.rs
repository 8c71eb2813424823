//! What a handler leaves of a request body is read before its answer goes
//! out, so an early answer reaches an HTTP/1 client and the connection
//! stays usable.
//!
//! Many answers come before the body is read to its end: 401 from the
//! credentials check, 400 for a bad query string, 413 the moment a body
//! passes its limit. HTTP/1 has no way to skip the rest of a body, so the
//! server must either read it or close the connection. hyper closes it —
//! after writing the answer, without `Connection: close` in it — and with
//! unread bytes in the socket the kernel resets the connection. A client
//! still writing its body then sees "broken pipe" instead of the 413, and a
//! client that pooled the connection sends its next request into the reset.
//!
//! [`finish_body`] wraps each HTTP/1 request body; when the handler drops
//! it unfinished, the body comes back here and is read and thrown away
//! (at most [`DRAIN_MAX_BYTES`] and [`DRAIN_MAX_TIME`]) before the answer is
//! sent. When it cannot be finished within those bounds, the answer carries
//! `Connection: close` so no client reuses the connection. A body the
//! client holds back until told to go on (`Expect: 100-continue`) and the
//! handler never asked for is not asked for here either: the answer goes
//! out with `Connection: close` and the client sends nothing. HTTP/2
//! streams are reset one by one and are left alone.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

/// The most bytes of an unread body read and discarded after an early
/// answer; a body with more left is not read, its connection is closed.
const DRAIN_MAX_BYTES: u64 = 64 << 20;

/// The longest an unread body is read after an early answer.
const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

/// Middleware: gives the handler a body that comes back here if dropped
/// unfinished, then reads what is left of it before answering.
pub(super) async fn finish_body(req: Request, next: Next) -> Response {
    if req.version() > Version::HTTP_11 {
        return next.run(req).await;
    }
    // A client that sent `Expect: 100-continue` sends its body only once
    // told to (hyper says "100 Continue" when the body is first read).
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let returned: Returned = Arc::default();
    let (parts, body) = req.into_parts();
    let body = Body::new(Tracked {
        inner: Some(body),
        polled: false,
        returned: Arc::clone(&returned),
    });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    let left = returned.lock().map(|mut slot| slot.take()).unwrap_or(None);
    if let Some((body, polled)) = left {
        // A body never asked for is not asked for now: the answer goes out
        // instead of "100 Continue", and the connection closes after it.
        let finished = (!expects_continue || polled) && drain(body).await;
        if !finished {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    response
}

/// Where a body dropped unfinished is put back, with whether it was read
/// at all.
type Returned = Arc<Mutex<Option<(Body, bool)>>>;

/// A request body that, dropped before its end, hands the rest back.
struct Tracked {
    inner: Option<Body>,
    polled: bool,
    returned: Returned,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        this.polled = true;
        match this.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take()
            && !http_body::Body::is_end_stream(&body)
            && let Ok(mut slot) = self.returned.lock()
        {
            *slot = Some((body, self.polled));
        }
    }
}

/// Reads `body` to its end within the bounds; true when it got there.
async fn drain(mut body: Body) -> bool {
    if http_body::Body::size_hint(&body).lower() > DRAIN_MAX_BYTES {
        return false;
    }
    let read_all = async {
        let mut read = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                read += data.len() as u64;
                if read > DRAIN_MAX_BYTES {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_MAX_TIME, read_all)
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::http::read_body;

    /// A server whose one route reads at most 10 bytes of body.
    async fn serve() -> std::net::SocketAddr {
        async fn echo(body: Body) -> Result<Bytes, crate::http::ApiError> {
            read_body(body, 10).await
        }
        let app = Router::new()
            .route("/echo", post(echo))
            .route("/refuse", post(|| async { StatusCode::UNAUTHORIZED }))
            .layer(axum::middleware::from_fn(finish_body));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Reads one response (headers and a Content-Length body) off `conn`.
    async fn response(conn: &mut TcpStream) -> (String, String) {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            assert_eq!(conn.read(&mut byte).await.unwrap(), 1, "connection closed");
            buf.push(byte[0]);
        }
        let head = String::from_utf8(buf).unwrap().to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).await.unwrap();
        (head, String::from_utf8(body).unwrap())
    }

    /// The 413 for the body just sent, on a connection left open, and then
    /// the same connection answering the next request.
    async fn refused_then_reused(conn: &mut TcpStream) {
        let (head, body) = response(conn).await;
        assert!(head.starts_with("http/1.1 413"), "{head}");
        assert!(body.contains("the limit is 10 bytes"), "{body}");
        assert!(!head.contains("connection: close"), "{head}");
        conn.write_all(format!("{}hello", request(5)).as_bytes())
            .await
            .unwrap();
        let (head, body) = response(conn).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(body, "hello");
    }

    fn request(len: usize) -> String {
        format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {len}\r\n\r\n")
    }

    #[tokio::test]
    async fn an_oversized_body_is_answered_and_the_connection_reused() {
        let addr = serve().await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        // 100 kB against a 10-byte limit, written in pieces after the
        // headers, as a client streams a body.
        conn.write_all(request(100_000).as_bytes()).await.unwrap();
        for _ in 0..100 {
            conn.write_all(&[b'x'; 1000]).await.unwrap();
        }
        refused_then_reused(&mut conn).await;
    }

    #[tokio::test]
    async fn a_body_too_large_to_drain_closes_the_connection() {
        let addr = serve().await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let declared = usize::try_from(DRAIN_MAX_BYTES).unwrap() + 1000;
        conn.write_all(format!("{}0123456789abc", request(declared)).as_bytes())
            .await
            .unwrap();
        let (head, body) = response(&mut conn).await;
        assert!(head.starts_with("http/1.1 413"), "{head}");
        assert!(body.contains("the limit is 10 bytes"), "{body}");
        assert!(head.contains("connection: close"), "{head}");
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "nothing follows the answer");
    }

    #[tokio::test]
    async fn a_body_waiting_for_100_continue_is_not_asked_for() {
        let addr = serve().await;
        // Refused without being read (401 before the body; 413 for a
        // declared length over the limit): the client, waiting for
        // "100 Continue", gets the answer instead and sends no body.
        for (path, len, status) in [("/refuse", 100_000, "401"), ("/echo", 50_000, "413")] {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            conn.write_all(
                format!(
                    "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len}\r\nexpect: 100-continue\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            let started = std::time::Instant::now();
            let (head, _) = response(&mut conn).await;
            assert!(head.starts_with(&format!("http/1.1 {status}")), "{head}");
            assert!(head.contains("connection: close"), "{head}");
            assert!(
                started.elapsed() < DRAIN_MAX_TIME,
                "{:?}",
                started.elapsed()
            );
        }
        // A body of unknown length is asked for, read past the limit, and
        // then the rest of it is read before the 413.
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
        let (head, _) = response(&mut conn).await;
        assert!(head.starts_with("http/1.1 100"), "{head}");
        let mut chunked = Vec::new();
        for _ in 0..50 {
            chunked.extend_from_slice(b"3e8\r\n");
            chunked.extend_from_slice(&[b'z'; 1000]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        conn.write_all(&chunked).await.unwrap();
        refused_then_reused(&mut conn).await;
    }

    #[tokio::test]
    async fn a_stalled_body_is_given_up_after_the_time_bound() {
        let addr = serve().await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        // 50 bytes of 1000 declared, then nothing: the 413 still comes, with
        // `Connection: close`, once the drain's time is up.
        conn.write_all(format!("{}{}", request(1000), "y".repeat(50)).as_bytes())
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let (head, _) = response(&mut conn).await;
        assert!(head.starts_with("http/1.1 413"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        assert!(
            started.elapsed() >= DRAIN_MAX_TIME,
            "{:?}",
            started.elapsed()
        );
    }
}
