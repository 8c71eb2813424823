//! push (to be written)
