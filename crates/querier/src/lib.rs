//! The querier: the read path.
//!
//! For a query it asks the metastore for the blocks that overlap the time
//! range (and the service, when the selector pins one), matches the label
//! selector against each block's series table, scans the `samples` or
//! `profiles` section of each block with DataFusion (series, time and span
//! predicates pushed into the Parquet scan so that row groups are pruned),
//! resolves the aggregated stack ids of each block through that block's
//! symbols into a [`kiln_model::StackTree`] of function names, and merges the
//! trees. Flame graphs, tree bytes, pprof, time series and diffs are all
//! rendered from merged trees or totals — never by merging rendered output.
//!
//! Series tables and symbols of immutable blocks are cached by size.

mod cache;
pub mod config;
mod distribute;
pub mod error;
pub mod metrics;
mod plan;
mod pprof_out;
mod querier;
mod scan;

pub use config::QuerierConfig;
pub use distribute::Peers;
pub use error::{QuerierError, Result};
pub use metrics::QuerierMetrics;
pub use querier::{Querier, TreeQuery};
