//! The ledger: what was loaded, kept in Redis itself next to the data, under one hash tag per
//! table (`coldsync:{orders}:...`) so it works on Redis Cluster too.
//!
//! - `<prefix>:{<table>}:partitions`: hash, field = partition date `YYYY-MM-DD`, value = JSON
//!   [`LedgerEntry`]. A field is written only after every write of that partition was acknowledged.
//! - `<prefix>:{<table>}:watermark`: string `YYYY-MM-DD`, the newest date loaded with every older
//!   partition of the window loaded too.
//!
//! The ledger's commands go through the control client of [`crate::redis::control`].

use std::collections::BTreeMap;

use ::redis::aio::MultiplexedConnection;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::config::RedisConfig;
use crate::error::RedisError;
use crate::redis::control::{self, ControlClient};
use crate::redis::Connector;
use crate::run::Counters;

/// One loaded partition, as recorded. Its JSON is flat: the counters sit beside the fingerprint
/// (`{"fingerprint": ..., "files": 2, "rows": 9, ...}`), and read as fields (`entry.rows`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Fingerprint of the file list when it was loaded.
    pub fingerprint: String,
    /// What the load read and wrote.
    #[serde(flatten)]
    pub counters: Counters,
    /// Run that loaded it.
    pub run_id: String,
    /// When it was loaded (RFC 3339, UTC).
    pub loaded_at: String,
    /// Absolute expiry of its keys, ms since the epoch.
    pub expires_at_ms: i64,
}

impl std::ops::Deref for LedgerEntry {
    type Target = Counters;

    fn deref(&self) -> &Counters {
        &self.counters
    }
}

/// A control connection with the ledger's key names.
#[derive(Clone)]
pub struct Ledger {
    connection: MultiplexedConnection,
    /// The same connection as a control client (leases run their scripts through it).
    control: ControlClient,
    prefix: String,
}

impl Ledger {
    /// Connects and checks the server answers `PING`.
    pub async fn connect(config: &RedisConfig, prefix: &str) -> Result<Ledger, RedisError> {
        Ledger::open(&Connector::new(config)?, prefix).await
    }

    /// Opens the control connection through `connector` and checks the server answers `PING`.
    pub async fn open(connector: &Connector, prefix: &str) -> Result<Ledger, RedisError> {
        let connection = connector.control().await?;
        Ok(Ledger {
            control: ControlClient::new(connection.clone(), connector.config().timeout),
            connection,
            prefix: prefix.to_string(),
        })
    }

    /// The control client.
    pub fn control(&self) -> &ControlClient {
        &self.control
    }

    /// Key of a table's exclusive lease (see [`crate::lease`]).
    pub fn lease_key(&self, table: &str) -> String {
        format!("{}:{{{table}}}:lease", self.prefix)
    }

    /// Key of a table's shard leases (a sorted set, see [`crate::lease`]).
    pub fn shard_leases_key(&self, table: &str) -> String {
        format!("{}:{{{table}}}:lease:shards", self.prefix)
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
        let raw: BTreeMap<String, String> = ::redis::cmd("HGETALL")
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
        ::redis::cmd("HSET")
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
        let mut cmd = ::redis::cmd("HDEL");
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
        let value: Option<String> = ::redis::cmd("GET")
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
                ::redis::cmd("SET")
                    .arg(self.watermark_key(table))
                    .arg(date.format("%Y-%m-%d").to_string())
                    .query_async::<()>(&mut connection)
                    .await?
            }
            None => {
                ::redis::cmd("DEL")
                    .arg(self.watermark_key(table))
                    .query_async::<i64>(&mut connection)
                    .await?;
            }
        }
        Ok(())
    }

    /// `INFO <section>` parsed into its `name:value` lines.
    pub async fn info(&self, section: &str) -> Result<BTreeMap<String, String>, RedisError> {
        control::info(&self.connection, section).await
    }

    /// Fails unless the server is Redis 7.0 or newer (the writes rely on `PEXPIRETIME`).
    pub async fn check_version(&self) -> Result<String, RedisError> {
        control::check_version(&self.connection).await
    }
}
