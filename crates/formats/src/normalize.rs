//! normalize (to be written)
