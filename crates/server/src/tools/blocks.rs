//! `kiln blocks ls|inspect`: what is stored.
//!
//! `ls` lists blocks from the metastore's index (`QueryBlocks` over gRPC,
//! `--metastore ADDR`) or, without `--metastore`, by listing the object
//! store named by the usual configuration (`--config`, `KILN_*`,
//! `--data-dir`, `--storage.backend`) and reading each block's footer.
//! `inspect KEY|ID` reads one block's footer with
//! [`BlockReader`](kiln_storage::BlockReader) and prints its metadata,
//! sections (bytes and rows) and datasets, and with `--series` the series.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::TryStreamExt;
use kiln_proto::kiln::metastore::v1::{BlockMeta, QueryBlocksRequest};
use kiln_storage::BlockReader;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::Config;
use crate::tools::{format_bytes, format_time};

/// Arguments of `kiln blocks`.
#[derive(Debug, clap::Args)]
pub struct BlocksArgs {
    #[command(subcommand)]
    pub command: BlocksCommand,
}

/// `kiln blocks` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BlocksCommand {
    /// Lists blocks, from the metastore (--metastore) or object storage.
    Ls(LsArgs),
    /// Prints a block's footer: metadata, sections, datasets.
    Inspect(InspectArgs),
}

/// Where the object store is (the server's configuration keys).
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// Data directory of the filesystem backend (blocks in <dir>/blocks).
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// Object storage backend: filesystem or s3 (settings from --config
    /// and KILN_STORAGE__* variables).
    #[arg(long = "storage.backend")]
    pub storage_backend: Option<String>,
}

impl StorageArgs {
    /// The object store these arguments (and `config_file`) name.
    pub fn open(
        &self,
        config_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let mut overrides = serde_json::json!({});
        if let Some(d) = &self.data_dir {
            overrides["data_dir"] = d.display().to_string().into();
        }
        if let Some(b) = &self.storage_backend {
            overrides["storage"] = serde_json::json!({ "backend": b });
        }
        let config = Config::load(config_file, &overrides)?;
        if config.storage.backend == kiln_storage::StorageBackend::Filesystem
            && config.storage.filesystem_dir.is_empty()
            && !config.data_dir.join("blocks").is_dir()
        {
            bail!(
                "no blocks directory in {} (use --data-dir)",
                config.data_dir.display()
            );
        }
        Ok(config.storage.build(&config.data_dir)?)
    }
}

/// Arguments of `kiln blocks ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// gRPC address of a metastore replica (host:port); without it the
    /// object store is listed.
    #[arg(long)]
    pub metastore: Option<String>,
    #[command(flatten)]
    pub secret: super::ClusterSecretArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Tenant (default: `anonymous` for the metastore, every tenant for
    /// object storage).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only blocks holding this service.
    #[arg(long)]
    pub service: Option<String>,
}

/// Arguments of `kiln blocks inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Also list the block's series.
    #[arg(long)]
    pub series: bool,
    /// Object key (`<tenant>/segments/<shard>/<ULID>.block`) or block ULID.
    pub block: String,
}

/// Runs `kiln blocks`; `config_file` is the global `--config`.
pub async fn run(args: BlocksArgs, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    match args.command {
        BlocksCommand::Ls(a) => ls(a, config_file).await,
        BlocksCommand::Inspect(a) => inspect(a, config_file).await,
    }
}

async fn list_store(
    store: &Arc<dyn ObjectStore>,
    prefix: Option<&str>,
) -> anyhow::Result<Vec<(String, u64)>> {
    let prefix = prefix.map(ObjectPath::from);
    let mut out: Vec<(String, u64)> = store
        .list(prefix.as_ref())
        .map_ok(|m| (m.location.to_string(), m.size))
        .try_collect::<Vec<_>>()
        .await
        .context("cannot list the object store")?
        .into_iter()
        .filter(|(k, _)| k.ends_with(".block"))
        .collect();
    out.sort();
    Ok(out)
}

