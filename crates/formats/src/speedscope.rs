//! speedscope JSON bodies (`/ingest?format=speedscope`), as exported by
//! speedscope itself, py-spy (`--format speedscope`), rbspy and others.
//!
//! The file must name the schema
//! `https://www.speedscope.app/file-format-schema.json` in `$schema`. Frame
//! names come from `shared.frames[].name`; other frame fields are ignored.
//! Each entry of `profiles` is either
//! - `sampled`: `samples[i]` lists frame indexes root first and counts
//!   `weights[i]` (the two arrays must have the same length, weights must be
//!   finite and not negative); or
//! - `evented`: `O` (open) and `C` (close) events with a time `at` and a
//!   frame index, in time order starting at `startValue`; the time between
//!   two events is counted for the stack open in between, and a close must
//!   name the innermost open frame. Frames still open at the end count
//!   nothing more.
//!
//! # Values, units and series
//!
//! This follows Pyroscope's converter:
//! - profiles with the same `name`, `type`, `unit` and `startValue` are
//!   merged (their samples, weights and events concatenated), then ordered
//!   by `startValue`;
//! - values are kept as integers after multiplying by a precision factor
//!   of 100 for the time units (`seconds`, `milliseconds`,
//!   `microseconds`, `nanoseconds`) and `none`, and 1 for `bytes`; each
//!   weight or time difference is multiplied and then truncated;
//! - when `sampleRate` is 100 (the default), it is replaced by a rate
//!   derived from the unit so that CPU and wall values end up in
//!   nanoseconds: `seconds` 100, `milliseconds` 1e5, `microseconds` 1e8,
//!   `none` 1e4 (one unit = one 10 ms sample), `bytes` 0 (not scaled);
//! - when the file holds more than one profile (after merging), each
//!   profile's app name is `<app name>.<unit>`, so that its unit picks the
//!   OG profile kind (`seconds` etc. → `wall`, `bytes` → `memory`; `none`
//!   is not a kind and fails); a single profile keeps the app name (kind
//!   `cpu` unless the name has a suffix);
//! - every profile gets the series label `profile_name=<profile name>`;
//! - the stacks then go through the folded path
//!   ([`LegacyProfile`](crate::ingest)): kind suffix table, rate scaling,
//!   `normalize`.
//!
//! Deviations, on purpose: Pyroscope applies the precision factor only to
//! the time counted when a frame closes, not to the time a parent frame
//! accumulates before a child opens, and truncates before multiplying; here
//! both are multiplied and the truncation comes last. For `nanoseconds`
//! with the default rate, Pyroscope's rate (100·10⁹) overflows its 32-bit
//! field and its period rounds to 0; here the factor is 1 and the rate 10⁹
//! (a period of 1 ns), which gives exact nanoseconds.
//!
//! # Bounds
//!
//! The body (gzip sniffed) may be at most `limits.max_profile_bytes`,
//! checked before it is parsed; parsing is into typed structures (no
//! generic JSON tree) with serde_json's nesting limit; frame indexes are
//! checked; the number of distinct stacks per profile is bounded by
//! `limits.max_samples`.

use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::compress::decompress_bounded;
use crate::ingest::{DEFAULT_SAMPLE_RATE, IngestParams, LegacyProfile, LegacyUpload};
use crate::{FormatError, Limits, SeriesProfile};

/// The `$schema` every speedscope file names.
pub const SPEEDSCOPE_SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";
/// The series label carrying the speedscope profile name.
pub const LABEL_PROFILE_NAME: &str = "profile_name";

/// Precision factor of time units and `none`.
const TIME_PRECISION: f64 = 100.0;

#[derive(Debug, Deserialize)]
struct File {
    #[serde(rename = "$schema")]
    schema: String,
    #[serde(default)]
    shared: Shared,
    #[serde(default)]
    profiles: Vec<Profile>,
}

#[derive(Debug, Default, Deserialize)]
struct Shared {
    #[serde(default)]
    frames: Vec<Frame>,
}

#[derive(Debug, Deserialize)]
struct Frame {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Profile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
    unit: String,
    #[serde(rename = "startValue", default)]
    start_value: f64,
    #[serde(default)]
    events: Vec<Event>,
    #[serde(default)]
    samples: Vec<Vec<i64>>,
    #[serde(default)]
    weights: Vec<f64>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    at: f64,
    frame: f64,
}

/// A speedscope value unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    None,
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Bytes,
}

impl Unit {
    fn parse(unit: &str) -> Result<Self, FormatError> {
        Ok(match unit {
            "none" => Unit::None,
            "nanoseconds" => Unit::Nanoseconds,
            "microseconds" => Unit::Microseconds,
            "milliseconds" => Unit::Milliseconds,
            "seconds" => Unit::Seconds,
            "bytes" => Unit::Bytes,
            _ => {
                return Err(FormatError::Speedscope(format!(
                    "unknown unit {:?}",
                    crate::error::shorten(unit)
                )));
            }
        })
    }

