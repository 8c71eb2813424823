//! Parsing, routing and fan-out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::try_join_all;
use kiln_cluster::{IngesterClients, MemberList, Ring, RingSource, shard_for};
use kiln_formats::ingest::{IngestBody, IngestParams, profiles_from_ingest};
use kiln_formats::push::profiles_and_decoded_size_from_push_series;
use kiln_formats::{FormatError, Limits, SeriesProfile};
use kiln_model::labels::{LABEL_SERVICE_NAME, UNKNOWN_SERVICE};
use kiln_model::{HasErrorCode, LimitsSource, TenantId, TenantLimits};
use kiln_proto::kiln::ingester::v1::{
    Profile as IngesterProfile, PushRequest as IngesterPushRequest,
};
use kiln_proto::push::v1::PushRequest;
use kiln_proto::types::v1::LabelPair;
use prost::Message;

use crate::limiter::{RateLimiter, SeriesLimiter};
use crate::metrics::{DiscardLabels, TenantLabels};
use crate::{DistributorConfig, DistributorError, DistributorMetrics, Result};

/// The distributor role.
#[derive(Debug, Clone)]
pub struct Distributor {
    config: DistributorConfig,
    limits: Arc<dyn LimitsSource>,
    ring: Arc<dyn RingSource>,
    clients: Arc<IngesterClients>,
    metrics: DistributorMetrics,
    rate: Arc<RateLimiter>,
    series: Arc<SeriesLimiter>,
    distributors: Option<Arc<MemberList>>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

impl Distributor {
    /// A distributor routing over `ring` through `clients`.
    pub fn new(
        config: DistributorConfig,
        limits: Arc<dyn LimitsSource>,
        ring: Arc<dyn RingSource>,
        clients: Arc<IngesterClients>,
        metrics: DistributorMetrics,
    ) -> Self {
        Distributor {
            config,
            limits,
            ring,
            clients,
            metrics,
            rate: Arc::default(),
            series: Arc::default(),
            distributors: None,
        }
    }

    /// Shares each tenant's ingestion rate with the live members of
    /// `distributors` (this node included).
    pub fn with_distributors(mut self, distributors: Arc<MemberList>) -> Self {
        self.distributors = Some(distributors);
        self
    }

    /// The limits of `tenant`.
    pub fn tenant_limits(&self, tenant: &TenantId) -> Arc<TenantLimits> {
        self.limits.limits(tenant)
    }

    /// The limits `tenant`'s profiles are parsed under.
    fn parse_limits(&self, tenant: &TenantId) -> Arc<Limits> {
        self.limits.limits(tenant)
    }

