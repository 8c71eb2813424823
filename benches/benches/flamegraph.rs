//! Flame graphs and truncation, the last step of every flame-graph query:
//! `FlameGraph::from_tree` (Pyroscope's levels encoding, with the
//! `max_nodes` cut folded into `other` nodes) and `StackTree::truncated`.
//!
//! Input: the merged tree of 64 generated CPU profiles of 2,000 stacks
//! (tens of thousands of nodes), cut to 1,024 and 8,192 nodes and not cut
//! at all. Throughput is input tree nodes (elements).
//!
//! Run: `cargo bench -p kiln-benches --bench flamegraph`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::{criterion_config, generated_profiles, tree_of};
use kiln_model::{FlameGraph, StackTree};

fn bench(c: &mut Criterion) {
    let mut tree = StackTree::new();
    for p in generated_profiles(64, 2_000) {
        tree.merge(&tree_of(&p, 1));
    }
    let nodes = tree.node_count();
    let total = tree.total();
    assert!(nodes > 10_000, "{nodes} nodes");

    let mut g = c.benchmark_group("flamegraph_levels");
    g.throughput(Throughput::Elements(nodes as u64));
    for max_nodes in [1_024usize, 8_192, 0] {
        g.bench_with_input(
            BenchmarkId::from_parameter(max_nodes),
            &max_nodes,
            |b, &m| {
                b.iter(|| {
                    let fg = FlameGraph::from_tree(black_box(&tree), m);
                    assert_eq!(fg.total, total);
                    let emitted: usize = fg.levels.iter().map(|l| l.len() / 4).sum();
                    assert!(
                        m == 0 || emitted <= 2 * m + 1,
                        "{emitted} nodes for max {m}"
                    );
                    black_box(fg)
                })
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("tree_truncation");
    g.throughput(Throughput::Elements(nodes as u64));
    for max_nodes in [1_024usize, 8_192] {
        g.bench_with_input(
            BenchmarkId::from_parameter(max_nodes),
            &max_nodes,
            |b, &m| {
                b.iter(|| {
                    let t = black_box(&tree).truncated(m);
                    assert_eq!(t.total(), total);
                    assert!(t.node_count() <= 2 * m + 1, "{} nodes", t.node_count());
                    black_box(t)
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = bench
}
criterion_main!(benches);
