//! Compactor metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Metrics of one compactor.
#[derive(Debug, Clone)]
pub struct CompactorMetrics {
    /// Jobs committed.
    pub jobs_completed: Counter,
    /// Jobs that failed or whose commit was refused.
    pub jobs_failed: Counter,
    /// Bytes of source blocks read.
    pub read_bytes: Counter,
    /// Bytes of blocks written.
    pub written_bytes: Counter,
    /// Objects deleted after their grace period.
    pub deleted_objects: Counter,
    /// Blocks removed by retention.
    pub expired_blocks: Counter,
    /// Job duration.
    pub job_duration: Histogram,
}

impl CompactorMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = CompactorMetrics {
            jobs_completed: Counter::default(),
            jobs_failed: Counter::default(),
            read_bytes: Counter::default(),
            written_bytes: Counter::default(),
            deleted_objects: Counter::default(),
            expired_blocks: Counter::default(),
            job_duration: Histogram::new(exponential_buckets(0.01, 2.0, 16)),
        };
        let r = registry.sub_registry_with_prefix("kiln_compactor");
        r.register(
            "jobs_completed",
            "Compaction jobs committed",
            m.jobs_completed.clone(),
        );
        r.register(
            "jobs_failed",
            "Compaction jobs that failed or were refused",
            m.jobs_failed.clone(),
        );
        r.register(
            "read_bytes",
            "Bytes of source blocks read",
            m.read_bytes.clone(),
        );
        r.register(
            "written_bytes",
            "Bytes of blocks written",
            m.written_bytes.clone(),
        );
        r.register(
            "deleted_objects",
            "Objects deleted after the deletion delay",
            m.deleted_objects.clone(),
        );
        r.register(
            "expired_blocks",
            "Blocks removed by retention",
            m.expired_blocks.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Duration of compaction jobs",
            m.job_duration.clone(),
        );
        m
    }
}
