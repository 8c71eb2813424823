//! gRPC clients of the internal services. Channels connect lazily and are
//! reused; message size limits are raised to fit large profiles.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kiln_model::{ErrorCode, HasErrorCode};
use kiln_proto::kiln::ingester::v1::ingester_service_client::IngesterServiceClient;
use kiln_proto::kiln::ingester::v1::{PushRequest, PushResponse};
use kiln_proto::kiln::metastore::v1::metastore_service_client::MetastoreServiceClient;
use kiln_proto::kiln::metastore::v1::{
    AddBlockRequest, AddBlockResponse, BlockMeta, QueryBlocksRequest, QueryBlocksResponse,
};
use tonic::transport::{Channel, Endpoint};

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
            ClientError::Call { status, .. } => error_code(status.code()),
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

/// Client of the metastore.
#[derive(Debug, Clone)]
pub struct MetastoreClient {
    addr: String,
    client: MetastoreServiceClient<Channel>,
}

impl MetastoreClient {
    /// A client of the metastore at `addr` (`host:port`); connects lazily.
    pub fn new(addr: &str, timeout: Duration) -> Result<Self, ClientError> {
        let channel = endpoint(addr, timeout)?.connect_lazy();
        let client = MetastoreServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(MetastoreClient {
            addr: addr.to_owned(),
            client,
        })
    }

    /// Registers a block; returns once the registration is durable.
    pub async fn add_block(&self, block: BlockMeta) -> Result<AddBlockResponse, ClientError> {
        let mut c = self.client.clone();
        c.add_block(AddBlockRequest { block: Some(block) })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ClientError::Call {
                method: "AddBlock",
                addr: self.addr.clone(),
                status,
            })
    }

    /// The blocks overlapping a time range.
    pub async fn query_blocks(
        &self,
        request: QueryBlocksRequest,
    ) -> Result<QueryBlocksResponse, ClientError> {
        let mut c = self.client.clone();
        c.query_blocks(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ClientError::Call {
                method: "QueryBlocks",
                addr: self.addr.clone(),
                status,
            })
    }
}

/// Clients of the ingesters, one channel per address.
#[derive(Debug)]
pub struct IngesterClients {
    timeout: Duration,
    clients: Mutex<HashMap<String, IngesterServiceClient<Channel>>>,
}

impl IngesterClients {
    /// A pool whose calls time out after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        IngesterClients {
            timeout,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, addr: &str) -> Result<IngesterServiceClient<Channel>, ClientError> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let channel = endpoint(addr, self.timeout)?.connect_lazy();
        let c = IngesterServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        clients.insert(addr.to_owned(), c.clone());
        Ok(c)
    }

    /// Sends profiles to the ingester at `addr`; returns once they are durable.
    pub async fn push(
        &self,
        addr: &str,
        request: PushRequest,
    ) -> Result<PushResponse, ClientError> {
        let mut c = self.client(addr)?;
        c.push(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ClientError::Call {
                method: "Push",
                addr: addr.to_owned(),
                status,
            })
    }
}
