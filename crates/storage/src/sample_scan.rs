//! Summing the `samples` section of a block per (partition, stack): the
//! querier's hot path for flame graphs, trees and pprof.
//!
//! The section is read with the Parquet async reader directly, not through
//! a query engine: only the row groups, and inside them only the pages,
//! whose `series_id` and `time_ns` statistics may match are fetched and
//! decoded, only the needed columns are projected, and values are summed
//! into a vector indexed by stack id (stack ids are dense per partition),
//! so no hash table is built. Rows come sorted by (partition, series_id,
//! time_ns, stack_id), which is what makes page pruning effective. The
//! section's Parquet metadata (with its page index) is decoded once per
//! [`BlockReader`] and kept with it.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;

use crate::reader::BlockReader;
use crate::schema::{SAMPLES, STACKS};
use crate::{Result, StorageError};

/// How much of a section's tail is fetched at once to find its Parquet
/// footer and page index.
const METADATA_PREFETCH: usize = 64 * 1024;

/// One section of a block object as a Parquet file for the async reader:
/// byte ranges are shifted into the block object.
struct SectionReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    offset: u64,
    length: u64,
}

impl SectionReader {
    fn shifted(&self, range: &Range<u64>) -> Range<u64> {
        let end = range.end.min(self.length);
        self.offset + range.start.min(end)..self.offset + end
    }
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for SectionReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let range = self.shifted(&range);
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        let ranges: Vec<Range<u64>> = ranges.iter().map(|r| self.shifted(r)).collect();
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let mut reader =
                ParquetMetaDataReader::new().with_prefetch_hint(Some(METADATA_PREFETCH));
            if let Some(o) = options {
                reader = reader
                    .with_column_index_policy(o.column_index_policy())
                    .with_offset_index_policy(o.offset_index_policy());
            }
            let length = self.length;
            Ok(Arc::new(reader.load_and_finish(self, length).await?))
        }
        .boxed()
    }
}

/// Column positions in [`SAMPLES_SCHEMA`].
const PARTITION: usize = 0;
const SERIES_ID: usize = 1;
const TIME_NS: usize = 2;
const PROFILE_IDX: usize = 3;
const STACK_ID: usize = 4;
const VALUE: usize = 5;
const SPAN_ID: usize = 6;

/// Rows decoded at a time: small enough that the column buffers are
/// reused by the allocator rather than fetched from (and returned to) the
/// OS for every batch.
const BATCH_ROWS: usize = 8 * 1024;

/// Which sample rows of a block to sum.
#[derive(Debug, Clone, Default)]
pub struct SampleSelection {
    /// Block-local series ids.
    pub series: Vec<u32>,
    /// Inclusive time range, ns.
    pub start_ns: i64,
    /// Inclusive end, ns.
    pub end_ns: i64,
    /// Only samples with one of these span ids.
    pub spans: Option<Vec<u64>>,
    /// Only samples of these rows of `profiles`.
    pub profiles: Option<Vec<u32>>,
}

/// The summed values of one partition: (stack id, value) by ascending stack
/// id, zero sums left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionStacks {
    /// Partition (index of the dataset in the block meta).
    pub partition: u32,
    /// (stack id, summed value), ascending by stack id.
    pub stacks: Vec<(u32, i64)>,
}

/// A set of small integer ids as a bitmap.
struct IdSet(Vec<bool>);

impl IdSet {
    fn new(ids: impl IntoIterator<Item = u32>) -> Self {
        let mut set = Vec::new();
        for id in ids {
            let i = id as usize;
            if i >= set.len() {
                set.resize(i + 1, false);
            }
            set[i] = true;
        }
        IdSet(set)
    }

    fn contains(&self, id: u32) -> bool {
        self.0.get(id as usize).copied().unwrap_or(false)
    }

    /// Whether any id in `[min, max]` is in the set.
    fn any_in(&self, min: u32, max: u32) -> bool {
        let end = (max as usize).saturating_add(1).min(self.0.len());
        (min as usize) < end && self.0[min as usize..end].iter().any(|b| *b)
    }
}

