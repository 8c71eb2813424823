//! crates.io `pyroscope`, both generations, each in a small busy program
//! built by install.sh from `tests/agents/rust-*`:
//! 2.x with the built-in pprof-rs backend pushes gzip-compressed
//! `push.v1` over Connect; 0.5.8 with `pyroscope_pprofrs` 0.2.10 posts
//! gzipped pprof to `/ingest?format=pprof`.

use tokio::process::Command;

use super::{
    BUSY, CPU, Server, agent_sources, agents_home, assert_plausible_cpu,
    built_from_current_sources, installed, run_agent, wait_for_service,
};

/// Runs the agent program built from `tests/agents/<project>` against a
/// fresh Kiln and checks its CPU profile.
async fn profile_rust_program(project: &str, binary: &str, service: &str, hot_function: &str) {
    let binary = installed(
        &format!("the {project} agent program"),
        agents_home().join(format!("target-{project}/debug/{binary}")),
    );
    built_from_current_sources(&binary, &agent_sources().join(project));
    let server = Server::start();

    let mut command = Command::new(binary);
    command.args([&server.kiln.http, service, &BUSY.as_secs_f64().to_string()]);
    let run = run_agent(&format!("{project} agent"), command).await;
    assert!(run.stdout.contains("done"), "{}", run.stdout);

    let merged = wait_for_service(&server, service, &[CPU]).await;
    let cpu = &merged[CPU];
    assert_plausible_cpu(cpu.total, BUSY, run.elapsed, project);
    cpu.assert_dominated_by(hot_function, 0.6, &format!("{project} CPU"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyroscope_rs_2_pushes_cpu() {
    profile_rust_program(
        "rust-2",
        "kiln-agent-rust-2",
        "kiln-agent-rust-2",
        "kiln_agent_rust_2::kiln_rust_fib",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyroscope_rs_0_5_ingests_pprof() {
    profile_rust_program(
        "rust-0.5",
        "kiln-agent-rust-05",
        "kiln-agent-rust-05",
        "kiln_agent_rust_05::kiln_rust_old_fib",
    )
    .await;
}
