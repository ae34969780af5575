//! One table's run: plan it, load each partition that needs it (with retries, in a span naming
//! the partition), record each in the ledger once fully acknowledged (moving the watermark), then
//! forget what expired, update the watermark and report a late partition. After a Redis restart,
//! the table is planned again and what the restart lost is loaded again (see [`super::restarts`]).

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::NaiveDate;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::restarts::{restarted_too_often, Landed, TableRun, Written, MAX_TABLE_PASSES};
use super::retry::{retry_classified, Cancelled, RetryPolicy, Retryable};
use super::watermark::ledger_update;
use super::{
    partition_expiry, Counters, Engine, RunOptions, TableOutcome, TableStatus, LOG_TARGET,
};
use crate::config::{LoadMode, TableConfig};
use crate::encode::ValueFormat;
use crate::error::{PartitionError, RedisError};
use crate::ledger::LedgerEntry;
use crate::listing::TableListing;
use crate::load::{check_skipped_keys, prepare, send_partition, RowCommand};
use crate::plan::{PartitionState, TablePlan};
use crate::redis::control::ServerRunId;
use crate::redis::{WriteSession, WriteStyle};
use crate::throttle::{RateLimit, RateLimiter};

/// One partition to load, with what its load needs to know.
#[derive(Clone, Copy)]
struct PartitionJob<'a> {
    table: &'a TableConfig,
    listing: &'a TableListing,
    /// The ledger as it was when the table was planned.
    entries: &'a BTreeMap<NaiveDate, LedgerEntry>,
    /// The table's plan in this pass.
    plan: &'a TablePlan,
    /// Dates recorded in this pass so far (the watermark moves with them).
    loaded_now: &'a [NaiveDate],
    date: NaiveDate,
    /// Older than the newest loaded partition: write with the version guard.
    guarded: bool,
    limiter: &'a RateLimiter,
}

impl From<Cancelled> for PartitionError {
    fn from(_: Cancelled) -> PartitionError {
        PartitionError::Cancelled
    }
}

