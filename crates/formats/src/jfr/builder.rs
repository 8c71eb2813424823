//! Accumulates converted samples and assembles one pprof per profile kind.
//!
//! Frame names, stacks and label sets are interned once for the whole
//! recording (chunks have their own constant pool ids, so interning is by
//! content); each pprof then gets its own string table, functions and
//! locations containing only what its samples use.

use kiln_proto::google::v1::{
    Function, Label, Line, Location, Mapping, Profile, Sample, ValueType,
};
use rustc_hash::FxHashMap;

use super::JfrProfile;

/// One kind of profile a recording can yield (one pprof each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProfileKind {
    Cpu,
    Wall,
    AllocationInNewTlab,
    AllocationOutsideTlab,
    AllocationSample,
    Mutex,
    Block,
    LiveObject,
    Malloc,
}

impl ProfileKind {
    const ALL: [ProfileKind; 9] = [
        Self::Cpu,
        Self::Wall,
        Self::AllocationInNewTlab,
        Self::AllocationOutsideTlab,
        Self::AllocationSample,
        Self::Mutex,
        Self::Block,
        Self::LiveObject,
        Self::Malloc,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// `__name__` of the series.
    fn metric(self) -> &'static str {
        match self {
            Self::Cpu => "process_cpu",
            Self::Wall => "wall",
            Self::AllocationInNewTlab
            | Self::AllocationOutsideTlab
            | Self::AllocationSample
            | Self::LiveObject
            | Self::Malloc => "memory",
            Self::Mutex => "mutex",
            Self::Block => "block",
        }
    }

    /// Sample types as (type, unit).
    fn sample_types(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Cpu => &[("cpu", "nanoseconds")],
            Self::Wall => &[("wall", "nanoseconds")],
            Self::AllocationInNewTlab => &[
                ("alloc_in_new_tlab_objects", "count"),
                ("alloc_in_new_tlab_bytes", "bytes"),
            ],
            Self::AllocationOutsideTlab => &[
                ("alloc_outside_tlab_objects", "count"),
                ("alloc_outside_tlab_bytes", "bytes"),
            ],
            Self::AllocationSample => &[
                ("alloc_sample_objects", "count"),
                ("alloc_sample_bytes", "bytes"),
            ],
            Self::Mutex | Self::Block => &[("contentions", "count"), ("delay", "nanoseconds")],
            Self::LiveObject => &[("live", "count")],
            Self::Malloc => &[("malloc_objects", "count"), ("malloc_bytes", "bytes")],
        }
    }

    /// Period type as (type, unit); `profiler.Malloc` has none.
    fn period_type(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Cpu => Some(("cpu", "nanoseconds")),
            Self::Wall => Some(("wall", "nanoseconds")),
            Self::AllocationInNewTlab | Self::AllocationOutsideTlab | Self::AllocationSample => {
                Some(("space", "bytes"))
            }
            Self::Mutex => Some(("mutex", "count")),
            Self::Block => Some(("block", "count")),
            Self::LiveObject => Some(("objects", "count")),
            Self::Malloc => None,
        }
    }

    /// Whether the first value counts samples that stand for one sampling
    /// period each (CPU and wall time).
    pub(super) fn scaled_by_period(self) -> bool {
        matches!(self, Self::Cpu | Self::Wall)
    }
}

/// A frame: interned name and line number (as the unsigned 32 bits JFR
/// stores, see [`super`]).
pub(super) type FrameKey = (u32, u32);

#[derive(Debug, Default)]
struct KindSamples {
    index: FxHashMap<(u32, u32), usize>,
    /// (stack id, label set id, values).
    samples: Vec<(u32, u32, [i64; 2])>,
}

#[derive(Debug)]
pub(super) struct ProfilesBuilder {
    frame_names: Vec<String>,
    frame_name_ids: FxHashMap<String, u32>,
    stacks: Vec<Box<[FrameKey]>>,
    stack_ids: FxHashMap<Box<[FrameKey]>, u32>,
    label_sets: Vec<Box<[(String, String)]>>,
    label_set_ids: FxHashMap<Box<[(String, String)]>, u32>,
    kinds: Vec<KindSamples>,
}

/// Interns `key` in a (list, map) pair and returns its id.
fn intern<K: Clone + Eq + std::hash::Hash>(
    list: &mut Vec<K>,
    ids: &mut FxHashMap<K, u32>,
    key: K,
) -> u32 {
    if let Some(&id) = ids.get(&key) {
        return id;
    }
    // Ids are bounded by the number of events, far below u32::MAX for any
    // recording within the size limit.
    let id = u32::try_from(list.len()).unwrap_or(u32::MAX);
    list.push(key.clone());
    ids.insert(key, id);
    id
}

impl ProfilesBuilder {
    pub(super) fn new() -> Self {
        Self {
            frame_names: Vec::new(),
            frame_name_ids: FxHashMap::default(),
            stacks: Vec::new(),
            stack_ids: FxHashMap::default(),
            label_sets: Vec::new(),
            label_set_ids: FxHashMap::default(),
            kinds: ProfileKind::ALL
                .iter()
                .map(|_| KindSamples::default())
                .collect(),
        }
    }

    pub(super) fn intern_frame_name(&mut self, name: String) -> u32 {
        intern(&mut self.frame_names, &mut self.frame_name_ids, name)
    }

    pub(super) fn intern_stack(&mut self, frames: Vec<FrameKey>) -> u32 {
        intern(
            &mut self.stacks,
            &mut self.stack_ids,
            frames.into_boxed_slice(),
        )
    }

