//! Folded ("collapsed") text parsing: `a;b;c 12` lines → distinct stacks
//! with summed counts (`kiln_formats::folded::parse_folded`), what every
//! py-spy, rbspy and OG `/ingest` upload costs before conversion.
//!
//! Inputs: the real `collapsed/pprof-string.txt` and py-spy capture, and
//! generated folded profiles of 500 and 5,000 stacks (about 24 frames
//! deep). Throughput is input bytes.
//!
//! Run: `cargo bench -p kiln-benches --bench folded_parse`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::{criterion_config, generated_folded, read_testdata};
use kiln_formats::folded::parse_folded;

fn bench(c: &mut Criterion) {
    let mut inputs: Vec<(String, Vec<u8>)> = vec![
        (
            "pprof-string.txt".into(),
            read_testdata("collapsed/pprof-string.txt"),
        ),
        (
            "py-spy.folded".into(),
            read_testdata("captured/py-spy-0.4.3.raw.folded"),
        ),
    ];
    for stacks in [500, 5_000] {
        inputs.push((
            format!("generated-{stacks}"),
            generated_folded(stacks).into_bytes(),
        ));
    }
    let mut g = c.benchmark_group("folded_parse");
    for (name, text) in &inputs {
        let distinct = parse_folded(text, usize::MAX).expect("parses").len();
        assert!(distinct > 0);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), text, |b, text| {
            b.iter(|| {
                let stacks = parse_folded(black_box(text), usize::MAX).expect("parses");
                assert_eq!(stacks.len(), distinct);
                black_box(stacks)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = bench
}
criterion_main!(benches);
