//! Kiln's pure domain model: tenants, labels and selectors, profile types,
//! stack trees with their merge and truncation, flame graphs (single and
//! diff) in Pyroscope's levels encoding, time-series bucketing and the legacy
//! time syntax.
//!
//! No I/O and no async: everything here is deterministic and can be tested
//! and benchmarked in isolation. The storage, query and ingest crates build
//! on these types; `kiln-proto` is the only dependency with wire types.

pub mod attime;
pub mod error;
pub mod flamegraph;
pub mod function_table;
pub mod labels;
pub mod limits;
pub mod profile_type;
pub mod sandwich;
pub mod selector;
pub mod tenant;
pub mod tiers;
pub mod timeseries;
pub mod tree;
pub mod truncation;

pub use error::{ErrorCode, HasErrorCode, ModelError};
pub use flamegraph::{FlameGraph, FlameGraphDiff};
pub use labels::Labels;
pub use limits::{LimitsSource, StaticLimits, TenantLimits};
pub use profile_type::ProfileType;
pub use selector::{MatchOp, Matcher, Selector};
pub use tenant::TenantId;
pub use tree::StackTree;
