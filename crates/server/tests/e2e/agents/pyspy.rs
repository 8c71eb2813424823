//! PyPI `py-spy`: records a busy Python process to folded stacks
//! (`--format raw`), uploaded to `/ingest` with `format=folded` and
//! `spyName=pyspy` as a py-spy integration does.

use std::collections::BTreeMap;

use tokio::process::Command;

use super::{
    BUSY, CPU, Server, agent_sources, agents_home, assert_plausible_cpu, installed, run_agent,
    unix_seconds, wait_for_service, wait_for_total,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_spy_folded_upload() {
    let venv = agents_home().join("venv/bin");
    let py_spy = installed("py-spy", venv.join("py-spy"));
    let python = installed("python venv", venv.join("python"));
    let server = Server::start();
    let service = "kiln-agent-pyspy";

    let dir = tempfile::tempdir().unwrap();
    let folded_path = dir.path().join("busy.folded");
    let from = unix_seconds();
    let mut command = Command::new(py_spy);
    command
        .args(["record", "--format", "raw", "--rate", "100", "--output"])
        .arg(&folded_path)
        .arg("--")
        .arg(python)
        .arg(agent_sources().join("python/busy.py"))
        .arg(BUSY.as_secs_f64().to_string());
    let run = run_agent("py-spy record", command).await;
    let folded = std::fs::read_to_string(&folded_path).unwrap();

    // The expected total, from py-spy's own output: count × 10 ms.
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for line in folded.lines().filter(|l| !l.trim().is_empty()) {
        let (stack, count) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a folded line: {line:?}"));
        *counts.entry(stack).or_default() += count.parse::<i64>().unwrap();
    }
    let samples: i64 = counts.values().sum();
    assert!(samples > 0, "py-spy recorded nothing:\n{folded}");

    let reply = server
        .client
        .ingest(
            &[
                ("name", format!("{service}.cpu{{agent_test=py-spy}}")),
                ("format", "folded".into()),
                ("spyName", "pyspy".into()),
                ("sampleRate", "100".into()),
                ("from", from),
                ("until", unix_seconds()),
            ],
            "text/plain",
            folded.clone().into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());

    let cpu = wait_for_total(&server, service, CPU, samples * 10_000_000).await;
    wait_for_service(&server, service, &[CPU]).await;
    assert_plausible_cpu(cpu.total, BUSY, run.elapsed, "py-spy");
    cpu.assert_dominated_by("kiln_spy_fib", 0.6, "py-spy CPU");
}
