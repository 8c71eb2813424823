//! Object storage and the block format.
//!
//! A *block* is one immutable object in object storage holding the profiles
//! of one tenant and shard for a time range: several Parquet files
//! ("sections": series, profiles, samples, functions, mappings, locations,
//! stacks) concatenated, followed by a protobuf footer and a fixed trailer.
//! Ingesters write small blocks called *segments* (level 0); the compactor
//! merges them into larger blocks and roll-up tiers. The layout is described
//! in `docs/block-format.md`.
//!
//! Main types: [`BlockBuilder`] turns normalised profiles into an encoded
//! block, [`BlockReader`] reads a block's footer, series and symbols, and
//! [`SectionStore`] exposes each section as its own virtual Parquet file so
//! that DataFusion can scan it with predicate pushdown and row-group pruning.
//! [`StorageConfig`] builds the `object_store` backend (filesystem, S3,
//! memory), optionally wrapped in a [`FaultyStore`] that injects faults for
//! tests.

pub mod compact;
pub mod config;
pub mod error;
pub mod faults;
pub mod layout;
pub mod local;
pub mod reader;
pub mod resolve;
pub mod sample_scan;
pub mod schema;
pub mod section_store;
pub mod writer;

pub use config::{StorageBackend, StorageConfig};
pub use error::{Result, StorageError};
pub use faults::{FaultsConfig, FaultyStore};
pub use reader::{BlockReader, PartitionSymbols, ProfileRowData, SampleRowData, SeriesRow};
pub use sample_scan::{PartitionStacks, SampleSelection};
pub use section_store::SectionStore;
pub use writer::{BlockBuilder, EncodedBlock};

/// The block layout version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[cfg(test)]
mod tests;
