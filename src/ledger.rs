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
//! - `<prefix>:{<table>}:lease` and `<prefix>:{<table>}:lease:shards`: the table's leases (see
//!   [`crate::lease`]). A run records a partition only while it holds its lease: the record
//!   script checks the lease and writes in one step ([`Ledger::record_leased`]).
//!
//! - `<prefix>:{<table>}:verified`: hash, the last `verify` of the table (see
//!   [`crate::verify::record`]).
//!
//! `<table>` is the table's ledger id ([`crate::config::TableConfig::ledger_id`]): its name, or
//! `name@layout` for a table with a `layout`, so each layout has its own ledger.
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
use crate::lease::LEASE_HELD;
use crate::redis::control::{ControlClient, ServerRunId};
use crate::redis::Connector;
use crate::run::Counters;

/// Records an entry and sets the watermark, unless the attempt was fenced or the lease it needs
/// is not held (the lease check is [`LEASE_HELD`], prepended).
/// `KEYS`: partitions, watermark, fenced, lease (the exclusive key or the shard set); `ARGV`:
/// date, entry, token, watermark (`''` clears it), `'1'` to set the watermark (`'0'` leaves it),
/// lease kind (`exclusive`, `shard`, `''`: no lease needed), lease holder.
/// Returns 1 when recorded, 0 when fenced, -1 when the lease is not held (nothing written).
const RECORD_SCRIPT: &str = r#"if redis.call('SISMEMBER', KEYS[3], ARGV[3]) == 1 then return 0 end
if ARGV[6] ~= '' and not lease_held(KEYS[4], ARGV[6], ARGV[7]) then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[5] == '1' then
  if ARGV[4] == '' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[4]) end
end
return 1"#;

/// Settles an abandoned record attempt: fences its token, and if its entry landed, removes it and
/// sets the watermark back (if the record set it). `KEYS` as [`RECORD_SCRIPT`]; `ARGV`: date,
/// entry, token, watermark, fence expiry (ms), `'1'` to set the watermark back.
/// Returns 1 when an entry was removed.
const SETTLE_SCRIPT: &str = r#"redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if ARGV[6] == '1' then
  if ARGV[4] == '' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[4]) end
end
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
    /// The Iceberg snapshot or Delta version the partition's files were read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
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

/// The lease a record needs: the entry lands only while `holder` holds the lease at `key`
/// (built by [`crate::lease::Lease`]).
#[derive(Debug, Clone)]
pub struct LeaseCheck {
    /// `exclusive` or `shard`, as the scripts take it.
    pub(crate) kind: &'static str,
    /// The exclusive lease key, or the shard set.
    pub(crate) key: String,
    /// The holder as stored: the lease's value, or the set member.
    pub(crate) holder: String,
}

/// What a record that needs a lease came to.
#[derive(Debug, Clone)]
pub enum RecordOutcome {
    /// Recorded.
    Recorded(Recorded),
    /// The lease was not held: nothing was recorded (and an earlier attempt that landed was
    /// settled). `server` answered.
    LeaseNotHeld {
        /// The server that answered.
        server: ServerRunId,
    },
}

