//! Metastore metrics: the raft state of this replica, taken from openraft's
//! metrics watch, and the size of the block index.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Metrics of one metastore replica.
#[derive(Debug, Clone, Default)]
pub struct MetastoreMetrics {
    /// 1 while this replica is the raft leader, else 0.
    pub is_leader: Gauge,
    /// The raft term this replica is in.
    pub term: Gauge,
    /// Index of the last entry in this replica's log.
    pub last_log_index: Gauge,
    /// Index of the last entry applied to the state machine.
    pub applied_index: Gauge,
    /// Voters in the raft membership.
    pub members: Gauge,
    /// Times this replica saw the leader change (including to no leader).
    pub leader_changes: Counter,
    /// Blocks in the index (as applied on this replica).
    pub blocks: Gauge,
}

impl MetastoreMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = MetastoreMetrics::default();
        let r = registry.sub_registry_with_prefix("kiln_metastore");
        r.register(
            "raft_is_leader",
            "1 while this replica is the raft leader",
            m.is_leader.clone(),
        );
        r.register("raft_term", "Current raft term", m.term.clone());
        r.register(
            "raft_last_log_index",
            "Index of the last raft log entry on this replica",
            m.last_log_index.clone(),
        );
        r.register(
            "raft_applied_index",
            "Index of the last raft log entry applied to the state machine",
            m.applied_index.clone(),
        );
        r.register(
            "raft_members",
            "Voters in the raft membership",
            m.members.clone(),
        );
        r.register(
            "raft_leader_changes",
            "Leader changes seen by this replica",
            m.leader_changes.clone(),
        );
        r.register(
            "blocks",
            "Blocks in the index of this replica",
            m.blocks.clone(),
        );
        m
    }
}
