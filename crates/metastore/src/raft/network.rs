//! Raft RPCs between metastore replicas over gRPC (`kiln.metastore.v1.RaftService`).
//! Requests and responses are openraft's own types as JSON.

use std::time::Duration;

use kiln_cluster::{ClusterSecret, InternalChannel};
use kiln_proto::kiln::metastore::v1::RaftMessage;
use kiln_proto::kiln::metastore::v1::raft_service_client::RaftServiceClient;
use kiln_proto::kiln::metastore::v1::raft_service_server::RaftService;
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Endpoint;
use tonic::{Request, Status};

use super::{NodeId, Raft, TypeConfig};

/// Creates a client per target replica; every call carries the cluster
/// secret.
#[derive(Debug, Clone, Default)]
pub struct Network {
    secret: ClusterSecret,
}

impl Network {
    /// Clients whose calls carry `secret`.
    pub fn new(secret: ClusterSecret) -> Self {
        Network { secret }
    }
}

/// A connection to one replica.
#[derive(Debug)]
pub struct NetworkClient {
    target: NodeId,
    node: BasicNode,
    client: Option<RaftServiceClient<InternalChannel>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = NetworkClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        let url = if node.addr.starts_with("http") {
            node.addr.clone()
        } else {
            format!("http://{}", node.addr)
        };
        let client = Endpoint::from_shared(url).ok().map(|e| {
            RaftServiceClient::new(
                self.secret
                    .connect_lazy(e.connect_timeout(Duration::from_secs(1)).tcp_nodelay(true)),
            )
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20)
        });
        NetworkClient {
            target,
            node: node.clone(),
            client,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Transport(String);

impl NetworkClient {
    async fn call<Req, Resp, E>(
        &mut self,
        method: &'static str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(Unreachable::new(&Transport(
                format!("bad address {}", self.node.addr),
            ))));
        };
        let payload =
            serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = Request::new(RaftMessage { payload });
        request.set_timeout(option.hard_ttl());
        let reply = match method {
            "append_entries" => client.append_entries(request).await,
            "vote" => client.vote(request).await,
            _ => client.install_snapshot(request).await,
        };
        let reply = match reply {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let e = Transport(format!(
                    "{method} to {}: {}",
                    self.node.addr,
                    status.message()
                ));
                return Err(match status.code() {
                    tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown => RPCError::Unreachable(Unreachable::new(&e)),
                    _ => RPCError::Network(NetworkError::new(&e)),
                });
            }
        };
        let result: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&reply.payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for NetworkClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("append_entries", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("install_snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("vote", &rpc, &option).await
    }
}

/// Serves raft RPCs to a local raft node.
#[derive(Clone)]
pub struct RaftGrpc {
    raft: Raft,
}

impl std::fmt::Debug for RaftGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftGrpc")
    }
}

impl RaftGrpc {
    /// Wraps a raft node.
    pub fn new(raft: Raft) -> Self {
        RaftGrpc { raft }
    }
}

fn decode<T: DeserializeOwned>(msg: &RaftMessage) -> Result<T, Status> {
    serde_json::from_slice(&msg.payload)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<tonic::Response<RaftMessage>, Status> {
    serde_json::to_vec(value)
        .map(|payload| tonic::Response::new(RaftMessage { payload }))
        .map_err(|e| Status::internal(format!("cannot encode raft reply: {e}")))
}

#[tonic::async_trait]
impl RaftService for RaftGrpc {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, Status> {
        let req: AppendEntriesRequest<TypeConfig> = decode(request.get_ref())?;
        encode(&self.raft.append_entries(req).await)
    }

    async fn vote(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, Status> {
        let req: VoteRequest<NodeId> = decode(request.get_ref())?;
        encode(&self.raft.vote(req).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, Status> {
        let req: InstallSnapshotRequest<TypeConfig> = decode(request.get_ref())?;
        encode(&self.raft.install_snapshot(req).await)
    }
}
