//! Command-line tools of the `kiln` binary that talk to a running Kiln
//! (or read its storage) rather than run one:
//!
//! - [`upload`]: `kiln upload` sends profile files (pprof, JFR, folded,
//!   speedscope) to `/ingest`, as agents do;
//! - [`query`]: `kiln query` merges profiles over a time range through
//!   `querier.v1` and writes pprof, folded text, flamebearer JSON, a top
//!   table or an SVG flame graph; `kiln query series` and `kiln query diff`;
//! - [`blocks`]: `kiln blocks ls|inspect` lists blocks (from the metastore
//!   or object storage) and prints a block's footer;
//! - [`bench`]: `kiln bench ingest|query`, a bounded load generator and
//!   query-latency probe for a local Kiln;
//! - [`year`]: `kiln bench year generate|query`, the one-year benchmark: a
//!   year of one service written straight into blocks and roll-ups,
//!   registered in a running Kiln, queried over a year, 30 days and 24 h.
//!
//! Each tool is `run(args) -> anyhow::Result<ExitCode>` over clap argument
//! structs defined here, so `main.rs` only declares the subcommands. Tools
//! write their results to stdout and progress and diagnostics to stderr.
//! Pure rendering (folded, top, SVG) lives in [`render`] and is unit-tested
//! without a server.

pub mod bench;
pub mod blocks;
pub mod connect;
pub mod progress;
pub mod query;
pub mod render;
pub mod upload;
pub mod year;

use std::future::Future;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

/// Where a tool finds the Kiln HTTP API and how it authenticates.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Base URL of Kiln's HTTP API, e.g. http://127.0.0.1:4040.
    #[arg(long, env = "KILN_URL", default_value = "http://127.0.0.1:4040")]
    pub url: String,
    /// Tenant, sent as `X-Scope-OrgID`.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Bearer token, sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "KILN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The cluster secret a tool's calls to a metastore carry (see
/// `cluster.secret`).
#[derive(Clone, clap::Args)]
pub struct ClusterSecretArgs {
    /// The cluster's shared secret, when its internal gRPC services
    /// require one (prefer the environment variable: a flag's value shows
    /// in the process list).
    #[arg(
        long = "cluster.secret",
        env = "KILN_CLUSTER__SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub cluster_secret: String,
}

impl std::fmt::Debug for ClusterSecretArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSecretArgs")
            .field(
                "cluster_secret",
                &kiln_cluster::secret::redacted(&self.cluster_secret),
            )
            .finish()
    }
}

impl ClusterSecretArgs {
    /// The secret, checked as the server checks it.
    pub fn secret(&self) -> anyhow::Result<kiln_cluster::ClusterSecret> {
        kiln_cluster::ClusterSecret::new(&self.cluster_secret).map_err(|e| anyhow::anyhow!(e))
    }
}

/// Runs an async tool on a fresh runtime and maps its result to an exit
/// code; errors are printed on stderr as `kiln <tool>: <error>`.
pub fn block_on_tool<F>(tool: &str, future: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kiln-tool")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            report_error(
                tool,
                &anyhow::Error::new(e).context("cannot start the runtime"),
            );
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(future) {
        Ok(code) => code,
        Err(e) => {
            report_error(tool, &e);
            ExitCode::FAILURE
        }
    }
}

fn report_error(tool: &str, e: &anyhow::Error) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "kiln {tool}: {e:#}");
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Parses a time as the query APIs accept it: `now`, `now-1h`, Unix
/// seconds/ms/µs/ns, `YYYYMMDD`, or RFC 3339. Returns ns since the epoch.
pub fn parse_time(input: &str, now_ns: i64) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(input.trim()) {
        return t
            .timestamp_nanos_opt()
            .with_context(|| format!("time {input:?} is out of range"));
    }
    kiln_model::attime::parse_attime(input, now_ns)
        .map_err(|e| anyhow::anyhow!("invalid time {input:?}: {e}"))
}

/// Formats ns since the epoch as RFC 3339 (UTC, milliseconds).
pub fn format_time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Refuses URLs whose host is not a loopback address (load tools must not
/// hit other machines by accident).
pub fn require_loopback(url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("invalid URL {url:?}"))?;
    let host = parsed.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!(
            "{url} is not a loopback address; load generators only target this machine unless --allow-remote is given"
        );
    }
    Ok(())
}

/// Splits `<profile type>{matchers}` into the profile type ID and the label
/// selector (`{}` when absent), checking both.
pub fn split_selector(selector: &str) -> anyhow::Result<(String, String)> {
    let selector = selector.trim();
    let (profile_type, labels) = match selector.find('{') {
        Some(i) => (selector[..i].trim(), selector[i..].trim()),
        None => (selector, "{}"),
    };
    if profile_type.is_empty() {
        bail!(
            "selector {selector:?} has no profile type: write <profile type>{{matchers}}, e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds{{service_name=\"api\"}}"
        );
    }
    kiln_model::ProfileType::parse(profile_type)
        .map_err(|e| anyhow::anyhow!("invalid profile type {profile_type:?}: {e}"))?;
    kiln_model::Selector::parse(labels)
        .map_err(|e| anyhow::anyhow!("invalid label selector {labels:?}: {e}"))?;
    Ok((profile_type.to_owned(), labels.to_owned()))
}

/// Formats a byte count with a binary unit (`12.3 MiB`).
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_split_into_type_and_matchers() {
        let (t, s) =
            split_selector(r#"process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api"}"#)
                .unwrap();
        assert_eq!(t, "process_cpu:cpu:nanoseconds:cpu:nanoseconds");
        assert_eq!(s, r#"{service_name="api"}"#);
        let (_, s) = split_selector("memory:inuse_space:bytes:space:bytes").unwrap();
        assert_eq!(s, "{}");
        assert!(split_selector(r#"{service_name="api"}"#).is_err());
        assert!(split_selector("cpu{}").is_err());
    }

    #[test]
    fn loopback_only_unless_allowed() {
        require_loopback("http://127.0.0.1:4040").unwrap();
        require_loopback("http://127.3.2.1").unwrap();
        require_loopback("http://localhost:4040/").unwrap();
        require_loopback("http://[::1]:4040").unwrap();
        assert!(require_loopback("http://10.0.0.1:4040").is_err());
        assert!(require_loopback("http://example.com").is_err());
    }

    #[test]
    fn times_parse_in_every_syntax() {
        let now = 1_700_000_000_000_000_000;
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("now-1h", now).unwrap(), now - 3_600_000_000_000);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            format_time(1_700_000_000_000_000_000),
            "2023-11-14T22:13:20.000Z"
        );
        assert!(parse_time("yesterday", now).is_err());
    }
}
