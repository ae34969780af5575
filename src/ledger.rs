//! The ledger: what was loaded, kept in Redis itself next to the data, under one hash tag per
//! table (`coldsync:{orders}:...`) so it works on Redis Cluster too.
//!
//! - `<prefix>:{<table>}:partitions`: hash, field = partition date `YYYY-MM-DD`, value = JSON
//!   [`LedgerEntry`]. A field is written only after every write of that partition was acknowledged.
//! - `<prefix>:{<table>}:watermark`: string `YYYY-MM-DD`, the newest date loaded with every older
//!   partition of the window loaded too. It moves with each recorded partition: the entry and the
//!   watermark are written by one script, so the watermark never says more than the entries.
//! - `<prefix>:{<table>}:fenced`: set of the tokens of abandoned record attempts (see below),
//!   expiring a day after the last one.
//!
//! A record attempt whose reply never came may still land later (a stalled Redis works through
//! what it had buffered). So a record that failed is **settled** before the partition is reported
//! failed: one script fences the attempt's token (a late arrival of it then does nothing) and
//! removes the entry if it landed. The report and the ledger never disagree.
//!
//! The ledger's commands go through the [`ControlClient`]: bounded, reconnecting, idempotent ones
//! (all of these) retried within the reconnect budget.

use std::collections::BTreeMap;
use std::sync::Arc;

use ::redis::Script;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::config::RedisConfig;
use crate::error::RedisError;
use crate::redis::control::{ControlClient, ServerRunId};
use crate::redis::Connector;
use crate::run::Counters;

/// Records an entry and sets the watermark, unless the attempt was fenced.
/// `KEYS`: partitions, watermark, fenced; `ARGV`: date, entry, token, watermark (`''` clears it).
/// Returns 1 when recorded, 0 when fenced.
const RECORD_SCRIPT: &str = r#"if redis.call('SISMEMBER', KEYS[3], ARGV[3]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] == '' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[4]) end
return 1"#;

/// Settles an abandoned record attempt: fences its token, and if its entry landed, removes it and
/// sets the watermark back. `KEYS` as [`RECORD_SCRIPT`]; `ARGV`: date, entry, token, watermark,
/// fence expiry (ms). Returns 1 when an entry was removed.
const SETTLE_SCRIPT: &str = r#"redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if ARGV[4] == '' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[4]) end
return 1"#;

/// How long the tokens of settled attempts stay fenced: far longer than any write stays buffered.
const FENCE_TTL_MS: u64 = 86_400_000;

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

/// The ledger's key names over the control client.
#[derive(Clone)]
pub struct Ledger {
    control: Arc<ControlClient>,
    prefix: String,
    record_script: Script,
    settle_script: Script,
}

/// The table's watermark with and without the partition being recorded: the record sets the
/// first, withdrawing it (or settling a failed record that landed) sets the second back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// With the partition recorded.
    pub with: Option<NaiveDate>,
    /// Without it.
    pub without: Option<NaiveDate>,
}

/// One attempt to record a partition: what settling or withdrawing it needs.
#[derive(Debug, Clone)]
struct Attempt {
    date: NaiveDate,
    token: String,
    json: String,
    watermark_without: Option<NaiveDate>,
}

/// A recorded partition: the server that holds the entry, and what withdrawing it needs.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The server that acknowledged the entry.
    pub server: ServerRunId,
    attempt: Attempt,
}

impl Ledger {
    /// Connects and checks the server answers `PING`.
    pub async fn connect(config: &RedisConfig, prefix: &str) -> Result<Ledger, RedisError> {
        Ledger::open(Arc::new(Connector::new(config)?), prefix).await
    }

    /// Opens the control client through `connector` (once: Redis unreachable at start is fatal)
    /// and loads the ledger's scripts.
    pub async fn open(connector: Arc<Connector>, prefix: &str) -> Result<Ledger, RedisError> {
        let control = ControlClient::connect(connector).await?;
        Ok(Ledger {
            record_script: control.preload(RECORD_SCRIPT).await?,
            settle_script: control.preload(SETTLE_SCRIPT).await?,
            control: Arc::new(control),
            prefix: prefix.to_string(),
        })
    }

    /// The control client (for the lease, `check`, and restart detection).
    pub fn control(&self) -> &ControlClient {
        &self.control
    }

    /// Key of a table's partition hash.
    pub fn partitions_key(&self, table: &str) -> String {
        format!("{}:{{{table}}}:partitions", self.prefix)
    }

    /// Key of a table's watermark.
    pub fn watermark_key(&self, table: &str) -> String {
        format!("{}:{{{table}}}:watermark", self.prefix)
    }

    /// Key of the set of a table's fenced record attempts.
    pub fn fenced_key(&self, table: &str) -> String {
        format!("{}:{{{table}}}:fenced", self.prefix)
    }

