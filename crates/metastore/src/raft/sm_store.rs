//! The raft state machine: [`StateMachine`] behind a lock, plus snapshots
//! persisted under the metastore directory (`snapshot.meta.json` and
//! `snapshot.data`, the latter a prost-encoded `Snapshot`), so a restarted
//! replica starts from its last snapshot and replays only the log after it.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use kiln_proto::kiln::metastore::v1::{Command, Snapshot as SmSnapshot};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StoredMembership,
};
use prost::Message;
use serde::{Deserialize, Serialize};

use super::{NodeId, Response, TypeConfig, io_err};
use crate::state_machine::StateMachine;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

#[derive(Debug, Default)]
struct Inner {
    applied: Applied,
    current: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
    snapshots_built: u64,
}

/// The state-machine store; clones share state.
#[derive(Debug, Clone)]
pub struct StateMachineStore {
    dir: PathBuf,
    state: Arc<RwLock<StateMachine>>,
    inner: Arc<tokio::sync::Mutex<Inner>>,
}

fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

impl StateMachineStore {
    /// Opens the store in `dir`, restoring the last snapshot if any.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut inner = Inner::default();
        let mut sm = StateMachine::default();
        let meta_path = dir.join("snapshot.meta.json");
        if meta_path.exists() {
            let meta: SnapshotMeta<NodeId, BasicNode> =
                serde_json::from_slice(&std::fs::read(&meta_path)?)
                    .map_err(std::io::Error::other)?;
            let data = std::fs::read(dir.join("snapshot.data"))?;
            let snap = SmSnapshot::decode(data.as_slice()).map_err(std::io::Error::other)?;
            sm = StateMachine::restore(snap);
            inner.applied = Applied {
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
            };
            inner.current = Some((meta, data));
        }
        Ok(StateMachineStore {
            dir: dir.to_owned(),
            state: Arc::new(RwLock::new(sm)),
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
        })
    }

    /// The shared state machine, for reads.
    pub fn state(&self) -> Arc<RwLock<StateMachine>> {
        Arc::clone(&self.state)
    }

    fn persist(&self, meta: &SnapshotMeta<NodeId, BasicNode>, data: &[u8]) -> std::io::Result<()> {
        write_atomic(&self.dir, "snapshot.data", data)?;
        write_atomic(
            &self.dir,
            "snapshot.meta.json",
            &serde_json::to_vec(meta).map_err(std::io::Error::other)?,
        )
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        let data = {
            let sm = self
                .state
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            sm.snapshot().encode_to_vec()
        };
        inner.snapshots_built += 1;
        let last = inner.applied.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: inner.applied.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                last.map(|l| l.index).unwrap_or(0),
                inner.snapshots_built
            ),
        };
        self.persist(&meta, &data).map_err(|e| {
            io_err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        })?;
        inner.current = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let inner = self.inner.lock().await;
        Ok((inner.applied.last_applied, inner.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        let mut out = Vec::new();
        for entry in entries {
            inner.applied.last_applied = Some(entry.log_id);
            let resp = match entry.payload {
                EntryPayload::Blank => Response::default(),
                EntryPayload::Normal(req) => match Command::decode(req.0.as_slice()) {
                    Ok(cmd) => {
                        let mut sm = self
                            .state
                            .write()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        let applied = sm.apply(&cmd);
                        Response {
                            applied: format!("{applied:?}"),
                            result: applied.to_result().encode_to_vec(),
                        }
                    }
                    // An undecodable command was refused before it entered
                    // the log; skipping keeps every replica identical.
                    Err(e) => Response {
                        applied: format!("skipped undecodable command: {e}"),
                        result: Vec::new(),
                    },
                },
                EntryPayload::Membership(m) => {
                    inner.applied.membership = StoredMembership::new(Some(entry.log_id), m);
                    Response::default()
                }
            };
            out.push(resp);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let snap = SmSnapshot::decode(data.as_slice()).map_err(|e| {
            io_err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
                e,
            )
        })?;
        self.persist(meta, &data).map_err(|e| {
            io_err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        })?;
        let mut inner = self.inner.lock().await;
        {
            let mut sm = self
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *sm = StateMachine::restore(snap);
        }
        inner.applied = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        inner.current = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        Ok(inner.current.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}
