//! JFR chunks: header, constant pools and the events this converter needs.
//!
//! A recording is a sequence of self-contained chunks. Each starts with a
//! 68-byte header: magic `FLR\0`, major and minor version (`u16` each),
//! then big-endian `i64`s chunk size (header included), offset of the last
//! constant pool event, offset of the metadata event (both relative to the
//! chunk start), start time (ns), duration (ns), start ticks, ticks per
//! second, and a 32-bit word whose lowest bit says whether integers are
//! compressed (see [`super::reader`]).
//!
//! The chunk body is a sequence of events, each `size int` (including the
//! size field itself), `type id long`, then the fields of that type as the
//! metadata event describes them. Type id 0 is the metadata event, 1 a
//! constant pool ("checkpoint") event: `startTime long, duration long,
//! delta long, flush byte, poolCount int`, then per pool `type id long,
//! count int, (index long, value)*`. The header points at the last pool
//! event; each one's `delta` is the (usually negative) distance to the
//! previous one, 0 ending the chain.
//!
//! Only the constant pools needed to name frames are kept (strings,
//! symbols, classes, methods, stack traces, thread states); values of every
//! other pool are decoded and dropped, since their encoded size is only
//! known by walking their fields.

use rustc_hash::{FxHashMap, FxHashSet};

use super::JfrDecodeError;
use super::metadata::{ClassDesc, FieldDesc, TypeKind, TypeTable, read_metadata};
use super::reader::{ByteReader, StrValue};

/// Size of the fixed chunk header.
pub(super) const CHUNK_HEADER_SIZE: usize = 68;
const CHUNK_MAGIC: &[u8; 4] = b"FLR\0";
const METADATA_EVENT_TYPE: u64 = 0;
const CONSTANT_POOL_EVENT_TYPE: u64 = 1;
/// Nesting limit for inline struct values; real recordings use two levels
/// (stack trace → stack frame).
const MAX_VALUE_DEPTH: usize = 16;
/// Upper bound on the number of chunks of one recording.
const MAX_CHUNKS: usize = 10_000;
/// Upper bound on the constant pool entries kept for one chunk (big real
/// recordings keep some hundred thousand); bounds memory whatever the
/// input size.
const MAX_KEPT_POOL_ENTRIES: usize = 1 << 22;

/// A decoded scalar field value. Constant pool references keep only the
/// index: the pool's type is the field's type. Arrays and inline structs
/// are never materialised: fields that are not needed are skipped.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(StrValue),
    Ref(u64),
    /// A field that was not needed, or not a scalar.
    Skipped,
}

impl Value {
    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(value) => Some(*value),
            _ => None,
        }
    }

    fn as_ref_index(&self) -> Option<u64> {
        match self {
            Value::Ref(index) => Some(*index),
            _ => None,
        }
    }
}

/// Text that may live in a constant pool, resolved through [`Chunk::text`].
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Text {
    Absent,
    Inline(String),
    /// Index into the `java.lang.String` pool.
    StringPool(u64),
    /// Index into the `jdk.types.Symbol` pool.
    SymbolPool(u64),
}

#[derive(Debug, Clone)]
pub(super) struct MethodEntry {
    /// Index into the `java.lang.Class` pool, if present.
    pub(super) class: Option<u64>,
    pub(super) name: Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameEntry {
    /// Index into the `jdk.types.Method` pool, if present.
    pub(super) method: Option<u64>,
    pub(super) line: i32,
}

/// The constant pool entries this converter uses.
#[derive(Debug, Default)]
pub(super) struct Pools {
    pub(super) strings: FxHashMap<u64, String>,
    pub(super) symbols: FxHashMap<u64, Text>,
    pub(super) classes: FxHashMap<u64, Text>,
    pub(super) methods: FxHashMap<u64, MethodEntry>,
    pub(super) stack_traces: FxHashMap<u64, Vec<FrameEntry>>,
    pub(super) thread_states: FxHashMap<u64, Text>,
}

impl Pools {
    fn kept_entries(&self) -> usize {
        self.strings.len()
            + self.symbols.len()
            + self.classes.len()
            + self.methods.len()
            + self.stack_traces.len()
            + self.thread_states.len()
    }
}

/// Which pool a constant pool type feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolRole {
    String,
    Symbol,
    Class,
    Method,
    StackTrace,
    ThreadState,
    Ignored,
}

