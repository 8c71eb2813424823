//! The `kiln` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kiln_server::{Config, Listeners, run};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Kiln: a continuous-profiling database, wire-compatible with Pyroscope.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// YAML configuration file.
    #[arg(long, global = true, env = "KILN_CONFIG")]
    config: Option<PathBuf>,
    /// Roles to run: all, or a comma list of distributor, ingester, querier, metastore,
    /// compactor, query-frontend.
    #[arg(long)]
    target: Option<String>,
    /// HTTP listen address (UI, ingest and query APIs).
    #[arg(long = "http-addr")]
    http_addr: Option<String>,
    /// Path prefix of the UI and APIs behind a proxy, e.g. /kiln.
    #[arg(long = "http.base-path")]
    http_base_path: Option<String>,
    /// gRPC listen address.
    #[arg(long = "grpc-addr")]
    grpc_addr: Option<String>,
    /// Address other nodes use to reach this node's gRPC listener.
    #[arg(long = "advertise-addr")]
    advertise_addr: Option<String>,
    /// Directory for local data.
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Object storage backend: filesystem, s3 or memory.
    #[arg(long = "storage.backend")]
    storage_backend: Option<String>,
    /// gRPC address of the metastore (empty: this process).
    #[arg(long = "metastore.address")]
    metastore_address: Option<String>,
    /// Log filter, e.g. info or debug.
    #[arg(long = "log.level")]
    log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Prints the version.
    Version,
    /// Uploads profile files (pprof, JFR, folded, speedscope) to a Kiln.
    Upload(Box<kiln_server::tools::upload::UploadArgs>),
    /// Queries a Kiln: merged profiles, series, diffs.
    Query(Box<kiln_server::tools::query::QueryArgs>),
    /// Lists and inspects stored blocks.
    Blocks(Box<kiln_server::tools::blocks::BlocksArgs>),
    /// Load generator and query-latency probe for a local Kiln.
    Bench(Box<kiln_server::tools::bench::BenchArgs>),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Prints the full default configuration as YAML.
    Defaults,
    /// Loads and validates a configuration file; exits non-zero on any error.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

impl Cli {
    /// The flags given on the command line, as a nested config override.
    fn overrides(&self) -> serde_json::Value {
        let mut v = serde_json::json!({});
        let mut set = |path: &[&str], value: serde_json::Value| {
            let mut cur = &mut v;
            for key in &path[..path.len() - 1] {
                cur = cur
                    .as_object_mut()
                    .expect("objects all the way down")
                    .entry(*key)
                    .or_insert_with(|| serde_json::json!({}));
            }
            cur.as_object_mut()
                .expect("objects all the way down")
                .insert(path[path.len() - 1].to_owned(), value);
        };
        if let Some(t) = &self.target {
            set(&["target"], t.clone().into());
        }
        if let Some(a) = &self.http_addr {
            set(&["http_addr"], a.clone().into());
        }
        if let Some(p) = &self.http_base_path {
            set(&["http", "base_path"], p.clone().into());
        }
        if let Some(a) = &self.grpc_addr {
            set(&["grpc_addr"], a.clone().into());
        }
        if let Some(a) = &self.advertise_addr {
            set(&["advertise_addr"], a.clone().into());
        }
        if let Some(d) = &self.data_dir {
            set(&["data_dir"], d.display().to_string().into());
        }
        if let Some(b) = &self.storage_backend {
            set(&["storage", "backend"], b.clone().into());
        }
        if let Some(a) = &self.metastore_address {
            set(&["metastore", "address"], a.clone().into());
        }
        if let Some(l) = &self.log_level {
            set(&["log", "level"], l.clone().into());
        }
        v
    }
}

#[expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the binary's own command-line output"
)]
fn main() -> ExitCode {
    let mut cli = Cli::parse();
    use kiln_server::tools;
    match cli.command.take() {
        Some(Command::Upload(a)) => return tools::block_on_tool("upload", tools::upload::run(*a)),
        Some(Command::Query(a)) => return tools::block_on_tool("query", tools::query::run(*a)),
        Some(Command::Blocks(a)) => {
            return tools::block_on_tool("blocks", tools::blocks::run(*a, cli.config.clone()));
        }
        Some(Command::Bench(a)) => return tools::block_on_tool("bench", tools::bench::run(*a)),
        other => cli.command = other,
    }
    match &cli.command {
        Some(Command::Version) => {
            println!("kiln {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(Command::Config {
            command: ConfigCommand::Defaults,
        }) => {
            print!("{}", Config::defaults_yaml());
            return ExitCode::SUCCESS;
        }
        Some(Command::Config {
            command: ConfigCommand::Check { file },
        }) => {
            return match Config::load(Some(file), &serde_json::json!({})) {
                Ok(_) => {
                    println!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let config = match Config::load(cli.config.as_deref(), &cli.overrides()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kiln: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(&config);
    for var in Config::ignored_env_vars() {
        tracing::warn!(variable = %var, "ignoring an environment variable that names no configuration key");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kiln")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kiln: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let listeners = Listeners::bind(&config).await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        run(config, listeners, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "kiln failed");
            eprintln!("kiln: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "signal received"),
    }
    shutdown.cancel();
}
