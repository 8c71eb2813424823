//! Buffers, flushes and acknowledgements.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kiln_cluster::MetastoreClient;
use kiln_model::Labels;
use kiln_model::tiers::HOUR;
use kiln_proto::google::v1::Profile;
use kiln_proto::kiln::ingester::v1::{PushRequest, PushResponse};
use kiln_storage::{BlockBuilder, layout};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use prost::Message;
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use ulid::Ulid;

use crate::metrics::RefusedLabels;
use crate::{IngesterConfig, IngesterError, IngesterMetrics, Result};

type Waiter = oneshot::Sender<Result<String>>;
type Decoded = (Labels, Option<[u8; 16]>, Profile);
/// Buffers by (tenant, shard, hour of the profiles' time): a segment never
/// spans an hour boundary, so compaction windows and roll-up buckets never
/// need to split a block.
type Buffers = HashMap<BufferKey, Arc<Mutex<Buffer>>>;
type BufferKey = (String, u32, i64);

/// Profiles of one (tenant, shard) waiting to be written.
struct Buffer {
    /// `None` once the flusher has taken the buffer; adders then start a new one.
    builder: Option<BlockBuilder>,
    waiters: Vec<Waiter>,
    bytes: usize,
    created: Instant,
}

struct Inner {
    config: IngesterConfig,
    store: Arc<dyn ObjectStore>,
    metastore: MetastoreClient,
    metrics: IngesterMetrics,
    buffers: Mutex<Buffers>,
    /// Buffers (by key) whose previous segment is being written: they wait
    /// for it (or for `flush_interval`) instead of the linger.
    writing: Mutex<HashMap<BufferKey, usize>>,
    buffered: AtomicUsize,
    wake: Notify,
    closing: AtomicBool,
    flush_slots: Arc<Semaphore>,
    flushes: TaskTracker,
}

/// The ingester role.
#[derive(Clone)]
pub struct Ingester {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ingester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingester")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Ingester {
    /// An ingester writing to `store` and registering in `metastore`.
    pub fn new(
        config: IngesterConfig,
        store: Arc<dyn ObjectStore>,
        metastore: MetastoreClient,
        metrics: IngesterMetrics,
    ) -> Self {
        let slots = config.flush_concurrency;
        Ingester {
            inner: Arc::new(Inner {
                config,
                store,
                metastore,
                metrics,
                buffers: Mutex::new(HashMap::new()),
                writing: Mutex::new(HashMap::new()),
                buffered: AtomicUsize::new(0),
                wake: Notify::new(),
                closing: AtomicBool::new(false),
                flush_slots: Arc::new(Semaphore::new(slots)),
                flushes: TaskTracker::new(),
            }),
        }
    }

    /// Buffers the profiles of `request` and returns once the segment that
    /// holds them is in object storage and registered in the metastore.
    pub async fn push(&self, request: PushRequest) -> Result<PushResponse> {
        let tenant = request.tenant.clone();
        let result = self.buffer_and_wait(request).await;
        if let Err(e) = &result {
            self.inner
                .metrics
                .refused_pushes
                .get_or_create(&RefusedLabels {
                    tenant,
                    reason: e.reason().into(),
                })
                .inc();
        }
        result
    }

    async fn buffer_and_wait(&self, request: PushRequest) -> Result<PushResponse> {
        let started = Instant::now();
        let inner = &self.inner;
        if inner.closing.load(Ordering::Acquire) {
            return Err(IngesterError::ShuttingDown);
        }
        if request.tenant.is_empty() {
            return Err(IngesterError::InvalidPush("missing tenant".into()));
        }
        if request.profiles.is_empty() {
            return Ok(PushResponse {
                block_id: String::new(),
            });
        }
        let size = request.encoded_len();
        let limit = inner.config.max_buffered_size.as_u64() as usize;
        let buffered = inner.buffered.load(Ordering::Acquire);
        if buffered + size > limit && buffered > 0 {
            return Err(IngesterError::Overloaded { buffered, limit });
        }
        let adder = Arc::clone(inner);
        let receivers = tokio::task::spawn_blocking(move || adder.add(request, size))
            .await
            .map_err(|e| IngesterError::InvalidPush(format!("push task failed: {e}")))??;
        // The push is acknowledged when every segment holding part of it is.
        let mut result = Ok(String::new());
        for rx in receivers {
            match rx.await.unwrap_or(Err(IngesterError::ShuttingDown)) {
                Ok(id) => {
                    if result.is_ok() {
                        result = Ok(id);
                    }
                }
                Err(e) => result = Err(e),
            }
        }
        inner
            .metrics
            .ack_latency
            .observe(started.elapsed().as_secs_f64());
        result.map(|block_id| PushResponse { block_id })
    }

