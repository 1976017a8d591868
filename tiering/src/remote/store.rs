//! Building the object store from configuration: a local directory (the embedded default), an
//! S3-compatible bucket (endpoint, region, bucket, prefix, credentials from the config or the
//! environment), or memory (unit tests only). Retries with backoff and request timeouts are set
//! here; credentials are redacted from `Debug` and never appear in errors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where the bucket is, as a person reads it (never a credential).
impl std::fmt::Display for ObjectStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectStoreConfig::Local { path } => write!(f, "the local directory {}", path.display()),
            ObjectStoreConfig::S3 { endpoint, bucket, prefix, .. } if prefix.is_empty() => {
                write!(f, "S3 bucket {bucket} at {endpoint}")
            }
            ObjectStoreConfig::S3 { endpoint, bucket, prefix, .. } => {
                write!(f, "S3 bucket {bucket} at {endpoint}, under {prefix}/")
            }
            ObjectStoreConfig::Memory => f.write_str("an in-memory bucket"),
        }
    }
}

/// Where the bucket is.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ObjectStoreConfig {
    /// A local directory used as the bucket (created if missing).
    Local { path: PathBuf },
    /// An S3-compatible store, path-style addressing.
    S3 {
        /// e.g. `http://127.0.0.1:8333` or `https://s3.eu-west-1.amazonaws.com`.
        endpoint: String,
        #[serde(default = "default_region")]
        region: String,
        bucket: String,
        /// Key prefix inside the bucket ("" for none).
        #[serde(default)]
        prefix: String,
        /// Taken from `AWS_ACCESS_KEY_ID` when absent.
        #[serde(default)]
        access_key_id: Option<String>,
        /// Taken from `AWS_SECRET_ACCESS_KEY` when absent. Never logged.
        #[serde(default)]
        secret_access_key: Option<String>,
        /// Plain HTTP is refused unless this is set (for a local test server).
        #[serde(default)]
        allow_http: bool,
        /// Retries of a failed request (with exponential backoff and jitter). Default 5.
        #[serde(default = "default_retries")]
        max_retries: usize,
        /// Timeout of one request, in ms. Default 30000.
        #[serde(default = "default_timeout_ms")]
        request_timeout_ms: u64,
    },
    /// In memory: unit tests only.
    Memory,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_retries() -> usize {
    5
}
fn default_timeout_ms() -> u64 {
    30_000
}

impl std::fmt::Debug for ObjectStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectStoreConfig::Local { path } => f.debug_struct("Local").field("path", path).finish(),
            ObjectStoreConfig::S3 { endpoint, region, bucket, prefix, access_key_id, allow_http, .. } => f
                .debug_struct("S3")
                .field("endpoint", endpoint)
                .field("region", region)
                .field("bucket", bucket)
                .field("prefix", prefix)
                .field("access_key_id", &access_key_id.as_ref().map(|_| "<set>"))
                .field("secret_access_key", &"<redacted>")
                .field("allow_http", allow_http)
                .finish(),
            ObjectStoreConfig::Memory => f.write_str("Memory"),
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig { field, reason: reason.into() }
}

