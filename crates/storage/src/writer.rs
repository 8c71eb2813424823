//! Building blocks: normalised profiles in, one encoded block object out.
//!
//! [`BlockBuilder`] deduplicates symbols per partition (one partition per
//! `service_name`): functions, mappings and locations become dense local
//! ids, and every stack becomes a node of the partition's parent-pointer
//! tree, so a stack is stored once however many samples reference it. Each
//! (profile, sample type, stack) with a non-zero value becomes one sample
//! row. Rows are sorted so that Parquet row-group statistics on
//! `partition`, `series_id` and `time_ns` prune scans.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeBinaryBuilder, Int64Array, ListBuilder, PrimitiveBuilder, RecordBatch,
    StringArray, StringBuilder, UInt8Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Int64Type, SchemaRef, UInt32Type};
use bytes::Bytes;
use hashbrown::HashTable;
use kiln_model::Labels;
use kiln_model::labels::{LABEL_NAME, LABEL_SERVICE_NAME, UNKNOWN_SERVICE};
use kiln_proto::google::v1::Profile;
use kiln_proto::kiln::block::v1::{BlockFooter, Section};
use kiln_proto::kiln::metastore::v1::{BlockMeta, Coverage, Dataset};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use prost::Message;
use rustc_hash::{FxHashMap, FxHasher};
use ulid::Ulid;

use crate::schema::{self, SECTIONS};
use crate::{FORMAT_VERSION, Result, StorageError};

/// The trailer magic that ends every block object.
pub const MAGIC: &[u8; 8] = b"KILNBLK1";
/// Trailer length: footer length (u32 LE), CRC32 of the footer (u32 LE), magic.
pub const TRAILER_LEN: usize = 16;

/// Columns written with page statistics (in every section that has them):
/// the sort keys that row-group and page pruning use.
const STATISTICS_COLUMNS: &[&str] = &[
    "partition",
    "series_id",
    "time_ns",
    "id",
    "service_name",
    "profile_type",
    "fingerprint",
];

/// A function as stored: name, system name, file name, start line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FunctionRow {
    /// Function name.
    pub name: String,
    /// System (mangled) name.
    pub system_name: String,
    /// Source file.
    pub filename: String,
    /// First line of the function.
    pub start_line: i64,
}

/// A mapping as stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MappingRow {
    /// Start address.
    pub memory_start: u64,
    /// End address.
    pub memory_limit: u64,
    /// Offset in the file.
    pub file_offset: u64,
    /// Binary file name.
    pub filename: String,
    /// Build id.
    pub build_id: String,
    /// Bit flags: has_functions, has_filenames, has_line_numbers, has_inline_frames.
    pub flags: u8,
}

/// A location as stored. `mapping_id` is 1-based; 0 means no mapping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LocationRow {
    /// Mapping (1-based local id, 0 = none).
    pub mapping_id: u32,
    /// Instruction address.
    pub address: u64,
    /// (function id, line) pairs, innermost first.
    pub lines: Vec<(u32, i64)>,
}

/// Symbols of one partition (one service) while a block is being built.
///
/// Functions and locations are looked up by borrowed fields
/// ([`PartitionBuilder::function_ref`], [`PartitionBuilder::location_ref`]):
/// a profile mostly repeats symbols the partition already has, and building
/// an owned row (three strings, a vector of lines) only to find it present
/// was a large part of the ingest path's allocations.
#[derive(Debug)]
pub struct PartitionBuilder {
    service: String,
    functions: Vec<FunctionRow>,
    /// Ids into `functions`, hashed by [`function_hash`].
    function_index: HashTable<u32>,
    mappings: Vec<MappingRow>,
    mapping_index: FxHashMap<MappingRow, u32>,
    locations: Vec<LocationRow>,
    /// Ids into `locations`, hashed by [`location_hash`].
    location_index: HashTable<u32>,
    stack_parents: Vec<u32>,
    stack_locations: Vec<u32>,
    stack_index: FxHashMap<(u32, u32), u32>,
    profile_types: BTreeSet<String>,
    min_time: i64,
    max_time: i64,
}

fn function_hash(name: &str, system_name: &str, filename: &str, start_line: i64) -> u64 {
    let mut h = FxHasher::default();
    (name, system_name, filename, start_line).hash(&mut h);
    h.finish()
}

fn location_hash(mapping_id: u32, address: u64, lines: &[(u32, i64)]) -> u64 {
    let mut h = FxHasher::default();
    (mapping_id, address, lines).hash(&mut h);
    h.finish()
}

impl PartitionBuilder {
    fn new(service: String) -> Self {
        PartitionBuilder {
            service,
            functions: Vec::new(),
            function_index: HashTable::new(),
            mappings: Vec::new(),
            mapping_index: FxHashMap::default(),
            locations: Vec::new(),
            location_index: HashTable::new(),
            stack_parents: vec![0],
            stack_locations: vec![0],
            stack_index: FxHashMap::default(),
            profile_types: BTreeSet::new(),
            min_time: i64::MAX,
            max_time: i64::MIN,
        }
    }

    /// The local id of a function, added if new.
    pub fn function(&mut self, f: FunctionRow) -> u32 {
        self.function_ref(&f.name, &f.system_name, &f.filename, f.start_line)
    }

