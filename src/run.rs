//! A whole run: for every selected table list, plan, load the partitions that need it (oldest
//! first), record each in the ledger once fully acknowledged, update the watermark, report late
//! partitions, and summarize. Also the read-only commands: `plan`, `status`, `check`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use opendal::Operator;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LoadMode, TableConfig};
use crate::error::{PartitionError, RedisError, SourceError};
use crate::ledger::{Ledger, LedgerEntry};
use crate::listing::{list_table, TableListing};
use crate::load::{prepare, send_partition, PartitionStats, RowCommand};
use crate::plan::{plan_table, PartitionState, TablePlan};
use crate::redis::{Connector, Expiry, WriteSession, WriteStyle};
use crate::source::build_operator;
use crate::throttle::{run_adaptive, RateLimit, RateLimiter, ADAPTIVE_CEILING};

/// Process exit codes, documented in the README.
pub mod exit_code {
    /// Everything loaded, nothing late.
    pub const OK: i32 = 0;
    /// Unexpected failure: Redis or the object store unreachable at start, bad arguments.
    pub const FATAL: i32 = 1;
    /// The configuration is invalid.
    pub const CONFIG: i32 = 2;
    /// At least one partition (or table) failed to load.
    pub const FAILED: i32 = 3;
    /// Everything that could load loaded, but a table's newest cold partition is missing.
    pub const LATE: i32 = 4;
}

/// What a run loads.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Tables to run (all when empty).
    pub tables: Vec<String>,
    /// Business day taken as today (default: now in each table's time zone).
    pub as_of: Option<NaiveDate>,
    /// Plan and log, write nothing.
    pub dry_run: bool,
    /// Load only this date range.
    pub backfill: Option<Backfill>,
}

/// A backfill range.
#[derive(Debug, Clone, Copy)]
pub struct Backfill {
    /// First date, inclusive.
    pub from: NaiveDate,
    /// Last date, inclusive.
    pub to: NaiveDate,
    /// Reload partitions already loaded.
    pub force: bool,
}

/// Outcome of one table in a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableOutcome {
    /// Table name.
    pub table: String,
    /// `ok`, `late`, `failed`.
    pub status: String,
    /// Partitions loaded in this run.
    pub partitions_loaded: u64,
    /// Partitions that failed.
    pub partitions_failed: u64,
    /// The late date, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late: Option<NaiveDate>,
    /// Watermark after the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<NaiveDate>,
    /// Rows read.
    pub rows: u64,
    /// Keys written.
    pub keys: u64,
    /// Rows skipped for null keys.
    pub skipped_null_keys: u64,
    /// Guarded writes that kept newer values.
    pub kept_newer: u64,
    /// Bytes of Parquet read.
    pub bytes: u64,
    /// A table-level error (listing, ledger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The summary of a run: the `run_finished` event and `--json` output.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Exit code the process ends with.
    pub exit_code: i32,
    /// Wall time.
    pub duration_ms: u64,
    /// Partitions loaded.
    pub partitions_loaded: u64,
    /// Partitions failed.
    pub partitions_failed: u64,
    /// Tables with a late partition.
    pub partitions_late: u64,
    /// Rows read.
    pub rows: u64,
    /// Keys written.
    pub keys: u64,
    /// Rows skipped for null keys.
    pub skipped_null_keys: u64,
    /// Bytes of Parquet read.
    pub bytes: u64,
    /// Dry run: nothing was written.
    pub dry_run: bool,
    /// Per table.
    pub tables: Vec<TableOutcome>,
}

/// The business day in `tz` now.
pub fn today_in(tz: Tz) -> NaiveDate {
    Utc::now().with_timezone(&tz).date_naive()
}

/// Milliseconds since the epoch of the start of `date` in `tz`.
pub fn start_of_day_ms(date: NaiveDate, tz: Tz) -> i64 {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    match tz.from_local_datetime(&midnight).earliest() {
        Some(at) => at.timestamp_millis(),
        // A DST gap at midnight: the day starts an hour later.
        None => tz
            .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
            .earliest()
            .map(|at| at.timestamp_millis())
            .unwrap_or_else(|| midnight.and_utc().timestamp_millis()),
    }
}

