//! The metastore's raft layer (openraft): type configuration, the durable
//! log store, the state-machine store with snapshots, and the network over
//! gRPC.
//!
//! Application commands travel through the log as prost-encoded
//! [`Command`](kiln_proto::kiln::metastore::v1::Command)s, so the state
//! machine only ever sees the same protobuf messages the single-node tests
//! use.

pub mod log_store;
pub mod network;
pub mod sm_store;

use std::io::Cursor;

use openraft::BasicNode;
use serde::{Deserialize, Serialize};

/// A log entry payload: one prost-encoded `Command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request(pub Vec<u8>);

/// What applying a command did (see [`crate::state_machine::Applied`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Response {
    /// A short description of the effect.
    pub applied: String,
    /// The prost-encoded `CommandResult`.
    pub result: Vec<u8>,
}

openraft::declare_raft_types!(
    /// openraft types of the metastore.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The raft node of the metastore.
pub type Raft = openraft::Raft<TypeConfig>;
/// Node ids.
pub type NodeId = u64;

/// Maps any error into an openraft storage error for `subject`/`verb`.
pub(crate) fn io_err(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: impl std::error::Error + 'static,
) -> openraft::StorageError<NodeId> {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}
