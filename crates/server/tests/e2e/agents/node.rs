//! npm `@pyroscope/nodejs` 0.6: posts the wall and the heap profile as raw
//! gzipped pprof to `/ingest?format=pprof` (with its bogus `sampleRate=17`
//! on the wall upload; the pprof period is what counts).

use tokio::process::Command;

use super::{BUSY, Server, agent_sources, installed, on_path, run_agent, wait_for_service};

const WALL: &str = "wall:wall:nanoseconds:wall:nanoseconds";
const WALL_SAMPLES: &str = "wall:samples:count:wall:nanoseconds";
// The SDK renames the heap sample types `objects`/`space` to
// `inuse_objects`/`inuse_space` in the string table, which the period type
// shares, so the period type reads `inuse_space` too (seen in the capture
// nodejs-pyroscope-0.6.4.ingest-heap.pprof.gz).
const INUSE_SPACE: &str = "memory:inuse_space:bytes:inuse_space:bytes";
const INUSE_OBJECTS: &str = "memory:inuse_objects:count:inuse_space:bytes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyroscope_nodejs_wall_and_heap() {
    let node = on_path("node");
    let agent_dir = agent_sources().join("node");
    installed(
        "@pyroscope/nodejs",
        agent_dir.join("node_modules/@pyroscope/nodejs/package.json"),
    );
    let server = Server::start();
    let service = "kiln-agent-nodejs";

    let mut command = Command::new(node);
    command.current_dir(&agent_dir).arg("agent.js").args([
        &server.kiln.http,
        service,
        &BUSY.as_secs_f64().to_string(),
    ]);
    let run = run_agent("@pyroscope/nodejs agent", command).await;
    assert!(run.stdout.contains("done"), "{}", run.stdout);

    let merged = wait_for_service(
        &server,
        service,
        &[WALL, WALL_SAMPLES, INUSE_SPACE, INUSE_OBJECTS],
    )
    .await;

    // Wall time of the main thread: about the time the profiler ran.
    let wall = &merged[WALL];
    super::note(&format!(
        "nodejs: wall total {:.2}s in {:.1?}",
        wall.total as f64 / 1e9,
        run.elapsed
    ));
    let (low, high) = (
        BUSY.as_nanos() as f64 * 0.5,
        run.elapsed.as_nanos() as f64 * 1.3,
    );
    assert!(
        (low..=high).contains(&(wall.total as f64)),
        "wall total {:.2}s outside [{:.2}s, {:.2}s]",
        wall.total as f64 / 1e9,
        low / 1e9,
        high / 1e9
    );
    // Every wall sample stands for about one sampling interval (10 ms).
    let samples = merged[WALL_SAMPLES].total;
    let per_sample = wall.total as f64 / samples as f64;
    assert!(
        (2e6..=50e6).contains(&per_sample),
        "{samples} wall samples for {} ns: {per_sample} ns each",
        wall.total
    );
    wall.assert_dominated_by("kilnNodeFib", 0.5, "nodejs wall");

    // The heap holds what the program retains (allocated in
    // kilnNodeRetain, which V8 may inline into its caller).
    merged[INUSE_SPACE].assert_dominated_by("kilnNodeBusySlice", 0.6, "nodejs inuse_space");
}
