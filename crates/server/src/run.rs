//! Starting the modules of the configured roles, serving, and stopping.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use kiln_cluster::membership::heartbeat_loop;
use kiln_cluster::{
    IngesterClients, MemberList, MetastoreClient, MetastoreRing, QuerierClients, RingSource,
};
use kiln_compactor::{Compactor, CompactorMetrics};
use kiln_distributor::{Distributor, DistributorMetrics};
use kiln_ingester::grpc::IngesterGrpc;
use kiln_ingester::{Ingester, IngesterMetrics};
use kiln_metastore::Metastore;
use kiln_metastore::grpc::MetastoreGrpc;
use kiln_model::LimitsSource;
use kiln_proto::kiln::ingester::v1::ingester_service_server::IngesterServiceServer;
use kiln_proto::kiln::metastore::v1::Member;
use kiln_proto::kiln::metastore::v1::metastore_service_server::MetastoreServiceServer;
use kiln_proto::kiln::metastore::v1::raft_service_server::RaftServiceServer;
use kiln_proto::kiln::querier::v1::task_service_server::TaskServiceServer;
use kiln_proto::opentelemetry::proto::collector::profiles::v1development::profiles_service_server::ProfilesServiceServer;
use kiln_proto::push::v1::pusher_service_server::PusherServiceServer;
use kiln_proto::querier::v1::querier_service_server::QuerierServiceServer;
use kiln_querier::{Peers, Querier, QuerierMetrics};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::service::interceptor::InterceptedService;

use crate::Config;
use crate::auth::{Auth, GrpcAuth, Scope};
use crate::grpc::{OtlpGrpc, PushGrpc, QuerierGrpc, TaskGrpc};
use crate::http::{AppState, router};
use crate::modules::{Module, Target, Targets};

/// Largest gRPC message accepted between roles.
const MAX_GRPC_MESSAGE: usize = kiln_cluster::clients::MAX_MESSAGE_BYTES;

/// The listeners of a node, bound before it starts.
#[derive(Debug)]
pub struct Listeners {
    /// HTTP (UI, Connect, legacy APIs).
    pub http: TcpListener,
    /// gRPC (internal services, gRPC clients).
    pub grpc: TcpListener,
}

impl Listeners {
    /// Binds the addresses of `config`.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let http = TcpListener::bind(&config.http_addr)
            .await
            .with_context(|| format!("cannot listen on http_addr {}", config.http_addr))?;
        let grpc = TcpListener::bind(&config.grpc_addr)
            .await
            .with_context(|| format!("cannot listen on grpc_addr {}", config.grpc_addr))?;
        Ok(Listeners { http, grpc })
    }
}

/// The address other nodes (and this node's own clients) dial.
fn advertise_addr(config: &Config, grpc: SocketAddr) -> String {
    if !config.advertise_addr.is_empty() {
        return config.advertise_addr.clone();
    }
    if grpc.ip().is_unspecified() {
        format!("127.0.0.1:{}", grpc.port())
    } else {
        grpc.to_string()
    }
}