/// Absolute expiry of the keys of a partition: incremental tables keep a date for
/// `retention_days` (the key expires when the date leaves the window, at the start of
/// `date + retention_days + 1`); snapshot keys live until the next snapshot is due
/// (`date + hot_days + 1`) plus `snapshot_grace_days`.
pub fn partition_expiry(table: &TableConfig, date: NaiveDate) -> Expiry {
    let days = match table.mode {
        LoadMode::Incremental => u64::from(table.retention_days) + 1,
        LoadMode::Snapshot => u64::from(table.hot_days) + 1 + u64::from(table.snapshot_grace_days),
    };
    Expiry::at(start_of_day_ms(date + Days::new(days), table.timezone))
}

/// One partition to load, with what its load needs to know.
#[derive(Clone, Copy)]
struct PartitionJob<'a> {
    table: &'a TableConfig,
    listing: &'a TableListing,
    /// The ledger as it was when the table was planned.
    entries: &'a BTreeMap<NaiveDate, LedgerEntry>,
    date: NaiveDate,
    /// Older than the newest loaded partition: write with the version guard.
    guarded: bool,
    limiter: &'a RateLimiter,
}

/// Ledger, object store and config, ready for commands.
pub struct Engine {
    config: Config,
    operator: Operator,
    ledger: Ledger,
    /// Opens every Redis connection of the engine (TLS set up once).
    connector: Arc<Connector>,
    /// `redis.max_keys_per_sec`, or the adaptive rate; shared by every table of a run.
    global_limit: Option<Arc<RateLimit>>,
}

/// Starting a command failed before any table was touched.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The object store could not be set up.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Redis is unreachable or unsuitable.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// Bad command-line arguments (unknown table, reversed range).
    #[error(transparent)]
    Config(#[from] crate::error::ConfigError),
}

