//! Fault injection for object storage: a testing knob, never for production.
//!
//! [`FaultyStore`] wraps any [`ObjectStore`] and makes a configurable share
//! of its calls fail the way real object stores fail:
//!
//! - **error**: the call fails at once, as on a 5xx answer; nothing is done;
//! - **timeout**: the call hangs for [`FaultsConfig::timeout`] and then fails;
//!   nothing is done (callers with a shorter deadline give up first);
//! - **lost ack** (PUT only): the object *is* written, but the call fails, as
//!   when a response is lost after the store committed the write;
//! - **slow PUT**: every PUT is delayed by [`FaultsConfig::slow_put`].
//!
//! Which calls fail is drawn from a seeded generator, one draw per call, so a
//! given seed and call order give the same faults. It is enabled by
//! `storage.faults.enabled` (off by default) so that end-to-end tests can run
//! the real binary against failing storage; every fault is counted (see
//! [`FaultyStore::injected`]) and logged at debug level.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use serde::{Deserialize, Serialize};

/// Kinds of object-store calls faults can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultOperation {
    /// PUT (single and multipart).
    Put,
    /// GET, ranged GET and HEAD.
    Get,
    /// LIST.
    List,
    /// DELETE.
    Delete,
    /// COPY (and the copy of a rename).
    Copy,
}

impl FaultOperation {
    /// Every operation.
    pub const ALL: [FaultOperation; 5] = [
        FaultOperation::Put,
        FaultOperation::Get,
        FaultOperation::List,
        FaultOperation::Delete,
        FaultOperation::Copy,
    ];

    fn name(self) -> &'static str {
        match self {
            FaultOperation::Put => "put",
            FaultOperation::Get => "get",
            FaultOperation::List => "list",
            FaultOperation::Delete => "delete",
            FaultOperation::Copy => "copy",
        }
    }
}

/// The `storage.faults` section: injected object-storage faults, for tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsConfig {
    /// Wraps the object store in [`FaultyStore`]. Off by default; the other
    /// keys have no effect while this is false.
    pub enabled: bool,
    /// Share of calls (0..=1) that fail at once, like a 5xx answer.
    pub error_rate: f64,
    /// Share of calls that hang for `timeout` and then fail.
    pub timeout_rate: f64,
    /// How long a call chosen by `timeout_rate` hangs.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Share of PUTs whose object is written but which still fail.
    pub lost_ack_rate: f64,
    /// Extra delay of every PUT.
    #[serde(with = "humantime_serde")]
    pub slow_put: Duration,
    /// The operations faults apply to (`slow_put` applies to PUTs whatever
    /// this says).
    pub operations: Vec<FaultOperation>,
    /// Seed of the generator that picks the failing calls.
    pub seed: u64,
}

impl Default for FaultsConfig {
    fn default() -> Self {
        FaultsConfig {
            enabled: false,
            error_rate: 0.0,
            timeout_rate: 0.0,
            timeout: Duration::from_secs(5),
            lost_ack_rate: 0.0,
            slow_put: Duration::ZERO,
            operations: FaultOperation::ALL.to_vec(),
            seed: 0,
        }
    }
}

impl FaultsConfig {
    /// Checks the rates.
    pub fn validate(&self) -> Result<(), String> {
        for (key, rate) in [
            ("error_rate", self.error_rate),
            ("timeout_rate", self.timeout_rate),
            ("lost_ack_rate", self.lost_ack_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "`storage.faults.{key}` must be between 0 and 1, not {rate}"
                ));
            }
        }
        if self.error_rate + self.timeout_rate + self.lost_ack_rate > 1.0 {
            return Err(
                "`storage.faults.error_rate` + `timeout_rate` + `lost_ack_rate` must be at most 1"
                    .into(),
            );
        }
        Ok(())
    }
}

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Error,
    Timeout,
    LostAck,
}

