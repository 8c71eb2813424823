//! The public APIs over gRPC on the gRPC port (`push.v1`, `querier.v1`),
//! thin adapters over the same domain calls as the HTTP handlers. The
//! tenant travels as metadata `x-scope-orgid`.

use std::sync::Arc;

use kiln_cluster::status::to_status;
use kiln_distributor::Distributor;
use kiln_model::{ErrorCode, TenantId};
use kiln_proto::google::v1::Profile;
use kiln_proto::kiln::querier::v1 as kq;
use kiln_proto::kiln::querier::v1::task_service_server::TaskService;
use kiln_proto::push::v1::pusher_service_server::PusherService;
use kiln_proto::push::v1::{PushRequest, PushResponse};
use kiln_proto::querier::v1 as q;
use kiln_proto::querier::v1::querier_service_server::QuerierService;
use kiln_proto::types::v1 as t;
use kiln_querier::Querier;
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::tenant::ORG_ID_HEADER;

fn status_of(e: crate::http::ApiError) -> Status {
    let mut status = Status::new(kiln_cluster::status::grpc_code(e.code), e.message.clone());
    if let Some(secs) = e.retry_after_secs() {
        status.metadata_mut().insert("retry-after", secs.into());
    }
    status
}

fn headers_of(metadata: &MetadataMap) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    if let Some(v) = metadata.get(ORG_ID_HEADER)
        && let Ok(v) = http::HeaderValue::from_bytes(v.as_bytes())
    {
        h.insert(ORG_ID_HEADER, v);
    }
    h
}

fn write_tenant(metadata: &MetadataMap, multitenancy: bool) -> Result<TenantId, Status> {
    crate::tenant::tenant_for_write(&headers_of(metadata), multitenancy).map_err(status_of)
}

fn read_tenants(metadata: &MetadataMap, multitenancy: bool) -> Result<Vec<TenantId>, Status> {
    crate::tenant::tenants_for_read(&headers_of(metadata), multitenancy).map_err(status_of)
}

/// Rewrites the gRPC library's answer to a message over a service's size
/// limit from `OUT_OF_RANGE` (tonic's choice) to `RESOURCE_EXHAUSTED`, the
/// code gRPC's other implementations, Pyroscope among them, give it and
/// that clients take for "too large". The answer is a trailers-only
/// response, so the status is a header.
pub fn too_large_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let too_large = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers.get("grpc-message").is_some_and(|m| {
            let m = m.as_bytes();
            // The message is percent-encoded (spaces as %20).
            m.starts_with(b"Error,%20decoded%20message%20length%20too%20large")
                || m.starts_with(b"Error, decoded message length too large")
        });
    if too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}

/// `push.v1.PusherService` over gRPC.
#[derive(Debug, Clone)]
pub struct PushGrpc {
    /// The distributor.
    pub distributor: Distributor,
    /// Whether `x-scope-orgid` is required.
    pub multitenancy: bool,
}

#[tonic::async_trait]
impl PusherService for PushGrpc {
    async fn push(&self, request: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        let tenant = write_tenant(request.metadata(), self.multitenancy)?;
        let req = request.into_inner();
        let size = req.encoded_len();
        if req.series.iter().all(|s| s.samples.is_empty()) {
            return Err(Status::invalid_argument("no profiles received"));
        }
        self.distributor
            .push(&tenant, req, size)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(PushResponse {}))
    }
}

/// OTLP `ProfilesService` over gRPC.
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    /// The distributor.
    pub distributor: Distributor,
    /// Whether `x-scope-orgid` is required.
    pub multitenancy: bool,
}

#[tonic::async_trait]
impl kiln_proto::opentelemetry::proto::collector::profiles::v1development::profiles_service_server::ProfilesService
    for OtlpGrpc
{
    async fn export(
        &self,
        request: Request<kiln_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest>,
    ) -> Result<
        Response<kiln_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceResponse>,
        Status,
    > {
        let tenant = write_tenant(request.metadata(), self.multitenancy)?;
        let req = request.into_inner();
        let size = req.encoded_len();
        self.distributor.otlp_request(&tenant, req, size).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(Default::default()))
    }
}

/// `querier.v1.QuerierService` over gRPC.
#[derive(Debug, Clone)]
pub struct QuerierGrpc {
    /// The querier.
    pub querier: Arc<Querier>,
    /// Whether `x-scope-orgid` is required.
    pub multitenancy: bool,
}

#[tonic::async_trait]
impl QuerierService for QuerierGrpc {
    async fn profile_types(
        &self,
        request: Request<q::ProfileTypesRequest>,
    ) -> Result<Response<q::ProfileTypesResponse>, Status> {
        let tenants = read_tenants(request.metadata(), self.multitenancy)?;
        let r = request.into_inner();
        self.querier
            .profile_types(&tenants, r)
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }

    async fn label_values(
        &self,
        request: Request<t::LabelValuesRequest>,
    ) -> Result<Response<t::LabelValuesResponse>, Status> {
        let tenants = read_tenants(request.metadata(), self.multitenancy)?;
        let r = request.into_inner();
        self.querier
            .label_values(&tenants, r)
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }

    async fn label_names(
        &self,
        request: Request<t::LabelNamesRequest>,
    ) -> Result<Response<t::LabelNamesResponse>, Status> {
        let tenants = read_tenants(request.metadata(), self.multitenancy)?;
        let r = request.into_inner();
        self.querier
            .label_names(&tenants, r, true)
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }

    async fn series(
        &self,
        request: Request<q::SeriesRequest>,
    ) -> Result<Response<q::SeriesResponse>, Status> {
        let tenants = read_tenants(request.metadata(), self.multitenancy)?;
        let r = request.into_inner();
        self.querier
            .series(&tenants, r, true)
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }

    async fn select_merge_stacktraces(
        &self,
        request: Request<q::SelectMergeStacktracesRequest>,
    ) -> Result<Response<q::SelectMergeStacktracesResponse>, Status> {
        let tenants = read_tenants(request.metadata(), self.multitenancy)?;
        let r = request.into_inner();
        self.querier
            .select_merge_stacktraces(&tenants, r)
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }

    async fn select_merge_span_profile(
        &self,
        request: Request<q::SelectMergeSpanProfileRequest>,
    ) -> Result<Response<q::SelectMergeSpanProfileResponse>, Status> {
        let tenants = read_tenants(request.metadata(), self.multitenancy)?;
        let r = request.into_inner();
        self.querier
            .select_merge_span_profile(&tenants, r)
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }

    async fn select_merge_profile(
        &self,
        request: Request<q::SelectMergeProfileRequest>,
    ) -> Result<Response<Profile>, Status> {
        let tenants = read_tenants(request.metadata(), self.multitenancy)?;
        let r = request.into_inner();
        self.querier
            .select_merge_profile(&tenants, r)
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }

    async fn select_series(
        &self,
        request: Request<q::SelectSeriesRequest>,
    ) -> Result<Response<q::SelectSeriesResponse>, Status> {
        let tenants = read_tenants(request.metadata(), self.multitenancy)?;
        let r = request.into_inner();
        self.querier
            .select_series(&tenants, r)
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }

    async fn diff(
        &self,
        request: Request<q::DiffRequest>,
    ) -> Result<Response<q::DiffResponse>, Status> {
        let tenants = read_tenants(request.metadata(), self.multitenancy)?;
        let r = request.into_inner();
        self.querier
            .diff(&tenants, r)
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }

    async fn get_profile_stats(
        &self,
        request: Request<t::GetProfileStatsRequest>,
    ) -> Result<Response<t::GetProfileStatsResponse>, Status> {
        let tenants = read_tenants(request.metadata(), self.multitenancy)?;
        let _r = request.into_inner();
        self.querier
            .profile_stats(&tenants)
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }

    async fn select_heatmap(
        &self,
        _request: Request<q::SelectHeatmapRequest>,
    ) -> Result<Response<q::SelectHeatmapResponse>, Status> {
        Err(Status::new(
            kiln_cluster::status::grpc_code(ErrorCode::NotFound),
            "SelectHeatmap is not supported",
        ))
    }
}

/// `kiln.querier.v1.TaskService`: shares of other nodes' merge queries.
#[derive(Debug, Clone)]
pub struct TaskGrpc {
    /// The querier.
    pub querier: Arc<Querier>,
}

#[tonic::async_trait]
impl TaskService for TaskGrpc {
    async fn merge_tasks(
        &self,
        request: Request<kq::MergeTasksRequest>,
    ) -> Result<Response<kq::MergeTasksResponse>, Status> {
        self.querier
            .merge_tasks(request.into_inner())
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: tonic::Code, message: &str) -> http::Response<()> {
        let (parts, ()) = Status::new(code, message).into_http::<()>().into_parts();
        http::Response::from_parts(parts, ())
    }

    #[test]
    fn only_the_too_large_answer_is_rewritten() {
        let too_large = answer(
            tonic::Code::OutOfRange,
            "Error, decoded message length too large: found 9 bytes, the limit is: 8 bytes",
        );
        let fixed = too_large_is_resource_exhausted(too_large);
        assert_eq!(fixed.headers()["grpc-status"], "8");
        // Every other answer is left as it is.
        for (code, message) in [
            (tonic::Code::OutOfRange, "time range outside the data"),
            (
                tonic::Code::InvalidArgument,
                "Error, decoded message length too large",
            ),
            (tonic::Code::Ok, ""),
        ] {
            let before = answer(code, message);
            let status = before.headers()["grpc-status"].clone();
            let after = too_large_is_resource_exhausted(before);
            assert_eq!(after.headers()["grpc-status"], status, "{code:?} {message}");
        }
    }
}
