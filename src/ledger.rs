//! The ledger: what was loaded, kept in Redis itself next to the data, under one hash tag per
//! table (`coldsync:{orders}:...`) so it works on Redis Cluster too.
//!
//! - `<prefix>:{<table>}:partitions`: hash, field = partition date `YYYY-MM-DD`, value = JSON
//!   [`LedgerEntry`]. A field is written only after every write of that partition was acknowledged.
//! - `<prefix>:{<table>}:watermark`: string `YYYY-MM-DD`, the newest date loaded with every older
//!   partition of the window loaded too.
//!
//! Control commands go through the `redis` crate; the bulk writes go through [`crate::redis`].

use std::collections::BTreeMap;

use chrono::NaiveDate;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

use crate::config::RedisConfig;
use crate::error::RedisError;

/// One loaded partition, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Fingerprint of the file list when it was loaded.
    pub fingerprint: String,
    /// Data files.
    pub files: u64,
    /// Rows read.
    pub rows: u64,
    /// Keys written.
    pub keys: u64,
    /// Rows skipped because a key column was null or empty.
    pub skipped_null_keys: u64,
    /// Guarded writes that kept a newer value.
    #[serde(default)]
    pub kept_newer: u64,
    /// Bytes of the data files.
    pub bytes: u64,
    /// Run that loaded it.
    pub run_id: String,
    /// When it was loaded (RFC 3339, UTC).
    pub loaded_at: String,
    /// Absolute expiry of its keys, ms since the epoch.
    pub expires_at_ms: i64,
}

/// A control connection with the ledger's key names.
#[derive(Clone)]
pub struct Ledger {
    connection: MultiplexedConnection,
    prefix: String,
}

/// Opens a `redis` crate client for the configured server.
pub fn client(config: &RedisConfig) -> Result<redis::Client, RedisError> {
    // Both rustls providers are linked (through different dependencies), so rustls cannot pick
    // one by itself: choose ring, as the bulk writer does. Idempotent; an error only means a
    // provider was already installed.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let scheme = if config.tls { "rediss" } else { "redis" };
    let host = if config.host.contains(':') {
        format!("[{}]", config.host)
    } else {
        config.host.clone()
    };
    let mut url = url::Url::parse(&format!("{scheme}://{host}:{}/{}", config.port, config.db))
        .map_err(|err| RedisError::Protocol(format!("bad redis address: {err}")))?;
    if let Some(user) = &config.username {
        let _ = url.set_username(user);
    }
    if let Some(password) = &config.password {
        let _ = url.set_password(Some(password.expose()));
    }
    if config.tls && config.tls_insecure {
        url.set_fragment(Some("insecure"));
    }
    match (&config.tls_ca_file, config.tls) {
        (Some(path), true) => {
            let pem = std::fs::read(path).map_err(|err| RedisError::Connect {
                addr: config.masked_url(),
                message: format!("cannot read {}: {err}", path.display()),
                transient: false,
            })?;
            Ok(redis::Client::build_with_tls(
                url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )?)
        }
        _ => Ok(redis::Client::open(url.as_str())?),
    }
}

impl Ledger {
    /// Connects and checks the server answers `PING`.
    pub async fn connect(config: &RedisConfig, prefix: &str) -> Result<Ledger, RedisError> {
        let client = client(config)?;
        let connect = client.get_multiplexed_async_connection();
        let mut connection = tokio::time::timeout(config.timeout, connect)
            .await
            .map_err(|_| RedisError::Connect {
                addr: config.masked_url(),
                message: format!("timed out after {}s", config.timeout.as_secs()),
                transient: true,
            })?
            .map_err(|err| RedisError::Connect {
                addr: config.masked_url(),
                transient: err.is_io_error() || err.is_connection_refusal() || err.is_timeout(),
                message: err.to_string(),
            })?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await?;
        Ok(Ledger {
            connection,
            prefix: prefix.to_string(),
        })
    }

    /// Key of a table's partition hash.
    pub fn partitions_key(&self, table: &str) -> String {
        format!("{}:{{{table}}}:partitions", self.prefix)
    }

