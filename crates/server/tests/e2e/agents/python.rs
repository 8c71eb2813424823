//! PyPI `pyroscope-io` 1.4 (pyroscope-rs 2 inside): pushes gzip-compressed
//! `push.v1` requests over Connect while a Python function burns CPU.

use tokio::process::Command;

use super::{
    BUSY, CPU, Server, agent_sources, agents_home, assert_plausible_cpu, installed, run_agent,
    wait_for_service,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyroscope_io_pushes_python_cpu() {
    let python = installed("pyroscope-io", agents_home().join("venv/bin/python"));
    let server = Server::start();
    let service = "kiln-agent-python";

    let mut command = Command::new(python);
    command
        .arg(agent_sources().join("python/push_agent.py"))
        .args([&server.kiln.http, service, &BUSY.as_secs_f64().to_string()]);
    let run = run_agent("pyroscope-io agent", command).await;
    assert!(run.stdout.contains("done"), "{}", run.stdout);

    let merged = wait_for_service(&server, service, &[CPU]).await;
    let cpu = &merged[CPU];
    assert_plausible_cpu(cpu.total, BUSY, run.elapsed, "pyroscope-io");
    cpu.assert_dominated_by("kiln_py_fib", 0.6, "pyroscope-io CPU");
}
