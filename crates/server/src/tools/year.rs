//! `kiln bench year generate|query`: the one-year benchmark (a year of one
//! service, compacted, queried as a flame graph over a year, 30 days and
//! 24 hours).
//!
//! `generate` writes the dataset straight into object storage with the
//! storage crate's block writer and the compactor's roll-up code, registers
//! every block in a running metastore (`AddBlock`, as ingesters and
//! compactors do) and waits until the compactor of that Kiln has merged the
//! day tiers (levels 4 and 5). One profile every `--interval` (10 s) for
//! `--days` (365) whole UTC days ending at `--end` (the start of today), of
//! one service whose stacks come from
//! [`ServiceModel::sampled`](kiln_formats::testgen::ServiceModel::sampled):
//! `--pool` (4000) call stacks of stable Zipf-like popularity, each profile
//! made of a number of independent hits that follows a daily cycle
//! (`--hits` on average). What is written, by age:
//!
//! - the last day: raw profiles in 24 hour blocks (level 2, what the
//!   compactor's hour merges leave before the day job);
//! - the `--raw-days` days before it: the raw day block (level 3, every
//!   profile through [`BlockBuilder::add_pprof`], the same writer as
//!   segments) and its 1 min / 1 h / 1 day roll-ups, computed from that
//!   block by [`kiln_compactor::day_rollups`] (the compactor's day job);
//! - older days: only the roll-ups (their raw blocks are what retention
//!   removes after `compactor.retention.raw`, 30 days), computed by the
//!   same [`kiln_compactor::day_rollups`] from the same sample rows, handed
//!   over in memory instead of through an encoded raw block (the day's hits
//!   are generated as stack counts; the symbols are those of a real block
//!   holding every stack of the pool). A test checks that both ways give
//!   identical roll-ups.
//!
//! It writes a manifest (JSON) with the exact CPU total of every hour, and
//! the query windows with their expected totals.
//!
//! `query` runs `SelectMergeStacktraces` (flame graph, `--max-nodes`) for
//! each window of a manifest `--iterations` times against a running Kiln,
//! checks every answer's total against the exact sum, and reports latency
//! (first query and the rest) and, with `--pid`, the server's peak RSS per
//! window (its high-water mark is reset before each window through
//! `/proc/<pid>/clear_refs`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kiln_cluster::MetastoreClient;
use kiln_formats::testgen::{PERIOD_NS, Rng, ServiceModel};
use kiln_model::Labels;
use kiln_proto::kiln::metastore::v1::{BlockMeta, QueryBlocksRequest};
use kiln_storage::compact::LoadedBlock;
use kiln_storage::{BlockBuilder, BlockReader, SampleRowData, layout};
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::tools::bench::Percentiles;
use crate::tools::blocks::StorageArgs;
use crate::tools::connect::KilnClient;
use crate::tools::query::select_merge_stacktraces;
use crate::tools::{ServerArgs, format_bytes, now_ns, parse_time, require_loopback};

const SECOND: i64 = 1_000_000_000;
const HOUR: i64 = 3_600 * SECOND;
const DAY: i64 = 24 * HOUR;
const NS_PER_MS: i64 = 1_000_000;
/// The profile type the benchmark queries.
pub const CPU_TYPE: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// Arguments of `kiln bench year`.
#[derive(Debug, clap::Args)]
pub struct YearArgs {
    #[command(subcommand)]
    pub command: YearCommand,
}

/// `kiln bench year` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum YearCommand {
    /// Writes a year of one service into blocks and roll-ups and registers
    /// them in a running Kiln's metastore.
    Generate(GenerateArgs),
    /// Queries the windows of a manifest and checks their totals.
    Query(YearQueryArgs),
}