    /// The local id of the function with these fields, added (copied) if new.
    pub fn function_ref(
        &mut self,
        name: &str,
        system_name: &str,
        filename: &str,
        start_line: i64,
    ) -> u32 {
        let hash = function_hash(name, system_name, filename, start_line);
        let functions = &self.functions;
        let found = self.function_index.find(hash, |&id| {
            let f = &functions[id as usize];
            f.start_line == start_line
                && f.name == name
                && f.system_name == system_name
                && f.filename == filename
        });
        if let Some(&id) = found {
            return id;
        }
        let id = self.functions.len() as u32;
        self.functions.push(FunctionRow {
            name: name.to_owned(),
            system_name: system_name.to_owned(),
            filename: filename.to_owned(),
            start_line,
        });
        let functions = &self.functions;
        self.function_index.insert_unique(hash, id, |&id| {
            let f = &functions[id as usize];
            function_hash(&f.name, &f.system_name, &f.filename, f.start_line)
        });
        id
    }

    /// The 1-based local id of a mapping, added if new.
    pub fn mapping(&mut self, m: MappingRow) -> u32 {
        if let Some(&id) = self.mapping_index.get(&m) {
            return id;
        }
        self.mappings.push(m.clone());
        let id = self.mappings.len() as u32;
        self.mapping_index.insert(m, id);
        id
    }

    /// The local id of a location, added if new.
    pub fn location(&mut self, l: LocationRow) -> u32 {
        self.location_ref(l.mapping_id, l.address, &l.lines)
    }

    /// The local id of the location with these fields, added (copied) if new.
    pub fn location_ref(&mut self, mapping_id: u32, address: u64, lines: &[(u32, i64)]) -> u32 {
        let hash = location_hash(mapping_id, address, lines);
        let locations = &self.locations;
        let found = self.location_index.find(hash, |&id| {
            let l = &locations[id as usize];
            l.mapping_id == mapping_id && l.address == address && l.lines == lines
        });
        if let Some(&id) = found {
            return id;
        }
        let id = self.locations.len() as u32;
        self.locations.push(LocationRow {
            mapping_id,
            address,
            lines: lines.to_vec(),
        });
        let locations = &self.locations;
        self.location_index.insert_unique(hash, id, |&id| {
            let l = &locations[id as usize];
            location_hash(l.mapping_id, l.address, &l.lines)
        });
        id
    }

    /// The stack node below `parent` for `location`, added if new. Node 0 is
    /// the root; a stack's id is the id of its leaf node.
    pub fn stack_child(&mut self, parent: u32, location: u32) -> u32 {
        let next = self.stack_parents.len() as u32;
        let id = *self.stack_index.entry((parent, location)).or_insert(next);
        if id == next {
            self.stack_parents.push(parent);
            self.stack_locations.push(location);
        }
        id
    }

    /// Number of stack nodes including the root.
    pub fn stack_nodes(&self) -> usize {
        self.stack_parents.len()
    }
}

#[derive(Debug)]
struct SeriesEntry {
    partition: u32,
    profile_type: String,
    labels: Labels,
}

#[derive(Debug, Clone, Copy)]
struct ProfileRow {
    series: u32,
    time: i64,
    id: Option<[u8; 16]>,
    total: i64,
    duration: i64,
}

#[derive(Debug, Clone, Copy)]
struct SampleRow {
    profile: u32,
    stack: u32,
    value: i64,
    span: Option<u64>,
}

/// An encoded block and its metadata.
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    /// The whole object.
    pub bytes: Bytes,
    /// Its metadata (with `size` and `object_key` filled in).
    pub meta: BlockMeta,
}

/// Accumulates profiles and encodes them as one block.
#[derive(Debug)]
pub struct BlockBuilder {
    tenant: String,
    shard: u32,
    level: u32,
    resolution_ns: i64,
    partitions: Vec<PartitionBuilder>,
    partition_index: FxHashMap<String, u32>,
    series: Vec<SeriesEntry>,
    series_index: FxHashMap<(u32, String, Labels), u32>,
    profiles: Vec<ProfileRow>,
    samples: Vec<SampleRow>,
    max_row_group_rows: usize,
    sources: Vec<String>,
    coverage: Vec<Coverage>,
}

impl BlockBuilder {
    /// A builder for a raw block (segment or compacted raw data).
    pub fn new(tenant: impl Into<String>, shard: u32, level: u32) -> Self {
        BlockBuilder {
            tenant: tenant.into(),
            shard,
            level,
            resolution_ns: 0,
            partitions: Vec::new(),
            partition_index: FxHashMap::default(),
            series: Vec::new(),
            series_index: FxHashMap::default(),
            profiles: Vec::new(),
            samples: Vec::new(),
            max_row_group_rows: 1 << 20,
            sources: Vec::new(),
            coverage: Vec::new(),
        }
    }

    /// Marks the block as a roll-up tier with buckets of `resolution_ns`.
    pub fn with_resolution(mut self, resolution_ns: i64) -> Self {
        self.resolution_ns = resolution_ns;
        self
    }

    /// Sets the largest number of rows per Parquet row group.
    pub fn with_max_row_group_rows(mut self, rows: usize) -> Self {
        self.max_row_group_rows = rows.max(1024);
        self
    }