impl Engine {
    /// Runs one table: never fails, every problem ends up in the outcome (and the log). `run`
    /// holds what earlier passes of this table in this run did (see [`super::restarts`]): a
    /// pass that detects a Redis restart plans the table again and loads what is now missing.
    pub(super) async fn run_table(
        &self,
        table: &TableConfig,
        options: &RunOptions,
        run_id: &str,
        cancel: &CancellationToken,
        run: &mut TableRun,
    ) -> TableOutcome {
        let mut outcome = TableOutcome::new(&table.name);
        let control = self.ledger.control();
        loop {
            let first_pass = run.passes == 0;
            let (listing, entries, plan) = match self.plan_table(table, options.as_of).await {
                Ok(planned) => planned,
                Err(err) => {
                    table_failed(&mut outcome, &err, "table failed");
                    run.count_into(&mut outcome);
                    return outcome;
                }
            };
            run.start_pass(&entries, control.restarts());
            if first_pass {
                log_plan_findings(table, &plan);
            } else if !options.dry_run {
                tracing::info!(
                    target: LOG_TARGET,
                    event = "table_replanned",
                    table = %table.name,
                    pass = run.passes,
                    recorded = entries.len(),
                    "table planned again after a redis restart"
                );
                if let Err(err) = self.reset_watermark(table, &plan, &entries).await {
                    table_failed(&mut outcome, &err, "ledger update failed");
                    run.count_into(&mut outcome);
                    return outcome;
                }
            }
            let planned = match options.backfill {
                Some(b) => plan.dates_to_backfill(b.from, b.to, b.force),
                None => plan.dates_to_load(),
            };
            let dates = run.to_load(planned, &entries, run_id);
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
                if cancel.is_cancelled() || control.restarts() != run.restarts_seen {
                    break;
                }
                let partition = &listing.partitions[&date];
                let state = plan.partition(date).map_or("", |p| p.state.as_str());
                let span = tracing::info_span!("partition", table = %table.name, date = %date);
                if options.dry_run {
                    span.in_scope(|| {
                        tracing::info!(
                            target: LOG_TARGET,
                            event = "partition_planned",
                            table = %table.name,
                            date = %date,
                            state,
                            files = partition.files.len(),
                            bytes = partition.bytes(),
                            "partition would be loaded"
                        )
                    });
                    continue;
                }
                let job = PartitionJob {
                    table,
                    listing: &listing,
                    entries: &entries,
                    plan: &plan,
                    loaded_now: &loaded_now,
                    date,
                    guarded: newest_loaded.is_some_and(|newest| date < newest),
                    limiter: &limiter,
                };
                let landed = self
                    .load_and_record(job, state, run_id, cancel)
                    .instrument(span)
                    .await;
                match landed {
                    Ok(Landed::Recorded(stats)) => {
                        newest_loaded = Some(newest_loaded.map_or(date, |n| n.max(date)));
                        loaded_now.push(date);
                        run.mark_loaded(date, stats);
                    }
                    Ok(Landed::Withdrawn) => {}
                    Err(_) => {
                        run.mark_failed(date);
                    }
                }
            }
            let restarted = control.restarts() != run.restarts_seen;
            if restarted && !cancel.is_cancelled() && !options.dry_run {
                if run.passes < MAX_TABLE_PASSES {
                    continue;
                }
                restarted_too_often(&mut outcome, run.passes);
            }
            if !options.dry_run {
                if let Err(err) = self
                    .update_ledger(table, &plan, &entries, &loaded_now, &mut outcome)
                    .await
                {
                    table_failed(&mut outcome, &err, "ledger update failed");
                }
            }
            if let Some(late) = plan.late {
                log_partition_late(table, &plan, late);
                outcome.late = Some(late);
                outcome.worsen(TableStatus::Late);
            }
            run.count_into(&mut outcome);
            return outcome;
        }
    }

    /// Loads a partition (with retries) and records it in the ledger; logs `partition_loaded`
    /// or `partition_failed`. A partition reported failed has no ledger entry (see
    /// [`crate::ledger::Ledger::record`]).
    async fn load_and_record(
        &self,
        job: PartitionJob<'_>,
        state: &str,
        run_id: &str,
        cancel: &CancellationToken,
    ) -> Result<Landed, PartitionError> {
        let (table, date) = (job.table, job.date);
        let started = Instant::now();
        let landed = async {
            let (stats, server) = self.load_with_retries(job, cancel).await?;
            let written = Written {
                table,
                date,
                fingerprint: job.listing.partitions[&date].fingerprint(),
                stats,
                server,
                run_id,
            };
            self.record_loaded(written, job.plan, job.entries, job.loaded_now)
                .await
        }
        .await;
        match &landed {
            Ok(Landed::Recorded(stats)) => {
                log_keys_skipped(table, date, stats);
                log_partition_loaded(table, date, state, stats, job.guarded, started)
            }
            Ok(Landed::Withdrawn) => {}
            Err(err) => log_partition_failed(table, date, err),
        }
        landed
    }

    /// Forgets expired (and superseded snapshot) ledger entries and updates the watermark.
    async fn update_ledger(
        &self,
        table: &TableConfig,
        plan: &TablePlan,
        entries: &BTreeMap<NaiveDate, LedgerEntry>,
        loaded_now: &[NaiveDate],
        outcome: &mut TableOutcome,
    ) -> Result<(), RedisError> {
        let update = ledger_update(table.mode, plan, entries, loaded_now);
        self.ledger.forget(&table.name, &update.forget).await?;
        self.ledger
            .set_watermark(&table.name, update.watermark)
            .await?;
        outcome.watermark = update.watermark;
        Ok(())
    }

    /// Loads a partition, retrying transient failures: at least `redis.retry_attempts` in all,
    /// and Redis failures (a restart, a stall) until `redis.reconnect_budget_secs` after the
    /// first. Returns the stats and the server that acknowledged the successful attempt.
    async fn load_with_retries(
        &self,
        job: PartitionJob<'_>,
        cancel: &CancellationToken,
    ) -> Result<(Counters, ServerRunId), PartitionError> {
        let (table, date) = (job.table, job.date);
        let redis = &self.config.redis;
        retry_classified(
            RetryPolicy::partition_loads(redis.retry_attempts, redis.reconnect_budget),
            cancel,
            |err: &PartitionError| match err {
                PartitionError::Redis(err) if err.is_transient() => Retryable::ForBudget,
                err if err.is_transient() => Retryable::ForAttempts,
                _ => Retryable::Never,
            },
            |err, attempt, _delay| {
                tracing::warn!(
                    target: LOG_TARGET,
                    event = "partition_retry",
                    table = %table.name,
                    date = %date,
                    attempt,
                    error = %err,
                    "transient failure, retrying the partition"
                );
            },
            |_attempt| async {
                // Before the writes: a restart since the last command is detected here, and the
                // server named is one the writes can only follow (they reach it or its successor).
                let server = self.ledger.control().server().await?;
                Ok((self.load_partition(job).await?, server))
            },
        )
        .await
    }

    /// Writes one partition (and, for snapshot tables with `delete_missing`, deletes the keys of
    /// the previous snapshot that the new one did not rewrite).
    async fn load_partition(&self, job: PartitionJob<'_>) -> Result<Counters, PartitionError> {
        let PartitionJob {
            table,
            listing,
            entries,
            date,
            guarded,
            limiter,
            ..
        } = job;
        let partition = &listing.partitions[&date];
        let concurrency = self.config.source.read_concurrency;
        let prepared = prepare(&self.operator, table, partition, concurrency, false).await?;
        let style = match (&table.format, guarded) {
            (ValueFormat::Hash, guarded) => WriteStyle::Hash { guarded },
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
        check_skipped_keys(table, &stats)?;
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
                        target: LOG_TARGET,
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
                            target: LOG_TARGET,
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

/// Logs what the plan found that the run will not load: partition values that are not dates,
/// and cold partitions not complete yet.
fn log_plan_findings(table: &TableConfig, plan: &TablePlan) {
    for value in &plan.invalid_values {
        tracing::warn!(
            target: LOG_TARGET,
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
            target: LOG_TARGET,
            event = "partition_incomplete",
            table = %table.name,
            date = %partition.date,
            reason = partition.reason.as_deref().unwrap_or(""),
            "partition incomplete"
        );
    }
}

/// Marks the table failed and logs the `table_failed` event.
fn table_failed(outcome: &mut TableOutcome, err: &dyn std::fmt::Display, message: &str) {
    tracing::error!(target: LOG_TARGET, event = "table_failed", table = %outcome.table, error = %err, "{message}");
    outcome.worsen(TableStatus::Failed);
    outcome.error = Some(err.to_string());
}

fn log_partition_loaded(
    table: &TableConfig,
    date: NaiveDate,
    state: &str,
    stats: &Counters,
    guarded: bool,
    started: Instant,
) {
    let Counters {
        files,
        rows,
        keys,
        skipped_null_keys,
        kept_newer,
        deleted_empty_keys,
        bytes,
        payload_bytes,
    } = *stats;
    tracing::info!(
        target: LOG_TARGET,
        event = "partition_loaded",
        table = %table.name,
        date = %date,
        state,
        files,
        rows,
        keys,
        skipped_null_keys,
        kept_newer,
        deleted_empty_keys,
        bytes,
        payload_bytes,
        guarded,
        duration_ms = started.elapsed().as_millis() as u64,
        "partition loaded"
    );
}

/// WARN when a loaded partition skipped rows for a null or empty key (within
/// `max_skipped_ratio`, or it would have failed).
fn log_keys_skipped(table: &TableConfig, date: NaiveDate, stats: &Counters) {
    if stats.skipped_null_keys == 0 {
        return;
    }
    tracing::warn!(
        target: LOG_TARGET,
        event = "keys_skipped",
        table = %table.name,
        date = %date,
        rows = stats.rows,
        skipped_null_keys = stats.skipped_null_keys,
        max_skipped_ratio = table.max_skipped_ratio,
        "rows with a null or empty key column were skipped"
    );
}

fn log_partition_failed(table: &TableConfig, date: NaiveDate, err: &PartitionError) {
    if let PartitionError::TooManySkippedKeys {
        rows,
        skipped_null_keys,
        max_skipped_ratio,
    } = err
    {
        tracing::error!(
            target: LOG_TARGET,
            event = "partition_failed",
            table = %table.name,
            date = %date,
            file = "",
            transient = false,
            rows,
            skipped_null_keys,
            max_skipped_ratio,
            error = %err,
            "partition failed"
        );
        return;
    }
    tracing::error!(
        target: LOG_TARGET,
        event = "partition_failed",
        table = %table.name,
        date = %date,
        file = err.file().unwrap_or(""),
        transient = err.is_transient(),
        error = %err,
        "partition failed"
    );
}

fn log_partition_late(table: &TableConfig, plan: &TablePlan, late: NaiveDate) {
    let reason = plan
        .partition(late)
        .map(|p| p.reason.as_deref().unwrap_or("incomplete"))
        .unwrap_or("missing");
    tracing::error!(
        target: LOG_TARGET,
        event = "partition_late",
        table = %table.name,
        date = %late,
        today = %plan.today,
        partition = %table.format_partition_value(late),
        reason,
        "newest cold partition is not complete: readers miss a day"
    );
}