/// Runs a node until `shutdown` fires.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let targets = Targets::parse(&config.target).map_err(anyhow::Error::msg)?;
    let modules = targets.modules();
    let has = |m: Module| modules.contains(&m);
    let http_addr = listeners.http.local_addr()?;
    let grpc_addr = listeners.grpc.local_addr()?;
    let advertise = advertise_addr(&config, grpc_addr);
    let instance = if config.instance_id.is_empty() {
        advertise.clone()
    } else {
        config.instance_id.clone()
    };
    let mut registry = Registry::default();
    let background = TaskTracker::new();
    let background_stop = CancellationToken::new();

    let limits =
        crate::limits::RuntimeLimits::new(config.limits.clone(), Some(&config.runtime_config.file))
            .map_err(anyhow::Error::msg)
            .context("invalid runtime_config.file")?;
    background
        .spawn(Arc::clone(&limits).watch(config.runtime_config.period, background_stop.clone()));
    let limits_source = Arc::clone(&limits) as Arc<dyn LimitsSource>;
    let auth =
        Auth::from_config(&config.auth, config.multitenancy.enabled).map_err(anyhow::Error::msg)?;
    let secret = config
        .cluster
        .load_secret()
        .map_err(|e| anyhow::anyhow!(e.0))?;

    let store = if has(Module::Storage) {
        Some(config.storage.build(&config.data_dir)?)
    } else {
        None
    };
    let metastore = if has(Module::Metastore) {
        Some(
            Metastore::start(
                &config.metastore,
                &config.data_dir.join("metastore"),
                &advertise,
                secret.clone(),
            )
            .await
            .context("cannot start the metastore")?,
        )
    } else {
        None
    };
    let metastore_addrs = {
        let configured = config.metastore.addresses();
        if !configured.is_empty() {
            configured
        } else if metastore.is_some() {
            vec![advertise.clone()]
        } else {
            anyhow::bail!(
                "`metastore.address` must be set when this node does not run the metastore"
            );
        }
    };
    let metastore_client =
        MetastoreClient::new(&metastore_addrs, Duration::from_secs(30), &secret)?;
    if let Some(m) = &metastore {
        let metrics = kiln_metastore::MetastoreMetrics::register(&mut registry);
        background.spawn(
            m.clone()
                .export_metrics(metrics, background_stop.clone().cancelled_owned()),
        );
    }
    let ingester = match (has(Module::Ingester), &store) {
        (true, Some(store)) => Some(Ingester::new(
            config.ingester.clone(),
            Arc::clone(store),
            metastore_client.clone(),
            IngesterMetrics::register(&mut registry),
        )),
        _ => None,
    };
    let ring = if has(Module::Ring) {
        Some(MetastoreRing::new(
            metastore_client.clone(),
            config.metastore.member_timeout,
        ))
    } else {
        None
    };
    // Distributors share each tenant's ingestion rate: each admits its
    // part of it.
    let distributor_list = has(Module::Distributor).then(|| {
        MemberList::new(
            metastore_client.clone(),
            Target::Distributor.name(),
            config.metastore.member_timeout,
        )
    });
    let distributor = match (has(Module::Distributor), &ring) {
        (true, Some(ring)) => {
            // In a process with an ingester, the distributor calls it
            // directly.
            let clients = IngesterClients::new(config.distributor.push_timeout, secret.clone());
            let d = Distributor::new(
                config.distributor.clone(),
                Arc::clone(&limits_source),
                Arc::clone(ring) as Arc<dyn RingSource>,
                Arc::new(match &ingester {
                    Some(i) => clients
                        .with_local(advertise.clone(), Arc::new(IngesterGrpc::new(i.clone()))),
                    None => clients,
                }),
                DistributorMetrics::register(&mut registry),
            );
            Some(match &distributor_list {
                Some(list) => d.with_distributors(Arc::clone(list)),
                None => d,
            })
        }
        _ => None,
    };
    let compactor = match (has(Module::Compactor), &store) {
        (true, Some(store)) => Some(Compactor::new(
            config.compactor.clone(),
            Arc::clone(store),
            metastore_client.clone(),
            instance.clone(),
            CompactorMetrics::register(&mut registry),
        )),
        _ => None,
    };
    // Queriers spread large merge queries over each other; a
    // query-frontend spreads every one.
    let querier_list = has(Module::Querier).then(|| {
        MemberList::new(
            metastore_client.clone(),
            Target::Querier.name(),
            config.metastore.member_timeout,
        )
    });
    let querier = match (has(Module::Querier), &store) {
        (true, Some(store)) => {
            let q = Querier::new(
                config.querier.clone(),
                Arc::clone(&limits_source),
                metastore_client.clone(),
                Arc::clone(store),
                QuerierMetrics::register(&mut registry),
            )?;
            let q = match &querier_list {
                Some(list) => q.with_peers(
                    Peers::new(
                        Arc::clone(list),
                        QuerierClients::new(config.querier.query_timeout, secret.clone()),
                        instance.clone(),
                    ),
                    targets.has(Target::Querier),
                ),
                None => q,
            };
            Some(Arc::new(q))
        }
        _ => None,
    };

    tracing::info!(
        http_addr = %http_addr,
        grpc_addr = %grpc_addr,
        advertise_addr = %advertise,
        instance = %instance,
        targets = %targets.names(),
        data_dir = %config.data_dir.display(),
        storage = %config.storage.describe(&config.data_dir),
        metastore = %metastore_addrs.join(","),
        cluster_secret = secret.is_set(),
        "kiln listening"
    );

    // gRPC: internal services and the public APIs for gRPC clients. The
    // public write services take messages up to the largest body limit of
    // any tenant at start; each tenant's own limit applies after decoding.
    let grpc_body_limit = limits.largest_body_bytes();
    let grpc_shutdown = CancellationToken::new();
    let grpc_server = {
        // Every request runs in a span with its request id (see kiln_cluster::trace).
        let mut builder = tonic::transport::Server::builder()
            .layer(kiln_cluster::trace::RequestIdLayer::new("grpc"))
            .layer(tower::util::MapResponseLayer::new(
                crate::grpc::too_large_is_resource_exhausted,
            ));
        let router = builder
            .add_optional_service(metastore.as_ref().map(|m| {
                InterceptedService::new(
                    MetastoreServiceServer::new(MetastoreGrpc::new(m.clone()))
                        .max_decoding_message_size(MAX_GRPC_MESSAGE)
                        .max_encoding_message_size(MAX_GRPC_MESSAGE),
                    secret.require(),
                )
            }))
            .add_optional_service(metastore.as_ref().map(|m| {
                InterceptedService::new(
                    RaftServiceServer::new(m.raft_service())
                        .max_decoding_message_size(MAX_GRPC_MESSAGE)
                        .max_encoding_message_size(MAX_GRPC_MESSAGE),
                    secret.require(),
                )
            }))
            .add_optional_service(ingester.as_ref().map(|i| {
                InterceptedService::new(
                    IngesterServiceServer::new(IngesterGrpc::new(i.clone()))
                        .max_decoding_message_size(MAX_GRPC_MESSAGE)
                        .max_encoding_message_size(MAX_GRPC_MESSAGE),
                    secret.require(),
                )
            }))
            .add_optional_service(distributor.as_ref().map(|d| {
                InterceptedService::new(
                    PusherServiceServer::new(PushGrpc {
                        distributor: d.clone(),
                        multitenancy: config.multitenancy.enabled,
                    })
                    .max_decoding_message_size(grpc_body_limit),
                    GrpcAuth::new(auth.clone(), Scope::Write),
                )
            }))
            .add_optional_service(distributor.as_ref().map(|d| {
                InterceptedService::new(
                    ProfilesServiceServer::new(OtlpGrpc {
                        distributor: d.clone(),
                        multitenancy: config.multitenancy.enabled,
                    })
                    .max_decoding_message_size(grpc_body_limit),
                    GrpcAuth::new(auth.clone(), Scope::Write),
                )
            }))
            .add_optional_service(
                querier
                    .as_ref()
                    .filter(|_| targets.has(Target::Querier))
                    .map(|q| {
                        InterceptedService::new(
                            TaskServiceServer::new(TaskGrpc {
                                querier: Arc::clone(q),
                            })
                            .max_decoding_message_size(MAX_GRPC_MESSAGE)
                            .max_encoding_message_size(MAX_GRPC_MESSAGE),
                            secret.require(),
                        )
                    }),
            )
            .add_optional_service(querier.as_ref().map(|q| {
                InterceptedService::new(
                    QuerierServiceServer::new(QuerierGrpc {
                        querier: Arc::clone(q),
                        multitenancy: config.multitenancy.enabled,
                    })
                    .max_encoding_message_size(MAX_GRPC_MESSAGE),
                    GrpcAuth::new(auth.clone(), Scope::Read),
                )
            }));
        let token = grpc_shutdown.clone();
        let incoming = TcpListenerStream::new(listeners.grpc);
        tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
                .await
        })
    };

    // Membership: every node registers; distributors follow the ring.
    let member = Member {
        id: instance.clone(),
        roles: Target::ALL
            .iter()
            .filter(|t| targets.has(**t))
            .map(|t| t.name().to_owned())
            .collect(),
        addr: advertise.clone(),
        http_addr: http_addr.to_string(),
        ..Default::default()
    };
    background.spawn(heartbeat_loop(
        metastore_client.clone(),
        member,
        config.metastore.member_heartbeat_interval,
        background_stop.clone(),
    ));
    if let Some(ring) = &ring {
        background.spawn(Arc::clone(ring).run(Duration::from_secs(2), background_stop.clone()));
    }
    if let Some(list) = &distributor_list {
        background.spawn(Arc::clone(list).run(Duration::from_secs(2), background_stop.clone()));
    }
    if let Some(list) = &querier_list {
        background.spawn(Arc::clone(list).run(Duration::from_secs(2), background_stop.clone()));
    }

    if let Some(c) = &compactor {
        let c = c.clone();
        background.spawn({
            let stop = background_stop.clone();
            async move { c.run(stop).await }
        });
    }

    let ingester_shutdown = CancellationToken::new();
    let ingester_task = ingester.as_ref().map(|i| {
        let i = i.clone();
        let token = ingester_shutdown.clone();
        tokio::spawn(async move { i.run(token).await })
    });

    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState {
        distributor: distributor.clone(),
        querier: querier.clone(),
        multitenancy: config.multitenancy.enabled,
        body_limit: config.limits.max_body_bytes,
        registry: Arc::new(Mutex::new(registry)),
        ready: Arc::clone(&ready),
        auth: auth.clone(),
    };
    let http_shutdown = CancellationToken::new();
    let http_server = {
        let token = http_shutdown.clone();
        let app = crate::http::ui_api::with_ui(router(state), &config.http.base_path);
        let app = app.layer(kiln_cluster::trace::RequestIdLayer::new("http"));
        let listener = listeners.http;
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
        })
    };

    // Ready once the metastore answers and, for distributors, the ring has
    // an ingester.
    {
        let ready = Arc::clone(&ready);
        let client = metastore_client.clone();
        let ring = ring.clone();
        let stop = background_stop.clone();
        background.spawn(async move {
            loop {
                let metastore_ok = client.members("").await.is_ok();
                let ring_ok = match &ring {
                    Some(r) => r.refresh().await.is_ok_and(|n| n > 0),
                    None => true,
                };
                if metastore_ok && ring_ok {
                    ready.store(true, Ordering::Release);
                    tracing::info!("kiln ready");
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = stop.cancelled() => return,
                }
            }
        });
    }

    shutdown.cancelled().await;
    tracing::info!("shutting down");
    ready.store(false, Ordering::Release);
    // 1. Stop accepting HTTP connections and flush the ingester at once:
    //    pushes already buffered are written and answered; pushes that reach
    //    the ingester after this are refused with a retryable error.
    http_shutdown.cancel();
    ingester_shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(60), http_server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "http server failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "http server task failed"),
        Err(_) => tracing::warn!("http server did not drain within 60s"),
    }
    // 2. Wait until every buffered segment is written and registered.
    if let Some(task) = ingester_task {
        let _ = task.await;
    }
    // 3. Background loops, gRPC, then the metastore last.
    background_stop.cancel();
    background.close();
    background.wait().await;
    grpc_shutdown.cancel();
    match grpc_server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "grpc server failed"),
        Err(e) => tracing::warn!(error = %e, "grpc server task failed"),
    }
    if let Some(m) = &metastore {
        m.shutdown().await;
    }
    tracing::info!("kiln stopped");
    Ok(())
}
