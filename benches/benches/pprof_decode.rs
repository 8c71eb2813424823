//! pprof decoding: bytes as agents send them (gzipped or not) → a
//! `google.v1.Profile`, bounded by the ingest limits. Every push and
//! `/ingest` upload starts here, so this bounds ingest throughput per core.
//!
//! Inputs: the real profiles of the shared test data (Go, .NET, Node,
//! Rust, Ruby) and seeded generated CPU profiles of 100, 1,000 and 10,000
//! stacks, raw and gzipped. Throughput is uncompressed pprof bytes.
//!
//! Run: `cargo bench -p kiln-benches --bench pprof_decode`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::{criterion_config, generated_profiles, gunzip, real_pprofs};
use kiln_formats::Limits;
use kiln_formats::pprof::{decode, encode, encode_gzip};

fn bench(c: &mut Criterion) {
    let limits = Limits {
        max_profile_bytes: 64 << 20,
        ..Limits::default()
    };
    let mut g = c.benchmark_group("pprof_decode/real");
    for (name, bytes) in real_pprofs() {
        let raw_len = gunzip(&bytes).len();
        let samples = decode(&bytes, &limits)
            .expect("real pprof decodes")
            .sample
            .len();
        g.throughput(Throughput::Bytes(raw_len as u64));
        g.bench_with_input(BenchmarkId::from_parameter(&name), &bytes, |b, bytes| {
            b.iter(|| {
                let p = decode(black_box(bytes), &limits).expect("decodes");
                assert_eq!(p.sample.len(), samples);
                black_box(p)
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("pprof_decode/generated");
    for stacks in [100, 1_000, 10_000] {
        let profile = generated_profiles(1, stacks).remove(0);
        let raw = encode(&profile);
        let gz = encode_gzip(&profile).expect("gzip");
        g.throughput(Throughput::Bytes(raw.len() as u64));
        for (kind, bytes) in [("raw", &raw), ("gzip", &gz)] {
            g.bench_with_input(BenchmarkId::new(kind, stacks), bytes, |b, bytes| {
                b.iter(|| {
                    let p = decode(black_box(bytes), &limits).expect("decodes");
                    assert_eq!(p.sample.len(), stacks);
                    black_box(p)
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = bench
}
criterion_main!(benches);
