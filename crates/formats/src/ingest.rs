//! The legacy `/ingest` API (`POST /ingest`, `POST /pyroscope/ingest`).
//!
//! The HTTP layer reads the body (bounded), parses a `multipart/form-data`
//! body into [`MultipartPart`]s, and calls [`profiles_from_ingest`] with the
//! parsed query ([`IngestParams::from_query`]). This module picks the body
//! format ([`detect_format`]), converts it to pprof, derives the series
//! labels the way Pyroscope does, and hands every profile to
//! [`normalize`].
//!
//! Formats handled here, all dispatched by the one `match` in
//! [`profiles_from_ingest`]:
//! - pprof, raw or the multipart `profile` part with an optional
//!   `sample_type_config`;
//! - JFR, raw or the multipart `jfr` part with an optional `labels` part
//!   ([`crate::jfr`]);
//! - folded and lines ([`crate::folded`]), speedscope
//!   ([`crate::speedscope`]), and the OG binary trie and tree
//!   ([`crate::legacy_tree`]): stacks of frame names that become one pprof
//!   each through [`profiles_from_legacy_stacks`].

use std::collections::HashMap;

use bytes::Bytes;
use rustc_hash::FxHashMap;
use serde::Deserialize;

use kiln_model::Labels;
use kiln_model::attime::parse_attime;
use kiln_model::labels::{LABEL_APP_NAME, LABEL_NAME, LABEL_PYROSCOPE_SPY, LABEL_SERVICE_NAME};
use kiln_model::tree::StackTree;
use kiln_proto::google::v1::Profile;

use crate::error::shorten;
use crate::folded::{FoldedStack, parse_folded, parse_lines};
use crate::jfr::{JfrOptions, JfrProfile, parse_jfr};
use crate::normalize::{NormalizeOptions, PROFILE_ID, normalize};
use crate::pprof::{self, ProfileBuilder, ValidationMode};
use crate::{FormatError, Limits, SeriesProfile};
use crate::{legacy_tree, speedscope};

/// Default `sampleRate` (Hz) when the parameter is absent or unusable.
pub const DEFAULT_SAMPLE_RATE: u32 = 100;
/// Series label naming the async-profiler event of a JFR recording.
pub const LABEL_JFR_EVENT: &str = "jfr_event";
/// Default `spyName`.
pub const DEFAULT_SPY_NAME: &str = "unknown";

const NS_PER_SEC: i64 = 1_000_000_000;
/// 1971-01-01T00:00:00Z in nanoseconds: `time_nanos` before it is bogus.
const YEAR_1971_NS: i64 = 365 * 86_400 * NS_PER_SEC;

/// The query parameters of an `/ingest` request, parsed and defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestParams {
    /// The app name: the part of `name` before `{`, trimmed.
    pub app_name: String,
    /// The labels inside the braces of `name`, as given (including `__*`).
    pub name_labels: Labels,
    /// Start of the profiling window, ns since the epoch (default: now).
    pub from_ns: i64,
    /// End of the profiling window, ns since the epoch (default: now).
    pub until_ns: i64,
    /// The `format` parameter, if given.
    pub format: Option<String>,
    /// `sampleRate` in Hz: default 100, negative or non-numeric → 100, 0 kept.
    pub sample_rate: u32,
    /// `spyName`, default `unknown`.
    pub spy_name: String,
    /// `units` (OG leftover, not used), default `samples`.
    pub units: String,
    /// `aggregationType` (OG leftover, not used), default `sum`.
    pub aggregation_type: String,
}