fn pool_role(class: &ClassDesc) -> PoolRole {
    match (class.kind, class.name.as_str()) {
        (TypeKind::String, _) => PoolRole::String,
        (_, "jdk.types.Symbol") => PoolRole::Symbol,
        (_, "java.lang.Class") => PoolRole::Class,
        (_, "jdk.types.Method") => PoolRole::Method,
        (_, "jdk.types.StackTrace") => PoolRole::StackTrace,
        (_, "jdk.types.ThreadState") => PoolRole::ThreadState,
        _ => PoolRole::Ignored,
    }
}

/// The profiling events this converter turns into samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventType {
    /// `jdk.ExecutionSample`: CPU (and wall with async-profiler's wall mode).
    ExecutionSample,
    /// `profiler.WallClockSample`.
    WallClockSample,
    /// `jdk.ObjectAllocationInNewTLAB`.
    AllocationInNewTlab,
    /// `jdk.ObjectAllocationOutsideTLAB`.
    AllocationOutsideTlab,
    /// `jdk.ObjectAllocationSample`.
    AllocationSample,
    /// `jdk.JavaMonitorEnter`.
    MonitorEnter,
    /// `jdk.ThreadPark`.
    ThreadPark,
    /// `profiler.LiveObject`.
    LiveObject,
    /// `profiler.Malloc`.
    Malloc,
}

impl EventType {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "jdk.ExecutionSample" => Self::ExecutionSample,
            "profiler.WallClockSample" => Self::WallClockSample,
            "jdk.ObjectAllocationInNewTLAB" => Self::AllocationInNewTlab,
            "jdk.ObjectAllocationOutsideTLAB" => Self::AllocationOutsideTlab,
            "jdk.ObjectAllocationSample" => Self::AllocationSample,
            "jdk.JavaMonitorEnter" => Self::MonitorEnter,
            "jdk.ThreadPark" => Self::ThreadPark,
            "profiler.LiveObject" => Self::LiveObject,
            "profiler.Malloc" => Self::Malloc,
            _ => return None,
        })
    }

    /// The field carrying the event's weight, if it has one.
    fn weight_field(self) -> Option<&'static str> {
        match self {
            Self::WallClockSample => Some("samples"),
            Self::AllocationInNewTlab => Some("tlabSize"),
            Self::AllocationOutsideTlab => Some("allocationSize"),
            Self::AllocationSample => Some("weight"),
            Self::MonitorEnter | Self::ThreadPark => Some("duration"),
            Self::Malloc => Some("size"),
            Self::ExecutionSample | Self::LiveObject => None,
        }
    }
}

/// One profiling event, with references still pointing into its chunk's
/// constant pools.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SampleEvent {
    pub(super) event_type: EventType,
    /// Index into the stack trace pool (absent or 0 means no stack).
    pub(super) stack_trace: Option<u64>,
    /// Index into the thread state pool.
    pub(super) thread_state: Option<u64>,
    /// The event's weight field (0 when the event type has none or the
    /// field is missing).
    pub(super) weight: i64,
    /// `contextId` written by Pyroscope's async-profiler (0 = none).
    pub(super) context_id: i64,
    /// `spanId` span correlation field (0 = none).
    pub(super) span_id: u64,
    /// `spanName` span correlation field: an id in the labels snapshot's
    /// string table, or inline text.
    pub(super) span_name: SpanName,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum SpanName {
    None,
    SnapshotString(i64),
    Text(Text),
}

/// A `jdk.ActiveSetting` event: one setting of the recording.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SettingEvent {
    pub(super) name: Text,
    pub(super) value: Text,
}

/// Where the fields an event type needs sit in its class.
#[derive(Debug, Clone)]
struct SampleLayout {
    event_type: EventType,
    stack_trace: Option<usize>,
    thread_state: Option<usize>,
    weight: Option<usize>,
    context_id: Option<usize>,
    span_id: Option<usize>,
    span_name: Option<usize>,
}

#[derive(Debug, Clone)]
enum EventLayout {
    Sample(SampleLayout),
    Setting {
        name: Option<usize>,
        value: Option<usize>,
    },
}

impl EventLayout {
    /// Indexes of the fields to decode; the others are skipped.
    fn wanted_fields(&self) -> Vec<usize> {
        let fields = match self {
            EventLayout::Sample(layout) => vec![
                layout.stack_trace,
                layout.thread_state,
                layout.weight,
                layout.context_id,
                layout.span_id,
                layout.span_name,
            ],
            EventLayout::Setting { name, value } => vec![*name, *value],
        };
        fields.into_iter().flatten().collect()
    }
}

