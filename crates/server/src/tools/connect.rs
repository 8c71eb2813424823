//! The HTTP client the tools use: Connect unary calls with protobuf bodies
//! (`querier.v1`, `push.v1`) and the legacy `/ingest` API, with the
//! tenant and bearer-token headers on every request.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use prost::Message;

use crate::tools::ServerArgs;

/// An error answer of the server: HTTP status plus the Connect error body.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}{}: {message}", if code.is_empty() { String::new() } else { format!(" {code}") })]
pub struct ApiFailure {
    /// HTTP status.
    pub status: u16,
    /// Connect error code (`invalid_argument`, ...), if the body had one.
    pub code: String,
    /// The message, or the start of the body.
    pub message: String,
}

/// A client of one Kiln HTTP endpoint.
#[derive(Debug, Clone)]
pub struct KilnClient {
    http: reqwest::Client,
    base: String,
    tenant: Option<String>,
    token: Option<String>,
}

impl KilnClient {
    /// A client for `args.url`, with a per-request timeout.
    pub fn new(args: &ServerArgs, timeout: Duration) -> anyhow::Result<Self> {
        reqwest::Url::parse(&args.url).with_context(|| format!("invalid --url {:?}", args.url))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(KilnClient {
            http,
            base: args.url.trim_end_matches('/').to_owned(),
            tenant: args.tenant.clone(),
            token: args.token.clone(),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.post(format!("{}{path}", self.base));
        if let Some(t) = &self.tenant {
            rb = rb.header("X-Scope-OrgID", t);
        }
        if let Some(t) = &self.token {
            rb = rb.header(reqwest::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        rb
    }

    /// A Connect unary call with a protobuf body, e.g.
    /// `call("/querier.v1.QuerierService/SelectSeries", &req)`.
    pub async fn call<Req: Message, Resp: Message + Default>(
        &self,
        path: &str,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        let body = self
            .send(
                self.post(path)
                    .header("content-type", "application/proto")
                    .header("connect-protocol-version", "1")
                    .body(request.encode_to_vec()),
            )
            .await
            .with_context(|| format!("{path} failed"))?;
        Resp::decode(body).with_context(|| format!("{path}: undecodable answer"))
    }

    /// `POST /ingest?<query>` with `body` of `content_type`.
    pub async fn ingest(
        &self,
        query: &[(&str, String)],
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<(), anyhow::Error> {
        self.send(
            self.post("/ingest")
                .query(query)
                .header("content-type", content_type)
                .body(body),
        )
        .await
        .map(drop)
    }

    /// `POST <path>` with a ready body (for load generation, where the
    /// caller builds bodies once).
    pub async fn post_raw(
        &self,
        path: &str,
        query: &[(&str, String)],
        content_type: &str,
        body: Bytes,
    ) -> anyhow::Result<()> {
        let mut rb = self.post(path).header("content-type", content_type);
        if path.starts_with("/push.v1") {
            rb = rb.header("connect-protocol-version", "1");
        }
        if !query.is_empty() {
            rb = rb.query(query);
        }
        self.send(rb.body(body)).await.map(drop)
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> anyhow::Result<Bytes> {
        let resp = rb.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach {}: {}",
                self.base,
                std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| e.to_string())
            )
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .context("cannot read the response body")?;
        if status == 200 {
            return Ok(body);
        }
        let (code, message) = match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) => (
                v["code"].as_str().unwrap_or_default().to_owned(),
                v["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            ),
            Err(_) => (
                String::new(),
                String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            ),
        };
        Err(ApiFailure {
            status,
            code,
            message,
        }
        .into())
    }
}

/// Builds a `multipart/form-data` body of file parts `(field, file name,
/// data)`, as pyroscope-go sends profiles. Returns the content type and
/// the body.
pub fn multipart_body(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    // A boundary that does not occur in the data.
    let mut boundary = String::from("kilnUploadBoundary");
    let mut n = 0u32;
    while parts
        .iter()
        .any(|(_, _, d)| d.windows(boundary.len()).any(|w| w == boundary.as_bytes()))
    {
        n += 1;
        boundary = format!("kilnUploadBoundary{n:08x}");
    }
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.2.len() + 200).sum());
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
