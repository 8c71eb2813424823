//! kiln-distributor
