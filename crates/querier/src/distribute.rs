//! Spreading one merge query over several queriers.
//!
//! The node that receives a query plans it into pieces (a block read over a
//! time range, see `plan_tasks`), splits the pieces into shares of about
//! equal cost, keeps one share for itself (unless it is a query-frontend
//! only) and sends the others to live queriers through the internal
//! `kiln.querier.v1.TaskService`. Each querier merges its share into an
//! untruncated stack tree; the receiving node merges the trees. Trees are
//! merged, never rendered output, so the answer is the same whichever node
//! read which piece. A share whose querier fails or times out is read
//! locally instead, so one dead querier slows a query down but does not fail
//! it.

use std::sync::Arc;

use kiln_cluster::{Member, MemberList, QuerierClients};
use kiln_proto::kiln::metastore::v1::BlockMeta;
use kiln_proto::kiln::querier::v1 as kq;
use kiln_storage::resolve::FrameMode;

/// A block read over an inclusive nanosecond range.
pub(crate) type Task = (BlockMeta, (i64, i64));

/// Most nodes a tree received from another querier may have.
pub(crate) const MAX_REMOTE_TREE_NODES: usize = 1 << 24;

/// The other queriers a query can be spread over.
#[derive(Debug)]
pub struct Peers {
    list: Arc<MemberList>,
    clients: QuerierClients,
    self_id: String,
}

impl Peers {
    /// Peers read from `list` (live members with the querier role), skipping
    /// the member named `self_id` (this node).
    pub fn new(list: Arc<MemberList>, clients: QuerierClients, self_id: String) -> Self {
        Peers {
            list,
            clients,
            self_id,
        }
    }

    /// The live queriers other than this node.
    pub(crate) fn remotes(&self) -> Vec<Member> {
        self.list
            .members()
            .iter()
            .filter(|m| m.id != self.self_id)
            .cloned()
            .collect()
    }

    pub(crate) fn clients(&self) -> &QuerierClients {
        &self.clients
    }
}

/// Estimated cost of a piece: the block's bytes times the share of its time
/// span the piece reads.
fn cost((block, (start, end)): &Task) -> u64 {
    let span = (block.max_time - block.min_time).max(0) as f64 + 1.0;
    let lo = (*start).max(block.min_time);
    let hi = (*end).min(block.max_time);
    let covered = if hi < lo { 0.0 } else { (hi - lo) as f64 + 1.0 };
    let size = block.size.max(1) as f64;
    (size * (covered / span).clamp(0.0, 1.0)).ceil().max(1.0) as u64
}

/// Splits `tasks` into `n` shares of about equal cost (largest piece first,
/// each to the least loaded share). Shares may be empty when there are
/// fewer pieces than shares.
pub(crate) fn split(mut tasks: Vec<Task>, n: usize) -> Vec<Vec<Task>> {
    let n = n.max(1);
    let mut shares: Vec<(u64, Vec<Task>)> = (0..n).map(|_| (0, Vec::new())).collect();
    tasks.sort_by_key(|t| std::cmp::Reverse(cost(t)));
    for t in tasks {
        let c = cost(&t);
        let (load, share) = shares
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("n >= 1");
        *load += c;
        share.push(t);
    }
    shares.into_iter().map(|(_, s)| s).collect()
}

pub(crate) fn mode_to_proto(mode: FrameMode) -> kq::FrameMode {
    match mode {
        FrameMode::Function => kq::FrameMode::Function,
        FrameMode::FunctionLine => kq::FrameMode::FunctionLine,
    }
}

pub(crate) fn mode_from_proto(mode: i32) -> FrameMode {
    match kq::FrameMode::try_from(mode) {
        Ok(kq::FrameMode::FunctionLine) => FrameMode::FunctionLine,
        _ => FrameMode::Function,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(id: &str, size: u64, min: i64, max: i64) -> BlockMeta {
        BlockMeta {
            id: id.into(),
            size,
            min_time: min,
            max_time: max,
            ..Default::default()
        }
    }

    #[test]
    fn costs_follow_size_and_covered_time() {
        let b = block("a", 1000, 0, 99);
        assert_eq!(cost(&(b.clone(), (0, 99))), 1000);
        assert_eq!(cost(&(b.clone(), (0, 49))), 500);
        assert_eq!(cost(&(b.clone(), (-50, 24))), 250);
        assert_eq!(cost(&(b, (200, 300))), 1, "never zero");
    }

    #[test]
    fn shares_are_balanced_and_keep_every_piece() {
        let tasks: Vec<Task> = (0..20)
            .map(|i| (block(&format!("b{i}"), 100 + i * 10, 0, 9), (0, 9)))
            .collect();
        let total: u64 = tasks.iter().map(cost).sum();
        let shares = split(tasks.clone(), 3);
        assert_eq!(shares.len(), 3);
        let mut ids: Vec<String> = shares.iter().flatten().map(|t| t.0.id.clone()).collect();
        ids.sort();
        let mut want: Vec<String> = tasks.iter().map(|t| t.0.id.clone()).collect();
        want.sort();
        assert_eq!(ids, want, "every piece in exactly one share");
        let loads: Vec<u64> = shares.iter().map(|s| s.iter().map(cost).sum()).collect();
        let max_piece = 290;
        for l in &loads {
            assert!(
                l.abs_diff(total / 3) <= max_piece,
                "load {l} far from {}",
                total / 3
            );
        }
        assert_eq!(
            split(tasks[..1].to_vec(), 4)
                .iter()
                .filter(|s| !s.is_empty())
                .count(),
            1
        );
    }
}
