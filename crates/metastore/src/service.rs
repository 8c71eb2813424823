//! The metastore service: commands go through raft, reads are linearizable.
//!
//! Only the leader proposes and answers reads; a replica that is not the
//! leader answers [`MetastoreError::NotLeader`] with the leader's address,
//! and the gRPC layer forwards the call there, so any replica can be asked.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_cluster::ClusterSecret;
use kiln_proto::kiln::metastore::v1::command::Kind;
use kiln_proto::kiln::metastore::v1::{
    AddBlockRequest, ApplyRetentionRequest, ApplyRetentionResponse, BlockMeta, Command,
    CommandResult, CompleteJobRequest, CompleteJobResponse, FailJobRequest, Member,
    PollJobsRequest, PollJobsResponse, PurgeTombstonesRequest, QueryBlocksRequest,
    RenewLeaseRequest, RenewLeaseResponse, StatusResponse, Tombstone,
};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use prost::Message;

use crate::raft::log_store::LogStore;
use crate::raft::network::{Network, RaftGrpc};
use crate::raft::sm_store::StateMachineStore;
use crate::raft::{NodeId, Raft, Request};
use crate::state_machine::StateMachine;
use crate::{MetastoreConfig, MetastoreError, Result};

/// A metastore replica.
#[derive(Clone)]
pub struct Metastore {
    node_id: NodeId,
    raft: Raft,
    state: Arc<RwLock<StateMachine>>,
    secret: ClusterSecret,
}