/// How many faults of each kind were injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectedFaults {
    /// Calls failed at once.
    pub errors: u64,
    /// Calls that hung and failed.
    pub timeouts: u64,
    /// PUTs written but answered with an error.
    pub lost_acks: u64,
    /// PUTs delayed by `slow_put`.
    pub slow_puts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    draws: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    lost_acks: AtomicU64,
    slow_puts: AtomicU64,
}

/// The state shared by a store and the streams it returns.
#[derive(Debug)]
struct Injector {
    config: FaultsConfig,
    counters: Counters,
}

/// SplitMix64: a small, well-mixed generator; one output per call index.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Injector {
    /// Picks the fault of the next call of `op`.
    fn draw(&self, op: FaultOperation) -> Fault {
        let c = &self.config;
        if !c.operations.contains(&op) {
            return Fault::None;
        }
        let n = self.counters.draws.fetch_add(1, Ordering::Relaxed);
        let bits = splitmix64(c.seed ^ splitmix64(n));
        // 53 random bits as a number in [0, 1).
        let u = (bits >> 11) as f64 / (1u64 << 53) as f64;
        let fault = if u < c.error_rate {
            Fault::Error
        } else if u < c.error_rate + c.timeout_rate {
            Fault::Timeout
        } else if op == FaultOperation::Put && u < c.error_rate + c.timeout_rate + c.lost_ack_rate {
            Fault::LostAck
        } else {
            Fault::None
        };
        let counter = match fault {
            Fault::None => None,
            Fault::Error => Some(&self.counters.errors),
            Fault::Timeout => Some(&self.counters.timeouts),
            Fault::LostAck => Some(&self.counters.lost_acks),
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        fault
    }

    fn error(op: FaultOperation, location: &str, what: String) -> object_store::Error {
        tracing::debug!(operation = op.name(), location = %location, fault = %what, "injected object storage fault");
        object_store::Error::Generic {
            store: "faults",
            source: format!("injected fault: {} of {location} {what}", op.name()).into(),
        }
    }

    /// Applies a fault that does nothing before failing (error, timeout);
    /// `Ok(fault)` means the call goes ahead (`None` or `LostAck`).
    async fn before(&self, op: FaultOperation, location: &str) -> object_store::Result<Fault> {
        match self.draw(op) {
            Fault::Error => Err(Self::error(
                op,
                location,
                "failed: 503 Service Unavailable".into(),
            )),
            Fault::Timeout => {
                tokio::time::sleep(self.config.timeout).await;
                Err(Self::error(
                    op,
                    location,
                    format!("timed out after {:?}", self.config.timeout),
                ))
            }
            other => Ok(other),
        }
    }

    async fn slow_put(&self) {
        if !self.config.slow_put.is_zero() {
            self.counters.slow_puts.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.config.slow_put).await;
        }
    }
}

/// An [`ObjectStore`] that injects faults into the calls to another one.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    injector: Arc<Injector>,
}

impl FaultyStore {
    /// Wraps `inner`, injecting the faults `config` describes (whatever
    /// `config.enabled` says).
    pub fn new(inner: Arc<dyn ObjectStore>, config: FaultsConfig) -> Self {
        FaultyStore {
            inner,
            injector: Arc::new(Injector {
                config,
                counters: Counters::default(),
            }),
        }
    }

