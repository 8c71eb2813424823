//! Normalisation of one validated profile into the series it belongs to.
//!
//! This is the common tail of every ingest path (Push, `/ingest`, and the
//! converters): it establishes the invariants documented on
//! [`SeriesProfile`]. In order:
//!
//! 1. the profile is validated ([`pprof::validate`]); Go profiles (see
//!    [`go_fix::is_go_profile`]) get their type parameters elided and
//!    their truncated stacks repaired ([`go_fix::fix_go_profile`]);
//! 2. series labels: empty values are dropped, `service_name` defaults to
//!    `unknown_service`, `godeltaprof_X` names become `X`, every `__*` name
//!    except `__name__` is dropped (`__delta__`, `__session_id__`, ...), and
//!    a non-empty `__name__` is required;
//! 3. strings longer than `max_symbol_len` keep their last bytes;
//! 4. samples whose values are all zero are dropped; stacks deeper than
//!    `max_stack_depth` keep their root-side frames;
//! 5. sample labels: `trace_id` and numeric labels are dropped; `span_id`
//!    (or `profile_id`, renamed) stays on the sample if it is 16 hex digits
//!    (lowercased), otherwise it is dropped; every other non-empty string
//!    label is promoted to the series labels unless the series already has
//!    that name (series labels win) or it starts with `__`;
//! 6. one [`SeriesProfile`] per distinct promoted label set (ordered by
//!    labels), each with the full symbol tables, and samples with the same
//!    stack and span id merged;
//! 7. label counts and lengths are checked against [`Limits`];
//! 8. `time_nanos` 0 becomes `now_ns`.
//!
//! A profile left without samples yields no [`SeriesProfile`] at all.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use kiln_model::Labels;
use kiln_model::labels::{LABEL_NAME, LABEL_SERVICE_NAME, UNKNOWN_SERVICE};
use kiln_proto::google::v1::{Label, Profile, Sample};

use crate::error::shorten;
use crate::go_fix;
use crate::pprof::{self, ValidationMode};
use crate::{FormatError, Limits, SeriesProfile};

/// The only sample label kept on samples.
pub const SPAN_ID: &str = "span_id";
/// Legacy name of `span_id`, renamed at ingest.
pub const PROFILE_ID: &str = "profile_id";
/// Trace correlation label; dropped from samples for now.
pub const TRACE_ID: &str = "trace_id";

const GODELTAPROF_PREFIX: &str = "godeltaprof_";

/// How [`normalize`] treats a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormalizeOptions {
    /// Which validation rules apply.
    pub mode: ValidationMode,
    /// "Now" in nanoseconds since the epoch, used when `time_nanos` is 0.
    pub now_ns: i64,
}

/// Validates and normalises `profile` pushed with `series_labels`, splitting
/// it by its promoted sample labels. See the module docs for every step.
pub fn normalize(
    series_labels: Labels,
    mut profile: Profile,
    limits: &Limits,
    options: NormalizeOptions,
) -> Result<Vec<SeriesProfile>, FormatError> {
    pprof::validate(&profile, options.mode, limits)?;
    if go_fix::is_go_profile(&series_labels, &profile) {
        go_fix::fix_go_profile(&mut profile);
    }
    let series_labels = normalize_series_labels(series_labels)?;

    truncate_long_strings(&mut profile.string_table, limits.max_symbol_len);
    if profile.time_nanos == 0 {
        profile.time_nanos = options.now_ns;
    }

    let samples = std::mem::take(&mut profile.sample);
    let mut strings = SpanStrings::new(profile.string_table.len());
    let mut groups: BTreeMap<Labels, SampleGroup> = BTreeMap::new();
    for mut sample in samples {
        if sample.value.iter().all(|&v| v == 0) {
            continue;
        }
        if sample.location_id.len() > limits.max_stack_depth {
            // leaf first: the root-side frames are at the end
            let cut = sample.location_id.len() - limits.max_stack_depth;
            sample.location_id.drain(..cut);
        }
        let (promoted, span) = split_sample_labels(&profile, &sample.label, &series_labels);
        let span_label = span.map(|span| Label {
            key: strings.index(SPAN_ID, span.key_index),
            str: strings.index(&span.value, span.value_index),
            ..Label::default()
        });
        groups
            .entry(promoted)
            .or_default()
            .add(sample.location_id, sample.value, span_label)?;
    }
    strings.append_to(&mut profile.string_table);

    let mut out = Vec::with_capacity(groups.len());
    let mut groups = groups.into_iter().peekable();
    while let Some((promoted, group)) = groups.next() {
        let mut labels = series_labels.clone();
        for (name, value) in promoted.iter() {
            labels.set(name, value);
        }
        check_label_limits(&labels, limits)?;
        // the last group takes the tables instead of a copy
        let mut p = if groups.peek().is_some() {
            profile.clone()
        } else {
            std::mem::take(&mut profile)
        };
        p.sample = group.samples;
        out.push(SeriesProfile { labels, profile: p });
    }
    Ok(out)
}

