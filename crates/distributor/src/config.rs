//! Distributor configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `distributor` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributorConfig {
    /// Number of logical shards profiles are spread over. Changing it moves
    /// services to other shards (no data is lost; segments just split).
    pub shards: u32,
    /// Number of shards one service is spread over (by series), so that a
    /// hot service can use several ingesters.
    pub service_spread: u32,
    /// How long a push may wait for the ingesters before failing.
    #[serde(with = "humantime_serde")]
    pub push_timeout: Duration,
}

impl Default for DistributorConfig {
    fn default() -> Self {
        DistributorConfig {
            shards: 16,
            service_spread: 1,
            push_timeout: Duration::from_secs(30),
        }
    }
}

impl DistributorConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.shards == 0 || self.shards > 4096 {
            return Err("`distributor.shards` must be between 1 and 4096".into());
        }
        if self.service_spread == 0 || self.service_spread > self.shards {
            return Err(
                "`distributor.service_spread` must be between 1 and `distributor.shards`".into(),
            );
        }
        Ok(())
    }
}