impl IngestParams {
    /// Parses the query pairs of a request; the first occurrence of a
    /// parameter wins. `now_ns` is the default of `from`/`until` and the
    /// reference of relative times (`now-1h`).
    pub fn from_query(query: &[(String, String)], now_ns: i64) -> Result<Self, FormatError> {
        let get = |key: &str| {
            query
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let name = get("name").unwrap_or("");
        let (app_name, name_labels) = parse_app_name(name)?;
        let time = |key: &'static str| -> Result<i64, FormatError> {
            match get(key) {
                None | Some("") => Ok(now_ns),
                Some(v) => parse_attime(v, now_ns).map_err(|e| FormatError::InvalidParam {
                    name: key,
                    reason: e.to_string(),
                }),
            }
        };
        let from_ns = time("from")?;
        let until_ns = time("until")?;
        let sample_rate = get("sampleRate")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(DEFAULT_SAMPLE_RATE);
        let non_empty_or = |key: &str, default: &str| match get(key) {
            Some(v) if !v.is_empty() => v.to_owned(),
            _ => default.to_owned(),
        };
        Ok(IngestParams {
            app_name,
            name_labels,
            from_ns,
            until_ns,
            format: get("format").filter(|f| !f.is_empty()).map(str::to_owned),
            sample_rate,
            spy_name: non_empty_or("spyName", DEFAULT_SPY_NAME),
            units: non_empty_or("units", "samples"),
            aggregation_type: non_empty_or("aggregationType", "sum"),
        })
    }

    /// The series labels every format starts from: the brace labels except
    /// `__*` names, `pyroscope_spy`, and `app_name` as `service_name`, or as
    /// `app_name` when the braces set `service_name` themselves. Converters
    /// add `__name__` (and their own labels) and pass the result to
    /// [`normalize`].
    pub fn base_labels(&self, app_name: &str) -> Labels {
        let mut labels = self.name_labels.clone();
        labels.retain(|name, _| !name.starts_with("__"));
        if labels.get(LABEL_SERVICE_NAME).is_some() {
            labels.set(LABEL_APP_NAME, app_name);
        } else {
            labels.set(LABEL_SERVICE_NAME, app_name);
        }
        labels.set(LABEL_PYROSCOPE_SPY, self.spy_name.as_str());
        labels
    }
}

/// Splits `name` (`app{k=v,...}`) into the app name and the brace labels.
///
/// The app name is everything before the first `{`, trimmed, non-empty,
/// made of `[A-Za-z0-9_.\-/]`. Inside the braces, pairs are separated by
/// `,`, keys and values by the first `=`, both trimmed; keys are made of
/// `[A-Za-z0-9_.]`; values are free text (no quoting). Text after the
/// closing `}` is ignored.
pub fn parse_app_name(name: &str) -> Result<(String, Labels), FormatError> {
    let invalid = |reason: String| FormatError::InvalidName {
        name: shorten(name),
        reason,
    };
    let (app, rest) = match name.find('{') {
        Some(i) => (&name[..i], Some(&name[i + 1..])),
        None => (name, None),
    };
    let app = app.trim();
    if app.is_empty() {
        return Err(invalid("app name is empty".to_owned()));
    }
    if let Some(c) = app
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
    {
        return Err(invalid(format!(
            "character {c:?} is not allowed in an app name"
        )));
    }
    let mut labels = Labels::default();
    if let Some(rest) = rest {
        let Some(end) = rest.find('}') else {
            return Err(invalid("missing closing '}'".to_owned()));
        };
        for pair in rest[..end].split(',') {
            if pair.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = pair.split_once('=') else {
                return Err(invalid(format!(
                    "label {:?} has no '='",
                    shorten(pair.trim())
                )));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(invalid("empty label name".to_owned()));
            }
            if let Some(c) = key
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.')))
            {
                return Err(invalid(format!(
                    "character {c:?} is not allowed in label name {:?}",
                    shorten(key)
                )));
            }
            labels.set(key, value.trim());
        }
    }
    Ok((app.to_owned(), labels))
}

/// An `/ingest` request body, as the HTTP layer hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestBody {
    /// The body bytes as received.
    Raw(Bytes),
    /// A parsed `multipart/form-data` body.
    Multipart(Vec<MultipartPart>),
}

