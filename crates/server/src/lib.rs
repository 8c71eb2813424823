//! The `kiln` process: configuration, the role/module table, listeners,
//! and ordered startup and shutdown.
//!
//! [`run`] is the single entry point used by `main` and by tests: it takes
//! already-bound listeners and a shutdown token, starts the modules the
//! configured roles need, serves until the token fires, then stops in order
//! (readiness off → HTTP drains in-flight requests → ingester flushes →
//! gRPC → metastore).

pub mod auth;
pub mod config;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod modules;
pub mod run;
pub mod tenant;
pub mod tools;

pub use config::Config;
pub use run::{Listeners, run};