    /// `labels` must be sorted by key.
    pub(super) fn intern_labels(&mut self, labels: Vec<(String, String)>) -> u32 {
        debug_assert!(labels.is_sorted());
        intern(
            &mut self.label_sets,
            &mut self.label_set_ids,
            labels.into_boxed_slice(),
        )
    }

    /// Adds values to the sample (stack, labels) of a kind, merging with an
    /// earlier identical one. Unused trailing values are 0.
    pub(super) fn add(&mut self, kind: ProfileKind, stack: u32, labels: u32, values: [i64; 2]) {
        let samples = &mut self.kinds[kind.index()];
        match samples.index.get(&(stack, labels)) {
            Some(&position) => {
                let existing = &mut samples.samples[position].2;
                existing[0] = existing[0].saturating_add(values[0]);
                existing[1] = existing[1].saturating_add(values[1]);
            }
            None => {
                samples.index.insert((stack, labels), samples.samples.len());
                samples.samples.push((stack, labels, values));
            }
        }
    }

    /// One profile per kind that received samples, in [`ProfileKind::ALL`]
    /// order.
    pub(super) fn build(
        self,
        jfr_event: &str,
        period: i64,
        time_nanos: i64,
        duration_nanos: i64,
    ) -> Vec<JfrProfile> {
        let mut profiles = Vec::new();
        for kind in ProfileKind::ALL {
            let samples = &self.kinds[kind.index()];
            if samples.samples.is_empty() {
                continue;
            }
            let mut assembler = PprofAssembler::new(&self);
            let mut profile = Profile {
                time_nanos,
                duration_nanos,
                mapping: vec![Mapping {
                    id: 1,
                    has_functions: true,
                    ..Mapping::default()
                }],
                ..Profile::default()
            };
            for (sample_type, unit) in kind.sample_types() {
                profile.sample_type.push(ValueType {
                    r#type: assembler.string(sample_type),
                    unit: assembler.string(unit),
                });
            }
            if let Some((period_type, unit)) = kind.period_type() {
                profile.period_type = Some(ValueType {
                    r#type: assembler.string(period_type),
                    unit: assembler.string(unit),
                });
            }
            if kind.scaled_by_period() {
                profile.period = period;
            }
            let value_count = kind.sample_types().len();
            for (stack, labels, values) in &samples.samples {
                let sample = Sample {
                    location_id: assembler.locations(*stack),
                    value: values[..value_count].to_vec(),
                    label: assembler.labels(*labels),
                };
                profile.sample.push(sample);
            }
            assembler.finish(&mut profile);
            profiles.push(JfrProfile {
                metric: kind.metric().to_owned(),
                jfr_event: jfr_event.to_owned(),
                profile,
            });
        }
        profiles
    }
}

/// Per-profile tables: strings, functions, locations.
struct PprofAssembler<'b> {
    builder: &'b ProfilesBuilder,
    strings: Vec<String>,
    string_ids: FxHashMap<String, i64>,
    functions: Vec<Function>,
    function_ids: FxHashMap<u32, u64>,
    locations: Vec<Location>,
    location_ids: FxHashMap<FrameKey, u64>,
}

impl<'b> PprofAssembler<'b> {
    fn new(builder: &'b ProfilesBuilder) -> Self {
        let mut assembler = Self {
            builder,
            strings: Vec::new(),
            string_ids: FxHashMap::default(),
            functions: Vec::new(),
            function_ids: FxHashMap::default(),
            locations: Vec::new(),
            location_ids: FxHashMap::default(),
        };
        assembler.string("");
        assembler
    }

    fn string(&mut self, text: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(text) {
            return id;
        }
        let id = i64::try_from(self.strings.len()).unwrap_or(i64::MAX);
        self.strings.push(text.to_owned());
        self.string_ids.insert(text.to_owned(), id);
        id
    }

    fn function(&mut self, name_id: u32) -> u64 {
        if let Some(&id) = self.function_ids.get(&name_id) {
            return id;
        }
        let builder = self.builder;
        let name = self.string(&builder.frame_names[name_id as usize]);
        let id = self.functions.len() as u64 + 1;
        self.functions.push(Function {
            id,
            name,
            ..Function::default()
        });
        self.function_ids.insert(name_id, id);
        id
    }

    fn location(&mut self, frame: FrameKey) -> u64 {
        if let Some(&id) = self.location_ids.get(&frame) {
            return id;
        }
        let function_id = self.function(frame.0);
        let id = self.locations.len() as u64 + 1;
        self.locations.push(Location {
            id,
            mapping_id: 1,
            line: vec![Line {
                function_id,
                line: i64::from(frame.1),
            }],
            ..Location::default()
        });
        self.location_ids.insert(frame, id);
        id
    }

    /// Location ids of a stack, leaf first.
    fn locations(&mut self, stack: u32) -> Vec<u64> {
        let builder = self.builder;
        builder.stacks[stack as usize]
            .iter()
            .map(|&frame| self.location(frame))
            .collect()
    }

    fn labels(&mut self, labels: u32) -> Vec<Label> {
        let builder = self.builder;
        builder.label_sets[labels as usize]
            .iter()
            .map(|(key, value)| Label {
                key: self.string(key),
                str: self.string(value),
                ..Label::default()
            })
            .collect()
    }

    fn finish(self, profile: &mut Profile) {
        profile.string_table = self.strings;
        profile.function = self.functions;
        profile.location = self.locations;
    }
}
