//! OTLP profiles (protocol 1.8, `v1development`) → normalised profiles:
//! the body of `POST /v1development/profiles` and of the gRPC method
//! `opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export`,
//! as sent by the OpenTelemetry eBPF profiler, the collector and
//! pyroscope-java's `format=otlp`.
//!
//! Entry points: [`profiles_from_otlp`] for protobuf bytes (gzip sniffed)
//! and [`profiles_from_otlp_request`] for a request decoded elsewhere
//! (gRPC, or JSON through `kiln_proto::json`).
//!
//! # Mapping (Pyroscope's, see the deviations below)
//!
//! Every `Profile` of every scope of every resource becomes one pprof
//! (split further by the samples' `service.name` attribute, see below):
//! - sample type `samples/count` with period type `cpu/nanoseconds`: sample
//!   type `cpu/nanoseconds`, values multiplied by the period, `__name__`
//!   `process_cpu`;
//! - sample type `off_cpu/nanoseconds` without period: `__name__` `off_cpu`;
//! - anything else: the sample type as is, `__name__` the period type name,
//!   or the sample type name without a period type.
//!
//! A sample's values are summed into one value (OTLP 1.8 records one
//! value per event); a sample with timestamps but no values counts one per
//! timestamp; a sample with neither is an error. Stacks, locations,
//! mappings, functions and lines are copied; a mapping's build id is its
//! `process.executable.build_id.gnu` attribute; OTLP's null mapping (index
//! 0) becomes "no mapping".
//!
//! Series labels: `__name__`; the string-valued resource attributes, then
//! the string-valued scope attributes (the first occurrence of a key wins);
//! and `service_name`: the resource's `service.name`, or
//! `unknown_service:<process.executable.name>`, or `unknown_service`.
//! Samples carrying a `service.name` attribute go to a separate profile
//! with that service name. Other string-valued sample attributes become
//! pprof sample labels, which `normalize` promotes to series labels; a
//! sample's link becomes the sample labels `span_id` (hex) and `trace_id`.
//! Every profile is then normalised with the Push rules.
//!
//! Deviations, on purpose: Pyroscope names a non-CPU profile without a
//! period type `""` (which then fails), here it takes the sample type name;
//! Pyroscope multiplies only the first value of a CPU sample by the period
//! and keeps several values per sample (failing later), here values are
//! summed first; Pyroscope puts a 10 s duration on profiles without one,
//! here it stays 0.
//!
//! # Bounds
//!
//! The body is at most `limits.max_body_bytes` after decompression, checked
//! before decoding; every table index is checked; a profile may have at
//! most `limits.max_samples` samples, checked before its stacks are
//! expanded, only the `limits.max_stack_depth` root-side locations of a
//! stack are copied, and all samples of a request together may expand to
//! at most `max_samples × max_stack_depth` locations (16 million with the
//! defaults), so a small request cannot expand into huge pprofs.

use std::collections::BTreeMap;

use prost::Message;
use rustc_hash::FxHashMap;

use kiln_model::Labels;
use kiln_model::labels::{LABEL_NAME, LABEL_SERVICE_NAME, UNKNOWN_SERVICE};
use kiln_proto::google::v1 as pprof_proto;
use kiln_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest;
use kiln_proto::opentelemetry::proto::common::v1::{AnyValue, KeyValue, any_value};
use kiln_proto::opentelemetry::proto::profiles::v1development as otlp;

use crate::compress::decompress_bounded;
use crate::normalize::{NormalizeOptions, SPAN_ID, TRACE_ID, normalize};
use crate::pprof::ValidationMode;
use crate::{FormatError, Limits, SeriesProfile};

/// The resource or sample attribute naming the service.
pub const ATTRIBUTE_SERVICE_NAME: &str = "service.name";
/// The resource attribute naming the executable, used when there is no
/// service name.
pub const ATTRIBUTE_EXECUTABLE_NAME: &str = "process.executable.name";
/// The mapping attribute holding the GNU build id.
pub const ATTRIBUTE_GNU_BUILD_ID: &str = "process.executable.build_id.gnu";

