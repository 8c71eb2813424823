//! End-to-end tests: the real `kiln` binary, on free loopback ports, driven
//! over HTTP like agents and Grafana drive it. One test binary (modules
//! below) keeps link time down.

mod spine;
