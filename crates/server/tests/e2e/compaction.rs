//! Compaction, roll-up tiers and retention in a running `kiln`: the answers
//! before compaction (raw segments), during it (queries run while blocks are
//! replaced) and after it (day blocks and roll-ups) are identical, and
//! retention removes raw data without changing what the tiers answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kiln_proto::kiln::metastore::v1::metastore_service_client::MetastoreServiceClient;
use kiln_proto::kiln::metastore::v1::{BlockMeta, QueryBlocksRequest};
use kiln_proto::querier::v1 as q;
use kiln_tests::{Client, Kiln, flamegraph_stacks, now_ms, wait_until};

const TYPE: &str = "process_cpu:samples:count::";
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Pushes for three past days: in each hour `h` of day `d`, stacks
/// `app;d<d>;f<k>` with value `k` (k = 1..4) and one `app;h<h>` with value `h+1`.
async fn ingest_three_days(c: &Client, day0_ms: i64) -> BTreeMap<String, i64> {
    let mut expect = BTreeMap::new();
    let mut pushes = Vec::new();
    for d in 0..3i64 {
        for h in (0..24i64).step_by(3) {
            let t_ms = day0_ms + d * DAY_MS + h * HOUR_MS + 17_000;
            let mut body = String::new();
            for k in 1..=4i64 {
                body.push_str(&format!("app;d{d};f{k} {k}\n"));
                *expect.entry(format!("app;d{d};f{k}")).or_insert(0) += k;
            }
            body.push_str(&format!("app;h{h} {}\n", h + 1));
            *expect.entry(format!("app;h{h}")).or_insert(0) += h + 1;
            let secs = (t_ms / 1000).to_string();
            let c = c.clone();
            pushes.push(async move {
                c.ingest(
                    &[
                        ("name", "tiered.cpu".into()),
                        ("sampleRate", "0".into()),
                        ("from", secs.clone()),
                        ("until", secs),
                    ],
                    "text/plain",
                    body.into_bytes(),
                )
                .await
                .unwrap()
            });
        }
    }
    for r in futures::future::join_all(pushes).await {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    expect
}

async fn stacks(c: &Client, start: i64, end: i64) -> BTreeMap<String, i64> {
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: TYPE.into(),
        label_selector: r#"{service_name="tiered"}"#.into(),
        start,
        end,
        max_nodes: Some(100_000),
        ..Default::default()
    };
    let resp = c.merge(&req).await;
    let fg = resp.flamegraph.unwrap();
    flamegraph_stacks(&fg)
}

async fn series_sum(c: &Client, start: i64, end: i64, step_s: f64) -> f64 {
    let req = q::SelectSeriesRequest {
        profile_type_id: TYPE.into(),
        label_selector: r#"{service_name="tiered"}"#.into(),
        start,
        end,
        step: step_s,
        ..Default::default()
    };
    let resp: q::SelectSeriesResponse = c
        .connect_proto("/querier.v1.QuerierService/SelectSeries", &req, false)
        .await
        .unwrap()
        .unwrap();
    resp.series
        .iter()
        .flat_map(|s| s.points.iter())
        .map(|p| p.value)
        .sum()
}

async fn blocks(grpc: &str) -> Vec<BlockMeta> {
    let mut c = MetastoreServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    c.query_blocks(QueryBlocksRequest {
        tenants: vec!["anonymous".into()],
        start: 0,
        end: i64::MAX,
        service_names: vec![],
    })
    .await
    .unwrap()
    .into_inner()
    .blocks
}

/// Whether every one of the three days is one level-3 block with its tiers.
fn compacted(blocks: &[BlockMeta]) -> Result<(), String> {
    let raw_days = blocks
        .iter()
        .filter(|b| b.resolution == 0 && b.level == 3)
        .count();
    let lower = blocks
        .iter()
        .filter(|b| b.resolution == 0 && b.level < 3)
        .count();
    let tiers = blocks.iter().filter(|b| b.resolution > 0).count();
    if raw_days == 3 && lower == 0 && tiers >= 3 {
        Ok(())
    } else {
        Err(format!(
            "{raw_days} day blocks, {lower} smaller raw blocks, {tiers} tier blocks"
        ))
    }
}