/// Decodes an `ExportProfilesServiceRequest` (gzip sniffed, at most
/// `limits.max_body_bytes` decompressed) and converts it with
/// [`profiles_from_otlp_request`].
pub fn profiles_from_otlp(
    body: &[u8],
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SeriesProfile>, FormatError> {
    let raw = decompress_bounded(body, limits.max_body_bytes, "OTLP profiles request")?;
    let request =
        ExportProfilesServiceRequest::decode(raw.as_ref()).map_err(FormatError::DecodeOtlp)?;
    drop(raw);
    profiles_from_otlp_request(&request, limits, now_ns)
}

/// Converts every profile of a decoded request (see the module docs). A
/// request without profiles yields nothing.
pub fn profiles_from_otlp_request(
    request: &ExportProfilesServiceRequest,
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SeriesProfile>, FormatError> {
    if request
        .resource_profiles
        .iter()
        .all(|rp| rp.scope_profiles.iter().all(|sp| sp.profiles.is_empty()))
    {
        return Ok(Vec::new());
    }
    let dictionary = Dictionary(request.dictionary.as_ref().ok_or_else(|| {
        FormatError::InvalidOtlp("the request has profiles but no dictionary".to_owned())
    })?);
    let mut frame_budget = FrameBudget::for_request(limits);
    let mut out = Vec::new();
    for (r, resource_profiles) in request.resource_profiles.iter().enumerate() {
        let resource_attributes = resource_profiles
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        let service_name = service_name_of(resource_attributes);
        for (s, scope_profiles) in resource_profiles.scope_profiles.iter().enumerate() {
            let scope_attributes = scope_profiles
                .scope
                .as_ref()
                .map_or(&[][..], |s| s.attributes.as_slice());
            for (p, profile) in scope_profiles.profiles.iter().enumerate() {
                let at = |e: FormatError| match e {
                    FormatError::InvalidOtlp(reason) => FormatError::InvalidOtlp(format!(
                        "resource {r}, scope {s}, profile {p}: {reason}"
                    )),
                    other => other,
                };
                let converted =
                    convert_profile(profile, &dictionary, limits, &mut frame_budget).map_err(at)?;
                for (sample_service, pprof) in converted.by_service {
                    let mut labels = Labels::default();
                    labels.set(LABEL_NAME, converted.name.as_str());
                    for kv in resource_attributes.iter().chain(scope_attributes) {
                        if let Some(value) = string_value(kv.value.as_ref())
                            && labels.get(&kv.key).is_none()
                        {
                            labels.set(kv.key.as_str(), value);
                        }
                    }
                    labels.set(
                        LABEL_SERVICE_NAME,
                        sample_service.unwrap_or_else(|| service_name.clone()),
                    );
                    out.extend(normalize(
                        labels,
                        pprof,
                        limits,
                        NormalizeOptions {
                            mode: ValidationMode::Push,
                            now_ns,
                        },
                    )?);
                }
            }
        }
    }
    Ok(out)
}

/// The non-empty string held by an attribute value, if any.
fn string_value(value: Option<&AnyValue>) -> Option<&str> {
    match value?.value.as_ref()? {
        any_value::Value::StringValue(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// `service.name`, else `unknown_service:<executable>`, else
/// `unknown_service`.
fn service_name_of(attributes: &[KeyValue]) -> String {
    let find = |key: &str| {
        attributes
            .iter()
            .filter(|kv| kv.key == key)
            .find_map(|kv| string_value(kv.value.as_ref()))
    };
    if let Some(name) = find(ATTRIBUTE_SERVICE_NAME) {
        return name.to_owned();
    }
    match find(ATTRIBUTE_EXECUTABLE_NAME) {
        Some(executable) => format!("{UNKNOWN_SERVICE}:{executable}"),
        None => UNKNOWN_SERVICE.to_owned(),
    }
}

/// Checked access to the request's tables; errors name the table and index.
struct Dictionary<'a>(&'a otlp::ProfilesDictionary);

fn lookup<'t, T>(table: &'t [T], index: i32, what: &str) -> Result<&'t T, FormatError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .ok_or_else(|| {
            FormatError::InvalidOtlp(format!(
                "{what} index {index} out of bounds (table has {} entries)",
                table.len()
            ))
        })
}

