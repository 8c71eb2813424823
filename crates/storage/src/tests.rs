//! Round-trip tests of the block format.

use std::sync::Arc;

use kiln_model::Labels;
use kiln_proto::google::v1::{Function, Label, Line, Location, Profile, Sample, ValueType};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use ulid::Ulid;

use crate::{BlockBuilder, BlockReader, PartitionSymbols, StorageError};

fn test_profile(time: i64) -> Profile {
    let strings: Vec<String> = [
        "",
        "samples",
        "count",
        "cpu",
        "nanoseconds",
        "main",
        "foo",
        "bar",
        "span_id",
        "0100000000000000",
        "main.go",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let f = |id: u64, name: i64| Function {
        id,
        name,
        system_name: name,
        filename: 10,
        start_line: 1,
    };
    let l = |id: u64, f: u64| Location {
        id,
        mapping_id: 0,
        address: 0x1000 + id,
        line: vec![Line {
            function_id: f,
            line: 7,
        }],
        is_folded: false,
    };
    Profile {
        sample_type: vec![
            ValueType { r#type: 1, unit: 2 },
            ValueType { r#type: 3, unit: 4 },
        ],
        sample: vec![
            Sample {
                location_id: vec![2, 1],
                value: vec![1, 10],
                label: vec![],
            },
            Sample {
                location_id: vec![3, 1],
                value: vec![2, 20],
                label: vec![Label {
                    key: 8,
                    str: 9,
                    num: 0,
                    num_unit: 0,
                }],
            },
            Sample {
                location_id: vec![1],
                value: vec![0, 5],
                label: vec![],
            },
        ],
        mapping: vec![],
        location: vec![l(1, 1), l(2, 2), l(3, 3)],
        function: vec![f(1, 5), f(2, 6), f(3, 7)],
        string_table: strings,
        time_nanos: time,
        duration_nanos: 10_000_000_000,
        period_type: Some(ValueType { r#type: 3, unit: 4 }),
        period: 10_000_000,
        ..Default::default()
    }
}

/// The frames of stack node `node`, root first, joined by `;`.
pub(crate) fn resolve(sym: &PartitionSymbols, mut node: u32) -> String {
    let mut frames = Vec::new();
    while node != 0 {
        let loc = &sym.locations[sym.stack_locations[node as usize] as usize];
        for (f, _) in loc.lines.iter().rev() {
            frames.push(sym.functions[*f as usize].name.clone());
        }
        node = sym.stack_parents[node as usize];
    }
    frames.reverse();
    frames.join(";")
}

#[tokio::test]
async fn block_round_trip() {
    let labels = Labels::from_pairs([
        ("__name__", "process_cpu"),
        ("service_name", "svc-a"),
        ("env", "prod"),
    ]);
    let other = Labels::from_pairs([("__name__", "process_cpu"), ("service_name", "svc-b")]);
    let mut b = BlockBuilder::new("anonymous", 3, 0);
    b.add_pprof(&labels, Some([7; 16]), &test_profile(2_000))
        .unwrap();
    b.add_pprof(&labels, Some([8; 16]), &test_profile(1_000))
        .unwrap();
    b.add_pprof(&other, None, &test_profile(3_000)).unwrap();
    let id = Ulid::new();
    let block = b
        .finish(id, "anonymous/segments/3/x.block".into(), 42)
        .unwrap();
    assert_eq!(block.meta.min_time, 1_000);
    assert_eq!(block.meta.max_time, 3_000);
    assert_eq!(block.meta.datasets.len(), 2);
    assert_eq!(block.meta.datasets[0].service_name, "svc-a");
    assert_eq!(
        block.meta.datasets[0].profile_types,
        vec![
            "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
            "process_cpu:samples:count:cpu:nanoseconds"
        ]
    );
    // 3 profiles × 2 sample types
    assert_eq!(block.meta.profiles, 6);
    // per profile: 2 non-zero samples of `samples`, 3 of `cpu`
    assert_eq!(block.meta.samples, 15);

    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    store
        .put(
            &Path::from("anonymous/segments/3/x.block"),
            PutPayload::from(block.bytes.clone()),
        )
        .await
        .unwrap();
    for size in [Some(block.meta.size), None] {
        let r = BlockReader::open(Arc::clone(&store), "anonymous/segments/3/x.block", size)
            .await
            .unwrap();
        assert_eq!(r.meta().id, id.to_string());
        let series = r.series().await.unwrap();
        assert_eq!(series.len(), 4);
        assert_eq!(series[0].service_name, "svc-a");
        assert_eq!(
            series[0].profile_type,
            "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
        );
        assert_eq!(series[0].labels.get("env"), Some("prod"));
        assert_eq!(series[3].service_name, "svc-b");
        let profiles = r.profiles().await.unwrap();
        // sorted by series then time; totals per type: cpu 35, samples 3
        assert_eq!(profiles[0], (0, 1_000, Some([8; 16]), 35));
        assert_eq!(profiles[1], (0, 2_000, Some([7; 16]), 35));
        assert_eq!(profiles[2].3, 3);
        assert_eq!(profiles[5], (3, 3_000, None, 3));
        let sym = r.symbols(0).await.unwrap();
        let stacks: Vec<String> = (1..sym.stack_parents.len() as u32)
            .map(|n| resolve(&sym, n))
            .collect();
        assert_eq!(stacks, vec!["main", "main;foo", "main;bar"]);
        assert_eq!(sym.functions[0].filename, "main.go");
        let sym_b = r.symbols(1).await.unwrap();
        assert_eq!(sym_b.stack_parents.len(), 4);
    }
}

#[tokio::test]
async fn corrupt_blocks_are_rejected() {
    let mut b = BlockBuilder::new("t", 0, 0);
    let labels = Labels::from_pairs([("__name__", "process_cpu"), ("service_name", "s")]);
    b.add_pprof(&labels, None, &test_profile(1)).unwrap();
    let block = b.finish(Ulid::new(), "k".into(), 0).unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let put = |bytes: Vec<u8>| {
        let store = Arc::clone(&store);
        async move {
            store
                .put(&Path::from("k"), PutPayload::from(bytes))
                .await
                .unwrap()
        }
    };
    let mut bad = block.bytes.to_vec();
    let n = bad.len();
    bad[n - 20] ^= 0xff; // inside the footer: checksum mismatch
    put(bad).await;
    let err = BlockReader::open(Arc::clone(&store), "k", None)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    put(block.bytes[..block.bytes.len() - 1].to_vec()).await;
    assert!(
        BlockReader::open(Arc::clone(&store), "k", None)
            .await
            .is_err()
    );
    put(b"short".to_vec()).await;
    assert!(
        BlockReader::open(Arc::clone(&store), "k", None)
            .await
            .is_err()
    );
    assert!(
        BlockReader::open(Arc::clone(&store), "missing", None)
            .await
            .is_err()
    );
}

#[test]
fn profiles_without_name_are_refused() {
    let mut b = BlockBuilder::new("t", 0, 0);
    let labels = Labels::from_pairs([("service_name", "s")]);
    assert!(b.add_pprof(&labels, None, &test_profile(1)).is_err());
}

mod compaction {
    use super::*;
    use crate::compact::{LoadedBlock, RollupBuilder, SeenProfiles, merge_into, tree_of};

    async fn store_block(store: &Arc<dyn ObjectStore>, key: &str, b: BlockBuilder) -> BlockReader {
        let block = b.finish(Ulid::new(), key.into(), 0).unwrap();
        store
            .put(&Path::from(key), PutPayload::from(block.bytes.clone()))
            .await
            .unwrap();
        BlockReader::open(Arc::clone(store), key, None)
            .await
            .unwrap()
    }

    fn folded(t: &kiln_model::StackTree) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        t.for_each_stack(|s, v| out.push((s.join(";"), v)));
        out
    }

    #[tokio::test]
    async fn merging_keeps_every_value_and_drops_duplicate_profiles() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let labels = Labels::from_pairs([("__name__", "process_cpu"), ("service_name", "svc")]);
        let mut a = BlockBuilder::new("t", 0, 0);
        a.add_pprof(&labels, Some([1; 16]), &test_profile(1_000))
            .unwrap();
        a.add_pprof(&labels, Some([2; 16]), &test_profile(2_000))
            .unwrap();
        let mut b = BlockBuilder::new("t", 0, 0);
        // The profile with id [2; 16] again (a retried push), and a new one.
        b.add_pprof(&labels, Some([2; 16]), &test_profile(2_000))
            .unwrap();
        b.add_pprof(&labels, Some([3; 16]), &test_profile(3_000))
            .unwrap();
        let a = LoadedBlock::load(&store_block(&store, "a", a).await)
            .await
            .unwrap();
        let b = LoadedBlock::load(&store_block(&store, "b", b).await)
            .await
            .unwrap();
        let mut out = BlockBuilder::new("t", 0, 1);
        let mut seen = SeenProfiles::default();
        let sa = merge_into(&mut out, &a, &mut seen, None).unwrap();
        let sb = merge_into(&mut out, &b, &mut seen, None).unwrap();
        assert_eq!((sa.profiles, sa.duplicates), (4, 0));
        // Two sample types per profile: both rows of the duplicate are dropped.
        assert_eq!((sb.profiles, sb.duplicates), (2, 2));
        let merged = LoadedBlock::load(&store_block(&store, "m", out).await)
            .await
            .unwrap();
        // Three distinct profiles of 35 (cpu) + 3 (samples) each.
        let cpu: i64 = merged.profiles.iter().map(|p| p.total).sum();
        assert_eq!(cpu, 3 * (35 + 3));
        let only_cpu = merged
            .series
            .iter()
            .find(|s| s.profile_type.contains(":cpu:"))
            .unwrap()
            .series_id;
        let tree = tree_of(&merged, |s| s.series == only_cpu);
        assert_eq!(
            folded(&tree),
            vec![
                ("main".into(), 15),
                ("main;bar".into(), 60),
                ("main;foo".into(), 30)
            ]
        );
        // A kept range drops rows outside it.
        let mut out = BlockBuilder::new("t", 0, 1);
        let s = merge_into(
            &mut out,
            &a,
            &mut SeenProfiles::default(),
            Some((1_500, 10_000)),
        )
        .unwrap();
        assert_eq!((s.profiles, s.outside), (2, 2));
    }

    #[tokio::test]
    async fn rollups_sum_exactly_and_cap_with_other() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let labels = Labels::from_pairs([("__name__", "process_cpu"), ("service_name", "svc")]);
        let mut raw = BlockBuilder::new("t", 0, 3);
        for (i, t) in [10i64, 20, 70, 130].iter().enumerate() {
            raw.add_pprof(&labels, Some([i as u8; 16]), &test_profile(*t))
                .unwrap();
        }
        let raw = LoadedBlock::load(&store_block(&store, "raw", raw).await)
            .await
            .unwrap();
        let coverage = vec![kiln_proto::kiln::metastore::v1::Coverage {
            start: 0,
            end: 180,
            raw_block: "raw".into(),
        }];
        let mut r = RollupBuilder::new("t", 0, 3, &[60, 180], 2, coverage);
        r.add_block(&raw).unwrap();
        let mut builders = r.finish();
        let coarse = builders.pop().unwrap();
        let fine = builders.pop().unwrap();
        let fine = LoadedBlock::load(&store_block(&store, "fine", fine).await)
            .await
            .unwrap();
        let coarse = LoadedBlock::load(&store_block(&store, "coarse", coarse).await)
            .await
            .unwrap();
        assert_eq!(
            fine.profiles.len(),
            2 * 3,
            "3 one-minute buckets × 2 sample types"
        );
        assert_eq!(coarse.profiles.len(), 2, "one bucket × 2 sample types");
        assert_eq!(
            fine.profiles.iter().map(|p| p.total).sum::<i64>(),
            raw.profiles.iter().map(|p| p.total).sum::<i64>()
        );
        assert_eq!(
            coarse.profiles.iter().map(|p| p.total).sum::<i64>(),
            raw.profiles.iter().map(|p| p.total).sum::<i64>()
        );
        assert_eq!(
            coarse
                .profiles
                .iter()
                .map(|p| p.time_ns)
                .collect::<Vec<_>>(),
            vec![0, 0]
        );
        assert_eq!(fine.profiles.iter().map(|p| p.duration_ns).max(), Some(60));
        // Cap 2: per bucket `main` and its biggest child survive, the rest is `other`.
        let cpu = coarse
            .series
            .iter()
            .find(|s| s.profile_type.contains(":cpu:"))
            .unwrap()
            .series_id;
        let t = tree_of(&coarse, |s| s.series == cpu);
        assert_eq!(t.total(), 4 * 35);
        assert_eq!(
            folded(&t),
            vec![
                ("main".into(), 20),
                ("main;bar".into(), 80),
                ("main;other".into(), 40)
            ]
        );
        assert_eq!(coarse.series[0].labels, labels);
    }
}

/// `BlockReader::stack_values` (row-group and page pruning, projected
/// columns, dense sums) gives exactly what summing every sample row gives.
mod sample_scan {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{PartitionStacks, SampleRowData, SampleSelection};

    /// A profile of `stacks` distinct stacks over 24 functions, drawn from
    /// `seed`, some samples with span ids.
    fn dense_profile(time: i64, seed: u64, stacks: usize) -> Profile {
        let mut strings: Vec<String> = ["", "samples", "count", "cpu", "nanoseconds", "span_id"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let first_name = strings.len() as i64;
        strings.extend((0..24).map(|i| format!("fn_{i}")));
        strings.push("0100000000000000".into());
        strings.push("0200000000000000".into());
        let span_values = [strings.len() as i64 - 2, strings.len() as i64 - 1];
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let sample = (0..stacks)
            .map(|_| {
                let depth = 1 + next() % 8;
                let location_id = (0..depth).map(|_| 1 + next() % 24).collect();
                let span = next() % 4;
                Sample {
                    location_id,
                    value: vec![1 + (next() % 5) as i64, 10 + (next() % 1000) as i64],
                    label: if span < 2 {
                        vec![Label {
                            key: 5,
                            str: span_values[span as usize],
                            num: 0,
                            num_unit: 0,
                        }]
                    } else {
                        vec![]
                    },
                }
            })
            .collect();
        Profile {
            sample_type: vec![
                ValueType { r#type: 1, unit: 2 },
                ValueType { r#type: 3, unit: 4 },
            ],
            sample,
            mapping: vec![],
            location: (1..=24)
                .map(|id| Location {
                    id,
                    mapping_id: 0,
                    address: 0x1000 + id,
                    line: vec![Line {
                        function_id: id,
                        line: 3,
                    }],
                    is_folded: false,
                })
                .collect(),
            function: (1..=24)
                .map(|id| Function {
                    id,
                    name: first_name + id as i64 - 1,
                    system_name: 0,
                    filename: 0,
                    start_line: 0,
                })
                .collect(),
            string_table: strings,
            time_nanos: time,
            duration_nanos: 10_000_000_000,
            period_type: Some(ValueType { r#type: 3, unit: 4 }),
            period: 10_000_000,
            ..Default::default()
        }
    }

    fn brute_force(rows: &[SampleRowData], sel: &SampleSelection) -> Vec<PartitionStacks> {
        let mut sums: BTreeMap<u32, BTreeMap<u32, i64>> = BTreeMap::new();
        for r in rows {
            if !sel.series.contains(&r.series)
                || r.time_ns < sel.start_ns
                || r.time_ns > sel.end_ns
                || sel
                    .spans
                    .as_ref()
                    .is_some_and(|s| r.span.is_none_or(|span| !s.contains(&span)))
                || sel
                    .profiles
                    .as_ref()
                    .is_some_and(|p| !p.contains(&r.profile_idx))
            {
                continue;
            }
            *sums
                .entry(r.partition)
                .or_default()
                .entry(r.stack)
                .or_default() += r.value;
        }
        sums.into_iter()
            .map(|(partition, stacks)| PartitionStacks {
                partition,
                stacks: stacks.into_iter().filter(|(_, v)| *v != 0).collect(),
            })
            .filter(|p| !p.stacks.is_empty())
            .collect()
    }

    #[tokio::test]
    async fn pruned_scan_equals_summing_every_row() {
        let services = ["svc-a", "svc-b"];
        let envs = ["prod", "dev"];
        // Small row groups in one block, the default in the other: both row
        // group and page pruning (pages hold at most 20k rows) are used.
        for max_rows in [1024, 1 << 20] {
            let mut b = BlockBuilder::new("t", 0, 0).with_max_row_group_rows(max_rows);
            let mut seed = 1;
            for t in 0..120i64 {
                for service in services {
                    for env in envs {
                        let labels = Labels::from_pairs([
                            ("__name__", "process_cpu"),
                            ("service_name", service),
                            ("env", env),
                        ]);
                        seed += 1;
                        let id = [(seed % 251) as u8; 16];
                        b.add_pprof(&labels, Some(id), &dense_profile(t * 1_000, seed, 60))
                            .unwrap();
                    }
                }
            }
            let key = format!("t/blocks/{max_rows}.block");
            let block = b.finish(Ulid::new(), key.clone(), 0).unwrap();
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            store
                .put(&Path::from(key.as_str()), PutPayload::from(block.bytes))
                .await
                .unwrap();
            let r = BlockReader::open(Arc::clone(&store), &key, None)
                .await
                .unwrap();
            let rows = r.sample_rows().await.unwrap();
            assert!(rows.len() > 40_000, "{} rows", rows.len());
            let meta = r.samples_metadata().await.unwrap().metadata();
            let pages = meta.offset_index().expect("page index")[0][1]
                .page_locations()
                .len();
            assert!(
                max_rows < 20_000 || pages > 1,
                "{pages} pages in the first row group"
            );
            let series = r.series().await.unwrap();
            let all: Vec<u32> = series.iter().map(|s| s.series_id).collect();
            let cpu: Vec<u32> = series
                .iter()
                .filter(|s| s.profile_type.contains(":cpu:"))
                .map(|s| s.series_id)
                .collect();
            let last = *all.last().unwrap();
            let selections = [
                (all.clone(), i64::MIN, i64::MAX, None, None),
                (cpu.clone(), 0, 119_000, None, None),
                (vec![cpu[0]], 30_000, 59_999, None, None),
                (vec![last], 100_000, 100_000, None, None),
                (cpu.clone(), 500_000, 600_000, None, None),
                (vec![cpu[1], last], 7_000, 90_000, Some(vec![1u64]), None),
                (cpu.clone(), 0, 119_000, None, Some(vec![0u32, 5, 77, 300])),
                (vec![999], 0, 119_000, None, None),
            ];
            for (series, start_ns, end_ns, spans, profiles) in selections {
                let sel = SampleSelection {
                    series,
                    start_ns,
                    end_ns,
                    spans,
                    profiles,
                };
                let got = r.stack_values(&sel).await.unwrap();
                assert_eq!(
                    got,
                    brute_force(&rows, &sel),
                    "{sel:?}, row groups of {max_rows}"
                );
            }
        }
    }
}
