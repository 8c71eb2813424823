//! The query API.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt, TryStreamExt};
use kiln_cluster::MetastoreClient;
use kiln_model::labels::is_legacy_label_name;
use kiln_model::timeseries::Buckets;
use kiln_model::{
    FlameGraph, FlameGraphDiff, LimitsSource, ProfileType, Selector, StackTree, TenantId,
    TenantLimits,
};
use kiln_proto::google::v1::Profile;
use kiln_proto::kiln::metastore::v1::{BlockMeta, QueryBlocksRequest};
use kiln_proto::kiln::querier::v1 as kq;
use kiln_proto::querier::v1 as q;
use kiln_proto::types::v1 as t;
use kiln_storage::{BlockReader, PartitionSymbols, SampleSelection, SeriesRow};
use object_store::ObjectStore;

use crate::cache::Cache;
use crate::distribute::{
    MAX_REMOTE_TREE_NODES, Peers, Task, mode_from_proto, mode_to_proto, split,
};
use crate::plan::{full_labels, matches_all, pinned_services, plan_ranges, series_label};
use crate::pprof_out::tree_to_pprof;
use crate::scan::Scanner;
use crate::{QuerierConfig, QuerierError, QuerierMetrics, Result};
use kiln_storage::resolve::{FrameMode, ResolveScratch, add_stacks, add_stacks_with};

const NS_PER_MS: i64 = 1_000_000;

/// A spawned task that is aborted when dropped: a query that fails or
/// times out stops the block scans it started.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The summed samples of one block: per partition with any, its symbols and
/// (stack id, value) by ascending stack id.
type BlockStacks = Vec<(Arc<PartitionSymbols>, Vec<(u32, i64)>)>;

/// A merge query: which profiles to merge into one tree.
#[derive(Debug, Clone)]
pub struct TreeQuery {
    /// The profile type to read.
    pub profile_type: ProfileType,
    /// Series selector (all matchers must hold).
    pub selector: Selector,
    /// Inclusive start, ms since the epoch.
    pub start_ms: i64,
    /// Inclusive end, ms since the epoch.
    pub end_ms: i64,
    /// Keep only stacks starting with these frames (root first).
    pub call_site: Vec<String>,
    /// Keep only samples of these span ids.
    pub span_ids: Option<Vec<u64>>,
    /// Keep only these profiles (UUIDs).
    pub profile_ids: Option<Vec<[u8; 16]>>,
}

