//! Per-tenant limits with runtime overrides.
//!
//! The configuration's `limits` section gives every tenant's defaults. The
//! optional overrides file (`runtime_config.file`, YAML) replaces keys per
//! tenant and is re-read when it changes, without a restart:
//!
//! ```yaml
//! overrides:
//!   team-a:
//!     ingestion_rate_mb: 20
//!     max_query_length: 90d
//!   free-tier:
//!     max_series: 500
//! ```
//!
//! A tenant's keys are laid over the defaults, so an override names only
//! what differs. An invalid file is reported in the log and the previous
//! overrides stay in force; a missing file means no overrides.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use kiln_model::{LimitsSource, TenantId, TenantLimits};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Where the runtime overrides come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// YAML file of per-tenant overrides; empty means none.
    pub file: PathBuf,
    /// How often the file is checked for changes.
    #[serde(with = "humantime_serde")]
    pub period: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            file: PathBuf::new(),
            period: Duration::from_secs(10),
        }
    }
}

impl RuntimeConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.period < Duration::from_millis(100) {
            return Err("`runtime_config.period` must be at least 100ms".into());
        }
        Ok(())
    }
}

/// The overrides file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverridesFile {
    #[serde(default)]
    overrides: HashMap<String, serde_json::Value>,
}

/// Parses an overrides file and lays each tenant's keys over `defaults`.
/// The error names the tenant and key.
pub fn parse_overrides(
    yaml: &str,
    defaults: &TenantLimits,
) -> Result<HashMap<String, Arc<TenantLimits>>, String> {
    let file: OverridesFile = if yaml.trim().is_empty() {
        OverridesFile::default()
    } else {
        serde_norway::from_str(yaml).map_err(|e| e.to_string())?
    };
    let base = serde_json::to_value(defaults).map_err(|e| e.to_string())?;
    let mut out = HashMap::with_capacity(file.overrides.len());
    for (tenant, over) in file.overrides {
        TenantId::new(&tenant).map_err(|e| format!("tenant {tenant:?}: {e}"))?;
        let mut merged = base.clone();
        match (&mut merged, over) {
            (serde_json::Value::Object(m), serde_json::Value::Object(o)) => m.extend(o),
            (_, serde_json::Value::Null) => {}
            _ => {
                return Err(format!(
                    "tenant {tenant:?}: overrides must be a map of limits"
                ));
            }
        }
        let limits: TenantLimits =
            serde_json::from_value(merged).map_err(|e| format!("tenant {tenant:?}: {e}"))?;
        limits
            .validate()
            .map_err(|e| format!("tenant {tenant:?}: {e}"))?;
        out.insert(tenant, Arc::new(limits));
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct Loaded {
    overrides: HashMap<String, Arc<TenantLimits>>,
    /// Modification time and length of the file last read.
    stamp: Option<(SystemTime, u64)>,
}

/// Limits of every tenant: defaults plus the overrides file.
#[derive(Debug)]
pub struct RuntimeLimits {
    defaults: Arc<TenantLimits>,
    file: Option<PathBuf>,
    loaded: RwLock<Loaded>,
}

impl RuntimeLimits {
    /// Limits from `defaults` and, if `file` is set, its overrides. The
    /// first read of the file must succeed (a broken file at start-up is a
    /// configuration error); later broken versions are logged and skipped.
    pub fn new(defaults: TenantLimits, file: Option<&Path>) -> Result<Arc<Self>, String> {
        let limits = RuntimeLimits {
            defaults: Arc::new(defaults),
            file: file
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf),
            loaded: RwLock::new(Loaded::default()),
        };
        limits.reload()?;
        Ok(Arc::new(limits))
    }

    /// The largest `max_body_bytes` of the defaults and every override as
    /// now loaded: what a listener that cannot tell tenants apart before it
    /// reads a message (gRPC) must let through.
    pub fn largest_body_bytes(&self) -> usize {
        let loaded = self
            .loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loaded
            .overrides
            .values()
            .map(|l| l.max_body_bytes)
            .fold(self.defaults.max_body_bytes, usize::max)
    }

    /// Re-reads the overrides file if it changed since the last read.
    /// Returns whether new overrides were taken.
    pub fn reload(&self) -> Result<bool, String> {
        let Some(path) = &self.file else {
            return Ok(false);
        };
        let stamp = match std::fs::metadata(path) {
            Ok(m) => Some((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if self
            .loaded
            .read()
            .map(|l| l.stamp == stamp)
            .unwrap_or(false)
        {
            return Ok(false);
        }
        let parsed = match stamp {
            None => Ok(HashMap::new()),
            Some(_) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|text| {
                    parse_overrides(&text, &self.defaults)
                        .map_err(|e| format!("overrides file {}: {e}", path.display()))
                }),
        };
        let overrides = match parsed {
            Ok(o) => o,
            Err(e) => {
                // Remember the broken version so it is reported once, not
                // on every check.
                if let Ok(mut l) = self.loaded.write() {
                    l.stamp = stamp;
                }
                return Err(e);
            }
        };
        if let Ok(mut l) = self.loaded.write() {
            l.overrides = overrides;
            l.stamp = stamp;
        }
        Ok(true)
    }

    /// Checks the file every `period` until `stop`.
    pub async fn watch(self: Arc<Self>, period: Duration, stop: CancellationToken) {
        if self.file.is_none() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.cancelled() => return,
            }
            match self.reload() {
                Ok(true) => tracing::info!(
                    tenants = self.tenants_with_overrides(),
                    "per-tenant limit overrides reloaded"
                ),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "overrides not reloaded; the previous ones stay")
                }
            }
        }
    }

    fn tenants_with_overrides(&self) -> usize {
        self.loaded.read().map(|l| l.overrides.len()).unwrap_or(0)
    }
}

