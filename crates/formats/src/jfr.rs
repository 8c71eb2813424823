//! Java Flight Recorder (JFR) recordings → pprof, as pyroscope-java sends
//! them to `POST /ingest?format=jfr` (the `jfr` and optional `labels`
//! multipart parts).
//!
//! Entry point: [`parse_jfr`]. It returns one [`JfrProfile`] per kind of
//! profiling event found in the recording, with the series metric name,
//! the recording's async-profiler `event` setting and a pprof whose sample
//! types, period types and values follow Pyroscope (grafana/jfr-parser):
//!
//! | JFR event | `metric` | Sample types | Period type | Values per event |
//! |---|---|---|---|---|
//! | `jdk.ExecutionSample`, thread state not `STATE_SLEEPING` | `process_cpu` | cpu/nanoseconds | cpu/nanoseconds | period |
//! | `jdk.ExecutionSample` when the `event` setting is `wall` (any state; also counted as CPU as above) | `wall` | wall/nanoseconds | wall/nanoseconds | period |
//! | `profiler.WallClockSample` | `wall` | wall/nanoseconds | wall/nanoseconds | `samples` × period |
//! | `jdk.ObjectAllocationInNewTLAB` | `memory` | alloc_in_new_tlab_objects/count, alloc_in_new_tlab_bytes/bytes | space/bytes | 1, `tlabSize` |
//! | `jdk.ObjectAllocationOutsideTLAB` | `memory` | alloc_outside_tlab_objects/count, alloc_outside_tlab_bytes/bytes | space/bytes | 1, `allocationSize` |
//! | `jdk.ObjectAllocationSample` | `memory` | alloc_sample_objects/count, alloc_sample_bytes/bytes | space/bytes | 1, `weight` |
//! | `jdk.JavaMonitorEnter` | `mutex` | contentions/count, delay/nanoseconds | mutex/count | 1, `duration` |
//! | `jdk.ThreadPark` | `block` | contentions/count, delay/nanoseconds | block/count | 1, `duration` |
//! | `profiler.LiveObject` | `memory` | live/count | objects/count | 1 |
//! | `profiler.Malloc` | `memory` | malloc_objects/count, malloc_bytes/bytes | none | 1, `size` |
//!
//! The period is `1e9 / sample_rate` nanoseconds (integer division;
//! `sample_rate` 0 gives period 0, hence zero values); the pprof `period`
//! field carries it for CPU and wall profiles. `time_nanos` is
//! [`JfrOptions::from_ns`] and `duration_nanos` is `until_ns - from_ns`.
//!
//! # Frames and stacks
//!
//! A frame is named `<class>.<method>`, the class in JVM internal form
//! (`java/lang/Thread.run`); for native frames async-profiler stores the
//! library as the class (`libjvm.so.VMThread::run`) and an empty class for
//! pseudo-frames (`.unknown_Java`). Class and method symbols first go
//! through the generated-name merging of Pyroscope, so that run-time
//! generated classes do not multiply functions: `App$$Lambda$75/0x…` →
//! `App$$Lambda_`, `jdk/internal/reflect/GeneratedMethodAccessor31` →
//! `…GeneratedMethodAccessor_`, and three native library names carrying a
//! build hash (zstd-jni, Amazon Corretto Crypto Provider, the
//! async-profiler bundled with pyroscope-java). Frames whose method or class is missing
//! from the constant pools are left out, as Pyroscope does; samples whose
//! stack trace is missing are dropped. There is one pprof `Function` per
//! distinct frame name and one `Location` per (function, line). The line is
//! the frame's JFR `lineNumber` read as an unsigned 32-bit number, so the
//! JDK's "no line" value −1 becomes 4294967295, exactly as in Pyroscope's
//! stored profiles. Locations are listed leaf first in
//! `Sample.location_id`, as pprof requires. Rendered root first as
//! `name:line` joined by `;`, a stack reads like
//! `java/lang/Thread.run:833;App.fib:89` (the form of the collapsed test
//! expectations).
//!
//! # Labels
//!
//! Per-sample pprof string labels come from the [`LabelsSnapshot`] entry of
//! the event's `contextId` (labels with an unknown or empty key or value
//! are skipped), plus `span_id` (16 lowercase hex digits) when the event
//! has a non-zero `spanId` field and `span_name` when it has a `spanName`
//! field (a string id of the snapshot, or inline text). Samples with the
//! same stack and labels are merged.
//!
//! # Deviations from Pyroscope, on purpose
//!
//! - Pyroscope reads `contextId` only on CPU, TLAB and monitor events; here
//!   any converted event with a `contextId` field gets its context labels.
//! - Pyroscope drops an execution sample whose thread state cannot be
//!   resolved; here it counts as CPU (the JDK itself only records running
//!   threads in `jdk.ExecutionSample`).
//! - Pyroscope names the span label `profile_id`; here it is `span_id`,
//!   the name the rest of the ingest path stores.
//!
//! Kept as in Pyroscope although questionable: lock and park `delay`
//! values are the event `duration` in JFR ticks, which are nanoseconds only
//! when the chunk's ticks-per-second is 10⁹ (async-profiler recordings with
//! TSC ticks use e.g. 2.8·10⁹).
//!
//! # Robustness
//!
//! The recording may be gzip-compressed (detected by the magic `1f 8b`);
//! inflation stops as soon as [`JfrOptions::max_decompressed_bytes`] is
//! exceeded, and an uncompressed recording larger than that is refused too.
//! The JFR parser (written for this crate; the `jfrs` crate trusts lengths
//! read from the file) checks every offset, count and length against the
//! bytes actually present before using it, reserves memory only for items
//! actually read, bounds value nesting (16), the total number of decoded
//! values (4 per chunk byte), metadata size (2^20 strings and elements)
//! and kept constant pool entries (2^22 per chunk), never materialises
//! fields it does not need, and detects cycles in the constant pool chain.
//! Hostile input therefore yields a [`JfrError`], never a panic, and memory
//! stays within a small multiple of the decompressed size.