    /// Runs the flusher until `shutdown` fires, then flushes every buffer,
    /// waits for the uploads and returns. Pushes arriving after that fail
    /// with a retryable error.
    pub async fn run(&self, shutdown: CancellationToken) {
        let inner = &self.inner;
        loop {
            let next = Arc::clone(inner).flush_due(false);
            tokio::select! {
                _ = tokio::time::sleep_until(next.into()) => {}
                _ = inner.wake.notified() => {}
                _ = shutdown.cancelled() => break,
            }
        }
        inner.closing.store(true, Ordering::Release);
        // Let pushes that are being added finish adding, then flush all.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Arc::clone(inner).flush_due(true);
        inner.flushes.close();
        inner.flushes.wait().await;
        tracing::info!("ingester flushed all buffers");
    }

    /// Bytes currently buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.buffered.load(Ordering::Acquire)
    }
}

impl Inner {
    /// Adds a request to the buffers of its hours (blocking: builds symbol
    /// tables); returns one receiver per buffer touched.
    fn add(
        &self,
        request: PushRequest,
        size: usize,
    ) -> Result<Vec<oneshot::Receiver<Result<String>>>> {
        let PushRequest {
            tenant,
            shard,
            profiles,
        } = request;
        let mut decoded = Vec::with_capacity(profiles.len());
        for p in profiles {
            let labels = Labels::from_pairs(p.labels.into_iter().map(|l| (l.name, l.value)));
            let id: Option<[u8; 16]> = p.id.as_slice().try_into().ok();
            let profile = p
                .profile
                .ok_or_else(|| IngesterError::InvalidPush("profile without pprof".into()))?;
            kiln_storage::writer::check_pprof(&labels, &profile)
                .map_err(|e| IngesterError::InvalidPush(e.to_string()))?;
            decoded.push((labels, id, profile));
        }
        let mut by_hour: std::collections::BTreeMap<i64, Vec<Decoded>> =
            std::collections::BTreeMap::new();
        let total = decoded.len();
        for d in decoded {
            by_hour
                .entry(d.2.time_nanos.div_euclid(HOUR) * HOUR)
                .or_default()
                .push(d);
        }
        let mut receivers = Vec::with_capacity(by_hour.len());
        for (hour, group) in by_hour {
            let share = size * group.len() / total.max(1);
            let (tx, rx) = oneshot::channel();
            self.add_to_buffer(&tenant, shard, hour, &group, share, tx)?;
            receivers.push(rx);
        }
        Ok(receivers)
    }

    fn add_to_buffer(
        &self,
        tenant: &str,
        shard: u32,
        hour: i64,
        decoded: &[Decoded],
        size: usize,
        waiter: Waiter,
    ) -> Result<()> {
        let count = decoded.len() as u64;
        let key = (tenant.to_owned(), shard, hour);
        loop {
            let mut created = false;
            let buffer = {
                let mut buffers = lock(&self.buffers);
                Arc::clone(buffers.entry(key.clone()).or_insert_with(|| {
                    created = true;
                    Arc::new(Mutex::new(Buffer {
                        builder: Some(BlockBuilder::new(tenant, shard, 0)),
                        waiters: Vec::new(),
                        bytes: 0,
                        created: Instant::now(),
                    }))
                }))
            };
            let mut b = lock(&buffer);
            let Some(builder) = b.builder.as_mut() else {
                // The flusher took this buffer after we looked it up.
                continue;
            };
            for (labels, id, profile) in decoded {
                builder
                    .add_pprof(labels, *id, profile)
                    .map_err(|e| IngesterError::InvalidPush(e.to_string()))?;
            }
            b.waiters.push(waiter);
            b.bytes += size;
            let full = b.bytes >= self.config.max_segment_size.as_u64() as usize;
            drop(b);
            let total = self.buffered.fetch_add(size, Ordering::AcqRel) + size;
            self.metrics.buffered_bytes.set(total as i64);
            self.metrics.received_profiles.inc_by(count);
            // A new buffer is due after the linger, which may come before
            // the flusher's next wake-up: tell it.
            if full || created {
                self.wake.notify_one();
            }
            return Ok(());
        }
    }