impl ObjectStoreConfig {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if let ObjectStoreConfig::S3 { endpoint, bucket, allow_http, request_timeout_ms, .. } = self {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(invalid("object_store.endpoint", "must start with http:// or https://"));
            }
            let authority = endpoint.split_once("://").map_or("", |(_, rest)| rest).split(['/', '?', '#']).next();
            if authority.is_some_and(|a| a.contains('@')) {
                return Err(invalid(
                    "object_store.endpoint",
                    "must not hold user info (user:password@): set access_key_id and secret_access_key instead",
                ));
            }
            if endpoint.starts_with("http://") && !allow_http {
                return Err(invalid("object_store.endpoint", "is plain HTTP: set allow_http = true to permit it"));
            }
            if bucket.is_empty() {
                return Err(invalid("object_store.bucket", "must not be empty"));
            }
            if *request_timeout_ms == 0 {
                return Err(invalid("object_store.request_timeout_ms", "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The S3 test server the test command starts (`scripts/test.sh`): endpoint and bucket from
    /// `TIERLOG_S3_ENDPOINT` / `TIERLOG_S3_BUCKET`, credentials from `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY`, few retries, keys under `prefix`. `None` when the endpoint is not
    /// set: S3 tests then fail with a message saying how to run them.
    pub fn s3_test_server(prefix: &str) -> Option<Self> {
        let endpoint = std::env::var("TIERLOG_S3_ENDPOINT").ok()?;
        Some(ObjectStoreConfig::S3 {
            endpoint,
            region: "us-east-1".into(),
            bucket: std::env::var("TIERLOG_S3_BUCKET").unwrap_or_else(|_| "tierlog-test".into()),
            prefix: prefix.into(),
            access_key_id: None,
            secret_access_key: None,
            allow_http: true,
            max_retries: 2,
            request_timeout_ms: 20_000,
        })
    }

    /// Builds the store. Nothing is contacted yet.
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>> {
        self.validate()?;
        match self {
            ObjectStoreConfig::Local { path } => {
                std::fs::create_dir_all(path).map_err(Error::io("create bucket directory", path))?;
                let store = super::local_cas::LocalBucket::new(path)
                    .map_err(|e| invalid("object_store.path", e.to_string()))?;
                Ok(Arc::new(store))
            }
            ObjectStoreConfig::Memory => Ok(Arc::new(InMemory::new())),
            ObjectStoreConfig::S3 {
                endpoint,
                region,
                bucket,
                prefix,
                access_key_id,
                secret_access_key,
                allow_http,
                max_retries,
                request_timeout_ms,
            } => {
                let key = access_key_id.clone().or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok());
                let secret = secret_access_key.clone().or_else(|| std::env::var("AWS_SECRET_ACCESS_KEY").ok());
                let (Some(key), Some(secret)) = (key, secret) else {
                    return Err(invalid(
                        "object_store.access_key_id",
                        "no credentials: set access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    ));
                };
                // with_client_options replaces every client option, allow_http included: build them
                // completely here.
                let options = ClientOptions::new()
                    .with_allow_http(*allow_http)
                    .with_timeout(Duration::from_millis(*request_timeout_ms))
                    .with_connect_timeout(Duration::from_secs(5));
                let retry = RetryConfig {
                    backoff: BackoffConfig {
                        init_backoff: Duration::from_millis(100),
                        max_backoff: Duration::from_secs(5),
                        base: 2.0,
                    },
                    max_retries: *max_retries,
                    retry_timeout: Duration::from_secs(60),
                };
                let s3 = AmazonS3Builder::new()
                    .with_client_options(options)
                    .with_endpoint(endpoint)
                    .with_region(region)
                    .with_bucket_name(bucket)
                    .with_access_key_id(key)
                    .with_secret_access_key(secret)
                    .with_virtual_hosted_style_request(false)
                    .with_allow_http(*allow_http)
                    .with_retry(retry)
                    .build()
                    // The builder's errors name settings, not secrets.
                    .map_err(|e| invalid("object_store", e.to_string()))?;
                if prefix.is_empty() { Ok(Arc::new(s3)) } else { Ok(Arc::new(PrefixStore::new(s3, prefix.as_str()))) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(endpoint: &str, allow_http: bool) -> ObjectStoreConfig {
        ObjectStoreConfig::S3 {
            endpoint: endpoint.into(),
            region: "us-east-1".into(),
            bucket: "b".into(),
            prefix: String::new(),
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("very-secret-value".into()),
            allow_http,
            max_retries: 1,
            request_timeout_ms: 1000,
        }
    }

    #[test]
    fn secrets_are_never_printed() {
        let c = s3("http://127.0.0.1:1", true);
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret-value") && !shown.contains("AKIDEXAMPLE"), "{shown}");
    }

    #[test]
    fn plain_http_needs_consent() {
        assert!(matches!(s3("http://127.0.0.1:1", false).validate(), Err(Error::InvalidConfig { .. })));
        assert!(s3("http://127.0.0.1:1", true).validate().is_ok());
        assert!(matches!(s3("ftp://x", true).validate(), Err(Error::InvalidConfig { .. })));
        let e = s3("https://AKID:very-secret-value@s3.example/", false).validate().unwrap_err().to_string();
        assert!(e.contains("user info") && !e.contains("very-secret-value"), "{e}");
        assert!(s3("https://s3.example/path@odd", false).validate().is_ok());
    }

    #[test]
    fn parses_from_toml_shaped_json() {
        let c: ObjectStoreConfig =
            serde_json::from_str(r#"{"kind":"s3","endpoint":"https://s3.example","bucket":"logs","prefix":"prod"}"#)
                .unwrap();
        assert!(matches!(c, ObjectStoreConfig::S3 { max_retries: 5, .. }));
        let c: ObjectStoreConfig = serde_json::from_str(r#"{"kind":"local","path":"/tmp/x"}"#).unwrap();
        assert!(matches!(c, ObjectStoreConfig::Local { .. }));
    }
}
