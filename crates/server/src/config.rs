//! The root configuration and how it is loaded.
//!
//! Precedence, lowest to highest: code defaults → YAML file (`--config`) →
//! environment (`KILN_` prefix, `__` between nested keys, e.g.
//! `KILN_INGESTER__FLUSH_INTERVAL=2s`) → command-line flags. Flags are named
//! after the YAML path (`--http-addr` is `http_addr`, `--storage.backend` is
//! `storage.backend`).

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Yaml};
use kiln_cluster::ClusterSecret;
use kiln_cluster::secret::redacted;
use kiln_compactor::CompactorConfig;
use kiln_distributor::DistributorConfig;
use kiln_ingester::IngesterConfig;
use kiln_metastore::MetastoreConfig;
use kiln_model::TenantLimits;
use kiln_querier::QuerierConfig;
use kiln_storage::StorageConfig;
use serde::{Deserialize, Serialize};

use crate::auth::{Auth, AuthConfig};
use crate::limits::RuntimeConfig;
use crate::modules::Targets;

/// Tenancy settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MultitenancyConfig {
    /// When true, every API request must carry `X-Scope-OrgID`; when false
    /// every request belongs to the tenant `anonymous`.
    pub enabled: bool,
}

/// HTTP serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Path prefix the UI and APIs are served under (e.g. `/kiln` behind a
    /// proxy), in addition to the root; empty means none.
    pub base_path: String,
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Filter in `tracing` syntax, e.g. `info` or `kiln_ingester=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info,openraft=warn".into(),
            format: "text".into(),
        }
    }
}

/// Calls between the nodes of a cluster (the `cluster` section).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// A secret every node of the cluster shares (at least 16 visible ASCII
    /// characters): internal gRPC calls carry it and the internal services
    /// (metastore, Raft, ingester, querier tasks) refuse calls without it.
    /// Empty: no check, so keep the gRPC port on a private network.
    pub secret: String,
    /// A file holding the secret (e.g. a mounted Kubernetes secret; a
    /// trailing newline is ignored); used when `secret` is empty.
    pub secret_file: PathBuf,
    /// A second secret accepted from callers (never sent), for rotating
    /// the secret without refused calls; needs `secret`.
    pub accepted_secret: String,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("secret", &redacted(&self.secret))
            .field("secret_file", &self.secret_file)
            .field("accepted_secret", &redacted(&self.accepted_secret))
            .finish()
    }
}

impl ClusterConfig {
    /// The cluster secret: `secret`, else the contents of `secret_file`,
    /// else none.
    pub fn load_secret(&self) -> Result<ClusterSecret, ConfigError> {
        let value = if !self.secret.is_empty() {
            self.secret.clone()
        } else if !self.secret_file.as_os_str().is_empty() {
            let text = std::fs::read_to_string(&self.secret_file).map_err(|e| {
                ConfigError(format!(
                    "cannot read cluster.secret_file {}: {e}",
                    self.secret_file.display()
                ))
            })?;
            let value = text.trim_end_matches(['\r', '\n']);
            if value.is_empty() {
                return Err(ConfigError(format!(
                    "cluster.secret_file {} is empty",
                    self.secret_file.display()
                )));
            }
            value.to_owned()
        } else {
            String::new()
        };
        ClusterSecret::new(&value)
            .map_err(|e| ConfigError(format!("cluster.secret: {e}")))?
            .also_accepting(&self.accepted_secret)
            .map_err(|e| ConfigError(format!("cluster.accepted_secret: {e}")))
    }
}

/// The whole configuration of a `kiln` process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Roles to run: `all` or a comma list of distributor, ingester,
    /// querier, metastore, compactor, query-frontend.
    pub target: String,
    /// Address of the HTTP listener (UI, ingest and query APIs).
    pub http_addr: String,
    /// HTTP serving (`http.base_path`).
    pub http: HttpConfig,
    /// Address of the gRPC listener (internal APIs, and push/query over gRPC).
    pub grpc_addr: String,
    /// Address other nodes use to reach this node's gRPC listener; empty
    /// means the bound gRPC address.
    pub advertise_addr: String,
    /// Unique name of this node in the cluster; empty means its advertised
    /// gRPC address.
    pub instance_id: String,
    /// Directory for local state: blocks of the filesystem backend and the
    /// metastore's log.
    pub data_dir: PathBuf,
    /// Object storage.
    pub storage: StorageConfig,
    /// Metastore location.
    pub metastore: MetastoreConfig,
    /// Distributor settings.
    pub distributor: DistributorConfig,
    /// Ingester settings.
    pub ingester: IngesterConfig,
    /// Querier settings.
    pub querier: QuerierConfig,
    /// Compactor settings (compaction, roll-up tiers, retention).
    pub compactor: CompactorConfig,
    /// Every tenant's limits (ingest, series, query); see `runtime_config`
    /// for per-tenant overrides.
    pub limits: TenantLimits,
    /// Per-tenant overrides, re-read without a restart.
    pub runtime_config: RuntimeConfig,
    /// Tenancy.
    pub multitenancy: MultitenancyConfig,
    /// Credentials for the APIs.
    pub auth: AuthConfig,
    /// Calls between nodes (the cluster secret).
    pub cluster: ClusterConfig,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            target: "all".into(),
            http_addr: "0.0.0.0:4040".into(),
            http: HttpConfig::default(),
            grpc_addr: "0.0.0.0:9095".into(),
            advertise_addr: String::new(),
            instance_id: String::new(),
            data_dir: PathBuf::from("./data"),
            storage: StorageConfig::default(),
            metastore: MetastoreConfig::default(),
            distributor: DistributorConfig::default(),
            ingester: IngesterConfig::default(),
            querier: QuerierConfig::default(),
            compactor: CompactorConfig::default(),
            limits: TenantLimits::default(),
            runtime_config: RuntimeConfig::default(),
            multitenancy: MultitenancyConfig::default(),
            auth: AuthConfig::default(),
            cluster: ClusterConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// Keys whose `KILN_*` variables are read as plain strings, never parsed.
const RAW_ENV_KEYS: &[&str] = &[
    "cluster.secret",
    "cluster.accepted_secret",
    "storage.s3.access_key_id",
    "storage.s3.secret_access_key",
];

/// A configuration error, naming the key or file.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads the configuration: defaults, then `file`, then `KILN_*`
    /// environment variables, then `overrides` (from command-line flags).
    pub fn load(file: Option<&Path>, overrides: &serde_json::Value) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Yaml::file_exact(file));
        }
        let known = Self::top_level_keys();
        figment = figment.merge(Env::prefixed("KILN_").split("__").filter(move |k| {
            !RAW_ENV_KEYS
                .iter()
                .any(|raw| k.as_str().eq_ignore_ascii_case(raw))
                && known.iter().any(|n| {
                    k.as_str()
                        .split('.')
                        .next()
                        .is_some_and(|f| f.eq_ignore_ascii_case(n))
                })
        }));
        // Secrets are taken from the environment as they are written: the
        // Env provider would read `0123...` as a number (and print it in the
        // type error) or `[...]` as a list.
        for key in RAW_ENV_KEYS {
            let var = format!("KILN_{}", key.to_ascii_uppercase().replace('.', "__"));
            if let Ok(value) = std::env::var(&var) {
                figment = figment.merge((*key, value));
            }
        }
        figment = figment.merge(Serialized::globals(overrides.clone()));
        let config: Config = figment.extract().map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The top-level keys of the configuration.
    fn top_level_keys() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// `KILN_*` environment variables that name no configuration key (they
    /// are ignored; a typo shows up here).
    pub fn ignored_env_vars() -> Vec<String> {
        let known = Self::top_level_keys();
        std::env::vars()
            .filter_map(|(k, _)| k.strip_prefix("KILN_").map(str::to_owned))
            .filter(|k| k != "CONFIG")
            .filter(|k| {
                let first = k.split("__").next().unwrap_or_default();
                !known.iter().any(|n| n.eq_ignore_ascii_case(first))
            })
            .map(|k| format!("KILN_{k}"))
            .collect()
    }

    /// Checks every section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Targets::parse(&self.target).map_err(ConfigError)?;
        for (key, addr) in [
            ("http_addr", &self.http_addr),
            ("grpc_addr", &self.grpc_addr),
        ] {
            addr.parse::<std::net::SocketAddr>().map_err(|e| {
                ConfigError(format!(
                    "`{key}` must be host:port with an IP address, got {addr:?}: {e}"
                ))
            })?;
        }
        if !["text", "json"].contains(&self.log.format.as_str()) {
            return Err(ConfigError(format!(
                "`log.format` must be text or json, got {:?}",
                self.log.format
            )));
        }
        kiln_ui::normalize_base_path(&self.http.base_path).map_err(ConfigError)?;
        self.storage
            .validate()
            .map_err(|e| ConfigError(e.to_string()))?;
        self.distributor.validate().map_err(ConfigError)?;
        self.ingester.validate().map_err(ConfigError)?;
        self.querier.validate().map_err(ConfigError)?;
        self.metastore.validate().map_err(ConfigError)?;
        self.compactor.validate().map_err(ConfigError)?;
        self.limits
            .validate()
            .map_err(|e| ConfigError(format!("limits: {e}")))?;
        self.runtime_config.validate().map_err(ConfigError)?;
        let overrides = &self.runtime_config.file;
        if !overrides.as_os_str().is_empty() && overrides.is_file() {
            let text = std::fs::read_to_string(overrides).map_err(|e| {
                ConfigError(format!(
                    "cannot read runtime_config.file {}: {e}",
                    overrides.display()
                ))
            })?;
            crate::limits::parse_overrides(&text, &self.limits).map_err(|e| {
                ConfigError(format!("runtime_config.file {}: {e}", overrides.display()))
            })?;
        }
        Auth::from_config(&self.auth, self.multitenancy.enabled).map_err(ConfigError)?;
        self.cluster.load_secret()?;
        Ok(())
    }

    /// The full default configuration as YAML.
    pub fn defaults_yaml() -> String {
        let mut out = String::from("# Default configuration of kiln (`kiln config defaults`).\n");
        out.push_str(&serde_norway::to_string(&Config::default()).unwrap_or_default());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip_through_yaml() {
        Config::default().validate().unwrap();
        let yaml = Config::defaults_yaml();
        let back: Config = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back, Config::default());
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail API returns figment::Error"
    )]
    fn precedence_is_defaults_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kiln.yaml");
        std::fs::write(&file, "http_addr: 127.0.0.1:1111\ngrpc_addr: 127.0.0.1:2222\ningester:\n  flush_interval: 3s\n").unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("KILN_GRPC_ADDR", "127.0.0.1:3333");
            jail.set_env("KILN_INGESTER__FLUSH_INTERVAL", "4s");
            jail.set_env("KILN_SOMETHING_ELSE", "ignored");
            let c = Config::load(Some(&file), &serde_json::json!({})).unwrap();
            assert_eq!(c.http_addr, "127.0.0.1:1111", "file over defaults");
            assert_eq!(c.grpc_addr, "127.0.0.1:3333", "env over file");
            assert_eq!(c.ingester.flush_interval, std::time::Duration::from_secs(4));
            let c = Config::load(
                Some(&file),
                &serde_json::json!({"grpc_addr": "127.0.0.1:4444"}),
            )
            .unwrap();
            assert_eq!(c.grpc_addr, "127.0.0.1:4444", "flags over env");
            assert_eq!(c.data_dir, PathBuf::from("./data"), "defaults stay");
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail API returns figment::Error"
    )]
    fn secrets_from_the_environment_stay_strings() {
        figment::Jail::expect_with(|jail| {
            // Read by the Env provider, these would be a number (losing the
            // leading zero) and a list.
            jail.set_env("KILN_CLUSTER__SECRET", "0123456789012345678");
            jail.set_env("KILN_STORAGE__S3__SECRET_ACCESS_KEY", "[not-a-list]");
            let c = Config::load(None, &serde_json::json!({})).unwrap();
            assert_eq!(c.cluster.secret, "0123456789012345678");
            assert_eq!(c.storage.s3.secret_access_key, "[not-a-list]");
            // A flag still wins over the environment.
            let c = Config::load(
                None,
                &serde_json::json!({"cluster": {"secret": "from-the-command-line"}}),
            )
            .unwrap();
            assert_eq!(c.cluster.secret, "from-the-command-line");
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_key() {
        let bad = |json: serde_json::Value| Config::load(None, &json).unwrap_err().to_string();
        assert!(bad(serde_json::json!({"target": "bogus"})).contains("bogus"));
        assert!(bad(serde_json::json!({"http_addr": "nowhere"})).contains("http_addr"));
        assert!(
            bad(serde_json::json!({"ingester": {"flush_interval": "1ms"}}))
                .contains("ingester.flush_interval")
        );
        assert!(bad(serde_json::json!({"no_such_key": 1})).contains("no_such_key"));
        assert!(
            bad(serde_json::json!({"ingester": {"flush_intervall": "1s"}}))
                .contains("flush_intervall")
        );
    }

    #[test]
    fn the_cluster_secret_comes_from_the_key_or_its_file_and_is_never_printed() {
        let none = ClusterConfig::default().load_secret().unwrap();
        assert!(!none.is_set());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-the-mounted-file-1234\n").unwrap();
        let from_file = ClusterConfig {
            secret_file: file.clone(),
            ..ClusterConfig::default()
        };
        let secret = from_file.load_secret().unwrap();
        let mut attach = secret.clone();
        let sent = tonic::service::Interceptor::call(&mut attach, tonic::Request::new(())).unwrap();
        assert_eq!(
            sent.metadata()
                .get(kiln_cluster::secret::METADATA_KEY)
                .unwrap()
                .to_str()
                .unwrap(),
            "from-the-mounted-file-1234",
            "the trailing newline is dropped"
        );

        let inline = ClusterConfig {
            secret: "inline-secret-wins-over-file".into(),
            secret_file: file,
            ..ClusterConfig::default()
        };
        assert!(inline.load_secret().unwrap().is_set());
        assert!(!format!("{inline:?}").contains("inline-secret"));

        let short = Config {
            cluster: ClusterConfig {
                secret: "short".into(),
                ..ClusterConfig::default()
            },
            ..Config::default()
        };
        let err = short.validate().unwrap_err().0;
        assert!(
            err.contains("cluster.secret") && err.contains("16 bytes"),
            "{err}"
        );

        let missing = ClusterConfig {
            secret_file: dir.path().join("nope"),
            ..ClusterConfig::default()
        };
        let refusal = |c: ClusterConfig| c.load_secret().unwrap_err().0;
        let err = refusal(missing);
        assert!(err.contains("cluster.secret_file"), "{err}");

        // An empty file is a mistake, not "no secret".
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = refusal(ClusterConfig {
            secret_file: empty,
            ..ClusterConfig::default()
        });
        assert!(err.contains("is empty"), "{err}");

        // A second accepted secret needs a secret of its own.
        let err = refusal(ClusterConfig {
            accepted_secret: "the-next-secret-2222".into(),
            ..ClusterConfig::default()
        });
        assert!(err.contains("cluster.accepted_secret"), "{err}");
        let rotating = ClusterConfig {
            secret: "the-current-secret-1".into(),
            accepted_secret: "the-next-secret-2222".into(),
            ..ClusterConfig::default()
        };
        let mut check = rotating.load_secret().unwrap().require();
        for (carried, accepted) in [
            ("the-current-secret-1", true),
            ("the-next-secret-2222", true),
            ("an-unknown-secret-33", false),
        ] {
            let mut request = tonic::Request::new(());
            request
                .metadata_mut()
                .insert(kiln_cluster::secret::METADATA_KEY, carried.parse().unwrap());
            let answer = tonic::service::Interceptor::call(&mut check, request);
            assert_eq!(answer.is_ok(), accepted, "{carried}");
        }
        assert!(!format!("{rotating:?}").contains("the-next"));
    }
}
