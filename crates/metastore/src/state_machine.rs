//! The replicated state machine.
//!
//! `apply` must be deterministic: the same commands in the same order give
//! the same state on every replica. It reads no clock (a command carries the
//! proposer's timestamp), draws no random numbers and does no I/O.

use kiln_proto::kiln::metastore::v1::command::Kind;
use kiln_proto::kiln::metastore::v1::{Command, Snapshot};

use crate::index::BlockIndex;

/// The state every metastore replica holds.
#[derive(Debug, Default, Clone)]
pub struct StateMachine {
    index: BlockIndex,
    applied: u64,
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A block was added.
    BlockAdded,
    /// The block was known already (a retried command).
    BlockExisted,
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
            None => Applied::Noop,
        }
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
        }
    }

    /// Rebuilds the state from a snapshot.
    pub fn restore(snapshot: Snapshot) -> Self {
        let mut index = BlockIndex::default();
        for b in snapshot.blocks {
            index.insert(b);
        }
        StateMachine {
            index,
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
}
