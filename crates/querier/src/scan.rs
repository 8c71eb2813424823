//! DataFusion scans of block sections (the `profiles` section, for time
//! series; flame-graph sample sums read the `samples` section directly,
//! see [`kiln_storage::BlockReader::stack_values`]).

use std::sync::Arc;

use arrow::array::{Array, FixedSizeBinaryArray, Int64Array, UInt32Array};
use datafusion::execution::context::SessionContext;
use datafusion::prelude::{Expr, ParquetReadOptions, SessionConfig, col, lit};
use kiln_storage::schema::{PROFILES, PROFILES_SCHEMA};
use kiln_storage::section_store::SECTION_STORE_URL;
use kiln_storage::{BlockReader, SectionStore};
use object_store::ObjectStore;

use crate::{QuerierError, Result};

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
