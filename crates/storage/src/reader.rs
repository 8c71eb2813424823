//! Reading blocks: the footer, the series table and a partition's symbols.
//! Sample and profile rows are scanned by the querier through DataFusion
//! over [`SectionStore`](crate::SectionStore) paths.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, FixedSizeBinaryArray, Int64Array, ListArray, RecordBatch, StringArray,
    UInt8Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{Int64Type, UInt32Type};
use bytes::Bytes;
use kiln_model::Labels;
use kiln_proto::kiln::block::v1::{BlockFooter, Section};
use kiln_proto::kiln::metastore::v1::BlockMeta;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::RowGroupMetaData;
use prost::Message;

use crate::schema;
use crate::section_store::SectionStore;
use crate::writer::{FunctionRow, LocationRow, MAGIC, MappingRow, TRAILER_LEN};
use crate::{FORMAT_VERSION, Result, StorageError};

/// How much of the object's tail is fetched to find the footer at once.
const FOOTER_PREFETCH: u64 = 64 * 1024;

/// One row of the `series` section.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    /// Block-local series id.
    pub series_id: u32,
    /// Partition (index of the dataset in the block meta).
    pub partition: u32,
    /// Service name.
    pub service_name: String,
    /// Profile type ID.
    pub profile_type: String,
    /// Series labels (incl. `__name__` and `service_name`).
    pub labels: Labels,
    /// Fingerprint of `labels`.
    pub fingerprint: u64,
}

/// One row of the `profiles` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileRowData {
    /// Block-local series id.
    pub series: u32,
    /// Profile (or bucket) time.
    pub time_ns: i64,
    /// Profile UUID (none in roll-ups).
    pub id: Option<[u8; 16]>,
    /// Sum of the profile's sample values.
    pub total: i64,
    /// Profile duration (bucket width in roll-ups).
    pub duration_ns: i64,
}

/// One row of the `samples` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRowData {
    /// Partition.
    pub partition: u32,
    /// Block-local series id.
    pub series: u32,
    /// Profile (or bucket) time.
    pub time_ns: i64,
    /// Row of the profile in `profiles`.
    pub profile_idx: u32,
    /// Stack node id in the partition.
    pub stack: u32,
    /// Value.
    pub value: i64,
    /// Span id.
    pub span: Option<u64>,
}

/// The symbols of one partition of a block.
#[derive(Debug, Clone, Default)]
pub struct PartitionSymbols {
    /// Functions by id.
    pub functions: Vec<FunctionRow>,
    /// Mappings by id − 1.
    pub mappings: Vec<MappingRow>,
    /// Locations by id.
    pub locations: Vec<LocationRow>,
    /// Parent of each stack node (node 0 is the root).
    pub stack_parents: Vec<u32>,
    /// Location of each stack node.
    pub stack_locations: Vec<u32>,
}

impl PartitionSymbols {
    /// Approximate memory held, for cache accounting.
    pub fn approx_bytes(&self) -> usize {
        let f: usize = self
            .functions
            .iter()
            .map(|f| 48 + f.name.len() + f.system_name.len() + f.filename.len())
            .sum();
        let l: usize = self.locations.iter().map(|l| 48 + l.lines.len() * 16).sum();
        f + l + self.mappings.len() * 96 + self.stack_parents.len() * 8
    }
}

/// An opened block.
#[derive(Debug, Clone)]
pub struct BlockReader {
    pub(crate) store: Arc<dyn ObjectStore>,
    key: String,
    footer: BlockFooter,
    /// The `samples` section's Parquet metadata, decoded on first use (see
    /// [`BlockReader::stack_values`]).
    pub(crate) samples_meta: Arc<tokio::sync::OnceCell<ArrowReaderMetadata>>,
}

