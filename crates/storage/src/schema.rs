//! Arrow schemas of the Parquet sections of a block.
//!
//! Ids (`series_id`, function, mapping, location and stack ids) are local to
//! the block; symbol ids are further local to a *partition* (one service,
//! the index of its dataset in the block meta). Stack ids are nodes of a
//! parent-pointer tree per partition whose node 0 is the empty root.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Section names, in the order they are written.
pub const SECTIONS: [&str; 7] = [
    SERIES, PROFILES, SAMPLES, FUNCTIONS, MAPPINGS, LOCATIONS, STACKS,
];

/// One row per series (label set + profile type).
pub const SERIES: &str = "series";
/// One row per profile per sample type (or per roll-up bucket).
pub const PROFILES: &str = "profiles";
/// One row per (profile, stack) with a non-zero value.
pub const SAMPLES: &str = "samples";
/// Functions per partition.
pub const FUNCTIONS: &str = "functions";
/// Mappings per partition.
pub const MAPPINGS: &str = "mappings";
/// Locations per partition.
pub const LOCATIONS: &str = "locations";
/// Stack-tree nodes per partition.
pub const STACKS: &str = "stacks";

fn list_of(name: &str, item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new(name, item, false)))
}

/// `series`: series_id, partition, service_name, profile_type, label names
/// and values (parallel lists, sorted by name), fingerprint.
pub static SERIES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt32, false),
        Field::new("partition", DataType::UInt32, false),
        Field::new("service_name", DataType::Utf8, false),
        Field::new("profile_type", DataType::Utf8, false),
        Field::new("label_names", list_of("item", DataType::Utf8), false),
        Field::new("label_values", list_of("item", DataType::Utf8), false),
        Field::new("fingerprint", DataType::UInt64, false),
    ]))
});

/// `profiles`: series_id, time_ns, profile_id (16-byte UUID, null in
/// roll-ups), total, duration_ns. Sorted by (series_id, time_ns).
pub static PROFILES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt32, false),
        Field::new("time_ns", DataType::Int64, false),
        Field::new("profile_id", DataType::FixedSizeBinary(16), true),
        Field::new("total", DataType::Int64, false),
        Field::new("duration_ns", DataType::Int64, false),
    ]))
});

/// `samples`: partition, series_id, time_ns, profile_idx (row of the
/// profile in `profiles`), stack_id, value, span_id (nullable). Sorted by
/// (partition, series_id, time_ns, stack_id).
pub static SAMPLES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::UInt32, false),
        Field::new("series_id", DataType::UInt32, false),
        Field::new("time_ns", DataType::Int64, false),
        Field::new("profile_idx", DataType::UInt32, false),
        Field::new("stack_id", DataType::UInt32, false),
        Field::new("value", DataType::Int64, false),
        Field::new("span_id", DataType::UInt64, true),
    ]))
});

/// `functions`: partition, id, name, system_name, filename, start_line.
pub static FUNCTIONS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::UInt32, false),
        Field::new("id", DataType::UInt32, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("system_name", DataType::Utf8, false),
        Field::new("filename", DataType::Utf8, false),
        Field::new("start_line", DataType::Int64, false),
    ]))
});

/// `mappings`: partition, id, memory_start, memory_limit, file_offset,
/// filename, build_id, flags (bit 0 has_functions, 1 has_filenames,
/// 2 has_line_numbers, 3 has_inline_frames).
pub static MAPPINGS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::UInt32, false),
        Field::new("id", DataType::UInt32, false),
        Field::new("memory_start", DataType::UInt64, false),
        Field::new("memory_limit", DataType::UInt64, false),
        Field::new("file_offset", DataType::UInt64, false),
        Field::new("filename", DataType::Utf8, false),
        Field::new("build_id", DataType::Utf8, false),
        Field::new("flags", DataType::UInt8, false),
    ]))
});

/// `locations`: partition, id, mapping_id, address, and the inline lines
/// as parallel lists (function ids and line numbers; the first line is the
/// innermost call, as in pprof).
pub static LOCATIONS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::UInt32, false),
        Field::new("id", DataType::UInt32, false),
        Field::new("mapping_id", DataType::UInt32, false),
        Field::new("address", DataType::UInt64, false),
        Field::new("line_functions", list_of("item", DataType::UInt32), false),
        Field::new("line_numbers", list_of("item", DataType::Int64), false),
    ]))
});

/// `stacks`: partition, id, parent, location_id. Node 0 of each partition
/// is the root (parent 0, location 0, no frame).
pub static STACKS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::UInt32, false),
        Field::new("id", DataType::UInt32, false),
        Field::new("parent", DataType::UInt32, false),
        Field::new("location_id", DataType::UInt32, false),
    ]))
});
