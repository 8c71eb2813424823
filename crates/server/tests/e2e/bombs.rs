//! Decompression bombs against a real `kiln`: every write path that
//! inflates (pprof, JFR and speedscope on `/ingest`, raw and multipart;
//! Connect and OTLP/HTTP bodies with `Content-Encoding: gzip` or `zstd`; a
//! gzip pprof inside a Push; a gzip gRPC message frame) refuses a 1 GiB bomb
//! with 413 (gRPC: status 8) and a message naming the limit, quickly,
//! without the process's peak RSS growing by anything near the bomb, and
//! stays healthy.

use std::time::{Duration, Instant};

use kiln_proto::push::v1::{PushRequest, RawProfileSeries, RawSample};
use kiln_proto::types::v1::LabelPair;
use kiln_tests::{Client, Kiln, Reply, now_ms};
use prost::Message;

const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;

/// 1 GiB of zeros as gzip: 64 members of 16 MiB (~1 MiB in all).
fn gzip_bomb() -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; MIB];
    for _ in 0..16 {
        std::io::Write::write_all(&mut enc, &chunk).unwrap();
    }
    enc.finish().unwrap().repeat(GIB / (16 * MIB))
}

/// 1 GiB of zeros as one zstd frame of RLE blocks (128 KiB each, 4 bytes
/// each), written by hand: 32 KiB in all.
fn zstd_bomb() -> Vec<u8> {
    const BLOCK: usize = 128 << 10;
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd]; // magic
    out.push(0x00); // no content size, no checksum, not single-segment
    out.push(7 << 3); // window 2^(10+7) = 128 KiB
    let blocks = GIB / BLOCK;
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = ((BLOCK as u32) << 3) | (1 << 1) | last; // RLE block
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(0);
    }
    out
}

/// Peak resident memory of a process, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn assert_413(what: &str, reply: &Reply, started: Instant) {
    let elapsed = started.elapsed();
    eprintln!(
        "{what}: {} in {:.0} ms: {}",
        reply.status,
        elapsed.as_secs_f64() * 1e3,
        reply.text()
    );
    assert_eq!(reply.status, 413, "{what}: {}", reply.text());
    // "profile too large: more than N bytes", "the JFR recording is
    // larger than the limit of N bytes (after decompression)", ...
    let message = reply.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("too large") || message.contains("larger than the limit"),
        "{what}: {}",
        reply.text()
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "{what}: took {elapsed:?}"
    );
}