impl IngestBody {
    /// Total payload bytes (the sum of the parts' data for multipart).
    pub fn len(&self) -> usize {
        match self {
            IngestBody::Raw(b) => b.len(),
            IngestBody::Multipart(parts) => parts.iter().map(|p| p.data.len()).sum(),
        }
    }

    /// Whether there is no payload at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartPart {
    /// The form field name (`profile`, `sample_type_config`, `jfr`, ...).
    pub name: String,
    /// The file name; only file parts (with a file name) are looked at.
    pub filename: Option<String>,
    /// The part's own content type, if any.
    pub content_type: Option<String>,
    /// The part's content.
    pub data: Bytes,
}

/// The body formats `/ingest` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestFormat {
    /// `root;leaf count` lines (the default).
    Folded,
    /// `root;leaf` lines, each counting 1.
    Lines,
    /// pprof, raw or as the `profile` part of a multipart form.
    Pprof,
    /// Java Flight Recorder, raw or as the `jfr` part of a multipart form.
    Jfr,
    /// speedscope JSON.
    Speedscope,
    /// OG binary "transport trie".
    Trie,
    /// OG binary tree.
    Tree,
}

impl IngestFormat {
    /// The `format` parameter value naming this format.
    pub fn as_str(self) -> &'static str {
        match self {
            IngestFormat::Folded => "folded",
            IngestFormat::Lines => "lines",
            IngestFormat::Pprof => "pprof",
            IngestFormat::Jfr => "jfr",
            IngestFormat::Speedscope => "speedscope",
            IngestFormat::Trie => "trie",
            IngestFormat::Tree => "tree",
        }
    }
}

/// Whether a `Content-Type` header announces a multipart form body (the
/// HTTP layer then parses it into [`IngestBody::Multipart`]).
pub fn is_multipart_content_type(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("multipart/form-data"))
}

/// Picks the body format from the `format` parameter and the content type,
/// first match wins: trie, tree, lines, jfr, pprof, speedscope by
/// parameter (trie and tree also by content type
/// `binary/octet-stream+trie|+tree`), then pprof for any multipart body,
/// else folded (also for unknown `format` values).
pub fn detect_format(format: Option<&str>, content_type: Option<&str>) -> IngestFormat {
    let format = format.unwrap_or("").trim();
    let is = |f: &str| format.eq_ignore_ascii_case(f);
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if is("trie") || media_type == "binary/octet-stream+trie" {
        IngestFormat::Trie
    } else if is("tree") || media_type == "binary/octet-stream+tree" {
        IngestFormat::Tree
    } else if is("lines") {
        IngestFormat::Lines
    } else if is("jfr") {
        IngestFormat::Jfr
    } else if is("pprof") {
        IngestFormat::Pprof
    } else if is("speedscope") {
        IngestFormat::Speedscope
    } else if is_multipart_content_type(content_type) {
        IngestFormat::Pprof
    } else {
        IngestFormat::Folded
    }
}

