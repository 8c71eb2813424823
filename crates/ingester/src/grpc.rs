//! tonic adapter of the ingester.

use kiln_cluster::status::to_status;
use kiln_proto::kiln::ingester::v1::ingester_service_server::IngesterService;
use kiln_proto::kiln::ingester::v1::{PushRequest, PushResponse};
use tonic::{Request, Response, Status};

use crate::Ingester;

/// Serves an [`Ingester`] over gRPC.
#[derive(Debug, Clone)]
pub struct IngesterGrpc {
    ingester: Ingester,
}

impl IngesterGrpc {
    /// Wraps an ingester.
    pub fn new(ingester: Ingester) -> Self {
        IngesterGrpc { ingester }
    }
}

#[tonic::async_trait]
impl IngesterService for IngesterGrpc {
    async fn push(&self, request: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        self.ingester
            .push(request.into_inner())
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }
}