impl Dictionary<'_> {
    fn string(&self, index: i32, what: &str) -> Result<&str, FormatError> {
        lookup(&self.0.string_table, index, &format!("{what} string")).map(String::as_str)
    }

    /// The key and string value (`None` for other value types) of an
    /// attribute.
    fn attribute(&self, index: i32) -> Result<(&str, Option<&str>), FormatError> {
        let attribute = lookup(&self.0.attribute_table, index, "attribute")?;
        let key = self.string(attribute.key_strindex, "attribute key")?;
        Ok((key, string_value(attribute.value.as_ref())))
    }
}

/// How a profile's values are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    /// Sample counts turned into CPU nanoseconds by the period.
    CpuSamples { period: i64 },
    /// Values kept (summed per sample).
    Plain,
}

/// One converted profile: its `__name__` and one pprof per sample-level
/// service name (`None`: the resource's service).
struct ConvertedProfile {
    name: String,
    by_service: BTreeMap<Option<String>, pprof_proto::Profile>,
}

/// How many stack frames (location references) the samples of one request
/// may expand to in total: `max_samples × max_stack_depth`, what a single
/// profile at both limits would hold.
struct FrameBudget {
    limit: usize,
    used: usize,
}

impl FrameBudget {
    fn for_request(limits: &Limits) -> Self {
        FrameBudget {
            limit: limits.max_samples.saturating_mul(limits.max_stack_depth),
            used: 0,
        }
    }

    fn spend(&mut self, frames: usize) -> Result<(), FormatError> {
        self.used = self.used.saturating_add(frames);
        if self.used > self.limit {
            return Err(FormatError::LimitExceeded {
                what: "stack frames in the request",
                limit: self.limit,
                actual: self.used,
            });
        }
        Ok(())
    }
}

fn convert_profile(
    profile: &otlp::Profile,
    dictionary: &Dictionary<'_>,
    limits: &Limits,
    frame_budget: &mut FrameBudget,
) -> Result<ConvertedProfile, FormatError> {
    if profile.samples.len() > limits.max_samples {
        return Err(FormatError::LimitExceeded {
            what: "samples in profile",
            limit: limits.max_samples,
            actual: profile.samples.len(),
        });
    }
    let sample_type = profile
        .sample_type
        .as_ref()
        .ok_or_else(|| FormatError::InvalidOtlp("no sample type".to_owned()))?;
    let type_name = dictionary.string(sample_type.type_strindex, "sample type")?;
    let unit = dictionary.string(sample_type.unit_strindex, "sample unit")?;
    let (period_type, period_unit) = match &profile.period_type {
        Some(pt) => (
            dictionary.string(pt.type_strindex, "period type")?,
            dictionary.string(pt.unit_strindex, "period unit")?,
        ),
        None => ("", ""),
    };
    let has_period = profile.period_type.is_some() && profile.period != 0;
    let (shown_period_type, shown_period_unit) = if has_period {
        (period_type, period_unit)
    } else {
        ("", "")
    };

    let mut builder = PprofBuilder::new(dictionary, limits);
    let (name, value_kind, out_type, out_unit) =
        match (type_name, unit, shown_period_type, shown_period_unit) {
            ("samples", "count", "cpu", "nanoseconds") => (
                "process_cpu",
                ValueKind::CpuSamples {
                    period: profile.period,
                },
                "cpu",
                "nanoseconds",
            ),
            ("off_cpu", "nanoseconds", "", "") => {
                ("off_cpu", ValueKind::Plain, "off_cpu", "nanoseconds")
            }
            _ if !shown_period_type.is_empty() => {
                (shown_period_type, ValueKind::Plain, type_name, unit)
            }
            _ => (type_name, ValueKind::Plain, type_name, unit),
        };
    if name.is_empty() {
        return Err(FormatError::InvalidOtlp(
            "the sample type has an empty name".to_owned(),
        ));
    }
    let sample_type = pprof_proto::ValueType {
        r#type: builder.string(out_type),
        unit: builder.string(out_unit),
    };
    builder.profile.sample_type = vec![sample_type];
    if profile.period_type.is_some() {
        builder.profile.period_type = Some(pprof_proto::ValueType {
            r#type: builder.string(period_type),
            unit: builder.string(period_unit),
        });
    }
    builder.profile.period = profile.period;
    builder.profile.time_nanos = i64::try_from(profile.time_unix_nano).map_err(|_| {
        FormatError::InvalidOtlp(format!("time {} is too large", profile.time_unix_nano))
    })?;
    builder.profile.duration_nanos = i64::try_from(profile.duration_nano).map_err(|_| {
        FormatError::InvalidOtlp(format!("duration {} is too large", profile.duration_nano))
    })?;

    let mut services: Vec<Option<String>> = Vec::with_capacity(profile.samples.len());
    for (i, sample) in profile.samples.iter().enumerate() {
        let service = builder
            .add_sample(sample, value_kind, frame_budget)
            .map_err(|e| prefix_sample(e, i))?;
        services.push(service);
    }

    let mut pprof = builder.profile;
    let mut by_service = BTreeMap::new();
    let distinct: std::collections::BTreeSet<&Option<String>> = services.iter().collect();
    if distinct.len() <= 1 {
        by_service.insert(services.first().cloned().flatten(), pprof);
    } else {
        let samples = std::mem::take(&mut pprof.sample);
        for (service, sample) in services.into_iter().zip(samples) {
            by_service
                .entry(service)
                .or_insert_with(|| pprof_proto::Profile {
                    sample: Vec::new(),
                    ..pprof.clone()
                })
                .sample
                .push(sample);
        }
    }
    Ok(ConvertedProfile {
        name: name.to_owned(),
        by_service,
    })
}

