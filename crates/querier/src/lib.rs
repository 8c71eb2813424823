//! The querier: the read path.
//!
//! For a query it asks the metastore for the blocks that overlap the time
//! range (and the service, when the selector pins one), matches the label
//! selector against each block's series table, sums each block's `samples`
//! per stack with [`kiln_storage::BlockReader::stack_values`] (row groups
//! and pages pruned by series and time, ADR 006) or scans its `profiles`
//! section with DataFusion (time series), and resolves the summed stack ids
//! of every block through that block's symbols into one
//! [`kiln_model::StackTree`] of function names. Flame graphs, tree bytes,
//! pprof, time series and diffs are all rendered from merged trees or
//! totals — never by merging rendered output.
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
