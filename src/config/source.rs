//! `[source]`: the object store (an opendal service and its options), validated into a
//! [`SourceConfig`] with every credential read from the environment or a file.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::invalid;
use super::raw::RawSource;
use super::secret::{self, is_secret_option, OptionValue};
use crate::error::ConfigError;

/// The opendal services coldsync is built with.
const SCHEMES: &[&str] = &["fs", "s3", "gcs", "azblob", "oss"];

/// Where the cold data comes from: an opendal service and its options.
#[derive(Clone)]
pub struct SourceConfig {
    /// opendal scheme (`fs`, `s3`, `gcs`, `azblob`, `oss`, ...).
    pub scheme: String,
    /// Options passed to the opendal service, secrets already resolved.
    pub options: BTreeMap<String, OptionValue>,
    /// Attempts for transient object-store errors (opendal `RetryLayer`).
    pub retry_attempts: usize,
    /// Timeout of one object-store operation.
    pub timeout: Duration,
    /// Footers and files read at once.
    pub read_concurrency: usize,
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("scheme", &self.scheme)
            .field("options", &self.options)
            .finish()
    }
}

impl SourceConfig {
    /// Validates `[source]`, reading `<option>_env` / `<option>_file` secrets from `env` / files.
    pub(super) fn build(
        raw: RawSource,
        env: &HashMap<String, String>,
    ) -> Result<SourceConfig, ConfigError> {
        if !SCHEMES.contains(&raw.scheme.as_str()) {
            return Err(invalid(
                "source.scheme",
                format!(
                    "{:?} is not a supported opendal service (supported: {})",
                    raw.scheme,
                    SCHEMES.join(", ")
                ),
            ));
        }
        if raw.retry_attempts == 0 {
            return Err(invalid("source.retry_attempts", "must be at least 1"));
        }
        if raw.timeout_secs == 0 {
            return Err(invalid("source.timeout_secs", "must be at least 1"));
        }
        if raw.read_concurrency == 0 {
            return Err(invalid("source.read_concurrency", "must be at least 1"));
        }
        let mut options = BTreeMap::new();
        for (name, value) in raw.options {
            let option = format!("source.{name}");
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => return Err(invalid(option, "must be a string, integer or boolean")),
            };
            if let Some(target) = name.strip_suffix("_env") {
                let value = secret::from_env(&option, &text, env)?;
                options.insert(
                    target.to_string(),
                    OptionValue::Secret(secret::Secret::new(value.clone())),
                );
            } else if let Some(target) = name.strip_suffix("_file") {
                let value = secret::from_file(&option, Path::new(&text))?;
                options.insert(target.to_string(), OptionValue::Secret(value));
            } else if is_secret_option(&name) {
                return Err(invalid(
                    option,
                    format!("credentials must not be written in the config file: use {name}_env = \"VAR\" or {name}_file = \"/path\""),
                ));
            } else {
                options.insert(name, OptionValue::Plain(text));
            }
        }
        if raw.scheme == "fs" && !options.contains_key("root") {
            return Err(invalid(
                "source.root",
                "the fs service needs a root directory",
            ));
        }
        if matches!(raw.scheme.as_str(), "s3" | "gcs" | "azblob" | "oss")
            && !options.contains_key("bucket")
            && !options.contains_key("container")
        {
            return Err(invalid(
                "source.bucket",
                format!("the {} service needs a bucket", raw.scheme),
            ));
        }
        Ok(SourceConfig {
            scheme: raw.scheme,
            options,
            retry_attempts: raw.retry_attempts,
            timeout: Duration::from_secs(raw.timeout_secs),
            read_concurrency: raw.read_concurrency,
        })
    }
}
