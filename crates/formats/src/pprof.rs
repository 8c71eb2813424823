//! pprof (`google.v1.Profile`): bounded decoding, validation, encoding, and a
//! builder for converters that produce pprof from other formats.
//!
//! [`decode`] sniffs gzip, bounds the decompressed size and decodes with
//! prost (which rejects invalid UTF-8 in strings). [`validate`] checks every
//! index and id so that later code may index the tables without checks.

use prost::Message;
use rustc_hash::{FxHashMap, FxHashSet};

use kiln_proto::google::v1::{
    Function, Label, Line, Location, Mapping, Profile, Sample, ValueType,
};

use crate::compress::{decompress_bounded, gzip};
use crate::{FormatError, Limits};

/// Which rules [`validate`] applies on top of the common ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationMode {
    /// The Push API: sample type names must not contain `-`.
    Push,
    /// The legacy `/ingest` API, whose own fix-ups ran before validation.
    Ingest,
}

/// Decodes a pprof profile, gzipped or not, of at most
/// `limits.max_profile_bytes` once decompressed.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Profile, FormatError> {
    let raw = decompress_bounded(bytes, limits.max_profile_bytes, "profile")?;
    decode_uncompressed(&raw)
}

/// Decodes an uncompressed pprof protobuf (bounded by the caller).
pub(crate) fn decode_uncompressed(raw: &[u8]) -> Result<Profile, FormatError> {
    Profile::decode(raw).map_err(FormatError::DecodePprof)
}

/// Encodes a profile as uncompressed protobuf.
pub fn encode(profile: &Profile) -> Vec<u8> {
    profile.encode_to_vec()
}

/// Encodes a profile as gzipped protobuf, as `go tool pprof` expects.
pub fn encode_gzip(profile: &Profile) -> Result<Vec<u8>, FormatError> {
    gzip(&encode(profile))
}

/// The string at `index` of the string table, or `None` if out of bounds.
pub fn string_at(profile: &Profile, index: i64) -> Option<&str> {
    usize::try_from(index)
        .ok()
        .and_then(|i| profile.string_table.get(i))
        .map(String::as_str)
}

/// The string at `index`, or `""` if out of bounds. For code that runs
/// before [`validate`] and must not fail.
pub(crate) fn string_or_empty(profile: &Profile, index: i64) -> &str {
    string_at(profile, index).unwrap_or("")
}

