//! Compaction kernels: merging blocks into one, and building roll-up tiers.
//!
//! - [`merge_into`] copies a loaded block into a [`BlockBuilder`], remapping
//!   series, symbols and stack nodes, and dropping profiles whose id was
//!   already copied (pushes that were retried and stored twice) and rows
//!   outside an optional time range. Used for raw levels (segments → hour →
//!   day) and for merging tier blocks of the same resolution.
//! - [`RollupBuilder`] turns raw rows into per-series, per-bucket trees of
//!   function names, truncated to a node cap with an `other` node per parent
//!   (so totals stay exact), for several resolutions at once.

use std::collections::HashMap;

use kiln_model::StackTree;
use kiln_proto::kiln::metastore::v1::Coverage;
use rustc_hash::FxHashSet;

use crate::reader::{ProfileRowData, SampleRowData};
use crate::resolve::{FrameMode, add_stacks};
use crate::writer::{LocationRow, MappingRow};
use crate::{BlockBuilder, BlockReader, PartitionSymbols, Result, SeriesRow};

/// Everything of one block, in memory.
#[derive(Debug)]
pub struct LoadedBlock {
    /// Block id.
    pub id: String,
    /// Series rows.
    pub series: Vec<SeriesRow>,
    /// Profile rows.
    pub profiles: Vec<ProfileRowData>,
    /// Sample rows, in storage order.
    pub samples: Vec<SampleRowData>,
    /// Symbols by partition.
    pub symbols: HashMap<u32, PartitionSymbols>,
}

impl LoadedBlock {
    /// Reads a whole block.
    pub async fn load(reader: &BlockReader) -> Result<Self> {
        let series = reader.series().await?;
        let profiles = reader.profile_rows().await?;
        let samples = reader.sample_rows().await?;
        let mut symbols = HashMap::new();
        let mut partitions: Vec<u32> = series.iter().map(|s| s.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        for p in partitions {
            symbols.insert(p, reader.symbols(p).await?);
        }
        Ok(LoadedBlock {
            id: reader.meta().id.clone(),
            series,
            profiles,
            samples,
            symbols,
        })
    }
}

/// What a merge copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MergeStats {
    /// Profile rows copied.
    pub profiles: u64,
    /// Profile rows dropped as duplicates of an already copied id.
    pub duplicates: u64,
    /// Profile rows dropped because they were outside the kept range.
    pub outside: u64,
    /// Sample rows copied.
    pub samples: u64,
}

/// Profiles already copied into a builder: (profile id, series in the
/// builder). One pprof with several sample types has one row per sample
/// type, all with the same id, in different series.
pub type SeenProfiles = FxHashSet<([u8; 16], u32)>;

/// Copies `block` into `out`. Profiles already in `seen` are skipped (and
/// the copied ones are added to it); with `keep = Some((start, end))` only
/// rows with `start <= time < end` are copied.
pub fn merge_into(
    out: &mut BlockBuilder,
    block: &LoadedBlock,
    seen: &mut SeenProfiles,
    keep: Option<(i64, i64)>,
) -> Result<MergeStats> {
    let mut stats = MergeStats::default();
    // Series.
    let mut series_map: HashMap<u32, u32> = HashMap::with_capacity(block.series.len());
    let mut partition_map: HashMap<u32, u32> = HashMap::new();
    for s in &block.series {
        let p = *partition_map
            .entry(s.partition)
            .or_insert_with(|| out.partition(&s.service_name));
        series_map.insert(s.series_id, out.series(p, &s.profile_type, &s.labels));
    }
    // Symbols: stack node → node in `out`, per source partition.
    let mut stack_maps: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&src_p, sym) in &block.symbols {
        let Some(&dst_p) = partition_map.get(&src_p) else {
            continue;
        };
        let part = out.partition_mut(dst_p);
        let functions: Vec<u32> = sym
            .functions
            .iter()
            .map(|f| part.function(f.clone()))
            .collect();
        let mappings: Vec<u32> = sym
            .mappings
            .iter()
            .map(|m: &MappingRow| part.mapping(m.clone()))
            .collect();
        let locations: Vec<u32> = sym
            .locations
            .iter()
            .map(|l| {
                let mapping_id = l
                    .mapping_id
                    .checked_sub(1)
                    .and_then(|m| mappings.get(m as usize))
                    .copied()
                    .unwrap_or(0);
                let lines = l
                    .lines
                    .iter()
                    .map(|(f, line)| (functions[*f as usize], *line))
                    .collect();
                part.location(LocationRow {
                    mapping_id,
                    address: l.address,
                    lines,
                })
            })
            .collect();
        let mut nodes = vec![0u32; sym.stack_parents.len()];
        for n in 1..sym.stack_parents.len() {
            let parent = nodes[sym.stack_parents[n] as usize];
            nodes[n] = part.stack_child(parent, locations[sym.stack_locations[n] as usize]);
        }
        stack_maps.insert(src_p, nodes);
    }
    // Profiles.
    let mut profile_map: Vec<Option<u32>> = vec![None; block.profiles.len()];
    for (i, p) in block.profiles.iter().enumerate() {
        if keep.is_some_and(|(s, e)| p.time_ns < s || p.time_ns >= e) {
            stats.outside += 1;
            continue;
        }
        let Some(&series) = series_map.get(&p.series) else {
            continue;
        };
        if let Some(id) = p.id
            && !seen.insert((id, series))
        {
            stats.duplicates += 1;
            continue;
        }
        profile_map[i] = Some(out.add_profile_row(series, p.time_ns, p.id, p.duration_ns));
        stats.profiles += 1;
    }
    // Samples.
    for s in &block.samples {
        let Some(Some(row)) = profile_map.get(s.profile_idx as usize) else {
            continue;
        };
        let Some(node) = stack_maps
            .get(&s.partition)
            .and_then(|m| m.get(s.stack as usize))
        else {
            continue;
        };
        out.add_sample(*row, *node, s.value, s.span);
        stats.samples += 1;
    }
    Ok(stats)
}