/// Arguments of `kiln bench year generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// gRPC address of the Kiln (metastore) to register the blocks in.
    #[arg(long)]
    pub metastore: String,
    #[command(flatten)]
    pub secret: super::ClusterSecretArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Tenant.
    #[arg(long, default_value = "anonymous")]
    pub tenant: String,
    /// Whole UTC days of data.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Days before the last one that keep their raw day block (older days
    /// have roll-ups only, as after raw retention).
    #[arg(long = "raw-days", default_value_t = 29)]
    pub raw_days: u32,
    /// Time between two profiles.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Distinct call stacks of the service.
    #[arg(long, default_value_t = 4000)]
    pub pool: usize,
    /// Mean hits (samples at 100 Hz) per profile.
    #[arg(long, default_value_t = 2000)]
    pub hits: usize,
    /// Typical stack depth.
    #[arg(long, default_value_t = 24)]
    pub depth: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// End of the data (exclusive), rounded down to a UTC day; default: the
    /// start of today.
    #[arg(long)]
    pub end: Option<String>,
    /// Node cap per roll-up bucket (`compactor.rollup_node_cap`).
    #[arg(long = "node-cap", default_value_t = 16_384)]
    pub node_cap: usize,
    /// Days generated at once (default: the number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where to write the manifest.
    #[arg(long, default_value = "year-manifest.json")]
    pub manifest: PathBuf,
    /// After registering, wait until the block index has not changed for
    /// this long (the compactor's tier merges); 0 = do not wait.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Longest wait for the compactor.
    #[arg(long = "settle-timeout", default_value = "30m", value_parser = humantime::parse_duration)]
    pub settle_timeout: Duration,
}

/// Arguments of `kiln bench year query`.
#[derive(Debug, clap::Args)]
pub struct YearQueryArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Manifest written by `kiln bench year generate`.
    #[arg(long, default_value = "year-manifest.json")]
    pub manifest: PathBuf,
    /// Comma list of window names to run (default: all of the manifest).
    #[arg(long)]
    pub windows: Option<String>,
    /// Queries per window.
    #[arg(long, default_value_t = 10)]
    pub iterations: usize,
    /// `max_nodes` of each query.
    #[arg(long = "max-nodes", default_value_t = 8192)]
    pub max_nodes: i64,
    /// Process id of the Kiln serving the queries, to report its peak RSS
    /// per window.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Allow a non-loopback --url.
    #[arg(long = "allow-remote")]
    pub allow_remote: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `generate` wrote and the exact answers to expect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Tenant.
    pub tenant: String,
    /// `service_name`.
    pub service: String,
    /// `<profile type>{service_name="..."}` of the queries.
    pub selector: String,
    /// First profile time (ns).
    pub start_ns: i64,
    /// End of the data, exclusive (ns).
    pub end_ns: i64,
    /// Profiles written.
    pub profiles: u64,
    /// Exact CPU total (ns) of every hour from `start_ns`.
    pub hour_totals: Vec<i64>,
    /// Query windows.
    pub windows: Vec<Window>,
    /// What was written, for the record.
    pub written: Written,
}

/// One query window: `[start_ms, end_ms]` (inclusive, as the query API).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    /// Name (`365d`, `30d`, `24h`, ...).
    pub name: String,
    /// Start (ms).
    pub start_ms: i64,
    /// End, inclusive (ms).
    pub end_ms: i64,
    /// Exact CPU total of the profiles in the window (ns).
    pub expected_total: i64,
}

/// Counts of what was written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Written {
    /// Raw hour blocks (level 2).
    pub hour_blocks: u64,
    /// Raw day blocks (level 3).
    pub day_blocks: u64,
    /// Roll-up blocks (level 3).
    pub tier_blocks: u64,
    /// Bytes of all objects.
    pub bytes: u64,
    /// Raw sample rows generated (both sample types).
    pub sample_rows: u64,
    /// Seconds spent generating and writing.
    pub seconds: f64,
}

/// Runs `kiln bench year`.
pub async fn run(args: YearArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        YearCommand::Generate(a) => generate(a).await,
        YearCommand::Query(a) => query(a).await,
    }
}

/// How one day is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayKind {
    /// Raw profiles in hour blocks.
    Hours,
    /// A raw day block and its roll-ups.
    RawAndTiers,
    /// Roll-ups only.
    Tiers,
}

/// The generated service: the model, its labels and the symbols of a block
/// holding every stack of the pool.
struct Dataset {
    model: ServiceModel,
    labels: Labels,
    tenant: String,
    seed: u64,
    interval: i64,
    mean_hits: f64,
    node_cap: usize,
    /// Series rows and symbols of a real block of the service (cpu series
    /// first, as the writer orders them).
    template: LoadedBlock,
    /// Stack node in `template`'s symbols of each stack of the pool.
    node_of_stack: Vec<u32>,
}