impl BlockReader {
    /// Opens the block at `key`, reading its footer. `size` avoids one
    /// request when the object size is known (from the block index).
    pub async fn open(store: Arc<dyn ObjectStore>, key: &str, size: Option<u64>) -> Result<Self> {
        let path = Path::from(key);
        let get_err = |source| StorageError::Get {
            key: key.to_owned(),
            source,
        };
        let corrupt = |reason: String| StorageError::Corrupt {
            key: key.to_owned(),
            reason,
        };
        let (tail, size) = match size {
            Some(size) => {
                let start = size.saturating_sub(FOOTER_PREFETCH);
                (
                    store.get_range(&path, start..size).await.map_err(get_err)?,
                    size,
                )
            }
            None => {
                let opts = GetOptions {
                    range: Some(GetRange::Suffix(FOOTER_PREFETCH)),
                    ..Default::default()
                };
                let r = store.get_opts(&path, opts).await.map_err(get_err)?;
                let size = r.meta.size;
                (r.bytes().await.map_err(get_err)?, size)
            }
        };
        if tail.len() < TRAILER_LEN {
            return Err(corrupt(format!("object of {size} bytes is too small")));
        }
        let t = &tail[tail.len() - TRAILER_LEN..];
        if &t[8..16] != MAGIC {
            return Err(corrupt("missing block magic".into()));
        }
        let footer_len = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as u64;
        let crc = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        let needed = footer_len + TRAILER_LEN as u64;
        if needed > size {
            return Err(corrupt(format!(
                "footer length {footer_len} exceeds object size {size}"
            )));
        }
        let footer_bytes: Bytes = if needed as usize <= tail.len() {
            let end = tail.len() - TRAILER_LEN;
            tail.slice(end - footer_len as usize..end)
        } else {
            let start = size - needed;
            store
                .get_range(&path, start..start + footer_len)
                .await
                .map_err(get_err)?
        };
        if crc32fast::hash(&footer_bytes) != crc {
            return Err(corrupt("footer checksum mismatch".into()));
        }
        let footer = BlockFooter::decode(footer_bytes)
            .map_err(|e| corrupt(format!("undecodable footer: {e}")))?;
        if footer.format_version > FORMAT_VERSION || footer.format_version == 0 {
            return Err(StorageError::UnsupportedVersion {
                key: key.to_owned(),
                version: footer.format_version,
                supported: FORMAT_VERSION,
            });
        }
        if footer.meta.is_none() {
            return Err(corrupt("footer has no metadata".into()));
        }
        for s in &footer.sections {
            if s.offset
                .checked_add(s.length)
                .is_none_or(|end| end > size - needed)
            {
                return Err(corrupt(format!("section {} runs past the data", s.name)));
            }
        }
        Ok(BlockReader {
            store,
            key: key.to_owned(),
            footer,
            samples_meta: Arc::default(),
        })
    }

    /// The object key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The block metadata stored in the footer.
    pub fn meta(&self) -> &BlockMeta {
        self.footer.meta.as_ref().expect("checked in open")
    }

