//! kiln-querier
