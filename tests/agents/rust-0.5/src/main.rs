//! A busy program profiled by the real `pyroscope` 0.5 crate with the
//! `pyroscope_pprofrs` 0.2 backend, which posts gzipped pprof to
//! `/ingest?format=pprof`.
//!
//! Usage: `kiln-agent-rust-05 SERVER_URL APP_NAME SECONDS`

use std::time::{Duration, Instant};

use pyroscope::PyroscopeAgent;
use pyroscope_pprofrs::{PprofConfig, pprof_backend};

#[inline(never)]
fn kiln_rust_old_fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        kiln_rust_old_fib(n - 1).wrapping_add(kiln_rust_old_fib(n - 2))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, app, seconds] = args.as_slice() else {
        return Err("usage: kiln-agent-rust-05 SERVER_URL APP_NAME SECONDS".into());
    };
    let run_for = Duration::from_secs_f64(seconds.parse()?);
    let agent = PyroscopeAgent::builder(url.as_str(), app.as_str())
        .backend(pprof_backend(PprofConfig::new().sample_rate(100)))
        .tags([("agent_test", "pyroscope-rs-0.5")].to_vec())
        .build()?;
    let running = agent.start()?;
    let started = Instant::now();
    let mut acc = 0u64;
    while started.elapsed() < run_for {
        acc = acc.wrapping_add(kiln_rust_old_fib(std::hint::black_box(24)));
    }
    let ready = running.stop()?;
    ready.shutdown();
    println!("done {acc}");
    Ok(())
}