mod builder;
mod chunk;
mod labels;
mod metadata;
mod reader;
mod symbols;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use kiln_proto::google::v1::Profile;
use prost::Message;
use rustc_hash::FxHashMap;

use self::builder::{FrameKey, ProfileKind, ProfilesBuilder};
use self::chunk::{Chunk, EventType, SampleEvent, SpanName};

pub use self::labels::{LabelsContext, LabelsSnapshot};

/// Conversion settings, taken from the `/ingest` query string and the
/// tenant's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JfrOptions {
    /// `sampleRate` in Hz; CPU and wall values are counts × `1e9 / sample_rate`
    /// nanoseconds (0 gives a period of 0).
    pub sample_rate: i64,
    /// Start of the profiling window (Unix ns): the pprof `time_nanos`.
    pub from_ns: i64,
    /// End of the profiling window (Unix ns).
    pub until_ns: i64,
    /// Largest recording or labels snapshot accepted, in bytes, after
    /// decompression.
    pub max_decompressed_bytes: usize,
}

impl Default for JfrOptions {
    fn default() -> Self {
        Self {
            sample_rate: 100,
            from_ns: 0,
            until_ns: 0,
            max_decompressed_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One converted profile.
#[derive(Debug, Clone, PartialEq)]
pub struct JfrProfile {
    /// Series `__name__`: `process_cpu`, `wall`, `memory`, `mutex` or
    /// `block`.
    pub metric: String,
    /// Value of the recording's first `jdk.ActiveSetting` named `event`
    /// (async-profiler's main event: `itimer`, `cpu`, `wall`, `alloc`,
    /// `lock`, ...), empty when there is none; the same for every profile
    /// of a recording. `wall` also turns every `jdk.ExecutionSample` into a
    /// wall sample.
    pub jfr_event: String,
    /// The pprof.
    pub profile: Profile,
}

/// A JFR recording or labels snapshot that cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum JfrError {
    #[error("failed to decompress the gzip-compressed JFR recording")]
    DecompressRecording {
        #[source]
        source: std::io::Error,
    },
    #[error("failed to decompress the gzip-compressed JFR labels snapshot")]
    DecompressLabels {
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} is larger than the limit of {limit} bytes (after decompression)")]
    TooLarge { what: &'static str, limit: usize },
    #[error("failed to decode the JFR labels snapshot protobuf")]
    DecodeLabels {
        #[source]
        source: prost::DecodeError,
    },
    #[error("the JFR recording is empty")]
    EmptyRecording,
    #[error("failed to read JFR chunk {chunk_index} (at offset {chunk_offset})")]
    ReadChunk {
        chunk_index: usize,
        chunk_offset: usize,
        #[source]
        source: JfrDecodeError,
    },
    #[error("failed to read the events of JFR chunk {chunk_index} (at offset {chunk_offset})")]
    ReadEvents {
        chunk_index: usize,
        chunk_offset: usize,
        #[source]
        source: JfrDecodeError,
    },
}

/// What is wrong in the bytes of a recording. Offsets are from the start
/// of the (decompressed) recording.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JfrDecodeError {
    #[error("data ends at offset {offset} in the middle of {what}")]
    UnexpectedEnd { offset: usize, what: &'static str },
    #[error("{what} at offset {offset} is {count}, more than the {remaining} bytes left")]
    CountTooLarge {
        offset: usize,
        what: &'static str,
        count: u64,
        remaining: usize,
    },
    #[error("invalid string encoding {encoding} at offset {offset}")]
    InvalidStringEncoding { offset: usize, encoding: u8 },
    #[error("no JFR magic \"FLR\\0\" at offset {offset}")]
    BadMagic { offset: usize },
    #[error("unsupported JFR version {major}.{minor} at offset {offset}")]
    UnsupportedVersion {
        offset: usize,
        major: u16,
        minor: u16,
    },
    #[error("invalid chunk header at offset {offset}: {reason}")]
    InvalidChunkHeader { offset: usize, reason: String },
    #[error("invalid event size {size} at offset {offset}")]
    InvalidEventSize { offset: usize, size: u64 },
    #[error("expected an event of type {expected} at offset {offset}, found type {found}")]
    UnexpectedEventType {
        offset: usize,
        expected: u64,
        found: u64,
    },
    #[error("invalid metadata near offset {offset}: {reason}")]
    InvalidMetadata { offset: usize, reason: String },
    #[error("constant pool at offset {offset} refers to unknown type id {type_id}")]
    UnknownType { offset: usize, type_id: u64 },
    #[error("the constant pool chain loops back to offset {offset}")]
    ConstantPoolCycle { offset: usize },
    #[error("constant pool at offset {offset} has a delta {delta} leading outside its chunk")]
    InvalidConstantPoolDelta { offset: usize, delta: i64 },
    #[error("{what} exceeds the limit of {limit} at offset {offset}")]
    LimitExceeded {
        offset: usize,
        what: &'static str,
        limit: usize,
    },
}

/// Converts a JFR recording (gzip-compressed or not) and its optional
/// labels snapshot (gzip-compressed or not) into one pprof per kind of
/// profiling event; see the module documentation for the mapping. A valid
/// recording without profiling events gives an empty list.
pub fn parse_jfr(
    jfr: &[u8],
    labels_snapshot: Option<&[u8]>,
    options: &JfrOptions,
) -> Result<Vec<JfrProfile>, JfrError> {
    let limit = options.max_decompressed_bytes;
    let recording = decompress_if_gzip(jfr, limit, "JFR recording", |source| {
        JfrError::DecompressRecording { source }
    })?;
    if recording.is_empty() {
        return Err(JfrError::EmptyRecording);
    }
    let labels = match labels_snapshot {
        Some(bytes) => Some(decode_labels_snapshot(bytes, limit)?),
        None => None,
    };
    let chunks =
        chunk::read_chunks(&recording).map_err(|(chunk_offset, source)| JfrError::ReadChunk {
            chunk_index: chunk_index_at(&recording, chunk_offset),
            chunk_offset,
            source,
        })?;

    let jfr_event = find_event_setting(&chunks)?;
    let period = if options.sample_rate > 0 {
        1_000_000_000 / options.sample_rate
    } else {
        0
    };
    let mut converter = Converter {
        builder: ProfilesBuilder::new(),
        labels: labels.as_ref(),
        wall_mode: jfr_event == "wall",
        period,
        context_label_sets: FxHashMap::default(),
    };
    for (chunk_index, chunk) in chunks.iter().enumerate() {
        let mut resolver = ChunkResolver::new(chunk);
        chunk
            .for_each_event(
                |event| {
                    converter.add_event(&mut resolver, &event);
                    Ok(())
                },
                |_| Ok(()),
            )
            .map_err(|source| JfrError::ReadEvents {
                chunk_index,
                chunk_offset: chunk.offset,
                source,
            })?;
    }
    Ok(converter.builder.build(
        &jfr_event,
        period,
        options.from_ns,
        options.until_ns.saturating_sub(options.from_ns),
    ))
}

/// Decodes a `LabelsSnapshot` protobuf (gzip-compressed or not).
pub fn decode_labels_snapshot(bytes: &[u8], limit: usize) -> Result<LabelsSnapshot, JfrError> {
    let bytes = decompress_if_gzip(bytes, limit, "JFR labels snapshot", |source| {
        JfrError::DecompressLabels { source }
    })?;
    LabelsSnapshot::decode(bytes.as_ref()).map_err(|source| JfrError::DecodeLabels { source })
}

/// Returns `data` itself, or its gzip decompression when it starts with
/// the gzip magic, refusing anything larger than `limit` bytes, through
/// [`crate::compress::decompress_bounded`] (a bomb costs at most `limit + 1`
/// bytes of output). `io_error` builds the error for a corrupt stream.
fn decompress_if_gzip<'a>(
    data: &'a [u8],
    limit: usize,
    what: &'static str,
    io_error: fn(std::io::Error) -> JfrError,
) -> Result<Cow<'a, [u8]>, JfrError> {
    crate::compress::decompress_bounded(data, limit, what).map_err(|e| match e {
        crate::FormatError::TooLarge { limit, what } => JfrError::TooLarge { what, limit },
        crate::FormatError::Gzip { source } => io_error(source),
        other => io_error(std::io::Error::other(other.to_string())),
    })
}

/// Index of the chunk starting at `offset`, for error messages (the
/// failing chunk is the one after all complete ones).
fn chunk_index_at(recording: &[u8], offset: usize) -> usize {
    let mut index = 0;
    let mut position = 0;
    while position < offset {
        let size = recording
            .get(position + 8..position + 16)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map(u64::from_be_bytes)
            .and_then(|size| usize::try_from(size).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        position = position.saturating_add(size);
        index += 1;
    }
    index
}

/// The value of the first `jdk.ActiveSetting` named `event`, or "".
fn find_event_setting(chunks: &[Chunk<'_>]) -> Result<String, JfrError> {
    for (chunk_index, chunk) in chunks.iter().enumerate() {
        let mut found = None;
        chunk
            .for_each_event(
                |_| Ok(()),
                |setting| {
                    if found.is_none() && chunk.text(&setting.name) == Some("event") {
                        found = Some(chunk.text(&setting.value).unwrap_or_default().to_owned());
                    }
                    Ok(())
                },
            )
            .map_err(|source| JfrError::ReadEvents {
                chunk_index,
                chunk_offset: chunk.offset,
                source,
            })?;
        if let Some(value) = found {
            return Ok(value);
        }
    }
    Ok(String::new())
}

/// Turns events into samples of the builder.
struct Converter<'l> {
    builder: ProfilesBuilder,
    labels: Option<&'l LabelsSnapshot>,
    wall_mode: bool,
    period: i64,
    /// Label set id per context id, for events without span fields.
    context_label_sets: FxHashMap<i64, u32>,
}

impl Converter<'_> {
    fn add_event(&mut self, resolver: &mut ChunkResolver<'_, '_>, event: &SampleEvent) {
        let Some(stack) = event
            .stack_trace
            .and_then(|id| resolver.stack(&mut self.builder, id))
        else {
            return;
        };
        let labels = self.label_set(resolver.chunk, event);
        let weight = event.weight;
        match event.event_type {
            EventType::ExecutionSample => {
                let state = event
                    .thread_state
                    .and_then(|id| resolver.chunk.pools().thread_states.get(&id))
                    .and_then(|text| resolver.chunk.text(text));
                if state != Some("STATE_SLEEPING") {
                    self.add(ProfileKind::Cpu, stack, labels, [1, 0]);
                }
                if self.wall_mode {
                    self.add(ProfileKind::Wall, stack, labels, [1, 0]);
                }
            }
            EventType::WallClockSample => self.add(ProfileKind::Wall, stack, labels, [weight, 0]),
            EventType::AllocationInNewTlab => {
                self.add(ProfileKind::AllocationInNewTlab, stack, labels, [1, weight]);
            }
            EventType::AllocationOutsideTlab => {
                self.add(
                    ProfileKind::AllocationOutsideTlab,
                    stack,
                    labels,
                    [1, weight],
                );
            }
            EventType::AllocationSample => {
                self.add(ProfileKind::AllocationSample, stack, labels, [1, weight]);
            }
            EventType::MonitorEnter => self.add(ProfileKind::Mutex, stack, labels, [1, weight]),
            EventType::ThreadPark => self.add(ProfileKind::Block, stack, labels, [1, weight]),
            EventType::LiveObject => self.add(ProfileKind::LiveObject, stack, labels, [1, 0]),
            EventType::Malloc => self.add(ProfileKind::Malloc, stack, labels, [1, weight]),
        }
    }

    fn add(&mut self, kind: ProfileKind, stack: u32, labels: u32, mut values: [i64; 2]) {
        if kind.scaled_by_period() {
            values[0] = values[0].saturating_mul(self.period);
        }
        self.builder.add(kind, stack, labels, values);
    }

    fn label_set(&mut self, chunk: &Chunk<'_>, event: &SampleEvent) -> u32 {
        let has_span = event.span_id != 0 || event.span_name != SpanName::None;
        if !has_span && let Some(&id) = self.context_label_sets.get(&event.context_id) {
            return id;
        }
        let mut labels = self
            .labels
            .map(|snapshot| snapshot.context_labels(event.context_id))
            .unwrap_or_default();
        if has_span {
            let span_name = match &event.span_name {
                SpanName::None => None,
                SpanName::SnapshotString(id) => self
                    .labels
                    .and_then(|snapshot| snapshot.strings.get(id))
                    .map(String::as_str),
                SpanName::Text(text) => chunk.text(text),
            };
            if let Some(span_name) = span_name.filter(|name| !name.is_empty()) {
                labels.retain(|(key, _)| key != "span_name");
                labels.push(("span_name".to_owned(), span_name.to_owned()));
            }
            if event.span_id != 0 {
                labels.retain(|(key, _)| key != "span_id");
                labels.push(("span_id".to_owned(), format!("{:016x}", event.span_id)));
            }
            labels.sort();
        }
        let id = self.builder.intern_labels(labels);
        if !has_span {
            self.context_label_sets.insert(event.context_id, id);
        }
        id
    }
}

/// Resolves one chunk's stack trace and method ids to interned stacks and
/// frame names, caching per id.
struct ChunkResolver<'c, 'a> {
    chunk: &'c Chunk<'a>,
    /// Method id → interned frame name (None: method or class missing).
    frame_names: FxHashMap<u64, Option<u32>>,
    /// Stack trace id → interned stack (None: stack trace missing).
    stacks: FxHashMap<u64, Option<u32>>,
}

impl<'c, 'a> ChunkResolver<'c, 'a> {
    fn new(chunk: &'c Chunk<'a>) -> Self {
        Self {
            chunk,
            frame_names: FxHashMap::default(),
            stacks: FxHashMap::default(),
        }
    }