    /// Key of a table's watermark.
    pub fn watermark_key(&self, table: &str) -> String {
        format!("{}:{{{table}}}:watermark", self.prefix)
    }

    /// Every recorded partition of a table. Unreadable entries are returned as errors, not skipped.
    pub async fn entries(
        &self,
        table: &str,
    ) -> Result<BTreeMap<NaiveDate, LedgerEntry>, RedisError> {
        let mut connection = self.connection.clone();
        let raw: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(self.partitions_key(table))
            .query_async(&mut connection)
            .await?;
        raw.into_iter()
            .map(|(field, value)| {
                let date = NaiveDate::parse_from_str(&field, "%Y-%m-%d").map_err(|_| {
                    RedisError::Protocol(format!("ledger field {field:?} is not a date"))
                })?;
                let entry = serde_json::from_str(&value).map_err(|err| {
                    RedisError::Protocol(format!("ledger entry {field} is not valid: {err}"))
                })?;
                Ok((date, entry))
            })
            .collect()
    }

    /// Records a partition as loaded.
    pub async fn record(
        &self,
        table: &str,
        date: NaiveDate,
        entry: &LedgerEntry,
    ) -> Result<(), RedisError> {
        let mut connection = self.connection.clone();
        let json = serde_json::to_string(entry).expect("ledger entry serializes");
        redis::cmd("HSET")
            .arg(self.partitions_key(table))
            .arg(date.format("%Y-%m-%d").to_string())
            .arg(json)
            .query_async::<i64>(&mut connection)
            .await?;
        Ok(())
    }

    /// Forgets partitions (expired, or superseded snapshots).
    pub async fn forget(&self, table: &str, dates: &[NaiveDate]) -> Result<(), RedisError> {
        if dates.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(self.partitions_key(table));
        for date in dates {
            cmd.arg(date.format("%Y-%m-%d").to_string());
        }
        cmd.query_async::<i64>(&mut connection).await?;
        Ok(())
    }

    /// The recorded watermark.
    pub async fn watermark(&self, table: &str) -> Result<Option<NaiveDate>, RedisError> {
        let mut connection = self.connection.clone();
        let value: Option<String> = redis::cmd("GET")
            .arg(self.watermark_key(table))
            .query_async(&mut connection)
            .await?;
        Ok(value.and_then(|v| NaiveDate::parse_from_str(&v, "%Y-%m-%d").ok()))
    }

    /// Sets (or clears) the watermark.
    pub async fn set_watermark(
        &self,
        table: &str,
        date: Option<NaiveDate>,
    ) -> Result<(), RedisError> {
        let mut connection = self.connection.clone();
        match date {
            Some(date) => {
                redis::cmd("SET")
                    .arg(self.watermark_key(table))
                    .arg(date.format("%Y-%m-%d").to_string())
                    .query_async::<()>(&mut connection)
                    .await?
            }
            None => {
                redis::cmd("DEL")
                    .arg(self.watermark_key(table))
                    .query_async::<i64>(&mut connection)
                    .await?;
            }
        }
        Ok(())
    }

    /// `INFO <section>` parsed into its `name:value` lines.
    pub async fn info(&self, section: &str) -> Result<BTreeMap<String, String>, RedisError> {
        let mut connection = self.connection.clone();
        let text: String = redis::cmd("INFO")
            .arg(section)
            .query_async(&mut connection)
            .await?;
        Ok(text
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect())
    }

    /// Fails unless the server is Redis 7.0 or newer (the writes rely on `PEXPIRETIME`).
    pub async fn check_version(&self) -> Result<String, RedisError> {
        let info = self.info("server").await?;
        let version = info.get("redis_version").cloned().unwrap_or_default();
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 7 {
            return Err(RedisError::Connect {
                addr: "redis".into(),
                message: format!(
                    "redis {version:?} is too old: coldsync needs 7.0 or newer (PEXPIRETIME)"
                ),
                transient: false,
            });
        }
        Ok(version)
    }
}