fn prefix_sample(e: FormatError, index: usize) -> FormatError {
    match e {
        FormatError::InvalidOtlp(reason) => {
            FormatError::InvalidOtlp(format!("sample {index}: {reason}"))
        }
        other => other,
    }
}

/// Builds the pprof of one OTLP profile, converting each referenced
/// table entry once.
struct PprofBuilder<'d, 'a> {
    dictionary: &'d Dictionary<'a>,
    limits: &'d Limits,
    profile: pprof_proto::Profile,
    strings: FxHashMap<String, i64>,
    /// OTLP index → pprof id.
    locations: FxHashMap<i32, u64>,
    functions: FxHashMap<i32, u64>,
    mappings: FxHashMap<i32, u64>,
}

impl<'d, 'a> PprofBuilder<'d, 'a> {
    fn new(dictionary: &'d Dictionary<'a>, limits: &'d Limits) -> Self {
        let mut strings = FxHashMap::default();
        strings.insert(String::new(), 0);
        PprofBuilder {
            dictionary,
            limits,
            profile: pprof_proto::Profile {
                string_table: vec![String::new()],
                ..pprof_proto::Profile::default()
            },
            strings,
            locations: FxHashMap::default(),
            functions: FxHashMap::default(),
            mappings: FxHashMap::default(),
        }
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    /// Adds a sample; returns its `service.name` attribute, if any.
    fn add_sample(
        &mut self,
        sample: &otlp::Sample,
        kind: ValueKind,
        frame_budget: &mut FrameBudget,
    ) -> Result<Option<String>, FormatError> {
        let mut value: i64 = if sample.values.is_empty() {
            if sample.timestamps_unix_nano.is_empty() {
                return Err(FormatError::InvalidOtlp(
                    "neither values nor timestamps".to_owned(),
                ));
            }
            i64::try_from(sample.timestamps_unix_nano.len()).unwrap_or(i64::MAX)
        } else {
            let mut sum: i64 = 0;
            for &v in &sample.values {
                sum = sum.checked_add(v).ok_or_else(|| {
                    FormatError::InvalidOtlp("sum of values overflows".to_owned())
                })?;
            }
            sum
        };
        if let ValueKind::CpuSamples { period } = kind {
            value = value.checked_mul(period).ok_or_else(|| {
                FormatError::InvalidOtlp(format!("{value} samples times period {period} overflows"))
            })?;
        }

        let dictionary = self.dictionary;
        let mut service = None;
        let mut labels = Vec::new();
        for &index in &sample.attribute_indices {
            let (key, value) = dictionary.attribute(index)?;
            let Some(value) = value else { continue };
            if key == ATTRIBUTE_SERVICE_NAME {
                service = Some(value.to_owned());
                continue;
            }
            labels.push(pprof_proto::Label {
                key: self.string(key),
                str: self.string(value),
                ..pprof_proto::Label::default()
            });
        }
        if sample.link_index != 0 {
            let link = lookup(&dictionary.0.link_table, sample.link_index, "link")?;
            if !link.span_id.is_empty() {
                let span = hex(&link.span_id);
                labels.push(pprof_proto::Label {
                    key: self.string(SPAN_ID),
                    str: self.string(&span),
                    ..pprof_proto::Label::default()
                });
            }
            if link.trace_id.len() == 16 {
                let trace = hex(&link.trace_id);
                labels.push(pprof_proto::Label {
                    key: self.string(TRACE_ID),
                    str: self.string(&trace),
                    ..pprof_proto::Label::default()
                });
            }
        }

        let stack = lookup(&dictionary.0.stack_table, sample.stack_index, "stack")?;
        // Leaf first: the root-side locations are at the end.
        let keep = stack
            .location_indices
            .len()
            .min(self.limits.max_stack_depth);
        let root_side = &stack.location_indices[stack.location_indices.len() - keep..];
        frame_budget.spend(root_side.len())?;
        let mut location_id = Vec::with_capacity(root_side.len());
        for &index in root_side {
            location_id.push(self.location(index)?);
        }
        self.profile.sample.push(pprof_proto::Sample {
            location_id,
            value: vec![value],
            label: labels,
        });
        Ok(service)
    }

    fn location(&mut self, index: i32) -> Result<u64, FormatError> {
        if let Some(&id) = self.locations.get(&index) {
            return Ok(id);
        }
        let dictionary = self.dictionary;
        let location = lookup(&dictionary.0.location_table, index, "location")?;
        let mapping_id = self.mapping(location.mapping_index)?;
        let mut lines = Vec::with_capacity(location.lines.len());
        for line in &location.lines {
            lines.push(pprof_proto::Line {
                function_id: self.function(line.function_index)?,
                line: line.line,
            });
        }
        let id = self.profile.location.len() as u64 + 1;
        self.profile.location.push(pprof_proto::Location {
            id,
            mapping_id,
            address: location.address,
            line: lines,
            is_folded: false,
        });
        self.locations.insert(index, id);
        Ok(id)
    }

    fn function(&mut self, index: i32) -> Result<u64, FormatError> {
        if let Some(&id) = self.functions.get(&index) {
            return Ok(id);
        }
        let dictionary = self.dictionary;
        let function = lookup(&dictionary.0.function_table, index, "function")?;
        let name = self.string(dictionary.string(function.name_strindex, "function name")?);
        let system_name =
            self.string(dictionary.string(function.system_name_strindex, "function system name")?);
        let filename =
            self.string(dictionary.string(function.filename_strindex, "function file name")?);
        let id = self.profile.function.len() as u64 + 1;
        self.profile.function.push(pprof_proto::Function {
            id,
            name,
            system_name,
            filename,
            start_line: function.start_line,
        });
        self.functions.insert(index, id);
        Ok(id)
    }

    /// The pprof mapping of an OTLP mapping index; 0 (the null mapping)
    /// is "no mapping".
    fn mapping(&mut self, index: i32) -> Result<u64, FormatError> {
        if index == 0 {
            return Ok(0);
        }
        if let Some(&id) = self.mappings.get(&index) {
            return Ok(id);
        }
        let dictionary = self.dictionary;
        let mapping = lookup(&dictionary.0.mapping_table, index, "mapping")?;
        let filename = self.string(dictionary.string(mapping.filename_strindex, "mapping file")?);
        let mut build_id = "";
        for &attribute in &mapping.attribute_indices {
            if let (ATTRIBUTE_GNU_BUILD_ID, Some(value)) = dictionary.attribute(attribute)? {
                build_id = value;
            }
        }
        let build_id = self.string(build_id);
        let id = self.profile.mapping.len() as u64 + 1;
        self.profile.mapping.push(pprof_proto::Mapping {
            id,
            memory_start: mapping.memory_start,
            memory_limit: mapping.memory_limit,
            file_offset: mapping.file_offset,
            filename,
            build_id,
            ..pprof_proto::Mapping::default()
        });
        self.mappings.insert(index, id);
        Ok(id)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use kiln_proto::opentelemetry::proto::common::v1::InstrumentationScope;
    use kiln_proto::opentelemetry::proto::resource::v1::Resource;

    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_owned())),
            }),
        }
    }

    /// A dictionary with strings, two functions (main, work) in one
    /// mapping, a stack main→work, and attributes.
    fn dictionary() -> otlp::ProfilesDictionary {
        let strings = [
            "",
            "samples",
            "count",
            "cpu",
            "nanoseconds",
            "main",
            "work",
            "/bin/app",
            "off_cpu",
            "thread.name",
            "t1",
            "service.name",
            "other-svc",
            "process.executable.build_id.gnu",
            "abc123",
            "wall",
            "thread.id",
        ];
        let attribute = |key: i32, value: any_value::Value| otlp::KeyValueAndUnit {
            key_strindex: key,
            value: Some(AnyValue { value: Some(value) }),
            unit_strindex: 0,
        };
        otlp::ProfilesDictionary {
            string_table: strings.iter().map(|s| (*s).to_owned()).collect(),
            mapping_table: vec![
                otlp::Mapping::default(),
                otlp::Mapping {
                    memory_limit: 4096,
                    filename_strindex: 7,
                    attribute_indices: vec![3],
                    ..otlp::Mapping::default()
                },
            ],
            function_table: vec![
                otlp::Function::default(),
                otlp::Function {
                    name_strindex: 5,
                    ..otlp::Function::default()
                },
                otlp::Function {
                    name_strindex: 6,
                    ..otlp::Function::default()
                },
            ],
            location_table: vec![
                otlp::Location::default(),
                otlp::Location {
                    mapping_index: 1,
                    address: 0x10,
                    lines: vec![otlp::Line {
                        function_index: 1,
                        line: 3,
                        column: 0,
                    }],
                    ..otlp::Location::default()
                },
                otlp::Location {
                    mapping_index: 1,
                    address: 0x20,
                    lines: vec![otlp::Line {
                        function_index: 2,
                        line: 7,
                        column: 0,
                    }],
                    ..otlp::Location::default()
                },
            ],
            // leaf first: work, main
            stack_table: vec![
                otlp::Stack::default(),
                otlp::Stack {
                    location_indices: vec![2, 1],
                },
            ],
            attribute_table: vec![
                otlp::KeyValueAndUnit::default(),
                attribute(9, any_value::Value::StringValue("t1".to_owned())),
                attribute(11, any_value::Value::StringValue("other-svc".to_owned())),
                attribute(13, any_value::Value::StringValue("abc123".to_owned())),
                attribute(16, any_value::Value::IntValue(42)),
            ],
            link_table: vec![
                otlp::Link::default(),
                otlp::Link {
                    trace_id: vec![0xaa; 16],
                    span_id: vec![0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08],
                },
            ],
        }
    }

    fn value_type(t: i32, u: i32) -> Option<otlp::ValueType> {
        Some(otlp::ValueType {
            type_strindex: t,
            unit_strindex: u,
        })
    }

    fn sample(values: Vec<i64>, attributes: Vec<i32>) -> otlp::Sample {
        otlp::Sample {
            stack_index: 1,
            attribute_indices: attributes,
            values,
            ..otlp::Sample::default()
        }
    }

    fn request(
        profiles: Vec<otlp::Profile>,
        resource: Vec<KeyValue>,
    ) -> ExportProfilesServiceRequest {
        ExportProfilesServiceRequest {
            resource_profiles: vec![otlp::ResourceProfiles {
                resource: Some(Resource {
                    attributes: resource,
                    dropped_attributes_count: 0,
                }),
                scope_profiles: vec![otlp::ScopeProfiles {
                    scope: Some(InstrumentationScope {
                        attributes: vec![kv("scope.attr", "s"), kv("service_name", "ignored")],
                        ..InstrumentationScope::default()
                    }),
                    profiles,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
            dictionary: Some(dictionary()),
        }
    }

    fn cpu_profile(samples: Vec<otlp::Sample>) -> otlp::Profile {
        otlp::Profile {
            sample_type: value_type(1, 2),
            period_type: value_type(3, 4),
            period: 10_000_000,
            time_unix_nano: 42,
            samples,
            ..otlp::Profile::default()
        }
    }

    fn convert(req: &ExportProfilesServiceRequest) -> Result<Vec<SeriesProfile>, FormatError> {
        profiles_from_otlp_request(req, &Limits::default(), NOW)
    }

    /// (series labels, stack root first, value, sample labels) of a sample.
    type Row = (String, String, i64, Vec<(String, String)>);

    fn rows(out: &[SeriesProfile]) -> Vec<Row> {
        let mut rows = Vec::new();
        for sp in out {
            let p = &sp.profile;
            for s in &p.sample {
                let stack: Vec<&str> = s
                    .location_id
                    .iter()
                    .rev()
                    .map(|id| {
                        let l = &p.location[(*id - 1) as usize];
                        let f = &p.function[(l.line[0].function_id - 1) as usize];
                        p.string_table[f.name as usize].as_str()
                    })
                    .collect();
                let labels = s
                    .label
                    .iter()
                    .map(|l| {
                        (
                            p.string_table[l.key as usize].clone(),
                            p.string_table[l.str as usize].clone(),
                        )
                    })
                    .collect();
                rows.push((sp.labels.to_string(), stack.join(";"), s.value[0], labels));
            }
        }
        rows
    }

    #[test]
    fn cpu_samples_become_nanoseconds_with_resource_and_scope_labels() {
        let req = request(
            vec![cpu_profile(vec![
                sample(vec![2, 1], vec![1, 4]),
                otlp::Sample {
                    timestamps_unix_nano: vec![1, 2, 3, 4],
                    link_index: 1,
                    ..sample(vec![], vec![])
                },
            ])],
            vec![kv("service.name", "svc"), kv("host.name", "h1")],
        );
        let out = convert(&req).unwrap();
        assert_eq!(
            rows(&out),
            vec![
                (
                    r#"{__name__="process_cpu", host.name="h1", scope.attr="s", service.name="svc", service_name="svc"}"#
                        .to_owned(),
                    "main;work".to_owned(),
                    40_000_000,
                    vec![("span_id".to_owned(), "0102030405060708".to_owned())],
                ),
                (
                    r#"{__name__="process_cpu", host.name="h1", scope.attr="s", service.name="svc", service_name="svc", thread.name="t1"}"#
                        .to_owned(),
                    "main;work".to_owned(),
                    30_000_000,
                    vec![],
                ),
            ]
        );
        let p = &out[0].profile;
        assert_eq!(
            crate::pprof::sample_type_names(p),
            vec![("cpu", "nanoseconds")]
        );
        assert_eq!(p.time_nanos, 42);
        assert_eq!(p.mapping.len(), 1);
        assert_eq!(p.string_table[p.mapping[0].build_id as usize], "abc123");
        assert_eq!(p.string_table[p.mapping[0].filename as usize], "/bin/app");
    }

    #[test]
    fn off_cpu_and_other_types_and_sample_services() {
        let off_cpu = otlp::Profile {
            sample_type: value_type(8, 4),
            samples: vec![sample(vec![5, 6, 7], vec![]), sample(vec![100], vec![2])],
            ..otlp::Profile::default()
        };
        let wall = otlp::Profile {
            sample_type: value_type(15, 4),
            samples: vec![sample(vec![9], vec![])],
            ..otlp::Profile::default()
        };
        let req = request(
            vec![off_cpu, wall],
            vec![kv("process.executable.name", "app")],
        );
        let out = convert(&req).unwrap();
        let summary: Vec<(String, String, i64)> = out
            .iter()
            .map(|sp| {
                (
                    sp.labels.get("__name__").unwrap().to_owned(),
                    sp.labels.get("service_name").unwrap().to_owned(),
                    sp.profile.sample[0].value[0],
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("off_cpu".to_owned(), "unknown_service:app".to_owned(), 18),
                ("off_cpu".to_owned(), "other-svc".to_owned(), 100),
                ("wall".to_owned(), "unknown_service:app".to_owned(), 9),
            ]
        );
        // no request content at all
        assert!(
            convert(&ExportProfilesServiceRequest::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_indexes_and_missing_parts_are_named() {
        let base = || request(vec![cpu_profile(vec![sample(vec![1], vec![])])], vec![]);
        type Mutation = Box<dyn Fn(&mut ExportProfilesServiceRequest)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|r| {
                    r.dictionary.as_mut().unwrap().stack_table[1].location_indices[0] = 99
                }),
                "location index 99 out of bounds",
            ),
            (
                Box::new(|r| {
                    r.dictionary.as_mut().unwrap().location_table[1].lines[0].function_index = -1
                }),
                "function index -1 out of bounds",
            ),
            (
                Box::new(|r| r.dictionary.as_mut().unwrap().location_table[2].mapping_index = 5),
                "mapping index 5 out of bounds",
            ),
            (
                Box::new(|r| r.dictionary.as_mut().unwrap().function_table[1].name_strindex = 1000),
                "function name string index 1000 out of bounds",
            ),
            (
                Box::new(|r| {
                    r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0]
                        .attribute_indices = vec![77]
                }),
                "attribute index 77 out of bounds",
            ),
            (
                Box::new(|r| {
                    r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].link_index = 3
                }),
                "link index 3 out of bounds",
            ),
            (
                Box::new(|r| {
                    r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0]
                        .values
                        .clear()
                }),
                "neither values nor timestamps",
            ),
            (
                Box::new(|r| {
                    r.resource_profiles[0].scope_profiles[0].profiles[0].sample_type = None
                }),
                "no sample type",
            ),
            (
                Box::new(|r| {
                    r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].values =
                        vec![i64::MAX]
                }),
                "overflows",
            ),
        ];
        for (mutate, needle) in cases {
            let mut req = base();
            mutate(&mut req);
            let err = convert(&req).unwrap_err();
            assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
            assert!(
                err.to_string().contains("resource 0, scope 0, profile 0"),
                "{err}"
            );
        }
    }

    #[test]
    fn sample_counts_and_stack_depth_are_bounded_before_expansion() {
        let limits = Limits {
            max_samples: 3,
            max_stack_depth: 1,
            ..Limits::default()
        };
        let many = request(vec![cpu_profile(vec![sample(vec![1], vec![]); 4])], vec![]);
        let err = profiles_from_otlp_request(&many, &limits, NOW).unwrap_err();
        assert!(
            matches!(err, FormatError::LimitExceeded { limit: 3, .. }),
            "{err}"
        );
        let one = request(vec![cpu_profile(vec![sample(vec![1], vec![])])], vec![]);
        let out = profiles_from_otlp_request(&one, &limits, NOW).unwrap();
        // only the root-side location (main) is kept
        assert_eq!(rows(&out)[0].1, "main");
        // many small profiles cannot together exceed 3 × 1 frames
        let spread = request(
            vec![cpu_profile(vec![sample(vec![1], vec![]); 2]); 2],
            vec![],
        );
        let err = profiles_from_otlp_request(&spread, &limits, NOW).unwrap_err();
        assert!(
            err.to_string().contains("stack frames in the request"),
            "{err}"
        );
    }

    #[test]
    fn bytes_are_bounded_and_decoding_errors_typed() {
        let body =
            request(vec![cpu_profile(vec![sample(vec![1], vec![])])], vec![]).encode_to_vec();
        assert_eq!(
            profiles_from_otlp(&body, &Limits::default(), NOW)
                .unwrap()
                .len(),
            1
        );
        let limits = Limits {
            max_body_bytes: 16,
            ..Limits::default()
        };
        assert!(matches!(
            profiles_from_otlp(&body, &limits, NOW),
            Err(FormatError::TooLarge { limit: 16, .. })
        ));
        assert!(matches!(
            profiles_from_otlp(&[0xff, 0xff, 0xff], &Limits::default(), NOW),
            Err(FormatError::DecodeOtlp(_))
        ));
        for cut in 0..body.len() {
            let _ = profiles_from_otlp(&body[..cut], &Limits::default(), NOW);
        }
    }
}