impl StartError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Config(_) => exit_code::CONFIG,
            _ => exit_code::FATAL,
        }
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Engine {
    /// Builds the object-store operator, connects to Redis and checks its version.
    pub async fn connect(config: Config) -> Result<Engine, StartError> {
        let operator = build_operator(&config.source)?;
        let connector = Arc::new(Connector::new(&config.redis)?);
        let ledger = Ledger::open(&connector, &config.ledger_prefix).await?;
        ledger.check_version().await?;
        let global_limit = match (config.redis.max_keys_per_sec, config.redis.adaptive_latency) {
            (Some(rate), _) => Some(RateLimit::new(rate)),
            (None, Some(_)) => Some(RateLimit::new(ADAPTIVE_CEILING)),
            (None, None) => None,
        };
        Ok(Engine {
            config,
            operator,
            ledger,
            connector,
            global_limit,
        })
    }

    /// The validated config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The object store.
    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    /// Lists a table and plans it against the ledger.
    pub async fn plan_table(
        &self,
        table: &TableConfig,
        as_of: Option<NaiveDate>,
    ) -> Result<(TableListing, BTreeMap<NaiveDate, LedgerEntry>, TablePlan), PartitionError> {
        let listing = list_table(&self.operator, table).await?;
        let entries = self.ledger.entries(&table.name).await?;
        let fingerprints = entries
            .iter()
            .map(|(date, entry)| (*date, entry.fingerprint.clone()))
            .collect();
        let today = as_of.unwrap_or_else(|| today_in(table.timezone));
        let plan = plan_table(table, &listing, &fingerprints, today, now_ms());
        Ok((listing, entries, plan))
    }

    /// Runs (or backfills) the selected tables. Never fails as a whole once started: every
    /// problem is logged with its identity and reflected in the summary's exit code.
    pub async fn run(
        &self,
        options: &RunOptions,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, StartError> {
        let tables = self.config.select_tables(&options.tables)?;
        if let Some(backfill) = options.backfill {
            if backfill.from > backfill.to {
                return Err(crate::error::ConfigError::Invalid {
                    option: "--from".into(),
                    message: format!("{} is after --to {}", backfill.from, backfill.to),
                }
                .into());
            }
        }
        let run_id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        tracing::info!(
            event = "run_started",
            run_id = %run_id,
            tables = tables.len(),
            dry_run = options.dry_run,
            backfill = options.backfill.is_some(),
            as_of = ?options.as_of,
            redis = %self.config.redis.masked_url(),
            source = %self.config.source.scheme,
            "run started"
        );
        let stop_probe = cancel.child_token();
        if let (Some(target), Some(limit)) =
            (self.config.redis.adaptive_latency, &self.global_limit)
        {
            if !options.dry_run {
                tokio::spawn(run_adaptive(
                    self.connector.clone(),
                    target,
                    limit.clone(),
                    stop_probe.clone(),
                ));
            }
        }
        let _stop_probe = stop_probe.drop_guard();
        let mut summary = RunSummary {
            run_id: run_id.clone(),
            dry_run: options.dry_run,
            ..RunSummary::default()
        };
        for table in &tables {
            if cancel.is_cancelled() {
                break;
            }
            let outcome = self.run_table(table, options, &run_id, cancel).await;
            summary.partitions_loaded += outcome.partitions_loaded;
            summary.partitions_failed += outcome.partitions_failed;
            summary.partitions_late += u64::from(outcome.late.is_some());
            summary.rows += outcome.rows;
            summary.keys += outcome.keys;
            summary.skipped_null_keys += outcome.skipped_null_keys;
            summary.bytes += outcome.bytes;
            summary.tables.push(outcome);
        }
        let failed = summary.tables.iter().any(|t| t.status == "failed") || cancel.is_cancelled();
        summary.exit_code = if failed {
            exit_code::FAILED
        } else if summary.partitions_late > 0 {
            exit_code::LATE
        } else {
            exit_code::OK
        };
        summary.duration_ms = started.elapsed().as_millis() as u64;
        let tables_json = serde_json::to_string(&summary.tables).expect("outcomes serialize");
        tracing::info!(
            event = "run_finished",
            run_id = %summary.run_id,
            exit_code = summary.exit_code,
            duration_ms = summary.duration_ms,
            partitions_loaded = summary.partitions_loaded,
            partitions_failed = summary.partitions_failed,
            partitions_late = summary.partitions_late,
            rows = summary.rows,
            keys = summary.keys,
            skipped_null_keys = summary.skipped_null_keys,
            bytes = summary.bytes,
            dry_run = summary.dry_run,
            tables = %tables_json,
            "run finished"
        );
        Ok(summary)
    }

    async fn run_table(
        &self,
        table: &TableConfig,
        options: &RunOptions,
        run_id: &str,
        cancel: &CancellationToken,
    ) -> TableOutcome {
        let mut outcome = TableOutcome {
            table: table.name.clone(),
            status: "ok".into(),
            ..TableOutcome::default()
        };
        let (listing, entries, plan) = match self.plan_table(table, options.as_of).await {
            Ok(planned) => planned,
            Err(err) => {
                tracing::error!(event = "table_failed", table = %table.name, error = %err, "table failed");
                outcome.status = "failed".into();
                outcome.error = Some(err.to_string());
                return outcome;
            }
        };
        for value in &plan.invalid_values {
            tracing::warn!(
                event = "partition_skipped",
                table = %table.name,
                value = %value,
                reason = "partition value is not a date in partition_format",
                "partition skipped"
            );
        }
        for partition in plan
            .partitions
            .iter()
            .filter(|p| p.state == PartitionState::Incomplete)
        {
            tracing::info!(
                event = "partition_incomplete",
                table = %table.name,
                date = %partition.date,
                reason = partition.reason.as_deref().unwrap_or(""),
                "partition incomplete"
            );
        }
        let dates = match options.backfill {
            Some(b) => plan.dates_to_backfill(b.from, b.to, b.force),
            None => plan.dates_to_load(),
        };
        let mut newest_loaded = entries.keys().next_back().copied();
        let limits = self
            .global_limit
            .iter()
            .cloned()
            .chain(table.max_keys_per_sec.map(RateLimit::new))
            .collect();
        let limiter = RateLimiter::new(limits);
        let mut loaded_now = Vec::new();
        for date in dates {
            if cancel.is_cancelled() {
                break;
            }
            let partition = &listing.partitions[&date];
            let state = plan.partition(date).map_or("", |p| p.state.as_str());
            if options.dry_run {
                tracing::info!(
                    event = "partition_planned",
                    table = %table.name,
                    date = %date,
                    state,
                    files = partition.files.len(),
                    bytes = partition.bytes(),
                    "partition would be loaded"
                );
                continue;
            }
            let guarded = newest_loaded.is_some_and(|newest| date < newest);
            let started = Instant::now();
            let result = self
                .load_with_retries(
                    PartitionJob {
                        table,
                        listing: &listing,
                        entries: &entries,
                        date,
                        guarded,
                        limiter: &limiter,
                    },
                    cancel,
                )
                .await;
            match result {
                Ok(stats) => {
                    let entry = LedgerEntry {
                        fingerprint: partition.fingerprint(),
                        files: stats.files,
                        rows: stats.rows,
                        keys: stats.keys,
                        skipped_null_keys: stats.skipped_null_keys,
                        kept_newer: stats.kept_newer,
                        bytes: stats.bytes,
                        run_id: run_id.to_string(),
                        loaded_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        expires_at_ms: partition_expiry(table, date).millis,
                    };
                    if let Err(err) = self.ledger.record(&table.name, date, &entry).await {
                        self.partition_failed(table, date, &err.into(), &mut outcome);
                        continue;
                    }
                    newest_loaded = Some(newest_loaded.map_or(date, |n| n.max(date)));
                    loaded_now.push(date);
                    tracing::info!(
                        event = "partition_loaded",
                        table = %table.name,
                        date = %date,
                        state,
                        files = stats.files,
                        rows = stats.rows,
                        keys = stats.keys,
                        skipped_null_keys = stats.skipped_null_keys,
                        kept_newer = stats.kept_newer,
                        bytes = stats.bytes,
                        payload_bytes = stats.payload_bytes,
                        guarded,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "partition loaded"
                    );
                    outcome.partitions_loaded += 1;
                    outcome.rows += stats.rows;
                    outcome.keys += stats.keys;
                    outcome.skipped_null_keys += stats.skipped_null_keys;
                    outcome.kept_newer += stats.kept_newer;
                    outcome.bytes += stats.bytes;
                }
                Err(err) => self.partition_failed(table, date, &err, &mut outcome),
            }
        }
        if !options.dry_run {
            if let Err(err) = self
                .tidy_ledger(table, &plan, &entries, &loaded_now, &mut outcome)
                .await
            {
                tracing::error!(event = "table_failed", table = %table.name, error = %err, "ledger update failed");
                outcome.status = "failed".into();
                outcome.error = Some(err.to_string());
            }
        }
        if let Some(late) = plan.late {
            tracing::error!(
                event = "partition_late",
                table = %table.name,
                date = %late,
                today = %plan.today,
                partition = %table.format_partition_value(late),
                reason = plan.partition(late).map(|p| p.reason.as_deref().unwrap_or("incomplete")).unwrap_or("missing"),
                "newest cold partition is not complete: readers miss a day"
            );
            outcome.late = Some(late);
            if outcome.status == "ok" {
                outcome.status = "late".into();
            }
        }
        outcome
    }

    fn partition_failed(
        &self,
        table: &TableConfig,
        date: NaiveDate,
        err: &PartitionError,
        outcome: &mut TableOutcome,
    ) {
        tracing::error!(
            event = "partition_failed",
            table = %table.name,
            date = %date,
            file = err.file().unwrap_or(""),
            transient = err.is_transient(),
            error = %err,
            "partition failed"
        );
        outcome.partitions_failed += 1;
        outcome.status = "failed".into();
    }

    /// Forgets expired (and superseded snapshot) ledger entries and updates the watermark.
    async fn tidy_ledger(
        &self,
        table: &TableConfig,
        plan: &TablePlan,
        entries: &BTreeMap<NaiveDate, LedgerEntry>,
        loaded_now: &[NaiveDate],
        outcome: &mut TableOutcome,
    ) -> Result<(), RedisError> {
        let newest_snapshot = loaded_now.iter().max().copied();
        let forget: Vec<NaiveDate> = entries
            .keys()
            .copied()
            .filter(|date| {
                *date < plan.oldest_kept
                    || (table.mode == LoadMode::Snapshot
                        && newest_snapshot.is_some_and(|n| *date < n))
            })
            .collect();
        self.ledger.forget(&table.name, &forget).await?;
        let is_loaded = |date: NaiveDate| {
            loaded_now.contains(&date) || (entries.contains_key(&date) && !forget.contains(&date))
        };
        let watermark = match table.mode {
            LoadMode::Snapshot => plan
                .partitions
                .iter()
                .rev()
                .map(|p| p.date)
                .find(|d| is_loaded(*d) && *d >= plan.oldest_kept),
            // Every day from the oldest partition in the window on, without a gap: a day with no
            // partition at all stops the watermark like a day not loaded.
            LoadMode::Incremental => {
                let first = plan
                    .partitions
                    .iter()
                    .map(|p| p.date)
                    .find(|d| *d >= plan.oldest_kept && *d <= plan.newest_cold);
                let mut mark = None;
                let mut day = first;
                while let Some(date) = day.filter(|d| *d <= plan.newest_cold && is_loaded(*d)) {
                    mark = Some(date);
                    day = date.succ_opt();
                }
                mark
            }
        };
        self.ledger.set_watermark(&table.name, watermark).await?;
        outcome.watermark = watermark;
        Ok(())
    }

    async fn load_with_retries(
        &self,
        job: PartitionJob<'_>,
        cancel: &CancellationToken,
    ) -> Result<PartitionStats, PartitionError> {
        let (table, date) = (job.table, job.date);
        let attempts = self.config.redis.retry_attempts.max(1);
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            let result = tokio::select! {
                result = self.load_partition(job) => result,
                _ = cancel.cancelled() => Err(PartitionError::Cancelled),
            };
            match result {
                Err(err) if err.is_transient() && attempt < attempts => {
                    let jitter = rand::random_range(0..=delay.as_millis() as u64 / 2);
                    tracing::warn!(
                        event = "partition_retry",
                        table = %table.name,
                        date = %date,
                        attempt,
                        error = %err,
                        "transient failure, retrying the partition"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay + Duration::from_millis(jitter)) => {}
                        _ = cancel.cancelled() => return Err(PartitionError::Cancelled),
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Writes one partition (and, for snapshot tables with `delete_missing`, deletes the keys of
    /// the previous snapshot that the new one did not rewrite).
    async fn load_partition(
        &self,
        job: PartitionJob<'_>,
    ) -> Result<PartitionStats, PartitionError> {
        let PartitionJob {
            table,
            listing,
            entries,
            date,
            guarded,
            limiter,
        } = job;
        let partition = &listing.partitions[&date];
        let concurrency = self.config.source.read_concurrency;
        let prepared = prepare(&self.operator, table, partition, concurrency, false).await?;
        let style = match (&table.format, guarded) {
            (crate::encode::ValueFormat::Hash, guarded) => WriteStyle::Hash { guarded },
            (_, true) => WriteStyle::GuardedSet,
            (_, false) => WriteStyle::Set,
        };
        let expiry = partition_expiry(table, date);
        let session = WriteSession::open(&self.connector).await?;
        let stats = send_partition(
            prepared,
            session,
            RowCommand::Write(style),
            &expiry,
            self.config.redis.batch_size,
            limiter,
        )
        .await?;
        if table.mode == LoadMode::Snapshot && table.delete_missing {
            let previous = entries.keys().copied().filter(|d| *d < date).max();
            match previous.and_then(|d| listing.partitions.get(&d)) {
                Some(old) => {
                    let prepared = prepare(&self.operator, table, old, concurrency, true).await?;
                    let session = WriteSession::open(&self.connector).await?;
                    let deleted = send_partition(
                        prepared,
                        session,
                        RowCommand::DeleteIfOlder,
                        &expiry,
                        self.config.redis.batch_size,
                        limiter,
                    )
                    .await?;
                    tracing::info!(
                        event = "snapshot_keys_deleted",
                        table = %table.name,
                        date = %date,
                        previous = %old.date,
                        deleted = deleted.keys,
                        "keys absent from the new snapshot deleted"
                    );
                }
                None => {
                    if let Some(previous) = previous {
                        tracing::warn!(
                            event = "snapshot_previous_missing",
                            table = %table.name,
                            date = %date,
                            previous = %previous,
                            "previous snapshot files are gone: its keys absent from the new one expire by TTL"
                        );
                    }
                }
            }
        }
        Ok(stats)
    }
}
