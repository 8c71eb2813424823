//! gRPC clients of the internal services. Channels connect lazily and are
//! reused; message size limits are raised to fit large profiles.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_model::{ErrorCode, HasErrorCode};
use kiln_proto::kiln::ingester::v1::ingester_service_client::IngesterServiceClient;
use kiln_proto::kiln::ingester::v1::ingester_service_server::IngesterService;
use kiln_proto::kiln::ingester::v1::{PushRequest, PushResponse};
use kiln_proto::kiln::metastore::v1::metastore_service_client::MetastoreServiceClient;
use kiln_proto::kiln::metastore::v1::{
    AddBlockRequest, AddBlockResponse, ApplyRetentionRequest, ApplyRetentionResponse, BlockMeta,
    CompleteJobRequest, CompleteJobResponse, FailJobRequest, FailJobResponse, GetMembersRequest,
    GetMembersResponse, HeartbeatRequest, HeartbeatResponse, ListTombstonesRequest,
    ListTombstonesResponse, Member, PollJobsRequest, PollJobsResponse, PurgeTombstonesRequest,
    PurgeTombstonesResponse, QueryBlocksRequest, QueryBlocksResponse, RenewLeaseRequest,
    RenewLeaseResponse, StatusRequest, StatusResponse,
};
use kiln_proto::kiln::querier::v1::task_service_client::TaskServiceClient;
use kiln_proto::kiln::querier::v1::{MergeTasksRequest, MergeTasksResponse};
use tonic::transport::Endpoint;

use crate::secret::{ClusterSecret, InternalChannel};
use crate::status::error_code;

/// Largest message exchanged between roles.
pub const MAX_MESSAGE_BYTES: usize = 512 << 20;

/// A failed call to another role.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address could not be used.
    #[error("invalid address {addr:?}: {reason}")]
    Address {
        /// The address.
        addr: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The remote call failed.
    #[error("{method} on {addr} failed: {}", status.message())]
    Call {
        /// The RPC.
        method: &'static str,
        /// The callee.
        addr: String,
        /// The status returned.
        #[source]
        status: tonic::Status,
    },
}

impl ClientError {
    /// The gRPC status of a failed call.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            ClientError::Call { status, .. } => Some(status),
            ClientError::Address { .. } => None,
        }
    }
}

impl HasErrorCode for ClientError {
    fn code(&self) -> ErrorCode {
        match self {
            ClientError::Address { .. } => ErrorCode::Unavailable,
            ClientError::Call { status, .. } => {
                // A status made on this side from a transport failure (reset,
                // GOAWAY of a node shutting down, h2 error) carries its cause;
                // statuses answered by the callee do not. The callee is gone
                // or going: unavailable, so callers fail over and retry,
                // whatever code the transport error was mapped to.
                if std::error::Error::source(status).is_some()
                    && matches!(status.code(), tonic::Code::Internal | tonic::Code::Unknown)
                {
                    ErrorCode::Unavailable
                } else if status.code() == tonic::Code::Unauthenticated {
                    // Internal services refuse only a missing or other
                    // cluster secret: a misconfigured node (or a secret
                    // rolling out), not the caller's credentials. Callers
                    // fail over to other nodes, and clients are told to
                    // retry instead of that their credentials are bad.
                    ErrorCode::Unavailable
                } else {
                    error_code(status.code())
                }
            }
        }
    }
}

fn endpoint(addr: &str, timeout: Duration) -> Result<Endpoint, ClientError> {
    let url = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(url)
        .map_err(|e| ClientError::Address {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .tcp_nodelay(true))
}

/// Clients of one internal service, one lazily connecting channel per
/// address, made on first use and kept.
#[derive(Debug)]
struct Pool<C> {
    timeout: Duration,
    secret: ClusterSecret,
    clients: Mutex<HashMap<String, C>>,
    make: fn(InternalChannel) -> C,
}

impl<C: Clone> Pool<C> {
    fn new(timeout: Duration, secret: ClusterSecret, make: fn(InternalChannel) -> C) -> Self {
        Pool {
            timeout,
            secret,
            clients: Mutex::new(HashMap::new()),
            make,
        }
    }

    /// The client of `addr`.
    fn get(&self, addr: &str) -> Result<C, ClientError> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let channel = self.secret.connect_lazy(endpoint(addr, self.timeout)?);
        let c = (self.make)(channel);
        clients.insert(addr.to_owned(), c.clone());
        Ok(c)
    }
}

/// Client of the metastore replicas. Calls go to the replica that answered
/// last; on an unavailable replica the next one is tried (any replica
/// forwards to the leader).
#[derive(Debug, Clone)]
pub struct MetastoreClient {
    replicas: Arc<Vec<(String, MetastoreServiceClient<InternalChannel>)>>,
    preferred: Arc<AtomicUsize>,
}

