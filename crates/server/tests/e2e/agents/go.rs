//! Debian `golang-go`: a busy Go program profiles itself with
//! `runtime/pprof` (what pyroscope-go wraps), and the CPU and heap profiles
//! are sent both as pyroscope-go sends them (multipart `profile` part,
//! nanosecond timestamps, `spyName=gospy`) and through `push.v1`.

use kiln_proto::push::v1::{PushRequest, PushResponse, RawProfileSeries, RawSample};
use kiln_proto::types::v1::LabelPair;
use kiln_tests::{Client, now_ms, pprof_totals};
use tokio::process::Command;

use super::{
    BUSY, CPU, Server, agent_sources, assert_plausible_cpu, on_path, run_agent, wait_for_service,
    wait_for_total,
};

const CPU_SAMPLES: &str = "process_cpu:samples:count:cpu:nanoseconds";
const INUSE_SPACE: &str = "memory:inuse_space:bytes:space:bytes";
const ALLOC_SPACE: &str = "memory:alloc_space:bytes:space:bytes";

/// The profile type IDs and totals of a pprof file, computed from the file.
fn expected_totals(pprof: &[u8], name: &str) -> Vec<(String, i64)> {
    let period = if name == "process_cpu" {
        "cpu:nanoseconds"
    } else {
        "space:bytes"
    };
    pprof_totals(pprof)
        .into_iter()
        .map(|(ty, unit, total)| (format!("{name}:{ty}:{unit}:{period}"), total))
        .collect()
}

fn label(name: &str, value: &str) -> LabelPair {
    LabelPair {
        name: name.into(),
        value: value.into(),
    }
}

/// Uploads both profiles as pyroscope-go does: one multipart request each.
async fn upload_like_pyroscope_go(client: &Client, service: &str, cpu: &[u8], heap: &[u8]) {
    let nanos = (now_ms() * 1_000_000).to_string();
    for profile in [cpu, heap] {
        let reply = client
            .ingest_multipart(
                &[
                    ("name", format!("{service}{{agent_test=go}}")),
                    ("from", nanos.clone()),
                    ("until", nanos.clone()),
                    ("spyName", "gospy".into()),
                    ("sampleRate", "100".into()),
                    ("units", "samples".into()),
                    ("aggregationType", "sum".into()),
                ],
                &[("profile", "profile.pprof", profile.to_vec())],
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
}

/// Pushes both profiles in one gzip-compressed Connect `PushRequest`, the
/// CPU profile gzipped as `runtime/pprof` wrote it, the heap one inflated.
async fn push(client: &Client, service: &str, cpu: &[u8], heap: &[u8]) {
    let series = |name: &str, raw_profile: Vec<u8>, id: &str| RawProfileSeries {
        labels: vec![
            label("__name__", name),
            label("service_name", service),
            label("agent_test", "go"),
        ],
        samples: vec![RawSample {
            raw_profile,
            id: id.into(),
        }],
        annotations: vec![],
    };
    let request = PushRequest {
        series: vec![
            series(
                "process_cpu",
                cpu.to_vec(),
                "6f1c1d1e-0000-4000-8000-000000000001",
            ),
            series(
                "memory",
                kiln_tests::maybe_gunzip(heap),
                "6f1c1d1e-0000-4000-8000-000000000002",
            ),
        ],
    };
    let reply: Result<PushResponse, _> = client
        .connect_proto("/push.v1.PusherService/Push", &request, true)
        .await
        .unwrap();
    reply.unwrap_or_else(|e| panic!("push failed: {} {}", e.status, e.text()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_runtime_pprof_ingest_and_push() {
    let go = on_path("go");
    let server = Server::start();
    let out = tempfile::tempdir().unwrap();

    // A single-file program with only the standard library: no module.
    let mut command = Command::new(go);
    command
        .current_dir(agent_sources().join("go"))
        .env("GOFLAGS", "-mod=mod")
        .env("GO111MODULE", "auto")
        .args(["run", "main.go"])
        .arg(out.path())
        .arg(BUSY.as_secs_f64().to_string());
    let run = run_agent("go program", command).await;
    assert!(run.stdout.contains("done"), "{}", run.stdout);
    let cpu = std::fs::read(out.path().join("cpu.pb.gz")).unwrap();
    let heap = std::fs::read(out.path().join("heap.pb.gz")).unwrap();

    let mut expected = expected_totals(&cpu, "process_cpu");
    expected.extend(expected_totals(&heap, "memory"));
    let types: Vec<&str> = expected.iter().map(|(t, _)| t.as_str()).collect();
    for wanted in [CPU, CPU_SAMPLES, INUSE_SPACE, ALLOC_SPACE] {
        assert!(types.contains(&wanted), "{wanted} not in {types:?}");
    }

    let ingest_service = "kiln-agent-go-ingest";
    let push_service = "kiln-agent-go-push";
    upload_like_pyroscope_go(&server.client, ingest_service, &cpu, &heap).await;
    push(&server.client, push_service, &cpu, &heap).await;

    for service in [ingest_service, push_service] {
        for (profile_type, total) in &expected {
            wait_for_total(&server, service, profile_type, *total).await;
        }
        let merged = wait_for_service(&server, service, &types).await;
        let cpu = &merged[CPU];
        // `go run` compiles first, so the process lived longer than the
        // profile; the profile covers the busy loop only.
        assert_plausible_cpu(cpu.total, BUSY, run.elapsed, service);
        cpu.assert_dominated_by("main.kilnGoFib", 0.6, &format!("{service} CPU"));
        merged[ALLOC_SPACE].assert_dominated_by(
            "main.kilnGoRetain",
            0.8,
            &format!("{service} alloc_space"),
        );
    }
}
