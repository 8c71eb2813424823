//! Observability of one `kiln` process: the metric series exist and move
//! under the events they count, and a request id given by the caller is
//! answered and logged. (In one process the distributor calls its own
//! ingester directly; the id crossing the gRPC hop between processes is
//! checked in `cluster.rs`.)

use kiln_proto::querier::v1 as q;
use kiln_tests::{Client, Kiln, now_ms};

/// The value of one series (0 when absent), as `Client::metric` sums it.
async fn m(c: &Client, series: &str) -> f64 {
    c.metric(series).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_and_request_ids_are_answered_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let kiln = Kiln::start(
        &Kiln::binary(),
        dir.path(),
        &["--log.level", "info,openraft=warn,kiln_cluster=debug"],
    )
    .unwrap();
    let c = Client::new(&kiln.http);

    // The single metastore replica leads a membership of one.
    let leader = kiln_tests::wait_until(
        "the raft gauges to show a leader",
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(100),
        || async {
            let v = m(&c, "kiln_metastore_raft_is_leader").await;
            if v == 1.0 {
                Ok(v)
            } else {
                Err(format!("is_leader {v}"))
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(leader, 1.0);
    assert_eq!(m(&c, "kiln_metastore_raft_members").await, 1.0);
    assert!(m(&c, "kiln_metastore_raft_term").await >= 1.0);
    let applied_before = m(&c, "kiln_metastore_raft_applied_index").await;
    let blocks_before = m(&c, "kiln_metastore_blocks").await;
    let flushes_before = m(&c, "kiln_ingester_flush_duration_seconds_count").await;
    let acks_before = m(&c, "kiln_ingester_ack_latency_seconds_count").await;

    // A push with a request id: answered in the header and logged.
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/ingest", kiln.http))
        .query(&[("name", "obs.cpu"), ("sampleRate", "0")])
        .header("x-request-id", "e2e-trace-42")
        .body("main;work 7\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "e2e-trace-42");
    // Without an id, one is made up and answered.
    let resp = http
        .post(format!("{}/ingest", kiln.http))
        .query(&[("name", "obs.cpu"), ("sampleRate", "0")])
        .body("main;work 5\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let made_up = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made_up.len(), 16, "{made_up}");

    let log = kiln.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("request_id=e2e-trace-42"))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("path=/ingest")),
        "the HTTP request has it too:\n{}",
        lines.join("\n")
    );

    // Flushes, acks and the raft log moved with the pushes.
    assert!(m(&c, "kiln_ingester_flush_duration_seconds_count").await >= flushes_before + 1.0);
    assert_eq!(
        m(&c, "kiln_ingester_ack_latency_seconds_count").await,
        acks_before + 2.0,
        "one ack per push"
    );
    assert!(m(&c, "kiln_metastore_raft_applied_index").await > applied_before);
    assert!(m(&c, "kiln_metastore_blocks").await > blocks_before);
    assert!(
        m(&c, "kiln_metastore_raft_last_log_index").await
            >= m(&c, "kiln_metastore_raft_applied_index").await
    );

    // A query is timed under its method.
    let method = r#"kiln_querier_query_duration_seconds_count{method="SelectMergeStacktraces""#;
    let queries_before = m(&c, method).await;
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: "process_cpu:samples:count::".into(),
        label_selector: r#"{service_name="obs"}"#.into(),
        start: now_ms() - 3_600_000,
        end: now_ms() + 60_000,
        ..Default::default()
    };
    let resp = c.merge(&req).await;
    assert_eq!(resp.flamegraph.unwrap().total, 12);
    assert_eq!(m(&c, method).await, queries_before + 1.0);

    // A refused push is counted by tenant and reason.
    let discarded = r#"kiln_distributor_discarded_requests_total{tenant="anonymous""#;
    let discarded_before = m(&c, discarded).await;
    let r = c
        .ingest(
            &[("name", "obs.cpu".into()), ("format", "pprof".into())],
            "application/octet-stream",
            b"not a profile".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(m(&c, discarded).await, discarded_before + 1.0);
    kiln.stop().unwrap();
}