/// The querier role.
pub struct Querier {
    config: QuerierConfig,
    limits: Arc<dyn LimitsSource>,
    metastore: MetastoreClient,
    store: Arc<dyn ObjectStore>,
    scanner: Scanner,
    metrics: QuerierMetrics,
    readers: Cache<String, BlockReader>,
    series: Cache<String, Vec<SeriesRow>>,
    symbols: Cache<(String, u32), PartitionSymbols>,
    peers: Option<Peers>,
    local_share: bool,
    turn: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Querier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Querier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn ms_range_to_ns(start_ms: i64, end_ms: i64) -> (i64, i64) {
    (
        start_ms.saturating_mul(NS_PER_MS),
        end_ms
            .saturating_mul(NS_PER_MS)
            .saturating_add(NS_PER_MS - 1),
    )
}

fn parse_selectors(matchers: &[String]) -> Result<Vec<Selector>> {
    matchers
        .iter()
        .map(|m| Selector::parse(m).map_err(QuerierError::from))
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Querier {
    /// A querier reading blocks listed by `metastore` from `store`.
    pub fn new(
        config: QuerierConfig,
        limits: Arc<dyn LimitsSource>,
        metastore: MetastoreClient,
        store: Arc<dyn ObjectStore>,
        metrics: QuerierMetrics,
    ) -> Result<Self> {
        let cache = config.cache_size.as_u64() as usize;
        Ok(Querier {
            scanner: Scanner::new(Arc::clone(&store))?,
            readers: Cache::new(cache / 8),
            series: Cache::new(cache / 4),
            symbols: Cache::new(cache / 2),
            config,
            limits,
            metastore,
            store,
            metrics,
            peers: None,
            local_share: true,
            turn: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Spreads merge queries over `peers`. With `local_share` this node
    /// reads a share itself (a querier); without it (a query-frontend) it
    /// reads only when no other querier is alive.
    pub fn with_peers(mut self, peers: Peers, local_share: bool) -> Self {
        self.peers = Some(peers);
        self.local_share = local_share;
        self
    }

    fn observe(&self, method: &str, started: Instant) {
        self.metrics
            .query_duration
            .get_or_create(&crate::metrics::MethodLabels {
                method: method.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Checks a time range against the rules.
    /// The query limits of `tenants` (the strictest when several).
    fn query_limits(&self, tenants: &[TenantId]) -> TenantLimits {
        let all: Vec<Arc<TenantLimits>> = tenants.iter().map(|t| self.limits.limits(t)).collect();
        TenantLimits::strictest(all.iter().map(|l| &**l))
    }

    fn reject(&self, tenants: &[TenantId], reason: &str) {
        for t in tenants {
            self.metrics
                .rejected_queries
                .get_or_create(&crate::metrics::RejectLabels {
                    tenant: t.to_string(),
                    reason: reason.to_owned(),
                })
                .inc();
        }
    }

    /// Checks a time range against the rules and the tenants' limits.
    fn check_range(&self, tenants: &[TenantId], start_ms: i64, end_ms: i64) -> Result<()> {
        if start_ms == 0 || end_ms == 0 {
            self.reject(tenants, "missing_time_range");
            return Err(QuerierError::InvalidRequest(
                "missing time range: start and end are required".into(),
            ));
        }
        if start_ms > end_ms {
            self.reject(tenants, "invalid_time_range");
            return Err(QuerierError::InvalidRequest(format!(
                "invalid time range: start {start_ms} is after end {end_ms}"
            )));
        }
        let max = self.query_limits(tenants).max_query_length;
        if !max.is_zero() && (end_ms - start_ms) as u128 > max.as_millis() {
            self.reject(tenants, "query_limit");
            return Err(QuerierError::InvalidRequest(format!(
                "the query time range exceeds the limit (limits.max_query_length {})",
                humantime_like(max)
            )));
        }
        Ok(())
    }

    /// The node budget of a request by `tenants`: their default when absent
    /// or 0; more than their maximum, or negative, is an error.
    pub fn max_nodes_for(&self, tenants: &[TenantId], requested: Option<i64>) -> Result<usize> {
        let limits = self.query_limits(tenants);
        match requested {
            None | Some(0) => Ok(limits.max_nodes_default as usize),
            Some(n) if n < 0 => {
                self.reject(tenants, "flamegraph_limit");
                Err(QuerierError::InvalidRequest(format!(
                    "max_nodes must not be negative, got {n}"
                )))
            }
            Some(n) if n > limits.max_nodes_max => {
                self.reject(tenants, "flamegraph_limit");
                Err(QuerierError::InvalidRequest(format!(
                    "max_nodes {n} exceeds the limit {} (limits.max_nodes_max)",
                    limits.max_nodes_max
                )))
            }
            Some(n) => Ok(n as usize),
        }
    }

    /// The node budget of a request under the default tenant's limits.
    pub fn max_nodes(&self, requested: Option<i64>) -> Result<usize> {
        self.max_nodes_for(&[TenantId::anonymous()], requested)
    }

    async fn blocks(
        &self,
        tenants: &[TenantId],
        start_ns: i64,
        end_ns: i64,
        services: Option<Vec<String>>,
    ) -> Result<Vec<BlockMeta>> {
        let services = match services {
            Some(s) if s.is_empty() => return Ok(Vec::new()),
            Some(s) => s,
            None => Vec::new(),
        };
        let request = QueryBlocksRequest {
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            start: start_ns,
            end: end_ns,
            service_names: services,
        };
        Ok(self
            .metastore
            .query_blocks(request)
            .await
            .map_err(|e| QuerierError::Metastore(Box::new(e)))?
            .blocks)
    }

    async fn reader(&self, block: &BlockMeta) -> Result<Arc<BlockReader>> {
        if let Some(r) = self.readers.get(&block.id) {
            return Ok(r);
        }
        let r = BlockReader::open(
            Arc::clone(&self.store),
            &block.object_key,
            Some(block.size).filter(|s| *s > 0),
        )
        .await
        .map_err(|source| QuerierError::Storage {
            block: block.id.clone(),
            source: Box::new(source),
        })?;
        let r = Arc::new(r);
        self.readers.insert(block.id.clone(), Arc::clone(&r), 4096);
        self.metrics.blocks_read.inc();
        Ok(r)
    }

    async fn block_series(
        &self,
        block: &BlockMeta,
        reader: &BlockReader,
    ) -> Result<Arc<Vec<SeriesRow>>> {
        if let Some(s) = self.series.get(&block.id) {
            self.metrics.cache_hits.inc();
            return Ok(s);
        }
        self.metrics.cache_misses.inc();
        let rows = reader
            .series()
            .await
            .map_err(|source| QuerierError::Storage {
                block: block.id.clone(),
                source: Box::new(source),
            })?;
        let bytes: usize = rows
            .iter()
            .map(|r| {
                64 + r.profile_type.len()
                    + r.labels
                        .iter()
                        .map(|(n, v)| n.len() + v.len() + 48)
                        .sum::<usize>()
            })
            .sum();
        let rows = Arc::new(rows);
        self.series
            .insert(block.id.clone(), Arc::clone(&rows), bytes);
        Ok(rows)
    }

    async fn partition_symbols(
        &self,
        block: &BlockMeta,
        reader: &BlockReader,
        partition: u32,
    ) -> Result<Arc<PartitionSymbols>> {
        let key = (block.id.clone(), partition);
        if let Some(s) = self.symbols.get(&key) {
            self.metrics.cache_hits.inc();
            return Ok(s);
        }
        self.metrics.cache_misses.inc();
        let sym = reader
            .symbols(partition)
            .await
            .map_err(|source| QuerierError::Storage {
                block: block.id.clone(),
                source: Box::new(source),
            })?;
        let bytes = sym.approx_bytes();
        let sym = Arc::new(sym);
        self.symbols.insert(key, Arc::clone(&sym), bytes);
        Ok(sym)
    }

    /// Sums the matching samples of one block per (partition, stack) and
    /// loads the symbols of the partitions that have any. The scan runs as
    /// its own task (so that several blocks decode on several cores) while
    /// the symbols load.
    async fn block_stacks(
        &self,
        block: &BlockMeta,
        query: &TreeQuery,
        (start_ns, end_ns): (i64, i64),
    ) -> Result<BlockStacks> {
        let type_id = query.profile_type.id();
        if !block
            .datasets
            .iter()
            .any(|d| d.profile_types.contains(&type_id))
        {
            return Ok(Vec::new());
        }
        let reader = self.reader(block).await?;
        let series = self.block_series(block, &reader).await?;
        let selectors = std::slice::from_ref(&query.selector);
        let mut ids = Vec::new();
        let mut partitions = BTreeSet::new();
        for r in series
            .iter()
            .filter(|r| r.profile_type == type_id && matches_all(r, selectors))
        {
            ids.push(r.series_id);
            partitions.insert(r.partition);
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let profiles = match &query.profile_ids {
            Some(wanted) => Some(self.scanner.profile_rows(&reader, wanted).await?),
            None => None,
        };
        let selection = SampleSelection {
            series: ids,
            start_ns,
            end_ns,
            spans: query.span_ids.clone(),
            profiles,
        };
        let mut scan = {
            let reader = Arc::clone(&reader);
            AbortOnDrop(tokio::spawn(async move {
                reader.stack_values(&selection).await
            }))
        };
        let symbols = futures::future::try_join_all(
            partitions
                .iter()
                .map(|p| self.partition_symbols(block, &reader, *p)),
        );
        let (values, symbols) = futures::try_join!(
            async {
                (&mut scan.0)
                    .await
                    .map_err(|e| QuerierError::Internal(e.to_string()))?
                    .map_err(|source| QuerierError::Storage {
                        block: block.id.clone(),
                        source: Box::new(source),
                    })
            },
            symbols
        )?;
        let symbols: BTreeMap<u32, Arc<PartitionSymbols>> =
            partitions.into_iter().zip(symbols).collect();
        let mut out = Vec::with_capacity(values.len());
        for part in values {
            let sym = match symbols.get(&part.partition) {
                Some(sym) => Arc::clone(sym),
                None => {
                    self.partition_symbols(block, &reader, part.partition)
                        .await?
                }
            };
            out.push((sym, part.stacks));
        }
        Ok(out)
    }

    /// Merges every profile matching `query` into one tree of function names.
    pub async fn merge_tree(&self, tenants: &[TenantId], query: &TreeQuery) -> Result<StackTree> {
        self.merge_tree_with(tenants, query, FrameMode::Function)
            .await
    }

    async fn merge_tree_with(
        &self,
        tenants: &[TenantId],
        query: &TreeQuery,
        mode: FrameMode,
    ) -> Result<StackTree> {
        self.check_range(tenants, query.start_ms, query.end_ms)?;
        let (start_ns, end_ns) = ms_range_to_ns(query.start_ms, query.end_ms);
        let blocks = self
            .blocks(
                tenants,
                start_ns,
                end_ns,
                pinned_services(std::slice::from_ref(&query.selector)),
            )
            .await?;
        let timeout = self.config.query_timeout;
        let tasks = plan_tasks(&blocks, start_ns, end_ns + 1, i64::MAX);
        let mut tree = tokio::time::timeout(timeout, self.run_spread(query, mode, tasks))
            .await
            .map_err(|_| QuerierError::Timeout(timeout))??;
        if !query.call_site.is_empty() {
            tree = select_call_site(&tree, &query.call_site);
        }
        Ok(tree)
    }

    /// Merges the pieces of a query, spread over the live queriers when
    /// there are enough pieces.
    async fn run_spread(
        &self,
        query: &TreeQuery,
        mode: FrameMode,
        tasks: Vec<Task>,
    ) -> Result<StackTree> {
        let mut remotes = self.peers.as_ref().map(Peers::remotes).unwrap_or_default();
        if !remotes.is_empty() {
            // Start at a different querier each time, so that queries of
            // fewer pieces than queriers still spread.
            let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let n = remotes.len();
            remotes.rotate_left(turn % n);
        }
        let spread = !remotes.is_empty()
            && (!self.local_share || tasks.len() >= self.config.spread_min_pieces.max(2));
        if !spread {
            return self.run_tasks(query, mode, tasks).await;
        }
        let local = usize::from(self.local_share);
        let shares = split(tasks, remotes.len() + local);
        let futures = shares.into_iter().enumerate().map(|(i, share)| {
            let remote = i.checked_sub(local).map(|r| &remotes[r]);
            async move {
                if share.is_empty() {
                    return Ok(StackTree::new());
                }
                let Some(member) = remote else {
                    return self.run_tasks(query, mode, share).await;
                };
                match self.run_remote(member, query, mode, &share).await {
                    Ok(tree) => {
                        self.metrics.remote_shares.inc();
                        Ok(tree)
                    }
                    Err(e) => {
                        self.metrics.remote_share_failures.inc();
                        tracing::warn!(querier = %member.id, error = %e, pieces = share.len(), "a querier failed its share of a query; reading it here");
                        self.run_tasks(query, mode, share).await
                    }
                }
            }
        });
        let trees = futures::future::try_join_all(futures).await?;
        Ok(merge_trees(trees))
    }

    /// Sends a share of a query to another querier.
    async fn run_remote(
        &self,
        member: &kiln_cluster::Member,
        query: &TreeQuery,
        mode: FrameMode,
        share: &[Task],
    ) -> Result<StackTree> {
        let peers = self
            .peers
            .as_ref()
            .ok_or_else(|| QuerierError::Internal("no peers".into()))?;
        let request = kq::MergeTasksRequest {
            profile_type: query.profile_type.id(),
            selector: query.selector.to_string(),
            tasks: share
                .iter()
                .map(|(b, (s, e))| kq::Task {
                    block: Some(b.clone()),
                    start_ns: *s,
                    end_ns: *e,
                })
                .collect(),
            mode: mode_to_proto(mode) as i32,
            has_span_ids: query.span_ids.is_some(),
            span_ids: query.span_ids.clone().unwrap_or_default(),
            has_profile_ids: query.profile_ids.is_some(),
            profile_ids: query
                .profile_ids
                .iter()
                .flatten()
                .map(|id| id.to_vec())
                .collect(),
        };
        let resp = peers
            .clients()
            .merge_tasks(&member.addr, request)
            .await
            .map_err(|e| QuerierError::Internal(e.to_string()))?;
        let tree = StackTree::decode_tree_bytes(&resp.tree, MAX_REMOTE_TREE_NODES)
            .map_err(|e| QuerierError::Internal(format!("tree from {}: {e}", member.id)))?;
        if tree.total() != resp.total {
            return Err(QuerierError::Internal(format!(
                "tree from {} sums to {}, it said {}",
                member.id,
                tree.total(),
                resp.total
            )));
        }
        Ok(tree)
    }

    /// Reads and merges pieces on this node: blocks are scanned
    /// `block_concurrency` at a time while their stacks are resolved, one
    /// block after the other on a blocking thread, straight into the one
    /// result tree (no tree per block to merge afterwards).
    async fn run_tasks(
        &self,
        query: &TreeQuery,
        mode: FrameMode,
        tasks: Vec<Task>,
    ) -> Result<StackTree> {
        let concurrency = self.config.block_concurrency;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<BlockStacks>(concurrency);
        let scan = async move {
            let mut blocks = stream::iter(tasks)
                .map(|(b, range)| async move { self.block_stacks(&b, query, range).await })
                .buffer_unordered(concurrency);
            while let Some(stacks) = blocks.try_next().await? {
                if tx.send(stacks).await.is_err() {
                    break;
                }
            }
            Ok::<_, QuerierError>(())
        };
        let resolve = async move {
            let mut state = (StackTree::new(), ResolveScratch::default());
            while let Some(stacks) = rx.recv().await {
                if stacks.is_empty() {
                    continue;
                }
                state = tokio::task::spawn_blocking(move || {
                    let (mut tree, mut scratch) = state;
                    for (sym, values) in &stacks {
                        add_stacks_with(&mut tree, sym, values, mode, &mut scratch);
                    }
                    (tree, scratch)
                })
                .await
                .map_err(|e| QuerierError::Internal(e.to_string()))?;
            }
            Ok::<_, QuerierError>(state.0)
        };
        let ((), tree) = futures::try_join!(scan, resolve)?;
        Ok(tree)
    }

    /// `kiln.querier.v1.TaskService/MergeTasks`: merges a share of another
    /// node's query. The caller has already checked the tenant: every piece
    /// names its block, and the block its tenant.
    pub async fn merge_tasks(&self, req: kq::MergeTasksRequest) -> Result<kq::MergeTasksResponse> {
        let started = Instant::now();
        let profile_type = ProfileType::parse(&req.profile_type)?;
        let selector = Selector::parse(&req.selector)?;
        let mut profile_ids = Vec::with_capacity(req.profile_ids.len());
        for id in &req.profile_ids {
            let id: [u8; 16] = id.as_slice().try_into().map_err(|_| {
                QuerierError::InvalidRequest(format!("profile id of {} bytes", id.len()))
            })?;
            profile_ids.push(id);
        }
        let query = TreeQuery {
            profile_type,
            selector,
            start_ms: 0,
            end_ms: 0,
            call_site: Vec::new(),
            span_ids: req.has_span_ids.then_some(req.span_ids),
            profile_ids: req.has_profile_ids.then_some(profile_ids),
        };
        let mut tasks = Vec::with_capacity(req.tasks.len());
        for t in req.tasks {
            let block = t
                .block
                .ok_or_else(|| QuerierError::InvalidRequest("a task without its block".into()))?;
            tasks.push((block, (t.start_ns, t.end_ns)));
        }
        let timeout = self.config.query_timeout;
        let tree = tokio::time::timeout(
            timeout,
            self.run_tasks(&query, mode_from_proto(req.mode), tasks),
        )
        .await
        .map_err(|_| QuerierError::Timeout(timeout))??;
        self.observe("MergeTasks", started);
        Ok(kq::MergeTasksResponse {
            total: tree.total(),
            tree: tree.encode_tree_bytes(0),
        })
    }

    fn tree_query(
        &self,
        profile_type_id: &str,
        label_selector: &str,
        start: i64,
        end: i64,
        stack_trace_selector: Option<&t::StackTraceSelector>,
    ) -> Result<TreeQuery> {
        let profile_type = ProfileType::parse(profile_type_id)?;
        let selector = Selector::parse(label_selector)?;
        Ok(TreeQuery {
            profile_type,
            selector,
            start_ms: start,
            end_ms: end,
            call_site: stack_trace_selector
                .map(|s| s.call_site.iter().map(|l| l.name.clone()).collect())
                .unwrap_or_default(),
            span_ids: None,
            profile_ids: None,
        })
    }

    /// `SelectMergeStacktraces`.
    pub async fn select_merge_stacktraces(
        &self,
        tenants: &[TenantId],
        req: q::SelectMergeStacktracesRequest,
    ) -> Result<q::SelectMergeStacktracesResponse> {
        let started = Instant::now();
        let max_nodes = self.max_nodes_for(tenants, req.max_nodes)?;
        let mut query = self.tree_query(
            &req.profile_type_id,
            &req.label_selector,
            req.start,
            req.end,
            req.stack_trace_selector.as_ref(),
        )?;
        if !req.profile_id_selector.is_empty() {
            let mut ids = Vec::new();
            for id in &req.profile_id_selector {
                let u = uuid::Uuid::parse_str(id).map_err(|e| {
                    QuerierError::InvalidRequest(format!("invalid profile id {id:?}: {e}"))
                })?;
                ids.push(u.into_bytes());
            }
            query.profile_ids = Some(ids);
        }
        if !req.span_selector.is_empty() {
            query.span_ids = Some(parse_spans(&req.span_selector)?);
        }
        let format =
            q::ProfileFormat::try_from(req.format).unwrap_or(q::ProfileFormat::Unspecified);
        let mut resp = q::SelectMergeStacktracesResponse::default();
        match format {
            q::ProfileFormat::Tree => {
                let tree = self.merge_tree(tenants, &query).await?;
                resp.tree = tree.encode_tree_bytes(max_nodes);
            }
            q::ProfileFormat::Pprof => {
                let tree = self
                    .merge_tree_with(tenants, &query, FrameMode::FunctionLine)
                    .await?;
                let (s, e) = ms_range_to_ns(query.start_ms, query.end_ms);
                resp.pprof = Some(q::PprofProfile {
                    profile: Some(tree_to_pprof(
                        &tree,
                        &query.profile_type,
                        e - NS_PER_MS + 1,
                        e - s,
                    )),
                });
            }
            q::ProfileFormat::Dot => {
                return Err(QuerierError::InvalidRequest(
                    "the DOT format is not supported".into(),
                ));
            }
            q::ProfileFormat::Unspecified | q::ProfileFormat::Flamegraph => {
                let tree = self.merge_tree(tenants, &query).await?;
                resp.flamegraph = Some(FlameGraph::from_tree(&tree, max_nodes).into());
            }
        }
        self.observe("SelectMergeStacktraces", started);
        Ok(resp)
    }

    /// `SelectMergeSpanProfile`.
    pub async fn select_merge_span_profile(
        &self,
        tenants: &[TenantId],
        req: q::SelectMergeSpanProfileRequest,
    ) -> Result<q::SelectMergeSpanProfileResponse> {
        let started = Instant::now();
        let max_nodes = self.max_nodes_for(tenants, req.max_nodes)?;
        let mut query = self.tree_query(
            &req.profile_type_id,
            &req.label_selector,
            req.start,
            req.end,
            None,
        )?;
        query.span_ids = Some(parse_spans(&req.span_selector)?);
        let tree = self.merge_tree(tenants, &query).await?;
        let mut resp = q::SelectMergeSpanProfileResponse::default();
        if req.format == q::ProfileFormat::Tree as i32 {
            resp.tree = tree.encode_tree_bytes(max_nodes);
        } else {
            resp.flamegraph = Some(FlameGraph::from_tree(&tree, max_nodes).into());
        }
        self.observe("SelectMergeSpanProfile", started);
        Ok(resp)
    }

    /// `SelectMergeProfile`: the merged profile as pprof.
    pub async fn select_merge_profile(
        &self,
        tenants: &[TenantId],
        req: q::SelectMergeProfileRequest,
    ) -> Result<Profile> {
        let started = Instant::now();
        let mut query = self.tree_query(
            &req.profile_type_id,
            &req.label_selector,
            req.start,
            req.end,
            req.stack_trace_selector.as_ref(),
        )?;
        if !req.profile_id_selector.is_empty() {
            let mut ids = Vec::new();
            for id in &req.profile_id_selector {
                let u = uuid::Uuid::parse_str(id).map_err(|e| {
                    QuerierError::InvalidRequest(format!("invalid profile id {id:?}: {e}"))
                })?;
                ids.push(u.into_bytes());
            }
            query.profile_ids = Some(ids);
        }
        let tree = self
            .merge_tree_with(tenants, &query, FrameMode::FunctionLine)
            .await?;
        let (s, e) = ms_range_to_ns(query.start_ms, query.end_ms);
        let profile = if tree.is_empty() {
            Profile::default()
        } else {
            tree_to_pprof(&tree, &query.profile_type, e - NS_PER_MS + 1, e - s)
        };
        self.observe("SelectMergeProfile", started);
        Ok(profile)
    }

    /// `Diff`: left (baseline) against right (comparison).
    pub async fn diff(&self, tenants: &[TenantId], req: q::DiffRequest) -> Result<q::DiffResponse> {
        let started = Instant::now();
        let (Some(left), Some(right)) = (req.left, req.right) else {
            return Err(QuerierError::InvalidRequest(
                "diff needs both left and right".into(),
            ));
        };
        let max_nodes = self
            .max_nodes_for(tenants, left.max_nodes)?
            .max(self.max_nodes_for(tenants, right.max_nodes)?);
        let lq = self.tree_query(
            &left.profile_type_id,
            &left.label_selector,
            left.start,
            left.end,
            left.stack_trace_selector.as_ref(),
        )?;
        let rq = self.tree_query(
            &right.profile_type_id,
            &right.label_selector,
            right.start,
            right.end,
            right.stack_trace_selector.as_ref(),
        )?;
        let (l, r) =
            futures::try_join!(self.merge_tree(tenants, &lq), self.merge_tree(tenants, &rq))?;
        let flamegraph = FlameGraphDiff::from_trees(&l, &r, max_nodes);
        self.observe("Diff", started);
        Ok(q::DiffResponse {
            flamegraph: Some(flamegraph.into()),
        })
    }

    /// `SelectSeries`: totals per step, grouped by labels.
    pub async fn select_series(
        &self,
        tenants: &[TenantId],
        req: q::SelectSeriesRequest,
    ) -> Result<q::SelectSeriesResponse> {
        let started = Instant::now();
        self.check_range(tenants, req.start, req.end)?;
        if req.step.is_nan() || req.step < 0.001 {
            return Err(QuerierError::InvalidRequest(format!(
                "step must be at least 0.001 seconds, got {}",
                req.step
            )));
        }
        let profile_type = ProfileType::parse(&req.profile_type_id)?;
        let selector = Selector::parse(&req.label_selector)?;
        let step_ms = ((req.step * 1000.0).round() as i64).max(1);
        let buckets = Buckets::new(req.start, req.end, step_ms);
        let (start_ns, end_ns) = ms_range_to_ns(buckets.read_start_ms(), req.end);
        let average = req.aggregation == Some(t::TimeSeriesAggregationType::Average as i32);
        let exemplars = req.exemplar_type == t::ExemplarType::Individual as i32;
        let call_site: Vec<String> = req
            .stack_trace_selector
            .as_ref()
            .map(|s| s.call_site.iter().map(|l| l.name.clone()).collect())
            .unwrap_or_default();
        let type_id = profile_type.id();
        let blocks = self
            .blocks(
                tenants,
                start_ns,
                end_ns,
                pinned_services(std::slice::from_ref(&selector)),
            )
            .await?;

        // group key -> point ts -> (sum, count, best exemplar)
        type Points = BTreeMap<i64, (f64, u64, Option<(i64, i64, [u8; 16])>)>;
        let mut groups: BTreeMap<Vec<(String, String)>, Points> = BTreeMap::new();
        // Roll-up buckets no wider than the step answer long ranges.
        let step_ns = step_ms.saturating_mul(NS_PER_MS);
        for (block, (start_ns, end_ns)) in plan_tasks(&blocks, start_ns, end_ns + 1, step_ns) {
            let block = &block;
            if !block
                .datasets
                .iter()
                .any(|d| d.profile_types.contains(&type_id))
            {
                continue;
            }
            let reader = self.reader(block).await?;
            let series = self.block_series(block, &reader).await?;
            let matching: HashMap<u32, &SeriesRow> = series
                .iter()
                .filter(|r| {
                    r.profile_type == type_id && matches_all(r, std::slice::from_ref(&selector))
                })
                .map(|r| (r.series_id, r))
                .collect();
            if matching.is_empty() {
                continue;
            }
            let ids: Vec<u32> = matching.keys().copied().collect();
            let totals = if call_site.is_empty() {
                self.scanner
                    .profile_totals(&reader, &ids, start_ns, end_ns)
                    .await?
            } else {
                self.call_site_totals(block, &reader, &ids, start_ns, end_ns, &call_site)
                    .await?
            };
            for p in totals {
                let Some(row) = matching.get(&p.series) else {
                    continue;
                };
                let Some(ts) = buckets.point_of(p.time_ns.div_euclid(NS_PER_MS)) else {
                    continue;
                };
                let key: Vec<(String, String)> = req
                    .group_by
                    .iter()
                    .filter_map(|g| series_label(row, g).map(|v| (g.clone(), v.to_owned())))
                    .collect();
                let e = groups
                    .entry(key)
                    .or_default()
                    .entry(ts)
                    .or_insert((0.0, 0, None));
                e.0 += p.total as f64;
                e.1 += 1;
                if exemplars
                    && let Some(id) = p.id
                    && e.2.is_none_or(|(_, v, _)| p.total > v)
                {
                    e.2 = Some((p.time_ns.div_euclid(NS_PER_MS), p.total, id));
                }
            }
        }
        let mut series: Vec<t::Series> = groups
            .into_iter()
            .map(|(key, points)| t::Series {
                labels: key
                    .into_iter()
                    .map(|(name, value)| t::LabelPair { name, value })
                    .collect(),
                points: points
                    .into_iter()
                    .map(|(ts, (sum, count, ex))| t::Point {
                        value: if average && count > 0 {
                            sum / count as f64
                        } else {
                            sum
                        },
                        timestamp: ts,
                        annotations: vec![],
                        exemplars: ex
                            .map(|(time, value, id)| {
                                vec![t::Exemplar {
                                    timestamp: time,
                                    profile_id: uuid::Uuid::from_bytes(id).to_string(),
                                    value,
                                    ..Default::default()
                                }]
                            })
                            .unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect();
        if let Some(limit) = req.limit.filter(|l| *l > 0)
            && series.len() > limit as usize
        {
            series.sort_by(|a, b| {
                let ta: f64 = a.points.iter().map(|p| p.value).sum();
                let tb: f64 = b.points.iter().map(|p| p.value).sum();
                tb.total_cmp(&ta)
            });
            series.truncate(limit as usize);
            series.sort_by(|a, b| {
                let ka: Vec<_> = a.labels.iter().map(|l| (&l.name, &l.value)).collect();
                let kb: Vec<_> = b.labels.iter().map(|l| (&l.name, &l.value)).collect();
                ka.cmp(&kb)
            });
        }
        self.observe("SelectSeries", started);
        Ok(q::SelectSeriesResponse { series })
    }

    /// Per-profile totals restricted to stacks under a call site.
    async fn call_site_totals(
        &self,
        block: &BlockMeta,
        reader: &BlockReader,
        ids: &[u32],
        start_ns: i64,
        end_ns: i64,
        call_site: &[String],
    ) -> Result<Vec<crate::scan::ProfileTotal>> {
        let profiles = self
            .scanner
            .profile_totals(reader, ids, start_ns, end_ns)
            .await?;
        let rows = reader
            .profiles()
            .await
            .map_err(|source| QuerierError::Storage {
                block: block.id.clone(),
                source: Box::new(source),
            })?;
        let mut out = Vec::with_capacity(profiles.len());
        for p in profiles {
            let Some(idx) = rows
                .iter()
                .position(|r| r.0 == p.series && r.1 == p.time_ns && r.2 == p.id)
            else {
                continue;
            };
            let selection = SampleSelection {
                series: vec![p.series],
                start_ns: p.time_ns,
                end_ns: p.time_ns,
                spans: None,
                profiles: Some(vec![idx as u32]),
            };
            let stacks =
                reader
                    .stack_values(&selection)
                    .await
                    .map_err(|source| QuerierError::Storage {
                        block: block.id.clone(),
                        source: Box::new(source),
                    })?;
            let mut tree = StackTree::new();
            for part in stacks {
                let sym = self
                    .partition_symbols(block, reader, part.partition)
                    .await?;
                add_stacks(&mut tree, &sym, &part.stacks, FrameMode::Function);
            }
            let total = select_call_site(&tree, call_site).total();
            out.push(crate::scan::ProfileTotal { total, ..p });
        }
        Ok(out)
    }

    /// Every series matching the matchers in the range, as (block, row) pairs.
    async fn matching_series(
        &self,
        tenants: &[TenantId],
        matchers: &[String],
        start: i64,
        end: i64,
    ) -> Result<Vec<SeriesRow>> {
        self.check_range(tenants, start, end)?;
        let selectors = parse_selectors(matchers)?;
        let (start_ns, end_ns) = ms_range_to_ns(start, end);
        let blocks = self
            .blocks(tenants, start_ns, end_ns, pinned_services(&selectors))
            .await?;
        let selectors = &selectors;
        let rows = stream::iter(blocks)
            .map(|b| async move {
                let reader = self.reader(&b).await?;
                let series = self.block_series(&b, &reader).await?;
                Ok::<_, QuerierError>(
                    series
                        .iter()
                        .filter(|r| matches_all(r, selectors))
                        .cloned()
                        .collect::<Vec<_>>(),
                )
            })
            .buffer_unordered(self.config.block_concurrency)
            .try_concat()
            .await?;
        Ok(rows)
    }

    /// `LabelNames`. Names that are not legacy Prometheus names (e.g. with
    /// dots) are returned only if `allow_utf8`.
    pub async fn label_names(
        &self,
        tenants: &[TenantId],
        req: t::LabelNamesRequest,
        allow_utf8: bool,
    ) -> Result<t::LabelNamesResponse> {
        let started = Instant::now();
        let rows = self
            .matching_series(tenants, &req.matchers, req.start, req.end)
            .await?;
        let mut names = BTreeSet::new();
        for r in &rows {
            for (n, _) in full_labels(r).iter() {
                if allow_utf8 || is_legacy_label_name(n) {
                    names.insert(n.to_owned());
                }
            }
        }
        self.observe("LabelNames", started);
        Ok(t::LabelNamesResponse {
            names: names.into_iter().collect(),
        })
    }

    /// `LabelValues`.
    pub async fn label_values(
        &self,
        tenants: &[TenantId],
        req: t::LabelValuesRequest,
    ) -> Result<t::LabelValuesResponse> {
        let started = Instant::now();
        if req.name.is_empty() {
            return Err(QuerierError::InvalidRequest("missing label name".into()));
        }
        let rows = self
            .matching_series(tenants, &req.matchers, req.start, req.end)
            .await?;
        let values: BTreeSet<String> = rows
            .iter()
            .filter_map(|r| series_label(r, &req.name).map(str::to_owned))
            .collect();
        self.observe("LabelValues", started);
        Ok(t::LabelValuesResponse {
            names: values.into_iter().filter(|v| !v.is_empty()).collect(),
        })
    }

    /// `Series`: distinct label sets, restricted to `label_names` if given.
    pub async fn series(
        &self,
        tenants: &[TenantId],
        req: q::SeriesRequest,
        allow_utf8: bool,
    ) -> Result<q::SeriesResponse> {
        let started = Instant::now();
        let rows = self
            .matching_series(tenants, &req.matchers, req.start, req.end)
            .await?;
        let mut sets: BTreeSet<Vec<(String, String)>> = BTreeSet::new();
        for r in &rows {
            let labels = full_labels(r);
            let set: Vec<(String, String)> = labels
                .iter()
                .filter(|(n, _)| {
                    req.label_names.is_empty() || req.label_names.iter().any(|w| w == n)
                })
                .filter(|(n, _)| allow_utf8 || is_legacy_label_name(n))
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            if !set.is_empty() {
                sets.insert(set);
            }
        }
        let labels_set = sets
            .into_iter()
            .map(|s| t::Labels {
                labels: s
                    .into_iter()
                    .map(|(name, value)| t::LabelPair { name, value })
                    .collect(),
            })
            .collect();
        self.observe("Series", started);
        Ok(q::SeriesResponse { labels_set })
    }

    /// `ProfileTypes`: every profile type with data in the range (the last
    /// hour when no range is given). Answered from the block index alone.
    pub async fn profile_types(
        &self,
        tenants: &[TenantId],
        req: q::ProfileTypesRequest,
    ) -> Result<q::ProfileTypesResponse> {
        let started = Instant::now();
        let (start, end) = if req.start == 0 && req.end == 0 {
            let now = now_ms();
            (now - 3_600_000, now)
        } else {
            self.check_range(tenants, req.start, req.end)?;
            (req.start, req.end)
        };
        let (start_ns, end_ns) = ms_range_to_ns(start, end);
        let blocks = self.blocks(tenants, start_ns, end_ns, None).await?;
        let mut ids = BTreeSet::new();
        for b in &blocks {
            for d in &b.datasets {
                if d.max_time >= start_ns && d.min_time <= end_ns {
                    ids.extend(d.profile_types.iter().cloned());
                }
            }
        }
        let profile_types = ids
            .into_iter()
            .filter_map(|id| ProfileType::parse(&id).ok())
            .map(|p| t::ProfileType {
                id: p.id(),
                name: p.name,
                sample_type: p.sample_type,
                sample_unit: p.sample_unit,
                period_type: p.period_type,
                period_unit: p.period_unit,
            })
            .collect();
        self.observe("ProfileTypes", started);
        Ok(q::ProfileTypesResponse { profile_types })
    }

    /// `GetProfileStats`.
    pub async fn profile_stats(&self, tenants: &[TenantId]) -> Result<t::GetProfileStatsResponse> {
        let blocks = self.blocks(tenants, i64::MIN, i64::MAX, None).await?;
        let oldest = blocks.iter().map(|b| b.min_time).min();
        let newest = blocks.iter().map(|b| b.max_time).max();
        Ok(t::GetProfileStatsResponse {
            data_ingested: !blocks.is_empty(),
            oldest_profile_time: oldest.map(|t| t.div_euclid(NS_PER_MS)).unwrap_or(0),
            newest_profile_time: newest.map(|t| t.div_euclid(NS_PER_MS)).unwrap_or(0),
        })
    }
}

/// The (block, inclusive time range) pairs that answer `[start, end)`:
/// per tenant, the coarsest roll-up tier that holds each part exactly and
/// raw blocks for the rest (see [`plan_ranges`]).
/// Merges trees into the largest one (fewest node insertions).
fn merge_trees(trees: impl IntoIterator<Item = StackTree>) -> StackTree {
    let mut trees: Vec<StackTree> = trees.into_iter().collect();
    let Some(largest) = (0..trees.len()).max_by_key(|i| trees[*i].node_count()) else {
        return StackTree::new();
    };
    let mut acc = trees.swap_remove(largest);
    for t in &trees {
        acc.merge(t);
    }
    acc
}

fn plan_tasks(blocks: &[BlockMeta], start: i64, end: i64, max_resolution: i64) -> Vec<Task> {
    let mut by_tenant: BTreeMap<&str, Vec<BlockMeta>> = BTreeMap::new();
    for b in blocks {
        by_tenant
            .entry(b.tenant.as_str())
            .or_default()
            .push(b.clone());
    }
    let mut tasks = Vec::new();
    for tenant_blocks in by_tenant.values() {
        for r in plan_ranges(tenant_blocks, start, end, max_resolution) {
            for b in tenant_blocks.iter().filter(|b| {
                b.resolution == r.resolution && b.min_time < r.end && b.max_time >= r.start
            }) {
                tasks.push((b.clone(), (r.start, r.end - 1)));
            }
        }
    }
    tasks
}

/// The part of `tree` whose stacks start with `call_site` (root first).
fn select_call_site(tree: &StackTree, call_site: &[String]) -> StackTree {
    let mut out = StackTree::new();
    tree.for_each_stack(|stack, value| {
        if stack.len() >= call_site.len()
            && stack.iter().zip(call_site).all(|(a, b)| *a == b.as_str())
        {
            out.insert_stack(stack, value);
        }
    });
    out
}

fn parse_spans(spans: &[String]) -> Result<Vec<u64>> {
    spans
        .iter()
        .map(|s| {
            kiln_model::labels::parse_span_id(s).ok_or_else(|| {
                QuerierError::InvalidRequest(format!(
                    "invalid span id {s:?}: expected 16 hex digits"
                ))
            })
        })
        .collect()
}

fn humantime_like(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3_600) {
        format!("{}h", s / 3_600)
    } else {
        format!("{s}s")
    }
}