/// One attempt to record a partition: what settling or withdrawing it needs.
#[derive(Debug, Clone)]
struct Attempt {
    date: NaiveDate,
    token: String,
    json: String,
    /// The watermark without the partition, if the record sets the watermark.
    watermark_without: Option<Option<NaiveDate>>,
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
            record_script: control
                .preload(&format!("{LEASE_HELD}{RECORD_SCRIPT}"))
                .await?,
            settle_script: control.preload(SETTLE_SCRIPT).await?,
            control: Arc::new(control),
            prefix: prefix.to_string(),
        })
    }

    /// The control client (for the lease, `check`, and restart detection).
    pub fn control(&self) -> &Arc<ControlClient> {
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

    /// Key of the set of a table's fenced record attempts.
    pub fn fenced_key(&self, table: &str) -> String {
        format!("{}:{{{table}}}:fenced", self.prefix)
    }

    /// Key of the hash holding a table's (layout's) last verify result (see [`crate::verify`]).
    pub fn verified_key(&self, table: &str) -> String {
        format!("{}:{{{table}}}:verified", self.prefix)
    }

    /// Removes a table's ledger: entries, watermark, fenced attempts and verify result (a
    /// retired layout). Returns the keys deleted.
    pub async fn remove(&self, table: &str) -> Result<i64, RedisError> {
        self.control
            .query_idempotent(
                ::redis::cmd("DEL")
                    .arg(self.partitions_key(table))
                    .arg(self.watermark_key(table))
                    .arg(self.fenced_key(table))
                    .arg(self.verified_key(table)),
            )
            .await
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
    /// within the reconnect budget (no lease needed: see [`Ledger::record_leased`]). When it
    /// fails, the attempt is settled before this returns (a late arrival fenced, a landed entry
    /// removed), and the error says whether that worked.
    pub async fn record(
        &self,
        table: &str,
        date: NaiveDate,
        entry: &LedgerEntry,
        watermarks: Watermarks,
    ) -> Result<Recorded, RedisError> {
        match self
            .record_checked(table, date, entry, Some(watermarks), None)
            .await?
        {
            RecordOutcome::Recorded(recorded) => Ok(recorded),
            RecordOutcome::LeaseNotHeld { .. } => Err(RedisError::Protocol(
                "the ledger asked for a lease that a record without one does not name".into(),
            )),
        }
    }

    /// [`Ledger::record`], only while `lease` is held (checked in the same script), moving the
    /// watermark only when `watermarks` are given. An attempt that finds the lease not held writes
    /// nothing; an earlier attempt of it that landed is settled.
    pub async fn record_leased(
        &self,
        table: &str,
        date: NaiveDate,
        entry: &LedgerEntry,
        watermarks: Option<Watermarks>,
        lease: &LeaseCheck,
    ) -> Result<RecordOutcome, RedisError> {
        self.record_checked(table, date, entry, watermarks, Some(lease))
            .await
    }

    /// The one record path: the record script, retried within the reconnect budget, and the
    /// attempt settled unless it was recorded.
    async fn record_checked(
        &self,
        table: &str,
        date: NaiveDate,
        entry: &LedgerEntry,
        watermarks: Option<Watermarks>,
        lease: Option<&LeaseCheck>,
    ) -> Result<RecordOutcome, RedisError> {
        let attempt = Attempt {
            date,
            token: uuid::Uuid::new_v4().to_string(),
            json: serde_json::to_string(entry).expect("ledger entry serializes"),
            watermark_without: watermarks.map(|w| w.without),
        };
        let args = [
            day(Some(date)),
            attempt.json.clone(),
            attempt.token.clone(),
            day(watermarks.and_then(|w| w.with)),
            flag(watermarks.is_some()),
            lease.map_or("", |lease| lease.kind).to_string(),
            lease.map_or(String::new(), |lease| lease.holder.clone()),
        ];
        let keys = self.keys(table, lease);
        let recorded = self
            .control
            .eval_idempotent::<i64>(&self.record_script, &keys, &args)
            .await;
        let failure = match recorded {
            Ok(answered) if answered.value == 1 => {
                return Ok(RecordOutcome::Recorded(Recorded {
                    server: answered.server,
                    attempt,
                }))
            }
            // Nothing written by this attempt; a retried one may have landed before the lease
            // was lost: settled like any other record that did not succeed.
            Ok(answered) if answered.value == -1 => {
                return match self.settle(table, &attempt).await {
                    Ok(_) => Ok(RecordOutcome::LeaseNotHeld {
                        server: answered.server,
                    }),
                    Err(err) => Err(RedisError::Record {
                        table: table.to_string(),
                        date: day(Some(date)),
                        settled: false,
                        source: Box::new(err),
                    }),
                };
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
            day(attempt.watermark_without.flatten()),
            FENCE_TTL_MS.to_string(),
            flag(attempt.watermark_without.is_some()),
        ];
        let removed = self
            .control
            .eval_idempotent::<i64>(&self.settle_script, &self.keys(table, None), &args)
            .await?;
        Ok(removed.value == 1)
    }

    /// The keys of the record and settle scripts: the lease key is `lease`'s, else the table's
    /// exclusive lease key (not read then; every key shares the table's hash tag).
    fn keys(&self, table: &str, lease: Option<&LeaseCheck>) -> [String; 4] {
        [
            self.partitions_key(table),
            self.watermark_key(table),
            self.fenced_key(table),
            lease.map_or_else(|| self.lease_key(table), |lease| lease.key.clone()),
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

    /// `INFO <section>` parsed into its `name:value` lines.
    pub async fn info(&self, section: &str) -> Result<BTreeMap<String, String>, RedisError> {
        self.control.info(section).await
    }

    /// Fails unless the server is Redis 7.0 or newer (the writes rely on `PEXPIRETIME`).
    pub async fn check_version(&self) -> Result<String, RedisError> {
        self.control.check_version().await
    }
}

/// A flag as the scripts take it.
fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_string()
}

/// A date as the ledger writes it (`YYYY-MM-DD`; none: empty).
fn day(date: Option<NaiveDate>) -> String {
    date.map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}