/// The (type, unit) names of every sample type. Out-of-bounds indexes read
/// as `""`.
pub fn sample_type_names(profile: &Profile) -> Vec<(&str, &str)> {
    profile
        .sample_type
        .iter()
        .map(|vt| {
            (
                string_or_empty(profile, vt.r#type),
                string_or_empty(profile, vt.unit),
            )
        })
        .collect()
}

/// Checks the structural rules every stored profile must follow:
///
/// - at least one sample type, and (in [`ValidationMode::Push`]) no sample
///   type name containing `-`;
/// - `string_table[0] == ""` and every string index in bounds;
/// - no location or function with id 0, no duplicate ids;
/// - every sample has exactly one value per sample type and references
///   existing locations; every line references an existing function and
///   every non-zero `mapping_id` an existing mapping;
/// - at most `limits.max_samples` samples and `limits.max_sample_labels`
///   labels per sample.
pub fn validate(
    profile: &Profile,
    mode: ValidationMode,
    limits: &Limits,
) -> Result<(), FormatError> {
    let invalid = |msg: String| Err(FormatError::InvalidProfile(msg));
    match profile.string_table.first() {
        None => return invalid("string table is empty".into()),
        Some(s) if !s.is_empty() => {
            return invalid("string table entry 0 must be the empty string".into());
        }
        Some(_) => {}
    }
    let n_strings = profile.string_table.len();
    let check_index = |index: i64, what: &str| -> Result<(), FormatError> {
        match usize::try_from(index) {
            Ok(i) if i < n_strings => Ok(()),
            _ => Err(FormatError::InvalidProfile(format!(
                "{what} string index {index} out of bounds (string table has {n_strings} entries)"
            ))),
        }
    };

    if profile.sample_type.is_empty() {
        return invalid("no sample types".into());
    }
    for vt in &profile.sample_type {
        check_index(vt.r#type, "sample type")?;
        check_index(vt.unit, "sample unit")?;
        if mode == ValidationMode::Push {
            let name = string_or_empty(profile, vt.r#type);
            if name.contains('-') {
                return invalid(format!("sample type {name:?} contains '-'"));
            }
        }
    }
    if let Some(pt) = &profile.period_type {
        check_index(pt.r#type, "period type")?;
        check_index(pt.unit, "period unit")?;
    }
    check_index(profile.drop_frames, "drop_frames")?;
    check_index(profile.keep_frames, "keep_frames")?;
    check_index(profile.default_sample_type, "default_sample_type")?;
    for &c in &profile.comment {
        check_index(c, "comment")?;
    }

    let mut mapping_ids = FxHashSet::default();
    for m in &profile.mapping {
        check_index(m.filename, "mapping filename")?;
        check_index(m.build_id, "mapping build_id")?;
        if !mapping_ids.insert(m.id) {
            return invalid(format!("duplicate mapping id {}", m.id));
        }
    }
    let mut function_ids = FxHashSet::default();
    for f in &profile.function {
        if f.id == 0 {
            return invalid("function id is 0".into());
        }
        check_index(f.name, "function name")?;
        check_index(f.system_name, "function system_name")?;
        check_index(f.filename, "function filename")?;
        if !function_ids.insert(f.id) {
            return invalid(format!("duplicate function id {}", f.id));
        }
    }
    let mut location_ids = FxHashSet::default();
    for loc in &profile.location {
        if loc.id == 0 {
            return invalid("location id is 0".into());
        }
        if !location_ids.insert(loc.id) {
            return invalid(format!("duplicate location id {}", loc.id));
        }
        if loc.mapping_id != 0 && !mapping_ids.contains(&loc.mapping_id) {
            return invalid(format!(
                "location {} references missing mapping {}",
                loc.id, loc.mapping_id
            ));
        }
        for line in &loc.line {
            if !function_ids.contains(&line.function_id) {
                return invalid(format!(
                    "location {} references missing function {}",
                    loc.id, line.function_id
                ));
            }
        }
    }

    if profile.sample.len() > limits.max_samples {
        return Err(FormatError::LimitExceeded {
            what: "samples in profile",
            limit: limits.max_samples,
            actual: profile.sample.len(),
        });
    }
    let n_types = profile.sample_type.len();
    for (i, s) in profile.sample.iter().enumerate() {
        if s.value.len() != n_types {
            return invalid(format!(
                "sample {i} has {} values, expected {n_types} (one per sample type)",
                s.value.len()
            ));
        }
        if s.label.len() > limits.max_sample_labels {
            return Err(FormatError::LimitExceeded {
                what: "labels on a sample",
                limit: limits.max_sample_labels,
                actual: s.label.len(),
            });
        }
        for l in &s.label {
            check_index(l.key, "sample label key")?;
            check_index(l.str, "sample label value")?;
            check_index(l.num_unit, "sample label unit")?;
        }
        for id in &s.location_id {
            if !location_ids.contains(id) {
                return invalid(format!("sample {i} references missing location {id}"));
            }
        }
    }
    Ok(())
}

/// Builds a pprof from stacks of frame names, for converters of formats
/// that only know function names (folded, lines, trees, ...).
///
/// Strings and functions are interned; each function gets exactly one
/// location; everything lives in one mapping with id 1.
#[derive(Debug)]
pub struct ProfileBuilder {
    profile: Profile,
    strings: FxHashMap<String, i64>,
    /// Function name string index → location id (equal to the function id).
    locations: FxHashMap<i64, u64>,
}

impl Default for ProfileBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ProfileBuilder {
    /// An empty profile with `string_table == [""]` and mapping 1.
    pub fn new() -> Self {
        let mut strings = FxHashMap::default();
        strings.insert(String::new(), 0);
        ProfileBuilder {
            profile: Profile {
                string_table: vec![String::new()],
                mapping: vec![Mapping {
                    id: 1,
                    has_functions: true,
                    ..Mapping::default()
                }],
                ..Profile::default()
            },
            strings,
            locations: FxHashMap::default(),
        }
    }

    /// The index of `s` in the string table, added if missing.
    pub fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    /// Appends a sample type (one value column).
    pub fn add_sample_type(&mut self, r#type: &str, unit: &str) -> &mut Self {
        let vt = ValueType {
            r#type: self.string(r#type),
            unit: self.string(unit),
        };
        self.profile.sample_type.push(vt);
        self
    }

    /// Sets the period type and period.
    pub fn set_period(&mut self, r#type: &str, unit: &str, period: i64) -> &mut Self {
        let vt = ValueType {
            r#type: self.string(r#type),
            unit: self.string(unit),
        };
        self.profile.period_type = Some(vt);
        self.profile.period = period;
        self
    }

    /// Sets the start time and duration, in nanoseconds.
    pub fn set_time(&mut self, time_nanos: i64, duration_nanos: i64) -> &mut Self {
        self.profile.time_nanos = time_nanos;
        self.profile.duration_nanos = duration_nanos;
        self
    }

    /// The location id of the frame called `name`, created with its
    /// function if missing.
    pub fn location(&mut self, name: &str) -> u64 {
        let name_index = self.string(name);
        if let Some(&id) = self.locations.get(&name_index) {
            return id;
        }
        let id = self.profile.function.len() as u64 + 1;
        self.profile.function.push(Function {
            id,
            name: name_index,
            system_name: name_index,
            ..Function::default()
        });
        self.profile.location.push(Location {
            id,
            mapping_id: 1,
            line: vec![Line {
                function_id: id,
                line: 0,
            }],
            ..Location::default()
        });
        self.locations.insert(name_index, id);
        id
    }

    /// Adds a sample; `stack` is root first (it is stored leaf first, as
    /// pprof wants) and `values` has one entry per sample type.
    pub fn add_sample<S: AsRef<str>>(&mut self, stack: &[S], values: Vec<i64>) -> &mut Self {
        self.add_sample_with_labels(stack, values, &[])
    }

    /// [`ProfileBuilder::add_sample`] with string labels on the sample.
    pub fn add_sample_with_labels<S: AsRef<str>>(
        &mut self,
        stack: &[S],
        values: Vec<i64>,
        labels: &[(&str, &str)],
    ) -> &mut Self {
        let mut location_id: Vec<u64> = stack.iter().map(|f| self.location(f.as_ref())).collect();
        location_id.reverse();
        let label = labels
            .iter()
            .map(|(k, v)| Label {
                key: self.string(k),
                str: self.string(v),
                ..Label::default()
            })
            .collect();
        self.profile.sample.push(Sample {
            location_id,
            value: values,
            label,
        });
        self
    }

    /// The finished profile.
    pub fn finish(self) -> Profile {
        self.profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Profile {
        let mut b = ProfileBuilder::new();
        b.add_sample_type("samples", "count")
            .add_sample_type("cpu", "nanoseconds")
            .set_period("cpu", "nanoseconds", 10)
            .add_sample(&["main", "foo"], vec![1, 10])
            .add_sample(&["main", "bar"], vec![2, 20]);
        b.finish()
    }

    fn assert_invalid(p: &Profile, mode: ValidationMode, needle: &str) {
        let err = validate(p, mode, &Limits::default()).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{err} does not contain {needle:?}"
        );
    }

    #[test]
    fn builder_output_is_valid_and_round_trips() {
        let p = small();
        validate(&p, ValidationMode::Push, &Limits::default()).unwrap();
        assert_eq!(p.function.len(), 3);
        assert_eq!(p.location.len(), 3);
        // leaf first
        let foo = p.sample[0].location_id[0];
        let f = &p.function[(foo - 1) as usize];
        assert_eq!(string_at(&p, f.name), Some("foo"));
        assert_eq!(
            sample_type_names(&p),
            vec![("samples", "count"), ("cpu", "nanoseconds")]
        );
        let bytes = encode(&p);
        assert_eq!(decode(&bytes, &Limits::default()).unwrap(), p);
        let gz = encode_gzip(&p).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        assert_eq!(decode(&gz, &Limits::default()).unwrap(), p);
    }

    #[test]
    fn decode_is_bounded() {
        let gz = encode_gzip(&small()).unwrap();
        let limits = Limits {
            max_profile_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            decode(&gz, &limits),
            Err(FormatError::TooLarge { limit: 10, .. })
        ));
        assert!(matches!(
            decode(b"\xff\xff\xff", &Limits::default()),
            Err(FormatError::DecodePprof(_))
        ));
    }

    #[test]
    fn rejects_each_broken_rule() {
        let mut p = small();
        p.string_table[0] = "x".into();
        assert_invalid(&p, ValidationMode::Ingest, "entry 0");

        let mut p = small();
        p.string_table.clear();
        assert_invalid(&p, ValidationMode::Ingest, "string table is empty");

        let mut p = small();
        p.sample_type.clear();
        p.sample.clear();
        assert_invalid(&p, ValidationMode::Ingest, "no sample types");

        let mut p = small();
        p.function[0].name = 999;
        assert_invalid(&p, ValidationMode::Ingest, "function name string index 999");

        let mut p = small();
        p.sample_type[0].unit = -1;
        assert_invalid(&p, ValidationMode::Ingest, "sample unit string index -1");

        let mut p = small();
        p.location[0].id = 0;
        assert_invalid(&p, ValidationMode::Ingest, "location id is 0");

        let mut p = small();
        p.function[1].id = 0;
        assert_invalid(&p, ValidationMode::Ingest, "function id is 0");

        let mut p = small();
        p.location[1].id = p.location[0].id;
        assert_invalid(&p, ValidationMode::Ingest, "duplicate location id");

        let mut p = small();
        p.sample[1].value.pop();
        assert_invalid(&p, ValidationMode::Ingest, "sample 1 has 1 values");

        let mut p = small();
        p.sample[0].location_id.push(77);
        assert_invalid(&p, ValidationMode::Ingest, "missing location 77");

        let mut p = small();
        p.location[0].line[0].function_id = 55;
        assert_invalid(&p, ValidationMode::Ingest, "missing function 55");

        let mut p = small();
        p.location[0].mapping_id = 9;
        assert_invalid(&p, ValidationMode::Ingest, "missing mapping 9");

        let mut p = small();
        p.sample[0].label.push(Label {
            key: 1,
            str: 500,
            ..Label::default()
        });
        assert_invalid(
            &p,
            ValidationMode::Ingest,
            "sample label value string index 500",
        );

        let mut b = ProfileBuilder::new();
        b.add_sample_type("alloc-space", "bytes");
        let p = b.finish();
        assert_invalid(&p, ValidationMode::Push, "contains '-'");
        validate(&p, ValidationMode::Ingest, &Limits::default()).unwrap();
    }

    #[test]
    fn enforces_count_limits() {
        let p = small();
        let limits = Limits {
            max_samples: 1,
            ..Limits::default()
        };
        let err = validate(&p, ValidationMode::Push, &limits).unwrap_err();
        assert!(matches!(
            err,
            FormatError::LimitExceeded {
                limit: 1,
                actual: 2,
                ..
            }
        ));
        let mut p = small();
        p.sample[0].label = vec![Label::default(); 3];
        let limits = Limits {
            max_sample_labels: 2,
            ..Limits::default()
        };
        let err = validate(&p, ValidationMode::Push, &limits).unwrap_err();
        assert!(err.to_string().contains("labels on a sample"), "{err}");
    }
}
