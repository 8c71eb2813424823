//! Normalisation: a decoded pprof plus series labels → validated,
//! label-promoted, merged series profiles (`kiln_formats::normalize`), the
//! common tail of every ingest path.
//!
//! Inputs: generated CPU profiles of 100, 1,000 and 10,000 stacks, and the
//! real Go heap and .NET profiles. The profile is cloned outside the timed
//! section (`iter_batched`). Throughput is samples.
//!
//! Run: `cargo bench -p kiln-benches --bench normalize`

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_benches::{
    criterion_config, generated_profiles, normalized, read_testdata, series_labels,
};
use kiln_formats::Limits;
use kiln_formats::pprof::decode;
use kiln_proto::google::v1::Profile;

fn bench(c: &mut Criterion) {
    let limits = Limits {
        max_profile_bytes: 64 << 20,
        ..Limits::default()
    };
    let mut inputs: Vec<(String, Profile)> = Vec::new();
    for stacks in [100, 1_000, 10_000] {
        inputs.push((
            format!("generated-{stacks}"),
            generated_profiles(1, stacks).remove(0),
        ));
    }
    for rel in ["pprof/heap", "pprof/dotnet-pprof-211.pb.gz"] {
        let p = decode(&read_testdata(rel), &limits).expect("decodes");
        inputs.push((rel.rsplit('/').next().unwrap_or(rel).to_owned(), p));
    }
    let mut g = c.benchmark_group("normalize");
    for (name, profile) in &inputs {
        let labels = series_labels("api", 1);
        let expected: usize = normalized(labels.clone(), profile.clone())
            .iter()
            .map(|s| s.profile.sample.len())
            .sum();
        assert!(expected > 0);
        g.throughput(Throughput::Elements(profile.sample.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), profile, |b, profile| {
            b.iter_batched(
                || (labels.clone(), profile.clone()),
                |(labels, profile)| {
                    let out = normalized(labels, black_box(profile));
                    assert_eq!(
                        out.iter().map(|s| s.profile.sample.len()).sum::<usize>(),
                        expected
                    );
                    black_box(out)
                },
                BatchSize::SmallInput,
            )
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
