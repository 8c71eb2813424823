//! Job execution, retention and deletion of removed objects.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kiln_cluster::{ClientError, MetastoreClient};
use kiln_model::{ErrorCode, HasErrorCode};
use kiln_proto::kiln::metastore::v1::{
    ApplyRetentionRequest, BlockMeta, CompactionPolicy, CompleteJobRequest, Coverage,
    FailJobRequest, Job, JobKind, PollJobsRequest, RenewLeaseRequest, RetentionRule,
};
use kiln_storage::compact::{LoadedBlock, RollupBuilder, SeenProfiles, merge_into};
use kiln_storage::{BlockBuilder, BlockReader, StorageError, layout};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

use crate::{CompactorConfig, CompactorMetrics};

use kiln_model::tiers::{DAY, DAY_LEVEL, HOUR, MINUTE, TIER_RESOLUTIONS};

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum CompactorError {
    /// Reading or writing blocks failed.
    #[error("job {job}: {source}")]
    Storage {
        /// Job id.
        job: String,
        /// Cause.
        #[source]
        source: StorageError,
    },
    /// Writing an output object failed.
    #[error("job {job}: failed to write {key}: {source}")]
    Put {
        /// Job id.
        job: String,
        /// Object key.
        key: String,
        /// Cause.
        #[source]
        source: object_store::Error,
    },
    /// The metastore could not be reached.
    #[error("metastore call failed: {0}")]
    Metastore(#[source] Box<ClientError>),
    /// The job is malformed.
    #[error("job {0} is malformed: {1}")]
    Malformed(String, String),
}

impl HasErrorCode for CompactorError {
    fn code(&self) -> ErrorCode {
        match self {
            CompactorError::Storage { source, .. } => source.code(),
            CompactorError::Put { .. } => ErrorCode::Unavailable,
            CompactorError::Metastore(e) => e.code(),
            CompactorError::Malformed(..) => ErrorCode::Internal,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The compactor role.
#[derive(Clone)]
pub struct Compactor {
    config: CompactorConfig,
    store: Arc<dyn ObjectStore>,
    metastore: MetastoreClient,
    worker: String,
    metrics: CompactorMetrics,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl Compactor {
    /// A compactor named `worker`.
    pub fn new(
        config: CompactorConfig,
        store: Arc<dyn ObjectStore>,
        metastore: MetastoreClient,
        worker: String,
        metrics: CompactorMetrics,
    ) -> Self {
        Compactor {
            config,
            store,
            metastore,
            worker,
            metrics,
        }
    }

    fn policy(&self) -> CompactionPolicy {
        let ms = |d: Duration| d.as_millis() as i64;
        CompactionPolicy {
            l0_min_blocks: self.config.segments_per_merge,
            l0_max_age_ms: ms(self.config.segment_max_age),
            hour_grace_ms: ms(self.config.hour_grace),
            day_grace_ms: ms(self.config.day_grace),
            max_sources: self.config.max_sources,
            tier_merge_min_blocks: self.config.tier_merge_min_blocks,
            lease_ms: ms(self.config.lease),
            max_failures: 5,
        }
    }

    /// Runs until `shutdown`: polls for jobs, applies retention, deletes
    /// removed objects after the deletion delay.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut last_maintenance = Instant::now() - self.config.retention_interval;
        loop {
            if last_maintenance.elapsed() >= self.config.retention_interval {
                last_maintenance = Instant::now();
                if let Err(e) = self.apply_retention().await {
                    tracing::warn!(error = %e, "retention failed");
                }
                if let Err(e) = self.delete_removed_objects().await {
                    tracing::warn!(error = %e, "deleting removed objects failed");
                }
            }
            let worked = match self.run_once().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "polling for compaction jobs failed");
                    false
                }
            };
            if !worked {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                    _ = shutdown.cancelled() => return,
                }
            } else if shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Polls once and runs the jobs received; returns how many ran.
    pub async fn run_once(&self) -> Result<usize, CompactorError> {
        let resp = self
            .metastore
            .poll_jobs(PollJobsRequest {
                worker: self.worker.clone(),
                capacity: self.config.concurrency,
                policy: Some(self.policy()),
            })
            .await
            .map_err(|e| CompactorError::Metastore(Box::new(e)))?;
        let n = resp.jobs.len();
        let runs = resp.jobs.into_iter().map(|job| self.run_job(job));
        futures::future::join_all(runs).await;
        Ok(n)
    }

    /// Executes one leased job and commits (or gives back) the result.
    async fn run_job(&self, job: Job) {
        let started = Instant::now();
        let stop_renewing = CancellationToken::new();
        let renewer = {
            let (client, id, token, lease) = (
                self.metastore.clone(),
                job.id.clone(),
                job.token,
                self.config.lease,
            );
            let stop = stop_renewing.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(lease / 4) => {}
                        _ = stop.cancelled() => return,
                    }
                    let req = RenewLeaseRequest {
                        job_id: id.clone(),
                        token,
                        lease_ms: lease.as_millis() as i64,
                    };
                    match client.renew_lease(req).await {
                        Ok(r) if r.renewed => {}
                        Ok(_) => return,
                        Err(e) => tracing::warn!(job = %id, error = %e, "lease renewal failed"),
                    }
                }
            })
        };
        let result = self.execute(&job).await;
        stop_renewing.cancel();
        let _ = renewer.await;
        match result {
            Ok(outputs) => {
                let metas: Vec<BlockMeta> = outputs.clone();
                match self
                    .metastore
                    .complete_job(CompleteJobRequest {
                        job_id: job.id.clone(),
                        token: job.token,
                        blocks: metas,
                    })
                    .await
                {
                    Ok(r) if r.accepted => {
                        self.metrics.jobs_completed.inc();
                        self.metrics
                            .job_duration
                            .observe(started.elapsed().as_secs_f64());
                        tracing::info!(
                            job = %job.id,
                            kind = ?JobKind::try_from(job.kind).unwrap_or(JobKind::Unspecified),
                            sources = job.sources.len(),
                            outputs = outputs.len(),
                            seconds = started.elapsed().as_secs_f64(),
                            "compaction job committed"
                        );
                    }
                    Ok(r) => {
                        self.metrics.jobs_failed.inc();
                        tracing::warn!(job = %job.id, reason = %r.reason, "compaction result refused; deleting its output");
                        self.delete_outputs(&outputs).await;
                    }
                    Err(e) => {
                        // The commit may or may not have been applied: keep
                        // the output (an unreferenced object is harmless).
                        self.metrics.jobs_failed.inc();
                        tracing::warn!(job = %job.id, error = %e, "committing a compaction job failed");
                    }
                }
            }
            Err(e) => {
                self.metrics.jobs_failed.inc();
                tracing::warn!(job = %job.id, error = %e, "compaction job failed");
                let _ = self
                    .metastore
                    .fail_job(FailJobRequest {
                        job_id: job.id.clone(),
                        token: job.token,
                        reason: e.to_string(),
                    })
                    .await;
            }
        }
    }

    async fn delete_outputs(&self, outputs: &[BlockMeta]) {
        for b in outputs {
            let _ = self.store.delete(&Path::from(b.object_key.as_str())).await;
        }
    }

    async fn load_sources(&self, job: &Job) -> Result<Vec<LoadedBlock>, CompactorError> {
        let storage = |source| CompactorError::Storage {
            job: job.id.clone(),
            source,
        };
        let mut blocks = job.source_blocks.clone();
        if blocks.len() != job.sources.len() {
            return Err(CompactorError::Malformed(
                job.id.clone(),
                "source metadata missing".into(),
            ));
        }
        blocks.sort_by_key(|b| (b.min_time, b.id.clone()));
        let mut out = Vec::with_capacity(blocks.len());
        for b in &blocks {
            let reader = BlockReader::open(
                Arc::clone(&self.store),
                &b.object_key,
                Some(b.size).filter(|s| *s > 0),
            )
            .await
            .map_err(storage)?;
            self.metrics.read_bytes.inc_by(b.size);
            out.push(LoadedBlock::load(&reader).await.map_err(storage)?);
        }
        Ok(out)
    }

    async fn write(
        &self,
        job: &Job,
        builder: BlockBuilder,
        level: u32,
    ) -> Result<BlockMeta, CompactorError> {
        let id = Ulid::new();
        let key = layout::block_key(&job.tenant, level, id);
        let block = tokio::task::spawn_blocking({
            let key = key.clone();
            move || builder.finish(id, key, now_ms())
        })
        .await
        .map_err(|e| CompactorError::Malformed(job.id.clone(), e.to_string()))?
        .map_err(|source| CompactorError::Storage {
            job: job.id.clone(),
            source,
        })?;
        self.store
            .put(
                &Path::from(key.as_str()),
                PutPayload::from(block.bytes.clone()),
            )
            .await
            .map_err(|source| CompactorError::Put {
                job: job.id.clone(),
                key,
                source,
            })?;
        self.metrics.written_bytes.inc_by(block.meta.size);
        Ok(block.meta)
    }

    /// Runs a job; returns the metadata of the blocks it wrote.
    pub async fn execute(&self, job: &Job) -> Result<Vec<BlockMeta>, CompactorError> {
        let sources = self.load_sources(job).await?;
        let kind = JobKind::try_from(job.kind).unwrap_or(JobKind::Unspecified);
        let storage = |source| CompactorError::Storage {
            job: job.id.clone(),
            source,
        };
        match kind {
            JobKind::Merge => {
                let mut b = BlockBuilder::new(&job.tenant, job.shard, job.target_level)
                    .with_sources(job.sources.clone());
                let mut seen = SeenProfiles::default();
                for s in sources.iter().filter(|s| !is_tier(job, s)) {
                    merge_into(&mut b, s, &mut seen, None).map_err(storage)?;
                }
                Ok(vec![self.write(job, b, job.target_level).await?])
            }
            JobKind::Day => {
                let raw: Vec<&LoadedBlock> = sources.iter().filter(|s| !is_tier(job, s)).collect();
                let mut b = BlockBuilder::new(&job.tenant, job.shard, 3)
                    .with_sources(raw.iter().map(|s| s.id.clone()).collect());
                let mut seen = SeenProfiles::default();
                for s in &raw {
                    merge_into(&mut b, s, &mut seen, None).map_err(storage)?;
                }
                let day = self.write(job, b, 3).await?;
                let reader =
                    BlockReader::open(Arc::clone(&self.store), &day.object_key, Some(day.size))
                        .await
                        .map_err(storage)?;
                let merged = LoadedBlock::load(&reader).await.map_err(storage)?;
                let rollups = day_rollups(
                    &job.tenant,
                    job.shard,
                    (job.window_start, job.window_end),
                    &merged,
                    self.config.rollup_node_cap,
                )
                .map_err(storage)?;
                let mut out = vec![day];
                for builder in rollups {
                    out.push(self.write(job, builder, 3).await?);
                }
                Ok(out)
            }
            JobKind::TierMerge => {
                let mut coverage: Vec<Coverage> = job
                    .source_blocks
                    .iter()
                    .flat_map(|b| b.coverage.iter().cloned())
                    .collect();
                coverage.sort_by_key(|c| (c.start, c.end));
                let mut b = BlockBuilder::new(&job.tenant, job.shard, job.target_level)
                    .with_resolution(job.resolution)
                    .with_coverage(coverage)
                    .with_sources(job.sources.clone());
                let mut seen = SeenProfiles::default();
                for s in &sources {
                    merge_into(&mut b, s, &mut seen, None).map_err(storage)?;
                }
                Ok(vec![self.write(job, b, job.target_level).await?])
            }
            JobKind::Unspecified => Err(CompactorError::Malformed(
                job.id.clone(),
                "unknown job kind".into(),
            )),
        }
    }

    /// Proposes the retention rules of the configuration.
    pub async fn apply_retention(&self) -> Result<u32, CompactorError> {
        let ms = |d: Duration| d.as_millis() as i64;
        let mut rules = Vec::new();
        let mut push = |tenant: &str, r: &crate::TierRetention| {
            for (resolution, age) in [(0, r.raw), (MINUTE, r.minute), (HOUR, r.hour), (DAY, r.day)]
            {
                rules.push(RetentionRule {
                    tenant: tenant.to_owned(),
                    resolution,
                    max_age_ms: ms(age),
                });
            }
        };
        push("", &self.config.retention);
        for (tenant, r) in &self.config.retention_overrides {
            push(tenant, r);
        }
        let removed = self
            .metastore
            .apply_retention(ApplyRetentionRequest { rules })
            .await
            .map_err(|e| CompactorError::Metastore(Box::new(e)))?
            .removed;
        if removed > 0 {
            self.metrics.expired_blocks.inc_by(u64::from(removed));
            tracing::info!(blocks = removed, "retention removed expired blocks");
        }
        Ok(removed)
    }

    /// Deletes the objects of blocks removed at least `deletion_delay` ago.
    pub async fn delete_removed_objects(&self) -> Result<usize, CompactorError> {
        let tombstones = self
            .metastore
            .list_tombstones(self.config.deletion_delay.as_millis() as i64)
            .await
            .map_err(|e| CompactorError::Metastore(Box::new(e)))?
            .tombstones;
        let mut deleted = Vec::new();
        for t in tombstones {
            match self.store.delete(&Path::from(t.object_key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted.push(t.object_key),
                Err(e) => {
                    tracing::warn!(key = %t.object_key, error = %e, "cannot delete a removed block")
                }
            }
        }
        let n = deleted.len();
        if n > 0 {
            self.metastore
                .purge_tombstones(deleted)
                .await
                .map_err(|e| CompactorError::Metastore(Box::new(e)))?;
            self.metrics.deleted_objects.inc_by(n as u64);
        }
        Ok(n)
    }
}