/// Applies the series-level label rules (step 2 of the module docs).
pub fn normalize_series_labels(mut labels: Labels) -> Result<Labels, FormatError> {
    labels.retain(|_, value| !value.is_empty());
    labels.set_if_absent(LABEL_SERVICE_NAME, UNKNOWN_SERVICE);
    // default relabel rule: godeltaprof_memory → memory
    if let Some(rest) = labels
        .get(LABEL_NAME)
        .and_then(|name| name.strip_prefix(GODELTAPROF_PREFIX))
        .map(str::to_owned)
    {
        labels.set(LABEL_NAME, rest);
    }
    labels.retain(|name, _| name == LABEL_NAME || !name.starts_with("__"));
    match labels.get(LABEL_NAME) {
        Some(name) if !name.is_empty() => Ok(labels),
        _ => Err(FormatError::InvalidLabel {
            name: LABEL_NAME.to_owned(),
            reason: "missing or empty profile name".to_owned(),
        }),
    }
}

/// Checks a final series label set against the label limits.
pub fn check_label_limits(labels: &Labels, limits: &Limits) -> Result<(), FormatError> {
    if labels.len() > limits.max_label_names {
        return Err(FormatError::LimitExceeded {
            what: "labels in series",
            limit: limits.max_label_names,
            actual: labels.len(),
        });
    }
    for (name, value) in labels.iter() {
        let bad = |reason: String| {
            Err(FormatError::InvalidLabel {
                name: shorten(name),
                reason,
            })
        };
        if name.is_empty() {
            return bad("empty label name".to_owned());
        }
        if name.len() > limits.max_label_name_len {
            return bad(format!(
                "name longer than {} bytes",
                limits.max_label_name_len
            ));
        }
        if value.len() > limits.max_label_value_len {
            return bad(format!(
                "value longer than {} bytes",
                limits.max_label_value_len
            ));
        }
    }
    Ok(())
}