/// One parsed chunk: its types, its pools, and where its events are.
#[derive(Debug)]
pub(super) struct Chunk<'a> {
    /// Offset of the chunk in the recording.
    pub(super) offset: usize,
    /// The whole chunk, header included.
    data: &'a [u8],
    compressed_integers: bool,
    types: TypeTable,
    pools: Pools,
    layouts: FxHashMap<u64, EventLayout>,
}

/// Splits a decompressed recording into chunks and parses each one's
/// metadata and constant pools.
pub(super) fn read_chunks(recording: &[u8]) -> Result<Vec<Chunk<'_>>, (usize, JfrDecodeError)> {
    let mut chunks = Vec::new();
    let mut offset = 0;
    while offset < recording.len() {
        if chunks.len() >= MAX_CHUNKS {
            return Err((
                offset,
                JfrDecodeError::LimitExceeded {
                    offset,
                    what: "number of chunks",
                    limit: MAX_CHUNKS,
                },
            ));
        }
        let chunk = read_chunk(recording, offset).map_err(|error| (offset, error))?;
        offset += chunk.data.len();
        chunks.push(chunk);
    }
    Ok(chunks)
}

fn read_chunk(recording: &[u8], offset: usize) -> Result<Chunk<'_>, JfrDecodeError> {
    let mut header = ByteReader::new(&recording[offset..], offset, false);
    let magic = header.read_bytes(4, "chunk magic")?;
    if magic != CHUNK_MAGIC {
        return Err(JfrDecodeError::BadMagic { offset });
    }
    let major = header.read_raw_u16("chunk major version")?;
    let minor = header.read_raw_u16("chunk minor version")?;
    if major != 1 && major != 2 {
        return Err(JfrDecodeError::UnsupportedVersion {
            offset,
            major,
            minor,
        });
    }
    let available = recording.len() - offset;
    let size = header.read_raw_u64("chunk size")?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size < CHUNK_HEADER_SIZE || size > available {
        return Err(JfrDecodeError::InvalidChunkHeader {
            offset,
            reason: format!(
                "chunk size {size} is outside {CHUNK_HEADER_SIZE}..={available} (the bytes left)"
            ),
        });
    }
    let constant_pool_offset = header.read_raw_u64("constant pool offset")?;
    let metadata_offset = header.read_raw_u64("metadata offset")?;
    for _ in 0..4 {
        // start nanos, duration nanos, start ticks, ticks per second
        header.read_raw_u64("chunk timing")?;
    }
    let features = header.read_raw_u32("chunk features")?;
    let data = &recording[offset..offset + size];
    let mut chunk = Chunk {
        offset,
        data,
        compressed_integers: features & 1 != 0,
        types: TypeTable::default(),
        pools: Pools::default(),
        layouts: FxHashMap::default(),
    };
    let metadata_offset = chunk.body_offset(metadata_offset, "metadata offset")?;
    let (mut reader, _) = chunk.event_reader(metadata_offset)?;
    let event_type = reader.read_long("metadata event type")?;
    if event_type != METADATA_EVENT_TYPE {
        return Err(JfrDecodeError::UnexpectedEventType {
            offset: offset + metadata_offset,
            expected: METADATA_EVENT_TYPE,
            found: event_type,
        });
    }
    chunk.types = read_metadata(&mut reader)?;
    chunk.layouts = event_layouts(&chunk.types);
    let constant_pool_offset = chunk.body_offset(constant_pool_offset, "constant pool offset")?;
    chunk.read_constant_pools(constant_pool_offset)?;
    Ok(chunk)
}

fn event_layouts(types: &TypeTable) -> FxHashMap<u64, EventLayout> {
    let mut layouts = FxHashMap::default();
    for class in &types.classes {
        if class.name == "jdk.ActiveSetting" {
            layouts.insert(
                class.id,
                EventLayout::Setting {
                    name: class.field_index("name"),
                    value: class.field_index("value"),
                },
            );
        } else if let Some(event_type) = EventType::from_name(&class.name) {
            layouts.insert(
                class.id,
                EventLayout::Sample(SampleLayout {
                    event_type,
                    stack_trace: class.field_index("stackTrace"),
                    thread_state: class.field_index("state"),
                    weight: event_type
                        .weight_field()
                        .and_then(|name| class.field_index(name)),
                    context_id: class.field_index("contextId"),
                    span_id: class.field_index("spanId"),
                    span_name: class.field_index("spanName"),
                }),
            );
        }
    }
    layouts
}