/// The roll-up tiers (1 min, 1 h, 1 day; level 3) of one UTC day `window`
/// from the day's merged raw block `day`: one builder per tier, covering the
/// day with `day` as its raw block and listing it as the source. What a day
/// job writes next to the day block (and what `kiln bench year` writes for
/// generated days).
pub fn day_rollups(
    tenant: &str,
    shard: u32,
    (start, end): (i64, i64),
    day: &LoadedBlock,
    node_cap: usize,
) -> Result<Vec<BlockBuilder>, StorageError> {
    let coverage = vec![Coverage {
        start,
        end,
        raw_block: day.id.clone(),
    }];
    let mut rollups = RollupBuilder::new(
        tenant,
        shard,
        DAY_LEVEL,
        &TIER_RESOLUTIONS,
        node_cap,
        coverage,
    );
    rollups.add_block(day)?;
    Ok(rollups
        .finish()
        .into_iter()
        .map(|b| b.with_sources(vec![day.id.clone()]))
        .collect())
}

/// Whether a source of `job` is a roll-up block (a day job replaces the
/// day's old roll-ups but does not merge them into the raw block).
fn is_tier(job: &Job, block: &LoadedBlock) -> bool {
    job.source_blocks
        .iter()
        .any(|b| b.id == block.id && b.resolution > 0)
}
