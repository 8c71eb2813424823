//! Faults: object storage that fails (injected with `storage.faults`), a
//! SIGTERM under load, and a cluster whose metastores are gone (with the
//! raft gauges and request ids that let an operator see it). Pushes go
//! through HTTP (`/ingest`) and gRPC (`push.v1`), each with a unique stack
//! whose value is the push's number, so the stored data says exactly which
//! pushes were kept and how often.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_proto::google::v1::{Function, Line, Location, Profile, Sample, ValueType};
use kiln_proto::push::v1::pusher_service_client::PusherServiceClient;
use kiln_proto::push::v1::{PushRequest, RawProfileSeries, RawSample};
use kiln_proto::querier::v1 as q;
use kiln_proto::types::v1::LabelPair;
use kiln_tests::{Client, Cluster, Kiln, flamegraph_stacks, now_ms, wait_until};
use prost::Message;

/// Service and profile type of the HTTP (folded) pushes.
const HTTP_SERVICE: &str = "faultsh";
const HTTP_TYPE: &str = "process_cpu:samples:count::";
/// Service and profile type of the gRPC (pprof) pushes.
const GRPC_SERVICE: &str = "faultsg";
const GRPC_TYPE: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// How one push was answered.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// 200 / OK.
    Acked,
    /// An error answer: HTTP status or gRPC code name, and the message.
    Refused(String, String),
    /// No answer (connection refused or reset).
    NoAnswer(String),
}

/// One push: its number (odd: sent over gRPC), its answer and when.
#[derive(Debug, Clone)]
struct Push {
    n: u64,
    outcome: Outcome,
    answered: Instant,
}

