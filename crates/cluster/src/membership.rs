//! Cluster membership through the metastore: every node registers and
//! renews its registration (heartbeats); distributors build the ingester
//! ring from the registrations that are fresh, so a node that stops
//! heartbeating leaves the ring after `member_timeout`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use kiln_proto::kiln::metastore::v1::Member as MemberInfo;
use tokio_util::sync::CancellationToken;

use crate::{ClientError, Member, MetastoreClient, Ring};

/// Virtual tokens per ingester on the ring.
pub const TOKENS_PER_INGESTER: usize = 128;

/// Where a router learns the current ring of ingesters.
pub trait RingSource: Send + Sync + std::fmt::Debug {
    /// The ring as currently known.
    fn ring(&self) -> Arc<Ring>;
}

/// A ring that never changes.
#[derive(Debug)]
pub struct StaticRing(pub Arc<Ring>);

impl RingSource for StaticRing {
    fn ring(&self) -> Arc<Ring> {
        Arc::clone(&self.0)
    }
}

/// Renews this node's registration every `interval` until `shutdown`.
pub async fn heartbeat_loop(
    client: MetastoreClient,
    node: MemberInfo,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut failing = false;
    loop {
        match client.heartbeat(node.clone()).await {
            Ok(_) if failing => {
                tracing::info!(node = %node.id, "heartbeats reach the metastore again");
                failing = false;
            }
            Ok(_) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(node = %node.id, error = %e, "heartbeat to the metastore failed");
                }
                failing = true;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The ingester ring, refreshed from the metastore's registrations.
#[derive(Debug)]
pub struct MetastoreRing {
    client: MetastoreClient,
    member_timeout: Duration,
    ring: RwLock<Arc<Ring>>,
}

impl MetastoreRing {
    /// A ring source reading registrations through `client`.
    pub fn new(client: MetastoreClient, member_timeout: Duration) -> Arc<Self> {
        Arc::new(MetastoreRing {
            client,
            member_timeout,
            ring: RwLock::new(Arc::new(Ring::default())),
        })
    }

    /// Reloads the ring; returns the number of live ingesters.
    pub async fn refresh(&self) -> Result<usize, ClientError> {
        let resp = self.client.members("ingester").await?;
        let timeout = self.member_timeout.as_millis() as i64;
        let members: Vec<Member> = resp
            .members
            .into_iter()
            .filter(|m| resp.now - m.last_heartbeat <= timeout)
            .map(|m| Member {
                id: m.id,
                addr: m.addr,
            })
            .collect();
        let n = members.len();
        let ring = Arc::new(Ring::new(members, TOKENS_PER_INGESTER));
        let changed = {
            let old = self
                .ring
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            old.members() != ring.members()
        };
        if changed {
            tracing::info!(ingesters = n, members = ?ring.members().iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), "ingester ring changed");
        }
        *self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ring;
        Ok(n)
    }

    /// Refreshes every `interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "cannot refresh the ingester ring");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

impl RingSource for MetastoreRing {
    fn ring(&self) -> Arc<Ring> {
        Arc::clone(
            &self
                .ring
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// The live members of one role (e.g. the queriers a query is spread over),
/// refreshed from the metastore's registrations.
#[derive(Debug)]
pub struct MemberList {
    client: MetastoreClient,
    role: String,
    member_timeout: Duration,
    members: RwLock<Arc<Vec<Member>>>,
}

impl MemberList {
    /// A list of the members with `role`, read through `client`.
    pub fn new(client: MetastoreClient, role: &str, member_timeout: Duration) -> Arc<Self> {
        Arc::new(MemberList {
            client,
            role: role.to_owned(),
            member_timeout,
            members: RwLock::new(Arc::new(Vec::new())),
        })
    }

    /// Reloads the list; returns the number of live members.
    pub async fn refresh(&self) -> Result<usize, ClientError> {
        let resp = self.client.members(&self.role).await?;
        let timeout = self.member_timeout.as_millis() as i64;
        let mut members: Vec<Member> = resp
            .members
            .into_iter()
            .filter(|m| resp.now - m.last_heartbeat <= timeout)
            .map(|m| Member {
                id: m.id,
                addr: m.addr,
            })
            .collect();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        let n = members.len();
        let mut current = self
            .members
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if **current != members {
            tracing::info!(role = %self.role, members = ?members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), "members changed");
        }
        *current = Arc::new(members);
        Ok(n)
    }

    /// Refreshes every `interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.refresh().await {
                tracing::warn!(role = %self.role, error = %e, "cannot refresh the member list");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// The live members as last read.
    pub fn members(&self) -> Arc<Vec<Member>> {
        Arc::clone(
            &self
                .members
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}