    /// Every recorded partition of a table. Unreadable entries are returned as errors, not skipped.
    pub async fn entries(
        &self,
        table: &str,
    ) -> Result<BTreeMap<NaiveDate, LedgerEntry>, RedisError> {
        let raw: BTreeMap<String, String> = self
            .control
            .query_idempotent(::redis::cmd("HGETALL").arg(self.partitions_key(table)))
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

    /// Records a partition as loaded and moves the table's watermark, in one script, retried
    /// within the reconnect budget. When it fails, the attempt is settled before this returns (a
    /// late arrival fenced, a landed entry removed), and the error says whether that worked.
    pub async fn record(
        &self,
        table: &str,
        date: NaiveDate,
        entry: &LedgerEntry,
        watermarks: Watermarks,
    ) -> Result<Recorded, RedisError> {
        let attempt = Attempt {
            date,
            token: uuid::Uuid::new_v4().to_string(),
            json: serde_json::to_string(entry).expect("ledger entry serializes"),
            watermark_without: watermarks.without,
        };
        let args = [
            day(Some(date)),
            attempt.json.clone(),
            attempt.token.clone(),
            day(watermarks.with),
        ];
        let recorded = self
            .control
            .eval_idempotent::<i64>(&self.record_script, &self.keys(table), &args)
            .await;
        let failure = match recorded {
            Ok(answered) if answered.value == 1 => {
                return Ok(Recorded {
                    server: answered.server,
                    attempt,
                })
            }
            Ok(answered) => RedisError::Protocol(format!(
                "the ledger refused a fresh record attempt (reply {})",
                answered.value
            )),
            Err(err) => err,
        };
        let settled = self.settle(table, &attempt).await;
        Err(RedisError::Record {
            table: table.to_string(),
            date: day(Some(date)),
            settled: settled.is_ok(),
            source: Box::new(failure),
        })
    }

    /// Withdraws a record (its data may be missing: the server that holds the entry is not the
    /// one that acknowledged the data): removes the entry and sets the watermark back.
    /// Returns whether an entry was removed.
    pub async fn withdraw(&self, table: &str, recorded: &Recorded) -> Result<bool, RedisError> {
        self.settle(table, &recorded.attempt).await
    }

    /// Fences `attempt` and removes its entry if it is there (setting the watermark back then).
    /// Returns whether an entry was removed. Idempotent.
    async fn settle(&self, table: &str, attempt: &Attempt) -> Result<bool, RedisError> {
        let args = [
            day(Some(attempt.date)),
            attempt.json.clone(),
            attempt.token.clone(),
            day(attempt.watermark_without),
            FENCE_TTL_MS.to_string(),
        ];
        let removed = self
            .control
            .eval_idempotent::<i64>(&self.settle_script, &self.keys(table), &args)
            .await?;
        Ok(removed.value == 1)
    }

    /// The keys of the record and settle scripts.
    fn keys(&self, table: &str) -> [String; 3] {
        [
            self.partitions_key(table),
            self.watermark_key(table),
            self.fenced_key(table),
        ]
    }

    /// Forgets partitions (expired, or superseded snapshots).
    pub async fn forget(&self, table: &str, dates: &[NaiveDate]) -> Result<(), RedisError> {
        if dates.is_empty() {
            return Ok(());
        }
        let mut cmd = ::redis::cmd("HDEL");
        cmd.arg(self.partitions_key(table));
        for date in dates {
            cmd.arg(day(Some(*date)));
        }
        self.control.query_idempotent::<i64>(&cmd).await?;
        Ok(())
    }

    /// The recorded watermark.
    pub async fn watermark(&self, table: &str) -> Result<Option<NaiveDate>, RedisError> {
        let value: Option<String> = self
            .control
            .query_idempotent(::redis::cmd("GET").arg(self.watermark_key(table)))
            .await?;
        Ok(value.and_then(|v| NaiveDate::parse_from_str(&v, "%Y-%m-%d").ok()))
    }

    /// Sets (or clears) the watermark.
    pub async fn set_watermark(
        &self,
        table: &str,
        date: Option<NaiveDate>,
    ) -> Result<(), RedisError> {
        let key = self.watermark_key(table);
        match date {
            Some(date) => {
                let set = ::redis::cmd("SET").arg(key).arg(day(Some(date))).clone();
                self.control.query_idempotent::<()>(&set).await?
            }
            None => {
                let del = ::redis::cmd("DEL").arg(key).clone();
                self.control.query_idempotent::<i64>(&del).await?;
            }
        }
        Ok(())
    }

    /// `INFO <section>` parsed into its `name:value` lines.
    pub async fn info(&self, section: &str) -> Result<BTreeMap<String, String>, RedisError> {
        self.control.info(section).await
    }

    /// Fails unless the server is Redis 7.0 or newer (the writes rely on `PEXPIRETIME`).
    pub async fn check_version(&self) -> Result<String, RedisError> {
        self.control.check_version().await
    }
}

/// A date as the ledger writes it (`YYYY-MM-DD`; none: empty).
fn day(date: Option<NaiveDate>) -> String {
    date.map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}