    /// A section by name.
    pub fn section(&self, name: &str) -> Result<&Section> {
        self.footer
            .sections
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| StorageError::Corrupt {
                key: self.key.clone(),
                reason: format!("no section {name}"),
            })
    }

    /// The URL of a section for DataFusion (see [`SectionStore`]).
    pub fn section_url(&self, name: &str) -> Result<String> {
        let s = self.section(name)?;
        Ok(SectionStore::url_of(&self.key, name, s.offset, s.length))
    }

    /// Reads all rows of a section, optionally only the row groups whose
    /// `partition` column (column 0) may contain `partition`.
    async fn read_section(
        &self,
        name: &'static str,
        partition: Option<u32>,
    ) -> Result<Vec<RecordBatch>> {
        let s = self.section(name)?;
        let path = Path::from(self.key.as_str());
        let bytes = self
            .store
            .get_range(&path, s.offset..s.offset + s.length)
            .await
            .map_err(|source| StorageError::Get {
                key: self.key.clone(),
                source,
            })?;
        let perr = |source| StorageError::Parquet {
            operation: "decode",
            section: name,
            source,
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(perr)?;
        let groups: Vec<usize> = builder
            .metadata()
            .row_groups()
            .iter()
            .enumerate()
            .filter(|(_, rg)| partition.is_none_or(|p| row_group_may_contain(rg, p)))
            .map(|(i, _)| i)
            .collect();
        let reader = builder
            .with_row_groups(groups)
            .with_batch_size(8 * 1024)
            .build()
            .map_err(perr)?;
        let mut out = Vec::new();
        for batch in reader {
            out.push(batch.map_err(|source| StorageError::Arrow {
                section: name,
                source,
            })?);
        }
        Ok(out)
    }

    /// Reads the series table.
    pub async fn series(&self) -> Result<Vec<SeriesRow>> {
        let batches = self.read_section(schema::SERIES, None).await?;
        let mut out = Vec::new();
        for b in &batches {
            let ids = col::<UInt32Array>(b, 0, self)?;
            let parts = col::<UInt32Array>(b, 1, self)?;
            let services = col::<StringArray>(b, 2, self)?;
            let types = col::<StringArray>(b, 3, self)?;
            let names = col::<ListArray>(b, 4, self)?;
            let values = col::<ListArray>(b, 5, self)?;
            let fps = col::<UInt64Array>(b, 6, self)?;
            for i in 0..b.num_rows() {
                let n = names.value(i);
                let v = values.value(i);
                let (n, v) = (n.as_string::<i32>(), v.as_string::<i32>());
                let labels = Labels::from_pairs((0..n.len()).map(|j| (n.value(j), v.value(j))));
                out.push(SeriesRow {
                    series_id: ids.value(i),
                    partition: parts.value(i),
                    service_name: services.value(i).to_owned(),
                    profile_type: types.value(i).to_owned(),
                    labels,
                    fingerprint: fps.value(i),
                });
            }
        }
        Ok(out)
    }

    /// Reads the profiles table: (series_id, time_ns, profile_id, total).
    pub async fn profiles(&self) -> Result<Vec<(u32, i64, Option<[u8; 16]>, i64)>> {
        let batches = self.read_section(schema::PROFILES, None).await?;
        let mut out = Vec::new();
        for b in &batches {
            let sid = col::<UInt32Array>(b, 0, self)?;
            let time = col::<Int64Array>(b, 1, self)?;
            let ids = col::<FixedSizeBinaryArray>(b, 2, self)?;
            let total = col::<Int64Array>(b, 3, self)?;
            for i in 0..b.num_rows() {
                let id = if ids.is_null(i) {
                    None
                } else {
                    ids.value(i).try_into().ok()
                };
                out.push((sid.value(i), time.value(i), id, total.value(i)));
            }
        }
        Ok(out)
    }

    /// Reads every profile row: (series_id, time_ns, profile_id, total, duration_ns).
    pub async fn profile_rows(&self) -> Result<Vec<ProfileRowData>> {
        let batches = self.read_section(schema::PROFILES, None).await?;
        let mut out = Vec::new();
        for b in &batches {
            let sid = col::<UInt32Array>(b, 0, self)?;
            let time = col::<Int64Array>(b, 1, self)?;
            let ids = col::<FixedSizeBinaryArray>(b, 2, self)?;
            let total = col::<Int64Array>(b, 3, self)?;
            let dur = col::<Int64Array>(b, 4, self)?;
            for i in 0..b.num_rows() {
                let id = if ids.is_null(i) {
                    None
                } else {
                    ids.value(i).try_into().ok()
                };
                out.push(ProfileRowData {
                    series: sid.value(i),
                    time_ns: time.value(i),
                    id,
                    total: total.value(i),
                    duration_ns: dur.value(i),
                });
            }
        }
        Ok(out)
    }

    /// Reads every sample row, in storage order (partition, series, time, stack).
    pub async fn sample_rows(&self) -> Result<Vec<SampleRowData>> {
        let batches = self.read_section(schema::SAMPLES, None).await?;
        let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for b in &batches {
            let part = col::<UInt32Array>(b, 0, self)?;
            let sid = col::<UInt32Array>(b, 1, self)?;
            let time = col::<Int64Array>(b, 2, self)?;
            let pidx = col::<UInt32Array>(b, 3, self)?;
            let stack = col::<UInt32Array>(b, 4, self)?;
            let value = col::<Int64Array>(b, 5, self)?;
            let span = col::<UInt64Array>(b, 6, self)?;
            for i in 0..b.num_rows() {
                out.push(SampleRowData {
                    partition: part.value(i),
                    series: sid.value(i),
                    time_ns: time.value(i),
                    profile_idx: pidx.value(i),
                    stack: stack.value(i),
                    value: value.value(i),
                    span: (!span.is_null(i)).then(|| span.value(i)),
                });
            }
        }
        Ok(out)
    }

    /// Reads the symbols of one partition.
    pub async fn symbols(&self, partition: u32) -> Result<PartitionSymbols> {
        let (f, m, l, s) = futures::try_join!(
            self.read_section(schema::FUNCTIONS, Some(partition)),
            self.read_section(schema::MAPPINGS, Some(partition)),
            self.read_section(schema::LOCATIONS, Some(partition)),
            self.read_section(schema::STACKS, Some(partition)),
        )?;
        let mut sym = PartitionSymbols::default();
        for b in &f {
            let p = col::<UInt32Array>(b, 0, self)?;
            let id = col::<UInt32Array>(b, 1, self)?;
            let (name, sys, file) = (
                col::<StringArray>(b, 2, self)?,
                col::<StringArray>(b, 3, self)?,
                col::<StringArray>(b, 4, self)?,
            );
            let start = col::<Int64Array>(b, 5, self)?;
            for i in (0..b.num_rows()).filter(|&i| p.value(i) == partition) {
                self.expect_dense(id.value(i), sym.functions.len(), schema::FUNCTIONS)?;
                sym.functions.push(FunctionRow {
                    name: name.value(i).to_owned(),
                    system_name: sys.value(i).to_owned(),
                    filename: file.value(i).to_owned(),
                    start_line: start.value(i),
                });
            }
        }
        for b in &m {
            let p = col::<UInt32Array>(b, 0, self)?;
            let id = col::<UInt32Array>(b, 1, self)?;
            let (ms, ml, fo) = (
                col::<UInt64Array>(b, 2, self)?,
                col::<UInt64Array>(b, 3, self)?,
                col::<UInt64Array>(b, 4, self)?,
            );
            let (file, build) = (
                col::<StringArray>(b, 5, self)?,
                col::<StringArray>(b, 6, self)?,
            );
            let flags = col::<UInt8Array>(b, 7, self)?;
            for i in (0..b.num_rows()).filter(|&i| p.value(i) == partition) {
                self.expect_dense(id.value(i), sym.mappings.len() + 1, schema::MAPPINGS)?;
                sym.mappings.push(MappingRow {
                    memory_start: ms.value(i),
                    memory_limit: ml.value(i),
                    file_offset: fo.value(i),
                    filename: file.value(i).to_owned(),
                    build_id: build.value(i).to_owned(),
                    flags: flags.value(i),
                });
            }
        }
        for b in &l {
            let p = col::<UInt32Array>(b, 0, self)?;
            let id = col::<UInt32Array>(b, 1, self)?;
            let maps = col::<UInt32Array>(b, 2, self)?;
            let addrs = col::<UInt64Array>(b, 3, self)?;
            let lf = col::<ListArray>(b, 4, self)?;
            let ln = col::<ListArray>(b, 5, self)?;
            // The lists' flat values and offsets, rather than a sliced
            // array (an allocation) per row.
            let (fv, nv) = (
                lf.values().as_primitive::<UInt32Type>().values(),
                ln.values().as_primitive::<Int64Type>().values(),
            );
            let (fo, no) = (lf.value_offsets(), ln.value_offsets());
            for i in (0..b.num_rows()).filter(|&i| p.value(i) == partition) {
                self.expect_dense(id.value(i), sym.locations.len(), schema::LOCATIONS)?;
                let fs = &fv[fo[i] as usize..fo[i + 1] as usize];
                let ns = &nv[no[i] as usize..no[i + 1] as usize];
                let lines = fs.iter().copied().zip(ns.iter().copied()).collect();
                sym.locations.push(LocationRow {
                    mapping_id: maps.value(i),
                    address: addrs.value(i),
                    lines,
                });
            }
        }
        for b in &s {
            let p = col::<UInt32Array>(b, 0, self)?;
            let id = col::<UInt32Array>(b, 1, self)?;
            let parent = col::<UInt32Array>(b, 2, self)?;
            let loc = col::<UInt32Array>(b, 3, self)?;
            for i in (0..b.num_rows()).filter(|&i| p.value(i) == partition) {
                self.expect_dense(id.value(i), sym.stack_parents.len(), schema::STACKS)?;
                sym.stack_parents.push(parent.value(i));
                sym.stack_locations.push(loc.value(i));
            }
        }
        self.check_symbols(&sym)?;
        Ok(sym)
    }

    fn expect_dense(&self, id: u32, expected: usize, section: &str) -> Result<()> {
        if id as usize != expected {
            return Err(StorageError::Corrupt {
                key: self.key.clone(),
                reason: format!("{section}: id {id} where {expected} was expected"),
            });
        }
        Ok(())
    }

    /// Checks that every reference points inside its table, so that
    /// resolution code can index without bounds failures.
    fn check_symbols(&self, sym: &PartitionSymbols) -> Result<()> {
        let corrupt = |reason: String| StorageError::Corrupt {
            key: self.key.clone(),
            reason,
        };
        for (i, l) in sym.locations.iter().enumerate() {
            if l.mapping_id as usize > sym.mappings.len() {
                return Err(corrupt(format!(
                    "location {i} references mapping {}",
                    l.mapping_id
                )));
            }
            if let Some((f, _)) = l
                .lines
                .iter()
                .find(|(f, _)| *f as usize >= sym.functions.len())
            {
                return Err(corrupt(format!("location {i} references function {f}")));
            }
        }
        for (i, (&p, &l)) in sym
            .stack_parents
            .iter()
            .zip(&sym.stack_locations)
            .enumerate()
            .skip(1)
        {
            if p as usize >= i {
                return Err(corrupt(format!("stack node {i} has parent {p}")));
            }
            if l as usize >= sym.locations.len() {
                return Err(corrupt(format!("stack node {i} references location {l}")));
            }
        }
        Ok(())
    }
}

fn col<'a, T: Array + 'static>(b: &'a RecordBatch, i: usize, r: &BlockReader) -> Result<&'a T> {
    b.columns()
        .get(i)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| StorageError::Corrupt {
            key: r.key.clone(),
            reason: format!("unexpected type of column {i}"),
        })
}

fn row_group_may_contain(rg: &RowGroupMetaData, partition: u32) -> bool {
    crate::sample_scan::chunk_range(rg.column(0).statistics(), true)
        .is_none_or(|(min, max)| (min..=max).contains(&i64::from(partition)))
}
