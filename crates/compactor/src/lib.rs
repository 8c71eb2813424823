//! The compactor: a stateless worker that takes compaction jobs from the
//! metastore and executes them.
//!
//! - merges segments into hour blocks and hours into day blocks (raw
//!   levels 1–3), dropping duplicate profiles of retried pushes;
//! - writes each day's roll-up tiers (1 min, 1 h, 1 day buckets of merged,
//!   node-capped stack trees) and merges tier blocks into 16- and 256-day
//!   blocks, so a year is answered from a few blocks;
//! - commits each job with its fencing token: the metastore replaces the
//!   sources by the output atomically, or refuses a stale lease (then the
//!   output is deleted again);
//! - applies retention per tier and tenant, and deletes the objects of
//!   removed blocks once they have been tombstoned for a grace period, so
//!   queries already running are not broken.
//!
//! The planning itself happens in the metastore's state machine
//! (`kiln_metastore::compaction`), so any number of compactors can run.

mod compactor;
pub mod config;
pub mod metrics;

pub use compactor::{Compactor, CompactorError, day_rollups};
pub use config::{CompactorConfig, TierRetention};
pub use metrics::CompactorMetrics;
