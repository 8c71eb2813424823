//! The metastore: the block index and node registry, replicated with raft.
//!
//! Layers, from the wire down:
//! - `grpc.rs`: the tonic `MetastoreService` adapter, forwarding calls that
//!   reach a follower to the leader;
//! - [`Metastore`] (`service.rs`): proposes commands through raft and
//!   answers linearizable reads;
//! - [`raft`]: openraft's log store (durable, under the data dir), state
//!   machine store (snapshots under the data dir) and gRPC network;
//! - [`state_machine`]: `apply(command)`, deterministic (time comes from
//!   the command, no I/O, no randomness);
//! - [`index`]: the pure block index.
//!
//! One replica in `--target=all`; three (`metastore.peers`) in a cluster,
//! which keeps working while one replica is down.

pub mod compaction;
pub mod config;
pub mod error;
pub mod grpc;
pub mod index;
pub mod metrics;
pub mod raft;
pub mod service;
pub mod state_machine;

pub use config::MetastoreConfig;
pub use error::{MetastoreError, Result};
pub use index::BlockIndex;
pub use metrics::MetastoreMetrics;
pub use service::Metastore;
pub use state_machine::StateMachine;
