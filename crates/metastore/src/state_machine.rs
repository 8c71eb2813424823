//! The replicated state machine.
//!
//! `apply` must be deterministic: the same commands in the same order give
//! the same state on every replica. It reads no clock (a command carries the
//! proposer's timestamp), draws no random numbers and does no I/O.

use std::collections::BTreeMap;

use kiln_proto::kiln::metastore::v1::command::Kind;
use kiln_proto::kiln::metastore::v1::{Command, Member, Snapshot};

use crate::index::BlockIndex;

/// The state every metastore replica holds.
#[derive(Debug, Default, Clone)]
pub struct StateMachine {
    index: BlockIndex,
    members: BTreeMap<String, Member>,
    applied: u64,
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A block was added.
    BlockAdded,
    /// The block was known already (a retried command).
    BlockExisted,
    /// A node's registration was created or renewed.
    Heartbeat,
    /// The command carried nothing to do.
    Noop,
}

impl StateMachine {
    /// Applies one command.
    pub fn apply(&mut self, command: &Command) -> Applied {
        self.applied += 1;
        match &command.kind {
            Some(Kind::AddBlock(req)) => match &req.block {
                Some(block) => {
                    if self.index.insert(block.clone()) {
                        Applied::BlockAdded
                    } else {
                        Applied::BlockExisted
                    }
                }
                None => Applied::Noop,
            },
            Some(Kind::Heartbeat(m)) => {
                let joined = self
                    .members
                    .get(&m.id)
                    .map_or(command.timestamp, |old| old.joined);
                let member = Member {
                    last_heartbeat: command.timestamp,
                    joined,
                    ..m.clone()
                };
                self.members.insert(m.id.clone(), member);
                Applied::Heartbeat
            }
            None => Applied::Noop,
        }
    }

    /// Registered nodes by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The block index.
    pub fn index(&self) -> &BlockIndex {
        &self.index
    }

    /// Number of commands applied so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The state as a snapshot.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            blocks: self.index.iter().cloned().collect(),
            applied: self.applied,
            members: self.members.values().cloned().collect(),
        }
    }

    /// Rebuilds the state from a snapshot.
    pub fn restore(snapshot: Snapshot) -> Self {
        let mut index = BlockIndex::default();
        for b in snapshot.blocks {
            index.insert(b);
        }
        let members = snapshot
            .members
            .into_iter()
            .map(|m| (m.id.clone(), m))
            .collect();
        StateMachine {
            index,
            members,
            applied: snapshot.applied,
        }
    }
}

#[cfg(test)]
mod tests {
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
    fn apply_is_deterministic_and_snapshots_round_trip() {
        let cmds = [add("a"), add("b"), add("a")];
        let mut x = StateMachine::default();
        let mut y = StateMachine::default();
        let rx: Vec<_> = cmds.iter().map(|c| x.apply(c)).collect();
        let ry: Vec<_> = cmds.iter().map(|c| y.apply(c)).collect();
        assert_eq!(rx, ry);
        assert_eq!(
            rx,
            vec![
                Applied::BlockAdded,
                Applied::BlockAdded,
                Applied::BlockExisted
            ]
        );
        assert_eq!(x.snapshot(), y.snapshot());
        let z = StateMachine::restore(x.snapshot());
        assert_eq!(z.snapshot(), x.snapshot());
        assert_eq!(z.index().len(), 2);
    }

    #[test]
    fn heartbeats_keep_the_join_time_and_stamp_the_command_time() {
        let hb = |t: i64, addr: &str| Command {
            timestamp: t,
            kind: Some(Kind::Heartbeat(Member {
                id: "i1".into(),
                addr: addr.into(),
                ..Default::default()
            })),
        };
        let mut sm = StateMachine::default();
        sm.apply(&hb(100, "a:1"));
        sm.apply(&hb(200, "a:2"));
        let m: Vec<_> = sm.members().collect();
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].joined, m[0].last_heartbeat, m[0].addr.as_str()),
            (100, 200, "a:2")
        );
        let restored = StateMachine::restore(sm.snapshot());
        assert_eq!(restored.members().count(), 1);
    }
}
