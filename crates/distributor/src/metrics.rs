//! Distributor metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of per-tenant counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// Tenant id.
    pub tenant: String,
}

/// Labels of discard counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiscardLabels {
    /// Tenant id.
    pub tenant: String,
    /// Why the data was refused.
    pub reason: String,
}

/// Metrics of one distributor.
#[derive(Debug, Clone)]
pub struct DistributorMetrics {
    /// Request bytes received (as sent, possibly compressed).
    pub received_bytes: Family<TenantLabels, Counter>,
    /// Profiles accepted (after normalisation, before storage).
    pub received_profiles: Family<TenantLabels, Counter>,
    /// Requests refused, by reason.
    pub discarded_requests: Family<DiscardLabels, Counter>,
    /// Profiles refused, by reason (a request refused before its profiles
    /// were parsed counts as one).
    pub discarded_profiles: Family<DiscardLabels, Counter>,
}

impl DistributorMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = DistributorMetrics {
            received_bytes: Family::default(),
            received_profiles: Family::default(),
            discarded_requests: Family::default(),
            discarded_profiles: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("kiln_distributor");
        r.register(
            "received_bytes",
            "Request bytes received by the distributor",
            m.received_bytes.clone(),
        );
        r.register(
            "received_profiles",
            "Profiles accepted by the distributor",
            m.received_profiles.clone(),
        );
        r.register(
            "discarded_requests",
            "Write requests refused, by reason",
            m.discarded_requests.clone(),
        );
        r.register(
            "discarded_profiles",
            "Profiles refused, by tenant and reason",
            m.discarded_profiles.clone(),
        );
        m
    }
}