/// A pprof with one sample of value `n` on the one-frame stack `grpc_p<n>`.
fn pprof_of(n: u64) -> Vec<u8> {
    Profile {
        string_table: vec![
            String::new(),
            "cpu".into(),
            "nanoseconds".into(),
            format!("grpc_p{n}"),
        ],
        sample_type: vec![ValueType { r#type: 1, unit: 2 }],
        period_type: Some(ValueType { r#type: 1, unit: 2 }),
        period: 1,
        function: vec![Function {
            id: 1,
            name: 3,
            ..Default::default()
        }],
        location: vec![Location {
            id: 1,
            line: vec![Line {
                function_id: 1,
                line: 1,
            }],
            ..Default::default()
        }],
        sample: vec![Sample {
            location_id: vec![1],
            value: vec![n as i64],
            ..Default::default()
        }],
        time_nanos: now_ms() * 1_000_000,
        ..Default::default()
    }
    .encode_to_vec()
}

fn grpc_request(n: u64) -> PushRequest {
    let label = |name: &str, value: &str| LabelPair {
        name: name.into(),
        value: value.into(),
    };
    PushRequest {
        series: vec![RawProfileSeries {
            labels: vec![
                label("__name__", "process_cpu"),
                label("service_name", GRPC_SERVICE),
            ],
            samples: vec![RawSample {
                raw_profile: pprof_of(n),
                id: String::new(),
            }],
            annotations: vec![],
        }],
    }
}

/// Sends push `n` to `http` (even `n`: `/ingest`) or `grpc` (odd `n`).
async fn push_one(
    http: &Client,
    grpc: &mut Option<PusherServiceClient<tonic::transport::Channel>>,
    grpc_addr: &str,
    n: u64,
) -> Push {
    let over_grpc = n % 2 == 1;
    let outcome = if over_grpc {
        if grpc.is_none() {
            *grpc = PusherServiceClient::connect(format!("http://{grpc_addr}"))
                .await
                .ok();
        }
        match grpc.as_mut() {
            None => Outcome::NoAnswer("cannot connect".into()),
            Some(c) => match c.push(grpc_request(n)).await {
                Ok(_) => Outcome::Acked,
                // Transport failures surface as statuses without a server
                // answer; tonic marks them with a source error.
                Err(s) if std::error::Error::source(&s).is_some() => {
                    *grpc = None;
                    Outcome::NoAnswer(s.to_string())
                }
                Err(s) => Outcome::Refused(format!("{:?}", s.code()), s.message().to_owned()),
            },
        }
    } else {
        let body = format!("load;p{n} {n}\n").into_bytes();
        let query = [
            ("name", format!("{HTTP_SERVICE}.cpu")),
            ("sampleRate", "0".into()),
        ];
        match http.ingest(&query, "text/plain", body).await {
            Ok(r) if r.status == 200 => Outcome::Acked,
            Ok(r) => Outcome::Refused(r.status.to_string(), r.text()),
            Err(e) => Outcome::NoAnswer(e.to_string()),
        }
    };
    Push {
        n,
        outcome,
        answered: Instant::now(),
    }
}

/// Pushes numbers `1..=total` from `workers` concurrent tasks, alternating
/// HTTP (`http` URLs, round robin) and gRPC (`grpc` addresses), until all
/// are sent or `stop` is set.
struct Load {
    pushes: Arc<Mutex<Vec<Push>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(http: &[String], grpc: &[String], total: u64, workers: usize) -> Load {
        let pushes: Arc<Mutex<Vec<Push>>> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let next = Arc::new(AtomicU64::new(1));
        let tasks = (0..workers)
            .map(|w| {
                let (pushes, stop, next) =
                    (Arc::clone(&pushes), Arc::clone(&stop), Arc::clone(&next));
                let http = http[w % http.len()].clone();
                let grpc_addr = grpc[w % grpc.len()].clone();
                tokio::spawn(async move {
                    let client = Client::new(&http);
                    let mut grpc = None;
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n > total {
                            return;
                        }
                        let p = push_one(&client, &mut grpc, &grpc_addr, n).await;
                        pushes.lock().unwrap().push(p);
                    }
                })
            })
            .collect();
        Load {
            pushes,
            stop,
            tasks,
        }
    }

    fn acked(&self) -> usize {
        let pushes = self.pushes.lock().unwrap();
        pushes
            .iter()
            .filter(|p| p.outcome == Outcome::Acked)
            .count()
    }

    async fn wait_acked(&self, n: usize) {
        wait_until(
            &format!("{n} acknowledged pushes"),
            Duration::from_secs(120),
            Duration::from_millis(50),
            || async {
                let have = self.acked();
                if have >= n {
                    Ok(())
                } else {
                    Err(format!("{have} acknowledged"))
                }
            },
        )
        .await
        .unwrap();
    }

    async fn finish(self) -> Vec<Push> {
        for t in self.tasks {
            t.await.unwrap();
        }
        let mut pushes = self.pushes.lock().unwrap().clone();
        pushes.sort_by_key(|p| p.n);
        pushes
    }
}

/// Every stack of one service and its value.
async fn stored_stacks(query: &Client, service: &str, profile_type: &str) -> BTreeMap<String, i64> {
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: profile_type.into(),
        label_selector: format!(r#"{{service_name="{service}"}}"#),
        start: now_ms() - 3_600_000,
        end: now_ms() + 60_000,
        max_nodes: Some(1_000_000),
        ..Default::default()
    };
    let resp = query.merge(&req).await;
    let Some(fg) = resp.flamegraph else {
        return BTreeMap::new();
    };
    flamegraph_stacks(&fg)
}

/// What the store holds of the pushes: push number → stored value.
async fn stored_pushes(query: &Client) -> BTreeMap<u64, i64> {
    let mut out = BTreeMap::new();
    for (service, profile_type, prefix) in [
        (HTTP_SERVICE, HTTP_TYPE, "load;p"),
        (GRPC_SERVICE, GRPC_TYPE, "grpc_p"),
    ] {
        for (stack, value) in stored_stacks(query, service, profile_type).await {
            if stack == "load" {
                // The shared parent frame of the folded stacks.
                continue;
            }
            let n: u64 = stack
                .strip_prefix(prefix)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected stack {stack:?} in {service}"));
            assert_eq!(
                n % 2 == 1,
                service == GRPC_SERVICE,
                "push {n} stored under the wrong service"
            );
            assert!(out.insert(n, value).is_none(), "push {n} stored twice");
        }
    }
    out
}

/// Checks the stored pushes against the answers: every acknowledged push is
/// there with its exact value; no push is there with any other value (a
/// push stored twice would show as 2n). Returns the numbers of unacknowledged
/// pushes that are stored anyway.
fn check_acked_are_stored(pushes: &[Push], stored: &BTreeMap<u64, i64>) -> Vec<u64> {
    let mut missing = Vec::new();
    let mut unacked_stored = Vec::new();
    for p in pushes {
        match (stored.get(&p.n), &p.outcome) {
            (Some(v), _) if *v != p.n as i64 => {
                panic!("push {} stored with value {v} ({:?})", p.n, p.outcome)
            }
            (None, Outcome::Acked) => missing.push(p.n),
            (Some(_), Outcome::Acked) | (None, _) => {}
            (Some(_), _) => unacked_stored.push(p.n),
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged pushes lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    let pushed: std::collections::BTreeSet<u64> = pushes.iter().map(|p| p.n).collect();
    for n in stored.keys() {
        assert!(pushed.contains(n), "push {n} stored but never sent");
    }
    unacked_stored
}

fn summary(pushes: &[Push]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in pushes {
        let key = match &p.outcome {
            Outcome::Acked => "acked".to_owned(),
            Outcome::Refused(code, _) => format!("refused {code}"),
            Outcome::NoAnswer(_) => "no answer".to_owned(),
        };
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// Object storage fails a third of its calls (errors, timeouts, writes whose
/// answer is lost) and is slow: pushes fail with retryable errors (HTTP 503,
/// gRPC UNAVAILABLE), never a 2xx for data that is not stored. After a
/// restart without faults, exactly the acknowledged pushes are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_faults_fail_pushes_retryably_and_lose_nothing_acked() {
    let dir = tempfile::tempdir().unwrap();
    let faults = [
        ("KILN_STORAGE__FAULTS__ENABLED", "true"),
        ("KILN_STORAGE__FAULTS__ERROR_RATE", "0.3"),
        ("KILN_STORAGE__FAULTS__TIMEOUT_RATE", "0.1"),
        ("KILN_STORAGE__FAULTS__TIMEOUT", "3s"),
        ("KILN_STORAGE__FAULTS__LOST_ACK_RATE", "0.1"),
        ("KILN_STORAGE__FAULTS__SLOW_PUT", "40ms"),
        ("KILN_STORAGE__FAULTS__SEED", "8"),
        ("KILN_INGESTER__FLUSH_INTERVAL", "100ms"),
        ("KILN_INGESTER__UPLOAD_TIMEOUT", "1s"),
    ];
    let kiln = Kiln::start_with_env(&Kiln::binary(), dir.path(), &[], &faults).unwrap();
    assert!(
        kiln.log()
            .contains("object storage fault injection is enabled"),
        "the faults are announced in the log"
    );
    let total = 600;
    let load = Load::start(
        std::slice::from_ref(&kiln.http),
        std::slice::from_ref(&kiln.grpc),
        total,
        24,
    );
    let pushes = load.finish().await;
    let counts = summary(&pushes);
    eprintln!("answers under storage faults: {counts:?}");
    assert_eq!(pushes.len() as u64, total);

    // Every failure is the retryable "unavailable", naming the storage failure.
    for p in &pushes {
        match &p.outcome {
            Outcome::Acked => {}
            Outcome::Refused(code, message) => {
                assert!(
                    code == "503" || code == "Unavailable",
                    "push {} refused with {code}: {message}",
                    p.n
                );
                assert!(
                    message.contains("failed to write segment"),
                    "push {} refusal names the storage failure: {message}",
                    p.n
                );
            }
            Outcome::NoAnswer(e) => panic!("push {} got no answer: {e}", p.n),
        }
    }
    let acked = counts.get("acked").copied().unwrap_or(0);
    let refused_http = counts.get("refused 503").copied().unwrap_or(0);
    let refused_grpc = counts.get("refused Unavailable").copied().unwrap_or(0);
    assert!(
        refused_http > 0 && refused_grpc > 0,
        "the faults failed pushes on both APIs: {counts:?}"
    );
    assert!(
        acked as u64 > total / 3,
        "retries inside the ingester keep most pushes going: {counts:?}"
    );
    let client = Client::new(&kiln.http);
    let failed_segments = client
        .metric("kiln_ingester_failed_segments_total")
        .await
        .unwrap();
    assert!(failed_segments > 0.0, "failed segments are counted");
    let refused_metric = client
        .metric(r#"kiln_ingester_refused_pushes_total{tenant="anonymous",reason="upload_failed""#)
        .await
        .unwrap();
    assert_eq!(
        refused_metric as usize,
        refused_http + refused_grpc,
        "every refused push is counted once by the ingester"
    );
    kiln.stop().unwrap();

    // Without faults, the stored data is exactly the acknowledged pushes: a
    // refused push's segment was never registered (even when a lost answer
    // left its object behind), so it is not read.
    let kiln = Kiln::start(&Kiln::binary(), dir.path(), &[]).unwrap();
    let stored = stored_pushes(&Client::new(&kiln.http)).await;
    let unacked_stored = check_acked_are_stored(&pushes, &stored);
    assert!(
        unacked_stored.is_empty(),
        "refused pushes stored anyway: {unacked_stored:?}"
    );
    assert_eq!(stored.len(), acked);
    let acked_sum: i64 = pushes
        .iter()
        .filter(|p| p.outcome == Outcome::Acked)
        .map(|p| p.n as i64)
        .sum();
    assert_eq!(stored.values().sum::<i64>(), acked_sum);
    kiln.stop().unwrap();
}

/// SIGTERM while pushes are in flight: the pushes waiting in the
/// ingester's buffers are flushed and answered before the process exits,
/// and after a restart exactly the acknowledged pushes are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_drains_and_loses_nothing_acked() {
    let dir = tempfile::tempdir().unwrap();
    // Long flushes and slow PUTs keep pushes in flight at any moment.
    let env = [
        ("KILN_INGESTER__FLUSH_INTERVAL", "500ms"),
        ("KILN_INGESTER__FLUSH_LINGER", "500ms"),
        ("KILN_STORAGE__FAULTS__ENABLED", "true"),
        ("KILN_STORAGE__FAULTS__SLOW_PUT", "300ms"),
    ];
    let kiln = Kiln::start_with_env(&Kiln::binary(), dir.path(), &[], &env).unwrap();
    let load = Load::start(
        std::slice::from_ref(&kiln.http),
        std::slice::from_ref(&kiln.grpc),
        100_000,
        16,
    );
    load.wait_acked(200).await;
    let sigterm = Instant::now();
    let status = tokio::task::spawn_blocking(move || kiln.stop())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "kiln exits cleanly after SIGTERM: {status}"
    );
    load.stop.store(true, Ordering::Relaxed);
    let pushes = load.finish().await;
    let counts = summary(&pushes);
    let acked_after = pushes
        .iter()
        .filter(|p| p.outcome == Outcome::Acked && p.answered > sigterm)
        .count();
    eprintln!("answers around SIGTERM: {counts:?}; {acked_after} acknowledged after SIGTERM");
    assert!(
        acked_after > 0,
        "pushes buffered at SIGTERM are flushed and acknowledged"
    );
    for p in &pushes {
        if let Outcome::Refused(code, message) = &p.outcome {
            assert!(
                code == "503" || code == "Unavailable",
                "push {} refused during shutdown with {code}: {message}",
                p.n
            );
        }
    }

    let kiln = Kiln::start(&Kiln::binary(), dir.path(), &[]).unwrap();
    let stored = stored_pushes(&Client::new(&kiln.http)).await;
    let unacked_stored = check_acked_are_stored(&pushes, &stored);
    assert!(
        unacked_stored.is_empty(),
        "pushes stored but not acknowledged: {unacked_stored:?}"
    );
    assert_eq!(stored.len(), counts.get("acked").copied().unwrap_or(0));
    kiln.stop().unwrap();
}

/// The HTTP URL of metastore replica `i` of a `cluster.sh` cluster (its
/// HTTP port is just below its gRPC port).
fn metastore_http(cluster: &Cluster, i: usize) -> String {
    let (host, port) = cluster.metastores[i].rsplit_once(':').unwrap();
    format!("http://{host}:{}", port.parse::<u16>().unwrap() - 1)
}

/// The replica whose raft gauges say it leads, among `alive`.
async fn metrics_leader(cluster: &Cluster, alive: &[usize]) -> Result<usize, String> {
    let mut leaders = Vec::new();
    for &i in alive {
        let c = Client::new(&metastore_http(cluster, i));
        if c.metric("kiln_metastore_raft_is_leader").await.ok() == Some(1.0) {
            leaders.push(i);
        }
    }
    match leaders[..] {
        [one] => Ok(one),
        _ => Err(format!("replicas reporting is_leader=1: {leaders:?}")),
    }
}

/// A 3-replica metastore loses its leader (the raft gauges follow), then
/// every replica: pushes are refused with a clear, retryable error within
/// the push timeout (no hang, no acknowledgement), the refusal is logged
/// under the caller's request id by the distributor and by the ingesters it
/// tried, and writes work again once the metastores are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_without_metastores_refuses_writes_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(
        &Kiln::binary(),
        dir.path(),
        &[("KILN_INGESTER__FLUSH_INTERVAL", "200ms")],
    )
    .unwrap();
    let ingest = |n: u64, id: &'static str| {
        let url = cluster.push[0].clone();
        async move {
            let started = Instant::now();
            let resp = reqwest::Client::new()
                .post(format!("{url}/ingest"))
                .query(&[("name", "nometa.cpu"), ("sampleRate", "0")])
                .header("x-request-id", id)
                .body(format!("nometa;p{n} {n}\n"))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap(), started.elapsed())
        }
    };
    // Right after start-up a distributor's ring may not list every
    // ingester yet: the first push may wait for it.
    wait_until(
        "a push before the outage",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || async {
            let (status, body, _) = ingest(1, "before-outage").await;
            if status == 200 {
                Ok(())
            } else {
                Err(format!("{status}: {body}"))
            }
        },
    )
    .await
    .unwrap();

    // The raft gauges: one leader of three voters; after it is killed,
    // another replica leads in a later term and counted the change.
    let all = [0, 1, 2];
    let leader = wait_until(
        "one replica reporting leadership",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || metrics_leader(&cluster, &all),
    )
    .await
    .unwrap();
    let leader_metrics = Client::new(&metastore_http(&cluster, leader));
    assert_eq!(
        leader_metrics
            .metric("kiln_metastore_raft_members")
            .await
            .unwrap(),
        3.0
    );
    let term = leader_metrics
        .metric("kiln_metastore_raft_term")
        .await
        .unwrap();
    cluster.kill9(&format!("metastore-{}", leader + 1));
    let alive: Vec<usize> = all.iter().copied().filter(|i| *i != leader).collect();
    let new_leader = wait_until(
        "a new leader in the gauges",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || metrics_leader(&cluster, &alive),
    )
    .await
    .unwrap();
    let c = Client::new(&metastore_http(&cluster, new_leader));
    assert!(c.metric("kiln_metastore_raft_term").await.unwrap() > term);
    assert!(
        c.metric("kiln_metastore_raft_leader_changes_total")
            .await
            .unwrap()
            >= 1.0
    );
    let (status, body, _) = ingest(2, "one-replica-down").await;
    assert_eq!(
        status, 200,
        "two replicas of three still take writes: {body}"
    );

    // Every replica gone.
    for i in &alive {
        cluster.kill9(&format!("metastore-{}", i + 1));
    }
    let (status, body, took) = ingest(3, "no-metastore-3").await;
    eprintln!("push without metastores: {status} after {took:?}: {body}");
    assert_eq!(status, 503, "refused as retryable: {body}");
    assert!(
        body.contains("failed to register segment"),
        "the refusal says what failed: {body}"
    );
    assert!(
        took < Duration::from_secs(30),
        "answered within the push timeout, not a hang: {took:?}"
    );
    // The same request id in the distributor's and an ingester's log.
    let distributor_log = cluster.log("distributor-1");
    assert!(
        distributor_log
            .lines()
            .any(|l| l.contains("request_id=no-metastore-3") && l.contains("request failed")),
        "distributor logs the failed request under its id"
    );
    let ingester_lines: Vec<String> = (1..=3)
        .flat_map(|i| {
            cluster
                .log(&format!("ingester-{i}"))
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains("request_id=no-metastore-3"))
        .collect();
    assert!(
        ingester_lines
            .iter()
            .any(|l| l.contains("IngesterService/Push") && l.contains("request failed")),
        "an ingester logs the forwarded push under the caller's id: {ingester_lines:?}"
    );

    // The metastores come back; writes are taken again, and the refused
    // push is not stored (nothing could register it).
    // Together: one replica alone has no quorum and never gets ready.
    std::thread::scope(|scope| {
        let restarts: Vec<_> = all
            .iter()
            .map(|i| {
                let cluster = &cluster;
                scope.spawn(move || cluster.restart(&format!("metastore-{}", i + 1)))
            })
            .collect();
        for r in restarts {
            r.join().unwrap().unwrap();
        }
    });
    let mut n = 3;
    wait_until(
        "pushes acknowledged again",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            n += 1;
            let this = n;
            let attempt = ingest(this, "after-outage");
            async move {
                let (status, body, _) = attempt.await;
                if status == 200 {
                    Ok(())
                } else {
                    Err(format!("{status}: {body}"))
                }
            }
        },
    )
    .await
    .unwrap();
    let query = Client::new(&cluster.query);
    let stacks = stored_stacks(&query, "nometa", HTTP_TYPE).await;
    assert_eq!(stacks.get("nometa;p1"), Some(&1));
    assert_eq!(stacks.get("nometa;p2"), Some(&2));
    assert_eq!(
        stacks.get("nometa;p3"),
        None,
        "the refused push is not stored"
    );
    assert_eq!(stacks.get(&format!("nometa;p{n}")), Some(&(n as i64)));
}
