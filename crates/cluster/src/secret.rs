//! The cluster secret: a shared value every internal gRPC call carries and
//! every internal service checks, so that only Kiln nodes of the same
//! cluster can call the metastore, Raft, ingester and querier-task
//! services.
//!
//! The public services on the gRPC port (Push, OTLP export, Querier) are
//! guarded by the API credentials instead; they do not need the secret.
//!
//! The secret travels in the `x-kiln-cluster-secret` metadata entry (so an
//! internal call can still carry a client's `authorization`). The receiving
//! side compares SHA-256 digests in constant time; a second secret can be
//! accepted besides a node's own while a new one rolls out. Without a configured
//! secret, calls carry nothing and services accept every call — the
//! behaviour of a cluster on a private network.
//!
//! The secret guards who may call; it does not encrypt. Run internal gRPC
//! on a private network, or behind a mesh that adds TLS.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// The metadata entry carrying the secret.
pub const METADATA_KEY: &str = "x-kiln-cluster-secret";

/// A channel to another node's internal services: every call carries the
/// cluster secret, when there is one.
pub type InternalChannel = InterceptedService<Channel, ClusterSecret>;

/// The cluster secret of this node, or none. Attaches it to outgoing calls
/// (as an [`Interceptor`]) and checks incoming ones ([`Self::require`]).
#[derive(Clone, Default)]
pub struct ClusterSecret {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    value: MetadataValue<Ascii>,
    /// Digests of the secrets accepted: this node's own first, then the
    /// one accepted besides it while a new secret rolls out.
    accepted: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.inner.is_some() {
            "<set>"
        } else {
            "<none>"
        };
        f.debug_tuple("ClusterSecret").field(&shown).finish()
    }
}

/// What a `Debug` implementation shows of a secret-holding field: nothing
/// of the secret, only whether one is set.
pub fn redacted(value: &str) -> &'static str {
    if value.is_empty() { "" } else { "<redacted>" }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl ClusterSecret {
    /// No secret: calls carry nothing, services accept every call.
    pub fn none() -> Self {
        ClusterSecret::default()
    }

    /// The secret `value`; an empty value means none. It must be visible
    /// ASCII (it travels as gRPC metadata) and at least 16 bytes long.
    pub fn new(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Ok(ClusterSecret::none());
        }
        check(value)?;
        let metadata = MetadataValue::try_from(value)
            .map_err(|e| format!("the cluster secret is not valid gRPC metadata: {e}"))?;
        Ok(ClusterSecret {
            inner: Some(Arc::new(Inner {
                value: metadata,
                accepted: vec![sha256(value.as_bytes())],
            })),
        })
    }

    /// Also accepts calls carrying `other` (never sends it): for rotating
    /// the secret without refused calls (docs/operations.md). An empty
    /// `other` changes nothing; a secret of its own is required.
    pub fn also_accepting(self, other: &str) -> Result<Self, String> {
        if other.is_empty() {
            return Ok(self);
        }
        check(other)?;
        let Some(inner) = self.inner else {
            return Err("a second accepted cluster secret needs a cluster secret".into());
        };
        let mut accepted = inner.accepted.clone();
        accepted.push(sha256(other.as_bytes()));
        Ok(ClusterSecret {
            inner: Some(Arc::new(Inner {
                value: inner.value.clone(),
                accepted,
            })),
        })
    }

    /// Whether a secret is set.
    pub fn is_set(&self) -> bool {
        self.inner.is_some()
    }

    /// A lazily connecting channel through `endpoint` whose calls carry
    /// the secret.
    pub fn connect_lazy(&self, endpoint: Endpoint) -> InternalChannel {
        InterceptedService::new(endpoint.connect_lazy(), self.clone())
    }

    /// The check of an internal service: with a secret set, a call without
    /// it or with another value is refused as `unauthenticated`.
    pub fn require(&self) -> RequireSecret {
        RequireSecret {
            secret: self.clone(),
        }
    }
}

/// The rules every secret follows.
fn check(value: &str) -> Result<(), String> {
    if value.len() < 16 {
        return Err("the cluster secret must be at least 16 bytes long".into());
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the cluster secret must be visible ASCII (no spaces or control characters)".into(),
        );
    }
    Ok(())
}

impl Interceptor for ClusterSecret {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(inner) = &self.inner {
            request
                .metadata_mut()
                .insert(METADATA_KEY, inner.value.clone());
        }
        Ok(request)
    }
}

