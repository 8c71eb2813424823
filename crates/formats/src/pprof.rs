//! pprof (to be written)
