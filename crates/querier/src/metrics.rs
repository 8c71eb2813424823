//! Querier metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-method metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// Query method (`SelectMergeStacktraces`, ...).
    pub method: String,
}

/// Labels of refused queries.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// Tenant id.
    pub tenant: String,
    /// Which rule refused it (`query_limit`, `flamegraph_limit`, ...).
    pub reason: String,
}

/// Metrics of one querier.
#[derive(Debug, Clone)]
pub struct QuerierMetrics {
    /// Query duration by method.
    pub query_duration: Family<MethodLabels, Histogram>,
    /// Blocks read by queries.
    pub blocks_read: Counter,
    /// Cache hits of series tables and symbols.
    pub cache_hits: Counter,
    /// Cache misses.
    pub cache_misses: Counter,
    /// Queries refused by a limit or rule, by tenant and reason.
    pub rejected_queries: Family<RejectLabels, Counter>,
    /// Shares of queries answered by other queriers.
    pub remote_shares: Counter,
    /// Shares other queriers failed (then read locally).
    pub remote_share_failures: Counter,
}

impl QuerierMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = QuerierMetrics {
            query_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            blocks_read: Counter::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            rejected_queries: Family::default(),
            remote_shares: Counter::default(),
            remote_share_failures: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("kiln_querier");
        r.register(
            "query_duration_seconds",
            "Query latency by method",
            m.query_duration.clone(),
        );
        r.register(
            "blocks_read",
            "Blocks read by queries",
            m.blocks_read.clone(),
        );
        r.register(
            "cache_hits",
            "Hits of the block series/symbol cache",
            m.cache_hits.clone(),
        );
        r.register(
            "cache_misses",
            "Misses of the block series/symbol cache",
            m.cache_misses.clone(),
        );
        r.register(
            "rejected_queries",
            "Queries refused by a limit or validation rule",
            m.rejected_queries.clone(),
        );
        r.register(
            "remote_shares",
            "Shares of merge queries answered by other queriers",
            m.remote_shares.clone(),
        );
        r.register(
            "remote_share_failures",
            "Shares other queriers failed to answer (then read locally)",
            m.remote_share_failures.clone(),
        );
        m
    }
}