/// The server-side check of the cluster secret (see
/// [`ClusterSecret::require`]).
#[derive(Clone, Debug)]
pub struct RequireSecret {
    secret: ClusterSecret,
}

impl Interceptor for RequireSecret {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(inner) = &self.secret.inner else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get(METADATA_KEY)
            .map(|v| sha256(v.as_bytes()));
        // Every accepted digest is compared, whichever matches.
        let matches = |digest: &[u8; 32]| {
            inner
                .accepted
                .iter()
                .fold(subtle::Choice::from(0), |any, d| any | digest.ct_eq(d))
        };
        match given {
            Some(digest) if bool::from(matches(&digest)) => Ok(request),
            Some(_) => Err(Status::unauthenticated(
                "internal service: wrong cluster secret",
            )),
            None => Err(Status::unauthenticated(format!(
                "internal service: the cluster secret ({METADATA_KEY}) is required"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(check: &mut RequireSecret, value: Option<&str>) -> Result<(), Status> {
        let mut request = Request::new(());
        if let Some(v) = value {
            request
                .metadata_mut()
                .insert(METADATA_KEY, MetadataValue::try_from(v).unwrap());
        }
        check.call(request).map(drop)
    }

    #[test]
    fn without_a_secret_every_call_passes_and_nothing_is_sent() {
        let mut secret = ClusterSecret::new("").unwrap();
        assert!(!secret.is_set());
        let sent = secret.call(Request::new(())).unwrap();
        assert!(sent.metadata().get(METADATA_KEY).is_none());
        let mut check = secret.require();
        assert!(call(&mut check, None).is_ok());
        assert!(call(&mut check, Some("anything-at-all-here")).is_ok());
    }

    #[test]
    fn with_a_secret_only_the_same_value_passes() {
        let mut secret = ClusterSecret::new("s3cret-of-the-cluster").unwrap();
        let sent = secret.call(Request::new(())).unwrap();
        let value = sent.metadata().get(METADATA_KEY).unwrap().to_str().unwrap();
        assert_eq!(value, "s3cret-of-the-cluster");

        let mut check = secret.require();
        assert!(call(&mut check, Some("s3cret-of-the-cluster")).is_ok());
        let wrong = call(&mut check, Some("s3cret-of-the-clustex")).unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert!(wrong.message().contains("wrong"), "{}", wrong.message());
        let missing = call(&mut check, None).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains(METADATA_KEY));
        // A prefix of the secret is no better than any other value.
        let prefix = call(&mut check, Some("s3cret-of-the")).unwrap_err();
        assert_eq!(prefix.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn a_second_accepted_secret_is_accepted_but_never_sent() {
        let mut secret = ClusterSecret::new("the-current-secret-1")
            .unwrap()
            .also_accepting("the-next-secret-2222")
            .unwrap();
        let sent = secret.call(Request::new(())).unwrap();
        assert_eq!(
            sent.metadata().get(METADATA_KEY).unwrap().to_str().unwrap(),
            "the-current-secret-1"
        );
        let mut check = secret.require();
        assert!(call(&mut check, Some("the-current-secret-1")).is_ok());
        assert!(call(&mut check, Some("the-next-secret-2222")).is_ok());
        assert!(call(&mut check, Some("some-third-secret-33")).is_err());
        assert!(call(&mut check, None).is_err());
        // Nothing to add to; and the same rules as for the secret.
        assert!(
            ClusterSecret::none()
                .also_accepting("the-next-secret-2222")
                .is_err()
        );
        assert!(
            ClusterSecret::new("the-current-secret-1")
                .unwrap()
                .also_accepting("short")
                .is_err()
        );
        let unchanged = ClusterSecret::none().also_accepting("").unwrap();
        assert!(!unchanged.is_set());
    }

    #[test]
    fn short_or_unprintable_secrets_are_refused() {
        assert!(
            ClusterSecret::new("short")
                .unwrap_err()
                .contains("16 bytes")
        );
        assert!(
            ClusterSecret::new("has a space in the middle")
                .unwrap_err()
                .contains("visible ASCII")
        );
        assert!(ClusterSecret::new("tab\tinside-the-secret-value").is_err());
        assert!(ClusterSecret::new("nön-ascii-secret-value-here").is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = ClusterSecret::new("s3cret-of-the-cluster").unwrap();
        let shown = format!("{secret:?} {:?}", secret.require());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<set>"), "{shown}");
    }
}
