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

fn resolve(sym: &PartitionSymbols, mut node: u32) -> String {
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