/// Decodes values of the types of one chunk, with a bound on the total
/// work so that hostile metadata (e.g. deeply nested structs without
/// fields) cannot make decoding run for long without consuming input.
struct ValueDecoder<'t> {
    types: &'t TypeTable,
    /// Values that may still be decoded.
    budget: u64,
    /// The initial budget, for the error message.
    limit: u64,
}

impl ValueDecoder<'_> {
    fn spend(&mut self, reader: &ByteReader<'_>) -> Result<(), JfrDecodeError> {
        if self.budget == 0 {
            return Err(JfrDecodeError::LimitExceeded {
                offset: reader.offset(),
                what: "number of decoded values",
                limit: usize::try_from(self.limit).unwrap_or(usize::MAX),
            });
        }
        self.budget -= 1;
        Ok(())
    }

    /// Skips a field (array or single value) without allocating.
    fn skip_field(
        &mut self,
        reader: &mut ByteReader<'_>,
        field: &FieldDesc,
        depth: usize,
    ) -> Result<(), JfrDecodeError> {
        if !field.array {
            return self.skip_single(reader, field.type_index, field.constant_pool, depth);
        }
        let count = reader.read_count("array length")?;
        for _ in 0..count {
            self.skip_single(reader, field.type_index, field.constant_pool, depth)?;
        }
        Ok(())
    }

    fn skip_single(
        &mut self,
        reader: &mut ByteReader<'_>,
        type_index: usize,
        constant_pool: bool,
        depth: usize,
    ) -> Result<(), JfrDecodeError> {
        self.spend(reader)?;
        if constant_pool {
            return reader.read_long("constant pool index").map(drop);
        }
        let class = self.types.class(type_index);
        match class.kind {
            TypeKind::Boolean | TypeKind::Byte => reader.read_u8("byte").map(drop),
            TypeKind::Char | TypeKind::Short => reader.read_short("short").map(drop),
            TypeKind::Int => reader.read_int("int").map(drop),
            TypeKind::Long => reader.read_long("long").map(drop),
            TypeKind::Float => reader.read_raw_u32("float").map(drop),
            TypeKind::Double => reader.read_raw_u64("double").map(drop),
            TypeKind::String => reader.skip_string("string"),
            TypeKind::Struct => {
                if depth >= MAX_VALUE_DEPTH {
                    return Err(JfrDecodeError::LimitExceeded {
                        offset: reader.offset(),
                        what: "nesting depth of values",
                        limit: MAX_VALUE_DEPTH,
                    });
                }
                for field in &class.fields {
                    self.skip_field(reader, field, depth + 1)?;
                }
                Ok(())
            }
        }
    }

    /// Reads a field if it is a scalar (a primitive, a string or a constant
    /// pool reference); skips it otherwise.
    fn read_scalar(
        &mut self,
        reader: &mut ByteReader<'_>,
        field: &FieldDesc,
        depth: usize,
    ) -> Result<Value, JfrDecodeError> {
        let kind = self.types.class(field.type_index).kind;
        if field.array || (kind == TypeKind::Struct && !field.constant_pool) {
            self.skip_field(reader, field, depth)?;
            return Ok(Value::Skipped);
        }
        self.spend(reader)?;
        if field.constant_pool {
            return Ok(Value::Ref(reader.read_long("constant pool index")?));
        }
        Ok(match kind {
            TypeKind::Boolean => Value::Bool(reader.read_u8("boolean")? != 0),
            TypeKind::Byte => Value::Int(i64::from(reader.read_u8("byte")? as i8)),
            TypeKind::Char => Value::Int(i64::from(reader.read_short("char")?)),
            TypeKind::Short => Value::Int(i64::from(reader.read_short("short")? as i16)),
            TypeKind::Int => Value::Int(i64::from(reader.read_int("int")? as i32)),
            TypeKind::Long => Value::Int(reader.read_long("long")? as i64),
            TypeKind::Float => {
                Value::Float(f64::from(f32::from_bits(reader.read_raw_u32("float")?)))
            }
            TypeKind::Double => Value::Float(f64::from_bits(reader.read_raw_u64("double")?)),
            TypeKind::String => Value::Str(reader.read_string("string")?),
            TypeKind::Struct => Value::Skipped,
        })
    }

    /// Reads the fields of a struct value of `class`, keeping the scalar
    /// fields whose index is in `wanted` and skipping the others; the
    /// result has one entry per field.
    fn read_struct(
        &mut self,
        reader: &mut ByteReader<'_>,
        class: &ClassDesc,
        wanted: &[usize],
    ) -> Result<Vec<Value>, JfrDecodeError> {
        let mut values = Vec::with_capacity(class.fields.len());
        for (index, field) in class.fields.iter().enumerate() {
            if wanted.contains(&index) {
                values.push(self.read_scalar(reader, field, 1)?);
            } else {
                self.skip_field(reader, field, 1)?;
                values.push(Value::Skipped);
            }
        }
        Ok(values)
    }

    /// Reads a `jdk.types.StackTrace` value: its frames, leaf first as JFR
    /// stores them. Only inline `frames` arrays of structs are understood
    /// (what the JDK and async-profiler write); anything else gives no
    /// frames.
    fn read_stack_trace(
        &mut self,
        reader: &mut ByteReader<'_>,
        class: &ClassDesc,
    ) -> Result<Vec<FrameEntry>, JfrDecodeError> {
        let types = self.types;
        let mut frames = Vec::new();
        for field in &class.fields {
            let frame_class = types.class(field.type_index);
            let inline_frames = field.name == "frames"
                && field.array
                && !field.constant_pool
                && frame_class.kind == TypeKind::Struct;
            if !inline_frames {
                self.skip_field(reader, field, 1)?;
                continue;
            }
            let count = reader.read_count("stack frame count")?;
            frames.reserve(count.min(4096));
            for _ in 0..count {
                self.spend(reader)?;
                let mut frame = FrameEntry {
                    method: None,
                    line: 0,
                };
                for frame_field in &frame_class.fields {
                    match frame_field.name.as_str() {
                        "method" | "lineNumber" => {
                            match self.read_scalar(reader, frame_field, 2)? {
                                Value::Ref(index) if frame_field.name == "method" => {
                                    frame.method = Some(index);
                                }
                                // lineNumber is a Java int; keep its 32 bits.
                                Value::Int(line) if frame_field.name == "lineNumber" => {
                                    frame.line = line as i32;
                                }
                                _ => {}
                            }
                        }
                        _ => self.skip_field(reader, frame_field, 2)?,
                    }
                }
                frames.push(frame);
            }
        }
        Ok(frames)
    }
}