impl MetastoreClient {
    /// A client of the replicas at `addrs` (`host:port`); connects lazily.
    /// Every call carries `secret`.
    pub fn new(
        addrs: &[String],
        timeout: Duration,
        secret: &ClusterSecret,
    ) -> Result<Self, ClientError> {
        if addrs.is_empty() {
            return Err(ClientError::Address {
                addr: String::new(),
                reason: "no metastore address".into(),
            });
        }
        let mut replicas = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let channel = secret.connect_lazy(endpoint(addr, timeout)?);
            let client = MetastoreServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            replicas.push((addr.clone(), client));
        }
        Ok(MetastoreClient {
            replicas: Arc::new(replicas),
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Calls `f` on the preferred replica, then on the others while the
    /// error is retryable. Each full round is retried a few times with a
    /// short pause, to ride out leader elections.
    async fn call<T, F, Fut>(&self, method: &'static str, f: F) -> Result<T, ClientError>
    where
        F: Fn(MetastoreServiceClient<InternalChannel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let n = self.replicas.len();
        let mut last = None;
        for round in 0..4u32 {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(250 * u64::from(round))).await;
            }
            let first = self.preferred.load(Ordering::Relaxed) % n;
            for i in 0..n {
                let idx = (first + i) % n;
                let (addr, client) = &self.replicas[idx];
                match f(client.clone()).await {
                    Ok(r) => {
                        self.preferred.store(idx, Ordering::Relaxed);
                        return Ok(r.into_inner());
                    }
                    Err(status) => {
                        let code = error_code(status.code());
                        let e = ClientError::Call {
                            method,
                            addr: addr.clone(),
                            status,
                        };
                        if !matches!(code, ErrorCode::Unavailable | ErrorCode::Timeout) {
                            return Err(e);
                        }
                        last = Some(e);
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Address {
            addr: String::new(),
            reason: "no metastore replica".into(),
        }))
    }

    /// Registers a block; returns once the registration is durable.
    pub async fn add_block(&self, block: BlockMeta) -> Result<AddBlockResponse, ClientError> {
        let req = AddBlockRequest { block: Some(block) };
        self.call("AddBlock", |mut c| {
            let req = req.clone();
            async move { c.add_block(req).await }
        })
        .await
    }

    /// The blocks overlapping a time range.
    pub async fn query_blocks(
        &self,
        request: QueryBlocksRequest,
    ) -> Result<QueryBlocksResponse, ClientError> {
        self.call("QueryBlocks", |mut c| {
            let req = request.clone();
            async move { c.query_blocks(req).await }
        })
        .await
    }

    /// Registers or renews a node.
    pub async fn heartbeat(&self, member: Member) -> Result<HeartbeatResponse, ClientError> {
        let req = HeartbeatRequest {
            member: Some(member),
        };
        self.call("Heartbeat", |mut c| {
            let req = req.clone();
            async move { c.heartbeat(req).await }
        })
        .await
    }

    /// Registered nodes running `role` (all if empty).
    pub async fn members(&self, role: &str) -> Result<GetMembersResponse, ClientError> {
        let req = GetMembersRequest {
            role: role.to_owned(),
        };
        self.call("GetMembers", |mut c| {
            let req = req.clone();
            async move { c.get_members(req).await }
        })
        .await
    }

    /// Plans compaction jobs and leases some to `worker`.
    pub async fn poll_jobs(
        &self,
        request: PollJobsRequest,
    ) -> Result<PollJobsResponse, ClientError> {
        self.call("PollJobs", |mut c| {
            let req = request.clone();
            async move { c.poll_jobs(req).await }
        })
        .await
    }

    /// Extends a job lease.
    pub async fn renew_lease(
        &self,
        request: RenewLeaseRequest,
    ) -> Result<RenewLeaseResponse, ClientError> {
        self.call("RenewLease", |mut c| {
            let req = request.clone();
            async move { c.renew_lease(req).await }
        })
        .await
    }

    /// Commits a job's output.
    pub async fn complete_job(
        &self,
        request: CompleteJobRequest,
    ) -> Result<CompleteJobResponse, ClientError> {
        self.call("CompleteJob", |mut c| {
            let req = request.clone();
            async move { c.complete_job(req).await }
        })
        .await
    }

    /// Gives a job back after a failure.
    pub async fn fail_job(&self, request: FailJobRequest) -> Result<FailJobResponse, ClientError> {
        self.call("FailJob", |mut c| {
            let req = request.clone();
            async move { c.fail_job(req).await }
        })
        .await
    }

    /// Removes expired blocks.
    pub async fn apply_retention(
        &self,
        request: ApplyRetentionRequest,
    ) -> Result<ApplyRetentionResponse, ClientError> {
        self.call("ApplyRetention", |mut c| {
            let req = request.clone();
            async move { c.apply_retention(req).await }
        })
        .await
    }

    /// Tombstones at least `min_age_ms` old.
    pub async fn list_tombstones(
        &self,
        min_age_ms: i64,
    ) -> Result<ListTombstonesResponse, ClientError> {
        let req = ListTombstonesRequest { min_age_ms };
        self.call("ListTombstones", |mut c| async move {
            c.list_tombstones(req).await
        })
        .await
    }

    /// Forgets tombstones whose objects are deleted.
    pub async fn purge_tombstones(
        &self,
        object_keys: Vec<String>,
    ) -> Result<PurgeTombstonesResponse, ClientError> {
        let req = PurgeTombstonesRequest { object_keys };
        self.call("PurgeTombstones", |mut c| {
            let req = req.clone();
            async move { c.purge_tombstones(req).await }
        })
        .await
    }

    /// The raft status of the replica at index `replica` (not forwarded).
    pub async fn status(&self, replica: usize) -> Result<StatusResponse, ClientError> {
        let (addr, client) = self
            .replicas
            .get(replica)
            .ok_or_else(|| ClientError::Address {
                addr: String::new(),
                reason: format!("no replica {replica}"),
            })?;
        let mut c = client.clone();
        c.status(StatusRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ClientError::Call {
                method: "Status",
                addr: addr.clone(),
                status,
            })
    }
}

/// Clients of the ingesters, one channel per address.
///
/// The ingester of this very process, when there is one, is called
/// directly ([`IngesterClients::with_local`]): the same service code
/// without encoding the profiles to protobuf, sending them over loopback
/// HTTP/2 and decoding them again (a third of the ingest CPU in the
/// all-in-one process went there).
pub struct IngesterClients {
    pool: Pool<IngesterServiceClient<InternalChannel>>,
    local: Option<(String, Arc<dyn IngesterService>)>,
}

impl std::fmt::Debug for IngesterClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngesterClients")
            .field("timeout", &self.pool.timeout)
            .field("local", &self.local.as_ref().map(|(addr, _)| addr))
            .finish_non_exhaustive()
    }
}

impl IngesterClients {
    /// A pool whose calls time out after `timeout` and carry `secret`.
    pub fn new(timeout: Duration, secret: ClusterSecret) -> Self {
        IngesterClients {
            pool: Pool::new(timeout, secret, |channel| {
                IngesterServiceClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES)
            }),
            local: None,
        }
    }

