//! Series labels and the well-known label names.

use std::fmt;

use xxhash_rust::xxh64::Xxh64;

/// `__name__`: the profile "metric" name (`process_cpu`, `memory`, ...).
pub const LABEL_NAME: &str = "__name__";
/// `service_name`: the application identity, the primary query dimension.
pub const LABEL_SERVICE_NAME: &str = "service_name";
/// `__profile_type__`: the full profile type ID of a series.
pub const LABEL_PROFILE_TYPE: &str = "__profile_type__";
/// `__type__`: the sample type of a series.
pub const LABEL_TYPE: &str = "__type__";
/// `__unit__`: the sample unit of a series.
pub const LABEL_UNIT: &str = "__unit__";
/// `__period_type__`.
pub const LABEL_PERIOD_TYPE: &str = "__period_type__";
/// `__period_unit__`.
pub const LABEL_PERIOD_UNIT: &str = "__period_unit__";
/// `__delta__`: ingest hint, removed before storage.
pub const LABEL_DELTA: &str = "__delta__";
/// `__session_id__`: set by pyroscope-go.
pub const LABEL_SESSION_ID: &str = "__session_id__";
/// `pyroscope_spy`: the agent kind, from `/ingest`'s `spyName`.
pub const LABEL_PYROSCOPE_SPY: &str = "pyroscope_spy";
/// `app_name`: the app name when `service_name` was given explicitly.
pub const LABEL_APP_NAME: &str = "app_name";
/// The service name used when a profile carries none.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// A set of labels sorted by name, names unique.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Builds a label set; later duplicates of a name replace earlier ones.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut labels = Labels::default();
        for (k, v) in pairs {
            labels.set(k, v);
        }
        labels
    }

    /// Sets `name` to `value`, replacing an existing value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    /// Sets `name` to `value` only if it is not present yet.
    pub fn set_if_absent(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        if let Err(i) = self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            self.0.insert(i, (name, value.into()));
        }
    }

    /// Removes `name`; returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => Some(self.0.remove(i).1),
            Err(_) => None,
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Iterates over (name, value) in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps only the labels for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.0.retain(|(n, v)| keep(n, v));
    }

    /// A stable 64-bit hash of the label set.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Xxh64::new(0);
        for (n, v) in &self.0 {
            h.update(n.as_bytes());
            h.update(&[0xff]);
            h.update(v.as_bytes());
            h.update(&[0xfe]);
        }
        h.digest()
    }

    /// Consumes the set into its (name, value) pairs.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }
}

impl fmt::Display for Labels {
    /// Formats as `{a="x", b="y"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (n, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<T: IntoIterator<Item = (String, String)>>(iter: T) -> Self {
        Labels::from_pairs(iter)
    }
}

/// Whether `name` is a legacy Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_legacy_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a span id (16 hex digits, the 8 bytes of the id) into the
/// little-endian integer Pyroscope matches `span_selector` values against.
pub fn parse_span_id(hex: &str) -> Option<u64> {
    if hex.len() != 16 {
        return None;
    }
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(u64::from_le_bytes(bytes))
}

/// Formats a span id as [`parse_span_id`] reads it.
pub fn format_span_id(id: u64) -> String {
    id.to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_ids_round_trip() {
        assert_eq!(parse_span_id("0100000000000000"), Some(1));
        assert_eq!(format_span_id(1), "0100000000000000");
        let id = parse_span_id("9a3f0c55e1d2b4a7").unwrap();
        assert_eq!(format_span_id(id), "9a3f0c55e1d2b4a7");
        assert_eq!(parse_span_id("xyz"), None);
        assert_eq!(parse_span_id("zz3f0c55e1d2b4a7"), None);
    }

    #[test]
    fn keeps_labels_sorted_and_unique() {
        let mut l = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3")]);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![("a", "1"), ("b", "3")]);
        l.set_if_absent("a", "x");
        assert_eq!(l.get("a"), Some("1"));
        l.set_if_absent("c", "4");
        assert_eq!(l.remove("b"), Some("3".to_owned()));
        assert_eq!(l.to_string(), r#"{a="1", c="4"}"#);
    }

    #[test]
    fn fingerprint_depends_on_every_pair() {
        let a = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let b = Labels::from_pairs([("b", "2"), ("a", "1")]);
        let c = Labels::from_pairs([("a", "12")]);
        let d = Labels::from_pairs([("a", "1"), ("b", "2"), ("c", "")]);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a.fingerprint(), d.fingerprint());
    }

    #[test]
    fn legacy_label_names() {
        assert!(is_legacy_label_name("service_name"));
        assert!(is_legacy_label_name("_x1"));
        assert!(!is_legacy_label_name("otel.scope.name"));
        assert!(!is_legacy_label_name("1a"));
        assert!(!is_legacy_label_name(""));
    }
}
