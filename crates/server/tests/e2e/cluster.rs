//! The multi-process cluster (`deploy/local/cluster.sh`): 3 metastores,
//! 2 distributors, 3 ingesters, 2 queriers, a query-frontend and a compactor
//! as separate `kiln` processes on loopback. The spine's cases give the same
//! answers as `--target=all` (with every merge spread over the queriers, and
//! still after one of them is killed), and
//! kill -9 of an ingester, the metastore leader and a distributor under load
//! loses no acknowledged push.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_proto::kiln::metastore::v1::StatusRequest;
use kiln_proto::kiln::metastore::v1::metastore_service_client::MetastoreServiceClient;
use kiln_proto::querier::v1 as q;
use kiln_tests::{Client, Cluster, Kiln, flamegraph_stacks, now_ms, wait_until};

use crate::spine::{check_everything, ingest_everything};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_answers_like_a_single_process() {
    let dir = tempfile::tempdir().unwrap();
    // kiln_cluster=debug logs every internal call with its request id.
    // Every internal call below (Raft, metastore, ingester pushes, querier
    // shares) carries the cluster secret.
    let cluster = Cluster::start(
        &Kiln::binary(),
        dir.path(),
        &[
            ("KILN_LOG__LEVEL", "info,openraft=warn,kiln_cluster=debug"),
            ("KILN_CLUSTER__SECRET", CLUSTER_SECRET),
        ],
    )
    .unwrap();
    internal_services_need_the_secret(&cluster).await;
    let push = Client::new(&cluster.push[0]);
    let query = Client::new(&cluster.query);
    // The frontend spreads merges over the queriers it knows: wait until it
    // lists both (ingest is fast enough that the first queries could
    // otherwise run before its member list has caught up).
    wait_until(
        "the query-frontend to list both queriers",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let log = cluster.log("query-frontend-1");
            let last = log
                .lines()
                .rfind(|l| l.contains("members changed") && l.contains("role=querier"))
                .unwrap_or_default()
                .to_owned();
            if last.contains("querier-1") && last.contains("querier-2") {
                Ok(())
            } else {
                Err(format!("last querier list: {last:?}"))
            }
        },
    )
    .await
    .unwrap();
    // A caller's request id crosses the distributor → ingester gRPC hop:
    // the ingester learns it only from the call's metadata.
    let resp = reqwest::Client::new()
        .post(format!("{}/ingest", cluster.push[0]))
        .query(&[("name", "traced.cpu"), ("sampleRate", "0")])
        .header("x-request-id", "e2e-cluster-trace-7")
        .body("main;work 7\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "e2e-cluster-trace-7");
    let ingester_lines: Vec<String> = (1..=3)
        .flat_map(|i| {
            cluster
                .log(&format!("ingester-{i}"))
                .lines()
                .filter(|l| l.contains("request_id=e2e-cluster-trace-7"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        ingester_lines
            .iter()
            .any(|l| l.contains("/kiln.ingester.v1.IngesterService/Push")),
        "an ingester's gRPC span has the caller's id; its lines with it:\n{}",
        ingester_lines.join("\n")
    );
    let (expect, folded) = ingest_everything(&push).await;
    check_everything(&query, &expect, &folded).await;
    // The query-frontend spread every merge over the two queriers (it
    // serves series and label queries itself) and merged their trees.
    let shares = query
        .metric("kiln_querier_remote_shares_total")
        .await
        .unwrap();
    let mut merged_by = Vec::new();
    for url in &cluster.queriers {
        merged_by.push(
            Client::new(url)
                .metric(r#"kiln_querier_query_duration_seconds_count{method="MergeTasks""#)
                .await
                .unwrap(),
        );
    }
    eprintln!("frontend: {shares} remote shares; MergeTasks per querier: {merged_by:?}");
    assert_eq!(merged_by.len(), 2);
    assert!(
        merged_by.iter().all(|n| *n > 0.0),
        "each querier merges shares: {merged_by:?}"
    );
    assert_eq!(
        shares,
        merged_by.iter().sum::<f64>(),
        "every share the frontend sent was merged by a querier"
    );
    // A querier dies: its shares are read elsewhere and answers stay exact.
    cluster.kill9("querier-2");
    check_everything(&query, &expect, &folded).await;
    // The second distributor takes pushes too.
    let r = Client::new(&cluster.push[1])
        .ingest(
            &[("name", "second.cpu".into())],
            "text/plain",
            b"main;x 3\n".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

const CLUSTER_SECRET: &str = "e2e-cluster-secret-0123456789";

/// A call to a node's internal service without the cluster secret, or with
/// another one, is refused as unauthenticated; with it, it is served.
async fn internal_services_need_the_secret(cluster: &Cluster) {
    use kiln_proto::kiln::ingester::v1::PushRequest;
    use kiln_proto::kiln::ingester::v1::ingester_service_client::IngesterServiceClient;
    use kiln_proto::kiln::querier::v1::MergeTasksRequest;
    use kiln_proto::kiln::querier::v1::task_service_client::TaskServiceClient;

    fn request<T>(body: T, secret: Option<&str>) -> tonic::Request<T> {
        let mut r = tonic::Request::new(body);
        if let Some(s) = secret {
            r.metadata_mut()
                .insert("x-kiln-cluster-secret", s.parse().unwrap());
        }
        r
    }
    let channel = |node: &str| {
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.grpc(node)))
            .unwrap()
            .connect_lazy()
    };
    for secret in [None, Some("not-the-cluster-secret-at-all")] {
        let mut metastore = MetastoreServiceClient::new(channel("metastore-1"));
        let mut ingester = IngesterServiceClient::new(channel("ingester-1"));
        let mut tasks = TaskServiceClient::new(channel("querier-1"));
        let refusals = [
            (
                "metastore",
                metastore
                    .status(request(StatusRequest {}, secret))
                    .await
                    .err(),
            ),
            (
                "ingester",
                ingester
                    .push(request(PushRequest::default(), secret))
                    .await
                    .err(),
            ),
            (
                "querier tasks",
                tasks
                    .merge_tasks(request(MergeTasksRequest::default(), secret))
                    .await
                    .err(),
            ),
        ];
        for (service, refusal) in refusals {
            let status =
                refusal.unwrap_or_else(|| panic!("{service} served a call with {secret:?}"));
            assert_eq!(
                status.code(),
                tonic::Code::Unauthenticated,
                "{service}: {status:?}"
            );
            assert!(
                status.message().contains("cluster secret"),
                "{service}: {status:?}"
            );
        }
    }
    let served = MetastoreServiceClient::new(channel("metastore-1"))
        .status(request(StatusRequest {}, Some(CLUSTER_SECRET)))
        .await
        .expect("the metastore serves a call with the secret")
        .into_inner();
    assert!(
        served.leader_id > 0 && served.last_applied_index > 0,
        "{served:?}"
    );
}

async fn status(addr: &str) -> Option<kiln_proto::kiln::metastore::v1::StatusResponse> {
    let mut c = MetastoreServiceClient::connect(format!("http://{addr}"))
        .await
        .ok()?;
    c.status(StatusRequest {})
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

/// The metastore node whose replica is the leader, by asking every replica.
async fn leader(
    cluster: &Cluster,
    alive: &[usize],
) -> Option<(usize, kiln_proto::kiln::metastore::v1::StatusResponse)> {
    for &i in alive {
        if let Some(s) = status(&cluster.metastores[i]).await
            && s.state == "Leader"
        {
            return Some((i, s));
        }
    }
    None
}

async fn wait_acked(acked: &Arc<Mutex<BTreeSet<u64>>>, n: u64) {
    wait_until(
        &format!("{n} acknowledged pushes"),
        Duration::from_secs(120),
        Duration::from_millis(50),
        || {
            let acked = Arc::clone(acked);
            async move {
                let have = acked.lock().unwrap().len() as u64;
                if have >= n {
                    Ok(())
                } else {
                    Err(format!("{have} acknowledged"))
                }
            }
        },
    )
    .await
    .unwrap();
}

async fn wait_leader(
    cluster: &Cluster,
    alive: &[usize],
) -> (usize, kiln_proto::kiln::metastore::v1::StatusResponse) {
    wait_until(
        "a metastore leader",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            leader(cluster, alive)
                .await
                .ok_or_else(|| "no replica reports itself leader".to_owned())
        },
    )
    .await
    .unwrap()
}

/// Numbered pushes (`load;p<n>` with value n, n = 1..=total) from 32
/// workers spread over the cluster's distributors, recording which were
/// acknowledged.
struct NumberedLoad {
    total: u64,
    acked: Arc<Mutex<BTreeSet<u64>>>,
    failed: Arc<Mutex<u64>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl NumberedLoad {
    fn start(cluster: &Cluster, total: u64) -> Self {
        let acked: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
        let failed: Arc<Mutex<u64>> = Arc::default();
        let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
        let mut workers = Vec::new();
        for w in 0..32 {
            let (acked, failed, next) =
                (Arc::clone(&acked), Arc::clone(&failed), Arc::clone(&next));
            let urls = cluster.push.clone();
            workers.push(tokio::spawn(async move {
                let clients: Vec<Client> = urls.iter().map(|u| Client::new(u)).collect();
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n > total {
                        return;
                    }
                    let c = &clients[(n as usize + w) % clients.len()];
                    // A unique stack per push whose value is its number.
                    let body = format!("load;p{n} {n}\n").into_bytes();
                    let query = [("name", "load.cpu".to_owned()), ("sampleRate", "0".into())];
                    match c.ingest(&query, "text/plain", body).await {
                        Ok(r) if r.status == 200 => {
                            acked.lock().unwrap().insert(n);
                        }
                        _ => *failed.lock().unwrap() += 1,
                    }
                }
            }));
        }
        NumberedLoad {
            total,
            acked,
            failed,
            workers,
        }
    }

    fn acked_count(&self) -> u64 {
        self.acked.lock().unwrap().len() as u64
    }

    /// Waits for `more` acknowledgements beyond the current count.
    async fn wait_more(&self, more: u64) {
        wait_acked(&self.acked, self.acked_count() + more).await;
    }

    /// Waits for every push to be answered; the acknowledged ones.
    async fn finish(self) -> BTreeSet<u64> {
        for w in self.workers {
            w.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        let failed = *self.failed.lock().unwrap();
        assert_eq!(acked.len() as u64 + failed, self.total);
        eprintln!("{} pushes acknowledged, {failed} refused", acked.len());
        assert!(
            acked.len() as u64 > self.total / 2,
            "only {} of {} pushes acknowledged",
            acked.len(),
            self.total
        );
        acked
    }
}

/// A cluster in `dir` with short flushes (which keep the tests quick: every
/// push waits for its segment), taking a [`NumberedLoad`] of `total` pushes.
fn cluster_under_load(dir: &std::path::Path, total: u64) -> (Cluster, NumberedLoad) {
    let cluster = Cluster::start(
        &Kiln::binary(),
        dir,
        &[("KILN_INGESTER__FLUSH_INTERVAL", "250ms")],
    )
    .unwrap();
    let load = NumberedLoad::start(&cluster, total);
    (cluster, load)
}

/// Every acknowledged push of a [`NumberedLoad`] is there with its exact
/// value.
async fn check_acked_are_stored(cluster: &Cluster, acked: &BTreeSet<u64>) {
    let query = Client::new(&cluster.query);
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: "process_cpu:samples:count::".into(),
        label_selector: r#"{service_name="load"}"#.into(),
        start: now_ms() - 3_600_000,
        end: now_ms() + 60_000,
        max_nodes: Some(1_000_000),
        ..Default::default()
    };
    let resp = query.merge(&req).await;
    let fg = resp.flamegraph.unwrap();
    let stacks: BTreeMap<String, i64> = flamegraph_stacks(&fg);
    let mut missing = Vec::new();
    for n in acked {
        match stacks.get(&format!("load;p{n}")) {
            Some(v) if *v == *n as i64 => {}
            other => missing.push((*n, other.copied())),
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged pushes lost or wrong (n, value): {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let total: u64 = 2000;
    let (cluster, load) = cluster_under_load(dir.path(), total);
    wait_acked(&load.acked, total / 4).await;
    cluster.kill9("ingester-1");
    load.wait_more(total / 6).await;
    let (leader_idx, _) = wait_leader(&cluster, &[0, 1, 2]).await;
    cluster.kill9(&format!("metastore-{}", leader_idx + 1));
    load.wait_more(total / 6).await;
    cluster.kill9("distributor-1");
    let acked = load.finish().await;
    check_acked_are_stored(&cluster, &acked).await;

    // The killed metastore replica comes back and catches up with the leader.
    let alive: Vec<usize> = (0..3).filter(|i| *i != leader_idx).collect();
    cluster
        .restart(&format!("metastore-{}", leader_idx + 1))
        .unwrap();
    let (new_leader_idx, now_leader) = wait_leader(&cluster, &alive).await;
    let target = now_leader.last_log_index;
    let addr = cluster.metastores[leader_idx].clone();
    let leader_addr = cluster.metastores[new_leader_idx].clone();
    // Caught up: past the leader's log end of just now, and holding the
    // same block index as the leader whenever both have applied the same
    // entries. (Not "at least as many blocks as the leader had": the
    // compactor may still be replacing segments by merged blocks, which
    // lowers the count on every replica.)
    wait_until(
        "the restarted replica to catch up",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let (addr, leader_addr) = (addr.clone(), leader_addr.clone());
            async move {
                let (replica, leader) = (status(&addr).await, status(&leader_addr).await);
                match (&replica, &leader) {
                    (Some(r), Some(l))
                        if r.last_applied_index >= target
                            && r.last_applied_index == l.last_applied_index
                            && r.blocks == l.blocks =>
                    {
                        Ok(())
                    }
                    _ => Err(format!(
                        "target {target}; replica {replica:?}; leader {leader:?}"
                    )),
                }
            }
        },
    )
    .await
    .unwrap();
}

/// SIGTERM to an ingester, a querier, the metastore leader and a
/// distributor of a running cluster under load: each drains and exits
/// cleanly, the ingester's stop refuses no push, the rest of the cluster
/// carries on, and every acknowledged push is stored with its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_each_role_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let total: u64 = 2000;
    let (cluster, load) = cluster_under_load(dir.path(), total);
    // Waiting for a node to exit must not hold up a worker of the load.
    let stop = |node: &str| tokio::task::block_in_place(|| cluster.terminate(node));
    wait_acked(&load.acked, total / 5).await;
    let mut stopped = vec![stop("ingester-1")];
    load.wait_more(total / 8).await;
    stopped.push(stop("querier-1"));
    load.wait_more(total / 8).await;
    // An ingester that drains hands its buffered pushes to storage and
    // the distributors fail over from it: no push is refused. (A stopped
    // metastore leader can cost a few while the others elect a new one;
    // a stopped distributor refuses what its clients keep sending.)
    let refused = *load.failed.lock().unwrap();
    assert_eq!(refused, 0, "pushes refused around the ingester's SIGTERM");
    let (leader_idx, _) = wait_leader(&cluster, &[0, 1, 2]).await;
    stopped.push(stop(&format!("metastore-{}", leader_idx + 1)));
    load.wait_more(total / 8).await;
    stopped.push(stop("distributor-1"));
    let acked = load.finish().await;
    for (node, took) in &stopped {
        eprintln!("{node} exited {took:?} after SIGTERM");
        let log = cluster.log(node);
        assert!(
            log.contains("kiln stopped") && !log.contains("panicked"),
            "{node} stops cleanly; its log ends:\n{}",
            log.lines().rev().take(15).collect::<Vec<_>>().join("\n")
        );
    }
    check_acked_are_stored(&cluster, &acked).await;
}