fn sub(map: &BTreeMap<String, i64>, keep: impl Fn(&str) -> bool) -> BTreeMap<String, i64> {
    map.iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_and_tiers_answer_exactly_like_raw_data() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("KILN_COMPACTOR__POLL_INTERVAL", "100ms"),
        ("KILN_COMPACTOR__SEGMENT_MAX_AGE", "1s"),
        ("KILN_COMPACTOR__SEGMENTS_PER_MERGE", "4"),
        ("KILN_COMPACTOR__HOUR_GRACE", "0s"),
        ("KILN_COMPACTOR__DAY_GRACE", "0s"),
        ("KILN_COMPACTOR__TIER_MERGE_MIN_BLOCKS", "2"),
        ("KILN_COMPACTOR__DELETION_DELAY", "1s"),
        ("KILN_COMPACTOR__RETENTION_INTERVAL", "500ms"),
    ];
    let bin = Kiln::binary();
    let kiln = Kiln::start_with_env(&bin, dir.path(), &[], &env).unwrap();
    let c = Client::new(&kiln.http);
    // Three whole UTC days, ending two days ago.
    let day0 = (now_ms() / DAY_MS - 5) * DAY_MS;
    let (start, end) = (day0, day0 + 3 * DAY_MS - 1);

    // Queries run continuously while compaction replaces blocks; each must
    // see everything exactly once.
    let running = Arc::new(AtomicBool::new(true));
    let checked = Arc::new(AtomicUsize::new(0));
    let expect = ingest_three_days(&c, day0).await;
    assert_eq!(
        stacks(&c, start, end).await,
        expect,
        "raw answer before compaction"
    );
    let total: i64 = expect.values().sum();
    let checker = {
        let (c, running, checked, expect) = (
            c.clone(),
            Arc::clone(&running),
            Arc::clone(&checked),
            expect.clone(),
        );
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                assert_eq!(
                    stacks(&c, start, end).await,
                    expect,
                    "answer during compaction"
                );
                checked.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    wait_until(
        "the three days to be compacted with roll-ups",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || {
            let grpc = kiln.grpc.clone();
            async move { compacted(&blocks(&grpc).await) }
        },
    )
    .await
    .unwrap();
    running.store(false, Ordering::Relaxed);
    checker.await.unwrap();
    assert!(checked.load(Ordering::Relaxed) > 0);

    // After compaction: whole days come from the tiers, edges from raw data.
    assert_eq!(stacks(&c, start, end).await, expect, "whole range");
    assert_eq!(
        stacks(&c, day0 + DAY_MS, day0 + 2 * DAY_MS - 1).await,
        sub(&expect, |k| k.starts_with("app;d1"))
            .into_iter()
            .chain(day_hours(&expect))
            .collect(),
        "one whole day"
    );
    // A range starting mid-hour on day 0 and ending mid-day 2.
    let edge = stacks(
        &c,
        day0 + 3 * HOUR_MS + 1_000,
        day0 + 2 * DAY_MS + 12 * HOUR_MS,
    )
    .await;
    let mut want = BTreeMap::new();
    for d in 0..3i64 {
        for h in (0..24i64).step_by(3) {
            let t = day0 + d * DAY_MS + h * HOUR_MS + 17_000;
            if t >= day0 + 3 * HOUR_MS + 1_000 && t <= day0 + 2 * DAY_MS + 12 * HOUR_MS {
                for k in 1..=4i64 {
                    *want.entry(format!("app;d{d};f{k}")).or_insert(0) += k;
                }
                *want.entry(format!("app;h{h}")).or_insert(0) += h + 1;
            }
        }
    }
    assert_eq!(edge, want, "unaligned range mixing tiers and raw data");
    for step in [60.0, 3600.0, 86_400.0] {
        assert_eq!(
            series_sum(&c, start, end, step).await as i64,
            total,
            "series with step {step}s"
        );
    }

    // The replaced objects are deleted after the deletion delay.
    let segments = dir.path().join("blocks/anonymous/segments");
    wait_until(
        "segment objects to be deleted",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let segments = segments.clone();
            async move {
                let n = walk(&segments);
                if n == 0 {
                    Ok(())
                } else {
                    Err(format!("{n} segment files left"))
                }
            }
        },
    )
    .await
    .unwrap();
    kiln.stop().unwrap();

    // Retention of raw data at one day: the raw day blocks go, the tiers
    // answer whole days alone with the same values.
    let mut env = env.to_vec();
    env.push(("KILN_COMPACTOR__RETENTION__RAW", "1d"));
    let kiln = Kiln::start_with_env(&bin, dir.path(), &[], &env).unwrap();
    let c = Client::new(&kiln.http);
    wait_until(
        "raw blocks to expire",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let grpc = kiln.grpc.clone();
            async move {
                let b = blocks(&grpc).await;
                let raw = b.iter().filter(|b| b.resolution == 0).count();
                let tiers = b.iter().filter(|b| b.resolution > 0).count();
                if raw == 0 && tiers >= 3 {
                    Ok(())
                } else {
                    Err(format!("{raw} raw and {tiers} tier blocks"))
                }
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        stacks(&c, start, end).await,
        expect,
        "whole days from tiers only"
    );
    kiln.stop().unwrap();
}

/// The `app;h<h>` stacks of one day (each hour's stack appears once a day).
fn day_hours(expect: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    expect
        .iter()
        .filter(|(k, _)| k.starts_with("app;h"))
        .map(|(k, v)| (k.clone(), v / 3))
        .collect()
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