impl Dataset {
    async fn new(args: &GenerateArgs) -> anyhow::Result<Self> {
        if args.interval.as_nanos() == 0 || DAY % args.interval.as_nanos() as i64 != 0 {
            bail!("--interval must divide a day");
        }
        let model = ServiceModel::sampled(args.seed, 1, args.depth.max(2), args.pool.max(1), 1);
        let mut labels = Labels::default();
        labels.set("__name__", "process_cpu");
        labels.set("service_name", model.name());
        labels.set("region", "eu-west-1");
        // A block with every stack of the pool, stack i with value i + 1.
        let counts: Vec<(usize, i64)> = (0..model.pool_size()).map(|i| (i, i as i64 + 1)).collect();
        let profile = model.profile_of_counts(&counts, 0, 0);
        let mut b = BlockBuilder::new(&args.tenant, 0, 0);
        b.add_pprof(&labels, None, &profile)?;
        let template = load_encoded(b).await?;
        let samples_series = template
            .series
            .iter()
            .find(|s| s.profile_type.starts_with("process_cpu:samples:"))
            .map(|s| s.series_id)
            .context("the template block has no samples series")?;
        let mut node_of_stack = vec![0u32; model.pool_size()];
        for s in template
            .samples
            .iter()
            .filter(|s| s.series == samples_series)
        {
            node_of_stack[(s.value - 1) as usize] = s.stack;
        }
        Ok(Dataset {
            model,
            labels,
            tenant: args.tenant.clone(),
            seed: args.seed,
            interval: args.interval.as_nanos() as i64,
            mean_hits: args.hits.max(1) as f64,
            node_cap: args.node_cap,
            template,
            node_of_stack,
        })
    }

    fn per_day(&self) -> usize {
        (DAY / self.interval) as usize
    }

