//! kiln-ingester
