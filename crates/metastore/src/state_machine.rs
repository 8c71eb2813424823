//! The replicated state machine.
//!
//! `apply` must be deterministic: the same commands in the same order give
//! the same state on every replica. It reads no clock (a command carries the
//! proposer's timestamp), draws no random numbers and does no I/O.

use std::collections::BTreeMap;

use kiln_proto::kiln::metastore::v1::command::Kind;
use kiln_proto::kiln::metastore::v1::{
    ApplyRetentionResponse, Command, CommandResult, CompactionPolicy, CompleteJobResponse, Job,
    Member, PollJobsResponse, RenewLeaseResponse, Snapshot, Tombstone,
};

use crate::compaction::{DAY_LEVEL, default_policy, plan};
use crate::index::BlockIndex;

/// Owner of a job that failed too often.
pub const PARKED: &str = "parked";

/// The state every metastore replica holds.
#[derive(Debug, Default, Clone)]
pub struct StateMachine {
    index: BlockIndex,
    members: BTreeMap<String, Member>,
    jobs: BTreeMap<String, Job>,
    tombstones: BTreeMap<String, Tombstone>,
    next_token: u64,
    applied: u64,
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// A block was added.
    BlockAdded,
    /// The block was known already (a retried command).
    BlockExisted,
    /// A node's registration was created or renewed.
    Heartbeat,
    /// Jobs leased to the caller.
    Jobs(Vec<Job>),
    /// Whether a lease was renewed.
    Renewed(bool),
    /// Whether a job's output was accepted, and why not.
    Completed {
        /// Accepted.
        accepted: bool,
        /// Reason of a refusal.
        reason: String,
    },
    /// Blocks removed by retention.
    Removed(u32),
    /// The command carried nothing to do, or only bookkeeping.
    Noop,
}

impl Applied {
    /// The result as carried back through raft.
    pub fn to_result(&self) -> CommandResult {
        let mut r = CommandResult::default();
        match self {
            Applied::Jobs(jobs) => r.poll_jobs = Some(PollJobsResponse { jobs: jobs.clone() }),
            Applied::Renewed(renewed) => {
                r.renew_lease = Some(RenewLeaseResponse { renewed: *renewed })
            }
            Applied::Completed { accepted, reason } => {
                r.complete_job = Some(CompleteJobResponse {
                    accepted: *accepted,
                    reason: reason.clone(),
                })
            }
            Applied::Removed(n) => r.apply_retention = Some(ApplyRetentionResponse { removed: *n }),
            _ => {}
        }
        r
    }
}

impl StateMachine {
    /// Applies one command.
    pub fn apply(&mut self, command: &Command) -> Applied {
        self.applied += 1;
        let now = command.timestamp;
        match &command.kind {
            Some(Kind::AddBlock(req)) => match &req.block {
                Some(block) => {
                    if self.index.insert(block.clone()) {
                        Applied::BlockAdded
                    } else {
                        Applied::BlockExisted
                    }
                }
                None => Applied::Noop,
            },
            Some(Kind::Heartbeat(m)) => {
                let joined = self.members.get(&m.id).map_or(now, |old| old.joined);
                let member = Member {
                    last_heartbeat: now,
                    joined,
                    ..m.clone()
                };
                self.members.insert(m.id.clone(), member);
                Applied::Heartbeat
            }
            Some(Kind::PollJobs(req)) => {
                let policy = req.policy.unwrap_or_else(default_policy);
                Applied::Jobs(self.poll_jobs(&req.worker, req.capacity, &policy, now))
            }
            Some(Kind::RenewLease(req)) => {
                let renewed = match self.jobs.get_mut(&req.job_id) {
                    Some(j) if j.token == req.token && !j.owner.is_empty() && j.owner != PARKED => {
                        j.lease_expires = now + req.lease_ms;
                        true
                    }
                    _ => false,
                };
                Applied::Renewed(renewed)
            }
            Some(Kind::CompleteJob(req)) => {
                let (accepted, reason) =
                    self.complete_job(&req.job_id, req.token, &req.blocks, now);
                Applied::Completed { accepted, reason }
            }
            Some(Kind::FailJob(req)) => {
                if let Some(j) = self.jobs.get_mut(&req.job_id)
                    && j.token == req.token
                {
                    j.failures += 1;
                    j.owner = if j.failures >= 5 {
                        PARKED.into()
                    } else {
                        String::new()
                    };
                }
                Applied::Noop
            }
            Some(Kind::ApplyRetention(req)) => {
                Applied::Removed(self.apply_retention(&req.rules, now))
            }
            Some(Kind::PurgeTombstones(req)) => {
                for key in &req.object_keys {
                    self.tombstones.remove(key);
                }
                Applied::Noop
            }
            None => Applied::Noop,
        }
    }