    fn stack(&mut self, builder: &mut ProfilesBuilder, stack_id: u64) -> Option<u32> {
        if let Some(&cached) = self.stacks.get(&stack_id) {
            return cached;
        }
        let resolved = self.resolve_stack(builder, stack_id);
        self.stacks.insert(stack_id, resolved);
        resolved
    }

    fn resolve_stack(&mut self, builder: &mut ProfilesBuilder, stack_id: u64) -> Option<u32> {
        let chunk = self.chunk;
        let frames = chunk.pools().stack_traces.get(&stack_id)?;
        let mut keys: Vec<FrameKey> = Vec::with_capacity(frames.len());
        for frame in frames {
            let Some(method) = frame.method else { continue };
            if let Some(name) = self.frame_name(builder, method) {
                // The JFR int is kept as its unsigned 32 bits (see module docs).
                keys.push((name, frame.line as u32));
            }
        }
        Some(builder.intern_stack(keys))
    }

    fn frame_name(&mut self, builder: &mut ProfilesBuilder, method_id: u64) -> Option<u32> {
        if let Some(&cached) = self.frame_names.get(&method_id) {
            return cached;
        }
        let chunk = self.chunk;
        let pools = chunk.pools();
        let resolved = pools.methods.get(&method_id).and_then(|method| {
            let class = pools.classes.get(&method.class?)?;
            let class_name = chunk.text(class).unwrap_or_default();
            let method_name = chunk.text(&method.name).unwrap_or_default();
            let name = format!(
                "{}.{}",
                symbols::merge_generated_names(class_name),
                symbols::merge_generated_names(method_name)
            );
            Some(builder.intern_frame_name(name))
        });
        self.frame_names.insert(method_id, resolved);
        resolved
    }
}
