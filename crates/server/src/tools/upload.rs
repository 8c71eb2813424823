//! `kiln upload`: sends profile files to Kiln's `/ingest` API.
//!
//! Each file's format is taken from its content, with the extension as a
//! tie-breaker: JFR (`FLR\0` magic), speedscope (JSON with the speedscope
//! schema), pprof (a protobuf that decodes as a profile with sample types),
//! folded text (`frame;frame count` lines). Gzipped files are looked at
//! inflated. Requests are built as agents build them: pprof as the
//! `profile` part of a multipart form like pyroscope-go (with the
//! `sample_type_config` part when a `<name>.st.json` file sits next to it),
//! JFR as the `jfr` part of a form with `format=jfr` like the Java agent,
//! folded and speedscope as raw bodies with `format=folded|speedscope`.
//!
//! Time: by default every profile is stamped "now" (pprof `time_nanos` is
//! rewritten; other formats get `from`/`until`). `--time keep` keeps the
//! file's own time (pprof `time_nanos`; the file's modification time for
//! formats without one); `--time <RFC 3339>` stamps a fixed time.
//!
//! Files found by walking a directory that are not recognised as profiles
//! are skipped (and counted); a file named on the command line that is not
//! recognised is an error. The exit code is non-zero when any file failed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::StreamExt;
use kiln_proto::google::v1::Profile;
use prost::Message;

use crate::tools::connect::{KilnClient, multipart_body};
use crate::tools::progress::Progress;
use crate::tools::{ServerArgs, format_bytes, now_ns, parse_time};

/// Largest file read, in bytes (before and after decompression).
const MAX_FILE_BYTES: usize = 256 << 20;

/// Arguments of `kiln upload`.
#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Service name of the uploaded profiles (`service_name`).
    #[arg(long)]
    pub service: String,
    /// Extra series label `name=value`; repeatable.
    #[arg(long = "label", value_name = "NAME=VALUE")]
    pub labels: Vec<String>,
    /// Profile time: `now` (default), `keep` (the file's own time) or an
    /// RFC 3339 time.
    #[arg(long, default_value = "now")]
    pub time: String,
    /// Profile kind of text formats: cpu, wall, alloc_space,
    /// inuse_objects, ... (OG `app.<kind>` names). Default: cpu for folded
    /// files; speedscope files take it from their unit unless given.
    #[arg(long)]
    pub kind: Option<String>,
    /// Sampling rate in Hz of text and JFR formats (CPU and wall values are
    /// scaled to nanoseconds by 1e9 / rate).
    #[arg(long = "sample-rate", default_value_t = 100)]
    pub sample_rate: u32,
    /// Agent kind sent as `spyName` (e.g. dotnetspy, pyspy, gospy), which
    /// turns on the server's per-agent fix-ups.
    #[arg(long = "spy-name")]
    pub spy_name: Option<String>,
    /// Uploads in flight at once (each waits for the server's flush, about
    /// a second by default).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Files or directories (walked recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// A profile format `kiln upload` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// pprof protobuf (gzipped or not).
    Pprof,
    /// Java Flight Recorder.
    Jfr,
    /// Folded ("collapsed") stacks.
    Folded,
    /// speedscope JSON.
    Speedscope,
}

impl FileFormat {
    fn as_str(self) -> &'static str {
        match self {
            FileFormat::Pprof => "pprof",
            FileFormat::Jfr => "jfr",
            FileFormat::Folded => "folded",
            FileFormat::Speedscope => "speedscope",
        }
    }
}

/// How profiles are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeMode {
    Now(i64),
    Keep,
    Fixed(i64),
}

/// One file to upload.
#[derive(Debug)]
struct Candidate {
    path: PathBuf,
    /// Named on the command line (not found by walking a directory).
    explicit: bool,
    size: u64,
}

/// Totals of an upload run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UploadSummary {
    /// Files looked at.
    pub files: usize,
    /// Bytes read from them.
    pub bytes: u64,
    /// Profiles accepted by the server.
    pub profiles: usize,
    /// Files that failed.
    pub errors: usize,
    /// Files skipped as not being profiles.
    pub skipped: usize,
}

