//! The config file as written: strict serde structs with their defaults, not yet validated.
//!
//! Every section denies unknown fields except `[source]` (whose other keys go to opendal) and
//! `[[tables]]` (whose options are flattened into a map, since serde cannot deny unknown fields
//! through `flatten`; [`table_options`] checks them strictly and names the option at fault).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::catalog::{CatalogName, TableFormat};
use super::invalid;
use super::tables::{Completeness, LoadMode};
use crate::encode::{DateEncoding, TimestampEncoding};
use crate::error::ConfigError;

/// The file as written: strict, with defaults, not yet validated.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub(super) source: RawSource,
    pub(super) redis: RawRedis,
    #[serde(default)]
    pub(super) defaults: RawTableOptions,
    #[serde(default)]
    pub(super) ledger: RawLedger,
    #[serde(default)]
    pub(super) daemon: RawDaemon,
    #[serde(default)]
    pub(super) lease: RawLease,
    #[serde(default)]
    pub(super) logging: RawLogging,
    #[serde(default)]
    pub(super) tables: Vec<RawTable>,
}

/// `[source]`: the known keys, and every other key passed through to opendal (so this struct
/// cannot deny unknown fields; opendal rejects options it does not know).
#[derive(Debug, Deserialize)]
pub(super) struct RawSource {
    pub(super) scheme: String,
    #[serde(default = "default_source_retries")]
    pub(super) retry_attempts: usize,
    #[serde(default = "default_source_timeout")]
    pub(super) timeout_secs: u64,
    #[serde(default = "default_list_concurrency")]
    pub(super) read_concurrency: usize,
    #[serde(flatten)]
    pub(super) options: BTreeMap<String, toml::Value>,
}

fn default_source_retries() -> usize {
    4
}
fn default_source_timeout() -> u64 {
    60
}
fn default_list_concurrency() -> usize {
    8
}

/// `[redis]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    pub(super) url: Option<String>,
    pub(super) url_env: Option<String>,
    pub(super) db: Option<i64>,
    #[serde(default = "default_username_env")]
    pub(super) username_env: String,
    #[serde(default = "default_password_env")]
    pub(super) password_env: String,
    pub(super) password_file: Option<PathBuf>,
    #[serde(default = "default_batch_size")]
    pub(super) batch_size: usize,
    #[serde(default = "default_connections")]
    pub(super) connections: usize,
    #[serde(default = "default_in_flight")]
    pub(super) pipelines_per_connection: usize,
    #[serde(default = "default_redis_timeout")]
    pub(super) timeout_secs: u64,
    #[serde(default = "default_redis_retries")]
    pub(super) retry_attempts: usize,
    #[serde(default = "default_reconnect_budget")]
    pub(super) reconnect_budget_secs: u64,
    pub(super) tls_ca_file: Option<PathBuf>,
    pub(super) tls_cert_file: Option<PathBuf>,
    pub(super) tls_key_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) tls_insecure: bool,
    pub(super) max_keys_per_sec: Option<u64>,
    pub(super) adaptive_latency_ms: Option<u64>,
    pub(super) hash_write: Option<String>,
    // Redis Cluster (src/redis/cluster.rs).
    #[serde(default)]
    pub(super) cluster: bool,
    #[serde(default)]
    pub(super) urls: Vec<String>,
    #[serde(default)]
    pub(super) wait_replicas: usize,
    pub(super) wait_timeout: Option<String>,
}

fn default_username_env() -> String {
    "COLDSYNC_REDIS_USERNAME".into()
}
fn default_password_env() -> String {
    "COLDSYNC_REDIS_PASSWORD".into()
}
fn default_batch_size() -> usize {
    1000
}
fn default_connections() -> usize {
    4
}
fn default_in_flight() -> usize {
    4
}
fn default_redis_timeout() -> u64 {
    30
}
fn default_redis_retries() -> usize {
    3
}
fn default_reconnect_budget() -> u64 {
    60
}

/// `[ledger]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLedger {
    pub(super) prefix: Option<String>,
}

/// `[daemon]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) schedule: Option<String>,
    pub(super) timezone: Option<String>,
}

/// `[lease]`: the per-table lease that keeps two runs off one table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLease {
    #[serde(default = "default_lease_ttl")]
    pub(super) ttl_secs: u64,
}

impl Default for RawLease {
    fn default() -> RawLease {
        RawLease {
            ttl_secs: default_lease_ttl(),
        }
    }
}

fn default_lease_ttl() -> u64 {
    60
}

/// `[logging]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogging {
    /// Interval of `load_progress` events (a duration such as `"30s"`).
    pub(super) progress_interval: Option<String>,
}

/// The names `value_format` accepts; the typed layout ([`crate::encode::ValueFormat`]) is built
/// from it together with `value_column`, `separator` and `null_string`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ValueFormatName {
    /// One JSON object per key.
    Json,
    /// One Redis hash per key.
    Hash,
    /// One column's value as the string value.
    Column,
    /// Columns joined by a separator.
    Delimited,
}

