//! The ingester: buffers pushes per (tenant, shard), writes each buffer as
//! one segment (a level-0 block) to object storage, registers it in the
//! metastore, and only then answers the pushes it contains.
//!
//! A buffer is flushed when its oldest push has waited `flush_linger` and
//! no earlier segment of the same buffer is being written (group commit: a
//! write in progress batches whatever arrives meanwhile), when it has waited
//! `flush_interval`, or when it holds `max_segment_size` bytes, whichever
//! comes first. So an idle ingester acknowledges a push after the linger
//! plus one write, and a busy one writes larger segments rather than more
//! of them. Profiles are added to the
//! segment's [`kiln_storage::BlockBuilder`] as they arrive, so a flush only
//! encodes and uploads. A failed upload or registration fails every push in
//! the segment with a retryable error: nothing is acknowledged that is not
//! durable and indexed.

pub mod config;
pub mod error;
pub mod grpc;
mod ingester;
pub mod metrics;

pub use config::IngesterConfig;
pub use error::{IngesterError, Result};
pub use ingester::Ingester;
pub use metrics::IngesterMetrics;
