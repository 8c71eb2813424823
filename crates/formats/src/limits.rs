//! Size and count limits applied while parsing untrusted input.
//!
//! The defaults are Pyroscope's per-tenant defaults. [`Limits::default`] is
//! the only place they are written down; the config embeds this struct as
//! `limits` and every missing key takes its default.

use serde::{Deserialize, Serialize};

/// Limits applied to one request and to each profile in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest profile after decompression, in bytes; larger is rejected.
    pub max_profile_bytes: usize,
    /// Most samples (distinct stacks for text formats) in one profile;
    /// more is rejected.
    pub max_samples: usize,
    /// Most labels on one pprof sample; more is rejected.
    pub max_sample_labels: usize,
    /// Deepest stack kept; deeper stacks are truncated to their root-side
    /// frames, not rejected.
    pub max_stack_depth: usize,
    /// Longest symbol (any pprof string); longer ones are truncated to
    /// their last `max_symbol_len` bytes.
    pub max_symbol_len: usize,
    /// Most labels in one series (including `__name__` and
    /// `service_name`); more is rejected.
    pub max_label_names: usize,
    /// Longest label name, in bytes; longer is rejected.
    pub max_label_name_len: usize,
    /// Longest label value, in bytes; longer is rejected.
    pub max_label_value_len: usize,
    /// Largest request body, in bytes (also the cap on the summed
    /// decompressed size of one push, and on the decompressed size of one
    /// OTLP export request); larger is rejected with 413.
    pub max_body_bytes: usize,
    /// Largest JFR recording or JFR labels snapshot after decompression, in
    /// bytes; larger is rejected with 413. JFR recordings hold raw events,
    /// not aggregated stacks, so they are much larger than the pprof made
    /// from them and get their own limit instead of `max_profile_bytes`
    /// (which bounds pprof, speedscope, trie and tree bodies).
    pub max_jfr_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
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
        }
    }
}

impl From<&kiln_model::TenantLimits> for Limits {
    fn from(t: &kiln_model::TenantLimits) -> Self {
        Limits {
            max_profile_bytes: t.max_profile_bytes,
            max_samples: t.max_samples,
            max_sample_labels: t.max_sample_labels,
            max_stack_depth: t.max_stack_depth,
            max_symbol_len: t.max_symbol_len,
            max_label_names: t.max_label_names,
            max_label_name_len: t.max_label_name_len,
            max_label_value_len: t.max_label_value_len,
            max_body_bytes: t.max_body_bytes,
            max_jfr_bytes: t.max_jfr_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_limit_defaults_are_the_same() {
        assert_eq!(
            Limits::from(&kiln_model::TenantLimits::default()),
            Limits::default()
        );
    }

    #[test]
    fn missing_keys_take_defaults_and_unknown_keys_fail() {
        let l: Limits = serde_json::from_str(r#"{"max_samples": 5}"#).unwrap();
        assert_eq!(
            l,
            Limits {
                max_samples: 5,
                ..Limits::default()
            }
        );
        assert!(serde_json::from_str::<Limits>(r#"{"max_sampels": 5}"#).is_err());
        let dumped = serde_json::to_value(Limits::default()).unwrap();
        assert_eq!(dumped["max_profile_bytes"], 4_194_304);
        assert_eq!(dumped["max_body_bytes"], 268_435_456);
        assert_eq!(dumped["max_jfr_bytes"], 67_108_864);
    }
}
