//! The distributor: the stateless write entry point.
//!
//! It turns what agents send (`push.v1` requests, legacy `/ingest` bodies)
//! into normalised profiles with `kiln-formats` — decompressing and parsing
//! under size limits, validating, deriving profile types and labels — then
//! routes each profile by (tenant, service) to the shard that owns it and
//! sends it to the shard's ingester through the ingester gRPC client,
//! failing over to the next ingester on the ring when one is unavailable.
//! A request is acknowledged only when every ingester it touched has made
//! its part durable. Before sending, each tenant's ingestion rate and
//! active-series limits are applied (`limiter`), with limits read per
//! request so that runtime overrides apply at once.

pub mod config;
mod distributor;
pub mod error;
pub mod limiter;
pub mod metrics;

pub use config::DistributorConfig;
pub use distributor::Distributor;
pub use error::{DistributorError, Result};
pub use metrics::DistributorMetrics;