/// Builds roll-up tiers from raw rows: per series and bucket, the merged
/// tree of function names, truncated to `node_cap` nodes.
#[derive(Debug)]
pub struct RollupBuilder {
    resolutions: Vec<i64>,
    node_cap: usize,
    builders: Vec<BlockBuilder>,
}

/// Bucket start of `t` at resolution `r`.
pub fn bucket_of(t: i64, r: i64) -> i64 {
    t.div_euclid(r) * r
}

impl RollupBuilder {
    /// A builder for `resolutions` (ns) writing blocks of `tenant`/`shard`
    /// at `level`, each covering `coverage`.
    pub fn new(
        tenant: &str,
        shard: u32,
        level: u32,
        resolutions: &[i64],
        node_cap: usize,
        coverage: Vec<Coverage>,
    ) -> Self {
        let builders = resolutions
            .iter()
            .map(|r| {
                BlockBuilder::new(tenant, shard, level)
                    .with_resolution(*r)
                    .with_coverage(coverage.clone())
            })
            .collect();
        RollupBuilder {
            resolutions: resolutions.to_vec(),
            node_cap,
            builders,
        }
    }

    /// Adds every row of a raw block.
    pub fn add_block(&mut self, block: &LoadedBlock) -> Result<()> {
        // Rows are stored sorted by (partition, series, time), so buckets
        // complete one after another within each series.
        let profiles_time = |s: &SampleRowData| s.time_ns;
        let mut start = 0;
        while start < block.samples.len() {
            let series = block.samples[start].series;
            let partition = block.samples[start].partition;
            let mut end = start;
            while end < block.samples.len() && block.samples[end].series == series {
                end += 1;
            }
            let rows = &block.samples[start..end];
            if let (Some(row), Some(sym)) = (
                block.series.iter().find(|s| s.series_id == series),
                block.symbols.get(&partition),
            ) {
                for (i, &r) in self.resolutions.clone().iter().enumerate() {
                    let mut b = 0;
                    while b < rows.len() {
                        let bucket = bucket_of(profiles_time(&rows[b]), r);
                        let mut e = b;
                        let mut stacks: Vec<(u32, i64)> = Vec::new();
                        while e < rows.len() && bucket_of(rows[e].time_ns, r) == bucket {
                            stacks.push((rows[e].stack, rows[e].value));
                            e += 1;
                        }
                        let mut tree = StackTree::new();
                        add_stacks(&mut tree, sym, &stacks, FrameMode::Function);
                        let tree = if tree.node_count() > self.node_cap {
                            tree.truncated(self.node_cap)
                        } else {
                            tree
                        };
                        self.builders[i].add_tree(
                            &row.labels,
                            &row.profile_type,
                            bucket,
                            r,
                            &tree,
                        )?;
                        b = e;
                    }
                }
            }
            start = end;
        }
        Ok(())
    }

    /// The builders, one per resolution, in the order given.
    pub fn finish(self) -> Vec<BlockBuilder> {
        self.builders
    }
}

/// A tree of function names rebuilt from a block's rows (for tests and tools).
pub fn tree_of(block: &LoadedBlock, keep: impl Fn(&SampleRowData) -> bool) -> StackTree {
    let mut tree = StackTree::new();
    let mut by_partition: HashMap<u32, Vec<(u32, i64)>> = HashMap::new();
    for s in block.samples.iter().filter(|s| keep(s)) {
        by_partition
            .entry(s.partition)
            .or_default()
            .push((s.stack, s.value));
    }
    for (p, stacks) in by_partition {
        if let Some(sym) = block.symbols.get(&p) {
            add_stacks(&mut tree, sym, &stacks, FrameMode::Function);
        }
    }
    tree
}
