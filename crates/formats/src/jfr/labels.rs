//! The `LabelsSnapshot` protobuf that pyroscope-java sends next to a JFR
//! recording (multipart part `labels`, proto package
//! `io.pyroscope.labels.pb`):
//!
//! ```proto
//! message Context { map<int64, int64> labels = 1; }
//! message LabelsSnapshot {
//!   map<int64, Context> contexts = 1;
//!   map<int64, string> strings = 2;
//! }
//! ```
//!
//! Events recorded by Pyroscope's async-profiler carry a `contextId`; the
//! snapshot maps it to label key/value string ids, resolved through
//! `strings` (id 0 is an ordinary id there).

use std::collections::HashMap;

/// Message `io.pyroscope.labels.pb.Context`: the labels of one context id,
/// as key string id → value string id.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelsContext {
    #[prost(map = "int64, int64", tag = "1")]
    pub labels: HashMap<i64, i64>,
}

/// Message `io.pyroscope.labels.pb.LabelsSnapshot`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelsSnapshot {
    /// Context id → its labels.
    #[prost(map = "int64, message", tag = "1")]
    pub contexts: HashMap<i64, LabelsContext>,
    /// String id → string.
    #[prost(map = "int64, string", tag = "2")]
    pub strings: HashMap<i64, String>,
}

impl LabelsSnapshot {
    /// The labels of a context as sorted (key, value) pairs. Labels whose
    /// key or value id is unknown or resolves to an empty string are left
    /// out: an empty name is not a valid label and an empty value means
    /// "not set". Returns an empty list for an unknown context.
    pub fn context_labels(&self, context_id: i64) -> Vec<(String, String)> {
        let Some(context) = self.contexts.get(&context_id) else {
            return Vec::new();
        };
        let mut labels: Vec<(String, String)> = context
            .labels
            .iter()
            .filter_map(|(key, value)| {
                let key = self.strings.get(key).filter(|key| !key.is_empty())?;
                let value = self.strings.get(value).filter(|value| !value.is_empty())?;
                Some((key.clone(), value.clone()))
            })
            .collect();
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        labels
    }
}