    /// Calls to `addr` (this process's advertised address) go straight to
    /// `service` instead of through a channel.
    pub fn with_local(
        mut self,
        addr: impl Into<String>,
        service: Arc<dyn IngesterService>,
    ) -> Self {
        self.local = Some((addr.into(), service));
        self
    }

    /// Sends profiles to the ingester at `addr`; returns once they are durable.
    pub async fn push(
        &self,
        addr: &str,
        request: PushRequest,
    ) -> Result<PushResponse, ClientError> {
        let mut request = tonic::Request::new(request);
        crate::trace::propagate(&mut request);
        let answer = match &self.local {
            Some((local, service)) if local == addr => {
                match tokio::time::timeout(self.pool.timeout, service.push(request)).await {
                    Ok(answer) => answer,
                    Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                        "push timed out after {:?}",
                        self.pool.timeout
                    ))),
                }
            }
            _ => self.pool.get(addr)?.push(request).await,
        };
        answer
            .map(tonic::Response::into_inner)
            .map_err(|status| ClientError::Call {
                method: "Push",
                addr: addr.to_owned(),
                status,
            })
    }
}

/// Clients of other queriers' task service, one channel per address.
#[derive(Debug)]
pub struct QuerierClients {
    pool: Pool<TaskServiceClient<InternalChannel>>,
}

impl QuerierClients {
    /// A pool whose calls time out after `timeout` and carry `secret`.
    pub fn new(timeout: Duration, secret: ClusterSecret) -> Self {
        QuerierClients {
            pool: Pool::new(timeout, secret, |channel| {
                TaskServiceClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES)
            }),
        }
    }

    /// Asks the querier at `addr` to merge a share of a query's pieces.
    pub async fn merge_tasks(
        &self,
        addr: &str,
        request: MergeTasksRequest,
    ) -> Result<MergeTasksResponse, ClientError> {
        let mut c = self.pool.get(addr)?;
        let mut request = tonic::Request::new(request);
        crate::trace::propagate(&mut request);
        c.merge_tasks(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ClientError::Call {
                method: "MergeTasks",
                addr: addr.to_owned(),
                status,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_error(status: tonic::Status) -> ClientError {
        ClientError::Call {
            method: "Push",
            addr: "x:1".into(),
            status,
        }
    }

    #[test]
    fn transport_failures_are_unavailable_answers_keep_their_code() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let transport = tonic::Status::from_error(Box::new(reset));
        assert_eq!(call_error(transport).code(), ErrorCode::Unavailable);
        // What the callee answered is taken as it is.
        for (status, code) in [
            (tonic::Status::internal("bug"), ErrorCode::Internal),
            (tonic::Status::unknown("?"), ErrorCode::Internal),
            (
                tonic::Status::invalid_argument("bad"),
                ErrorCode::InvalidArgument,
            ),
            (tonic::Status::unavailable("busy"), ErrorCode::Unavailable),
        ] {
            assert_eq!(call_error(status).code(), code);
        }
    }

    #[test]
    fn a_refused_cluster_secret_is_unavailable_not_unauthenticated() {
        let refused = tonic::Status::unauthenticated("internal service: wrong cluster secret");
        assert_eq!(call_error(refused).code(), ErrorCode::Unavailable);
    }
}
