//! Compactor configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long each tier is kept (0 = forever).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierRetention {
    /// Raw profiles.
    #[serde(with = "humantime_serde")]
    pub raw: Duration,
    /// The 1-minute roll-up tier.
    #[serde(with = "humantime_serde")]
    pub minute: Duration,
    /// The 1-hour roll-up tier.
    #[serde(with = "humantime_serde")]
    pub hour: Duration,
    /// The 1-day roll-up tier.
    #[serde(with = "humantime_serde")]
    pub day: Duration,
}

const DAY: u64 = 86_400;

impl Default for TierRetention {
    fn default() -> Self {
        TierRetention {
            raw: Duration::from_secs(30 * DAY),
            minute: Duration::from_secs(365 * DAY),
            hour: Duration::from_secs(5 * 365 * DAY),
            day: Duration::ZERO,
        }
    }
}

/// The `compactor` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactorConfig {
    /// How often to ask for jobs when idle.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Jobs run at the same time.
    pub concurrency: u32,
    /// Lease of a job; renewed while it runs.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Segments of an hour are merged once this many exist...
    pub segments_per_merge: u32,
    /// ...or once the oldest is this old.
    #[serde(with = "humantime_serde")]
    pub segment_max_age: Duration,
    /// An hour is merged into one block this long after it ended.
    #[serde(with = "humantime_serde")]
    pub hour_grace: Duration,
    /// A day is merged into one block with roll-ups this long after it
    /// ended; keep it above the ingestion window (late profiles).
    #[serde(with = "humantime_serde")]
    pub day_grace: Duration,
    /// Tier blocks of a window are merged once this many exist.
    pub tier_merge_min_blocks: u32,
    /// Largest number of blocks one job reads.
    pub max_sources: u32,
    /// Most nodes kept per roll-up bucket; the rest becomes `other`.
    pub rollup_node_cap: usize,
    /// Retention of every tenant without an override.
    pub retention: TierRetention,
    /// Per-tenant retention overrides.
    pub retention_overrides: BTreeMap<String, TierRetention>,
    /// How often retention is applied.
    #[serde(with = "humantime_serde")]
    pub retention_interval: Duration,
    /// How long the objects of removed blocks stay before deletion.
    #[serde(with = "humantime_serde")]
    pub deletion_delay: Duration,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        CompactorConfig {
            poll_interval: Duration::from_secs(5),
            concurrency: 1,
            lease: Duration::from_secs(60),
            segments_per_merge: 20,
            segment_max_age: Duration::from_secs(30),
            hour_grace: Duration::from_secs(300),
            day_grace: Duration::from_secs(2 * 3600),
            tier_merge_min_blocks: 4,
            max_sources: 1000,
            rollup_node_cap: 16_384,
            retention: TierRetention::default(),
            retention_overrides: BTreeMap::new(),
            retention_interval: Duration::from_secs(60),
            deletion_delay: Duration::from_secs(15 * 60),
        }
    }
}

impl CompactorConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err("`compactor.concurrency` must be at least 1".into());
        }
        if self.lease < Duration::from_secs(5) {
            return Err("`compactor.lease` must be at least 5s".into());
        }
        if self.rollup_node_cap < 16 {
            return Err("`compactor.rollup_node_cap` must be at least 16".into());
        }
        Ok(())
    }
}