/// The text a field holds, whether inline or in a pool.
fn text_of(types: &TypeTable, field: &FieldDesc, value: &Value) -> Text {
    match value {
        Value::Str(StrValue::Inline(text)) => Text::Inline(text.clone()),
        Value::Str(StrValue::Pool(index)) => Text::StringPool(*index),
        Value::Ref(index) => {
            let class = types.class(field.type_index);
            if class.kind == TypeKind::String {
                Text::StringPool(*index)
            } else if class.name == "jdk.types.Symbol" {
                Text::SymbolPool(*index)
            } else {
                Text::Absent
            }
        }
        _ => Text::Absent,
    }
}

impl<'a> Chunk<'a> {
    /// Checks that an offset from the header points into the chunk body.
    fn body_offset(&self, offset: u64, what: &'static str) -> Result<usize, JfrDecodeError> {
        match usize::try_from(offset) {
            Ok(offset) if (CHUNK_HEADER_SIZE..self.data.len()).contains(&offset) => Ok(offset),
            _ => Err(JfrDecodeError::InvalidChunkHeader {
                offset: self.offset,
                reason: format!(
                    "{what} {offset} is outside the chunk body {CHUNK_HEADER_SIZE}..{}",
                    self.data.len()
                ),
            }),
        }
    }

    /// A reader over the event starting at `position` (relative to the
    /// chunk), positioned after its size field and limited to its size,
    /// and that size.
    fn event_reader(&self, position: usize) -> Result<(ByteReader<'a>, usize), JfrDecodeError> {
        let body = &self.data[position..];
        let origin = self.offset + position;
        let mut reader = ByteReader::new(body, origin, self.compressed_integers);
        let size = reader.read_int("event size")?;
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size <= reader.position() || size > body.len() {
            return Err(JfrDecodeError::InvalidEventSize {
                offset: origin,
                size: u64::try_from(size).unwrap_or(u64::MAX),
            });
        }
        let header_len = reader.position();
        let event = ByteReader::new(
            &body[header_len..size],
            origin + header_len,
            self.compressed_integers,
        );
        Ok((event, size))
    }