/// Per-partition sums indexed by stack id.
#[derive(Default)]
struct Sums {
    /// (partition, values by stack id), in the order partitions appear.
    partitions: Vec<(u32, Vec<i64>)>,
}

impl Sums {
    /// The index of `partition` in `partitions`, added if missing.
    fn slot_of(&mut self, partition: u32) -> usize {
        match self.partitions.iter().position(|(p, _)| *p == partition) {
            Some(i) => i,
            None => {
                self.partitions.push((partition, Vec::new()));
                self.partitions.len() - 1
            }
        }
    }

    fn into_stacks(mut self) -> Vec<PartitionStacks> {
        self.partitions.sort_by_key(|(p, _)| *p);
        self.partitions
            .into_iter()
            .map(|(partition, values)| PartitionStacks {
                partition,
                stacks: values
                    .into_iter()
                    .enumerate()
                    .filter(|(_, v)| *v != 0)
                    .map(|(s, v)| (s as u32, v))
                    .collect(),
            })
            .filter(|p| !p.stacks.is_empty())
            .collect()
    }
}

/// An Int32 `[min, max]` as i64; `unsigned` for `u32` columns, which
/// Parquet stores as Int32.
fn widen_i32((min, max): (i32, i32), unsigned: bool) -> (i64, i64) {
    if unsigned {
        (i64::from(min as u32), i64::from(max as u32))
    } else {
        (i64::from(min), i64::from(max))
    }
}

/// The `[min, max]` of an integer column chunk, as i64, if recorded.
pub(crate) fn chunk_range(stats: Option<&Statistics>, unsigned: bool) -> Option<(i64, i64)> {
    match stats? {
        Statistics::Int32(s) => Some(widen_i32((*s.min_opt()?, *s.max_opt()?), unsigned)),
        Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
        _ => None,
    }
}

/// The `[min, max]` of page `page` of an integer column, as i64, if recorded.
fn page_range(index: &ColumnIndexMetaData, page: usize, unsigned: bool) -> Option<(i64, i64)> {
    match index {
        ColumnIndexMetaData::INT32(ix) => Some(widen_i32(
            (*ix.min_value(page)?, *ix.max_value(page)?),
            unsigned,
        )),
        ColumnIndexMetaData::INT64(ix) => Some((*ix.min_value(page)?, *ix.max_value(page)?)),
        _ => None,
    }
}

/// The row ranges (within row group `rg`) of the pages of `column` whose
/// statistics may match `keep`; the whole group when there is no page index.
fn page_rows(
    meta: &ParquetMetaData,
    rg: usize,
    column: usize,
    unsigned: bool,
    keep: &impl Fn(i64, i64) -> bool,
) -> Vec<Range<usize>> {
    let rows = meta.row_group(rg).num_rows() as usize;
    let (Some(columns), Some(offsets)) = (meta.column_index(), meta.offset_index()) else {
        return std::iter::once(0..rows).collect();
    };
    let (Some(index), Some(offsets)) = (
        columns.get(rg).and_then(|c| c.get(column)),
        offsets.get(rg).and_then(|c| c.get(column)),
    ) else {
        return std::iter::once(0..rows).collect();
    };
    let pages = offsets.page_locations();
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let start = page.first_row_index as usize;
        let end = pages
            .get(i + 1)
            .map_or(rows, |next| next.first_row_index as usize);
        let wanted = page_range(index, i, unsigned).is_none_or(|(min, max)| keep(min, max));
        if !wanted || start >= end {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => out.push(start..end),
        }
    }
    out
}

impl SampleSelection {
    fn series_may_match(&self, set: &IdSet, min: i64, max: i64) -> bool {
        let (min, max) = (
            min.clamp(0, i64::from(u32::MAX)),
            max.clamp(0, i64::from(u32::MAX)),
        );
        set.any_in(min as u32, max as u32)
    }

    fn time_may_match(&self, min: i64, max: i64) -> bool {
        max >= self.start_ns && min <= self.end_ns
    }
}