/// Turns one `/ingest` request into normalised profiles.
///
/// A body larger than `limits.max_body_bytes` fails with
/// [`FormatError::TooLarge`]. An empty pprof (or a form without a
/// `profile` part), or a text upload whose labels carry a non-empty
/// `profile_id`, yields no profiles.
pub fn profiles_from_ingest(
    params: &IngestParams,
    content_type: Option<&str>,
    body: IngestBody,
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SeriesProfile>, FormatError> {
    if body.len() > limits.max_body_bytes {
        return Err(FormatError::TooLarge {
            limit: limits.max_body_bytes,
            what: "request body",
        });
    }
    let format = detect_format(params.format.as_deref(), content_type);
    match format {
        IngestFormat::Pprof => profiles_from_pprof_upload(params, body, limits, now_ns),
        IngestFormat::Folded => {
            let text = raw_body(body, format)?;
            let stacks = parse_folded(&text, limits.max_samples)?;
            profiles_from_legacy_stacks(params, &stacks, limits, now_ns)
        }
        IngestFormat::Lines => {
            let text = raw_body(body, format)?;
            let stacks = parse_lines(&text, limits.max_samples)?;
            profiles_from_legacy_stacks(params, &stacks, limits, now_ns)
        }
        IngestFormat::Jfr => profiles_from_jfr_upload(params, body, limits, now_ns),
        IngestFormat::Speedscope => {
            let json = raw_body(body, format)?;
            speedscope::profiles_from_speedscope(params, &json, limits, now_ns)
        }
        IngestFormat::Trie => {
            let bytes = raw_body(body, format)?;
            let tree = legacy_tree::parse_trie(&bytes, limits)?;
            profiles_from_legacy_tree(params, &tree, limits, now_ns)
        }
        IngestFormat::Tree => {
            let bytes = raw_body(body, format)?;
            let tree = legacy_tree::parse_tree(&bytes, limits)?;
            profiles_from_legacy_tree(params, &tree, limits, now_ns)
        }
    }
}

/// Converts a JFR upload: the raw body, or the `jfr` file part (required)
/// and `labels` file part (optional) of a form. Each profile of the
/// recording becomes a series labelled like [`IngestParams::base_labels`]
/// plus `jfr_event` and `__name__` (see [`crate::jfr`]); its per-sample
/// context labels are promoted to series labels by `normalize`, span ids
/// stay on the samples.
fn profiles_from_jfr_upload(
    params: &IngestParams,
    body: IngestBody,
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SeriesProfile>, FormatError> {
    let (recording, labels_snapshot) = match body {
        IngestBody::Raw(b) => (b, None),
        IngestBody::Multipart(parts) => jfr_form_parts(parts)?,
    };
    let options = JfrOptions {
        sample_rate: i64::from(params.sample_rate),
        from_ns: params.from_ns,
        until_ns: params.until_ns,
        max_decompressed_bytes: limits.max_jfr_bytes,
    };
    let converted =
        parse_jfr(&recording, labels_snapshot.as_deref(), &options).map_err(FormatError::Jfr)?;
    drop(recording);
    let mut out = Vec::new();
    for JfrProfile {
        metric,
        jfr_event,
        profile,
    } in converted
    {
        let mut labels = params.base_labels(&params.app_name);
        labels.set(LABEL_JFR_EVENT, jfr_event);
        labels.set(LABEL_NAME, metric);
        out.extend(normalize(
            labels,
            profile,
            limits,
            NormalizeOptions {
                mode: ValidationMode::Ingest,
                now_ns,
            },
        )?);
    }
    Ok(out)
}

/// Picks the `jfr` (required) and `labels` (optional, ignored when empty)
/// file parts of a JFR form.
fn jfr_form_parts(parts: Vec<MultipartPart>) -> Result<(Bytes, Option<Bytes>), FormatError> {
    let mut recording = None;
    let mut labels = None;
    for part in parts.into_iter().filter(|p| p.filename.is_some()) {
        match part.name.as_str() {
            "jfr" => recording = Some(part.data),
            "labels" if !part.data.is_empty() => labels = Some(part.data),
            _ => {}
        }
    }
    let recording = recording.ok_or_else(|| {
        FormatError::Multipart("a JFR upload needs a \"jfr\" file part".to_owned())
    })?;
    Ok((recording, labels))
}

fn raw_body(body: IngestBody, format: IngestFormat) -> Result<Bytes, FormatError> {
    match body {
        IngestBody::Raw(b) => Ok(b),
        IngestBody::Multipart(_) => Err(FormatError::Multipart(format!(
            "format {} expects a raw body, not a multipart form",
            format.as_str()
        ))),
    }
}

/// The `sample_type_config` of a multipart pprof upload, keyed by sample
/// type name. Only `display-name` has an effect.
pub type SampleTypeConfig = HashMap<String, SampleTypeConfigEntry>;

/// One entry of a [`SampleTypeConfig`]; unknown keys are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SampleTypeConfigEntry {
    /// OG unit name (unused).
    #[serde(default)]
    pub units: Option<String>,
    /// The name that steers the `__name__` choice.
    #[serde(default, rename = "display-name")]
    pub display_name: Option<String>,
    /// `sum` or `average` (unused).
    #[serde(default)]
    pub aggregation: Option<String>,
    /// OG cumulative flag (unused).
    #[serde(default)]
    pub cumulative: Option<bool>,
    /// OG sampled flag (unused).
    #[serde(default)]
    pub sampled: Option<bool>,
}

/// Parses a `sample_type_config` JSON document.
pub fn parse_sample_type_config(json: &[u8]) -> Result<SampleTypeConfig, FormatError> {
    serde_json::from_slice(json).map_err(FormatError::SampleTypeConfig)
}

/// Built-in display names used when no `sample_type_config` is sent.
fn default_display_name(sample_type: &str) -> Option<&'static str> {
    match sample_type {
        "samples" => Some("cpu"),
        "goroutine" => Some("goroutines"),
        "contentions" => Some("mutex_count"),
        "delay" => Some("mutex_duration"),
        _ => None,
    }
}