    fn decoder(&self) -> ValueDecoder<'_> {
        // Every decoded value except fieldless structs consumes at least one
        // byte; allow generous headroom for those.
        let budget = u64::try_from(self.data.len())
            .unwrap_or(u64::MAX)
            .saturating_mul(4)
            .saturating_add(1 << 16);
        ValueDecoder {
            types: &self.types,
            budget,
            limit: budget,
        }
    }

    fn read_constant_pools(&mut self, last_pool_offset: usize) -> Result<(), JfrDecodeError> {
        let mut decoder = self.decoder();
        let mut pools = Pools::default();
        let mut visited = FxHashSet::default();
        let mut position = last_pool_offset;
        loop {
            if !visited.insert(position) {
                return Err(JfrDecodeError::ConstantPoolCycle {
                    offset: self.offset + position,
                });
            }
            let (mut reader, _) = self.event_reader(position)?;
            let event_type = reader.read_long("constant pool event type")?;
            if event_type != CONSTANT_POOL_EVENT_TYPE {
                return Err(JfrDecodeError::UnexpectedEventType {
                    offset: self.offset + position,
                    expected: CONSTANT_POOL_EVENT_TYPE,
                    found: event_type,
                });
            }
            reader.read_long("constant pool start time")?;
            reader.read_long("constant pool duration")?;
            let delta = reader.read_long("constant pool delta")? as i64;
            reader.read_u8("constant pool flush flag")?;
            let pool_count = reader.read_count("constant pool count")?;
            for _ in 0..pool_count {
                read_pool(&mut reader, &mut decoder, &mut pools)?;
            }
            if delta == 0 {
                break;
            }
            let next = i64::try_from(position)
                .ok()
                .and_then(|position| position.checked_add(delta))
                .and_then(|next| usize::try_from(next).ok());
            position = match next {
                Some(next) if (CHUNK_HEADER_SIZE..self.data.len()).contains(&next) => next,
                _ => {
                    return Err(JfrDecodeError::InvalidConstantPoolDelta {
                        offset: self.offset + position,
                        delta,
                    });
                }
            };
        }
        self.pools = pools;
        Ok(())
    }

    /// Calls `visit_sample` for every profiling event and `visit_setting`
    /// for every `jdk.ActiveSetting`, in file order.
    pub(super) fn for_each_event(
        &self,
        mut visit_sample: impl FnMut(SampleEvent) -> Result<(), JfrDecodeError>,
        mut visit_setting: impl FnMut(SettingEvent) -> Result<(), JfrDecodeError>,
    ) -> Result<(), JfrDecodeError> {
        let mut decoder = self.decoder();
        let mut position = CHUNK_HEADER_SIZE;
        while position < self.data.len() {
            let (mut reader, event_size) = self.event_reader(position)?;
            let type_id = reader.read_long("event type")?;
            if let Some(layout) = self.layouts.get(&type_id)
                && let Some(class) = self.types.by_id(type_id)
            {
                let fields = decoder.read_struct(&mut reader, class, &layout.wanted_fields())?;
                match layout {
                    EventLayout::Sample(layout) => visit_sample(sample_event(layout, &fields))?,
                    EventLayout::Setting { name, value } => {
                        let text = |index: &Option<usize>| match index {
                            Some(index) => {
                                text_of(&self.types, &class.fields[*index], &fields[*index])
                            }
                            None => Text::Absent,
                        };
                        visit_setting(SettingEvent {
                            name: text(name),
                            value: text(value),
                        })?;
                    }
                }
            }
            position += event_size;
        }
        Ok(())
    }

    /// Resolves text to a string of this chunk; `None` when the pool entry
    /// is missing.
    pub(super) fn text<'s>(&'s self, text: &'s Text) -> Option<&'s str> {
        match text {
            Text::Absent => None,
            Text::Inline(text) => Some(text),
            Text::StringPool(index) => self.pools.strings.get(index).map(String::as_str),
            Text::SymbolPool(index) => match self.pools.symbols.get(index)? {
                Text::Inline(text) => Some(text),
                Text::StringPool(index) => self.pools.strings.get(index).map(String::as_str),
                // A symbol whose text is itself a symbol is not valid JFR.
                Text::Absent | Text::SymbolPool(_) => None,
            },
        }
    }

    pub(super) fn pools(&self) -> &Pools {
        &self.pools
    }
}