/// Whether `value` is a span id: 16 hex digits (either case).
pub fn is_span_id(value: &str) -> bool {
    value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The span id of a sample, with the string indexes that can be reused.
struct SpanLabel {
    /// The index of the key if it already reads `span_id`.
    key_index: Option<i64>,
    /// The lowercased id.
    value: String,
    /// The index of the value if it was lowercase already.
    value_index: Option<i64>,
}

/// Splits a sample's labels into the labels to promote to the series and
/// the span id to keep on the sample.
fn split_sample_labels(
    profile: &Profile,
    labels: &[Label],
    series_labels: &Labels,
) -> (Labels, Option<SpanLabel>) {
    let mut promoted = Labels::default();
    let mut span = None;
    for l in labels {
        // validated: indexes are in bounds
        let key = pprof::string_or_empty(profile, l.key);
        let value = pprof::string_or_empty(profile, l.str);
        if value.is_empty() || key.is_empty() {
            // numeric labels have no string value
            continue;
        }
        match key {
            SPAN_ID | PROFILE_ID => {
                if span.is_none() && is_span_id(value) {
                    let lower = value.to_ascii_lowercase();
                    span = Some(SpanLabel {
                        key_index: (key == SPAN_ID).then_some(l.key),
                        value_index: (lower == value).then_some(l.str),
                        value: lower,
                    });
                }
            }
            TRACE_ID => {}
            _ if key.starts_with("__") || series_labels.get(key).is_some() => {}
            _ => promoted.set(key, value),
        }
    }
    (promoted, span)
}

/// Keeps the last `max` bytes of every longer string (on a char boundary).
fn truncate_long_strings(strings: &mut [String], max: usize) {
    for s in strings.iter_mut().filter(|s| s.len() > max) {
        let mut start = s.len() - max;
        while !s.is_char_boundary(start) {
            start += 1;
        }
        s.drain(..start);
    }
}

/// One canonical string-table index per span-id string, so that equal
/// ids merge even when the table holds duplicates; strings the table lacks
/// are appended.
struct SpanStrings {
    base_len: usize,
    added: Vec<String>,
    canonical: FxHashMap<String, i64>,
}

impl SpanStrings {
    fn new(base_len: usize) -> Self {
        SpanStrings {
            base_len,
            added: Vec::new(),
            canonical: FxHashMap::default(),
        }
    }

    /// The index to use for `s`; `existing` is an index already holding
    /// `s`, if the caller knows one.
    fn index(&mut self, s: &str, existing: Option<i64>) -> i64 {
        if let Some(&i) = self.canonical.get(s) {
            return i;
        }
        let i = existing.unwrap_or_else(|| {
            self.added.push(s.to_owned());
            (self.base_len + self.added.len() - 1) as i64
        });
        self.canonical.insert(s.to_owned(), i);
        i
    }

    fn append_to(self, table: &mut Vec<String>) {
        debug_assert_eq!(table.len(), self.base_len);
        table.extend(self.added);
    }
}

/// The samples of one output series, merged by (stack, span id).
#[derive(Default)]
struct SampleGroup {
    samples: Vec<Sample>,
    by_key: FxHashMap<(Vec<u64>, Option<i64>), usize>,
}

impl SampleGroup {
    fn add(
        &mut self,
        location_id: Vec<u64>,
        value: Vec<i64>,
        span: Option<Label>,
    ) -> Result<(), FormatError> {
        let key = (location_id, span.as_ref().map(|l| l.str));
        if let Some(&i) = self.by_key.get(&key) {
            let existing = &mut self.samples[i].value;
            for (a, b) in existing.iter_mut().zip(value) {
                *a = a.checked_add(b).ok_or_else(|| {
                    FormatError::InvalidProfile("sum of sample values overflows".to_owned())
                })?;
            }
            return Ok(());
        }
        self.samples.push(Sample {
            location_id: key.0.clone(),
            value,
            label: span.into_iter().collect(),
        });
        self.by_key.insert(key, self.samples.len() - 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pprof::ProfileBuilder;

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn opts() -> NormalizeOptions {
        NormalizeOptions {
            mode: ValidationMode::Push,
            now_ns: NOW,
        }
    }

    fn series(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn cpu_builder() -> ProfileBuilder {
        let mut b = ProfileBuilder::new();
        b.add_sample_type("cpu", "nanoseconds");
        b
    }

    /// (label set, stack root first with span id, value) of every sample.
    fn flatten(out: &[SeriesProfile]) -> Vec<(String, String, Option<String>, i64)> {
        let mut rows = Vec::new();
        for sp in out {
            let p = &sp.profile;
            for s in &p.sample {
                let mut names: Vec<&str> = s
                    .location_id
                    .iter()
                    .rev()
                    .map(|id| {
                        let loc = p.location.iter().find(|l| l.id == *id).unwrap();
                        let f = p
                            .function
                            .iter()
                            .find(|f| f.id == loc.line[0].function_id)
                            .unwrap();
                        p.string_table[f.name as usize].as_str()
                    })
                    .collect();
                if names.is_empty() {
                    names.push("<root>");
                }
                assert!(s.label.len() <= 1);
                let span = s.label.first().map(|l| {
                    assert_eq!(p.string_table[l.key as usize], SPAN_ID);
                    p.string_table[l.str as usize].clone()
                });
                rows.push((sp.labels.to_string(), names.join(";"), span, s.value[0]));
            }
        }
        rows
    }

    #[test]
    fn series_labels_get_defaults_relabels_and_drops() {
        let l = normalize_series_labels(series(&[
            ("__name__", "godeltaprof_memory"),
            ("__delta__", "false"),
            ("__session_id__", "0123456789abcdef"),
            ("__other__", "x"),
            ("empty", ""),
            ("env", "prod"),
        ]))
        .unwrap();
        assert_eq!(
            l.to_string(),
            r#"{__name__="memory", env="prod", service_name="unknown_service"}"#
        );
        for bad in [
            series(&[("service_name", "a")]),
            series(&[("__name__", ""), ("service_name", "a")]),
            series(&[("__name__", "godeltaprof_")]),
        ] {
            let err = normalize_series_labels(bad).unwrap_err();
            assert!(err.to_string().contains("__name__"), "{err}");
        }
    }

    #[test]
    fn splits_by_string_labels_and_keeps_span_ids() {
        let mut b = cpu_builder();
        b.add_sample_with_labels(&["main", "a"], vec![1], &[("pod", "p1")]);
        b.add_sample_with_labels(&["main", "a"], vec![2], &[("pod", "p1")]);
        b.add_sample_with_labels(
            &["main", "b"],
            vec![4],
            &[("pod", "p2"), ("env", "ignored")],
        );
        b.add_sample_with_labels(
            &["main", "a"],
            vec![8],
            &[("profile_id", "00000000000000AB"), ("trace_id", "t")],
        );
        b.add_sample_with_labels(&["main", "a"], vec![16], &[("span_id", "00000000000000ab")]);
        b.add_sample_with_labels(&["main", "a"], vec![32], &[("span_id", "not-a-span")]);
        b.add_sample_with_labels(&["main", "c"], vec![0], &[("pod", "p3")]);
        b.add_sample_with_labels(&["main"], vec![64], &[("__hidden", "x")]);
        let mut p = b.finish();
        // a numeric label is ignored for splitting
        p.sample[0].label.push(Label {
            key: 1,
            num: 42,
            ..Label::default()
        });
        let out = normalize(
            series(&[
                ("__name__", "process_cpu"),
                ("service_name", "svc"),
                ("env", "prod"),
            ]),
            p,
            &Limits::default(),
            opts(),
        )
        .unwrap();
        assert_eq!(out.len(), 3);
        let no_pod = r#"{__name__="process_cpu", env="prod", service_name="svc"}"#;
        let rows = flatten(&out);
        let expect = |labels: &str, stack: &str, span: Option<&str>, v: i64| {
            (
                labels.to_owned(),
                stack.to_owned(),
                span.map(str::to_owned),
                v,
            )
        };
        let with_pod = |pod: &str| {
            format!(r#"{{__name__="process_cpu", env="prod", pod="{pod}", service_name="svc"}}"#)
        };
        assert_eq!(
            rows,
            vec![
                expect(no_pod, "main;a", Some("00000000000000ab"), 24),
                expect(no_pod, "main;a", None, 32),
                expect(no_pod, "main", None, 64),
                expect(&with_pod("p1"), "main;a", None, 3),
                expect(&with_pod("p2"), "main;b", None, 4),
            ]
        );
        for sp in &out {
            assert_eq!(sp.profile.time_nanos, NOW);
            pprof::validate(&sp.profile, ValidationMode::Push, &Limits::default()).unwrap();
        }
    }

    #[test]
    fn truncates_deep_stacks_from_the_leaf_side_and_long_symbols_from_the_front() {
        let mut b = cpu_builder();
        let long = format!("{}tail", "x".repeat(100));
        b.add_sample(&["root", "mid", "leaf1", "leaf2"], vec![1]);
        b.add_sample(&["root", "mid", "other"], vec![2]);
        b.add_sample(&["root", long.as_str()], vec![4]);
        let limits = Limits {
            max_stack_depth: 2,
            max_symbol_len: 10,
            ..Limits::default()
        };
        let mut p = b.finish();
        p.time_nanos = 5;
        let out = normalize(series(&[("__name__", "process_cpu")]), p, &limits, opts()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].profile.time_nanos, 5);
        let rows: Vec<(String, i64)> = flatten(&out)
            .into_iter()
            .map(|(_, stack, _, v)| (stack, v))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("root;mid".to_owned(), 3),
                ("root;xxxxxxtail".to_owned(), 4)
            ]
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut v = vec![String::new(), "ééé".to_owned(), "abc".to_owned()];
        truncate_long_strings(&mut v, 3);
        assert_eq!(v, vec!["", "é", "abc"]);
    }

    #[test]
    fn all_zero_profile_yields_nothing() {
        let mut b = cpu_builder();
        b.add_sample(&["a"], vec![0]);
        let out = normalize(
            series(&[("__name__", "process_cpu")]),
            b.finish(),
            &Limits::default(),
            opts(),
        )
        .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn label_limits_name_the_label() {
        let mut b = cpu_builder();
        b.add_sample_with_labels(&["a"], vec![1], &[("pod", &"v".repeat(50))]);
        let limits = Limits {
            max_label_value_len: 20,
            ..Limits::default()
        };
        let err = normalize(
            series(&[("__name__", "process_cpu")]),
            b.finish(),
            &limits,
            opts(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid label "pod": value longer than 20 bytes"#
        );
        let limits = Limits {
            max_label_names: 2,
            ..Limits::default()
        };
        let err = normalize(
            series(&[("__name__", "process_cpu"), ("a", "1")]),
            cpu_builder().finish(),
            &limits,
            opts(),
        );
        // no samples: nothing to check, nothing returned
        assert!(err.unwrap().is_empty());
        let mut b = cpu_builder();
        b.add_sample(&["a"], vec![1]);
        let err = normalize(
            series(&[("__name__", "process_cpu"), ("a", "1")]),
            b.finish(),
            &limits,
            opts(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("labels in series"), "{err}");
    }
}
