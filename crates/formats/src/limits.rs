//! Size and count limits applied while parsing untrusted input.

/// Limits applied to one profile.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest decompressed profile, in bytes.
    pub max_profile_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_profile_bytes: 4 << 20,
        }
    }
}
