//! Test harness shared by Kiln's end-to-end tests.
//!
//! [`Kiln`] starts the real `kiln` binary on free loopback ports (port 0,
//! the bound address is read from the process's log) with its own data
//! directory, waits until `/ready`, and stops it with SIGTERM or SIGKILL.
//! [`Client`] speaks to it the way agents and Grafana do: the legacy
//! `/ingest` API, Connect with protobuf or JSON bodies, and the render API.
//! [`testdata`] finds the shared real-world profiles; [`wait_until`] polls
//! for a condition with a deadline.

#![allow(
    clippy::print_stderr,
    clippy::unwrap_used,
    reason = "test support code"
)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use prost::Message;

/// The directory of the shared test data (`$KILN_TESTDATA`, else
/// `../shared/testdata` next to the repository).
pub fn testdata_dir() -> PathBuf {
    if let Ok(d) = std::env::var("KILN_TESTDATA") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata")
}

/// A file of the shared test data.
pub fn testdata(rel: &str) -> PathBuf {
    let p = testdata_dir().join(rel);
    assert!(
        p.exists(),
        "missing test data {} (set KILN_TESTDATA)",
        p.display()
    );
    p
}

/// Reads a test data file.
pub fn read_testdata(rel: &str) -> Vec<u8> {
    std::fs::read(testdata(rel)).unwrap()
}

/// Decompresses gzip data if it starts with the gzip magic.
pub fn maybe_gunzip(data: &[u8]) -> Vec<u8> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        data.to_vec()
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Polls `probe` every `interval` until it returns `Ok(value)`, and returns
/// that value. Fails once `timeout` has passed, naming `what` was awaited
/// and the last state the probe described in its `Err`. This is the one
/// polling helper of the tests: use it instead of sleeps and loops.
pub async fn wait_until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    let started = Instant::now();
    let mut polls = 0u32;
    loop {
        polls += 1;
        let last = match probe().await {
            Ok(value) => return Ok(value),
            Err(state) => state,
        };
        if started.elapsed() >= timeout {
            bail!(
                "timed out after {:.1?} ({polls} polls) waiting for {what}; last state: {last}",
                started.elapsed()
            );
        }
        tokio::time::sleep(interval).await;
    }
}

/// A running `kiln` process.
#[derive(Debug)]
pub struct Kiln {
    child: Option<Child>,
    /// Base URL of the HTTP listener, e.g. `http://127.0.0.1:41234`.
    pub http: String,
    /// `host:port` of the gRPC listener.
    pub grpc: String,
    /// The data directory.
    pub data_dir: PathBuf,
    log: Arc<Mutex<String>>,
}

fn value_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let i = line.find(key)? + key.len();
    let rest = &line[i..];
    Some(
        rest.split(|c: char| c.is_whitespace() || c == '"' || c == ',')
            .next()
            .unwrap_or(rest),
    )
}

impl Kiln {
    /// The path of the `kiln` binary built by cargo for this test run.
    pub fn binary() -> PathBuf {
        if let Ok(p) = std::env::var("KILN_BIN") {
            return PathBuf::from(p);
        }
        // Test executables live in target/<profile>/deps.
        let exe = std::env::current_exe().unwrap();
        exe.parent().and_then(Path::parent).unwrap().join("kiln")
    }

    /// Starts `kiln` with `args` (plus free loopback ports and `data_dir`).
    pub fn start(bin: &Path, data_dir: &Path, args: &[&str]) -> Result<Kiln> {
        Self::start_with_env(bin, data_dir, args, &[])
    }

