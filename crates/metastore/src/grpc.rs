//! tonic adapter of the metastore, with leader forwarding: a call that
//! reaches a follower is sent on to the leader (once; a forwarded call that
//! meets another non-leader fails with `unavailable` and the client retries).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_cluster::InternalChannel;
use kiln_cluster::status::to_status;
use kiln_proto::kiln::metastore::v1::metastore_service_client::MetastoreServiceClient;
use kiln_proto::kiln::metastore::v1::metastore_service_server::MetastoreService;
use kiln_proto::kiln::metastore::v1::{
    AddBlockRequest, AddBlockResponse, ApplyRetentionRequest, ApplyRetentionResponse,
    CompleteJobRequest, CompleteJobResponse, FailJobRequest, FailJobResponse, GetMembersRequest,
    GetMembersResponse, HeartbeatRequest, HeartbeatResponse, ListTombstonesRequest,
    ListTombstonesResponse, PollJobsRequest, PollJobsResponse, PurgeTombstonesRequest,
    PurgeTombstonesResponse, QueryBlocksRequest, QueryBlocksResponse, RenewLeaseRequest,
    RenewLeaseResponse, StatusRequest, StatusResponse,
};
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

use crate::{Metastore, MetastoreError};

const FORWARDED: &str = "x-kiln-forwarded";

/// Serves [`Metastore`] over gRPC.
#[derive(Debug, Clone)]
pub struct MetastoreGrpc {
    metastore: Metastore,
    leaders: Arc<Mutex<HashMap<String, MetastoreServiceClient<InternalChannel>>>>,
}

impl MetastoreGrpc {
    /// Wraps a metastore replica.
    pub fn new(metastore: Metastore) -> Self {
        MetastoreGrpc {
            metastore,
            leaders: Arc::default(),
        }
    }

