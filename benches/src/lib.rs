//! Data for Kiln's criterion benches (`benches/benches/*.rs`): real
//! profiles from the shared test data and seeded synthetic ones from
//! [`kiln_formats::testgen`] (the generator `kiln bench ingest` uses too, so
//! the binary needs no benchmark dependency), plus the conversions the
//! benches share (profile → stack tree, profile → normalised series).
//!
//! Run everything with `cargo bench -p kiln-benches`; `cargo test -p
//! kiln-benches --benches` runs each bench once as a smoke test.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use kiln_formats::normalize::{NormalizeOptions, normalize};
use kiln_formats::pprof::ValidationMode;
use kiln_formats::testgen::{ProfileShape, Rng, ServiceModel};
use kiln_formats::{Limits, SeriesProfile};
use kiln_model::{Labels, StackTree};
use kiln_proto::google::v1::Profile;
use prost::Message;

/// Seed of every generated input, so runs compare like with like.
pub const SEED: u64 = 42;

/// A fixed "now" (2026-01-01T00:00:00Z) for normalisation.
pub const NOW_NS: i64 = 1_767_225_600_000_000_000;

/// Criterion settings sized for a 2-core machine: short warm-up and
/// measurement, 20 samples. Command-line flags still override them.
pub fn criterion_config() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

/// The shared test data directory: `$KILN_TESTDATA`, else
/// `../shared/testdata` next to the repository.
pub fn testdata_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_TESTDATA") {
        return PathBuf::from(d);
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for rel in ["../../shared/testdata", "../shared/testdata"] {
        let p = here.join(rel);
        if p.is_dir() {
            return p;
        }
    }
    PathBuf::from("/work/shared/testdata")
}

/// Reads a test data file; panics with a hint when it is missing.
pub fn read_testdata(rel: &str) -> Vec<u8> {
    let p = testdata_dir().join(rel);
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("cannot read {} ({e}); set KILN_TESTDATA", p.display()))
}

/// Inflates gzip data; other data is returned unchanged.
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("bad gzip: {e}"));
        out
    } else {
        data.to_vec()
    }
}

/// Real pprof files of the shared test data (Go CPU and heap, .NET, Node,
/// Rust, Python), as stored (some gzipped).
pub const REAL_PPROFS: &[&str] = &[
    "pprof/cpu.pb.gz",
    "pprof/heap",
    "pprof/dotnet-pprof-211.pb.gz",
    "pprof/cpu_go_truncated_1.pb.gz",
    "pprof/profile_rust",
    "pprof/profile_ruby",
    "pprof/nodejs-wall.pb.gz",
];

/// `(name, bytes as stored)` of [`REAL_PPROFS`].
pub fn real_pprofs() -> Vec<(String, Vec<u8>)> {
    REAL_PPROFS
        .iter()
        .map(|rel| {
            let name = rel.rsplit('/').next().unwrap_or(rel).to_owned();
            (name, read_testdata(rel))
        })
        .collect()
}

/// `count` CPU profiles of one generated service with `stacks` samples each.
pub fn generated_profiles(count: usize, stacks: usize) -> Vec<Profile> {
    let model = ServiceModel::new(SEED, 0, ProfileShape { stacks, depth: 24 });
    let mut rng = Rng::new(SEED);
    (0..count)
        .map(|i| model.profile(&mut rng, NOW_NS + i as i64 * 10_000_000_000, 10_000_000_000))
        .collect()
}

/// Folded text of a generated profile with `stacks` lines.
pub fn generated_folded(stacks: usize) -> String {
    let model = ServiceModel::new(SEED, 1, ProfileShape { stacks, depth: 24 });
    model.folded(&mut Rng::new(SEED))
}

/// The uncompressed protobuf size of a profile.
pub fn encoded_len(p: &Profile) -> usize {
    p.encoded_len()
}

/// The stack tree of a profile's sample type `value_index`, frames named
/// by function (inlined lines expanded, root first).
pub fn tree_of(p: &Profile, value_index: usize) -> StackTree {
    let function_names: std::collections::HashMap<u64, &str> = p
        .function
        .iter()
        .map(|f| (f.id, p.string_table[f.name as usize].as_str()))
        .collect();
    let locations: std::collections::HashMap<u64, &kiln_proto::google::v1::Location> =
        p.location.iter().map(|l| (l.id, l)).collect();
    let mut tree = StackTree::new();
    let mut frames: Vec<&str> = Vec::new();
    for s in &p.sample {
        frames.clear();
        for id in s.location_id.iter().rev() {
            if let Some(loc) = locations.get(id) {
                for line in loc.line.iter().rev() {
                    frames.push(
                        function_names
                            .get(&line.function_id)
                            .copied()
                            .unwrap_or("?"),
                    );
                }
            }
        }
        tree.insert_stack(&frames, s.value.get(value_index).copied().unwrap_or(0));
    }
    tree
}

/// Series labels of a generated profile of service `service`, pod `pod`.
pub fn series_labels(service: &str, pod: usize) -> Labels {
    Labels::from_pairs([
        ("__name__".to_owned(), "process_cpu".to_owned()),
        ("service_name".to_owned(), service.to_owned()),
        ("pod".to_owned(), format!("{service}-{pod:03}")),
    ])
}

/// Normalises a profile the way the Push API does.
pub fn normalized(labels: Labels, profile: Profile) -> Vec<SeriesProfile> {
    normalize(
        labels,
        profile,
        &Limits::default(),
        NormalizeOptions {
            mode: ValidationMode::Push,
            now_ns: NOW_NS,
        },
    )
    .unwrap_or_else(|e| panic!("generated profile does not normalise: {e}"))
}