/// Derives `__name__` for a pprof upload from its sample type names.
///
/// A sample type literally named `wall` gives `wall`. Otherwise each sample
/// type, in order, is replaced by its display name (from `config` if one
/// was sent, which replaces the built-in defaults entirely) and the first
/// match wins: contains `cpu` → `process_cpu`; contains `alloc_` or
/// `inuse_`, or is `space` or `objects` → `memory`; contains `mutex_` →
/// `mutex`; contains `block_` → `block`; contains `goroutines` →
/// `goroutines`. Without a match the last display name is used.
pub fn profile_name_from_sample_types(
    sample_types: &[&str],
    config: Option<&SampleTypeConfig>,
) -> String {
    if sample_types.contains(&"wall") {
        return "wall".to_owned();
    }
    let mut last = "";
    for &st in sample_types {
        let display = match config {
            Some(config) => config
                .get(st)
                .or_else(|| config.get(&st.replace('_', "-")))
                .and_then(|e| e.display_name.as_deref())
                .unwrap_or(st),
            None => default_display_name(st).unwrap_or(st),
        };
        if display.contains("cpu") {
            return "process_cpu".to_owned();
        }
        if display.contains("alloc_")
            || display.contains("inuse_")
            || display == "space"
            || display == "objects"
        {
            return "memory".to_owned();
        }
        if display.contains("mutex_") {
            return "mutex".to_owned();
        }
        if display.contains("block_") {
            return "block".to_owned();
        }
        if display.contains("goroutines") {
            return "goroutines".to_owned();
        }
        last = display;
    }
    last.to_owned()
}

