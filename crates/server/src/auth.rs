//! Authentication of API requests: per-tenant bearer tokens and basic auth.
//!
//! Off by default. When `auth.enabled` is set, every ingest and query API
//! (HTTP, Connect and the public gRPC services) needs an `Authorization`
//! header — `Bearer <token>` or `Basic <base64 user:password>` — that matches
//! one of the configured credentials; each credential belongs to one tenant
//! and carries scopes (`read`, `write`). The UI's pages and assets, `/ready`,
//! `/metrics` and build info stay open; the UI sends the token it is given
//! with its API calls.
//!
//! Secrets are never compared directly: the presented secret is hashed with
//! SHA-256 and the digest is compared with every credential's digest in
//! constant time, so neither a match's position nor a secret's prefix shows
//! in the timing. A credential may hold the digest only (`token_sha256`), so
//! that configuration files need not contain the token.
//!
//! With multi-tenancy on, the credential decides the tenant: a request
//! without `X-Scope-OrgID` gets the credential's tenant, and a request
//! naming another tenant is refused (403). With multi-tenancy off, all data
//! belongs to `anonymous` and credentials only gate access.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use kiln_model::{ErrorCode, TenantId};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::http::ApiError;
use crate::tenant::ORG_ID_HEADER;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Query APIs and the UI's API.
    Read,
    /// Ingest APIs.
    Write,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

fn both_scopes() -> Vec<Scope> {
    vec![Scope::Read, Scope::Write]
}

/// One credential: a bearer token (or its SHA-256), or a user name and
/// password, for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// The tenant this credential acts for (required with multi-tenancy).
    #[serde(default)]
    pub tenant: String,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Hex SHA-256 of the bearer token, instead of the token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token_sha256: String,
    /// Basic-auth user name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Basic-auth password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// What the credential may do; both by default.
    #[serde(default = "both_scopes")]
    pub scopes: Vec<Scope>,
}

/// The `auth` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Require credentials on the APIs.
    pub enabled: bool,
    /// Credentials given inline.
    pub credentials: Vec<Credential>,
    /// A YAML file with more credentials (`credentials: [...]`), e.g. a
    /// mounted Kubernetes secret; empty means none.
    pub credentials_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    #[serde(default)]
    credentials: Vec<Credential>,
}

/// A credential ready for checking.
#[derive(Debug)]
struct Entry {
    digest: [u8; 32],
    tenant: String,
    read: bool,
    write: bool,
}

/// The checker built from [`AuthConfig`].
#[derive(Debug)]
pub struct Auth {
    entries: Vec<Entry>,
    multitenancy: bool,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn bearer_digest(token: &str) -> [u8; 32] {
    sha256(format!("bearer\0{token}").as_bytes())
}

/// The digest a `token_sha256` credential is stored as: its SHA-256 (of
/// the bare token) hashed again into its own domain.
fn hashed_bearer_digest(token_sha256: &[u8; 32]) -> [u8; 32] {
    let mut buf = b"bearer-sha\0".to_vec();
    buf.extend_from_slice(token_sha256);
    sha256(&buf)
}

fn basic_digest(user: &str, password: &str) -> [u8; 32] {
    sha256(format!("basic\0{user}\0{password}").as_bytes())
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Who a request is, after a successful check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The credential's tenant.
    pub tenant: String,
}

impl Auth {
    /// Builds the checker; `None` when auth is off. Errors name the
    /// credential (by position) and what is wrong with it.
    pub fn from_config(
        config: &AuthConfig,
        multitenancy: bool,
    ) -> Result<Option<Arc<Auth>>, String> {
        if !config.enabled {
            return Ok(None);
        }
        let mut creds = config.credentials.clone();
        if !config.credentials_file.as_os_str().is_empty() {
            creds.extend(read_credentials_file(&config.credentials_file)?);
        }
        if creds.is_empty() {
            return Err("`auth.enabled` is set but no credentials are configured".into());
        }
        let mut entries = Vec::with_capacity(creds.len());
        for (i, c) in creds.iter().enumerate() {
            let what =
                |msg: &str| format!("auth credential #{} (tenant {:?}): {msg}", i + 1, c.tenant);
            let kinds = [
                !c.token.is_empty(),
                !c.token_sha256.is_empty(),
                !c.username.is_empty() || !c.password.is_empty(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(what(
                    "set exactly one of `token`, `token_sha256` or `username` with `password`",
                ));
            }
            let digest = if !c.token.is_empty() {
                bearer_digest(&c.token)
            } else if !c.token_sha256.is_empty() {
                let raw = parse_hex32(&c.token_sha256)
                    .ok_or_else(|| what("`token_sha256` must be 64 hex digits"))?;
                hashed_bearer_digest(&raw)
            } else {
                if c.username.is_empty() || c.password.is_empty() || c.username.contains(':') {
                    return Err(what(
                        "basic auth needs a `username` (without ':') and a `password`",
                    ));
                }
                basic_digest(&c.username, &c.password)
            };
            if multitenancy {
                TenantId::new(&c.tenant).map_err(|e| {
                    what(&format!(
                        "multi-tenancy is on, so `tenant` must be a tenant id: {e}"
                    ))
                })?;
            }
            if c.scopes.is_empty() {
                return Err(what("`scopes` must name read, write or both"));
            }
            entries.push(Entry {
                digest,
                tenant: c.tenant.clone(),
                read: c.scopes.contains(&Scope::Read),
                write: c.scopes.contains(&Scope::Write),
            });
        }
        Ok(Some(Arc::new(Auth {
            entries,
            multitenancy,
        })))
    }

    /// The entry whose digest equals `digest`, compared against every entry
    /// in constant time per entry.
    fn find(&self, digest: &[u8; 32]) -> Option<&Entry> {
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(digest)) {
                found = Some(e);
            }
        }
        found
    }

