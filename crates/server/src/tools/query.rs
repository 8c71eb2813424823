//! `kiln query`: merged profiles, time series and diffs from a running Kiln
//! through `querier.v1` (Connect, protobuf bodies).
//!
//! - `kiln query SELECTOR`: `--output pprof` asks `SelectMergeProfile` (a
//!   gzipped pprof, as `go tool pprof` writes them); `folded`, `json`,
//!   `top` and `svg` are rendered from `SelectMergeStacktraces`' flame
//!   graph (see [`render`](crate::tools::render)).
//! - `kiln query series SELECTOR`: `SelectSeries`, as a table or CSV.
//! - `kiln query diff --left SELECTOR --right SELECTOR`: `Diff`, as a table
//!   of the biggest self-value changes per function, or flamebearer JSON.
//!
//! SELECTOR is `<profile type>{matchers}`, e.g.
//! `process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api"}`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use kiln_proto::google::v1::Profile;
use kiln_proto::querier::v1 as q;

use crate::tools::connect::KilnClient;
use crate::tools::render::{self, SvgOptions};
use crate::tools::{ServerArgs, format_time, now_ns, parse_time, split_selector};

const QUERIER: &str = "/querier.v1.QuerierService";

/// The time range of a query.
#[derive(Debug, Clone, clap::Args)]
pub struct RangeArgs {
    /// Start: `now-1h`, Unix time, `YYYYMMDD` or RFC 3339.
    #[arg(long, default_value = "now-1h")]
    pub from: String,
    /// End, same syntax.
    #[arg(long, default_value = "now")]
    pub until: String,
}

impl RangeArgs {
    /// The range in milliseconds since the epoch.
    fn millis(&self) -> anyhow::Result<(i64, i64)> {
        resolve_range(&self.from, &self.until)
    }
}

fn resolve_range(from: &str, until: &str) -> anyhow::Result<(i64, i64)> {
    let now = now_ns();
    let start = parse_time(from, now).context("--from")? / 1_000_000;
    let end = parse_time(until, now).context("--until")? / 1_000_000;
    if end < start {
        anyhow::bail!("the range ends before it starts ({from} .. {until})");
    }
    Ok((start, end))
}

/// Output formats of a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MergeOutput {
    /// Gzipped pprof (SelectMergeProfile).
    Pprof,
    /// Folded stacks, one `a;b;c value` line per stack.
    Folded,
    /// Flamebearer-style JSON of the flame graph.
    Json,
    /// A table of the functions with the largest self values.
    Top,
    /// An SVG flame graph.
    Svg,
}

/// Arguments of `kiln query SELECTOR`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct QueryArgs {
    #[command(subcommand)]
    pub command: Option<QueryCommand>,
    #[command(flatten)]
    pub merge: MergeArgs,
}

/// `kiln query` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum QueryCommand {
    /// Time series of a selector's totals (SelectSeries).
    Series(SeriesArgs),
    /// The difference between two selections (Diff).
    Diff(DiffArgs),
}

/// Arguments of a merge query.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "top")]
    pub output: MergeOutput,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Largest number of nodes in the merged tree (0 = no limit);
    /// smaller nodes are folded into `other`.
    #[arg(long = "max-nodes", default_value_t = 8192)]
    pub max_nodes: i64,
    /// Rows of the top table (0 = all).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// `<profile type>{matchers}`.
    #[arg(required = true)]
    pub selector: Option<String>,
}

/// Output formats of `kiln query series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeriesOutput {
    /// One block per series.
    Table,
    /// `series,timestamp,value` rows.
    Csv,
}

/// Arguments of `kiln query series`.
#[derive(Debug, clap::Args)]
pub struct SeriesArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Bucket width, e.g. 15s or 1m (default: the range / 240, at least 15s).
    #[arg(long)]
    pub step: Option<String>,
    /// Label names to group by; repeatable.
    #[arg(long = "group-by")]
    pub group_by: Vec<String>,
    /// Keep only the top N series.
    #[arg(long)]
    pub limit: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub output: SeriesOutput,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `<profile type>{matchers}`.
    pub selector: String,
}

/// Output formats of `kiln query diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffOutput {
    /// The biggest changes per function.
    Table,
    /// Flamebearer-style JSON of the diff flame graph.
    Json,
}

