//! tonic adapter of the metastore service.

use kiln_cluster::status::to_status;
use kiln_proto::kiln::metastore::v1::metastore_service_server::MetastoreService;
use kiln_proto::kiln::metastore::v1::{
    AddBlockRequest, AddBlockResponse, QueryBlocksRequest, QueryBlocksResponse,
};
use tonic::{Request, Response, Status};

use crate::{Metastore, MetastoreError};

/// Serves [`Metastore`] over gRPC.
#[derive(Debug, Clone)]
pub struct MetastoreGrpc {
    metastore: Metastore,
}

impl MetastoreGrpc {
    /// Wraps a metastore.
    pub fn new(metastore: Metastore) -> Self {
        MetastoreGrpc { metastore }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[tonic::async_trait]
impl MetastoreService for MetastoreGrpc {
    async fn add_block(
        &self,
        request: Request<AddBlockRequest>,
    ) -> Result<Response<AddBlockResponse>, Status> {
        let block = request
            .into_inner()
            .block
            .ok_or_else(|| to_status(&MetastoreError::InvalidRequest("missing block".into())))?;
        self.metastore
            .add_block(block, now_ms())
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(AddBlockResponse {}))
    }

    async fn query_blocks(
        &self,
        request: Request<QueryBlocksRequest>,
    ) -> Result<Response<QueryBlocksResponse>, Status> {
        let blocks = self.metastore.query_blocks(request.get_ref());
        Ok(Response::new(QueryBlocksResponse { blocks }))
    }
}