    /// Stack counts of profile `i` of the day starting at `day`: a
    /// per-profile generator, and a number of hits that follows a daily
    /// cycle (busiest at 14:00 UTC) with ±25% noise.
    fn counts(&self, day: i64, i: usize) -> (i64, Vec<(usize, i64)>) {
        let t = day + i as i64 * self.interval;
        let mut rng = Rng::new(self.seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let phase = (t.rem_euclid(DAY) as f64 / DAY as f64 - 14.0 / 24.0) * std::f64::consts::TAU;
        let load = 1.0 + 0.5 * phase.cos();
        let hits = (self.mean_hits * load * (0.75 + 0.5 * rng.unit()))
            .round()
            .max(1.0) as usize;
        (t, self.model.sampled_stack_counts(&mut rng, hits))
    }

    /// A 16-byte profile id derived from the time.
    fn profile_id(&self, t: i64) -> [u8; 16] {
        let mut rng = Rng::new(self.seed ^ 0x1D ^ t as u64);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        id[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        id
    }

    /// The day's raw profiles through the block writer, into one builder
    /// per `split` (a day or an hour).
    fn raw_builders(
        &self,
        day: i64,
        level: u32,
        split: i64,
        totals: &mut [i64],
    ) -> anyhow::Result<Vec<BlockBuilder>> {
        let mut out: Vec<BlockBuilder> = Vec::new();
        for i in 0..self.per_day() {
            let (t, counts) = self.counts(day, i);
            let part = ((t - day) / split) as usize;
            while out.len() <= part {
                out.push(BlockBuilder::new(&self.tenant, 0, level));
            }
            let profile = self.model.profile_of_counts(&counts, t, self.interval);
            out[part].add_pprof(&self.labels, Some(self.profile_id(t)), &profile)?;
            totals[((t - day) / HOUR) as usize] += hits_of(&counts) * PERIOD_NS;
        }
        Ok(out)
    }

    /// The day's raw sample rows as a loaded block, without encoding it:
    /// the rows [`BlockBuilder::add_pprof`] would store for the same
    /// profiles (one row per sample type and stack), over the template's
    /// series and symbols.
    fn day_rows(&self, day: i64, raw_id: &str, totals: &mut [i64]) -> LoadedBlock {
        let cpu = self.series_id(":cpu:");
        let samples = self.series_id(":samples:");
        let n = self.per_day();
        let mut per_profile: Vec<(i64, Vec<(usize, i64)>)> = Vec::with_capacity(n);
        for i in 0..n {
            let (t, counts) = self.counts(day, i);
            totals[((t - day) / HOUR) as usize] += hits_of(&counts) * PERIOD_NS;
            per_profile.push((t, counts));
        }
        let rows: usize = per_profile.iter().map(|(_, c)| c.len()).sum();
        let mut out = Vec::with_capacity(rows * 2);
        for (series, scale, first_row) in [(cpu, PERIOD_NS, 0u32), (samples, 1, n as u32)] {
            for (i, (t, counts)) in per_profile.iter().enumerate() {
                for &(stack, count) in counts {
                    out.push(SampleRowData {
                        partition: 0,
                        series,
                        time_ns: *t,
                        profile_idx: first_row + i as u32,
                        stack: self.node_of_stack[stack],
                        value: count * scale,
                        span: None,
                    });
                }
            }
        }
        // Ordered by (series, time) like a block's rows; the order of stacks
        // within a profile does not matter to the roll-ups.
        LoadedBlock {
            id: raw_id.to_owned(),
            series: self.template.series.clone(),
            profiles: Vec::new(),
            samples: out,
            symbols: self.template.symbols.clone(),
        }
    }

    fn series_id(&self, part: &str) -> u32 {
        self.template
            .series
            .iter()
            .find(|s| s.profile_type.contains(part))
            .map_or(0, |s| s.series_id)
    }
}

fn hits_of(counts: &[(usize, i64)]) -> i64 {
    counts.iter().map(|c| c.1).sum()
}

/// Encodes a builder and reads it back in full (through an in-memory store).
async fn load_encoded(builder: BlockBuilder) -> anyhow::Result<LoadedBlock> {
    let id = Ulid::new();
    let key = format!("tmp/{id}.block");
    let block = builder.finish(id, key.clone(), 0)?;
    load_bytes(&key, block.bytes).await
}

async fn load_bytes(key: &str, bytes: bytes::Bytes) -> anyhow::Result<LoadedBlock> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let size = bytes.len() as u64;
    store
        .put(&ObjectPath::from(key), PutPayload::from(bytes))
        .await?;
    let reader = BlockReader::open(store, key, Some(size)).await?;
    Ok(LoadedBlock::load(&reader).await?)
}

/// Encodes `builder` as a block of `level` and writes it to `store`.
async fn write_block(
    store: &Arc<dyn ObjectStore>,
    tenant: &str,
    builder: BlockBuilder,
    level: u32,
    id: Ulid,
) -> anyhow::Result<(BlockMeta, bytes::Bytes)> {
    let key = layout::block_key(tenant, level, id);
    let created = now_ns() / NS_PER_MS;
    let block = tokio::task::spawn_blocking({
        let key = key.clone();
        move || builder.finish(id, key, created)
    })
    .await??;
    store
        .put(
            &ObjectPath::from(key.as_str()),
            PutPayload::from(block.bytes.clone()),
        )
        .await
        .with_context(|| format!("cannot write {key}"))?;
    Ok((block.meta, block.bytes))
}

/// What one generated day produced.
struct DayOutput {
    metas: Vec<BlockMeta>,
    hour_totals: Vec<i64>,
    sample_rows: u64,
}

/// Generates and writes one day.
async fn generate_day(
    data: Arc<Dataset>,
    store: Arc<dyn ObjectStore>,
    day: i64,
    kind: DayKind,
) -> anyhow::Result<DayOutput> {
    let tenant = data.tenant.clone();
    let mut metas = Vec::new();
    let mut totals = vec![0i64; 24];
    let mut sample_rows = 0u64;
    match kind {
        DayKind::Hours => {
            let builders = {
                let data = Arc::clone(&data);
                let mut t = vec![0i64; 24];
                let b = tokio::task::spawn_blocking(move || {
                    data.raw_builders(day, 2, HOUR, &mut t).map(|b| (b, t))
                })
                .await??;
                totals = b.1;
                b.0
            };
            for b in builders {
                sample_rows += b.sample_rows() as u64;
                let (meta, _) = write_block(&store, &tenant, b, 2, Ulid::new()).await?;
                metas.push(meta);
            }
        }
        DayKind::RawAndTiers => {
            let mut builder = {
                let data = Arc::clone(&data);
                let mut t = vec![0i64; 24];
                let b = tokio::task::spawn_blocking(move || {
                    data.raw_builders(day, 3, DAY, &mut t).map(|b| (b, t))
                })
                .await??;
                totals = b.1;
                b.0
            };
            let b = builder.pop().context("no profiles in a day")?;
            sample_rows += b.sample_rows() as u64;
            let id = Ulid::new();
            let (meta, bytes) = write_block(&store, &tenant, b, 3, id).await?;
            let loaded = load_bytes(&meta.object_key, bytes).await?;
            metas.push(meta);
            metas.extend(write_rollups(&data, &store, day, loaded).await?);
        }
        DayKind::Tiers => {
            let (loaded, t) = {
                let data = Arc::clone(&data);
                tokio::task::spawn_blocking(move || {
                    let mut t = vec![0i64; 24];
                    let raw_id = Ulid::new().to_string();
                    (data.day_rows(day, &raw_id, &mut t), t)
                })
                .await?
            };
            totals = t;
            sample_rows += loaded.samples.len() as u64;
            metas.extend(write_rollups(&data, &store, day, loaded).await?);
        }
    }
    Ok(DayOutput {
        metas,
        hour_totals: totals,
        sample_rows,
    })
}

/// The day's roll-ups, built by the compactor's day-job code, written.
async fn write_rollups(
    data: &Arc<Dataset>,
    store: &Arc<dyn ObjectStore>,
    day: i64,
    raw: LoadedBlock,
) -> anyhow::Result<Vec<BlockMeta>> {
    let (tenant, cap) = (data.tenant.clone(), data.node_cap);
    let builders = tokio::task::spawn_blocking(move || {
        kiln_compactor::day_rollups(&tenant, 0, (day, day + DAY), &raw, cap)
    })
    .await??;
    let mut metas = Vec::with_capacity(builders.len());
    for b in builders {
        metas.push(write_block(store, &data.tenant, b, 3, Ulid::new()).await?.0);
    }
    Ok(metas)
}

/// Start of the UTC day of `t` (ns).
fn day_floor(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

async fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    if args.days == 0 {
        bail!("--days must be at least 1");
    }
    let started = Instant::now();
    let end = match &args.end {
        Some(e) => day_floor(parse_time(e, now_ns())?),
        None => day_floor(now_ns()),
    };
    let start = end - i64::from(args.days) * DAY;
    let store = args.storage.open(None)?;
    let metastore = MetastoreClient::new(
        std::slice::from_ref(&args.metastore),
        Duration::from_secs(30),
        &args.secret.secret()?,
    )
    .context("invalid --metastore")?;
    let data = Arc::new(Dataset::new(&args).await?);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let days = args.days as usize;
    let raw_days = args.raw_days as usize;
    let kind_of = move |d: usize| {
        if d + 1 == days {
            DayKind::Hours
        } else if d + 1 + raw_days >= days {
            DayKind::RawAndTiers
        } else {
            DayKind::Tiers
        }
    };
    let _ = writeln!(
        std::io::stderr(),
        "generating {} days of {} ({} stacks, ~{} hits per profile, one profile every {:?}) from {} to {} with {} threads",
        days,
        data.model.name(),
        data.model.pool_size(),
        args.hits,
        args.interval,
        crate::tools::format_time(start),
        crate::tools::format_time(end),
        threads
    );
    // Days are generated `threads` at a time, newest first (so that a
    // partial run still has the recent data).
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..threads {
        let (data, store, next) = (Arc::clone(&data), Arc::clone(&store), Arc::clone(&next));
        workers.spawn(async move {
            let mut out: Vec<(usize, DayOutput)> = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= days {
                    return Ok::<_, anyhow::Error>(out);
                }
                let d = days - 1 - k;
                let day = start + d as i64 * DAY;
                let t0 = Instant::now();
                let o =
                    generate_day(Arc::clone(&data), Arc::clone(&store), day, kind_of(d)).await?;
                let _ = writeln!(
                    std::io::stderr(),
                    "day {:>3}/{days} {} {:?}: {} blocks, {} rows, {:.1}s",
                    k + 1,
                    &crate::tools::format_time(day)[..10],
                    kind_of(d),
                    o.metas.len(),
                    o.sample_rows,
                    t0.elapsed().as_secs_f64()
                );
                out.push((d, o));
            }
        });
    }
    let mut hour_totals = vec![0i64; days * 24];
    let mut metas = Vec::new();
    let mut written = Written::default();
    while let Some(r) = workers.join_next().await {
        for (d, o) in r.context("a generator panicked")?? {
            hour_totals[d * 24..(d + 1) * 24].copy_from_slice(&o.hour_totals);
            written.sample_rows += o.sample_rows;
            for m in &o.metas {
                written.bytes += m.size;
                match (m.resolution, m.level) {
                    (0, 2) => written.hour_blocks += 1,
                    (0, _) => written.day_blocks += 1,
                    _ => written.tier_blocks += 1,
                }
            }
            metas.extend(o.metas);
        }
    }
    metas.sort_by_key(|m| (m.min_time, m.resolution));
    for m in metas {
        metastore
            .add_block(m)
            .await
            .context("registering a block failed")?;
    }
    written.seconds = started.elapsed().as_secs_f64();
    let _ = writeln!(
        std::io::stderr(),
        "wrote and registered {} hour blocks, {} day blocks, {} roll-up blocks ({}) in {:.1}s",
        written.hour_blocks,
        written.day_blocks,
        written.tier_blocks,
        format_bytes(written.bytes as f64),
        written.seconds
    );

