//! The metastore service: durable commands in, block index reads out.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use kiln_proto::kiln::metastore::v1::command::Kind;
use kiln_proto::kiln::metastore::v1::{AddBlockRequest, BlockMeta, Command, QueryBlocksRequest};

use crate::log::CommandLog;
use crate::state_machine::{Applied, StateMachine};
use crate::{MetastoreError, Result};

/// Commands between snapshots.
const SNAPSHOT_EVERY: u64 = 10_000;

/// A single-replica metastore with a durable command log.
#[derive(Debug, Clone)]
pub struct Metastore {
    log: Arc<Mutex<CommandLog>>,
    state: Arc<RwLock<StateMachine>>,
}

impl Metastore {
    /// Opens the metastore whose files live in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let (log, sm) = CommandLog::open(dir)?;
        tracing::info!(dir = %dir.display(), blocks = sm.index().len(), "metastore opened");
        Ok(Metastore {
            log: Arc::new(Mutex::new(log)),
            state: Arc::new(RwLock::new(sm)),
        })
    }

    /// Makes `command` durable, then applies it.
    async fn propose(&self, command: Command) -> Result<Applied> {
        let log = Arc::clone(&self.log);
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || {
            let mut log = log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            log.append(&command)?;
            let mut sm = state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let applied = sm.apply(&command);
            if log.records() >= SNAPSHOT_EVERY {
                log.snapshot(&sm)?;
            }
            Ok(applied)
        })
        .await
        .map_err(|e| MetastoreError::InvalidRequest(format!("metastore task failed: {e}")))?
    }

    /// Registers a block. Idempotent: registering the same block id again
    /// succeeds without a change.
    pub async fn add_block(&self, block: BlockMeta, now_ms: i64) -> Result<()> {
        if block.id.is_empty() || block.tenant.is_empty() || block.object_key.is_empty() {
            return Err(MetastoreError::InvalidRequest(
                "a block needs an id, a tenant and an object key".into(),
            ));
        }
        let applied = self
            .propose(Command {
                timestamp: now_ms,
                kind: Some(Kind::AddBlock(AddBlockRequest { block: Some(block) })),
            })
            .await?;
        tracing::debug!(?applied, "block registered");
        Ok(())
    }

    /// The blocks matching a query, sorted by start time.
    pub fn query_blocks(&self, request: &QueryBlocksRequest) -> Vec<BlockMeta> {
        let sm = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::new();
        for tenant in &request.tenants {
            out.extend(
                sm.index()
                    .query(tenant, request.start, request.end, &request.service_names)
                    .into_iter()
                    .cloned(),
            );
        }
        out
    }

    /// Number of blocks in the index.
    pub fn block_count(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .index()
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocks_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metastore::open(dir.path()).unwrap();
        let block = BlockMeta {
            id: "01H".into(),
            tenant: "anonymous".into(),
            object_key: "k".into(),
            min_time: 5,
            max_time: 9,
            ..Default::default()
        };
        m.add_block(block.clone(), 1).await.unwrap();
        m.add_block(block.clone(), 2).await.unwrap();
        assert!(m.add_block(BlockMeta::default(), 3).await.is_err());
        drop(m);
        let m = Metastore::open(dir.path()).unwrap();
        let q = QueryBlocksRequest {
            tenants: vec!["anonymous".into()],
            start: 0,
            end: 10,
            service_names: vec![],
        };
        assert_eq!(m.query_blocks(&q), vec![block]);
    }
}
