//! Tenants: who a request belongs to.

use std::fmt;

use crate::ModelError;

/// The tenant every request belongs to when multi-tenancy is off.
pub const ANONYMOUS_TENANT: &str = "anonymous";

/// A validated tenant ID (`X-Scope-OrgID`).
///
/// Rules, as in Grafana's tenant package: 1 to 150 bytes of ASCII letters,
/// digits and `!-_.*'()`; `.` and `..` are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Validates `id` as a tenant ID.
    pub fn new(id: &str) -> Result<Self, ModelError> {
        let invalid = |reason| ModelError::InvalidTenant {
            id: id.to_owned(),
            reason,
        };
        if id.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if id.len() > 150 {
            return Err(invalid("must be at most 150 bytes"));
        }
        if id == "." || id == ".." {
            return Err(invalid("must not be . or .."));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()".contains(c);
        if !id.chars().all(allowed) {
            return Err(invalid(
                "may only contain ASCII letters, digits and !-_.*'()",
            ));
        }
        Ok(TenantId(id.to_owned()))
    }

    /// The tenant used when multi-tenancy is disabled.
    pub fn anonymous() -> Self {
        TenantId(ANONYMOUS_TENANT.to_owned())
    }

    /// The ID as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_tenant_ids() {
        assert!(TenantId::new("team-a_1.prod").is_ok());
        assert!(TenantId::new("a*'()!").is_ok());
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new(".").is_err());
        assert!(TenantId::new("..").is_err());
        assert!(TenantId::new("a/b").is_err());
        assert!(TenantId::new("a|b").is_err());
        assert!(TenantId::new(&"x".repeat(151)).is_err());
        assert!(TenantId::new(&"x".repeat(150)).is_ok());
    }
}