    /// Starts `kiln` with `args` and extra environment variables.
    pub fn start_with_env(
        bin: &Path,
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Kiln> {
        let mut child = Command::new(bin)
            .envs(env.iter().copied())
            .args([
                "--http-addr",
                "127.0.0.1:0",
                "--grpc-addr",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(args)
            .env(
                "KILN_LOG__LEVEL",
                std::env::var("KILN_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var("KILN_TEST_VERBOSE").is_ok() {
                    eprintln!("[kiln] {line}");
                }
                if line.contains("kiln listening")
                    && let (Some(h), Some(g)) = (
                        value_after(&line, "http_addr="),
                        value_after(&line, "grpc_addr="),
                    )
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send((h.to_owned(), g.to_owned()));
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let (http, grpc) = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                bail!(
                    "kiln did not report its addresses; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        let kiln = Kiln {
            child: Some(child),
            http: format!("http://{http}"),
            grpc,
            data_dir: data_dir.to_owned(),
            log,
        };
        kiln.wait_ready(Duration::from_secs(30))?;
        Ok(kiln)
    }

    /// Waits until `/ready` answers 200.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let url = format!("{}/ready", self.http);
        while Instant::now() < deadline {
            if let Ok(out) = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url])
                .output()
                && out.stdout == b"200"
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "kiln at {} not ready after {timeout:?}; log:\n{}",
            self.http,
            self.log()
        )
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().unwrap();
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        if !sent.as_ref().is_ok_and(std::process::ExitStatus::success) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("cannot send SIGTERM to kiln: {sent:?}");
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match child.try_wait() {
                Ok(Some(s)) => return Ok(s),
                Ok(None) => {}
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("cannot wait for kiln: {e}");
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "kiln did not stop within 60s after SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL.
    pub fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Kiln {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An HTTP response: status, content type and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Content type.
    pub content_type: String,
    /// Body.
    pub body: bytes::Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client of one Kiln HTTP endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    tenant: Option<String>,
    authorization: Option<String>,
}

impl Client {
    /// A client of `base` (e.g. `http://127.0.0.1:4040`).
    pub fn new(base: &str) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            tenant: None,
            authorization: None,
        }
    }

    /// Sends `Authorization: <value>` (e.g. `Bearer t`) with every request.
    pub fn with_authorization(mut self, value: &str) -> Self {
        self.authorization = Some(value.to_owned());
        self
    }

    /// Sends `X-Scope-OrgID: tenant` with every request.
    pub fn with_tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_owned());
        self
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Reply> {
        let req = match &self.tenant {
            Some(t) => req.header("X-Scope-OrgID", t),
            None => req,
        };
        let req = match &self.authorization {
            Some(a) => req.header("Authorization", a),
            None => req,
        };
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = resp.bytes().await?;
        Ok(Reply {
            status,
            content_type,
            body,
        })
    }

    /// `POST /ingest?<query>` with a raw body.
    pub async fn ingest(
        &self,
        query: &[(&str, String)],
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Reply> {
        let req = self
            .http
            .post(format!("{}/ingest", self.base))
            .query(query)
            .header("content-type", content_type)
            .body(body);
        self.send(req).await
    }

    /// `POST /ingest?<query>` with a multipart body of file parts
    /// (name, file name, data), as pyroscope-go sends it.
    pub async fn ingest_multipart(
        &self,
        query: &[(&str, String)],
        parts: &[(&str, &str, Vec<u8>)],
    ) -> Result<Reply> {
        let boundary = "kilnTestBoundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (name, filename, data) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        self.ingest(
            query,
            &format!("multipart/form-data; boundary={boundary}"),
            body,
        )
        .await
    }

    /// A Connect call with a protobuf body; returns the decoded response or
    /// the error reply.
    pub async fn connect_proto<Req: Message, Resp: Message + Default>(
        &self,
        path: &str,
        req: &Req,
        gzip_body: bool,
    ) -> Result<std::result::Result<Resp, Reply>> {
        let mut body = req.encode_to_vec();
        let mut rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/proto");
        if gzip_body {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, &body)?;
            body = enc.finish()?;
            rb = rb.header("content-encoding", "gzip");
        }
        let reply = self
            .send(rb.header("connect-protocol-version", "1").body(body))
            .await?;
        if reply.status != 200 {
            return Ok(Err(reply));
        }
        Ok(Ok(Resp::decode(reply.body.as_ref())?))
    }

    /// `querier.v1.QuerierService/SelectMergeStacktraces` over Connect
    /// (protobuf); panics, with the status and message, when it fails.
    pub async fn merge(
        &self,
        req: &kiln_proto::querier::v1::SelectMergeStacktracesRequest,
    ) -> kiln_proto::querier::v1::SelectMergeStacktracesResponse {
        self.connect_proto(
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            req,
            false,
        )
        .await
        .expect("SelectMergeStacktraces: no answer")
        .unwrap_or_else(|e| panic!("SelectMergeStacktraces failed: {} {}", e.status, e.text()))
    }

