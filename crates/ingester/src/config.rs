//! Ingester configuration.

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

/// The `ingester` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngesterConfig {
    /// Longest time a push waits in a buffer before its segment is written.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How long a buffer collects pushes before it is written when no
    /// segment of the same buffer (tenant, shard, hour) is being written.
    /// While one is, the buffer keeps collecting until that write ends (or
    /// `flush_interval` passes), so under load segments grow instead of
    /// multiplying, and when idle a push waits only this long plus one
    /// write. At least `flush_interval` (e.g. `1h`): every buffer waits the
    /// full interval, as in Kiln before 2026-11.
    #[serde(with = "humantime_serde")]
    pub flush_linger: Duration,
    /// A buffer holding this many bytes of profiles is flushed at once.
    pub max_segment_size: ByteSize,
    /// Pushes are refused (retryably) while this many bytes are buffered.
    pub max_buffered_size: ByteSize,
    /// How many segments may be uploaded at the same time.
    pub flush_concurrency: usize,
    /// How long one upload or registration attempt may take.
    #[serde(with = "humantime_serde")]
    pub upload_timeout: Duration,
    /// Attempts per upload and per registration before the pushes fail.
    pub upload_attempts: u32,
}

impl Default for IngesterConfig {
    fn default() -> Self {
        IngesterConfig {
            flush_interval: Duration::from_secs(1),
            flush_linger: Duration::from_millis(100),
            max_segment_size: ByteSize::mib(16),
            max_buffered_size: ByteSize::mib(512),
            flush_concurrency: 8,
            upload_timeout: Duration::from_secs(10),
            upload_attempts: 3,
        }
    }
}

impl IngesterConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.flush_interval < Duration::from_millis(10) {
            return Err("`ingester.flush_interval` must be at least 10ms".into());
        }
        if self.max_segment_size < ByteSize::kib(64) {
            return Err("`ingester.max_segment_size` must be at least 64KiB".into());
        }
        if self.max_buffered_size < self.max_segment_size {
            return Err(
                "`ingester.max_buffered_size` must be at least `ingester.max_segment_size`".into(),
            );
        }
        if self.flush_concurrency == 0 || self.upload_attempts == 0 {
            return Err(
                "`ingester.flush_concurrency` and `ingester.upload_attempts` must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}