    /// Records the blocks this one is compacted from.
    pub fn with_sources(mut self, sources: Vec<String>) -> Self {
        self.sources = sources;
        self
    }

    /// Records the time ranges a roll-up block holds completely.
    pub fn with_coverage(mut self, coverage: Vec<Coverage>) -> Self {
        self.coverage = coverage;
        self
    }

    /// Number of sample rows so far.
    pub fn sample_rows(&self) -> usize {
        self.samples.len()
    }

    /// Number of profile rows so far.
    pub fn profile_rows(&self) -> usize {
        self.profiles.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    /// The partition of a service, added if new.
    pub fn partition(&mut self, service: &str) -> u32 {
        if let Some(&p) = self.partition_index.get(service) {
            return p;
        }
        let p = self.partitions.len() as u32;
        self.partitions
            .push(PartitionBuilder::new(service.to_owned()));
        self.partition_index.insert(service.to_owned(), p);
        p
    }

    /// Mutable access to a partition's symbols.
    pub fn partition_mut(&mut self, partition: u32) -> &mut PartitionBuilder {
        &mut self.partitions[partition as usize]
    }

    /// The (temporary) series id of (partition, profile type, labels).
    pub fn series(&mut self, partition: u32, profile_type: &str, labels: &Labels) -> u32 {
        let key = (partition, profile_type.to_owned(), labels.clone());
        if let Some(&s) = self.series_index.get(&key) {
            return s;
        }
        let s = self.series.len() as u32;
        self.series.push(SeriesEntry {
            partition,
            profile_type: key.1.clone(),
            labels: key.2.clone(),
        });
        self.series_index.insert(key, s);
        self.partitions[partition as usize]
            .profile_types
            .insert(profile_type.to_owned());
        s
    }

    /// Adds a profile row (one profile of one series, or one roll-up bucket);
    /// returns its index for [`BlockBuilder::add_sample`].
    pub fn add_profile_row(
        &mut self,
        series: u32,
        time_ns: i64,
        id: Option<[u8; 16]>,
        duration_ns: i64,
    ) -> u32 {
        let p = self.series[series as usize].partition as usize;
        let part = &mut self.partitions[p];
        part.min_time = part.min_time.min(time_ns);
        part.max_time = part.max_time.max(time_ns);
        let idx = self.profiles.len() as u32;
        self.profiles.push(ProfileRow {
            series,
            time: time_ns,
            id,
            total: 0,
            duration: duration_ns,
        });
        idx
    }

    /// Adds `value` for `stack` to a profile row.
    pub fn add_sample(&mut self, profile: u32, stack: u32, value: i64, span: Option<u64>) {
        if value == 0 {
            return;
        }
        self.profiles[profile as usize].total += value;
        self.samples.push(SampleRow {
            profile,
            stack,
            value,
            span,
        });
    }

    /// Adds one merged tree of function names as a roll-up bucket (or any
    /// function-level profile): one profile row at `time_ns` and one sample
    /// per node with a self value.
    pub fn add_tree(
        &mut self,
        labels: &Labels,
        profile_type: &str,
        time_ns: i64,
        duration_ns: i64,
        tree: &kiln_model::StackTree,
    ) -> Result<()> {
        let service = labels.get(LABEL_SERVICE_NAME).unwrap_or(UNKNOWN_SERVICE);
        let p = self.partition(service);
        let series = self.series(p, profile_type, labels);
        let row = self.add_profile_row(series, time_ns, None, duration_ns);
        let n = tree.node_count();
        let mut stack_of = vec![0u32; n + 1];
        let mut location_of_name: FxHashMap<u32, u32> = FxHashMap::default();
        let mut samples = Vec::new();
        {
            let part = &mut self.partitions[p as usize];
            for node in 1..=n as u32 {
                let name_id = tree.name_of(node);
                let loc = match location_of_name.get(&name_id) {
                    Some(&l) => l,
                    None => {
                        let name = tree.name(name_id);
                        let f = part.function(FunctionRow {
                            name: name.to_owned(),
                            system_name: name.to_owned(),
                            filename: String::new(),
                            start_line: 0,
                        });
                        let l = part.location(LocationRow {
                            mapping_id: 0,
                            address: 0,
                            lines: vec![(f, 0)],
                        });
                        location_of_name.insert(name_id, l);
                        l
                    }
                };
                let parent = stack_of[tree.parent(node) as usize];
                stack_of[node as usize] = part.stack_child(parent, loc);
                let v = tree.self_value(node);
                if v != 0 {
                    samples.push((stack_of[node as usize], v));
                }
            }
        }
        for (stack, v) in samples {
            self.add_sample(row, stack, v, None);
        }
        Ok(())
    }

    /// Adds a normalised pprof profile: one series per sample type.
    pub fn add_pprof(
        &mut self,
        labels: &Labels,
        id: Option<[u8; 16]>,
        profile: &Profile,
    ) -> Result<()> {
        let strings = &profile.string_table;
        let s = |i: i64| -> Result<&str> {
            usize::try_from(i)
                .ok()
                .and_then(|i| strings.get(i))
                .map(String::as_str)
                .ok_or_else(|| {
                    StorageError::InvalidProfile(format!("string index {i} out of range"))
                })
        };
        let name = labels
            .get(LABEL_NAME)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| StorageError::InvalidProfile("profile has no __name__ label".into()))?;
        let service = labels.get(LABEL_SERVICE_NAME).unwrap_or(UNKNOWN_SERVICE);
        let (period_type, period_unit) = match &profile.period_type {
            Some(vt) => (s(vt.r#type)?, s(vt.unit)?),
            None => ("", ""),
        };
        let mut profile_types = Vec::with_capacity(profile.sample_type.len());
        for st in &profile.sample_type {
            profile_types.push(format!(
                "{name}:{}:{}:{period_type}:{period_unit}",
                s(st.r#type)?,
                s(st.unit)?
            ));
        }
        let p = self.partition(service);

        let part = &mut self.partitions[p as usize];
        let mut functions: FxHashMap<u64, u32> = FxHashMap::default();
        functions.reserve(profile.function.len());
        for f in &profile.function {
            let id = part.function_ref(s(f.name)?, s(f.system_name)?, s(f.filename)?, f.start_line);
            functions.insert(f.id, id);
        }
        let mut mappings: FxHashMap<u64, u32> = FxHashMap::default();
        for m in &profile.mapping {
            let flags = u8::from(m.has_functions)
                | (u8::from(m.has_filenames) << 1)
                | (u8::from(m.has_line_numbers) << 2)
                | (u8::from(m.has_inline_frames) << 3);
            let row = MappingRow {
                memory_start: m.memory_start,
                memory_limit: m.memory_limit,
                file_offset: m.file_offset,
                filename: s(m.filename)?.to_owned(),
                build_id: s(m.build_id)?.to_owned(),
                flags,
            };
            mappings.insert(m.id, part.mapping(row));
        }
        let mut locations: FxHashMap<u64, u32> = FxHashMap::default();
        locations.reserve(profile.location.len());
        let mut lines = Vec::new();
        for l in &profile.location {
            lines.clear();
            for line in &l.line {
                let f = *functions.get(&line.function_id).ok_or_else(|| {
                    StorageError::InvalidProfile(format!(
                        "location {} references missing function {}",
                        l.id, line.function_id
                    ))
                })?;
                lines.push((f, line.line));
            }
            let mapping_id = if l.mapping_id == 0 {
                0
            } else {
                mappings.get(&l.mapping_id).copied().unwrap_or(0)
            };
            locations.insert(l.id, part.location_ref(mapping_id, l.address, &lines));
        }

        // Resolve every stack first, so that a bad sample fails the profile
        // before any row of it is added.
        let span_key = strings
            .iter()
            .position(|s| s == "span_id")
            .map(|i| i as i64);
        let mut resolved: Vec<(u32, Option<u64>)> = Vec::with_capacity(profile.sample.len());
        // The previous sample's path, root first (pprof location ids and
        // their nodes): samples often share a prefix with the one before,
        // whose nodes need no lookup.
        let mut path: Vec<(u64, u32)> = Vec::new();
        for sample in &profile.sample {
            let mut node = 0u32;
            let mut depth = 0;
            for loc in sample.location_id.iter().rev() {
                if let Some(&(prev, prev_node)) = path.get(depth)
                    && prev == *loc
                {
                    node = prev_node;
                    depth += 1;
                    continue;
                }
                let l = *locations.get(loc).ok_or_else(|| {
                    StorageError::InvalidProfile(format!(
                        "sample references missing location {loc}"
                    ))
                })?;
                node = part.stack_child(node, l);
                path.truncate(depth);
                path.push((*loc, node));
                depth += 1;
            }
            let span = match span_key {
                Some(k) => sample
                    .label
                    .iter()
                    .find(|l| l.key == k && l.str != 0)
                    .and_then(|l| strings.get(l.str as usize))
                    .and_then(|hex| kiln_model::labels::parse_span_id(hex)),
                None => None,
            };
            resolved.push((node, span));
        }

        let mut rows: Vec<Option<u32>> = vec![None; profile.sample_type.len()];
        for (sample, &(node, span)) in profile.sample.iter().zip(&resolved) {
            for (i, &value) in sample.value.iter().enumerate().take(profile_types.len()) {
                if value == 0 {
                    continue;
                }
                let row = match rows[i] {
                    Some(r) => r,
                    None => {
                        let series = self.series(p, &profile_types[i], labels);
                        let r = self.add_profile_row(
                            series,
                            profile.time_nanos,
                            id,
                            profile.duration_nanos,
                        );
                        rows[i] = Some(r);
                        r
                    }
                };
                self.add_sample(row, node, value, span);
            }
        }
        Ok(())
    }

    /// Encodes the block. `object_key` is recorded in the metadata.
    pub fn finish(self, id: Ulid, object_key: String, created_at_ms: i64) -> Result<EncodedBlock> {
        let BlockBuilder {
            tenant,
            shard,
            level,
            resolution_ns,
            partitions,
            series,
            profiles,
            mut samples,
            max_row_group_rows,
            sources,
            coverage,
            ..
        } = self;

        // Final series order: (partition, profile type, labels).
        let mut order: Vec<u32> = (0..series.len() as u32).collect();
        order.sort_by(|a, b| {
            let (x, y) = (&series[*a as usize], &series[*b as usize]);
            (x.partition, &x.profile_type, &x.labels).cmp(&(
                y.partition,
                &y.profile_type,
                &y.labels,
            ))
        });
        let mut series_final = vec![0u32; series.len()];
        for (new, &old) in order.iter().enumerate() {
            series_final[old as usize] = new as u32;
        }

        // Final profile order: (series, time).
        let mut porder: Vec<u32> = (0..profiles.len() as u32).collect();
        porder.sort_by_key(|&i| {
            let r = &profiles[i as usize];
            (series_final[r.series as usize], r.time, i)
        });
        let mut profile_final = vec![0u32; profiles.len()];
        for (new, &old) in porder.iter().enumerate() {
            profile_final[old as usize] = new as u32;
        }
        samples.sort_unstable_by_key(|s| (profile_final[s.profile as usize], s.stack, s.span));

        let mut min_time = i64::MAX;
        let mut max_time = i64::MIN;
        for p in &profiles {
            min_time = min_time.min(p.time);
            max_time = max_time.max(p.time);
        }
        if profiles.is_empty() {
            min_time = 0;
            max_time = 0;
        }

        let props = |rows: usize| {
            let mut b = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_max_row_group_row_count(Some(rows))
                .set_statistics_enabled(EnabledStatistics::None);
            // Statistics only where readers prune by them: the keys rows
            // are sorted by. Min/max of names, addresses, values and stack
            // ids prune nothing and cost string comparisons on every write.
            for column in STATISTICS_COLUMNS {
                b = b.set_column_statistics_enabled(
                    ColumnPath::from(*column),
                    EnabledStatistics::Page,
                );
            }
            b.build()
        };

        let mut out: Vec<u8> = Vec::new();
        let mut sections = Vec::with_capacity(SECTIONS.len());
        let mut push_section =
            |name: &'static str, bytes: Vec<u8>, rows: usize, out: &mut Vec<u8>| {
                sections.push(Section {
                    name: name.to_owned(),
                    offset: out.len() as u64,
                    length: bytes.len() as u64,
                    rows: rows as u64,
                });
                out.extend_from_slice(&bytes);
            };

        // series
        {
            let n = order.len();
            let mut names =
                ListBuilder::new(StringBuilder::new()).with_field(item_field(DataType::Utf8));
            let mut values =
                ListBuilder::new(StringBuilder::new()).with_field(item_field(DataType::Utf8));
            let mut part = Vec::with_capacity(n);
            let mut service = Vec::with_capacity(n);
            let mut ptype = Vec::with_capacity(n);
            let mut fps = Vec::with_capacity(n);
            for &old in &order {
                let e = &series[old as usize];
                part.push(e.partition);
                service.push(partitions[e.partition as usize].service.as_str());
                ptype.push(e.profile_type.as_str());
                for (k, v) in e.labels.iter() {
                    names.values().append_value(k);
                    values.values().append_value(v);
                }
                names.append(true);
                values.append(true);
                fps.push(e.labels.fingerprint());
            }
            let cols: Vec<ArrayRef> = vec![
                Arc::new(UInt32Array::from_iter_values(0..n as u32)),
                Arc::new(UInt32Array::from(part)),
                Arc::new(StringArray::from(service)),
                Arc::new(StringArray::from(ptype)),
                Arc::new(names.finish()),
                Arc::new(values.finish()),
                Arc::new(UInt64Array::from(fps)),
            ];
            let bytes = encode(
                schema::SERIES,
                &schema::SERIES_SCHEMA,
                cols,
                props(max_row_group_rows),
                &[],
            )?;
            push_section(schema::SERIES, bytes, n, &mut out);
        }

        // profiles
        {
            let n = porder.len();
            let mut sid = Vec::with_capacity(n);
            let mut time = Vec::with_capacity(n);
            let mut ids = FixedSizeBinaryBuilder::with_capacity(n, 16);
            let mut total = Vec::with_capacity(n);
            let mut dur = Vec::with_capacity(n);
            for &old in &porder {
                let r = &profiles[old as usize];
                sid.push(series_final[r.series as usize]);
                time.push(r.time);
                match r.id {
                    Some(id) => ids.append_value(id).map_err(|source| StorageError::Arrow {
                        section: schema::PROFILES,
                        source,
                    })?,
                    None => ids.append_null(),
                }
                total.push(r.total);
                dur.push(r.duration);
            }
            let cols: Vec<ArrayRef> = vec![
                Arc::new(UInt32Array::from(sid)),
                Arc::new(Int64Array::from(time)),
                Arc::new(ids.finish()),
                Arc::new(Int64Array::from(total)),
                Arc::new(Int64Array::from(dur)),
            ];
            let bytes = encode(
                schema::PROFILES,
                &schema::PROFILES_SCHEMA,
                cols,
                props(max_row_group_rows),
                &[],
            )?;
            push_section(schema::PROFILES, bytes, n, &mut out);
        }

        // samples
        {
            let n = samples.len();
            let mut part = Vec::with_capacity(n);
            let mut sid = Vec::with_capacity(n);
            let mut time = Vec::with_capacity(n);
            let mut pidx = Vec::with_capacity(n);
            let mut stack = Vec::with_capacity(n);
            let mut value = Vec::with_capacity(n);
            let mut span = Vec::with_capacity(n);
            for s in &samples {
                let prof = &profiles[s.profile as usize];
                let sf = series_final[prof.series as usize];
                part.push(series[prof.series as usize].partition);
                sid.push(sf);
                time.push(prof.time);
                pidx.push(profile_final[s.profile as usize]);
                stack.push(s.stack);
                value.push(s.value);
                span.push(s.span);
            }
            let cols: Vec<ArrayRef> = vec![
                Arc::new(UInt32Array::from(part)),
                Arc::new(UInt32Array::from(sid)),
                Arc::new(Int64Array::from(time)),
                Arc::new(UInt32Array::from(pidx)),
                Arc::new(UInt32Array::from(stack)),
                Arc::new(Int64Array::from(value)),
                Arc::new(UInt64Array::from(span)),
            ];
            let bytes = encode(
                schema::SAMPLES,
                &schema::SAMPLES_SCHEMA,
                cols,
                props(max_row_group_rows),
                &[],
            )?;
            push_section(schema::SAMPLES, bytes, n, &mut out);
        }

        // Symbol sections: rows grouped by partition; a row group boundary is
        // placed between partitions once a group holds enough rows, so that
        // readers can skip other services' symbols in large blocks.
        let boundaries = |counts: &[usize]| -> Vec<usize> {
            let mut cuts = Vec::new();
            let mut acc = 0;
            let mut pos = 0;
            for &c in counts {
                pos += c;
                acc += c;
                if acc >= 8192 {
                    cuts.push(pos);
                    acc = 0;
                }
            }
            cuts
        };

        // functions
        {
            let counts: Vec<usize> = partitions.iter().map(|p| p.functions.len()).collect();
            let n: usize = counts.iter().sum();
            let (mut part, mut ids, mut start) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut name, mut sys, mut file) = (
                StringBuilder::new(),
                StringBuilder::new(),
                StringBuilder::new(),
            );
            for (pi, p) in partitions.iter().enumerate() {
                for (i, f) in p.functions.iter().enumerate() {
                    part.push(pi as u32);
                    ids.push(i as u32);
                    name.append_value(&f.name);
                    sys.append_value(&f.system_name);
                    file.append_value(&f.filename);
                    start.push(f.start_line);
                }
            }
            let cols: Vec<ArrayRef> = vec![
                Arc::new(UInt32Array::from(part)),
                Arc::new(UInt32Array::from(ids)),
                Arc::new(name.finish()),
                Arc::new(sys.finish()),
                Arc::new(file.finish()),
                Arc::new(Int64Array::from(start)),
            ];
            let bytes = encode(
                schema::FUNCTIONS,
                &schema::FUNCTIONS_SCHEMA,
                cols,
                props(usize::MAX),
                &boundaries(&counts),
            )?;
            push_section(schema::FUNCTIONS, bytes, n, &mut out);
        }

        // mappings
        {
            let counts: Vec<usize> = partitions.iter().map(|p| p.mappings.len()).collect();
            let n: usize = counts.iter().sum();
            let mut part = Vec::with_capacity(n);
            let mut ids = Vec::with_capacity(n);
            let (mut ms, mut ml, mut fo, mut flags) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut file, mut build) = (StringBuilder::new(), StringBuilder::new());
            for (pi, p) in partitions.iter().enumerate() {
                for (i, m) in p.mappings.iter().enumerate() {
                    part.push(pi as u32);
                    ids.push(i as u32 + 1);
                    ms.push(m.memory_start);
                    ml.push(m.memory_limit);
                    fo.push(m.file_offset);
                    file.append_value(&m.filename);
                    build.append_value(&m.build_id);
                    flags.push(m.flags);
                }
            }
            let cols: Vec<ArrayRef> = vec![
                Arc::new(UInt32Array::from(part)),
                Arc::new(UInt32Array::from(ids)),
                Arc::new(UInt64Array::from(ms)),
                Arc::new(UInt64Array::from(ml)),
                Arc::new(UInt64Array::from(fo)),
                Arc::new(file.finish()),
                Arc::new(build.finish()),
                Arc::new(UInt8Array::from(flags)),
            ];
            let bytes = encode(
                schema::MAPPINGS,
                &schema::MAPPINGS_SCHEMA,
                cols,
                props(usize::MAX),
                &boundaries(&counts),
            )?;
            push_section(schema::MAPPINGS, bytes, n, &mut out);
        }

        // locations
        {
            let counts: Vec<usize> = partitions.iter().map(|p| p.locations.len()).collect();
            let n: usize = counts.iter().sum();
            let (mut part, mut ids, mut maps, mut addrs) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut lf = ListBuilder::new(PrimitiveBuilder::<UInt32Type>::new())
                .with_field(item_field(DataType::UInt32));
            let mut ln = ListBuilder::new(PrimitiveBuilder::<Int64Type>::new())
                .with_field(item_field(DataType::Int64));
            for (pi, p) in partitions.iter().enumerate() {
                for (i, l) in p.locations.iter().enumerate() {
                    part.push(pi as u32);
                    ids.push(i as u32);
                    maps.push(l.mapping_id);
                    addrs.push(l.address);
                    for &(f, line) in &l.lines {
                        lf.values().append_value(f);
                        ln.values().append_value(line);
                    }
                    lf.append(true);
                    ln.append(true);
                }
            }
            let cols: Vec<ArrayRef> = vec![
                Arc::new(UInt32Array::from(part)),
                Arc::new(UInt32Array::from(ids)),
                Arc::new(UInt32Array::from(maps)),
                Arc::new(UInt64Array::from(addrs)),
                Arc::new(lf.finish()),
                Arc::new(ln.finish()),
            ];
            let bytes = encode(
                schema::LOCATIONS,
                &schema::LOCATIONS_SCHEMA,
                cols,
                props(usize::MAX),
                &boundaries(&counts),
            )?;
            push_section(schema::LOCATIONS, bytes, n, &mut out);
        }

        // stacks
        {
            let counts: Vec<usize> = partitions.iter().map(|p| p.stack_parents.len()).collect();
            let n: usize = counts.iter().sum();
            let (mut part, mut ids, mut parents, mut locs) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for (pi, p) in partitions.iter().enumerate() {
                for i in 0..p.stack_parents.len() {
                    part.push(pi as u32);
                    ids.push(i as u32);
                    parents.push(p.stack_parents[i]);
                    locs.push(p.stack_locations[i]);
                }
            }
            let cols: Vec<ArrayRef> = vec![
                Arc::new(UInt32Array::from(part)),
                Arc::new(UInt32Array::from(ids)),
                Arc::new(UInt32Array::from(parents)),
                Arc::new(UInt32Array::from(locs)),
            ];
            let bytes = encode(
                schema::STACKS,
                &schema::STACKS_SCHEMA,
                cols,
                props(usize::MAX),
                &boundaries(&counts),
            )?;
            push_section(schema::STACKS, bytes, n, &mut out);
        }

        let datasets = partitions
            .iter()
            .map(|p| Dataset {
                service_name: p.service.clone(),
                profile_types: p.profile_types.iter().cloned().collect(),
                min_time: if p.min_time == i64::MAX {
                    0
                } else {
                    p.min_time
                },
                max_time: if p.max_time == i64::MIN {
                    0
                } else {
                    p.max_time
                },
            })
            .collect();
        let mut meta = BlockMeta {
            format_version: FORMAT_VERSION,
            id: id.to_string(),
            tenant,
            shard,
            min_time,
            max_time,
            level,
            resolution: resolution_ns,
            object_key,
            size: 0,
            datasets,
            created_at: created_at_ms,
            profiles: profiles.len() as u64,
            samples: samples.len() as u64,
            series: series.len() as u64,
            sources,
            coverage,
        };
        let footer = BlockFooter {
            format_version: FORMAT_VERSION,
            meta: Some(meta.clone()),
            sections,
        }
        .encode_to_vec();
        let crc = crc32fast::hash(&footer);
        out.extend_from_slice(&footer);
        out.extend_from_slice(&(footer.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(MAGIC);
        meta.size = out.len() as u64;
        Ok(EncodedBlock {
            bytes: Bytes::from(out),
            meta,
        })
    }
}

fn item_field(dt: DataType) -> Arc<Field> {
    Arc::new(Field::new("item", dt, false))
}

/// Encodes one section as a Parquet file, cutting row groups at `cuts`
/// (row offsets) in addition to the row-count limit in `props`.
fn encode(
    section: &'static str,
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
    props: WriterProperties,
    cuts: &[usize],
) -> Result<Vec<u8>> {
    let batch = RecordBatch::try_new(Arc::clone(schema), columns)
        .map_err(|source| StorageError::Arrow { section, source })?;
    let perr = |source| StorageError::Parquet {
        operation: "encode",
        section,
        source,
    };
    let mut writer =
        ArrowWriter::try_new(Vec::new(), Arc::clone(schema), Some(props)).map_err(perr)?;
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&batch.num_rows())) {
        if cut > start {
            writer
                .write(&batch.slice(start, cut - start))
                .map_err(perr)?;
            writer.flush().map_err(perr)?;
            start = cut;
        }
    }
    writer.into_inner().map_err(perr)
}