fn profiles_from_pprof_upload(
    params: &IngestParams,
    body: IngestBody,
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SeriesProfile>, FormatError> {
    let (bytes, config) = match body {
        IngestBody::Raw(b) => (b, None),
        IngestBody::Multipart(parts) => pprof_form_parts(parts)?,
    };
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut profile = pprof::decode(&bytes, limits)?;
    drop(bytes);

    let is_dotnet = params.spy_name == "dotnetspy"
        || (params.spy_name == DEFAULT_SPY_NAME
            && pprof::sample_type_names(&profile)
                .iter()
                .any(|(t, _)| *t == "inuse-space"));
    let original_types: Vec<String> = pprof::sample_type_names(&profile)
        .into_iter()
        .map(|(t, _)| t.to_owned())
        .collect();
    if is_dotnet {
        fix_dotnet_function_ids(&mut profile);
        replace_dashes_in_sample_types(&mut profile);
    }
    let type_refs: Vec<&str> = original_types.iter().map(String::as_str).collect();
    let name = profile_name_from_sample_types(&type_refs, config.as_ref());

    if profile.time_nanos < YEAR_1971_NS {
        profile.time_nanos = params.from_ns;
    }
    if matches!(params.spy_name.as_str(), "pyspy" | "rbspy" | "scripting") {
        prefix_function_names_with_files(&mut profile, params.spy_name == "pyspy");
    }

    let mut labels = params.base_labels(&params.app_name);
    labels.set(LABEL_NAME, name);
    normalize(
        labels,
        profile,
        limits,
        NormalizeOptions {
            mode: ValidationMode::Ingest,
            now_ns,
        },
    )
}

/// Picks the `profile` and `sample_type_config` file parts of a pprof form
/// (a missing `profile` reads as empty); a non-empty `prev_profile` is
/// refused.
fn pprof_form_parts(
    parts: Vec<MultipartPart>,
) -> Result<(Bytes, Option<SampleTypeConfig>), FormatError> {
    let mut profile = None;
    let mut config = None;
    for part in parts.into_iter().filter(|p| p.filename.is_some()) {
        match part.name.as_str() {
            "profile" => profile = Some(part.data),
            "prev_profile" if !part.data.is_empty() => {
                return Err(FormatError::Multipart(
                    "unsupported client version: prev_profile is no longer accepted".to_owned(),
                ));
            }
            "sample_type_config" => config = Some(parse_sample_type_config(&part.data)?),
            _ => {}
        }
    }
    // Like Pyroscope, a form without a profile is an empty upload.
    Ok((profile.unwrap_or_default(), config))
}

/// Old pyroscope-dotnet writes every `Function.id` as 0 with one function
/// per location: give each function the id of its location.
fn fix_dotnet_function_ids(profile: &mut Profile) {
    if profile.function.iter().any(|f| f.id != 0)
        || profile.function.len() != profile.location.len()
    {
        return;
    }
    for (f, loc) in profile.function.iter_mut().zip(&profile.location) {
        f.id = loc.id;
    }
}

/// Replaces `-` by `_` in sample type names (old pyroscope-dotnet).
fn replace_dashes_in_sample_types(profile: &mut Profile) {
    let mut added: FxHashMap<String, i64> = FxHashMap::default();
    for i in 0..profile.sample_type.len() {
        let Some(name) = pprof::string_at(profile, profile.sample_type[i].r#type) else {
            continue;
        };
        if !name.contains('-') {
            continue;
        }
        let fixed = name.replace('-', "_");
        let index = match added.get(&fixed) {
            Some(&index) => index,
            None => {
                let index = profile.string_table.len() as i64;
                profile.string_table.push(fixed.clone());
                added.insert(fixed, index);
                index
            }
        };
        profile.sample_type[i].r#type = index;
    }
}

/// Renames every function to `"<filename> <name>"` (py-spy, rbspy and other
/// scripting agents). Functions without a file name keep their name; with
/// `skip_absolute`, so do functions whose file name starts with `/`.
fn prefix_function_names_with_files(profile: &mut Profile, skip_absolute: bool) {
    let mut added: FxHashMap<String, i64> = FxHashMap::default();
    for i in 0..profile.function.len() {
        let f = &profile.function[i];
        let (Some(name), Some(filename)) = (
            pprof::string_at(profile, f.name),
            pprof::string_at(profile, f.filename),
        ) else {
            continue;
        };
        if filename.is_empty() || (skip_absolute && filename.starts_with('/')) {
            continue;
        }
        let renamed = format!("{filename} {name}");
        let index = match added.get(&renamed) {
            Some(&index) => index,
            None => {
                let index = profile.string_table.len() as i64;
                profile.string_table.push(renamed.clone());
                added.insert(renamed, index);
                index
            }
        };
        profile.function[i].name = index;
    }
}

/// How an OG profile kind's values are scaled by the sample rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateScaling {
    /// Not scaled.
    None,
    /// CPU samples: scaled to `cpu/nanoseconds`.
    Cpu,
    /// Wall samples: scaled to `wall/nanoseconds`.
    Wall,
}

