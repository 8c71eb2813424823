//! DataFusion scans of block sections.

use std::sync::Arc;

use arrow::array::{Array, FixedSizeBinaryArray, Int64Array, UInt32Array};
use datafusion::execution::context::SessionContext;
use datafusion::functions_aggregate::expr_fn::sum;
use datafusion::prelude::{Expr, ParquetReadOptions, SessionConfig, col, lit};
use kiln_storage::schema::{PROFILES, PROFILES_SCHEMA, SAMPLES, SAMPLES_SCHEMA};
use kiln_storage::section_store::SECTION_STORE_URL;
use kiln_storage::{BlockReader, SectionStore};
use object_store::ObjectStore;

use crate::{QuerierError, Result};

/// Which samples of a block to aggregate.
#[derive(Debug, Clone, Default)]
pub(crate) struct SampleFilter {
    /// Block-local series ids.
    pub series: Vec<u32>,
    /// Inclusive time range, ns.
    pub start_ns: i64,
    pub end_ns: i64,
    /// Only samples with one of these span ids.
    pub spans: Option<Vec<u64>>,
    /// Only samples of these profile rows.
    pub profiles: Option<Vec<u32>>,
}

/// One row of the `profiles` section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProfileTotal {
    pub series: u32,
    pub time_ns: i64,
    pub total: i64,
    pub id: Option<[u8; 16]>,
}

/// Runs DataFusion plans over the sections of blocks.
pub(crate) struct Scanner {
    ctx: SessionContext,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scanner")
    }
}

fn scan_err(
    reader: &BlockReader,
) -> impl Fn(datafusion::error::DataFusionError) -> QuerierError + '_ {
    move |e| QuerierError::Scan {
        block: reader.meta().id.clone(),
        message: e.to_string(),
    }
}

fn u32_list(column: &str, values: &[u32]) -> Expr {
    col(column).in_list(values.iter().map(|v| lit(*v)).collect(), false)
}

impl Scanner {
    /// A scanner reading block sections from `store`.
    pub(crate) fn new(store: Arc<dyn ObjectStore>) -> Result<Self> {
        let mut config = SessionConfig::new().with_target_partitions(2);
        config.options_mut().execution.parquet.pushdown_filters = true;
        config.options_mut().execution.parquet.reorder_filters = true;
        let ctx = SessionContext::new_with_config(config);
        let url = url::Url::parse(SECTION_STORE_URL)
            .map_err(|e| QuerierError::Internal(e.to_string()))?;
        ctx.register_object_store(&url, Arc::new(SectionStore::new(store)));
        Ok(Scanner { ctx })
    }

    /// Sums sample values per (partition, stack) over the filtered samples.
    pub(crate) async fn stack_values(
        &self,
        reader: &BlockReader,
        filter: &SampleFilter,
    ) -> Result<Vec<(u32, u32, i64)>> {
        if filter.series.is_empty() {
            return Ok(Vec::new());
        }
        let url = reader
            .section_url(SAMPLES)
            .map_err(|source| QuerierError::Storage {
                block: reader.meta().id.clone(),
                source: Box::new(source),
            })?;
        let options = ParquetReadOptions {
            schema: Some(&SAMPLES_SCHEMA),
            ..Default::default()
        };
        let df = self
            .ctx
            .read_parquet(url, options)
            .await
            .map_err(scan_err(reader))?;
        let mut predicate = u32_list("series_id", &filter.series)
            .and(col("time_ns").gt_eq(lit(filter.start_ns)))
            .and(col("time_ns").lt_eq(lit(filter.end_ns)));
        if let Some(spans) = &filter.spans {
            predicate = predicate
                .and(col("span_id").in_list(spans.iter().map(|s| lit(*s)).collect(), false));
        }
        if let Some(profiles) = &filter.profiles {
            predicate = predicate.and(u32_list("profile_idx", profiles));
        }
        let batches = df
            .filter(predicate)
            .and_then(|df| {
                df.aggregate(
                    vec![col("partition"), col("stack_id")],
                    vec![sum(col("value")).alias("value")],
                )
            })
            .map_err(scan_err(reader))?
            .collect()
            .await
            .map_err(scan_err(reader))?;
        let mut out = Vec::new();
        for b in &batches {
            let (Some(p), Some(s), Some(v)) = (
                b.column(0).as_any().downcast_ref::<UInt32Array>(),
                b.column(1).as_any().downcast_ref::<UInt32Array>(),
                b.column(2).as_any().downcast_ref::<Int64Array>(),
            ) else {
                return Err(QuerierError::Internal(
                    "unexpected column types from the sample aggregate".into(),
                ));
            };
            for i in 0..b.num_rows() {
                if !v.is_null(i) {
                    out.push((p.value(i), s.value(i), v.value(i)));
                }
            }
        }
        Ok(out)
    }

    /// The profile rows of the given series in a time range.
    pub(crate) async fn profile_totals(
        &self,
        reader: &BlockReader,
        series: &[u32],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<ProfileTotal>> {
        if series.is_empty() {
            return Ok(Vec::new());
        }
        let url = reader
            .section_url(PROFILES)
            .map_err(|source| QuerierError::Storage {
                block: reader.meta().id.clone(),
                source: Box::new(source),
            })?;
        let options = ParquetReadOptions {
            schema: Some(&PROFILES_SCHEMA),
            ..Default::default()
        };
        let df = self
            .ctx
            .read_parquet(url, options)
            .await
            .map_err(scan_err(reader))?;
        let predicate = u32_list("series_id", series)
            .and(col("time_ns").gt_eq(lit(start_ns)))
            .and(col("time_ns").lt_eq(lit(end_ns)));
        let batches = df
            .filter(predicate)
            .and_then(|df| df.select_columns(&["series_id", "time_ns", "total", "profile_id"]))
            .map_err(scan_err(reader))?
            .collect()
            .await
            .map_err(scan_err(reader))?;
        let mut out = Vec::new();
        for b in &batches {
            let (Some(s), Some(t), Some(v), Some(id)) = (
                b.column(0).as_any().downcast_ref::<UInt32Array>(),
                b.column(1).as_any().downcast_ref::<Int64Array>(),
                b.column(2).as_any().downcast_ref::<Int64Array>(),
                b.column(3).as_any().downcast_ref::<FixedSizeBinaryArray>(),
            ) else {
                return Err(QuerierError::Internal(
                    "unexpected column types from the profiles scan".into(),
                ));
            };
            for i in 0..b.num_rows() {
                let pid = if id.is_null(i) {
                    None
                } else {
                    id.value(i).try_into().ok()
                };
                out.push(ProfileTotal {
                    series: s.value(i),
                    time_ns: t.value(i),
                    total: v.value(i),
                    id: pid,
                });
            }
        }
        Ok(out)
    }

    /// Row indexes (in `profiles`) of the profiles with the given ids.
    pub(crate) async fn profile_rows(
        &self,
        reader: &BlockReader,
        ids: &[[u8; 16]],
    ) -> Result<Vec<u32>> {
        let rows = reader
            .profiles()
            .await
            .map_err(|source| QuerierError::Storage {
                block: reader.meta().id.clone(),
                source: Box::new(source),
            })?;
        Ok(rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.2.is_some_and(|id| ids.contains(&id)))
            .map(|(i, _)| i as u32)
            .collect())
    }
}