/// Arguments of `kiln query diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Baseline `<profile type>{matchers}`.
    #[arg(long)]
    pub left: String,
    /// Comparison `<profile type>{matchers}`.
    #[arg(long)]
    pub right: String,
    /// Start of the left range (default --from).
    #[arg(long = "left-from")]
    pub left_from: Option<String>,
    /// End of the left range (default --until).
    #[arg(long = "left-until")]
    pub left_until: Option<String>,
    /// Start of the right range (default --from).
    #[arg(long = "right-from")]
    pub right_from: Option<String>,
    /// End of the right range (default --until).
    #[arg(long = "right-until")]
    pub right_until: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub output: DiffOutput,
    /// Largest number of nodes of the diff tree (0 = no limit).
    #[arg(long = "max-nodes", default_value_t = 8192)]
    pub max_nodes: i64,
    /// Rows of the table (0 = all).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn client(server: &ServerArgs) -> anyhow::Result<KilnClient> {
    KilnClient::new(server, Duration::from_secs(300))
}

fn write_output(out: Option<&PathBuf>, data: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, data).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(data).and_then(|()| stdout.flush()) {
                // A closed pipe (`| head`) is the reader's choice, not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
    }
}

/// Runs `kiln query`.
pub async fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(QueryCommand::Series(a)) => series(a).await,
        Some(QueryCommand::Diff(a)) => diff(a).await,
        None => merge(args.merge).await,
    }
}

/// The merged flame graph of a selector over a range.
pub async fn select_merge_stacktraces(
    client: &KilnClient,
    selector: &str,
    (start, end): (i64, i64),
    max_nodes: i64,
) -> anyhow::Result<q::FlameGraph> {
    let (profile_type, labels) = split_selector(selector)?;
    let req = q::SelectMergeStacktracesRequest {
        profile_type_id: profile_type,
        label_selector: labels,
        start,
        end,
        max_nodes: Some(max_nodes),
        ..Default::default()
    };
    let resp: q::SelectMergeStacktracesResponse = client
        .call(&format!("{QUERIER}/SelectMergeStacktraces"), &req)
        .await?;
    Ok(resp.flamegraph.unwrap_or_default())
}

async fn merge(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let selector = args.selector.unwrap_or_default();
    let (profile_type, labels) = split_selector(&selector)?;
    let range = args.range.millis()?;
    let client = client(&args.server)?;
    let unit = profile_type.split(':').nth(2).unwrap_or("").to_owned();
    let data: Vec<u8> = match args.output {
        MergeOutput::Pprof => {
            let req = q::SelectMergeProfileRequest {
                profile_type_id: profile_type,
                label_selector: labels,
                start: range.0,
                end: range.1,
                max_nodes: (args.max_nodes > 0).then_some(args.max_nodes),
                ..Default::default()
            };
            let p: Profile = client
                .call(&format!("{QUERIER}/SelectMergeProfile"), &req)
                .await?;
            kiln_formats::pprof::encode_gzip(&p).context("cannot encode the profile")?
        }
        output => {
            let fg = select_merge_stacktraces(&client, &selector, range, args.max_nodes).await?;
            let levels: Vec<Vec<i64>> = fg.levels.into_iter().map(|l| l.values).collect();
            match output {
                MergeOutput::Json => {
                    let v = render::flamebearer_json(
                        &fg.names,
                        &levels,
                        fg.total,
                        fg.max_self,
                        &profile_type,
                    );
                    let mut s = serde_json::to_vec(&v)?;
                    s.push(b'\n');
                    s
                }
                _ => {
                    let tree = render::tree_from_levels(&fg.names, &levels);
                    match output {
                        MergeOutput::Folded => render::folded(&tree).into_bytes(),
                        MergeOutput::Svg => {
                            let title = format!(
                                "{selector}  {} .. {}",
                                format_time(range.0 * 1_000_000),
                                format_time(range.1 * 1_000_000)
                            );
                            render::flamegraph_svg(&tree, &title, &unit, SvgOptions::default())
                                .into_bytes()
                        }
                        _ => render::top_table(&tree, &unit, args.limit).into_bytes(),
                    }
                }
            }
        }
    };
    write_output(args.out.as_ref(), &data)?;
    Ok(ExitCode::SUCCESS)
}