    /// Starts flushes of every due buffer (all of them if `all`); returns
    /// when the next buffer becomes due. A buffer is due when it holds
    /// `max_segment_size` bytes, when its first push has waited
    /// `flush_interval`, or when it has lingered `flush_linger` and no
    /// earlier segment of it is being written (group commit: the write
    /// that is running batches everything that arrives meanwhile).
    fn flush_due(self: Arc<Self>, all: bool) -> Instant {
        let now = Instant::now();
        let interval = self.config.flush_interval;
        let linger = self.config.flush_linger.min(interval);
        let max_bytes = self.config.max_segment_size.as_u64() as usize;
        let mut next = now + interval;
        let mut due = Vec::new();
        {
            let mut buffers = lock(&self.buffers);
            let mut writing = lock(&self.writing);
            buffers.retain(|key, buffer| {
                let mut b = lock(buffer);
                let busy = writing.contains_key(key);
                let deadline = b.created + interval;
                let lingered = b.created + linger;
                if all || b.bytes >= max_bytes || deadline <= now || (!busy && lingered <= now) {
                    if let Some(builder) = b.builder.take() {
                        let waiters = std::mem::take(&mut b.waiters);
                        *writing.entry(key.clone()).or_default() += 1;
                        due.push((key.clone(), builder, waiters, b.bytes));
                    }
                    false
                } else {
                    // A busy buffer is looked at again when its write ends.
                    next = next.min(if busy { deadline } else { lingered });
                    true
                }
            });
        }
        for (key, builder, waiters, bytes) in due {
            let inner = Arc::clone(&self);
            self.flushes.spawn(async move {
                let (tenant, shard, _) = &key;
                let shard = *shard;
                let permit = Arc::clone(&inner.flush_slots).acquire_owned().await;
                let result = inner.flush(tenant, shard, builder).await;
                drop(permit);
                let total = inner.buffered.fetch_sub(bytes, Ordering::AcqRel) - bytes;
                inner.metrics.buffered_bytes.set(total as i64);
                {
                    let mut writing = lock(&inner.writing);
                    if let Some(n) = writing.get_mut(&key) {
                        *n -= 1;
                        if *n == 0 {
                            writing.remove(&key);
                        }
                    }
                }
                // The next buffer of this key may be due now.
                inner.wake.notify_one();
                match &result {
                    Ok(id) => tracing::debug!(tenant = %tenant, shard, block_id = %id, pushes = waiters.len(), "segment flushed"),
                    Err(e) => {
                        inner.metrics.failed_segments.inc();
                        tracing::warn!(tenant = %tenant, shard, error = %e, pushes = waiters.len(), "segment flush failed; pushes answered with an error");
                    }
                }
                for w in waiters {
                    let _ = w.send(result.clone());
                }
            });
        }
        next
    }

    /// Encodes, uploads and registers one segment.
    async fn flush(&self, tenant: &str, shard: u32, builder: BlockBuilder) -> Result<String> {
        let started = Instant::now();
        let id = Ulid::new();
        let key = layout::segment_key(tenant, shard, id);
        let block = {
            let key = key.clone();
            let tenant = tenant.to_owned();
            tokio::task::spawn_blocking(move || builder.finish(id, key, now_ms()))
                .await
                .map_err(|e| IngesterError::Encode {
                    tenant: tenant.clone(),
                    reason: e.to_string(),
                })?
                .map_err(|e| IngesterError::Encode {
                    tenant,
                    reason: e.to_string(),
                })?
        };
        let size = block.bytes.len() as u64;
        let attempts = self.config.upload_attempts;
        let timeout = self.config.upload_timeout;
        let path = Path::from(key.as_str());
        let mut last = String::new();
        let mut uploaded = false;
        for attempt in 0..attempts {
            match tokio::time::timeout(
                timeout,
                self.store.put(&path, PutPayload::from(block.bytes.clone())),
            )
            .await
            {
                Ok(Ok(_)) => {
                    uploaded = true;
                    break;
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("timed out after {timeout:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
        }
        if !uploaded {
            // A failed attempt may still have written the object (a lost
            // answer); it is not registered, so nobody reads it. Remove it
            // (best effort).
            let _ = self.store.delete(&path).await;
            return Err(IngesterError::Upload {
                tenant: tenant.to_owned(),
                block_id: id.to_string(),
                reason: last,
            });
        }
        let mut registered = false;
        for attempt in 0..attempts {
            match tokio::time::timeout(timeout, self.metastore.add_block(block.meta.clone())).await
            {
                Ok(Ok(_)) => {
                    registered = true;
                    break;
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("timed out after {timeout:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
        }
        if !registered {
            // The object is kept: a registration whose answer was lost may
            // have been committed (registering is idempotent, so retries are
            // safe), and deleting the object would then leave an indexed
            // segment without data. An unregistered segment is never read.
            return Err(IngesterError::Register {
                tenant: tenant.to_owned(),
                block_id: id.to_string(),
                reason: last,
            });
        }
        self.metrics.flushed_segments.inc();
        self.metrics.flushed_bytes.inc_by(size);
        self.metrics
            .flush_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(id.to_string())
    }
}