    /// (precision factor, sample rate) given the request's sample rate.
    fn scaling(self, requested_rate: u32) -> (f64, u32) {
        let default = requested_rate == DEFAULT_SAMPLE_RATE;
        match (self, default) {
            (Unit::Bytes, true) => (1.0, 0),
            (Unit::Bytes, false) => (1.0, requested_rate),
            (_, false) => (TIME_PRECISION, requested_rate),
            (Unit::Nanoseconds, true) => (1.0, 1_000_000_000),
            (Unit::Microseconds, true) => (TIME_PRECISION, 100_000_000),
            (Unit::Milliseconds, true) => (TIME_PRECISION, 100_000),
            (Unit::Seconds, true) => (TIME_PRECISION, 100),
            (Unit::None, true) => (TIME_PRECISION, 10_000),
        }
    }
}

/// Converts a speedscope body into normalised profiles (see the module
/// docs).
pub fn profiles_from_speedscope(
    params: &IngestParams,
    body: &[u8],
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SeriesProfile>, FormatError> {
    let json = decompress_bounded(body, limits.max_profile_bytes, "speedscope body")?;
    let file: File = serde_json::from_slice(&json).map_err(FormatError::SpeedscopeJson)?;
    drop(json);
    if file.schema != SPEEDSCOPE_SCHEMA {
        return Err(FormatError::Speedscope(format!(
            "$schema is {:?}, expected {SPEEDSCOPE_SCHEMA:?}",
            crate::error::shorten(&file.schema)
        )));
    }
    let frames: Vec<&str> = file.shared.frames.iter().map(|f| f.name.as_str()).collect();
    let profiles = merge_identical_profiles(file.profiles);
    let several = profiles.len() > 1;

    let mut out = Vec::new();
    for profile in &profiles {
        let unit = Unit::parse(&profile.unit)?;
        let (factor, sample_rate) = unit.scaling(params.sample_rate);
        let stacks = match profile.kind.as_str() {
            "sampled" => sampled_stacks(profile, frames.len(), factor)?,
            "evented" => evented_stacks(profile, frames.len(), factor)?,
            other => {
                return Err(FormatError::Speedscope(format!(
                    "profile {:?} has unsupported type {:?} (expected \"sampled\" or \"evented\")",
                    crate::error::shorten(&profile.name),
                    crate::error::shorten(other)
                )));
            }
        };
        let app_name = if several {
            format!("{}.{}", params.app_name, profile.unit)
        } else {
            params.app_name.clone()
        };
        let extra_labels = [(LABEL_PROFILE_NAME, profile.name.as_str())];
        let upload = LegacyUpload {
            app_name: &app_name,
            sample_rate,
            extra_labels: &extra_labels,
        };
        let mut converted = LegacyProfile::new(params, upload, limits)?;
        for (stack, value) in stacks.into_ordered() {
            let names: Vec<&str> = stack.iter().map(|&i| frames[i]).collect();
            converted.add_stack(&names, value)?;
        }
        out.extend(converted.finish(now_ns)?);
    }
    Ok(out)
}

/// Merges profiles with equal name, type, unit and start value, then
/// orders them by start value (stable).
fn merge_identical_profiles(profiles: Vec<Profile>) -> Vec<Profile> {
    let mut merged: Vec<Profile> = Vec::new();
    let mut index: FxHashMap<(String, String, String, u64), usize> = FxHashMap::default();
    for p in profiles {
        let key = (
            p.name.clone(),
            p.kind.clone(),
            p.unit.clone(),
            p.start_value.to_bits(),
        );
        match index.get(&key) {
            Some(&i) => {
                let target = &mut merged[i];
                target.samples.extend(p.samples);
                target.weights.extend(p.weights);
                target.events.extend(p.events);
            }
            None => {
                index.insert(key, merged.len());
                merged.push(p);
            }
        }
    }
    merged.sort_by(|a, b| a.start_value.total_cmp(&b.start_value));
    merged
}

/// Distinct stacks (frame indexes, root first) with summed values, in
/// order of first appearance.
#[derive(Default)]
struct Stacks {
    index: FxHashMap<Vec<usize>, usize>,
    values: Vec<(Vec<usize>, i64)>,
}

impl Stacks {
    fn add(&mut self, stack: &[usize], value: i64) -> Result<(), FormatError> {
        if let Some(&i) = self.index.get(stack) {
            let total = &mut self.values[i].1;
            *total = total.checked_add(value).ok_or_else(|| {
                FormatError::Speedscope("sum of values overflows a 64-bit integer".to_owned())
            })?;
            return Ok(());
        }
        self.index.insert(stack.to_vec(), self.values.len());
        self.values.push((stack.to_vec(), value));
        Ok(())
    }

    fn into_ordered(self) -> Vec<(Vec<usize>, i64)> {
        self.values
    }
}

/// `amount × factor`, truncated; `what` names the amount for errors.
fn scaled(amount: f64, factor: f64, what: &str) -> Result<i64, FormatError> {
    let value = amount * factor;
    if !value.is_finite() || value < 0.0 || value >= i64::MAX as f64 {
        return Err(FormatError::Speedscope(format!(
            "{what} {amount} is negative, not finite or too large"
        )));
    }
    Ok(value as i64)
}

fn frame_index(raw: f64, frames: usize, where_: &str) -> Result<usize, FormatError> {
    if raw.fract() == 0.0 && raw >= 0.0 && raw < frames as f64 {
        return Ok(raw as usize);
    }
    Err(FormatError::Speedscope(format!(
        "{where_} refers to frame {raw}, but there are {frames} frames"
    )))
}

fn sampled_stacks(profile: &Profile, frames: usize, factor: f64) -> Result<Stacks, FormatError> {
    if profile.samples.len() != profile.weights.len() {
        return Err(FormatError::Speedscope(format!(
            "profile {:?} has {} samples but {} weights",
            crate::error::shorten(&profile.name),
            profile.samples.len(),
            profile.weights.len()
        )));
    }
    let mut stacks = Stacks::default();
    let mut stack: Vec<usize> = Vec::new();
    for (i, (sample, &weight)) in profile.samples.iter().zip(&profile.weights).enumerate() {
        stack.clear();
        for &frame in sample {
            stack.push(frame_index(frame as f64, frames, &format!("sample {i}"))?);
        }
        let value = scaled(weight, factor, &format!("weight of sample {i}"))?;
        if value != 0 {
            stacks.add(&stack, value)?;
        }
    }
    Ok(stacks)
}

fn evented_stacks(profile: &Profile, frames: usize, factor: f64) -> Result<Stacks, FormatError> {
    let mut stacks = Stacks::default();
    let mut open: Vec<usize> = Vec::new();
    let mut last = profile.start_value;
    for (i, event) in profile.events.iter().enumerate() {
        if event.at.is_nan() || event.at < last {
            return Err(FormatError::Speedscope(format!(
                "event {i} at {} comes before the previous time {last}",
                event.at
            )));
        }
        let frame = frame_index(event.frame, frames, &format!("event {i}"))?;
        if !open.is_empty() {
            let value = scaled(event.at - last, factor, &format!("time before event {i}"))?;
            if value != 0 {
                stacks.add(&open, value)?;
            }
        }
        match event.kind.as_str() {
            "O" => open.push(frame),
            "C" => {
                if open.last() != Some(&frame) {
                    return Err(FormatError::Speedscope(format!(
                        "event {i} closes frame {frame}, which is not the innermost open frame"
                    )));
                }
                open.pop();
            }
            other => {
                return Err(FormatError::Speedscope(format!(
                    "event {i} has unknown type {:?} (expected \"O\" or \"C\")",
                    crate::error::shorten(other)
                )));
            }
        }
        last = event.at;
    }
    Ok(stacks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn params(name: &str, rate: Option<&str>) -> IngestParams {
        let mut q = vec![("name".to_owned(), name.to_owned())];
        if let Some(rate) = rate {
            q.push(("sampleRate".to_owned(), rate.to_owned()));
        }
        IngestParams::from_query(&q, NOW).unwrap()
    }

    fn convert(json: &str) -> Result<Vec<SeriesProfile>, FormatError> {
        profiles_from_speedscope(
            &params("app", None),
            json.as_bytes(),
            &Limits::default(),
            NOW,
        )
    }

    fn doc(profiles: &str) -> String {
        format!(
            r#"{{"$schema":"{SPEEDSCOPE_SCHEMA}","shared":{{"frames":[{{"name":"a"}},{{"name":"b"}}]}},"profiles":[{profiles}]}}"#
        )
    }

    fn total(out: &[SeriesProfile]) -> i64 {
        out.iter()
            .flat_map(|sp| sp.profile.sample.iter())
            .map(|s| s.value[0])
            .sum()
    }

    #[test]
    fn evented_time_counts_for_the_open_stack_with_the_factor() {
        // a open 0..10, b open 2..5 inside it: a gets 2 + 5, a;b gets 3.
        let json = doc(
            r#"{"type":"evented","name":"p","unit":"milliseconds","startValue":0,"events":[
                {"type":"O","at":0,"frame":0},{"type":"O","at":2,"frame":1},
                {"type":"C","at":5,"frame":1},{"type":"C","at":10,"frame":0}]}"#,
        );
        let out = convert(&json).unwrap();
        assert_eq!(out.len(), 1);
        // 10 ms × 100 × period (1e9 / 1e5) = 10 ms in ns
        assert_eq!(total(&out), 10_000_000);
        assert_eq!(out[0].labels.get("profile_name"), Some("p"));
        assert_eq!(out[0].labels.get("__name__"), Some("process_cpu"));
    }

    #[test]
    fn nanoseconds_with_the_default_rate_are_exact() {
        let json = doc(
            r#"{"type":"sampled","name":"p","unit":"nanoseconds","samples":[[0,1]],"weights":[1234]}"#,
        );
        assert_eq!(total(&convert(&json).unwrap()), 1234);
        // an explicit rate keeps the factor 100: 1234 × 100 × 1e9/50
        let out = profiles_from_speedscope(
            &params("app", Some("50")),
            json.as_bytes(),
            &Limits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(total(&out), 1234 * 100 * 20_000_000);
    }

    #[test]
    fn problems_are_named() {
        let cases = [
            (r#"{"profiles":[]}"#.to_owned(), "$schema"),
            (
                r#"{"$schema":"https://example.com","profiles":[]}"#.to_owned(),
                "expected \"https://www.speedscope.app",
            ),
            (
                doc(r#"{"type":"sampled","unit":"seconds","samples":[[0]],"weights":[]}"#),
                "1 samples but 0 weights",
            ),
            (
                doc(r#"{"type":"sampled","unit":"seconds","samples":[[7]],"weights":[1]}"#),
                "refers to frame 7, but there are 2 frames",
            ),
            (
                doc(r#"{"type":"sampled","unit":"seconds","samples":[[-1]],"weights":[1]}"#),
                "refers to frame -1",
            ),
            (
                doc(r#"{"type":"sampled","unit":"seconds","samples":[[0]],"weights":[-1]}"#),
                "negative",
            ),
            (
                doc(r#"{"type":"sampled","unit":"seconds","samples":[[0]],"weights":[1e300]}"#),
                "too large",
            ),
            (
                doc(r#"{"type":"sampled","unit":"parsecs","samples":[],"weights":[]}"#),
                "unknown unit \"parsecs\"",
            ),
            (
                doc(r#"{"type":"flame","unit":"seconds"}"#),
                "unsupported type \"flame\"",
            ),
            (
                doc(
                    r#"{"type":"evented","unit":"seconds","events":[{"type":"O","at":5,"frame":0},{"type":"C","at":1,"frame":0}]}"#,
                ),
                "comes before",
            ),
            (
                doc(
                    r#"{"type":"evented","unit":"seconds","events":[{"type":"O","at":0,"frame":0},{"type":"C","at":1,"frame":1}]}"#,
                ),
                "not the innermost open frame",
            ),
            (
                doc(
                    r#"{"type":"evented","unit":"seconds","events":[{"type":"X","at":0,"frame":0}]}"#,
                ),
                "unknown type \"X\"",
            ),
            ("[".repeat(10_000), "parse speedscope JSON"),
        ];
        for (json, needle) in cases {
            let err = convert(&json).unwrap_err();
            assert!(
                err.to_string().contains(needle),
                "{err} does not contain {needle:?}"
            );
            assert_eq!(
                kiln_model::HasErrorCode::code(&err),
                kiln_model::ErrorCode::InvalidArgument
            );
        }
    }

    #[test]
    fn size_is_checked_before_parsing() {
        let limits = Limits {
            max_profile_bytes: 10,
            ..Limits::default()
        };
        let err = profiles_from_speedscope(&params("app", None), doc("").as_bytes(), &limits, NOW)
            .unwrap_err();
        assert!(
            matches!(err, FormatError::TooLarge { limit: 10, .. }),
            "{err}"
        );
    }

    #[test]
    fn truncated_and_random_input_never_panics() {
        let json = doc(r#"{"type":"evented","name":"p","unit":"none","events":[
                {"type":"O","at":0,"frame":0},{"type":"O","at":2,"frame":1},
                {"type":"C","at":5,"frame":1},{"type":"C","at":10,"frame":0}]},
               {"type":"sampled","name":"q","unit":"seconds","samples":[[0,1],[1]],"weights":[3,4]}"#);
        assert!(
            convert(&json).is_err(),
            "with two profiles the unit is the kind, and none is no kind"
        );
        let json = json.replace("\"none\"", "\"seconds\"");
        assert_eq!(convert(&json).unwrap().len(), 2);
        for cut in 0..json.len() {
            let _ = convert(&json[..cut]);
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2_000 {
            let mut bytes = json.clone().into_bytes();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state % bytes.len() as u64) as usize;
            bytes[at] = (state >> 32) as u8;
            let _ = profiles_from_speedscope(&params("app", None), &bytes, &Limits::default(), NOW);
        }
    }
}