/// Parses a step like `15s`, `1m` or `30` (seconds).
fn parse_step(step: &str) -> anyhow::Result<f64> {
    if let Ok(s) = step.trim().parse::<f64>() {
        return Ok(s);
    }
    humantime::parse_duration(step.trim())
        .map(|d| d.as_secs_f64())
        .map_err(|e| anyhow::anyhow!("invalid --step {step:?}: {e}"))
}

async fn series(args: SeriesArgs) -> anyhow::Result<ExitCode> {
    let (profile_type, labels) = split_selector(&args.selector)?;
    let (start, end) = args.range.millis()?;
    let step = match &args.step {
        Some(s) => parse_step(s)?,
        None => (((end - start) as f64 / 1000.0 / 240.0).ceil()).max(15.0),
    };
    if step <= 0.0 {
        anyhow::bail!("--step must be positive");
    }
    let client = client(&args.server)?;
    let req = q::SelectSeriesRequest {
        profile_type_id: profile_type,
        label_selector: labels,
        start,
        end,
        group_by: args.group_by.clone(),
        step,
        limit: args.limit,
        ..Default::default()
    };
    let resp: q::SelectSeriesResponse = client
        .call(&format!("{QUERIER}/SelectSeries"), &req)
        .await?;
    let mut out = String::new();
    use std::fmt::Write as _;
    match args.output {
        SeriesOutput::Csv => {
            out.push_str("series,timestamp,value\n");
            for s in &resp.series {
                let name = labels_string(&s.labels);
                for p in &s.points {
                    let _ = writeln!(out, "{},{},{}", csv_field(&name), p.timestamp, p.value);
                }
            }
        }
        SeriesOutput::Table => {
            for (i, s) in resp.series.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                let total: f64 = s.points.iter().map(|p| p.value).sum();
                let _ = writeln!(
                    out,
                    "{}  ({} points, sum {total})",
                    labels_string(&s.labels),
                    s.points.len()
                );
                for p in &s.points {
                    let _ = writeln!(
                        out,
                        "  {}  {:>20}",
                        format_time(p.timestamp * 1_000_000),
                        p.value
                    );
                }
            }
            if resp.series.is_empty() {
                out.push_str("no series\n");
            }
        }
    }
    write_output(args.out.as_ref(), out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn labels_string(labels: &[kiln_proto::types::v1::LabelPair]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

async fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let (lt, ls) = split_selector(&args.left).context("--left")?;
    let (rt, rs) = split_selector(&args.right).context("--right")?;
    let left_range = resolve_range(
        args.left_from.as_deref().unwrap_or(&args.range.from),
        args.left_until.as_deref().unwrap_or(&args.range.until),
    )?;
    let right_range = resolve_range(
        args.right_from.as_deref().unwrap_or(&args.range.from),
        args.right_until.as_deref().unwrap_or(&args.range.until),
    )?;
    let side = |t: String, s: String, (start, end): (i64, i64)| q::SelectMergeStacktracesRequest {
        profile_type_id: t,
        label_selector: s,
        start,
        end,
        max_nodes: Some(args.max_nodes),
        ..Default::default()
    };
    let unit = lt.split(':').nth(2).unwrap_or("").to_owned();
    let req = q::DiffRequest {
        left: Some(side(lt, ls, left_range)),
        right: Some(side(rt, rs, right_range)),
    };
    let client = client(&args.server)?;
    let resp: q::DiffResponse = client.call(&format!("{QUERIER}/Diff"), &req).await?;
    let fg = resp.flamegraph.unwrap_or_default();
    let levels: Vec<Vec<i64>> = fg.levels.into_iter().map(|l| l.values).collect();
    let data = match args.output {
        DiffOutput::Json => {
            let v = serde_json::json!({
                "version": 1,
                "flamebearer": {
                    "names": fg.names,
                    "levels": levels,
                    "numTicks": fg.total,
                    "maxSelf": fg.max_self,
                },
                "metadata": { "format": "double", "units": unit },
                "leftTicks": fg.left_ticks,
                "rightTicks": fg.right_ticks,
            });
            let mut s = serde_json::to_vec(&v)?;
            s.push(b'\n');
            s
        }
        DiffOutput::Table => {
            let rows = render::diff_rows(&fg.names, &levels);
            render::diff_table(&rows, fg.left_ticks, fg.right_ticks, &unit, args.limit).into_bytes()
        }
    };
    write_output(args.out.as_ref(), &data)?;
    Ok(ExitCode::SUCCESS)
}