async fn ls(args: LsArgs, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut blocks: Vec<BlockMeta> = Vec::new();
    let mut errors = 0;
    if let Some(addr) = &args.metastore {
        let client = kiln_cluster::MetastoreClient::new(
            std::slice::from_ref(addr),
            Duration::from_secs(30),
            &args.secret.secret()?,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let resp = client
            .query_blocks(QueryBlocksRequest {
                tenants: vec![args.tenant.clone().unwrap_or_else(|| "anonymous".into())],
                start: 0,
                end: i64::MAX,
                service_names: args.service.iter().cloned().collect(),
            })
            .await
            .map_err(|e| anyhow::anyhow!("QueryBlocks at {addr}: {e}"))?;
        blocks = resp.blocks;
    } else {
        let store = args.storage.open(config_file.as_deref())?;
        let prefix = args.tenant.as_ref().map(|t| format!("{t}/"));
        for (key, size) in list_store(&store, prefix.as_deref()).await? {
            match BlockReader::open(Arc::clone(&store), &key, Some(size)).await {
                Ok(r) => {
                    let mut meta = r.meta().clone();
                    // The footer is written before the object's size is known.
                    if meta.size == 0 {
                        meta.size = size;
                    }
                    blocks.push(meta);
                }
                Err(e) => {
                    errors += 1;
                    let _ = writeln!(std::io::stderr(), "error  {key}: {e}");
                }
            }
        }
        if let Some(s) = &args.service {
            blocks.retain(|b| b.datasets.iter().any(|d| &d.service_name == s));
        }
    }
    blocks.sort_by(|a, b| a.min_time.cmp(&b.min_time).then(a.id.cmp(&b.id)));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<26} {:<12} {:>5} {:>5} {:<24} {:<24} {:>10} {:>8} {:>9} {:>7}  SERVICES",
        "ID",
        "TENANT",
        "SHARD",
        "LEVEL",
        "MIN TIME",
        "MAX TIME",
        "BYTES",
        "PROFILES",
        "SAMPLES",
        "SERIES"
    )?;
    let mut total_size = 0u64;
    for b in &blocks {
        total_size += b.size;
        let services: Vec<&str> = b.datasets.iter().map(|d| d.service_name.as_str()).collect();
        writeln!(
            out,
            "{:<26} {:<12} {:>5} {:>5} {:<24} {:<24} {:>10} {:>8} {:>9} {:>7}  {}",
            b.id,
            b.tenant,
            b.shard,
            b.level,
            format_time(b.min_time),
            format_time(b.max_time),
            b.size,
            b.profiles,
            b.samples,
            b.series,
            services.join(",")
        )?;
    }
    writeln!(
        out,
        "{} blocks, {} ({} bytes)",
        blocks.len(),
        format_bytes(total_size as f64),
        total_size
    )?;
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether `s` looks like a ULID (26 Crockford base-32 characters).
fn is_ulid(s: &str) -> bool {
    s.len() == 26 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

async fn inspect(args: InspectArgs, config_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let store = args.storage.open(config_file.as_deref())?;
    let (key, size) = if is_ulid(&args.block) {
        let suffix = format!("/{}.block", args.block.to_ascii_uppercase());
        list_store(&store, None)
            .await?
            .into_iter()
            .find(|(k, _)| k.ends_with(&suffix))
            .with_context(|| format!("no block {} in the object store", args.block))?
    } else {
        let key = args.block.trim_start_matches('/').to_owned();
        let head = store
            .head(&ObjectPath::from(key.as_str()))
            .await
            .with_context(|| format!("no object {key}"))?;
        (key, head.size)
    };
    let reader = BlockReader::open(Arc::clone(&store), &key, Some(size))
        .await
        .with_context(|| format!("cannot open block {key}"))?;
    let mut meta = reader.meta().clone();
    if meta.size == 0 {
        meta.size = size;
    }
    let m = &meta;
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(out, "block       {}", m.id);
    let _ = writeln!(out, "key         {}", reader.key());
    let _ = writeln!(
        out,
        "size        {} ({} bytes)",
        format_bytes(m.size as f64),
        m.size
    );
    let _ = writeln!(out, "format      {}", m.format_version);
    let _ = writeln!(
        out,
        "tenant      {}  shard {}  level {}  resolution {} ns",
        m.tenant, m.shard, m.level, m.resolution
    );
    let _ = writeln!(
        out,
        "time        {} .. {}",
        format_time(m.min_time),
        format_time(m.max_time)
    );
    let _ = writeln!(
        out,
        "created     {}",
        format_time(m.created_at.saturating_mul(1_000_000))
    );
    let _ = writeln!(
        out,
        "counts      profiles {}  samples {}  series {}",
        m.profiles, m.samples, m.series
    );
    if !m.sources.is_empty() {
        let _ = writeln!(out, "sources     {}", m.sources.join(", "));
    }
    let _ = writeln!(out, "sections");
    let _ = writeln!(
        out,
        "  {:<10} {:>10} {:>10} {:>9}",
        "NAME", "OFFSET", "BYTES", "ROWS"
    );
    let mut section_bytes = 0;
    for name in kiln_storage::schema::SECTIONS {
        if let Ok(s) = reader.section(name) {
            section_bytes += s.length;
            let _ = writeln!(
                out,
                "  {:<10} {:>10} {:>10} {:>9}",
                s.name, s.offset, s.length, s.rows
            );
        }
    }
    let _ = writeln!(
        out,
        "  footer+trailer {} bytes",
        m.size.saturating_sub(section_bytes)
    );
    let _ = writeln!(out, "datasets");
    for (i, d) in m.datasets.iter().enumerate() {
        let _ = writeln!(
            out,
            "  [{i}] {}  {} .. {}",
            d.service_name,
            format_time(d.min_time),
            format_time(d.max_time)
        );
        for t in &d.profile_types {
            let _ = writeln!(out, "        {t}");
        }
    }
    if args.series {
        let series = reader.series().await.context("cannot read the series")?;
        let _ = writeln!(out, "series");
        for s in series {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            let _ = writeln!(
                out,
                "  {:>5} [{}] {} {{{}}}",
                s.series_id,
                s.partition,
                s.profile_type,
                labels.join(", ")
            );
        }
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
