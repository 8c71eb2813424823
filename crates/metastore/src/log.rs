//! Durable command log and snapshots of a single-replica metastore.
//!
//! Files under the metastore directory:
//! - `snapshot.bin`: a `Snapshot` protobuf (the state after N commands),
//!   replaced atomically (write to a temporary file, fsync, rename);
//! - `commands.log`: the commands applied after the snapshot, each record
//!   `u32 length | u32 CRC32 | Command protobuf`, fsynced before the
//!   command is acknowledged.
//!
//! On open the snapshot is loaded and the log replayed. A torn record at the
//! end of the log (a crash in the middle of an append, never acknowledged)
//! is cut off; a bad record elsewhere is reported as corruption.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kiln_proto::kiln::metastore::v1::{Command, Snapshot};
use prost::Message;

use crate::state_machine::StateMachine;
use crate::{MetastoreError, Result};

const LOG_FILE: &str = "commands.log";
const SNAPSHOT_FILE: &str = "snapshot.bin";

/// The append-only command log.
#[derive(Debug)]
pub struct CommandLog {
    dir: PathBuf,
    file: File,
    records: u64,
}

fn io<'a>(
    operation: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> MetastoreError + 'a {
    move |source| MetastoreError::Io {
        operation,
        path: path.display().to_string(),
        source,
    }
}

impl CommandLog {
    /// Opens (or creates) the log in `dir` and rebuilds the state it describes.
    pub fn open(dir: &Path) -> Result<(CommandLog, StateMachine)> {
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let snap_path = dir.join(SNAPSHOT_FILE);
        let mut sm = match fs::read(&snap_path) {
            Ok(bytes) => {
                let snap =
                    Snapshot::decode(bytes.as_slice()).map_err(|e| MetastoreError::Corrupt {
                        path: snap_path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                StateMachine::restore(snap)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateMachine::default(),
            Err(e) => return Err(io("reading", &snap_path)(e)),
        };
        let log_path = dir.join(LOG_FILE);
        let mut data = Vec::new();
        match File::open(&log_path) {
            Ok(mut f) => {
                f.read_to_end(&mut data).map_err(io("reading", &log_path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("opening", &log_path)(e)),
        }
        let mut pos = 0usize;
        let mut records = 0u64;
        let corrupt = |reason: String| MetastoreError::Corrupt {
            path: log_path.display().to_string(),
            reason,
        };
        while pos < data.len() {
            if data.len() - pos < 8 {
                break; // torn header at the tail
            }
            let len = u32::from_le_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]])
                as usize;
            let crc =
                u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
            let end = pos + 8 + len;
            if end > data.len() {
                break; // torn body at the tail
            }
            let body = &data[pos + 8..end];
            if crc32fast::hash(body) != crc {
                if end == data.len() {
                    break; // torn last record
                }
                return Err(corrupt(format!(
                    "checksum mismatch in record at offset {pos}"
                )));
            }
            let cmd = Command::decode(body)
                .map_err(|e| corrupt(format!("record at offset {pos}: {e}")))?;
            sm.apply(&cmd);
            records += 1;
            pos = end;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io("opening", &log_path))?;
        if pos < data.len() {
            tracing::warn!(path = %log_path.display(), dropped_bytes = data.len() - pos, "cutting off a torn record at the end of the metastore log");
            file.set_len(pos as u64)
                .map_err(io("truncating", &log_path))?;
        }
        Ok((
            CommandLog {
                dir: dir.to_owned(),
                file,
                records,
            },
            sm,
        ))
    }

    /// Appends a command and makes it durable.
    pub fn append(&mut self, cmd: &Command) -> Result<()> {
        let body = cmd.encode_to_vec();
        let mut rec = Vec::with_capacity(body.len() + 8);
        rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        rec.extend_from_slice(&body);
        let path = self.dir.join(LOG_FILE);
        self.file
            .write_all(&rec)
            .map_err(io("appending to", &path))?;
        self.file.sync_data().map_err(io("syncing", &path))?;
        self.records += 1;
        Ok(())
    }

    /// Records since the last snapshot.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Writes `sm` as the new snapshot and empties the log.
    pub fn snapshot(&mut self, sm: &StateMachine) -> Result<()> {
        let path = self.dir.join(SNAPSHOT_FILE);
        let tmp = self.dir.join("snapshot.bin.tmp");
        {
            let mut f = File::create(&tmp).map_err(io("creating", &tmp))?;
            f.write_all(&sm.snapshot().encode_to_vec())
                .map_err(io("writing", &tmp))?;
            f.sync_all().map_err(io("syncing", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io("renaming", &path))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        let log = self.dir.join(LOG_FILE);
        self.file.set_len(0).map_err(io("truncating", &log))?;
        self.file.sync_all().map_err(io("syncing", &log))?;
        self.records = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use kiln_proto::kiln::metastore::v1::command::Kind;
    use kiln_proto::kiln::metastore::v1::{AddBlockRequest, BlockMeta};

    use super::*;

    fn add(id: &str) -> Command {
        Command {
            timestamp: 1,
            kind: Some(Kind::AddBlock(AddBlockRequest {
                block: Some(BlockMeta {
                    id: id.into(),
                    tenant: "t".into(),
                    ..Default::default()
                }),
            })),
        }
    }

    #[test]
    fn survives_reopen_snapshot_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, mut sm) = CommandLog::open(dir.path()).unwrap();
            for id in ["a", "b"] {
                log.append(&add(id)).unwrap();
                sm.apply(&add(id));
            }
            log.snapshot(&sm).unwrap();
            log.append(&add("c")).unwrap();
        }
        // A crash during the next append leaves half a record.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let (mut log, sm) = CommandLog::open(dir.path()).unwrap();
        assert_eq!(sm.index().len(), 3);
        assert!(sm.index().get("t", "c").is_some());
        log.append(&add("d")).unwrap();
        drop(log);
        let (_, sm) = CommandLog::open(dir.path()).unwrap();
        assert_eq!(sm.index().len(), 4);
    }

    #[test]
    fn corruption_in_the_middle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = CommandLog::open(dir.path()).unwrap();
            log.append(&add("a")).unwrap();
            log.append(&add("b")).unwrap();
        }
        let p = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&p).unwrap();
        bytes[10] ^= 0xff;
        fs::write(&p, bytes).unwrap();
        assert!(matches!(
            CommandLog::open(dir.path()),
            Err(MetastoreError::Corrupt { .. })
        ));
    }
}
