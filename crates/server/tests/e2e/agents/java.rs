//! The JDK's own Flight Recorder: a busy Java program is recorded with
//! `-XX:StartFlightRecording` and a minimal settings file
//! (`tests/agents/java/kiln-test.jfc`: method samples every 10 ms and
//! allocation samples, nothing about the environment), and the `.jfr` is
//! uploaded as pyroscope-java uploads it: `POST /ingest?format=jfr` with a
//! gzip-compressed multipart part `jfr`. The expected totals are counted
//! with the JDK's `jfr` tool: CPU = `jdk.ExecutionSample` events × 10 ms;
//! allocation objects and bytes = the `jdk.ObjectAllocationSample` events
//! with a stack trace and their weights.

use std::path::Path;

use kiln_tests::Client;
use tokio::process::Command;

use super::{
    BUSY, CPU, Server, agent_sources, on_path, run_agent, unix_seconds, wait_for_service,
    wait_for_total,
};

const ALLOC_OBJECTS: &str = "memory:alloc_sample_objects:count:space:bytes";
const ALLOC_BYTES: &str = "memory:alloc_sample_bytes:bytes:space:bytes";

/// What `jfr print` finds of one event type in a recording.
#[derive(Debug)]
struct EventCount {
    /// Every event of the type.
    events: i64,
    /// Events with a stack trace (the others cannot become samples; the
    /// JIT compiler's threads, for example, record allocations without).
    with_stack: i64,
    /// Sum of the `weight` field of the events with a stack trace.
    weight_with_stack: i64,
}

/// Counts the events of `event` in a recording with `jfr print --json`.
async fn count_events(jfr: &Path, recording: &Path, event: &str) -> EventCount {
    let mut command = Command::new(jfr);
    command
        .args(["print", "--json", "--events", event])
        .arg(recording);
    let printed = run_agent("jfr print", command).await.stdout;
    let json: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let events = json["recording"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events array in `jfr print --json` output"));
    let mut count = EventCount {
        events: 0,
        with_stack: 0,
        weight_with_stack: 0,
    };
    for e in events {
        assert_eq!(e["type"], event, "jfr print --events {event}");
        count.events += 1;
        if e["values"]["stackTrace"].is_object() {
            count.with_stack += 1;
            count.weight_with_stack += e["values"]["weight"].as_i64().unwrap_or(0);
        }
    }
    count
}

/// Uploads a recording as pyroscope-java does.
async fn upload_like_pyroscope_java(
    client: &Client,
    service: &str,
    recording: &[u8],
    from: String,
) {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzip, recording).unwrap();
    let reply = client
        .ingest_multipart(
            &[
                ("name", format!("{service}{{agent_test=jfr}}")),
                ("units", "samples".into()),
                ("aggregationType", "sum".into()),
                ("from", from),
                ("until", unix_seconds()),
                ("spyName", "javaspy".into()),
                ("sampleRate", "100".into()),
                ("format", "jfr".into()),
            ],
            &[("jfr", "jfr", gzip.finish().unwrap())],
        )
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        200,
        "JFR upload refused: {} (is format=jfr wired into /ingest yet? see `git log -- crates/formats`)",
        reply.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jdk_flight_recorder_upload() {
    let java = on_path("java");
    let javac = on_path("javac");
    let jfr = on_path("jfr");
    let sources = agent_sources().join("java");
    let work = tempfile::tempdir().unwrap();
    let server = Server::start();
    let service = "kiln-agent-java";

    let mut command = Command::new(javac);
    command
        .arg("-d")
        .arg(work.path())
        .arg(sources.join("Busy.java"));
    run_agent("javac", command).await;

    // A clean environment: the recording must not carry this machine's
    // variables (the settings file also disables every environment event).
    let recording = work.path().join("busy.jfr");
    let from = unix_seconds();
    let mut command = Command::new(java);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8")
        .arg(format!(
            "-XX:StartFlightRecording=filename={},settings={},dumponexit=true",
            recording.display(),
            sources.join("kiln-test.jfc").display()
        ))
        .arg("-cp")
        .arg(work.path())
        .arg("Busy")
        .arg(BUSY.as_secs_f64().to_string());
    let run = run_agent("java Busy under JFR", command).await;
    assert!(run.stdout.contains("done"), "{}", run.stdout);

    let execution = count_events(&jfr, &recording, "jdk.ExecutionSample").await;
    let allocation = count_events(&jfr, &recording, "jdk.ObjectAllocationSample").await;
    assert!(
        execution.events > 0 && allocation.with_stack > 0,
        "recording has {execution:?} and {allocation:?}"
    );

    let data = std::fs::read(&recording).unwrap();
    upload_like_pyroscope_java(&server.client, service, &data, from).await;

    // Every execution sample is one 10 ms period (sampleRate=100); each
    // allocation sample is one object of its sampled weight.
    let cpu = wait_for_total(&server, service, CPU, execution.events * 10_000_000).await;
    wait_for_total(&server, service, ALLOC_OBJECTS, allocation.with_stack).await;
    wait_for_total(&server, service, ALLOC_BYTES, allocation.weight_with_stack).await;
    wait_for_service(&server, service, &[CPU, ALLOC_OBJECTS, ALLOC_BYTES]).await;
    // At most two threads run (the computing main thread and the allocator).
    let most = run.elapsed.as_nanos() as f64 * 2.0 * 1.3;
    assert!(
        (cpu.total as f64) <= most,
        "CPU total {} ns is more than two threads could burn in {:?}",
        cpu.total,
        run.elapsed
    );
    cpu.assert_dominated_by("Busy.kilnJavaFib", 0.6, "JFR CPU");
}
