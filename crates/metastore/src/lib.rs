//! The metastore: the block index and its replicated state machine.
//!
//! Layers, from the wire down:
//! - `grpc.rs`: the tonic `MetastoreService` adapter;
//! - [`Metastore`] (`service.rs`): proposes commands, waits until they are
//!   durable, applies them, and answers reads;
//! - [`log`]: the durable command log and snapshots under the data dir
//!   (single replica); the cluster issue replaces it with openraft's log
//!   without touching the layers below;
//! - [`state_machine`]: `apply(command)`, deterministic (time comes from
//!   the command, no I/O, no randomness);
//! - [`index`]: the pure block index.

pub mod error;
pub mod grpc;
pub mod index;
pub mod log;
pub mod service;
pub mod state_machine;

pub use error::{MetastoreError, Result};
pub use index::BlockIndex;
pub use service::Metastore;
pub use state_machine::StateMachine;
