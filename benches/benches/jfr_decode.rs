//! JFR decoding: an async-profiler recording → one pprof per event kind
//! (`kiln_formats::jfr::parse_jfr`), the cost the Java agent's uploads put
//! on a distributor.
//!
//! Input: `jfr/jfr-parser/async-profiler.jfr.gz` from the shared test data
//! (a real async-profiler recording with CPU and allocation events), given
//! gzipped as agents may send it. Throughput is bytes of the inflated
//! recording.
//!
//! Run: `cargo bench -p kiln-benches --bench jfr_decode`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::{criterion_config, gunzip, read_testdata};
use kiln_formats::jfr::{JfrOptions, parse_jfr};

fn bench(c: &mut Criterion) {
    let gz = read_testdata("jfr/jfr-parser/async-profiler.jfr.gz");
    let inflated = gunzip(&gz);
    let options = JfrOptions {
        from_ns: 1_700_000_000_000_000_000,
        until_ns: 1_700_000_010_000_000_000,
        ..JfrOptions::default()
    };
    let expected = parse_jfr(&gz, None, &options).expect("recording converts");
    let kinds = expected.len();
    let samples: usize = expected.iter().map(|p| p.profile.sample.len()).sum();
    assert!(kinds > 0 && samples > 0);

    let mut g = c.benchmark_group("jfr_decode");
    g.throughput(Throughput::Bytes(inflated.len() as u64));
    g.bench_function("async-profiler.jfr.gz", |b| {
        b.iter(|| {
            let profiles = parse_jfr(black_box(&gz), None, &options).expect("converts");
            assert_eq!(profiles.len(), kinds);
            black_box(profiles)
        })
    });
    g.bench_function("async-profiler.jfr (inflated)", |b| {
        b.iter(|| {
            let profiles = parse_jfr(black_box(&inflated), None, &options).expect("converts");
            assert_eq!(
                profiles
                    .iter()
                    .map(|p| p.profile.sample.len())
                    .sum::<usize>(),
                samples
            );
            black_box(profiles)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = bench
}
criterion_main!(benches);
