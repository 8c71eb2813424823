//! Querier configuration.

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

/// The `querier` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuerierConfig {
    /// Memory for cached series tables and symbols of blocks.
    pub cache_size: ByteSize,
    /// Blocks scanned at the same time by one query.
    pub block_concurrency: usize,
    /// How long a query may run.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// A merge query with at least this many pieces (block reads) is spread
    /// over every live querier; smaller ones are read by the querier that
    /// received them. A query-frontend always spreads.
    pub spread_min_pieces: usize,
}

impl Default for QuerierConfig {
    fn default() -> Self {
        QuerierConfig {
            cache_size: ByteSize::mib(256),
            block_concurrency: 8,
            query_timeout: Duration::from_secs(120),
            spread_min_pieces: 16,
        }
    }
}

impl QuerierConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.block_concurrency == 0 {
            return Err("`querier.block_concurrency` must be at least 1".into());
        }
        Ok(())
    }
}
