//! Per-tenant limits.
//!
//! One struct holds every limit a tenant can have; the configuration's
//! `limits` section gives the defaults and the runtime overrides file
//! (reloaded without restart) replaces keys per tenant. The defaults are
//! Pyroscope's, except `max_query_length` (no default cap: tiers answer long
//! ranges).
//!
//! Roles ask a [`LimitsSource`] for the limits of the tenant at hand on every
//! request, so an override takes effect on the next request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::TenantId;

/// Every limit of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// Largest profile after decompression, in bytes (pprof, speedscope,
    /// trie, tree); larger is rejected with 413.
    pub max_profile_bytes: usize,
    /// Most samples (distinct stacks for text formats) in one profile;
    /// more is rejected.
    pub max_samples: usize,
    /// Most labels on one pprof sample; more is rejected.
    pub max_sample_labels: usize,
    /// Deepest stack kept; deeper stacks are truncated to their root-side
    /// frames, not rejected.
    pub max_stack_depth: usize,
    /// Longest symbol; longer ones keep their last `max_symbol_len` bytes.
    pub max_symbol_len: usize,
    /// Most labels in one series (including `__name__` and `service_name`);
    /// more is rejected.
    pub max_label_names: usize,
    /// Longest label name, in bytes; longer is rejected.
    pub max_label_name_len: usize,
    /// Longest label value, in bytes; longer is rejected.
    pub max_label_value_len: usize,
    /// Largest request body as received, in bytes (also the cap on the
    /// summed decompressed size of one push); larger is rejected with 413.
    pub max_body_bytes: usize,
    /// Largest JFR recording (or labels snapshot) after decompression.
    pub max_jfr_bytes: usize,
    /// Sustained ingestion rate, in MB (10^6 bytes) of decoded profiles per
    /// second, shared by all distributors; beyond it writes get 429 with a
    /// `Retry-After` hint. 0 disables the limit.
    pub ingestion_rate_mb: f64,
    /// Bytes (MB) that may arrive at once above the sustained rate.
    pub ingestion_burst_size_mb: f64,
    /// Most distinct series a tenant may write to within an hour; writes
    /// creating more get 429. 0 disables the limit.
    pub max_series: usize,
    /// Longest time range of one query; 0 means no limit. Longer queries get
    /// 400.
    #[serde(with = "humantime_serde")]
    pub max_query_length: Duration,
    /// Flame graph node budget when a query sets none.
    pub max_nodes_default: i64,
    /// Largest node budget a query may ask for; more gets 400.
    pub max_nodes_max: i64,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            max_profile_bytes: 4 << 20,
            max_samples: 16_000,
            max_sample_labels: 100,
            max_stack_depth: 1_000,
            max_symbol_len: 65_535,
            max_label_names: 30,
            max_label_name_len: 1_024,
            max_label_value_len: 2_048,
            max_body_bytes: 256 << 20,
            max_jfr_bytes: 64 << 20,
            ingestion_rate_mb: 4.0,
            ingestion_burst_size_mb: 2.0,
            max_series: 5_000,
            max_query_length: Duration::ZERO,
            max_nodes_default: 8_192,
            max_nodes_max: 1_048_576,
        }
    }
}

impl TenantLimits {
    /// Checks that the values make sense; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_nodes_default <= 0 || self.max_nodes_default > self.max_nodes_max {
            return Err("`max_nodes_default` must be between 1 and `max_nodes_max`".into());
        }
        if !(self.ingestion_rate_mb >= 0.0 && self.ingestion_rate_mb.is_finite()) {
            return Err("`ingestion_rate_mb` must be a number ≥ 0".into());
        }
        if !(self.ingestion_burst_size_mb >= 0.0 && self.ingestion_burst_size_mb.is_finite()) {
            return Err("`ingestion_burst_size_mb` must be a number ≥ 0".into());
        }
        for (key, v) in [
            ("max_profile_bytes", self.max_profile_bytes),
            ("max_samples", self.max_samples),
            ("max_stack_depth", self.max_stack_depth),
            ("max_symbol_len", self.max_symbol_len),
            ("max_label_names", self.max_label_names),
            ("max_label_name_len", self.max_label_name_len),
            ("max_label_value_len", self.max_label_value_len),
            ("max_body_bytes", self.max_body_bytes),
            ("max_jfr_bytes", self.max_jfr_bytes),
        ] {
            if v == 0 {
                return Err(format!("`{key}` must be at least 1"));
            }
        }
        Ok(())
    }

    /// The strictest of several tenants' limits (for queries that read
    /// several tenants at once).
    pub fn strictest<'a>(all: impl IntoIterator<Item = &'a TenantLimits>) -> TenantLimits {
        let mut it = all.into_iter();
        let Some(first) = it.next() else {
            return TenantLimits::default();
        };
        let mut out = first.clone();
        for l in it {
            let (a, b) = (out.max_query_length, l.max_query_length);
            out.max_query_length = match (a.is_zero(), b.is_zero()) {
                (true, _) => b,
                (_, true) => a,
                _ => a.min(b),
            };
            out.max_nodes_default = out.max_nodes_default.min(l.max_nodes_default);
            out.max_nodes_max = out.max_nodes_max.min(l.max_nodes_max);
        }
        out
    }
}

/// Where a role reads the limits of a tenant.
pub trait LimitsSource: Send + Sync + fmt::Debug {
    /// The limits of `tenant` as currently configured.
    fn limits(&self, tenant: &TenantId) -> Arc<TenantLimits>;
}

/// The same limits for every tenant.
#[derive(Debug, Clone, Default)]
pub struct StaticLimits(pub Arc<TenantLimits>);

impl StaticLimits {
    /// Every tenant gets `limits`.
    pub fn new(limits: TenantLimits) -> Arc<Self> {
        Arc::new(StaticLimits(Arc::new(limits)))
    }
}

impl LimitsSource for StaticLimits {
    fn limits(&self, _tenant: &TenantId) -> Arc<TenantLimits> {
        Arc::clone(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_partial_input_takes_defaults() {
        TenantLimits::default().validate().unwrap();
        let l: TenantLimits =
            serde_json::from_str(r#"{"max_series": 7, "max_query_length": "30d"}"#).unwrap();
        assert_eq!(l.max_series, 7);
        assert_eq!(l.max_query_length, Duration::from_secs(30 * 86_400));
        assert_eq!(l.max_samples, 16_000);
        assert!(serde_json::from_str::<TenantLimits>(r#"{"max_seriess": 1}"#).is_err());
        let bad = TenantLimits {
            max_nodes_default: 0,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("max_nodes_default"));
    }

    #[test]
    fn strictest_takes_the_smallest_query_limits() {
        let a = TenantLimits {
            max_query_length: Duration::ZERO,
            max_nodes_max: 100,
            ..Default::default()
        };
        let b = TenantLimits {
            max_query_length: Duration::from_secs(3600),
            max_nodes_max: 1000,
            max_nodes_default: 50,
            ..Default::default()
        };
        let s = TenantLimits::strictest([&a, &b]);
        assert_eq!(s.max_query_length, Duration::from_secs(3600));
        assert_eq!(s.max_nodes_max, 100);
        assert_eq!(s.max_nodes_default, 50);
    }
}