async fn post(
    http: &reqwest::Client,
    url: String,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut rb = http.post(url).body(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Reply {
        status,
        content_type,
        body: resp.bytes().await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompression_bombs_are_refused_with_413() {
    let dir = tempfile::tempdir().unwrap();
    // A 32 MiB body limit (Pyroscope's default is 256 MiB) keeps the
    // Connect cases cheap; the other limits are the defaults (4 MiB
    // profiles, 64 MiB JFR).
    let kiln = Kiln::start_with_env(
        &Kiln::binary(),
        dir.path(),
        &["--target", "all"],
        &[("KILN_LIMITS__MAX_BODY_BYTES", "33554432")],
    )
    .unwrap();
    let c = Client::new(&kiln.http);
    let http = reqwest::Client::new();
    let gz = gzip_bomb();
    let zs = zstd_bomb();
    let secs = (now_ms() / 1000).to_string();
    let query = |format: &str| {
        vec![
            ("name", "bomb.cpu".to_owned()),
            ("format", format.to_owned()),
            ("from", secs.clone()),
            ("until", secs.clone()),
        ]
    };
    let rss_before = peak_rss(kiln.pid());

    let t = Instant::now();
    let r = c
        .ingest(&query("pprof"), "application/octet-stream", gz.clone())
        .await
        .unwrap();
    assert_413("/ingest pprof", &r, t);
    assert!(r.text().contains("4194304"), "{}", r.text());

    let t = Instant::now();
    let r = c
        .ingest_multipart(&query("pprof"), &[("profile", "profile.pprof", gz.clone())])
        .await
        .unwrap();
    assert_413("/ingest multipart pprof", &r, t);

    let t = Instant::now();
    let r = c
        .ingest_multipart(&query("jfr"), &[("jfr", "jfr", gz.clone())])
        .await
        .unwrap();
    assert_413("/ingest multipart JFR", &r, t);
    assert!(r.text().contains("67108864"), "{}", r.text());

    let t = Instant::now();
    let r = c
        .ingest(&query("speedscope"), "application/json", gz.clone())
        .await
        .unwrap();
    assert_413("/ingest speedscope", &r, t);

    // Connect Push bodies, gzip and zstd: refused at the body limit.
    let push_url = format!("{}/push.v1.PusherService/Push", kiln.http);
    for (encoding, body) in [("gzip", &gz), ("zstd", &zs)] {
        let t = Instant::now();
        let r = post(
            &http,
            push_url.clone(),
            &[
                ("content-type", "application/proto"),
                ("content-encoding", encoding),
            ],
            body.clone(),
        )
        .await;
        assert_413(&format!("Push, Content-Encoding {encoding}"), &r, t);
        assert_eq!(r.json()["code"], "resource_exhausted", "{}", r.text());
        assert!(r.text().contains("33554432"), "{}", r.text());
    }

    // A small Push whose pprof is the bomb: refused at the profile limit.
    let push = PushRequest {
        series: vec![RawProfileSeries {
            labels: vec![LabelPair {
                name: "__name__".into(),
                value: "process_cpu".into(),
            }],
            samples: vec![RawSample {
                raw_profile: gz.clone(),
                id: String::new(),
            }],
            annotations: vec![],
        }],
    };
    let t = Instant::now();
    let r = post(
        &http,
        push_url.clone(),
        &[("content-type", "application/proto")],
        push.encode_to_vec(),
    )
    .await;
    assert_413("Push of a gzip pprof bomb", &r, t);

    // OTLP/HTTP with a zstd body.
    let t = Instant::now();
    let r = post(
        &http,
        format!("{}/v1development/profiles", kiln.http),
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "zstd"),
        ],
        zs.clone(),
    )
    .await;
    assert_413("OTLP/HTTP, Content-Encoding zstd", &r, t);

    // gRPC on the HTTP port (one message frame, compressed flag set,
    // grpc-encoding gzip): gRPC has no 413, so RESOURCE_EXHAUSTED (8).
    let mut frame = vec![1u8];
    frame.extend_from_slice(&u32::try_from(gz.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&gz);
    let t = Instant::now();
    let resp = http
        .post(push_url.clone())
        .header("content-type", "application/grpc")
        .header("grpc-encoding", "gzip")
        .body(frame)
        .send()
        .await
        .unwrap();
    let elapsed = t.elapsed();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (status, message) = (header("grpc-status"), header("grpc-message"));
    eprintln!(
        "gRPC Push, grpc-encoding gzip: grpc-status {status} in {:.0} ms: {message}",
        elapsed.as_secs_f64() * 1e3
    );
    assert_eq!(status, "8", "{message}");
    assert!(
        message.contains("too") && message.contains("33554432"),
        "{message}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");

    // An encoding Kiln does not decode is a clear 400.
    let r = post(
        &http,
        push_url.clone(),
        &[
            ("content-type", "application/proto"),
            ("content-encoding", "br"),
        ],
        vec![1, 2, 3],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("unsupported content encoding"),
        "{}",
        r.text()
    );

    // Nine 1 GiB bombs later, the peak RSS grew by about what the largest
    // limit allows (64 MiB of JFR, inflated once) and the bombs themselves
    // (~1 MiB each), nowhere near one bomb.
    let rss_after = peak_rss(kiln.pid());
    eprintln!(
        "kiln peak RSS: {} MiB before the bombs, {} MiB after",
        rss_before / MIB,
        rss_after / MIB
    );
    assert!(
        rss_after < rss_before + 160 * MIB,
        "peak RSS grew from {rss_before} to {rss_after}"
    );

    // Still healthy: ready, and a normal push is accepted.
    let r = c.get("/ready", &[]).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c
        .ingest(&query("folded"), "text/plain", b"main;work 3\n".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    kiln.stop().unwrap();
}
