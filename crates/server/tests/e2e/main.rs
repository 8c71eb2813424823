//! End-to-end tests: the real `kiln` binary, on free loopback ports, driven
//! over HTTP like agents and Grafana drive it. One test binary (modules
//! below) keeps link time down.

#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test code: a failed step should stop the test with its message"
)]

mod agents;
mod auth;
mod bombs;
mod cluster;
mod compaction;
mod faults;
mod golden;
mod grpc;
mod limits;
mod observability;
mod otlp;
mod s3;
mod spine;
mod tools;
mod ui;