    fn poll_jobs(
        &mut self,
        worker: &str,
        capacity: u32,
        policy: &CompactionPolicy,
        now: i64,
    ) -> Vec<Job> {
        // Leases that ran out go back to the pool.
        for j in self.jobs.values_mut() {
            if !j.owner.is_empty() && j.owner != PARKED && j.lease_expires < now {
                j.owner.clear();
            }
        }
        for p in plan(&self.index, &self.jobs, now, policy) {
            self.next_token += 1;
            let id = format!(
                "{}-{}-{}-{}",
                p.tenant, p.shard, p.window_start, self.next_token
            );
            self.jobs.insert(
                id.clone(),
                Job {
                    id,
                    tenant: p.tenant,
                    shard: p.shard,
                    kind: p.kind as i32,
                    window_start: p.window_start,
                    window_end: p.window_end,
                    sources: p.sources,
                    target_level: p.target_level,
                    resolution: p.resolution,
                    ..Default::default()
                },
            );
        }
        // Small jobs first (lower levels), then older windows.
        let mut free: Vec<(u32, i64, String)> = self
            .jobs
            .values()
            .filter(|j| j.owner.is_empty())
            .map(|j| (j.target_level, j.window_start, j.id.clone()))
            .collect();
        free.sort();
        let mut out = Vec::new();
        for (_, _, id) in free.into_iter().take(capacity as usize) {
            self.next_token += 1;
            let token = self.next_token;
            if let Some(j) = self.jobs.get_mut(&id) {
                j.owner = worker.to_owned();
                j.lease_expires = now + policy.lease_ms;
                j.token = token;
                let mut leased = j.clone();
                leased.source_blocks = j
                    .sources
                    .iter()
                    .filter_map(|s| self.index.get(&j.tenant, s).cloned())
                    .collect();
                out.push(leased);
            }
        }
        out
    }

    fn complete_job(
        &mut self,
        job_id: &str,
        token: u64,
        blocks: &[kiln_proto::kiln::metastore::v1::BlockMeta],
        now: i64,
    ) -> (bool, String) {
        let Some(job) = self.jobs.get(job_id) else {
            return (false, format!("no job {job_id}"));
        };
        if job.token != token || job.owner.is_empty() || job.owner == PARKED {
            return (
                false,
                format!(
                    "stale lease of job {job_id}: token {token}, current {}",
                    job.token
                ),
            );
        }
        if let Some(missing) = job
            .sources
            .iter()
            .find(|s| self.index.get(&job.tenant, s).is_none())
        {
            let reason = format!("source block {missing} of job {job_id} is gone");
            self.jobs.remove(job_id);
            return (false, reason);
        }
        let job = self.jobs.remove(job_id).expect("checked above");
        for id in &job.sources {
            if let Some(b) = self.index.remove(&job.tenant, id) {
                self.tombstones.insert(
                    b.object_key.clone(),
                    Tombstone {
                        block_id: b.id,
                        object_key: b.object_key,
                        deleted_at: now,
                    },
                );
            }
        }
        for b in blocks {
            self.index.insert(b.clone());
        }
        (true, String::new())
    }

    fn apply_retention(
        &mut self,
        rules: &[kiln_proto::kiln::metastore::v1::RetentionRule],
        now: i64,
    ) -> u32 {
        let busy: std::collections::HashSet<&str> = self
            .jobs
            .values()
            .flat_map(|j| j.sources.iter().map(String::as_str))
            .collect();
        let now_ns = now.saturating_mul(1_000_000);
        let mut expired: Vec<(String, String)> = Vec::new();
        for b in self.index.iter() {
            let rule = rules
                .iter()
                .find(|r| r.tenant == b.tenant && r.resolution == b.resolution)
                .or_else(|| {
                    rules
                        .iter()
                        .find(|r| r.tenant.is_empty() && r.resolution == b.resolution)
                });
            let Some(rule) = rule else { continue };
            if rule.max_age_ms <= 0 || busy.contains(b.id.as_str()) {
                continue;
            }
            // Raw data not yet through its day job (segments, hour blocks:
            // old profiles that just arrived, or a day whose job has not run)
            // has no roll-ups yet: removing it would lose what the tiers
            // keep for longer. The day job runs first; its raw day block
            // then expires.
            if b.resolution == 0 && b.level < DAY_LEVEL {
                continue;
            }
            if b.max_time < now_ns.saturating_sub(rule.max_age_ms.saturating_mul(1_000_000)) {
                expired.push((b.tenant.clone(), b.id.clone()));
            }
        }
        for (tenant, id) in &expired {
            if let Some(b) = self.index.remove(tenant, id) {
                self.tombstones.insert(
                    b.object_key.clone(),
                    Tombstone {
                        block_id: b.id,
                        object_key: b.object_key,
                        deleted_at: now,
                    },
                );
            }
        }
        expired.len() as u32
    }

    /// Registered nodes by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Planned and running compaction jobs.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// Objects waiting to be deleted.
    pub fn tombstones(&self) -> impl Iterator<Item = &Tombstone> {
        self.tombstones.values()
    }

    /// The block index.
    pub fn index(&self) -> &BlockIndex {
        &self.index
    }

    /// Number of commands applied so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The state as a snapshot.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            blocks: self.index.iter().cloned().collect(),
            applied: self.applied,
            members: self.members.values().cloned().collect(),
            jobs: self.jobs.values().cloned().collect(),
            tombstones: self.tombstones.values().cloned().collect(),
            next_token: self.next_token,
        }
    }

    /// Rebuilds the state from a snapshot.
    pub fn restore(snapshot: Snapshot) -> Self {
        let mut index = BlockIndex::default();
        for b in snapshot.blocks {
            index.insert(b);
        }
        StateMachine {
            index,
            members: snapshot
                .members
                .into_iter()
                .map(|m| (m.id.clone(), m))
                .collect(),
            jobs: snapshot
                .jobs
                .into_iter()
                .map(|j| (j.id.clone(), j))
                .collect(),
            tombstones: snapshot
                .tombstones
                .into_iter()
                .map(|t| (t.object_key.clone(), t))
                .collect(),
            next_token: snapshot.next_token,
            applied: snapshot.applied,
        }
    }
}

#[cfg(test)]
mod tests;
