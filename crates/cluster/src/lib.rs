//! How Kiln nodes find and call each other.
//!
//! - [`status`]: the single mapping between [`kiln_model::ErrorCode`] and
//!   gRPC status codes, used by every role's `grpc.rs` and client;
//! - [`ring`]: logical shards and the consistent-hash ring that assigns them
//!   to ingesters, with virtual tokens and fail-over order;
//! - [`clients`]: gRPC clients of the metastore and the ingesters, the only
//!   way roles talk to each other (in `--target=all` too);
//! - [`secret`]: the cluster secret every internal call carries and every
//!   internal service checks;
//! - [`trace`]: request ids carried from role to role in gRPC metadata, and
//!   the tower layer that puts every request in a span with its id.

pub mod clients;
pub mod membership;
pub mod ring;
pub mod secret;
pub mod status;
pub mod trace;

pub use clients::{ClientError, IngesterClients, MetastoreClient, QuerierClients};
pub use membership::{MemberList, MetastoreRing, RingSource, StaticRing};
pub use ring::{Member, Ring, shard_for};
pub use secret::{ClusterSecret, InternalChannel};