    /// A Connect call with a JSON body.
    pub async fn connect_json(&self, path: &str, body: &serde_json::Value) -> Result<Reply> {
        let rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(rb).await
    }

    /// A POST of a raw body.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<Reply> {
        let rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        self.send(rb).await
    }

    /// A GET with query parameters.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Reply> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query))
            .await
    }

    /// The sum of the samples of a Prometheus metric on `/metrics` whose
    /// line starts with `series` (a metric name, optionally with the start of
    /// its label set, e.g. `kiln_querier_query_duration_seconds_count{method="MergeTasks"`).
    pub async fn metric(&self, series: &str) -> Result<f64> {
        let r = self.get("/metrics", &[]).await?;
        if r.status != 200 {
            bail!("/metrics answered {}", r.status);
        }
        let mut sum = 0.0;
        for line in r.text().lines().filter(|l| !l.starts_with('#')) {
            let Some(rest) = line.strip_prefix(series) else {
                continue;
            };
            // The name must end here: `foo` must not match `foo_total`.
            if !(rest.starts_with(' ')
                || rest.starts_with('{')
                || rest.starts_with(',')
                || rest.starts_with('}'))
            {
                continue;
            }
            if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                sum += v;
            }
        }
        Ok(sum)
    }
}

/// The `(stack, self value)` pairs of a `querier.v1` flame graph (see
/// [`decode_levels`]).
pub fn flamegraph_stacks(
    fg: &kiln_proto::querier::v1::FlameGraph,
) -> std::collections::BTreeMap<String, i64> {
    let levels: Vec<Vec<i64>> = fg.levels.iter().map(|l| l.values.clone()).collect();
    decode_levels(&fg.names, &levels)
}

/// Decodes flamebearer-style levels (4-tuples, delta-encoded offsets) into
/// `(stack, self value)` pairs, independently of Kiln's own code.
pub fn decode_levels(
    names: &[String],
    levels: &[Vec<i64>],
) -> std::collections::BTreeMap<String, i64> {
    let mut out = std::collections::BTreeMap::new();
    // Spans of the previous level: (start, end, path).
    let mut prev: Vec<(i64, i64, String)> = Vec::new();
    for (depth, level) in levels.iter().enumerate() {
        let mut cur = Vec::new();
        let mut end = 0;
        for t in level.chunks(4) {
            let start = end + t[0];
            end = start + t[1];
            let name = &names[t[3] as usize];
            let path = if depth == 0 {
                String::new()
            } else {
                let parent = prev
                    .iter()
                    .find(|(s, e, _)| *s <= start && end <= *e)
                    .map(|p| p.2.clone())
                    .unwrap_or_default();
                if parent.is_empty() {
                    name.clone()
                } else {
                    format!("{parent};{name}")
                }
            };
            if depth > 0 && t[2] > 0 {
                *out.entry(path.clone()).or_insert(0) += t[2];
            }
            cur.push((start, end, path));
        }
        prev = cur;
    }
    out
}