/// What an OG profile kind (the last dot-separated part of a legacy app
/// name) means in the pprof model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LegacyKind<'a> {
    name: &'static str,
    sample_type: &'a str,
    sample_unit: &'static str,
    scaling: RateScaling,
}

fn legacy_kind(kind: &str) -> Option<LegacyKind<'_>> {
    let k = |name, sample_type, sample_unit, scaling| {
        Some(LegacyKind {
            name,
            sample_type,
            sample_unit,
            scaling,
        })
    };
    match kind {
        "cpu" | "itimer" => k("process_cpu", "samples", "count", RateScaling::Cpu),
        "wall" | "seconds" | "nanoseconds" | "microseconds" | "milliseconds" => {
            k("wall", "samples", "count", RateScaling::Wall)
        }
        "inuse_objects"
        | "alloc_objects"
        | "alloc_in_new_tlab_objects"
        | "alloc_outside_tlab_objects" => k("memory", kind, "count", RateScaling::None),
        "inuse_space" | "alloc_space" | "alloc_in_new_tlab_bytes" | "alloc_outside_tlab_bytes" => {
            k("memory", kind, "bytes", RateScaling::None)
        }
        "goroutines" => k("goroutine", "goroutines", "count", RateScaling::None),
        "mutex_count" => k("mutex", "contentions", "count", RateScaling::None),
        "mutex_duration" => k("mutex", "delay", "nanoseconds", RateScaling::None),
        "block_count" | "lock_count" => k("block", "contentions", "count", RateScaling::None),
        "block_duration" | "lock_duration" => k("block", "delay", "nanoseconds", RateScaling::None),
        "live" => k("memory", "live", "count", RateScaling::None),
        "exceptions" => k("exceptions", "samples", "count", RateScaling::None),
        "bytes" => k("memory", "samples", "bytes", RateScaling::None),
        _ => None,
    }
}