/// Checks that [`BlockBuilder::add_pprof`] can store `profile` under
/// `labels`: a `__name__` label, string indexes in range, and every
/// referenced function and location present.
pub fn check_pprof(labels: &Labels, profile: &Profile) -> Result<()> {
    let bad = |m: String| Err(StorageError::InvalidProfile(m));
    if labels.get(LABEL_NAME).is_none_or(str::is_empty) {
        return bad("profile has no __name__ label".into());
    }
    let n = profile.string_table.len() as i64;
    let ok = |i: i64| (0..n).contains(&i);
    let types = profile
        .sample_type
        .iter()
        .map(|v| (v.r#type, v.unit))
        .chain(profile.period_type.iter().map(|v| (v.r#type, v.unit)));
    for (t, u) in types {
        if !ok(t) || !ok(u) {
            return bad(format!("value type references string {t}/{u} of {n}"));
        }
    }
    let mut functions = rustc_hash::FxHashSet::default();
    for f in &profile.function {
        if !ok(f.name) || !ok(f.system_name) || !ok(f.filename) {
            return bad(format!("function {} references a missing string", f.id));
        }
        functions.insert(f.id);
    }
    for m in &profile.mapping {
        if !ok(m.filename) || !ok(m.build_id) {
            return bad(format!("mapping {} references a missing string", m.id));
        }
    }
    let mut locations = rustc_hash::FxHashSet::default();
    for l in &profile.location {
        if let Some(line) = l
            .line
            .iter()
            .find(|line| !functions.contains(&line.function_id))
        {
            return bad(format!(
                "location {} references missing function {}",
                l.id, line.function_id
            ));
        }
        locations.insert(l.id);
    }
    for s in &profile.sample {
        if let Some(l) = s.location_id.iter().find(|l| !locations.contains(l)) {
            return bad(format!("sample references missing location {l}"));
        }
        if s.label.iter().any(|l| !ok(l.key) || !ok(l.str)) {
            return bad("sample label references a missing string".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kiln_model::Labels;
    use kiln_proto::google::v1::{Function, Line, Location, Profile, Sample, ValueType};
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
    use ulid::Ulid;

    use crate::{BlockBuilder, BlockReader};

    /// A profile whose samples share prefixes with the sample before them,
    /// diverge at the root, in the middle and at the leaf, are shorter and
    /// longer than it, repeat it, and whose locations 4 and 6 (and functions
    /// 3 and 5) are copies with other ids: every sample's stored stack must
    /// be its own frames, and copies must become one symbol.
    fn profile() -> (Profile, BTreeMap<String, i64>) {
        let names = ["", "a", "b", "c", "d", "c", "cpu", "nanoseconds"];
        let string_table: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        // function id → name index; function 5 is a copy of function 3.
        let function = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
            .map(|(id, name)| Function {
                id,
                name,
                system_name: name,
                filename: 0,
                start_line: 0,
            })
            .to_vec();
        // location id → function id; location 6 is a copy of location 3
        // (same address, function 5 = function 3).
        let location = [
            (1, 1, 0x10),
            (2, 2, 0x20),
            (3, 3, 0x30),
            (4, 4, 0x40),
            (6, 5, 0x30),
        ]
        .map(|(id, f, address)| Location {
            id,
            mapping_id: 0,
            address,
            line: vec![Line {
                function_id: f,
                line: 1,
            }],
            is_folded: false,
        })
        .to_vec();
        // Stacks leaf first, as pprof stores them.
        let stacks: [(&[u64], i64); 9] = [
            (&[3, 2, 1], 1),
            (&[4, 2, 1], 2),    // diverges at the leaf
            (&[2, 1], 4),       // shorter: a prefix of the one before
            (&[4, 3, 2, 1], 8), // longer
            (&[6, 2, 1], 16),   // location 6 = location 3: same stack as the first
            (&[1, 2], 32),      // diverges at the root
            (&[3, 2, 1], 64),   // back to the first
            (&[3, 2, 1], 128),  // repeated
            (&[4, 1], 256),     // diverges in the middle
        ];
        let frame = |id: u64| match id {
            1 => "a",
            2 => "b",
            3 | 6 => "c",
            4 => "d",
            _ => unreachable!(),
        };
        let mut expected: BTreeMap<String, i64> = BTreeMap::new();
        let mut sample = Vec::new();
        for (ids, v) in stacks {
            let key: Vec<&str> = ids.iter().rev().map(|&id| frame(id)).collect();
            *expected.entry(key.join(";")).or_default() += v;
            sample.push(Sample {
                location_id: ids.to_vec(),
                value: vec![v],
                label: vec![],
            });
        }
        let p = Profile {
            sample_type: vec![ValueType { r#type: 6, unit: 7 }],
            sample,
            location,
            function,
            string_table,
            time_nanos: 1_000,
            ..Default::default()
        };
        (p, expected)
    }

    #[tokio::test]
    async fn every_sample_keeps_its_own_stack_and_copies_share_symbols() {
        let (p, expected) = profile();
        let labels = Labels::from_pairs([("__name__", "process_cpu"), ("service_name", "s")]);
        let mut b = BlockBuilder::new("t", 0, 0);
        b.add_pprof(&labels, None, &p).unwrap();
        // The same profile again: everything is found, nothing added.
        b.add_pprof(&labels, None, &p).unwrap();
        let block = b.finish(Ulid::new(), "k".into(), 0).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        store
            .put(&Path::from("k"), PutPayload::from(block.bytes))
            .await
            .unwrap();
        let r = BlockReader::open(store, "k", None).await.unwrap();
        let sym = r.symbols(0).await.unwrap();
        // a, b, c (functions 3 and 5 are one), d.
        assert_eq!(sym.functions.len(), 4);
        // Locations 3 and 6 are one.
        assert_eq!(sym.locations.len(), 4);
        let mut got: BTreeMap<String, i64> = BTreeMap::new();
        for row in r.sample_rows().await.unwrap() {
            *got.entry(crate::tests::resolve(&sym, row.stack))
                .or_default() += row.value;
        }
        let doubled: BTreeMap<String, i64> =
            expected.iter().map(|(k, v)| (k.clone(), 2 * v)).collect();
        assert_eq!(got, doubled);
        // Distinct stack nodes: a, a;b, a;b;c, a;b;d, a;b;c;d... counted from
        // the expected stacks' prefixes.
        let mut prefixes = std::collections::BTreeSet::new();
        for k in expected.keys() {
            let parts: Vec<&str> = k.split(';').collect();
            for i in 1..=parts.len() {
                prefixes.insert(parts[..i].join(";"));
            }
        }
        assert_eq!(sym.stack_parents.len(), prefixes.len() + 1);
    }
}