    /// Applies the tenant's ingestion rate and series limits to parsed
    /// profiles, before anything is sent.
    fn admit(&self, tenant: &TenantId, profiles: &[SeriesProfile]) -> Result<()> {
        if profiles.is_empty() {
            return Ok(());
        }
        let limits = self.limits.limits(tenant);
        let now = std::time::Instant::now();
        let mut fingerprints = Vec::with_capacity(profiles.len());
        let mut bytes = 0usize;
        for p in profiles {
            bytes += p.profile.encoded_len()
                + p.labels
                    .iter()
                    .map(|(n, v)| n.len() + v.len())
                    .sum::<usize>();
            // One series per sample type.
            let base = p.labels.fingerprint();
            for st in &p.profile.sample_type {
                fingerprints.push(
                    base ^ (st.r#type as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        ^ (st.unit as u64).rotate_left(17),
                );
            }
        }
        let discard = |reason: &str| {
            self.metrics
                .discarded_profiles
                .get_or_create(&DiscardLabels {
                    tenant: tenant.to_string(),
                    reason: reason.into(),
                })
                .inc_by(profiles.len() as u64);
            self.metrics
                .discarded_requests
                .get_or_create(&DiscardLabels {
                    tenant: tenant.to_string(),
                    reason: reason.into(),
                })
                .inc();
        };
        let share = self
            .distributors
            .as_ref()
            .map(|d| d.members().len().max(1))
            .unwrap_or(1) as f64;
        let rate = limits.ingestion_rate_mb * 1e6 / share;
        let burst = limits.ingestion_burst_size_mb * 1e6;
        if let Err(retry_after) = self.rate.admit(tenant.as_str(), bytes, rate, burst, now) {
            discard("rate_limited");
            return Err(DistributorError::RateLimited {
                rate_mb: limits.ingestion_rate_mb,
                retry_after,
            });
        }
        if let Err(active) =
            self.series
                .admit(tenant.as_str(), &fingerprints, limits.max_series, now)
        {
            discard("series_limit");
            return Err(DistributorError::SeriesLimit {
                limit: limits.max_series,
                active,
            });
        }
        Ok(())
    }

    /// Handles a `push.v1.PusherService/Push` request.
    pub async fn push(
        &self,
        tenant: &TenantId,
        request: PushRequest,
        request_bytes: usize,
    ) -> Result<()> {
        self.count_bytes(tenant, request_bytes);
        let limits = self.parse_limits(tenant);
        if let Err(e) = check_request_size(&limits, request_bytes) {
            return self.observe(tenant, Err(e)).map(drop);
        }
        let parsed = tokio::task::spawn_blocking(move || -> Result<Vec<SeriesProfile>> {
            let now = now_ns();
            let mut out = Vec::new();
            let mut uncompressed = 0usize;
            for series in &request.series {
                for sample in &series.samples {
                    let (profiles, decoded_size) = profiles_and_decoded_size_from_push_series(
                        &series.labels,
                        &sample.raw_profile,
                        &limits,
                        now,
                    )?;
                    uncompressed += decoded_size;
                    if uncompressed > limits.max_body_bytes {
                        return Err(FormatError::TooLarge {
                            limit: limits.max_body_bytes,
                            what: "push request",
                        }
                        .into());
                    }
                    out.extend(profiles);
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| DistributorError::Internal(e.to_string()))?;
        let profiles = self.observe(tenant, parsed)?;
        self.admit(tenant, &profiles)?;
        self.send(tenant, profiles).await
    }

    /// Handles a legacy `/ingest` request.
    pub async fn ingest(
        &self,
        tenant: &TenantId,
        params: IngestParams,
        content_type: Option<String>,
        body: IngestBody,
    ) -> Result<()> {
        self.count_bytes(tenant, body.len());
        let limits = self.parse_limits(tenant);
        let parsed = tokio::task::spawn_blocking(move || {
            profiles_from_ingest(&params, content_type.as_deref(), body, &limits, now_ns())
                .map_err(DistributorError::from)
        })
        .await
        .map_err(|e| DistributorError::Internal(e.to_string()))?;
        let profiles = self.observe(tenant, parsed)?;
        self.admit(tenant, &profiles)?;
        self.send(tenant, profiles).await
    }

    /// Handles an OTLP `ExportProfilesServiceRequest` (protobuf, gzip sniffed).
    pub async fn otlp(&self, tenant: &TenantId, body: bytes::Bytes) -> Result<()> {
        self.count_bytes(tenant, body.len());
        let limits = self.parse_limits(tenant);
        let parsed = tokio::task::spawn_blocking(move || {
            kiln_formats::otlp::profiles_from_otlp(&body, &limits, now_ns())
                .map_err(DistributorError::from)
        })
        .await
        .map_err(|e| DistributorError::Internal(e.to_string()))?;
        let profiles = self.observe(tenant, parsed)?;
        self.admit(tenant, &profiles)?;
        self.send(tenant, profiles).await
    }

    /// Handles an already decoded OTLP request (gRPC, JSON).
    pub async fn otlp_request(
        &self,
        tenant: &TenantId,
        request: kiln_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest,
        request_bytes: usize,
    ) -> Result<()> {
        self.count_bytes(tenant, request_bytes);
        let limits = self.parse_limits(tenant);
        if let Err(e) = check_request_size(&limits, request_bytes) {
            return self.observe(tenant, Err(e)).map(drop);
        }
        let parsed = tokio::task::spawn_blocking(move || {
            kiln_formats::otlp::profiles_from_otlp_request(&request, &limits, now_ns())
                .map_err(DistributorError::from)
        })
        .await
        .map_err(|e| DistributorError::Internal(e.to_string()))?;
        let profiles = self.observe(tenant, parsed)?;
        self.admit(tenant, &profiles)?;
        self.send(tenant, profiles).await
    }

    fn count_bytes(&self, tenant: &TenantId, bytes: usize) {
        self.metrics
            .received_bytes
            .get_or_create(&TenantLabels {
                tenant: tenant.to_string(),
            })
            .inc_by(bytes as u64);
    }

    fn observe(
        &self,
        tenant: &TenantId,
        parsed: Result<Vec<SeriesProfile>>,
    ) -> Result<Vec<SeriesProfile>> {
        match parsed {
            Ok(p) => {
                self.metrics
                    .received_profiles
                    .get_or_create(&TenantLabels {
                        tenant: tenant.to_string(),
                    })
                    .inc_by(p.len() as u64);
                Ok(p)
            }
            Err(e) => {
                let reason = match &e {
                    DistributorError::Format(FormatError::TooLarge { .. }) => "profile_size_limit",
                    _ if e.code() == kiln_model::ErrorCode::InvalidArgument => "malformed_profile",
                    _ => "internal",
                };
                let labels = DiscardLabels {
                    tenant: tenant.to_string(),
                    reason: reason.into(),
                };
                self.metrics.discarded_requests.get_or_create(&labels).inc();
                // How many profiles a refused request held is unknown: it
                // counts as one.
                self.metrics.discarded_profiles.get_or_create(&labels).inc();
                Err(e)
            }
        }
    }

    /// Routes profiles to their shards and waits for every ingester.
    async fn send(&self, tenant: &TenantId, profiles: Vec<SeriesProfile>) -> Result<()> {
        if profiles.is_empty() {
            return Ok(());
        }
        let mut by_shard: BTreeMap<u32, Vec<IngesterProfile>> = BTreeMap::new();
        for p in profiles {
            let service = p
                .labels
                .get(LABEL_SERVICE_NAME)
                .unwrap_or(UNKNOWN_SERVICE)
                .to_owned();
            let spread = if self.config.service_spread > 1 {
                (p.labels.fingerprint() % u64::from(self.config.service_spread)) as u32
            } else {
                0
            };
            let shard = shard_for(tenant.as_str(), &service, spread, self.config.shards);
            let labels = p
                .labels
                .iter()
                .map(|(n, v)| LabelPair {
                    name: n.to_owned(),
                    value: v.to_owned(),
                })
                .collect();
            by_shard.entry(shard).or_default().push(IngesterProfile {
                labels,
                id: uuid::Uuid::new_v4().into_bytes().to_vec(),
                profile: Some(p.profile),
                annotations: Vec::new(),
            });
        }
        let ring = self.ring.ring();
        let sends = by_shard.into_iter().map(|(shard, profiles)| {
            let request = IngesterPushRequest {
                tenant: tenant.to_string(),
                shard,
                profiles,
            };
            self.send_shard(&ring, shard, request)
        });
        let timeout = self.config.push_timeout;
        tokio::time::timeout(timeout, try_join_all(sends))
            .await
            .map_err(|_| DistributorError::Timeout(timeout))??;
        Ok(())
    }

    /// Sends one shard's profiles to its owner, failing over to the next
    /// ingesters on the ring while the error is "unavailable".
    async fn send_shard(
        &self,
        ring: &Ring,
        shard: u32,
        request: IngesterPushRequest,
    ) -> Result<()> {
        let owners = ring.owners(shard);
        // Only a failover needs the request again: the earlier candidates
        // get a copy, the last one (usually the only one tried, with one
        // ingester per shard alive) takes it.
        let Some((final_member, earlier)) = owners.split_last() else {
            return Err(DistributorError::NoIngester { shard });
        };
        for member in earlier {
            match self.clients.push(&member.addr, request.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if e.code() == kiln_model::ErrorCode::Unavailable => {
                    tracing::warn!(shard, ingester = %member.id, error = %e, "ingester unavailable, trying the next one");
                }
                Err(e) => return Err(DistributorError::Ingester { shard, source: e }),
            }
        }
        match self.clients.push(&final_member.addr, request).await {
            Ok(_) => Ok(()),
            Err(source) => Err(DistributorError::Ingester { shard, source }),
        }
    }
}

/// Refuses a request larger as received than the tenant's
/// `max_body_bytes`. The HTTP port reads no more than that; the gRPC
/// listeners let through up to the largest limit of any tenant, so this is
/// where a tenant's own limit applies to them.
fn check_request_size(limits: &Limits, request_bytes: usize) -> Result<()> {
    if request_bytes > limits.max_body_bytes {
        return Err(FormatError::TooLarge {
            limit: limits.max_body_bytes,
            what: "request body",
        }
        .into());
    }
    Ok(())
}