impl LimitsSource for RuntimeLimits {
    fn limits(&self, tenant: &TenantId) -> Arc<TenantLimits> {
        self.loaded
            .read()
            .ok()
            .and_then(|l| l.overrides.get(tenant.as_str()).cloned())
            .unwrap_or_else(|| Arc::clone(&self.defaults))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TenantId {
        TenantId::new(name).unwrap()
    }

    #[test]
    fn overrides_lay_over_the_defaults() {
        let defaults = TenantLimits {
            max_series: 10,
            ..Default::default()
        };
        let o = parse_overrides(
            "overrides:\n  a:\n    ingestion_rate_mb: 20\n    max_query_length: 30d\n  b: {}\n",
            &defaults,
        )
        .unwrap();
        assert_eq!(o["a"].ingestion_rate_mb, 20.0);
        assert_eq!(o["a"].max_query_length, Duration::from_secs(30 * 86_400));
        assert_eq!(o["a"].max_series, 10, "unnamed keys keep the defaults");
        assert_eq!(*o["b"], defaults);
        assert!(parse_overrides("", &defaults).unwrap().is_empty());
    }

    #[test]
    fn the_largest_body_limit_counts_every_override() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("overrides.yaml");
        let defaults = TenantLimits {
            max_body_bytes: 1000,
            ..Default::default()
        };
        std::fs::write(&file, "overrides:\n  small:\n    max_body_bytes: 10\n").unwrap();
        let limits = RuntimeLimits::new(defaults, Some(&file)).unwrap();
        assert_eq!(limits.largest_body_bytes(), 1000, "a lower override");
        std::fs::write(
            &file,
            "overrides:\n  small:\n    max_body_bytes: 10\n  big:\n    max_body_bytes: 5000\n",
        )
        .unwrap();
        limits.reload().unwrap();
        assert_eq!(limits.largest_body_bytes(), 5000);
    }

    #[test]
    fn bad_overrides_name_tenant_and_key() {
        let d = TenantLimits::default();
        let e = parse_overrides("overrides:\n  a:\n    max_seriess: 1\n", &d).unwrap_err();
        assert!(e.contains("\"a\"") && e.contains("max_seriess"), "{e}");
        let e = parse_overrides("overrides:\n  a:\n    max_nodes_default: 0\n", &d).unwrap_err();
        assert!(e.contains("max_nodes_default"), "{e}");
        let e = parse_overrides("overrides:\n  a: 3\n", &d).unwrap_err();
        assert!(e.contains("map"), "{e}");
        assert!(parse_overrides("overridez: {}\n", &d).is_err());
    }

    #[test]
    fn file_changes_are_picked_up_and_broken_files_keep_the_old_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("overrides.yaml");
        let limits = RuntimeLimits::new(TenantLimits::default(), Some(&file)).unwrap();
        assert_eq!(
            limits.limits(&t("a")).max_series,
            5_000,
            "no file: defaults"
        );

        std::fs::write(&file, "overrides:\n  a:\n    max_series: 7\n").unwrap();
        assert!(limits.reload().unwrap());
        assert_eq!(limits.limits(&t("a")).max_series, 7);
        assert_eq!(limits.limits(&t("b")).max_series, 5_000);
        assert!(!limits.reload().unwrap(), "unchanged file is not re-read");

        // Different length, so the change is seen even within one mtime tick.
        std::fs::write(&file, "overrides:\n  a:\n    max_series: [oops]\n").unwrap();
        assert!(limits.reload().is_err());
        assert_eq!(
            limits.limits(&t("a")).max_series,
            7,
            "previous overrides stay"
        );

        std::fs::write(&file, "overrides:\n  a:\n    max_series: 12345\n").unwrap();
        assert!(limits.reload().unwrap());
        assert_eq!(limits.limits(&t("a")).max_series, 12_345);

        std::fs::remove_file(&file).unwrap();
        assert!(limits.reload().unwrap());
        assert_eq!(limits.limits(&t("a")).max_series, 5_000);
    }

    #[test]
    fn a_broken_file_at_start_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("o.yaml");
        std::fs::write(&file, "overrides:\n  a:\n    nope: 1\n").unwrap();
        let e = RuntimeLimits::new(TenantLimits::default(), Some(&file)).unwrap_err();
        assert!(e.contains("nope"), "{e}");
    }
}
