//! Object-store configuration: which backend, where, with which credentials.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use serde::{Deserialize, Serialize};

use crate::faults::{FaultsConfig, FaultyStore};
use crate::{Result, StorageError};

/// Which object store holds the blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    /// A directory on the local filesystem (the default; `<data_dir>/blocks`).
    #[default]
    Filesystem,
    /// Amazon S3 or any S3-compatible server (MinIO, ...).
    S3,
    /// In memory; data is lost on exit. For tests.
    Memory,
}

/// S3 settings. Credentials may also come from the usual `AWS_*` variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL for S3-compatible servers, e.g. `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// Region.
    pub region: String,
    /// Access key id (empty: from the environment).
    pub access_key_id: String,
    /// Secret access key (empty: from the environment).
    pub secret_access_key: String,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint` (MinIO needs this).
    pub force_path_style: bool,
    /// Allow plain-HTTP endpoints.
    pub allow_http: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            endpoint: String::new(),
            region: "us-east-1".to_owned(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            force_path_style: true,
            allow_http: false,
        }
    }
}

/// The `storage` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Which backend to use.
    pub backend: StorageBackend,
    /// Directory of the filesystem backend; empty means `<data_dir>/blocks`.
    pub filesystem_dir: String,
    /// Settings of the S3 backend.
    pub s3: S3Config,
    /// Injected faults, for tests (off by default; see [`crate::faults`]).
    pub faults: FaultsConfig,
}

impl StorageConfig {
    /// Checks the settings of the chosen backend.
    pub fn validate(&self) -> Result<()> {
        if self.backend == StorageBackend::S3 && self.s3.bucket.is_empty() {
            return Err(StorageError::Config(
                "`storage.s3.bucket` must be set when `storage.backend` is s3".into(),
            ));
        }
        self.faults.validate().map_err(StorageError::Config)?;
        Ok(())
    }

    /// A human-readable description of where data goes, for logs.
    pub fn describe(&self, data_dir: &std::path::Path) -> String {
        match self.backend {
            StorageBackend::Filesystem => {
                format!("filesystem {}", self.filesystem_path(data_dir).display())
            }
            StorageBackend::S3 => format!(
                "s3 bucket {} at {}",
                self.s3.bucket,
                if self.s3.endpoint.is_empty() {
                    "aws"
                } else {
                    &self.s3.endpoint
                }
            ),
            StorageBackend::Memory => "memory (not persistent)".to_owned(),
        }
    }

    fn filesystem_path(&self, data_dir: &std::path::Path) -> PathBuf {
        if self.filesystem_dir.is_empty() {
            data_dir.join("blocks")
        } else {
            PathBuf::from(&self.filesystem_dir)
        }
    }

    /// Builds the object store, wrapped in a [`FaultyStore`] when
    /// `storage.faults.enabled` is set.
    pub fn build(&self, data_dir: &std::path::Path) -> Result<Arc<dyn ObjectStore>> {
        self.validate()?;
        let store = self.build_backend(data_dir)?;
        if !self.faults.enabled {
            return Ok(store);
        }
        let f = &self.faults;
        tracing::warn!(
            error_rate = f.error_rate,
            timeout_rate = f.timeout_rate,
            timeout = ?f.timeout,
            lost_ack_rate = f.lost_ack_rate,
            slow_put = ?f.slow_put,
            seed = f.seed,
            "object storage fault injection is enabled (storage.faults): a testing setting"
        );
        Ok(Arc::new(FaultyStore::new(store, f.clone())))
    }

    fn build_backend(&self, data_dir: &std::path::Path) -> Result<Arc<dyn ObjectStore>> {
        match self.backend {
            StorageBackend::Filesystem => {
                let dir = self.filesystem_path(data_dir);
                std::fs::create_dir_all(&dir).map_err(|e| {
                    StorageError::Config(format!("cannot create {}: {e}", dir.display()))
                })?;
                let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| {
                    StorageError::Config(format!("cannot open {}: {e}", dir.display()))
                })?;
                Ok(Arc::new(crate::local::MappedLocalStore::new(fs)))
            }
            StorageBackend::S3 => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&self.s3.bucket)
                    .with_region(&self.s3.region)
                    .with_virtual_hosted_style_request(!self.s3.force_path_style)
                    .with_allow_http(self.s3.allow_http);
                if !self.s3.endpoint.is_empty() {
                    b = b.with_endpoint(&self.s3.endpoint);
                }
                if !self.s3.access_key_id.is_empty() {
                    b = b.with_access_key_id(&self.s3.access_key_id);
                }
                if !self.s3.secret_access_key.is_empty() {
                    b = b.with_secret_access_key(&self.s3.secret_access_key);
                }
                let s3 = b
                    .build()
                    .map_err(|e| StorageError::Config(format!("cannot configure s3: {e}")))?;
                Ok(Arc::new(s3))
            }
            StorageBackend::Memory => Ok(Arc::new(InMemory::new())),
        }
    }
}
