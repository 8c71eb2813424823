//! Profile formats: everything between the bytes an agent sends and the
//! normalised profiles the ingesters store, plus the encoders the query side
//! needs (pprof out).
//!
//! Entry points used by the distributor:
//! - [`push::profiles_from_push_series`]: one `push.v1` series (labels + one
//!   raw pprof) into normalised [`SeriesProfile`]s;
//! - [`ingest::profiles_from_ingest`]: a legacy `/ingest` request (query
//!   parameters + body: pprof, JFR, folded, lines, speedscope, trie, tree)
//!   into normalised [`SeriesProfile`]s;
//! - [`otlp::profiles_from_otlp`] (and
//!   [`otlp::profiles_from_otlp_request`]): an OTLP profiles export
//!   request into normalised [`SeriesProfile`]s.
//!
//! Every path ends in [`normalize::normalize`], which also repairs Go
//! profiles ([`go_fix`]).
//!
//! Every parser is bounded by [`Limits`] before it decompresses or parses,
//! and fails with a [`FormatError`] that names what is wrong; none panics.

pub mod compress;
pub mod error;
pub mod folded;
pub mod go_fix;
pub mod ingest;
pub mod jfr;
pub mod legacy_tree;
pub mod limits;
pub mod normalize;
pub mod otlp;
pub mod pprof;
pub mod push;
pub mod speedscope;
#[doc(hidden)]
pub mod testgen;

pub use error::FormatError;
pub use limits::Limits;

use kiln_model::Labels;
use kiln_proto::google::v1::Profile;

/// A profile ready for an ingester: the labels of its series and a
/// validated, normalised pprof.
///
/// Invariants established by [`normalize`]:
/// - `labels` contains `__name__` and `service_name` (default
///   `unknown_service`) and no other name starting with `__`;
/// - `profile.time_nanos` is set (never 0);
/// - every sample has exactly `sample_type.len()` values, at least one of
///   them non-zero, and samples with the same stack and labels are merged;
/// - the only sample labels left are string labels named `span_id` whose
///   value is 16 lowercase hex digits (`profile_id` is renamed to `span_id`;
///   all other string labels were promoted into `labels`, splitting the
///   profile into one `SeriesProfile` per distinct label set);
/// - string table, ids and indexes are valid (checked by [`pprof::validate`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesProfile {
    /// Series labels, sorted by name.
    pub labels: Labels,
    /// The profile; one series per entry of `sample_type` is derived from it.
    pub profile: Profile,
}