impl std::fmt::Debug for Metastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metastore")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Metastore {
    /// Starts a replica keeping its state in `dir`. `self_addr` is this
    /// replica's gRPC address (used when `config.peers` is empty). Calls to
    /// the other replicas (Raft, forwarding to the leader) carry `secret`.
    pub async fn start(
        config: &MetastoreConfig,
        dir: &Path,
        self_addr: &str,
        secret: ClusterSecret,
    ) -> Result<Self> {
        config.validate().map_err(MetastoreError::InvalidRequest)?;
        let mut peers = config
            .parse_peers()
            .map_err(MetastoreError::InvalidRequest)?;
        if peers.is_empty() {
            peers.push((config.node_id, self_addr.to_owned()));
        }
        let io = |operation: &'static str, path: &Path| {
            let path = path.display().to_string();
            move |source| MetastoreError::Io {
                operation,
                path,
                source,
            }
        };
        let log_dir = dir.join("raft-log");
        let sm_dir = dir.join("raft-state");
        let log_store = LogStore::open(&log_dir).map_err(io("opening", &log_dir))?;
        let sm_store = StateMachineStore::open(&sm_dir).map_err(io("opening", &sm_dir))?;
        let state = sm_store.state();
        let heartbeat = config.raft_heartbeat_interval.as_millis() as u64;
        let election = config.raft_election_timeout.as_millis() as u64;
        let raft_config = openraft::Config {
            cluster_name: "kiln-metastore".into(),
            heartbeat_interval: heartbeat,
            election_timeout_min: election,
            election_timeout_max: election * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| MetastoreError::InvalidRequest(format!("invalid raft settings: {e}")))?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            Network::new(secret.clone()),
            log_store,
            sm_store,
        )
        .await
        .map_err(|e| MetastoreError::Raft(e.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| MetastoreError::Raft(e.to_string()))?;
        if !initialized {
            let members: BTreeMap<NodeId, BasicNode> = peers
                .iter()
                .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                .collect();
            match raft.initialize(members).await {
                Ok(()) => tracing::info!(
                    node_id = config.node_id,
                    replicas = peers.len(),
                    "metastore cluster initialized"
                ),
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(MetastoreError::Raft(e.to_string())),
            }
        }
        let blocks = state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .index()
            .len();
        tracing::info!(dir = %dir.display(), node_id = config.node_id, replicas = peers.len(), blocks, "metastore started");
        Ok(Metastore {
            node_id: config.node_id,
            raft,
            state,
            secret,
        })
    }

    /// The cluster secret this replica's calls to the others carry.
    pub fn cluster_secret(&self) -> &ClusterSecret {
        &self.secret
    }

    /// The raft RPC service of this replica.
    pub fn raft_service(&self) -> RaftGrpc {
        RaftGrpc::new(self.raft.clone())
    }

    /// Waits until a leader is known (or the timeout passes).
    pub async fn wait_for_leader(&self, timeout: Duration) -> bool {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "leader known")
            .await
            .is_ok()
    }

    fn not_leader(&self, leader: Option<(NodeId, String)>) -> MetastoreError {
        match leader {
            Some((id, addr)) if id != self.node_id => {
                MetastoreError::NotLeader { leader_addr: addr }
            }
            _ => MetastoreError::NoLeader,
        }
    }

    /// Makes `kind` durable on a quorum, then applies it.
    async fn propose(&self, kind: Kind) -> Result<CommandResult> {
        let command = Command {
            timestamp: now_ms(),
            kind: Some(kind),
        };
        match self
            .raft
            .client_write(Request(command.encode_to_vec()))
            .await
        {
            Ok(resp) => CommandResult::decode(resp.data.result.as_slice())
                .map_err(|e| MetastoreError::Raft(format!("undecodable command result: {e}"))),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(self.not_leader(f.leader_id.zip(f.leader_node.map(|n| n.addr))))
            }
            Err(e) => Err(MetastoreError::Raft(e.to_string())),
        }
    }

    /// Registers a block. Idempotent by block id.
    pub async fn add_block(&self, block: BlockMeta) -> Result<()> {
        if block.id.is_empty() || block.tenant.is_empty() || block.object_key.is_empty() {
            return Err(MetastoreError::InvalidRequest(
                "a block needs an id, a tenant and an object key".into(),
            ));
        }
        self.propose(Kind::AddBlock(AddBlockRequest { block: Some(block) }))
            .await
            .map(drop)
    }

    /// Registers or renews a node.
    pub async fn heartbeat(&self, member: Member) -> Result<()> {
        if member.id.is_empty() || member.addr.is_empty() {
            return Err(MetastoreError::InvalidRequest(
                "a member needs an id and an address".into(),
            ));
        }
        self.propose(Kind::Heartbeat(member)).await.map(drop)
    }

    /// Plans compaction jobs and leases up to `capacity` of them to `worker`.
    pub async fn poll_jobs(&self, request: PollJobsRequest) -> Result<PollJobsResponse> {
        if request.worker.is_empty() || request.worker == crate::state_machine::PARKED {
            return Err(MetastoreError::InvalidRequest(
                "a poll needs a worker name".into(),
            ));
        }
        Ok(self
            .propose(Kind::PollJobs(request))
            .await?
            .poll_jobs
            .unwrap_or_default())
    }

    /// Extends a job's lease if the token is still current.
    pub async fn renew_lease(&self, request: RenewLeaseRequest) -> Result<RenewLeaseResponse> {
        Ok(self
            .propose(Kind::RenewLease(request))
            .await?
            .renew_lease
            .unwrap_or_default())
    }

    /// Replaces a job's sources by its output, if the token is still current.
    pub async fn complete_job(&self, request: CompleteJobRequest) -> Result<CompleteJobResponse> {
        Ok(self
            .propose(Kind::CompleteJob(request))
            .await?
            .complete_job
            .unwrap_or_default())
    }

    /// Gives a job back after a failure.
    pub async fn fail_job(&self, request: FailJobRequest) -> Result<()> {
        self.propose(Kind::FailJob(request)).await.map(drop)
    }

    /// Removes blocks older than the rules allow.
    pub async fn apply_retention(
        &self,
        request: ApplyRetentionRequest,
    ) -> Result<ApplyRetentionResponse> {
        Ok(self
            .propose(Kind::ApplyRetention(request))
            .await?
            .apply_retention
            .unwrap_or_default())
    }

    /// Forgets tombstones whose objects were deleted.
    pub async fn purge_tombstones(&self, request: PurgeTombstonesRequest) -> Result<()> {
        self.propose(Kind::PurgeTombstones(request)).await.map(drop)
    }

    /// Tombstones at least `min_age_ms` old (linearizable).
    pub async fn tombstones(&self, min_age_ms: i64) -> Result<Vec<Tombstone>> {
        self.linearizable().await?;
        let cutoff = now_ms() - min_age_ms;
        Ok(self.read(|sm| {
            sm.tombstones()
                .filter(|t| t.deleted_at <= cutoff)
                .cloned()
                .collect()
        }))
    }

    /// Waits until this replica may serve a linearizable read.
    async fn linearizable(&self) -> Result<()> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(e) => match e.forward_to_leader::<BasicNode>() {
                Some(f) => {
                    Err(self.not_leader(f.leader_id.zip(f.leader_node.clone().map(|n| n.addr))))
                }
                None => Err(MetastoreError::Raft(e.to_string())),
            },
        }
    }

    fn read<T>(&self, f: impl FnOnce(&StateMachine) -> T) -> T {
        f(&self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The blocks matching a query, sorted by start time (linearizable).
    pub async fn query_blocks(&self, request: &QueryBlocksRequest) -> Result<Vec<BlockMeta>> {
        self.linearizable().await?;
        Ok(self.read(|sm| {
            let mut out = Vec::new();
            for tenant in &request.tenants {
                out.extend(
                    sm.index()
                        .query(tenant, request.start, request.end, &request.service_names)
                        .into_iter()
                        .cloned(),
                );
            }
            out
        }))
    }

    /// Registered nodes running `role` (all if empty), and the time now (linearizable).
    pub async fn members(&self, role: &str) -> Result<(Vec<Member>, i64)> {
        self.linearizable().await?;
        let members = self.read(|sm| {
            sm.members()
                .filter(|m| role.is_empty() || m.roles.iter().any(|r| r == role))
                .cloned()
                .collect()
        });
        Ok((members, now_ms()))
    }

    /// This replica's raft state (local, not linearizable).
    pub fn status(&self) -> StatusResponse {
        let m = self.raft.metrics().borrow().clone();
        let state = match m.state {
            ServerState::Leader => "Leader",
            ServerState::Follower => "Follower",
            ServerState::Candidate => "Candidate",
            ServerState::Learner => "Learner",
            ServerState::Shutdown => "Shutdown",
        };
        StatusResponse {
            node_id: self.node_id,
            leader_id: m.current_leader.unwrap_or(0),
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            last_applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            blocks: self.read(|sm| sm.index().len() as u64),
            state: state.into(),
            voters: m.membership_config.membership().voter_ids().collect(),
        }
    }

    /// Number of blocks in the local index.
    pub fn block_count(&self) -> usize {
        self.read(|sm| sm.index().len())
    }

    /// Keeps `metrics` equal to this replica's raft state until `stop`
    /// completes (or raft shuts down).
    pub async fn export_metrics(
        self,
        metrics: crate::MetastoreMetrics,
        stop: impl Future<Output = ()>,
    ) {
        let mut watch = self.raft.metrics();
        let mut leader = None;
        let mut first = true;
        tokio::pin!(stop);
        loop {
            {
                let m = watch.borrow_and_update();
                metrics
                    .is_leader
                    .set(i64::from(m.state == ServerState::Leader));
                metrics.term.set(m.current_term as i64);
                metrics
                    .last_log_index
                    .set(m.last_log_index.unwrap_or(0) as i64);
                metrics
                    .applied_index
                    .set(m.last_applied.map_or(0, |l| l.index) as i64);
                metrics
                    .members
                    .set(m.membership_config.voter_ids().count() as i64);
                if !first && m.current_leader != leader {
                    metrics.leader_changes.inc();
                }
                first = false;
                leader = m.current_leader;
            }
            metrics.blocks.set(self.block_count() as i64);
            tokio::select! {
                changed = watch.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = &mut stop => return,
            }
        }
    }

    /// Stops the raft node.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "metastore raft did not shut down cleanly");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn raft_metrics_follow_the_replica() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metastore::start(
            &MetastoreConfig::default(),
            dir.path(),
            "127.0.0.1:1",
            ClusterSecret::none(),
        )
        .await
        .unwrap();
        let metrics = crate::MetastoreMetrics::default();
        let stop = Arc::new(tokio::sync::Notify::new());
        let export = tokio::spawn({
            let (m, metrics, stop) = (m.clone(), metrics.clone(), Arc::clone(&stop));
            async move { m.export_metrics(metrics, stop.notified()).await }
        });
        assert!(m.wait_for_leader(Duration::from_secs(10)).await);
        let wait = async |what: &'static str, ok: &dyn Fn() -> bool| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !ok() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "metrics never showed {what}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        wait("leadership", &|| metrics.is_leader.get() == 1).await;
        assert!(metrics.term.get() >= 1);
        assert_eq!(metrics.members.get(), 1);
        assert!(metrics.leader_changes.get() <= 1);
        let applied = metrics.applied_index.get();
        m.add_block(BlockMeta {
            id: "b1".into(),
            tenant: "t".into(),
            object_key: "k/b1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        wait("the new entry applied", &|| {
            metrics.applied_index.get() > applied && metrics.blocks.get() == 1
        })
        .await;
        assert!(metrics.last_log_index.get() >= metrics.applied_index.get());
        stop.notify_one();
        export.await.unwrap();
        m.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_replica_keeps_blocks_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let config = MetastoreConfig {
            snapshot_every: 3,
            ..Default::default()
        };
        let m = Metastore::start(&config, dir.path(), "127.0.0.1:1", ClusterSecret::none())
            .await
            .unwrap();
        assert!(m.wait_for_leader(Duration::from_secs(10)).await);
        let block = |id: &str| BlockMeta {
            id: id.into(),
            tenant: "anonymous".into(),
            object_key: format!("k/{id}"),
            min_time: 5,
            max_time: 9,
            ..Default::default()
        };
        for id in ["a", "b", "c", "d", "e"] {
            m.add_block(block(id)).await.unwrap();
        }
        m.add_block(block("a")).await.unwrap();
        assert!(m.add_block(BlockMeta::default()).await.is_err());
        m.heartbeat(Member {
            id: "i1".into(),
            roles: vec!["ingester".into()],
            addr: "x:1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        m.shutdown().await;
        drop(m);
        let m = Metastore::start(&config, dir.path(), "127.0.0.1:1", ClusterSecret::none())
            .await
            .unwrap();
        assert!(m.wait_for_leader(Duration::from_secs(10)).await);
        let q = QueryBlocksRequest {
            tenants: vec!["anonymous".into()],
            start: 0,
            end: 10,
            service_names: vec![],
        };
        let ids: Vec<String> = m
            .query_blocks(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(ids, vec!["a", "b", "c", "d", "e"]);
        let (members, _) = m.members("ingester").await.unwrap();
        assert_eq!(members.len(), 1);
        assert!(m.members("querier").await.unwrap().0.is_empty());
        m.shutdown().await;
    }
}