    /// The digests a header could match: a bearer token can be configured
    /// as itself or as its SHA-256.
    fn lookup(&self, authorization: &str) -> Option<&Entry> {
        let (kind, rest) = authorization.trim().split_once(' ')?;
        let rest = rest.trim();
        if kind.eq_ignore_ascii_case("bearer") {
            let plain = self.find(&bearer_digest(rest));
            let hashed = self.find(&hashed_bearer_digest(&sha256(rest.as_bytes())));
            plain.or(hashed)
        } else if kind.eq_ignore_ascii_case("basic") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (user, password) = text.split_once(':')?;
            self.find(&basic_digest(user, password))
        } else {
            None
        }
    }

    /// Checks a request's headers for `scope`. On success, returns the
    /// value `X-Scope-OrgID` must have downstream (with multi-tenancy), or
    /// `None` to leave the headers alone.
    pub fn check(&self, headers: &HeaderMap, scope: Scope) -> Result<Option<String>, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "authentication required: send `Authorization: Bearer <token>` or basic auth",
            ));
        };
        let entry = value
            .to_str()
            .ok()
            .and_then(|v| self.lookup(v))
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "invalid credentials"))?;
        let allowed = match scope {
            Scope::Read => entry.read,
            Scope::Write => entry.write,
        };
        if !allowed {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!("these credentials lack the `{}` scope", scope.name()),
            ));
        }
        if !self.multitenancy {
            return Ok(None);
        }
        if let Some(asked) = headers.get(ORG_ID_HEADER) {
            let asked = asked.to_str().unwrap_or_default();
            let other = asked.split('|').map(str::trim).find(|t| *t != entry.tenant);
            if let Some(t) = other {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    format!("these credentials are not allowed to access tenant {t:?}"),
                ));
            }
            return Ok(None);
        }
        Ok(Some(entry.tenant.clone()))
    }
}

fn read_credentials_file(path: &Path) -> Result<Vec<Credential>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read auth.credentials_file {}: {e}", path.display()))?;
    let file: CredentialsFile = serde_norway::from_str(&text)
        .map_err(|e| format!("auth.credentials_file {}: {e}", path.display()))?;
    Ok(file.credentials)
}

/// Axum middleware: refuses requests without the scope, and sets the
/// credential's tenant on requests that name none.
pub async fn require(
    State((auth, scope)): State<(Arc<Auth>, Scope)>,
    mut req: Request,
    next: Next,
) -> Response {
    match auth.check(req.headers(), scope) {
        Ok(tenant) => {
            if let Some(t) = tenant
                && let Ok(v) = HeaderValue::from_str(&t)
            {
                req.headers_mut().insert(ORG_ID_HEADER, v);
            }
            next.run(req).await
        }
        Err(e) => {
            let grpc = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/grpc"));
            if grpc {
                return crate::http::grpc_error(&e);
            }
            let mut resp = e.into_response();
            if resp.status() == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"kiln\""),
                );
            }
            resp
        }
    }
}

/// A tonic interceptor doing the same for gRPC metadata.
#[derive(Debug, Clone)]
pub struct GrpcAuth {
    auth: Option<Arc<Auth>>,
    scope: Scope,
}

impl GrpcAuth {
    /// Checks `scope` with `auth` (no check when `None`).
    pub fn new(auth: Option<Arc<Auth>>, scope: Scope) -> Self {
        GrpcAuth { auth, scope }
    }
}

