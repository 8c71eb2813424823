//! Parquet segment write and read (`kiln-storage`), what every ingester
//! flush and every querier block open costs.
//!
//! Write: 32 normalised generated CPU profiles (4 services × 8 pods, 1,000
//! stacks each) → `BlockBuilder::add_pprof` → `finish` (seven zstd
//! Parquet sections plus footer). Throughput is uncompressed pprof bytes in.
//! Read: `BlockReader::open` on an in-memory store, then the series and
//! profiles tables and one partition's symbols. Throughput is block bytes.
//!
//! Run: `cargo bench -p kiln-benches --bench block_write_read`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::{NOW_NS, criterion_config, encoded_len, normalized, series_labels};
use kiln_formats::SeriesProfile;
use kiln_formats::testgen::{ProfileShape, Rng, ServiceModel};
use kiln_storage::{BlockBuilder, BlockReader, EncodedBlock};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use ulid::Ulid;

fn inputs() -> Vec<SeriesProfile> {
    let shape = ProfileShape {
        stacks: 1_000,
        depth: 24,
    };
    let mut rng = Rng::new(kiln_benches::SEED);
    let mut out = Vec::new();
    for s in 0..4 {
        let model = ServiceModel::new(kiln_benches::SEED, s, shape);
        for pod in 0..8 {
            let p = model.profile(&mut rng, NOW_NS + pod as i64, 10_000_000_000);
            out.extend(normalized(series_labels(model.name(), pod), p));
        }
    }
    out
}

fn write_block(profiles: &[SeriesProfile]) -> EncodedBlock {
    let mut b = BlockBuilder::new("anonymous", 0, 0);
    for (i, sp) in profiles.iter().enumerate() {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        b.add_pprof(&sp.labels, Some(id), &sp.profile)
            .expect("adds");
    }
    b.finish(
        Ulid::from_parts(1, 1),
        "anonymous/segments/0/bench.block".into(),
        0,
    )
    .expect("encodes")
}

fn bench(c: &mut Criterion) {
    let profiles = inputs();
    let pprof_bytes: usize = profiles.iter().map(|s| encoded_len(&s.profile)).sum();
    let block = write_block(&profiles);
    let (n_profiles, n_samples) = (block.meta.profiles, block.meta.samples);
    assert!(n_profiles >= 32 && n_samples > 0);

    let mut g = c.benchmark_group("block_write");
    g.throughput(Throughput::Bytes(pprof_bytes as u64));
    g.bench_function("32x1000_stacks", |b| {
        b.iter(|| {
            let block = write_block(black_box(&profiles));
            assert_eq!(block.meta.samples, n_samples);
            black_box(block)
        })
    });
    g.finish();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let key = "anonymous/segments/0/bench.block";
    let size = block.bytes.len() as u64;
    runtime
        .block_on(store.put(&Path::from(key), PutPayload::from(block.bytes.clone())))
        .expect("put");
    let mut g = c.benchmark_group("block_read");
    g.throughput(Throughput::Bytes(size));
    g.bench_function("open+series+profiles+symbols", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let r = BlockReader::open(Arc::clone(&store), key, Some(size))
                    .await
                    .expect("opens");
                let series = r.series().await.expect("series");
                let rows = r.profiles().await.expect("profiles");
                let symbols = r.symbols(0).await.expect("symbols");
                assert_eq!(rows.len() as u64, n_profiles);
                assert!(!series.is_empty() && !symbols.functions.is_empty());
                black_box((series, rows, symbols))
            })
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