/// Runs `kiln upload`.
pub async fn run(args: UploadArgs) -> anyhow::Result<ExitCode> {
    let time = match args.time.as_str() {
        "now" => TimeMode::Now(now_ns()),
        "keep" => TimeMode::Keep,
        t => TimeMode::Fixed(parse_time(t, now_ns()).context("--time")?),
    };
    let labels = parse_labels(&args.labels)?;
    let client = KilnClient::new(&args.server, Duration::from_secs(120))?;
    let mut candidates = Vec::new();
    for p in &args.paths {
        collect_files(p, true, &mut candidates)?;
    }
    let total_bytes = candidates.iter().map(|c| c.size).sum();
    let mut progress = Progress::new(candidates.len(), total_bytes);
    let started = Instant::now();
    let mut summary = UploadSummary {
        files: candidates.len(),
        ..UploadSummary::default()
    };
    let args = &args;
    let labels = &labels;
    let client = &client;
    let mut results = futures::stream::iter(candidates.iter())
        .map(|c| async move {
            let outcome = upload_file(client, args, labels, time, c).await;
            (c, outcome)
        })
        .buffer_unordered(args.concurrency.max(1));
    while let Some((c, outcome)) = results.next().await {
        let name = c.path.display().to_string();
        summary.bytes += c.size;
        match outcome {
            Ok(Some(_format)) => {
                summary.profiles += 1;
                progress.item_done(&name, c.size, None);
            }
            Ok(None) => {
                summary.skipped += 1;
                progress.item_done_as(&name, c.size, None, "skip");
            }
            Err(e) => {
                summary.errors += 1;
                progress.item_done(&name, c.size, Some(&format!("{e:#}")));
            }
        }
    }
    progress.finish();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "files     {} ({} skipped)\nbytes     {} ({})\nprofiles  {}\nerrors    {}\ntime      {:.2}s",
        summary.files,
        summary.skipped,
        summary.bytes,
        format_bytes(summary.bytes as f64),
        summary.profiles,
        summary.errors,
        started.elapsed().as_secs_f64()
    )?;
    Ok(if summary.errors > 0 || summary.files == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Parses `name=value` labels, refusing characters the `name` parameter
/// cannot carry.
fn parse_labels(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for l in raw {
        let Some((k, v)) = l.split_once('=') else {
            bail!("--label {l:?} is not NAME=VALUE");
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            bail!("--label {l:?}: invalid label name {k:?}");
        }
        if v.contains([',', '{', '}', '=']) {
            bail!("--label {l:?}: the value must not contain , {{ }} or =");
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

fn collect_files(path: &Path, explicit: bool, out: &mut Vec<Candidate>) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            let hidden = e
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if !hidden {
                collect_files(&e, false, out)?;
            }
        }
    } else if meta.is_file() {
        // sample_type_config companions travel with their pprof.
        let companion = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".st.json"));
        if !companion || explicit {
            out.push(Candidate {
                path: path.to_owned(),
                explicit,
                size: meta.len(),
            });
        }
    }
    Ok(())
}

fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut data = Vec::new();
    f.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if data.len() > MAX_FILE_BYTES {
        bail!("larger than {}", format_bytes(MAX_FILE_BYTES as f64));
    }
    Ok(data)
}

/// Inflates gzip data (bounded); other data is returned as is.
fn inflate(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(
        kiln_formats::compress::decompress_if_gzip(data, MAX_FILE_BYTES)
            .context("cannot inflate")?
            .into_owned(),
    )
}

/// What a file holds: its format and, for pprof, the decoded profile.
#[derive(Debug)]
pub enum Detected {
    /// A pprof profile.
    Pprof(Box<Profile>),
    /// A non-pprof format.
    Other(FileFormat),
}

/// Detects the format of `data` (already inflated) named `name`.
pub fn detect(name: &str, data: &[u8]) -> Option<Detected> {
    let lower = name.to_ascii_lowercase();
    let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
    if data.starts_with(b"FLR\0") {
        return Some(Detected::Other(FileFormat::Jfr));
    }
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        let head = String::from_utf8_lossy(&data[..data.len().min(4096)]);
        if head.contains("speedscope") || lower.ends_with(".speedscope.json") {
            return Some(Detected::Other(FileFormat::Speedscope));
        }
        return None;
    }
    let text_ext = [".folded", ".collapsed", ".txt", ".stacks"]
        .iter()
        .any(|e| lower.ends_with(e));
    if text_ext && looks_folded(data) {
        return Some(Detected::Other(FileFormat::Folded));
    }
    if let Ok(p) = Profile::decode(data)
        && !p.sample_type.is_empty()
        && p.string_table.first().is_some_and(String::is_empty)
    {
        return Some(Detected::Pprof(Box::new(p)));
    }
    if looks_folded(data) {
        return Some(Detected::Other(FileFormat::Folded));
    }
    if lower.ends_with(".jfr") {
        return Some(Detected::Other(FileFormat::Jfr));
    }
    None
}

/// Whether the text is folded stacks: UTF-8, and every non-empty line of
/// the first hundred ends in a space and an integer.
fn looks_folded(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(100) {
        let ok = line
            .trim_end()
            .rsplit_once(' ')
            .is_some_and(|(stack, n)| !stack.is_empty() && n.parse::<i64>().is_ok());
        if !ok {
            return false;
        }
        lines += 1;
    }
    lines > 0
}

/// The `sample_type_config` next to a pprof file (`x.st.json` for
/// `x.pprof`, `x.pb.gz`, ...), if there is one.
fn sample_type_config_for(path: &Path) -> Option<Vec<u8>> {
    let mut stem = path.to_path_buf();
    for _ in 0..2 {
        if stem.extension().is_none() {
            break;
        }
        stem = stem.with_extension("");
        let candidate = stem.with_extension("st.json");
        if candidate != path
            && let Ok(data) = std::fs::read(&candidate)
        {
            return Some(data);
        }
    }
    None
}

