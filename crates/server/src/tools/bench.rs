//! `kiln bench ingest|query`: a load generator and a query-latency probe
//! for a Kiln on this machine.
//!
//! `ingest` pushes generated CPU profiles
//! ([`kiln_formats::testgen`]: seeded, Zipf-like stack weights,
//! language-flavoured function names, realistic depths) from `--concurrency`
//! workers, at most `--rate` profiles/s (0 = as fast as acknowledged), for
//! at most `--duration` and `--count` profiles, through `push.v1`
//! (`--api push`, Connect protobuf) or `/ingest` (`--api ingest`, a
//! multipart form like pyroscope-go). Profiles are generated and gzipped
//! once; each send only appends its own `time_nanos` (a later protobuf field
//! wins, and the gzip stream gets a second member), so the client's CPU
//! cost stays small next to the server's. It reports throughput (profiles/s
//! and MB/s of uncompressed pprof), acknowledgement latency percentiles and
//! errors.
//!
//! `query` runs `SelectMergeStacktraces` over each `--ranges` window ending
//! now, `--iterations` times each, and reports latency percentiles.
//!
//! Both refuse non-loopback URLs unless `--allow-remote` is given.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use kiln_formats::testgen::{ProfileShape, Rng, ServiceModel};
use kiln_proto::push::v1::{PushRequest, RawProfileSeries, RawSample};
use kiln_proto::types::v1::LabelPair;
use prost::Message;
use serde_json::json;

use crate::tools::connect::{KilnClient, multipart_body};
use crate::tools::query::select_merge_stacktraces;
use crate::tools::{ServerArgs, now_ns, require_loopback};

/// Arguments of `kiln bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// `kiln bench` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Pushes generated profiles and reports throughput and ack latency.
    Ingest(IngestBenchArgs),
    /// Measures merge-query latency over time ranges.
    Query(QueryBenchArgs),
    /// The one-year benchmark: generates a compacted year of one service,
    /// then measures flame-graph queries over it (see `kiln bench year
    /// generate --help`).
    Year(crate::tools::year::YearArgs),
}

/// The write API used by `kiln bench ingest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IngestApi {
    /// `push.v1.PusherService/Push` (Connect, protobuf).
    Push,
    /// `/ingest` with a multipart pprof form.
    Ingest,
}

/// Arguments of `kiln bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestBenchArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Services (distinct `service_name`s, each with its own functions).
    #[arg(long, default_value_t = 4)]
    pub services: usize,
    /// Series per service (distinct `pod` labels).
    #[arg(long, default_value_t = 8)]
    pub series: usize,
    /// Distinct stacks (samples) per profile.
    #[arg(long, default_value_t = 500)]
    pub stacks: usize,
    /// Typical stack depth.
    #[arg(long, default_value_t = 24)]
    pub depth: usize,
    /// Target uncompressed size of one profile (e.g. 64KiB); overrides
    /// --stacks.
    #[arg(long = "profile-bytes")]
    pub profile_bytes: Option<bytesize::ByteSize>,
    /// Distinct generated profiles per service.
    #[arg(long, default_value_t = 4)]
    pub variants: usize,
    /// Profiles per second over all workers (0 = as fast as acknowledged).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Longest run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Most profiles sent.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Write API.
    #[arg(long, value_enum, default_value = "push")]
    pub api: IngestApi,
    /// Send profiles uncompressed instead of gzipped.
    #[arg(long = "no-gzip")]
    pub no_gzip: bool,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Allow a non-loopback --url.
    #[arg(long = "allow-remote")]
    pub allow_remote: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `kiln bench query`.