impl BlockReader {
    /// The Parquet metadata (with page index) of the `samples` section,
    /// decoded on first use.
    pub(crate) async fn samples_metadata(&self) -> Result<&ArrowReaderMetadata> {
        self.samples_meta
            .get_or_try_init(|| async {
                let mut input = self.samples_input()?;
                let options =
                    ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
                ArrowReaderMetadata::load_async(&mut input, options)
                    .await
                    .map_err(|source| StorageError::Parquet {
                        operation: "decode",
                        section: SAMPLES,
                        source,
                    })
            })
            .await
    }

    fn samples_input(&self) -> Result<SectionReader> {
        let s = self.section(SAMPLES)?;
        Ok(SectionReader {
            store: Arc::clone(&self.store),
            path: Path::from(self.key()),
            offset: s.offset,
            length: s.length,
        })
    }

    /// Sums the values of the selected sample rows per (partition, stack).
    /// Partitions come in ascending order, and only those with a non-zero
    /// sum; stacks are by ascending id.
    pub async fn stack_values(&self, sel: &SampleSelection) -> Result<Vec<PartitionStacks>> {
        if sel.series.is_empty() || sel.start_ns > sel.end_ns {
            return Ok(Vec::new());
        }
        let series = IdSet::new(sel.series.iter().copied());
        let meta = self.samples_metadata().await?.clone();
        let parquet = Arc::clone(meta.metadata());

        // Row groups, then pages, whose statistics may match.
        let mut groups = Vec::new();
        let mut ranges: Vec<Range<usize>> = Vec::new();
        let mut base = 0;
        for (i, rg) in parquet.row_groups().iter().enumerate() {
            let series_ok = chunk_range(rg.column(SERIES_ID).statistics(), true)
                .is_none_or(|(min, max)| sel.series_may_match(&series, min, max));
            let time_ok = chunk_range(rg.column(TIME_NS).statistics(), false)
                .is_none_or(|(min, max)| sel.time_may_match(min, max));
            if !(series_ok && time_ok) {
                continue;
            }
            let by_series = page_rows(&parquet, i, SERIES_ID, true, &|min, max| {
                sel.series_may_match(&series, min, max)
            });
            let by_time = page_rows(&parquet, i, TIME_NS, false, &|min, max| {
                sel.time_may_match(min, max)
            });
            let rows = rg.num_rows() as usize;
            let a = RowSelection::from_consecutive_ranges(by_series.into_iter(), rows);
            let b = RowSelection::from_consecutive_ranges(by_time.into_iter(), rows);
            let both = a.intersection(&b);
            if !both.selects_any() {
                continue;
            }
            // Back to ranges, shifted to the position of this group among
            // the selected ones.
            let mut at = 0;
            for s in both.iter() {
                if !s.skip {
                    ranges.push(base + at..base + at + s.row_count);
                }
                at += s.row_count;
            }
            groups.push(i);
            base += rows;
        }
        if groups.is_empty() {
            return Ok(Vec::new());
        }

        let mut columns = vec![PARTITION, SERIES_ID, TIME_NS, STACK_ID, VALUE];
        if sel.profiles.is_some() {
            columns.push(PROFILE_IDX);
        }
        if sel.spans.is_some() {
            columns.push(SPAN_ID);
        }
        let mask = ProjectionMask::roots(parquet.file_metadata().schema_descr(), columns);
        let perr = |source| StorageError::Parquet {
            operation: "decode",
            section: SAMPLES,
            source,
        };
        let mut stream =
            ParquetRecordBatchStreamBuilder::new_with_metadata(self.samples_input()?, meta)
                .with_row_groups(groups)
                .with_row_selection(RowSelection::from_consecutive_ranges(
                    ranges.into_iter(),
                    base,
                ))
                .with_projection(mask)
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(perr)?;

        let profiles = sel.profiles.as_ref().map(|p| IdSet::new(p.iter().copied()));
        let mut spans = sel.spans.clone();
        if let Some(s) = spans.as_mut() {
            s.sort_unstable();
        }
        // Stack ids index the partition's stack tree, which has fewer nodes
        // than the block has stack rows; anything larger is not a stack.
        let max_stacks = self.section(STACKS).map(|s| s.rows as usize).unwrap_or(0);
        let mut sums = Sums::default();
        while let Some(batch) = stream.try_next().await.map_err(perr)? {
            self.sum_batch(
                &batch,
                sel,
                &series,
                profiles.as_ref(),
                spans.as_deref(),
                max_stacks,
                &mut sums,
            )?;
        }
        Ok(sums.into_stacks())
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the parsed parts of one selection"
    )]
    fn sum_batch(
        &self,
        batch: &RecordBatch,
        sel: &SampleSelection,
        series: &IdSet,
        profiles: Option<&IdSet>,
        spans: Option<&[u64]>,
        max_stacks: usize,
        sums: &mut Sums,
    ) -> Result<()> {
        let partition = self.samples_column::<UInt32Array>(batch, "partition")?;
        let series_id = self.samples_column::<UInt32Array>(batch, "series_id")?;
        let stack_id = self.samples_column::<UInt32Array>(batch, "stack_id")?;
        let time = self.samples_column::<Int64Array>(batch, "time_ns")?;
        let value = self.samples_column::<Int64Array>(batch, "value")?;
        let profile_idx = match profiles {
            Some(_) => Some(self.samples_column::<UInt32Array>(batch, "profile_idx")?),
            None => None,
        };
        let span_id = match spans {
            Some(_) => Some(self.samples_column::<UInt64Array>(batch, "span_id")?),
            None => None,
        };
        let (partition, series_id, stack_id) =
            (partition.values(), series_id.values(), stack_id.values());
        let (time, value) = (time.values(), value.values());
        let mut current: Option<(u32, usize)> = None;
        for i in 0..batch.num_rows() {
            let t = time[i];
            if t < sel.start_ns || t > sel.end_ns || !series.contains(series_id[i]) {
                continue;
            }
            if let (Some(set), Some(col)) = (profiles, profile_idx.as_ref())
                && !set.contains(col.value(i))
            {
                continue;
            }
            if let (Some(wanted), Some(col)) = (spans, span_id.as_ref())
                && (col.is_null(i) || wanted.binary_search(&col.value(i)).is_err())
            {
                continue;
            }
            let stack = stack_id[i] as usize;
            if stack >= max_stacks {
                continue;
            }
            let p = partition[i];
            // Rows are sorted by partition: look it up only when it changes.
            let slot = match current {
                Some((cp, slot)) if cp == p => slot,
                _ => {
                    let slot = sums.slot_of(p);
                    current = Some((p, slot));
                    slot
                }
            };
            let values = &mut sums.partitions[slot].1;
            if stack >= values.len() {
                values.resize(stack + 1, 0);
            }
            values[stack] += value[i];
        }
        Ok(())
    }

    /// Column `name` of a decoded `samples` batch as `T`.
    fn samples_column<'a, T: Array + 'static>(
        &self,
        batch: &'a RecordBatch,
        name: &str,
    ) -> Result<&'a T> {
        let corrupt = |reason: String| StorageError::Corrupt {
            key: self.key().to_owned(),
            reason,
        };
        batch
            .column_by_name(name)
            .ok_or_else(|| corrupt(format!("samples section has no column {name}")))?
            .as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| corrupt(format!("unexpected type of samples column {name}")))
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::SAMPLES_SCHEMA;

    use super::*;

    #[test]
    fn id_set_ranges() {
        let s = IdSet::new([3, 9]);
        assert!(s.contains(3) && s.contains(9) && !s.contains(4) && !s.contains(100));
        assert!(s.any_in(0, 3) && s.any_in(4, 9) && s.any_in(9, u32::MAX));
        assert!(!s.any_in(4, 8) && !s.any_in(10, 20) && !s.any_in(10, 5));
    }

    #[test]
    fn schema_positions_match() {
        let names: Vec<&str> = SAMPLES_SCHEMA
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            [
                names[PARTITION],
                names[SERIES_ID],
                names[TIME_NS],
                names[PROFILE_IDX],
                names[STACK_ID],
                names[VALUE],
                names[SPAN_ID]
            ],
            [
                "partition",
                "series_id",
                "time_ns",
                "profile_idx",
                "stack_id",
                "value",
                "span_id"
            ]
        );
    }
}