    /// The faults injected so far.
    pub fn injected(&self) -> InjectedFaults {
        let c = &self.injector.counters;
        InjectedFaults {
            errors: c.errors.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            lost_acks: c.lost_acks.load(Ordering::Relaxed),
            slow_puts: c.slow_puts.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

/// A stream that fails once with `err` after `delay`.
fn failing_stream<T: Send + 'static>(
    delay: Duration,
    err: object_store::Error,
) -> BoxStream<'static, object_store::Result<T>> {
    futures::stream::once(async move {
        tokio::time::sleep(delay).await;
        Err(err)
    })
    .boxed()
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let op = FaultOperation::Put;
        self.injector.slow_put().await;
        let fault = self.injector.before(op, location.as_ref()).await?;
        let result = self.inner.put_opts(location, payload, opts).await?;
        if fault == Fault::LostAck {
            return Err(Injector::error(
                op,
                location.as_ref(),
                "was stored but answered 500 Internal Server Error".into(),
            ));
        }
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        // Faults apply when the upload starts; its parts are not touched.
        self.injector.slow_put().await;
        self.injector
            .before(FaultOperation::Put, location.as_ref())
            .await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.injector
            .before(FaultOperation::Get, location.as_ref())
            .await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.injector
            .before(FaultOperation::Get, location.as_ref())
            .await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let inner = Arc::clone(&self.inner);
        let injector = Arc::clone(&self.injector);
        locations
            .then(move |location| {
                let inner = Arc::clone(&inner);
                let injector = Arc::clone(&injector);
                async move {
                    let location = location?;
                    injector
                        .before(FaultOperation::Delete, location.as_ref())
                        .await?;
                    inner.delete(&location).await.map(|()| location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let op = FaultOperation::List;
        let at = prefix.map(|p| p.to_string()).unwrap_or_default();
        match self.injector.draw(op) {
            Fault::Error => failing_stream(
                Duration::ZERO,
                Injector::error(op, &at, "failed: 503 Service Unavailable".into()),
            ),
            Fault::Timeout => {
                let t = self.injector.config.timeout;
                failing_stream(
                    t,
                    Injector::error(op, &at, format!("timed out after {t:?}")),
                )
            }
            Fault::None | Fault::LostAck => self.inner.list(prefix),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let at = prefix.map(|p| p.to_string()).unwrap_or_default();
        self.injector.before(FaultOperation::List, &at).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.injector
            .before(FaultOperation::Copy, from.as_ref())
            .await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.injector
            .before(FaultOperation::Copy, from.as_ref())
            .await?;
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;
    use object_store::memory::InMemory;

    use super::*;

    fn store(config: FaultsConfig) -> (Arc<InMemory>, FaultyStore) {
        let inner = Arc::new(InMemory::new());
        let faulty = FaultyStore::new(Arc::clone(&inner) as Arc<dyn ObjectStore>, config);
        (inner, faulty)
    }

    fn config() -> FaultsConfig {
        FaultsConfig {
            enabled: true,
            seed: 7,
            ..FaultsConfig::default()
        }
    }

    #[tokio::test]
    async fn errors_do_nothing_and_say_so() {
        let (inner, faulty) = store(FaultsConfig {
            error_rate: 1.0,
            ..config()
        });
        let p = Path::from("a/b");
        let err = faulty.put(&p, PutPayload::from_static(b"x")).await;
        let msg = err.unwrap_err().to_string();
        assert!(
            msg.contains("injected fault: put of a/b failed: 503"),
            "{msg}"
        );
        assert!(inner.head(&p).await.is_err(), "a failed put wrote nothing");
        inner.put(&p, PutPayload::from_static(b"x")).await.unwrap();
        assert!(faulty.get(&p).await.is_err());
        assert!(faulty.head(&p).await.is_err());
        assert!(faulty.delete(&p).await.is_err());
        assert!(
            inner.head(&p).await.is_ok(),
            "a failed delete removed nothing"
        );
        let listed: Result<Vec<_>, _> = faulty.list(None).try_collect().await;
        assert!(listed.is_err());
        assert!(faulty.list_with_delimiter(None).await.is_err());
        assert!(faulty.copy(&p, &Path::from("c")).await.is_err());
        assert_eq!(faulty.injected().errors, 7);
    }

    #[tokio::test]
    async fn lost_acks_store_the_object_and_fail() {
        let (inner, faulty) = store(FaultsConfig {
            lost_ack_rate: 1.0,
            ..config()
        });
        let p = Path::from("seg");
        let err = faulty
            .put(&p, PutPayload::from_static(b"data"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("was stored"), "{err}");
        let got = inner.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(got.as_ref(), b"data");
        // Lost acks are a PUT fault only: reads and deletes go through.
        assert_eq!(
            faulty
                .get(&p)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .as_ref(),
            b"data"
        );
        faulty.delete(&p).await.unwrap();
        assert!(inner.head(&p).await.is_err());
        assert_eq!(faulty.injected().lost_acks, 1);
    }

    #[tokio::test]
    async fn timeouts_hang_then_fail_and_slow_puts_wait() {
        let (inner, faulty) = store(FaultsConfig {
            timeout_rate: 1.0,
            timeout: Duration::from_millis(300),
            slow_put: Duration::from_millis(100),
            ..config()
        });
        let p = Path::from("t");
        let started = std::time::Instant::now();
        let err = faulty
            .put(&p, PutPayload::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("timed out after 300ms"), "{err}");
        // Sleeps last at least as long as asked: slow PUT, then the hang.
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert!(inner.head(&p).await.is_err());
        // A caller's own deadline gives up first.
        let r = tokio::time::timeout(Duration::from_millis(50), faulty.get(&p)).await;
        assert!(r.is_err(), "still hanging after 50ms");
        let listed: Result<Vec<_>, _> = faulty.list(None).try_collect().await;
        assert!(listed.unwrap_err().to_string().contains("timed out"));
        assert_eq!(faulty.injected().slow_puts, 1);
        assert_eq!(faulty.injected().timeouts, 3);
    }

    #[tokio::test]
    async fn rates_follow_the_config_and_the_seed() {
        let cfg = FaultsConfig {
            error_rate: 0.2,
            lost_ack_rate: 0.1,
            operations: vec![FaultOperation::Put],
            ..config()
        };
        let (inner, faulty) = store(cfg.clone());
        let mut outcomes = Vec::new();
        for i in 0..2000 {
            let p = Path::from(format!("k/{i}"));
            let ok = faulty.put(&p, PutPayload::from_static(b"x")).await.is_ok();
            let stored = inner.head(&p).await.is_ok();
            outcomes.push((ok, stored));
        }
        let errors = outcomes.iter().filter(|o| **o == (false, false)).count();
        let lost = outcomes.iter().filter(|o| **o == (false, true)).count();
        let ok = outcomes.iter().filter(|o| **o == (true, true)).count();
        assert_eq!(errors + lost + ok, 2000, "a put that succeeds is stored");
        assert!(
            (300..500).contains(&errors),
            "{errors} errors of 2000 at 20%"
        );
        assert!(
            (130..270).contains(&lost),
            "{lost} lost acks of 2000 at 10%"
        );
        let injected = faulty.injected();
        assert_eq!(
            (injected.errors, injected.lost_acks),
            (errors as u64, lost as u64)
        );
        // GETs are not in `operations`: they never fail.
        for (i, (_, stored)) in outcomes.iter().enumerate().take(100) {
            if *stored {
                faulty.get(&Path::from(format!("k/{i}"))).await.unwrap();
            }
        }
        // The same seed picks the same calls.
        let (_, again) = store(cfg);
        let mut same = Vec::new();
        for i in 0..2000 {
            let p = Path::from(format!("k/{i}"));
            same.push(again.put(&p, PutPayload::from_static(b"x")).await.is_ok());
        }
        assert_eq!(
            same,
            outcomes.iter().map(|o| o.0).collect::<Vec<_>>(),
            "deterministic for a seed"
        );
    }

    #[test]
    fn validation_names_the_key() {
        let bad = FaultsConfig {
            error_rate: 1.5,
            ..config()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("storage.faults.error_rate")
        );
        let sum = FaultsConfig {
            error_rate: 0.6,
            timeout_rate: 0.6,
            ..config()
        };
        assert!(sum.validate().is_err());
        assert!(config().validate().is_ok());
    }
}
