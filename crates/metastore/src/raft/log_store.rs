//! A durable raft log on the local filesystem.
//!
//! Files in the log directory:
//! - `log`: records `u32 length | u32 CRC32 | entry as JSON`, appended and
//!   fsynced before openraft is told the entries are flushed;
//! - `vote.json`, `committed.json`, `purged.json`: small state files,
//!   replaced atomically (temporary file, fsync, rename).
//!
//! The whole log is also kept in memory (it is purged after every
//! snapshot, so it stays short). Truncation and purging rewrite the log
//! file atomically. A torn record at the end (a crash mid-append, never
//! acknowledged) is cut off on open.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use super::{NodeId, TypeConfig, io_err};

#[derive(Debug, Default)]
struct Inner {
    dir: PathBuf,
    file: Option<File>,
    log: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// The log store; clones share the same log.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    write_atomic(
        dir,
        name,
        &serde_json::to_vec(value).map_err(std::io::Error::other)?,
    )
}

fn encode_record(entry: &Entry<TypeConfig>) -> std::io::Result<Vec<u8>> {
    let body = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    let mut rec = Vec::with_capacity(body.len() + 8);
    rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
    rec.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    rec.extend_from_slice(&body);
    Ok(rec)
}

impl LogStore {
    /// Opens (or creates) the log in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut inner = Inner {
            dir: dir.to_owned(),
            vote: read_json(&dir.join("vote.json"))?,
            committed: read_json(&dir.join("committed.json"))?,
            last_purged: read_json(&dir.join("purged.json"))?,
            ..Default::default()
        };
        let path = dir.join("log");
        let mut data = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut data)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut pos = 0;
        while data.len() - pos >= 8 {
            let len = u32::from_le_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]])
                as usize;
            let crc =
                u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
            let end = pos + 8 + len;
            if end > data.len() {
                break;
            }
            let body = &data[pos + 8..end];
            if crc32fast::hash(body) != crc {
                if end == data.len() {
                    break;
                }
                return Err(std::io::Error::other(format!(
                    "raft log {} is corrupt at offset {pos}",
                    path.display()
                )));
            }
            let entry: Entry<TypeConfig> =
                serde_json::from_slice(body).map_err(std::io::Error::other)?;
            if inner
                .last_purged
                .is_none_or(|p| entry.log_id.index > p.index)
            {
                inner.log.insert(entry.log_id.index, entry);
            }
            pos = end;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if pos < data.len() {
            tracing::warn!(path = %path.display(), dropped_bytes = data.len() - pos, "cutting off a torn record at the end of the raft log");
            file.set_len(pos as u64)?;
        }
        inner.file = Some(file);
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }
}

impl Inner {
    /// Rewrites the log file from memory (after truncation or purging).
    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut data = Vec::new();
        for e in self.log.values() {
            data.extend_from_slice(&encode_record(e)?);
        }
        self.file = None;
        write_atomic(&self.dir, "log", &data)?;
        self.file = Some(OpenOptions::new().append(true).open(self.dir.join("log"))?);
        Ok(())
    }

    fn file(&mut self) -> std::io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("raft log file is not open"))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        Ok(inner.log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        let last = inner
            .log
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        write_json(&inner.dir, "vote.json", vote)
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().await.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        write_json(&inner.dir, "committed.json", &committed)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().await.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        let mut data = Vec::new();
        let mut added = Vec::new();
        for e in entries {
            data.extend_from_slice(
                &encode_record(&e).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?,
            );
            added.push(e);
        }
        let result = inner.file().and_then(|f| {
            f.write_all(&data)?;
            f.sync_data()
        });
        match result {
            Ok(()) => {
                for e in added {
                    inner.log.insert(e.log_id.index, e);
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.log_io_completed(Err(std::io::Error::other(msg)));
                Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        let removed: Vec<u64> = inner.log.range(log_id.index..).map(|(k, _)| *k).collect();
        if removed.is_empty() {
            return Ok(());
        }
        for k in removed {
            inner.log.remove(&k);
        }
        inner
            .rewrite()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        write_json(&inner.dir, "purged.json", &log_id)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        inner.last_purged = Some(log_id);
        let removed: Vec<u64> = inner.log.range(..=log_id.index).map(|(k, _)| *k).collect();
        for k in removed {
            inner.log.remove(&k);
        }
        inner
            .rewrite()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))
    }
}