/// `service{k=v,...}`, with `.kind` after the service for text formats.
fn app_name(service: &str, kind: Option<&str>, labels: &[(String, String)]) -> String {
    let mut name = service.to_owned();
    if let Some(k) = kind {
        name.push('.');
        name.push_str(k);
    }
    name.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            name.push(',');
        }
        name.push_str(k);
        name.push('=');
        name.push_str(v);
    }
    name.push('}');
    name
}

fn mtime_ns(path: &Path) -> Option<i64> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(m.duration_since(UNIX_EPOCH).ok()?.as_nanos() as i64)
}

/// Uploads one file. `Ok(None)`: skipped as not a profile.
async fn upload_file(
    client: &KilnClient,
    args: &UploadArgs,
    labels: &[(String, String)],
    time: TimeMode,
    candidate: &Candidate,
) -> anyhow::Result<Option<FileFormat>> {
    let path = &candidate.path;
    let raw = read_bounded(path)?;
    let data = inflate(&raw)?;
    let name = path.display().to_string();
    let Some(detected) = detect(&name, &data) else {
        if candidate.explicit {
            bail!("not a profile this tool recognises (pprof, JFR, folded, speedscope)");
        }
        return Ok(None);
    };
    // The time given to the server in from/until, ns.
    let stamp = match time {
        TimeMode::Now(t) | TimeMode::Fixed(t) => t,
        TimeMode::Keep => mtime_ns(path).unwrap_or_else(now_ns),
    };
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(spy) = &args.spy_name {
        query.push(("spyName", spy.clone()));
    }
    match detected {
        Detected::Pprof(mut profile) => {
            let ns = match time {
                TimeMode::Now(t) | TimeMode::Fixed(t) => {
                    profile.time_nanos = t;
                    t
                }
                TimeMode::Keep if profile.time_nanos > 0 => profile.time_nanos,
                TimeMode::Keep => stamp,
            };
            let body = if matches!(time, TimeMode::Keep) {
                raw
            } else {
                kiln_formats::pprof::encode_gzip(&profile).context("cannot re-encode")?
            };
            drop(data);
            query.push(("name", app_name(&args.service, None, labels)));
            query.push(("from", ns.to_string()));
            query.push(("until", ns.to_string()));
            let config = sample_type_config_for(path);
            let mut parts: Vec<(&str, &str, &[u8])> = vec![("profile", "profile.pprof", &body)];
            if let Some(c) = &config {
                parts.push(("sample_type_config", "sample_type_config.json", c));
            }
            let (content_type, body) = multipart_body(&parts);
            client.ingest(&query, &content_type, body).await?;
            Ok(Some(FileFormat::Pprof))
        }
        Detected::Other(format) => {
            let kind = match format {
                FileFormat::Folded => Some(args.kind.as_deref().unwrap_or("cpu")),
                FileFormat::Speedscope => args.kind.as_deref(),
                _ => None,
            };
            query.push(("name", app_name(&args.service, kind, labels)));
            query.push(("from", stamp.to_string()));
            query.push(("until", stamp.to_string()));
            query.push(("format", format.as_str().to_owned()));
            query.push(("sampleRate", args.sample_rate.to_string()));
            match format {
                FileFormat::Jfr => {
                    let (content_type, body) = multipart_body(&[("jfr", "jfr", &data)]);
                    client.ingest(&query, &content_type, body).await?;
                }
                FileFormat::Speedscope => {
                    client.ingest(&query, "application/json", data).await?;
                }
                _ => client.ingest(&query, "text/plain", data).await?,
            }
            Ok(Some(format))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_by_content() {
        let folded = b"main;work 10\nmain;idle 3\n";
        assert!(matches!(
            detect("x", folded),
            Some(Detected::Other(FileFormat::Folded))
        ));
        assert!(matches!(
            detect("x.jfr", b"FLR\0\x00\x02"),
            Some(Detected::Other(FileFormat::Jfr))
        ));
        let ss = br#"{"$schema": "https://www.speedscope.app/file-format-schema.json"}"#;
        assert!(matches!(
            detect("a.json", ss),
            Some(Detected::Other(FileFormat::Speedscope))
        ));
        assert!(detect("README.md", b"# Title\nsome text\n").is_none());
        assert!(detect("x.st.json", br#"{"cpu": {}}"#).is_none());
        let mut b = kiln_formats::pprof::ProfileBuilder::new();
        b.add_sample_type("cpu", "nanoseconds")
            .add_sample(&["main"], vec![5]);
        let bytes = kiln_formats::pprof::encode(&b.finish());
        assert!(matches!(detect("p", &bytes), Some(Detected::Pprof(_))));
    }

    #[test]
    fn app_names_and_labels() {
        let labels = parse_labels(&["env=dev".into(), "region = eu ".into()]).unwrap();
        assert_eq!(
            app_name("api", Some("cpu"), &labels),
            "api.cpu{env=dev,region=eu}"
        );
        assert_eq!(app_name("api", None, &[]), "api{}");
        assert!(parse_labels(&["novalue".into()]).is_err());
        assert!(parse_labels(&["a=b,c".into()]).is_err());
    }
}