/// Converts the stacks of a legacy text upload (folded, lines) into
/// normalised profiles.
///
/// The last dot-separated part of the app name is the OG profile kind
/// (`myapp.cpu` → app `myapp`, kind `cpu`; no dot → kind `cpu`); an unknown
/// kind fails. The profile has one sample type; CPU and wall kinds are
/// scaled to nanoseconds by `1e9 / sampleRate` unless `sampleRate` is 0.
/// Labels carrying a non-empty `profile_id` yield no profiles.
pub fn profiles_from_legacy_stacks(
    params: &IngestParams,
    stacks: &[FoldedStack],
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SeriesProfile>, FormatError> {
    let mut profile = LegacyProfile::new(params, LegacyUpload::of(params), limits)?;
    for (frames, count) in stacks {
        profile.add_stack(frames, *count)?;
    }
    profile.finish(now_ns)
}

/// [`profiles_from_legacy_stacks`] for stacks held in a tree (the trie and
/// tree bodies): one sample per node with a non-zero self value.
pub fn profiles_from_legacy_tree(
    params: &IngestParams,
    tree: &StackTree,
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SeriesProfile>, FormatError> {
    let mut profile = LegacyProfile::new(params, LegacyUpload::of(params), limits)?;
    let mut failure = None;
    tree.for_each_stack(|frames, value| {
        if failure.is_none()
            && let Err(e) = profile.add_stack(frames, value)
        {
            failure = Some(e);
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    profile.finish(now_ns)
}

/// What a converter may override of an `/ingest` request when it builds a
/// [`LegacyProfile`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct LegacyUpload<'a> {
    /// The app name whose last dot-separated part is the profile kind.
    pub(crate) app_name: &'a str,
    /// The sampling rate in Hz (0: values are not scaled).
    pub(crate) sample_rate: u32,
    /// Series labels added after the base labels.
    pub(crate) extra_labels: &'a [(&'a str, &'a str)],
}

impl<'a> LegacyUpload<'a> {
    /// The request's own app name and rate, no extra labels.
    pub(crate) fn of(params: &'a IngestParams) -> Self {
        LegacyUpload {
            app_name: &params.app_name,
            sample_rate: params.sample_rate,
            extra_labels: &[],
        }
    }
}

/// The pprof of one legacy upload, built stack by stack (see
/// [`profiles_from_legacy_stacks`] for the rules).
///
/// Bounded while it is built: more than `max_samples` stacks fail, and
/// only the `max_stack_depth` root-side frames of a stack are kept (what
/// `normalize` would keep), so a tree whose few bytes describe millions of
/// frames cannot make it large.
pub(crate) struct LegacyProfile<'a> {
    builder: ProfileBuilder,
    labels: Labels,
    period: i64,
    limits: &'a Limits,
    stacks: usize,
    /// The upload carries a `profile_id`: everything is dropped.
    dropped: bool,
}

impl<'a> LegacyProfile<'a> {
    /// Starts the profile of an upload; fails on an unknown kind suffix.
    pub(crate) fn new(
        params: &IngestParams,
        upload: LegacyUpload<'_>,
        limits: &'a Limits,
    ) -> Result<Self, FormatError> {
        let (app, kind_name) = upload
            .app_name
            .rsplit_once('.')
            .unwrap_or((upload.app_name, "cpu"));
        let kind = legacy_kind(kind_name)
            .ok_or_else(|| FormatError::UnknownProfileKind(shorten(kind_name)))?;
        let dropped = params
            .name_labels
            .get(PROFILE_ID)
            .is_some_and(|v| !v.is_empty());

        let mut builder = ProfileBuilder::new();
        let scaled =
            matches!(kind.scaling, RateScaling::Cpu | RateScaling::Wall) && upload.sample_rate != 0;
        let period = if scaled {
            NS_PER_SEC / i64::from(upload.sample_rate)
        } else {
            1
        };
        if scaled {
            let sample_type = if kind.scaling == RateScaling::Cpu {
                "cpu"
            } else {
                "wall"
            };
            builder
                .add_sample_type(sample_type, "nanoseconds")
                .set_period("cpu", "nanoseconds", period);
        } else {
            builder.add_sample_type(kind.sample_type, kind.sample_unit);
        }
        builder.set_time(
            params.from_ns,
            params.until_ns.saturating_sub(params.from_ns).max(0),
        );

        let mut labels = params.base_labels(app);
        for (name, value) in upload.extra_labels {
            labels.set(*name, *value);
        }
        labels.set(LABEL_NAME, kind.name);
        Ok(LegacyProfile {
            builder,
            labels,
            period,
            limits,
            stacks: 0,
            dropped,
        })
    }

    /// Adds one stack (frame names, root first) counted `count` times.
    pub(crate) fn add_stack<S: AsRef<str>>(
        &mut self,
        frames: &[S],
        count: i64,
    ) -> Result<(), FormatError> {
        if self.dropped || count == 0 {
            return Ok(());
        }
        if self.stacks >= self.limits.max_samples {
            return Err(FormatError::LimitExceeded {
                what: "stacks in profile",
                limit: self.limits.max_samples,
                actual: self.stacks + 1,
            });
        }
        let period = self.period;
        let value = count.checked_mul(period).ok_or_else(|| {
            FormatError::InvalidProfile(format!("value {count} times period {period} overflows"))
        })?;
        let depth = frames.len().min(self.limits.max_stack_depth);
        self.builder.add_sample(&frames[..depth], vec![value]);
        self.stacks += 1;
        Ok(())
    }

    /// Normalises the profile (nothing if the upload carried a
    /// `profile_id`).
    pub(crate) fn finish(self, now_ns: i64) -> Result<Vec<SeriesProfile>, FormatError> {
        if self.dropped {
            return Ok(Vec::new());
        }
        normalize(
            self.labels,
            self.builder.finish(),
            self.limits,
            NormalizeOptions {
                mode: ValidationMode::Ingest,
                now_ns,
            },
        )
    }
}