/// Per-table options that may also be given once under `[defaults]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTableOptions {
    pub(super) partition_column: Option<String>,
    pub(super) partition_format: Option<String>,
    pub(super) timezone: Option<String>,
    pub(super) hot_days: Option<u32>,
    pub(super) retention_days: Option<u32>,
    pub(super) value_format: Option<ValueFormatName>,
    pub(super) value_column: Option<String>,
    pub(super) separator: Option<String>,
    pub(super) null_string: Option<String>,
    pub(super) timestamp_encoding: Option<TimestampEncoding>,
    pub(super) date_encoding: Option<DateEncoding>,
    pub(super) mode: Option<LoadMode>,
    pub(super) completeness: Option<Completeness>,
    pub(super) min_age_minutes: Option<u64>,
    pub(super) snapshot_grace_days: Option<u32>,
    pub(super) delete_missing: Option<bool>,
    pub(super) max_keys_per_sec: Option<u64>,
    pub(super) max_skipped_ratio: Option<f64>,
    pub(super) lease_wait: Option<String>,
    pub(super) wait_for_partition: Option<String>,
    pub(super) wait_poll_interval: Option<String>,
    pub(super) verify_sample: Option<u64>,
    pub(super) catalog: Option<CatalogName>,
    pub(super) format: Option<TableFormat>,
    pub(super) metastore_uris: Option<Vec<String>>,
    pub(super) catalog_uri: Option<String>,
    pub(super) database: Option<String>,
    pub(super) table: Option<String>,
    pub(super) metadata_location: Option<String>,
    pub(super) location_prefix: Option<String>,
}

impl RawTableOptions {
    /// The field names above, so an error can tell a known option with a bad value (named
    /// itself) from an unknown one (named by its table). A unit test keeps the list exact.
    const NAMES: &'static [&'static str] = &[
        "partition_column",
        "partition_format",
        "timezone",
        "hot_days",
        "retention_days",
        "value_format",
        "value_column",
        "separator",
        "null_string",
        "timestamp_encoding",
        "date_encoding",
        "mode",
        "completeness",
        "min_age_minutes",
        "snapshot_grace_days",
        "delete_missing",
        "max_keys_per_sec",
        "max_skipped_ratio",
        "lease_wait",
        "wait_for_partition",
        "wait_poll_interval",
        "verify_sample",
        "catalog",
        "format",
        "metastore_uris",
        "catalog_uri",
        "database",
        "table",
        "metadata_location",
        "location_prefix",
    ];
}

/// `[[tables]]`: the table's own keys; the rest must be [`RawTableOptions`] (checked strictly by
/// [`table_options`]).
#[derive(Debug, Deserialize)]
pub(super) struct RawTable {
    pub(super) name: String,
    /// The table root in the store; a catalog may say where the table is instead.
    pub(super) path: Option<String>,
    pub(super) key: String,
    pub(super) columns: Option<Vec<String>>,
    /// The table's layout (part of its identity; never from `[defaults]`).
    pub(super) layout: Option<String>,
    #[serde(flatten)]
    pub(super) options: BTreeMap<String, toml::Value>,
}

/// Deserializes the options of `[[tables]]` entry `index` strictly.
///
/// The error names the option at fault (`tables[0] (orders).mode`), or the table for an
/// unknown option. serde reports only the first problem and not which key caused it, so on
/// failure each option is tried alone to find it.
pub(super) fn table_options(index: usize, raw: &RawTable) -> Result<RawTableOptions, ConfigError> {
    let deserialize = |options: toml::Table| -> Result<RawTableOptions, toml::de::Error> {
        toml::Value::Table(options).try_into()
    };
    let table = format!("tables[{index}] ({})", raw.name);
    let all = raw.options.clone().into_iter().collect();
    let whole_error = match deserialize(all) {
        Ok(options) => return Ok(options),
        Err(err) => err,
    };
    for (name, value) in &raw.options {
        let alone = toml::Table::from_iter([(name.clone(), value.clone())]);
        if let Err(err) = deserialize(alone) {
            let option = if RawTableOptions::NAMES.contains(&name.as_str()) {
                format!("{table}.{name}")
            } else {
                table
            };
            return Err(invalid(option, err.message()));
        }
    }
    Err(invalid(table, whole_error.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_names_are_exactly_the_fields() {
        let err = toml::Value::Table(toml::Table::from_iter([(
            "no_such_option".to_string(),
            toml::Value::Integer(1),
        )]))
        .try_into::<RawTableOptions>()
        .unwrap_err();
        let listed = RawTableOptions::NAMES
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            err.message(),
            format!("unknown field `no_such_option`, expected one of {listed}")
        );
    }
}