#[derive(Debug, clap::Args)]
pub struct QueryBenchArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// `<profile type>{matchers}`.
    #[arg(long)]
    pub selector: String,
    /// Comma list of windows ending now.
    #[arg(long, default_value = "1h,24h")]
    pub ranges: String,
    /// Queries per range.
    #[arg(long, default_value_t = 20)]
    pub iterations: usize,
    /// `max_nodes` of each query.
    #[arg(long = "max-nodes", default_value_t = 8192)]
    pub max_nodes: i64,
    /// Allow a non-loopback --url.
    #[arg(long = "allow-remote")]
    pub allow_remote: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `kiln bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Ingest(a) => ingest(a).await,
        BenchCommand::Query(a) => query(a).await,
        BenchCommand::Year(a) => crate::tools::year::run(a).await,
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples`.
    pub fn of(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let rank = |q: f64| {
            let i = (q * samples.len() as f64).ceil() as usize;
            ms(samples[i.clamp(1, samples.len()) - 1])
        };
        let sum: f64 = samples.iter().map(|d| ms(*d)).sum();
        Percentiles {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: ms(samples[samples.len() - 1]),
            mean: sum / samples.len() as f64,
        }
    }

    fn to_json(self) -> serde_json::Value {
        json!({ "p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max, "mean": self.mean })
    }
}

/// One generated profile, ready to send many times.
#[derive(Debug)]
struct Prepared {
    /// Uncompressed pprof without `time_nanos`.
    raw: Bytes,
    /// `raw` gzipped, if profiles are sent gzipped.
    gzipped: Option<Bytes>,
}

/// The protobuf bytes of field 9 (`time_nanos`, varint) = `ns`.
fn time_field(ns: i64) -> Vec<u8> {
    let mut out = vec![0x48];
    let mut v = ns as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn gzip_fast(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data)?;
    enc.finish()
}

/// The profile bytes of one send: the prepared profile with `time_nanos`
/// appended. Returns (bytes to send, uncompressed size).
fn stamped(p: &Prepared, ns: i64) -> anyhow::Result<(Vec<u8>, usize)> {
    let field = time_field(ns);
    let uncompressed = p.raw.len() + field.len();
    let mut out;
    match &p.gzipped {
        Some(gz) => {
            let member = gzip_fast(&field)?;
            out = Vec::with_capacity(gz.len() + member.len());
            out.extend_from_slice(gz);
            out.extend_from_slice(&member);
        }
        None => {
            out = Vec::with_capacity(uncompressed);
            out.extend_from_slice(&p.raw);
            out.extend_from_slice(&field);
        }
    }
    Ok((out, uncompressed))
}

/// What the workers of one run collect.
#[derive(Debug, Default)]
struct WorkerTally {
    latencies: Vec<Duration>,
    ok: u64,
    errors: u64,
    uncompressed_bytes: u64,
    profile_bytes: u64,
    wire_bytes: u64,
    first_errors: Vec<String>,
}

async fn ingest(args: IngestBenchArgs) -> anyhow::Result<ExitCode> {
    if !args.allow_remote {
        require_loopback(&args.server.url)?;
    }
    if args.services == 0 || args.series == 0 || args.variants == 0 {
        bail!("--services, --series and --variants must be at least 1");
    }
    let mut shape = ProfileShape {
        stacks: args.stacks.max(1),
        depth: args.depth.max(2),
    };
    if let Some(target) = args.profile_bytes {
        let probe = ServiceModel::new(args.seed, 0, shape);
        let size = probe
            .profile(&mut Rng::new(args.seed), 0, 0)
            .encoded_len()
            .max(1);
        let stacks = (shape.stacks as f64 * target.as_u64() as f64 / size as f64).round() as usize;
        // The default per-profile sample limit is 16,000.
        shape.stacks = stacks.clamp(1, 15_000);
    }
    let gen_started = Instant::now();
    let models: Vec<ServiceModel> = (0..args.services)
        .map(|i| ServiceModel::new(args.seed, i, shape))
        .collect();
    let mut rng = Rng::new(args.seed ^ 0xB0B);
    let mut pool: Vec<Vec<Prepared>> = Vec::with_capacity(models.len());
    for m in &models {
        let mut variants = Vec::with_capacity(args.variants);
        for _ in 0..args.variants {
            let raw = m.profile(&mut rng, 0, 10_000_000_000).encode_to_vec();
            let gzipped = if args.no_gzip {
                None
            } else {
                Some(Bytes::from(gzip_fast(&raw)?))
            };
            variants.push(Prepared {
                raw: Bytes::from(raw),
                gzipped,
            });
        }
        pool.push(variants);
    }
    let pool = Arc::new(pool);
    let mean_profile_bytes =
        pool.iter().flatten().map(|p| p.raw.len()).sum::<usize>() / (args.services * args.variants);
    let _ = writeln!(
        std::io::stderr(),
        "generated {} profiles ({} stacks, ~{} bytes each) in {:.2}s; sending for up to {:?} with {} workers via {:?}",
        args.services * args.variants,
        shape.stacks,
        mean_profile_bytes,
        gen_started.elapsed().as_secs_f64(),
        args.duration,
        args.concurrency,
        args.api
    );

    let client = KilnClient::new(&args.server, Duration::from_secs(60))?;
    let names: Arc<Vec<String>> = Arc::new(models.iter().map(|m| m.name().to_owned()).collect());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let client = client.clone();
        let pool = Arc::clone(&pool);
        let names = Arc::clone(&names);
        let next = Arc::clone(&next);
        let (rate, count, api, series) = (args.rate, args.count, args.api, args.series);
        workers.spawn(async move {
            let mut tally = WorkerTally::default();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= count {
                    break;
                }
                if rate > 0.0 {
                    let due = started + Duration::from_secs_f64(k as f64 / rate);
                    if due >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
                if Instant::now() >= deadline {
                    break;
                }
                let services = pool.len() as u64;
                let service = (k % services) as usize;
                let pod = ((k / services) % series as u64) as usize;
                let variant =
                    ((k / (services * series as u64)) % pool[service].len() as u64) as usize;
                let t0 = Instant::now();
                let result = send_one(
                    &client,
                    api,
                    &names[service],
                    pod,
                    &pool[service][variant],
                    now_ns(),
                )
                .await;
                let elapsed = t0.elapsed();
                match result {
                    Ok((uncompressed, sent, wire)) => {
                        tally.ok += 1;
                        tally.uncompressed_bytes += uncompressed as u64;
                        tally.profile_bytes += sent as u64;
                        tally.wire_bytes += wire as u64;
                        tally.latencies.push(elapsed);
                    }
                    Err(e) => {
                        tally.errors += 1;
                        if tally.first_errors.len() < 3 {
                            tally.first_errors.push(format!("{e:#}"));
                        }
                    }
                }
            }
            tally
        });
    }
    let mut all = WorkerTally::default();
    while let Some(t) = workers.join_next().await {
        let t = t.context("a worker panicked")?;
        all.latencies.extend(t.latencies);
        all.ok += t.ok;
        all.errors += t.errors;
        all.uncompressed_bytes += t.uncompressed_bytes;
        all.profile_bytes += t.profile_bytes;
        all.wire_bytes += t.wire_bytes;
        for e in t.first_errors {
            if all.first_errors.len() < 5 && !all.first_errors.contains(&e) {
                all.first_errors.push(e);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let lat = Percentiles::of(&mut all.latencies);
    let profiles_per_s = all.ok as f64 / elapsed;
    let mb_per_s = all.uncompressed_bytes as f64 / 1e6 / elapsed;
    let wire_mb_per_s = all.wire_bytes as f64 / 1e6 / elapsed;
    let mut out = std::io::stdout().lock();
    if args.json {
        let v = json!({
            "api": format!("{:?}", args.api).to_lowercase(),
            "concurrency": args.concurrency,
            "rate": args.rate,
            "duration_s": elapsed,
            "services": args.services,
            "series": args.series,
            "stacks": shape.stacks,
            "depth": shape.depth,
            "mean_profile_bytes": mean_profile_bytes,
            "profiles_sent": all.ok + all.errors,
            "profiles_ok": all.ok,
            "errors": all.errors,
            "first_errors": all.first_errors,
            "uncompressed_bytes": all.uncompressed_bytes,
            "profile_bytes_sent": all.profile_bytes,
            "gzip": !args.no_gzip,
            "wire_bytes": all.wire_bytes,
            "profiles_per_s": profiles_per_s,
            "mb_per_s": mb_per_s,
            "wire_mb_per_s": wire_mb_per_s,
            "latency_ms": lat.to_json(),
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "kiln bench ingest: {:.2}s, {} workers, api {:?}, {} services x {} series, {} stacks/profile (~{} bytes)",
            elapsed,
            args.concurrency,
            args.api,
            args.services,
            args.series,
            shape.stacks,
            mean_profile_bytes
        )?;
        writeln!(
            out,
            "profiles    {} sent, {} ok, {} errors",
            all.ok + all.errors,
            all.ok,
            all.errors
        )?;
        writeln!(
            out,
            "throughput  {profiles_per_s:.1} profiles/s, {mb_per_s:.2} MB/s uncompressed pprof ({wire_mb_per_s:.2} MB/s on the wire)"
        )?;
        writeln!(
            out,
            "ack latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.p50, lat.p90, lat.p99, lat.max
        )?;
        for e in &all.first_errors {
            writeln!(out, "error       {e}")?;
        }
    }
    Ok(if all.errors > 0 || all.ok == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Sends one profile; returns (uncompressed pprof bytes, pprof bytes as
/// sent (gzipped unless --no-gzip), request body bytes).
async fn send_one(
    client: &KilnClient,
    api: IngestApi,
    service: &str,
    pod: usize,
    profile: &Prepared,
    now: i64,
) -> anyhow::Result<(usize, usize, usize)> {
    let (bytes, uncompressed) = stamped(profile, now)?;
    let sent = bytes.len();
    let pod = format!("{service}-{pod:03}");
    match api {
        IngestApi::Push => {
            let label = |n: &str, v: &str| LabelPair {
                name: n.to_owned(),
                value: v.to_owned(),
            };
            let req = PushRequest {
                series: vec![RawProfileSeries {
                    labels: vec![
                        label("__name__", "process_cpu"),
                        label("service_name", service),
                        label("pod", &pod),
                        label("region", "local"),
                    ],
                    samples: vec![RawSample {
                        raw_profile: bytes,
                        id: String::new(),
                    }],
                    annotations: vec![],
                }],
            };
            let body = Bytes::from(req.encode_to_vec());
            let wire = body.len();
            client
                .post_raw(
                    "/push.v1.PusherService/Push",
                    &[],
                    "application/proto",
                    body,
                )
                .await?;
            Ok((uncompressed, sent, wire))
        }
        IngestApi::Ingest => {
            let (content_type, body) = multipart_body(&[("profile", "profile.pprof", &bytes)]);
            let wire = body.len();
            let secs = (now / 1_000_000_000).to_string();
            let query = [
                ("name", format!("{service}{{pod={pod},region=local}}")),
                ("from", secs.clone()),
                ("until", secs),
                ("spyName", "gospy".to_owned()),
            ];
            client
                .post_raw("/ingest", &query, &content_type, Bytes::from(body))
                .await?;
            Ok((uncompressed, sent, wire))
        }
    }
}

/// Parses `1h,24h` into durations.
fn parse_ranges(ranges: &str) -> anyhow::Result<Vec<(String, Duration)>> {
    let mut out = Vec::new();
    for r in ranges.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let d = humantime::parse_duration(r).with_context(|| format!("invalid range {r:?}"))?;
        out.push((r.to_owned(), d));
    }
    if out.is_empty() {
        bail!("--ranges is empty");
    }
    Ok(out)
}

async fn query(args: QueryBenchArgs) -> anyhow::Result<ExitCode> {
    if !args.allow_remote {
        require_loopback(&args.server.url)?;
    }
    crate::tools::split_selector(&args.selector)?;
    let ranges = parse_ranges(&args.ranges)?;
    let client = KilnClient::new(&args.server, Duration::from_secs(300))?;
    let mut results = Vec::new();
    let mut any_error = false;
    for (label, window) in &ranges {
        let mut latencies = Vec::with_capacity(args.iterations);
        let mut errors = 0u64;
        let mut first_error = None;
        let mut total = 0i64;
        let mut nodes = 0usize;
        for _ in 0..args.iterations.max(1) {
            let end = now_ns() / 1_000_000;
            let start = end - window.as_millis() as i64;
            let t0 = Instant::now();
            match select_merge_stacktraces(&client, &args.selector, (start, end), args.max_nodes)
                .await
            {
                Ok(fg) => {
                    latencies.push(t0.elapsed());
                    total = fg.total;
                    nodes = fg.levels.iter().map(|l| l.values.len() / 4).sum();
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        any_error |= errors > 0;
        let ok = latencies.len();
        results.push((
            label.clone(),
            ok,
            errors,
            Percentiles::of(&mut latencies),
            total,
            nodes,
            first_error,
        ));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(label, ok, errors, lat, total, nodes, err)| {
                json!({
                    "range": label,
                    "queries_ok": ok,
                    "errors": errors,
                    "first_error": err,
                    "total": total,
                    "nodes": nodes,
                    "latency_ms": lat.to_json(),
                })
            })
            .collect();
        writeln!(out, "{}", json!({ "selector": args.selector, "ranges": v }))?;
    } else {
        writeln!(
            out,
            "kiln bench query: {} ({} iterations per range)",
            args.selector, args.iterations
        )?;
        writeln!(
            out,
            "{:<8} {:>5} {:>6} {:>10} {:>10} {:>10} {:>10} {:>8}  TOTAL",
            "RANGE", "OK", "ERRORS", "P50 ms", "P90 ms", "P99 ms", "MAX ms", "NODES"
        )?;
        for (label, ok, errors, lat, total, nodes, err) in &results {
            writeln!(
                out,
                "{label:<8} {ok:>5} {errors:>6} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {nodes:>8}  {total}",
                lat.p50, lat.p90, lat.p99, lat.max
            )?;
            if let Some(e) = err {
                writeln!(out, "error    {e}")?;
            }
        }
    }
    Ok(if any_error {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_proto::google::v1::Profile;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }

    #[test]
    fn stamping_appends_time_nanos_to_raw_and_gzipped_profiles() {
        let model = ServiceModel::new(
            1,
            0,
            ProfileShape {
                stacks: 20,
                depth: 8,
            },
        );
        let p = model.profile(&mut Rng::new(1), 0, 10);
        let raw = p.encode_to_vec();
        let prepared = Prepared {
            raw: Bytes::from(raw.clone()),
            gzipped: Some(Bytes::from(gzip_fast(&raw).unwrap())),
        };
        let t = 1_777_777_777_123_456_789;
        let (gz, n) = stamped(&prepared, t).unwrap();
        let inflated = kiln_formats::compress::decompress_if_gzip(&gz, 1 << 20)
            .unwrap()
            .into_owned();
        assert_eq!(inflated.len(), n);
        let back = Profile::decode(inflated.as_slice()).unwrap();
        assert_eq!(back.time_nanos, t);
        assert_eq!(back.sample, p.sample);
        let plain = Prepared {
            raw: Bytes::from(raw),
            gzipped: None,
        };
        let (bytes, _) = stamped(&plain, t).unwrap();
        assert_eq!(Profile::decode(bytes.as_slice()).unwrap().time_nanos, t);
    }
}
