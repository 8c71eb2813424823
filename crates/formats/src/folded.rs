//! folded (to be written)