/// Sums of each sample type's values of a pprof (gzip or not), computed
/// directly from the protobuf.
pub fn pprof_totals(data: &[u8]) -> Vec<(String, String, i64)> {
    let raw = maybe_gunzip(data);
    let p = kiln_proto::google::v1::Profile::decode(raw.as_slice()).unwrap();
    let s = |i: i64| p.string_table[i as usize].clone();
    p.sample_type
        .iter()
        .enumerate()
        .map(|(i, st)| {
            (
                s(st.r#type),
                s(st.unit),
                p.sample.iter().map(|x| x.value[i]).sum(),
            )
        })
        .collect()
}

/// Standard base64 (with padding), for JSON `bytes` fields.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// A base port such that `base..base+n` are all free right now.
pub fn free_port_range(n: u16) -> u16 {
    use std::net::TcpListener;
    let seed = std::process::id() as u64 ^ now_ms() as u64;
    for attempt in 0..200u64 {
        let base = 20_000
            + ((seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(attempt * 7919))
                % 40_000) as u16;
        let ok = (0..n)
            .map(|i| TcpListener::bind(("127.0.0.1", base + i)))
            .collect::<Result<Vec<_>, _>>()
            .is_ok();
        if ok {
            return base;
        }
    }
    panic!("no free port range of {n} ports");
}

/// Whether process `pid` exists and has not exited (a zombie has).
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// A multi-process cluster started with `deploy/local/cluster.sh`.
#[derive(Debug)]
pub struct Cluster {
    script: PathBuf,
    /// The cluster's directory (data, logs, pids).
    pub dir: PathBuf,
    /// Base URLs of the distributors.
    pub push: Vec<String>,
    /// Base URL of the query API (the query-frontend).
    pub query: String,
    /// Base URLs of the queriers (`querier-1`, `querier-2`).
    pub queriers: Vec<String>,
    /// gRPC addresses of the metastore replicas (index 0 = metastore-1).
    pub metastores: Vec<String>,
    stopped: bool,
}

impl Cluster {
    /// Starts the cluster in `dir` with `bin`; `env` is passed to every node.
    pub fn start(bin: &Path, dir: &Path, env: &[(&str, &str)]) -> Result<Cluster> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/cluster.sh");
        let base = free_port_range(24);
        let out = Command::new("bash")
            .arg(&script)
            .args(["start", "--base-port", &base.to_string(), "--data-dir"])
            .arg(dir)
            .arg("--bin")
            .arg(bin)
            .env(
                "KILN_LOG__LEVEL",
                std::env::var("KILN_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            // A level in `env` wins over the default.
            .envs(env.iter().copied())
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "cluster.sh start failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut push = Vec::new();
        let mut query = String::new();
        let mut queriers = Vec::new();
        for line in stdout.lines() {
            if let Some(u) = line.strip_prefix("querier: ") {
                queriers.push(u.trim().to_owned());
            }
            if let Some(u) = line.strip_prefix("push: ") {
                push.push(u.trim().to_owned());
            } else if let Some(u) = line.strip_prefix("query: ") {
                query = u.trim().to_owned();
            }
        }
        let metastores = (0..3)
            .map(|i| format!("127.0.0.1:{}", base + 2 * i + 1))
            .collect();
        Ok(Cluster {
            script,
            dir: dir.to_owned(),
            push,
            query,
            queriers,
            metastores,
            stopped: false,
        })
    }

    /// The gRPC address of a node (`ingester-1`, `querier-2`, ...), from
    /// its command in `DIR/cmd/<node>.sh`.
    pub fn grpc(&self, node: &str) -> String {
        let path = self.dir.join("cmd").join(format!("{node}.sh"));
        let cmd = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("no node {node:?} ({}: {e})", path.display()));
        cmd.split_whitespace()
            .skip_while(|w| *w != "--grpc-addr")
            .nth(1)
            .unwrap_or_else(|| panic!("no --grpc-addr in {}", path.display()))
            .to_owned()
    }

    /// The pid of a node (`ingester-1`, `metastore-2`, ...).
    pub fn pid(&self, node: &str) -> u32 {
        std::fs::read_to_string(self.dir.join("pids").join(format!("{node}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Kills a node with SIGKILL.
    pub fn kill9(&self, node: &str) {
        let pid = self.pid(node);
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -9 {node} ({pid})");
        // Wait until the process is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops a node with SIGTERM and waits until it has exited (at most
    /// 60 s, else panics); the node and how long it took.
    pub fn terminate(&self, node: &str) -> (String, Duration) {
        let pid = self.pid(node);
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {node} ({pid})");
        while process_alive(pid) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{node} ({pid}) still running 60 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        (node.to_owned(), started.elapsed())
    }

    /// Starts a stopped node again with its original command.
    pub fn restart(&self, node: &str) -> Result<()> {
        let out = Command::new("bash")
            .arg(&self.script)
            .args(["restart-node", node, "--data-dir"])
            .arg(&self.dir)
            .output()?;
        if !out.status.success() {
            bail!(
                "restart of {node} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The log of a node.
    pub fn log(&self, node: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{node}.log")))
            .unwrap_or_default()
    }

    /// Stops every node (SIGTERM, then SIGKILL after 30 s).
    pub fn stop(&mut self) {
        if !self.stopped {
            let _ = Command::new("bash")
                .arg(&self.script)
                .args(["stop", "--data-dir"])
                .arg(&self.dir)
                .status();
            self.stopped = true;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
