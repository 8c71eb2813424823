//! Size and count limits applied while parsing untrusted input.
//!
//! The parsers take a tenant's limits as they are configured,
//! [`kiln_model::TenantLimits`], and read only the parse limits from it:
//! `max_profile_bytes`, `max_jfr_bytes`, `max_body_bytes`, `max_samples`,
//! `max_sample_labels`, `max_stack_depth`, `max_symbol_len`,
//! `max_label_names`, `max_label_name_len` and `max_label_value_len`. The
//! defaults (Pyroscope's) are written down once, in
//! `TenantLimits::default`.

/// The limits a parser applies to one request and to each profile in it:
/// a tenant's limits (see the module documentation for the fields read).
pub type Limits = kiln_model::TenantLimits;