impl tonic::service::Interceptor for GrpcAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(auth) = &self.auth else {
            return Ok(req);
        };
        let mut headers = HeaderMap::new();
        for name in [header::AUTHORIZATION.as_str(), ORG_ID_HEADER] {
            if let Some(v) = req.metadata().get(name)
                && let Ok(v) = HeaderValue::from_bytes(v.as_bytes())
            {
                headers.insert(name, v);
            }
        }
        match auth.check(&headers, self.scope) {
            Ok(Some(tenant)) => {
                if let Ok(v) = tenant.parse() {
                    req.metadata_mut().insert(ORG_ID_HEADER, v);
                }
                Ok(req)
            }
            Ok(None) => Ok(req),
            Err(e) => Err(tonic::Status::new(
                kiln_cluster::status::grpc_code(e.code),
                e.message,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(tenant: &str, token: &str, scopes: &[Scope]) -> Credential {
        Credential {
            tenant: tenant.into(),
            token: token.into(),
            token_sha256: String::new(),
            username: String::new(),
            password: String::new(),
            scopes: scopes.to_vec(),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn hex(d: &[u8]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn auth(multitenancy: bool) -> Arc<Auth> {
        let mut basic = cred("b", "", &[Scope::Read]);
        basic.username = "grafana".into();
        basic.password = "s3cret".into();
        let mut hashed = cred("c", "", &[Scope::Write]);
        hashed.token_sha256 = hex(&sha256(b"hashed-token"));
        let config = AuthConfig {
            enabled: true,
            credentials: vec![
                cred("a", "token-a", &[Scope::Read, Scope::Write]),
                cred("a", "reader-a", &[Scope::Read]),
                basic,
                hashed,
            ],
            credentials_file: PathBuf::new(),
        };
        Auth::from_config(&config, multitenancy).unwrap().unwrap()
    }

    #[test]
    fn tokens_basic_auth_and_digests() {
        let a = auth(true);
        let ok = |h: &[(&str, &str)], s| a.check(&headers(h), s);
        assert_eq!(
            ok(&[("authorization", "Bearer token-a")], Scope::Write).unwrap(),
            Some("a".into())
        );
        assert_eq!(
            ok(&[("authorization", "bearer  token-a ")], Scope::Read).unwrap(),
            Some("a".into())
        );
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("grafana:s3cret")
        );
        assert_eq!(
            ok(&[("authorization", &basic)], Scope::Read).unwrap(),
            Some("b".into())
        );
        assert_eq!(
            ok(&[("authorization", "Bearer hashed-token")], Scope::Write).unwrap(),
            Some("c".into())
        );
        let code = |h: &[(&str, &str)], s| a.check(&headers(h), s).unwrap_err().code;
        assert_eq!(code(&[], Scope::Read), ErrorCode::Unauthenticated);
        assert_eq!(
            code(&[("authorization", "Bearer token-b")], Scope::Read),
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            code(&[("authorization", "Bearer token-")], Scope::Read),
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            code(&[("authorization", "token-a")], Scope::Read),
            ErrorCode::Unauthenticated
        );
        let wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("grafana:s3cre")
        );
        assert_eq!(
            code(&[("authorization", &wrong)], Scope::Read),
            ErrorCode::Unauthenticated
        );
        // Scopes.
        assert_eq!(
            code(&[("authorization", "Bearer reader-a")], Scope::Write),
            ErrorCode::PermissionDenied
        );
        assert_eq!(
            code(&[("authorization", &basic)], Scope::Write),
            ErrorCode::PermissionDenied
        );
        assert_eq!(
            code(&[("authorization", "Bearer hashed-token")], Scope::Read),
            ErrorCode::PermissionDenied
        );
    }

    #[test]
    fn the_credential_decides_the_tenant() {
        let a = auth(true);
        let h = |org: &str| headers(&[("authorization", "Bearer token-a"), (ORG_ID_HEADER, org)]);
        assert_eq!(
            a.check(&h("a"), Scope::Read).unwrap(),
            None,
            "its own tenant"
        );
        assert_eq!(
            a.check(&h("b"), Scope::Read).unwrap_err().code,
            ErrorCode::PermissionDenied
        );
        assert_eq!(
            a.check(&h("a|b"), Scope::Read).unwrap_err().code,
            ErrorCode::PermissionDenied
        );
        // Without multi-tenancy the tenant header is left alone.
        let a = auth(false);
        assert_eq!(a.check(&h("b"), Scope::Read).unwrap(), None);
    }

    #[test]
    fn bad_configs_are_explained() {
        let err = |c: Vec<Credential>, mt| {
            Auth::from_config(
                &AuthConfig {
                    enabled: true,
                    credentials: c,
                    credentials_file: PathBuf::new(),
                },
                mt,
            )
            .unwrap_err()
        };
        assert!(err(vec![], false).contains("no credentials"));
        let mut two = cred("a", "t", &[Scope::Read]);
        two.username = "u".into();
        two.password = "p".into();
        assert!(err(vec![two], false).contains("exactly one"));
        assert!(err(vec![cred("", "t", &[Scope::Read])], true).contains("tenant"));
        assert!(err(vec![cred("a", "t", &[])], false).contains("scopes"));
        let mut bad_hex = cred("a", "", &[Scope::Read]);
        bad_hex.token_sha256 = "abc".into();
        assert!(err(vec![bad_hex], false).contains("64 hex"));
        assert!(
            Auth::from_config(&AuthConfig::default(), true)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn credentials_file_adds_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds.yaml");
        std::fs::write(
            &file,
            "credentials:\n  - tenant: x\n    token: from-file\n    scopes: [write]\n",
        )
        .unwrap();
        let a = Auth::from_config(
            &AuthConfig {
                enabled: true,
                credentials: vec![],
                credentials_file: file,
            },
            true,
        )
        .unwrap()
        .unwrap();
        let h = headers(&[("authorization", "Bearer from-file")]);
        assert_eq!(a.check(&h, Scope::Write).unwrap(), Some("x".into()));
        assert_eq!(
            a.check(&h, Scope::Read).unwrap_err().code,
            ErrorCode::PermissionDenied
        );
    }
}
