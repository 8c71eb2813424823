//! Stack-tree merge: the querier's aggregate. N per-profile trees of one
//! service (seeded generated CPU profiles, 1,000 stacks each, ~24 frames
//! deep, overlapping call paths) are merged into one with
//! `StackTree::merge`, as a merge query over N profiles does after stack
//! resolution. Also: building a tree from a profile's samples
//! (`insert_stack`).
//!
//! Throughput is input tree nodes merged (elements).
//!
//! Run: `cargo bench -p kiln-benches --bench tree_merge`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::{criterion_config, generated_profiles, tree_of};
use kiln_model::StackTree;

fn bench(c: &mut Criterion) {
    let profiles = generated_profiles(128, 1_000);
    let trees: Vec<StackTree> = profiles.iter().map(|p| tree_of(p, 1)).collect();

    let mut g = c.benchmark_group("tree_merge");
    for n in [16usize, 128] {
        let input = &trees[..n];
        let nodes: usize = input.iter().map(StackTree::node_count).sum();
        let total: i64 = input.iter().map(StackTree::total).sum();
        g.throughput(Throughput::Elements(nodes as u64));
        g.bench_with_input(BenchmarkId::new("merge", n), input, |b, input| {
            b.iter(|| {
                let mut merged = StackTree::new();
                for t in input {
                    merged.merge(black_box(t));
                }
                assert_eq!(merged.total(), total);
                black_box(merged)
            })
        });
    }
    let p = &profiles[0];
    let frames: usize = p.sample.iter().map(|s| s.location_id.len()).sum();
    g.throughput(Throughput::Elements(frames as u64));
    g.bench_function("build_from_profile/1000", |b| {
        b.iter(|| {
            let t = tree_of(black_box(p), 1);
            assert!(t.node_count() > 1_000);
            black_box(t)
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
