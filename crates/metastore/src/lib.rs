//! kiln-metastore