    let per_day = data.per_day() as u64;
    let window = |name: &str, days_back: usize| -> Window {
        let hours = &hour_totals[(days - days_back) * 24..];
        Window {
            name: name.to_owned(),
            start_ms: (end - days_back as i64 * DAY) / NS_PER_MS,
            end_ms: end / NS_PER_MS - 1,
            expected_total: hours.iter().sum(),
        }
    };
    let mut windows = vec![window(&format!("{days}d"), days)];
    for (name, d) in [("30d", 30), ("7d", 7), ("24h", 1)] {
        if d < days {
            windows.push(window(name, d));
        }
    }
    windows.push(Window {
        name: "1h".to_owned(),
        start_ms: (end - HOUR) / NS_PER_MS,
        end_ms: end / NS_PER_MS - 1,
        expected_total: hour_totals[days * 24 - 1],
    });
    let manifest = Manifest {
        tenant: args.tenant.clone(),
        service: data.model.name().to_owned(),
        selector: format!("{CPU_TYPE}{{service_name=\"{}\"}}", data.model.name()),
        start_ns: start,
        end_ns: end,
        profiles: per_day * days as u64,
        hour_totals,
        windows,
        written,
    };
    std::fs::write(&args.manifest, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", args.manifest.display()))?;

    if !args.settle.is_zero() {
        wait_for_compaction(&metastore, &args).await?;
    }
    let _ = writeln!(
        std::io::stderr(),
        "done in {:.1}s; manifest {}",
        started.elapsed().as_secs_f64(),
        args.manifest.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Waits until the block index of the tenant has not changed for
/// `--settle`, printing what it holds.
async fn wait_for_compaction(
    metastore: &MetastoreClient,
    args: &GenerateArgs,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last: Option<(Vec<String>, Instant)> = None;
    loop {
        let blocks = metastore
            .query_blocks(QueryBlocksRequest {
                tenants: vec![args.tenant.clone()],
                start: 0,
                end: i64::MAX,
                service_names: vec![],
            })
            .await?
            .blocks;
        let mut ids: Vec<String> = blocks.iter().map(|b| b.id.clone()).collect();
        ids.sort();
        match &last {
            Some((prev, since)) if *prev == ids => {
                if since.elapsed() >= args.settle {
                    let _ = writeln!(
                        std::io::stderr(),
                        "block index settled after {:.1}s: {}",
                        started.elapsed().as_secs_f64(),
                        describe(&blocks)
                    );
                    return Ok(());
                }
            }
            _ => last = Some((ids, Instant::now())),
        }
        if started.elapsed() > args.settle_timeout {
            bail!(
                "the block index was still changing after {:?}: {}",
                args.settle_timeout,
                describe(&blocks)
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `N blocks: L2 raw ×24, L3 1m ×365, ...`.
fn describe(blocks: &[BlockMeta]) -> String {
    let mut by: std::collections::BTreeMap<(u32, i64), usize> = Default::default();
    for b in blocks {
        *by.entry((b.level, b.resolution)).or_default() += 1;
    }
    let parts: Vec<String> = by
        .iter()
        .map(|((level, res), n)| {
            let tier = match *res {
                0 => "raw".to_owned(),
                r if r == DAY => "1d".to_owned(),
                r if r == HOUR => "1h".to_owned(),
                r => format!("{}m", r / (60 * SECOND)),
            };
            format!("L{level} {tier} ×{n}")
        })
        .collect();
    format!("{} blocks: {}", blocks.len(), parts.join(", "))
}

/// Peak and current RSS of a process (kB), from `/proc/<pid>/status`.
fn rss_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// One window's results.
#[derive(Debug)]
struct WindowResult {
    window: Window,
    first_ms: f64,
    rest: Percentiles,
    errors: u64,
    wrong_totals: u64,
    total: i64,
    nodes: usize,
    rss_before_kb: Option<u64>,
    peak_rss_kb: Option<u64>,
    first_error: Option<String>,
}

async fn query(args: YearQueryArgs) -> anyhow::Result<ExitCode> {
    if !args.allow_remote {
        require_loopback(&args.server.url)?;
    }
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(&args.manifest)
            .with_context(|| format!("cannot read {}", args.manifest.display()))?,
    )
    .context("invalid manifest")?;
    let mut server = args.server.clone();
    if server.tenant.is_none() && manifest.tenant != "anonymous" {
        server.tenant = Some(manifest.tenant.clone());
    }
    let client = KilnClient::new(&server, Duration::from_secs(600))?;
    let wanted: Option<Vec<&str>> = args
        .windows
        .as_deref()
        .map(|w| w.split(',').map(str::trim).collect());
    let mut results = Vec::new();
    for w in &manifest.windows {
        if wanted
            .as_ref()
            .is_some_and(|names| !names.contains(&w.name.as_str()))
        {
            continue;
        }
        let rss_before = args.pid.and_then(|pid| {
            // Resets the peak RSS (VmHWM) to the current RSS.
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
            rss_kb(pid).map(|r| r.1)
        });
        let mut latencies = Vec::new();
        let mut first_ms = 0.0;
        let (mut errors, mut wrong, mut total, mut nodes) = (0u64, 0u64, 0i64, 0usize);
        let mut first_error = None;
        for i in 0..args.iterations.max(1) {
            let t0 = Instant::now();
            match select_merge_stacktraces(
                &client,
                &manifest.selector,
                (w.start_ms, w.end_ms),
                args.max_nodes,
            )
            .await
            {
                Ok(fg) => {
                    let elapsed = t0.elapsed();
                    if i == 0 {
                        first_ms = elapsed.as_secs_f64() * 1e3;
                    } else {
                        latencies.push(elapsed);
                    }
                    total = fg.total;
                    nodes = fg.levels.iter().map(|l| l.values.len() / 4).sum();
                    if fg.total != w.expected_total {
                        wrong += 1;
                    }
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        results.push(WindowResult {
            window: w.clone(),
            first_ms,
            rest: Percentiles::of(&mut latencies),
            errors,
            wrong_totals: wrong,
            total,
            nodes,
            rss_before_kb: rss_before,
            peak_rss_kb: args.pid.and_then(rss_kb).map(|r| r.0),
            first_error,
        });
    }
    let failed = results.iter().any(|r| r.errors > 0 || r.wrong_totals > 0);
    let mut out = std::io::stdout().lock();
    if args.json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "window": r.window.name,
                    "start_ms": r.window.start_ms,
                    "end_ms": r.window.end_ms,
                    "expected_total": r.window.expected_total,
                    "total": r.total,
                    "exact": r.wrong_totals == 0 && r.errors == 0,
                    "errors": r.errors,
                    "wrong_totals": r.wrong_totals,
                    "first_error": r.first_error,
                    "nodes": r.nodes,
                    "first_ms": r.first_ms,
                    "latency_ms": { "p50": r.rest.p50, "p90": r.rest.p90, "p99": r.rest.p99, "max": r.rest.max, "mean": r.rest.mean },
                    "rss_before_kib": r.rss_before_kb,
                    "peak_rss_kib": r.peak_rss_kb,
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "selector": manifest.selector,
                "profiles": manifest.profiles,
                "iterations": args.iterations,
                "max_nodes": args.max_nodes,
                "windows": v,
            })
        )?;
    } else {
        writeln!(
            out,
            "kiln bench year query: {} ({} profiles), {} queries per window, max_nodes {}",
            manifest.selector, manifest.profiles, args.iterations, args.max_nodes
        )?;
        writeln!(
            out,
            "{:<6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10} {:>10}  TOTAL",
            "WINDOW", "FIRST ms", "P50 ms", "P90 ms", "MAX ms", "NODES", "RSS0 MiB", "PEAK MiB"
        )?;
        let mib =
            |kb: Option<u64>| kb.map_or("-".to_owned(), |k| format!("{:.0}", k as f64 / 1024.0));
        for r in &results {
            let exact = if r.errors > 0 {
                format!("{} ERRORS", r.errors)
            } else if r.wrong_totals > 0 {
                format!(
                    "WRONG ({} of {} answers; expected {})",
                    r.wrong_totals, args.iterations, r.window.expected_total
                )
            } else {
                "exact".to_owned()
            };
            writeln!(
                out,
                "{:<6} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>10} {:>10}  {} {exact}",
                r.window.name,
                r.first_ms,
                r.rest.p50,
                r.rest.p90,
                r.rest.max,
                r.nodes,
                mib(r.rss_before_kb),
                mib(r.peak_rss_kb),
                r.total
            )?;
            if let Some(e) = &r.first_error {
                writeln!(out, "error  {e}")?;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kiln_storage::compact::tree_of;

    use super::*;

    fn args(pool: usize, hits: usize) -> GenerateArgs {
        GenerateArgs {
            metastore: String::new(),
            secret: crate::tools::ClusterSecretArgs {
                cluster_secret: String::new(),
            },
            storage: StorageArgs {
                data_dir: None,
                storage_backend: None,
            },
            tenant: "anonymous".into(),
            days: 2,
            raw_days: 0,
            interval: Duration::from_secs(600),
            pool,
            hits,
            depth: 12,
            seed: 5,
            end: None,
            node_cap: 64,
            threads: Some(1),
            manifest: PathBuf::new(),
            settle: Duration::ZERO,
            settle_timeout: Duration::ZERO,
        }
    }

    /// Every bucket of a roll-up block: (series profile type, time) → folded stacks.
    fn buckets(block: &LoadedBlock) -> BTreeMap<(String, i64), Vec<(String, i64)>> {
        let mut out = BTreeMap::new();
        for (i, p) in block.profiles.iter().enumerate() {
            let ty = block
                .series
                .iter()
                .find(|s| s.series_id == p.series)
                .unwrap()
                .profile_type
                .clone();
            let tree = tree_of(block, |s| s.profile_idx == i as u32);
            let mut stacks = Vec::new();
            tree.for_each_stack(|s, v| stacks.push((s.join(";"), v)));
            assert_eq!(tree.total(), p.total);
            out.insert((ty, p.time_ns), stacks);
        }
        out
    }

    async fn rollups(raw: &LoadedBlock, day: i64, cap: usize) -> Vec<LoadedBlock> {
        let mut out = Vec::new();
        for b in kiln_compactor::day_rollups("anonymous", 0, (day, day + DAY), raw, cap).unwrap() {
            out.push(load_encoded(b).await.unwrap());
        }
        out
    }

    /// The roll-ups of a day computed from the in-memory rows equal those
    /// of the encoded raw day block written profile by profile (with a cap
    /// small enough that `other` nodes appear).
    #[tokio::test]
    async fn rollups_from_rows_equal_rollups_from_the_raw_block() {
        let a = args(300, 150);
        let data = Dataset::new(&a).await.unwrap();
        let day = 20_000 * DAY;
        let mut t1 = vec![0i64; 24];
        let mut raw = data.raw_builders(day, 3, DAY, &mut t1).unwrap();
        let raw = load_encoded(raw.pop().unwrap()).await.unwrap();
        let mut t2 = vec![0i64; 24];
        let rows = data.day_rows(day, &raw.id, &mut t2);
        assert_eq!(t1, t2);
        assert!(t1.iter().all(|t| *t > 0));
        // Same rows, up to stack ids.
        let folded = |b: &LoadedBlock| {
            let mut v = Vec::new();
            tree_of(b, |_| true).for_each_stack(|s, v2| v.push((s.join(";"), v2)));
            v
        };
        assert_eq!(folded(&raw), folded(&rows));
        assert_eq!(raw.samples.len(), rows.samples.len());
        let from_raw = rollups(&raw, day, a.node_cap).await;
        let from_rows = rollups(&rows, day, a.node_cap).await;
        assert_eq!(from_raw.len(), 3);
        let mut others = 0;
        for (x, y) in from_raw.iter().zip(&from_rows) {
            let (bx, by) = (buckets(x), buckets(y));
            assert_eq!(bx, by);
            others += bx
                .values()
                .flatten()
                .filter(|(s, _)| s.ends_with("other"))
                .count();
        }
        assert!(others > 0, "the cap should have folded some subtrees");
        // Exact totals per hour (the day tier holds the whole day).
        let cpu_day: i64 = buckets(&from_rows[2])
            .iter()
            .filter(|((ty, _), _)| ty == CPU_TYPE)
            .flat_map(|(_, s)| s.iter().map(|x| x.1))
            .sum();
        assert_eq!(cpu_day, t1.iter().sum::<i64>());
    }
}
