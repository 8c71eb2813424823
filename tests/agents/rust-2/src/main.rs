//! A busy program profiled by the real `pyroscope` 2.x crate (pprof-rs
//! backend), which pushes gzip-compressed `push.v1` requests over Connect.
//!
//! Usage: `kiln-agent-rust-2 SERVER_URL APP_NAME SECONDS`

use std::time::{Duration, Instant};

use pyroscope::backend::{BackendConfig, PprofConfig, pprof_backend};
use pyroscope::pyroscope::PyroscopeAgentBuilder;

#[inline(never)]
fn kiln_rust_fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        kiln_rust_fib(n - 1).wrapping_add(kiln_rust_fib(n - 2))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, app, seconds] = args.as_slice() else {
        return Err("usage: kiln-agent-rust-2 SERVER_URL APP_NAME SECONDS".into());
    };
    let run_for = Duration::from_secs_f64(seconds.parse()?);
    let backend = pprof_backend(PprofConfig::default(), BackendConfig::default());
    let agent = PyroscopeAgentBuilder::new(
        url,
        app,
        100,
        "pyroscope-rs",
        env!("CARGO_PKG_VERSION"),
        backend,
    )
    .tags(vec![("agent_test", "pyroscope-rs-2")])
    .build()?;
    let running = agent.start()?;
    let started = Instant::now();
    let mut acc = 0u64;
    while started.elapsed() < run_for {
        acc = acc.wrapping_add(kiln_rust_fib(std::hint::black_box(24)));
    }
    let ready = running.stop()?;
    ready.shutdown();
    println!("done {acc}");
    Ok(())
}