fn sample_event(layout: &SampleLayout, fields: &[Value]) -> SampleEvent {
    let field = |index: Option<usize>| index.and_then(|index| fields.get(index));
    let int = |index: Option<usize>| field(index).and_then(Value::as_int).unwrap_or(0);
    let span_name = match field(layout.span_name) {
        Some(Value::Int(id)) if *id != 0 => SpanName::SnapshotString(*id),
        Some(Value::Str(StrValue::Inline(text))) if !text.is_empty() => {
            SpanName::Text(Text::Inline(text.clone()))
        }
        Some(Value::Str(StrValue::Pool(index))) => SpanName::Text(Text::StringPool(*index)),
        _ => SpanName::None,
    };
    SampleEvent {
        event_type: layout.event_type,
        stack_trace: field(layout.stack_trace).and_then(Value::as_ref_index),
        thread_state: field(layout.thread_state).and_then(Value::as_ref_index),
        weight: int(layout.weight),
        context_id: int(layout.context_id),
        span_id: int(layout.span_id) as u64,
        span_name,
    }
}

/// The text of the named scalar field of a struct value read by
/// [`ValueDecoder::read_struct`].
fn field_text(types: &TypeTable, class: &ClassDesc, values: &[Value], name: &str) -> Text {
    class.field_index(name).map_or(Text::Absent, |index| {
        text_of(types, &class.fields[index], &values[index])
    })
}

fn read_pool(
    reader: &mut ByteReader<'_>,
    decoder: &mut ValueDecoder<'_>,
    pools: &mut Pools,
) -> Result<(), JfrDecodeError> {
    let types = decoder.types;
    let offset = reader.offset();
    let type_id = reader.read_long("constant pool type id")?;
    let type_index = types
        .index_of_id(type_id)
        .ok_or(JfrDecodeError::UnknownType { offset, type_id })?;
    let class = types.class(type_index);
    let role = pool_role(class);
    // Fields kept for each role.
    let wanted: Vec<usize> = match role {
        PoolRole::Symbol => class.field_index("string").into_iter().collect(),
        PoolRole::Class | PoolRole::ThreadState => class.field_index("name").into_iter().collect(),
        PoolRole::Method => ["type", "name"]
            .iter()
            .filter_map(|name| class.field_index(name))
            .collect(),
        PoolRole::String | PoolRole::StackTrace | PoolRole::Ignored => Vec::new(),
    };
    let count = reader.read_count("constant pool entry count")?;
    if role != PoolRole::Ignored
        && pools.kept_entries().saturating_add(count) > MAX_KEPT_POOL_ENTRIES
    {
        return Err(JfrDecodeError::LimitExceeded {
            offset,
            what: "number of constant pool entries",
            limit: MAX_KEPT_POOL_ENTRIES,
        });
    }
    for _ in 0..count {
        let index = reader.read_long("constant pool entry index")?;
        match role {
            PoolRole::Ignored => decoder.skip_single(reader, type_index, false, 0)?,
            PoolRole::String => {
                decoder.spend(reader)?;
                let text = match reader.read_string("constant pool string")? {
                    StrValue::Inline(text) => text,
                    StrValue::Null | StrValue::Pool(_) => String::new(),
                };
                pools.strings.entry(index).or_insert(text);
            }
            PoolRole::StackTrace => {
                let frames = decoder.read_stack_trace(reader, class)?;
                pools.stack_traces.entry(index).or_insert(frames);
            }
            PoolRole::Symbol | PoolRole::Class | PoolRole::ThreadState | PoolRole::Method => {
                let values = decoder.read_struct(reader, class, &wanted)?;
                match role {
                    PoolRole::Symbol => {
                        let text = field_text(types, class, &values, "string");
                        pools.symbols.entry(index).or_insert(text);
                    }
                    PoolRole::Class => {
                        let text = field_text(types, class, &values, "name");
                        pools.classes.entry(index).or_insert(text);
                    }
                    PoolRole::ThreadState => {
                        let text = field_text(types, class, &values, "name");
                        pools.thread_states.entry(index).or_insert(text);
                    }
                    _ => {
                        let class_ref = class
                            .field_index("type")
                            .and_then(|index| values[index].as_ref_index());
                        let name = field_text(types, class, &values, "name");
                        pools.methods.entry(index).or_insert(MethodEntry {
                            class: class_ref,
                            name,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}
