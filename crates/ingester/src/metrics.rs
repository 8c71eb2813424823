//! Ingester metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of refused pushes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// Tenant id.
    pub tenant: String,
    /// Why the push was not acknowledged (`overloaded`, `shutting_down`,
    /// `invalid`, `upload_failed`, `register_failed`, `encode_failed`).
    pub reason: String,
}

/// Metrics of one ingester.
#[derive(Debug, Clone)]
pub struct IngesterMetrics {
    /// Profiles received.
    pub received_profiles: Counter,
    /// Segments written and registered.
    pub flushed_segments: Counter,
    /// Bytes of segments written.
    pub flushed_bytes: Counter,
    /// Segments that failed (their pushes were answered with an error).
    pub failed_segments: Counter,
    /// Seconds from the start of a flush until the segment is registered.
    pub flush_duration: Histogram,
    /// Seconds a push waited for its segment.
    pub ack_latency: Histogram,
    /// Bytes waiting in buffers.
    pub buffered_bytes: Gauge,
    /// Pushes answered with an error, by tenant and reason.
    pub refused_pushes: Family<RefusedLabels, Counter>,
}

impl IngesterMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = IngesterMetrics {
            received_profiles: Counter::default(),
            flushed_segments: Counter::default(),
            flushed_bytes: Counter::default(),
            failed_segments: Counter::default(),
            flush_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            ack_latency: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            buffered_bytes: Gauge::default(),
            refused_pushes: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("kiln_ingester");
        r.register(
            "received_profiles",
            "Profiles received by the ingester",
            m.received_profiles.clone(),
        );
        r.register(
            "flushed_segments",
            "Segments written and registered",
            m.flushed_segments.clone(),
        );
        r.register(
            "flushed_bytes",
            "Bytes of segments written",
            m.flushed_bytes.clone(),
        );
        r.register(
            "failed_segments",
            "Segments whose upload or registration failed",
            m.failed_segments.clone(),
        );
        r.register(
            "flush_duration_seconds",
            "Time to encode, upload and register a segment",
            m.flush_duration.clone(),
        );
        r.register(
            "ack_latency_seconds",
            "Time a push waited until its segment was durable",
            m.ack_latency.clone(),
        );
        r.register(
            "buffered_bytes",
            "Bytes of profiles waiting to be flushed",
            m.buffered_bytes.clone(),
        );
        r.register(
            "refused_pushes",
            "Pushes not acknowledged, by tenant and reason",
            m.refused_pushes.clone(),
        );
        m
    }
}
