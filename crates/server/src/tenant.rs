//! Which tenant a request belongs to.

use axum::http::HeaderMap;
use kiln_model::{ErrorCode, TenantId};

use crate::http::ApiError;

/// The header carrying the tenant.
pub const ORG_ID_HEADER: &str = "x-scope-orgid";

fn header_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(ORG_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The single tenant of a write.
pub fn tenant_for_write(headers: &HeaderMap, multitenancy: bool) -> Result<TenantId, ApiError> {
    if !multitenancy {
        return Ok(TenantId::anonymous());
    }
    let Some(v) = header_value(headers) else {
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "no org id: the X-Scope-OrgID header is required",
        ));
    };
    if v.contains('|') {
        return Err(ApiError::invalid(
            "writes need exactly one tenant in X-Scope-OrgID",
        ));
    }
    TenantId::new(v).map_err(|e| ApiError::new(ErrorCode::Unauthenticated, e.to_string()))
}

/// The tenants of a read (`a|b` reads both), de-duplicated and sorted.
pub fn tenants_for_read(
    headers: &HeaderMap,
    multitenancy: bool,
) -> Result<Vec<TenantId>, ApiError> {
    if !multitenancy {
        return Ok(vec![TenantId::anonymous()]);
    }
    let Some(v) = header_value(headers) else {
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "no org id: the X-Scope-OrgID header is required",
        ));
    };
    let mut out = Vec::new();
    for part in v.split('|') {
        out.push(
            TenantId::new(part.trim())
                .map_err(|e| ApiError::new(ErrorCode::Unauthenticated, e.to_string()))?,
        );
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn tenancy_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(tenant_for_write(&h, false).unwrap().as_str(), "anonymous");
        assert_eq!(
            tenant_for_write(&h, true).unwrap_err().code,
            ErrorCode::Unauthenticated
        );
        h.insert(ORG_ID_HEADER, HeaderValue::from_static("b|a|b"));
        assert!(tenant_for_write(&h, true).is_err());
        let r: Vec<String> = tenants_for_read(&h, true)
            .unwrap()
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(r, vec!["a", "b"]);
        h.insert(ORG_ID_HEADER, HeaderValue::from_static("team-1"));
        assert_eq!(tenant_for_write(&h, true).unwrap().as_str(), "team-1");
        assert_eq!(
            tenant_for_write(&h, false).unwrap().as_str(),
            "anonymous",
            "ignored when off"
        );
    }
}