    fn client(&self, addr: &str) -> Result<MetastoreServiceClient<InternalChannel>, Status> {
        let mut leaders = self
            .leaders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = leaders.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::unavailable(format!("bad leader address {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(30));
        let c = MetastoreServiceClient::new(self.metastore.cluster_secret().connect_lazy(endpoint))
            .max_decoding_message_size(kiln_cluster::clients::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(kiln_cluster::clients::MAX_MESSAGE_BYTES);
        leaders.insert(addr.to_owned(), c.clone());
        Ok(c)
    }

    /// Runs `local`; if this replica is not the leader, runs `remote` against
    /// the leader instead (unless the call was already forwarded).
    async fn with_forwarding<Req, Resp, L, LF, R, RF>(
        &self,
        request: Request<Req>,
        local: L,
        remote: R,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Clone,
        L: FnOnce(Req) -> LF,
        LF: Future<Output = Result<Resp, MetastoreError>>,
        R: FnOnce(MetastoreServiceClient<InternalChannel>, Request<Req>) -> RF,
        RF: Future<Output = Result<Response<Resp>, Status>>,
    {
        let forwarded = request.metadata().contains_key(FORWARDED);
        let body = request.into_inner();
        match local(body.clone()).await {
            Ok(resp) => Ok(Response::new(resp)),
            Err(MetastoreError::NotLeader { leader_addr }) if !forwarded => {
                let mut req = Request::new(body);
                req.metadata_mut()
                    .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
                remote(self.client(&leader_addr)?, req).await
            }
            Err(e) => Err(to_status(&e)),
        }
    }
}

#[tonic::async_trait]
impl MetastoreService for MetastoreGrpc {
    async fn add_block(
        &self,
        request: Request<AddBlockRequest>,
    ) -> Result<Response<AddBlockResponse>, Status> {
        let m = &self.metastore;
        self.with_forwarding(
            request,
            |r: AddBlockRequest| async move {
                let block = r
                    .block
                    .ok_or_else(|| MetastoreError::InvalidRequest("missing block".into()))?;
                m.add_block(block).await.map(|()| AddBlockResponse {})
            },
            |mut c, req| async move { c.add_block(req).await },
        )
        .await
    }

    async fn query_blocks(
        &self,
        request: Request<QueryBlocksRequest>,
    ) -> Result<Response<QueryBlocksResponse>, Status> {
        let m = &self.metastore;
        self.with_forwarding(
            request,
            |r: QueryBlocksRequest| async move {
                m.query_blocks(&r)
                    .await
                    .map(|blocks| QueryBlocksResponse { blocks })
            },
            |mut c, req| async move { c.query_blocks(req).await },
        )
        .await
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let m = &self.metastore;
        self.with_forwarding(
            request,
            |r: HeartbeatRequest| async move {
                let member = r
                    .member
                    .ok_or_else(|| MetastoreError::InvalidRequest("missing member".into()))?;
                m.heartbeat(member).await.map(|()| HeartbeatResponse {})
            },
            |mut c, req| async move { c.heartbeat(req).await },
        )
        .await
    }

    async fn get_members(
        &self,
        request: Request<GetMembersRequest>,
    ) -> Result<Response<GetMembersResponse>, Status> {
        let m = &self.metastore;
        self.with_forwarding(
            request,
            |r: GetMembersRequest| async move {
                m.members(&r.role)
                    .await
                    .map(|(members, now)| GetMembersResponse { members, now })
            },
            |mut c, req| async move { c.get_members(req).await },
        )
        .await
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(self.metastore.status()))
    }

    async fn poll_jobs(
        &self,
        request: Request<PollJobsRequest>,
    ) -> Result<Response<PollJobsResponse>, Status> {
        let m = &self.metastore;
        self.with_forwarding(
            request,
            |r| async move { m.poll_jobs(r).await },
            |mut c, req| async move { c.poll_jobs(req).await },
        )
        .await
    }

    async fn renew_lease(
        &self,
        request: Request<RenewLeaseRequest>,
    ) -> Result<Response<RenewLeaseResponse>, Status> {
        let m = &self.metastore;
        self.with_forwarding(
            request,
            |r| async move { m.renew_lease(r).await },
            |mut c, req| async move { c.renew_lease(req).await },
        )
        .await
    }

    async fn complete_job(
        &self,
        request: Request<CompleteJobRequest>,
    ) -> Result<Response<CompleteJobResponse>, Status> {
        let m = &self.metastore;
        self.with_forwarding(
            request,
            |r| async move { m.complete_job(r).await },
            |mut c, req| async move { c.complete_job(req).await },
        )
        .await
    }

    async fn fail_job(
        &self,
        request: Request<FailJobRequest>,
    ) -> Result<Response<FailJobResponse>, Status> {
        let m = &self.metastore;
        self.with_forwarding(
            request,
            |r| async move { m.fail_job(r).await.map(|()| FailJobResponse {}) },
            |mut c, req| async move { c.fail_job(req).await },
        )
        .await
    }

    async fn apply_retention(
        &self,
        request: Request<ApplyRetentionRequest>,
    ) -> Result<Response<ApplyRetentionResponse>, Status> {
        let m = &self.metastore;
        self.with_forwarding(
            request,
            |r| async move { m.apply_retention(r).await },
            |mut c, req| async move { c.apply_retention(req).await },
        )
        .await
    }

    async fn list_tombstones(
        &self,
        request: Request<ListTombstonesRequest>,
    ) -> Result<Response<ListTombstonesResponse>, Status> {
        let m = &self.metastore;
        self.with_forwarding(
            request,
            |r: ListTombstonesRequest| async move {
                m.tombstones(r.min_age_ms)
                    .await
                    .map(|tombstones| ListTombstonesResponse { tombstones })
            },
            |mut c, req| async move { c.list_tombstones(req).await },
        )
        .await
    }

    async fn purge_tombstones(
        &self,
        request: Request<PurgeTombstonesRequest>,
    ) -> Result<Response<PurgeTombstonesResponse>, Status> {
        let m = &self.metastore;
        self.with_forwarding(
            request,
            |r| async move {
                m.purge_tombstones(r)
                    .await
                    .map(|()| PurgeTombstonesResponse {})
            },
            |mut c, req| async move { c.purge_tombstones(req).await },
        )
        .await
    }
}
