//! One table's run: take the table's lease, plan it, load each partition that needs it (with
//! retries, in a span naming the partition), record each in the ledger once fully acknowledged
//! (and only while the lease is held), wait for a late partition if the table says so, then
//! forget what expired, update the watermark, release the lease and log `table_finished`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::retry::{retry, Cancelled, RetryPolicy};
use super::watermark::ledger_update;
use super::{
    partition_expiry, progress, Counters, Engine, RunOptions, TableOutcome, TableStatus, LOG_TARGET,
};
use crate::config::{LoadMode, TableConfig};
use crate::encode::ValueFormat;
use crate::error::{PartitionError, RedisError};
use crate::lease::{Acquired, Lease, LeaseHolder, LeaseKind, WatermarkSet};
use crate::ledger::LedgerEntry;
use crate::listing::TableListing;
use crate::load::{prepare, send_partition, RowCommand};
use crate::plan::{PartitionState, TablePlan};
use crate::redis::{WriteSession, WriteStyle};
use crate::throttle::{RateLimit, RateLimiter};

/// One partition to load, with what its load needs to know.
#[derive(Clone, Copy)]
struct PartitionJob<'a> {
    table: &'a TableConfig,
    listing: &'a TableListing,
    /// The ledger as it was when the table was planned.
    entries: &'a BTreeMap<NaiveDate, LedgerEntry>,
    date: NaiveDate,
    /// Older than the newest loaded partition, or a shard's: write with the version guard.
    guarded: bool,
    limiter: &'a RateLimiter,
    /// The table's lease: the partition is recorded only while it is held.
    lease: &'a Lease,
}

/// What every step of one table's run shares.
pub(super) struct TableRun<'a> {
    pub(super) table: &'a TableConfig,
    pub(super) options: &'a RunOptions,
    pub(super) run_id: &'a str,
    /// Fires on shutdown, and when the lease is lost.
    pub(super) cancel: &'a CancellationToken,
    /// `None` in a dry run (which writes nothing).
    pub(super) lease: Option<&'a Lease>,
    pub(super) limiter: RateLimiter,
}

/// What the partitions loaded so far in a table's run changed.
#[derive(Default)]
pub(super) struct Loaded {
    /// The newest date in the ledger (guards loads of older dates).
    newest: Option<NaiveDate>,
    /// The dates loaded (and recorded) in this run.
    dates: Vec<NaiveDate>,
}

impl From<Cancelled> for PartitionError {
    fn from(_: Cancelled) -> PartitionError {
        PartitionError::Cancelled
    }
}

/// Times the watermark is computed again when other shards record meanwhile.
const WATERMARK_ATTEMPTS: usize = 16;

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Engine {
    /// Runs one table: never fails, every problem ends up in the outcome (and the log).
    pub(super) async fn run_table(
        &self,
        table: &TableConfig,
        options: &RunOptions,
        run_id: &str,
        cancel: &CancellationToken,
    ) -> TableOutcome {
        let mut outcome = TableOutcome::new(&table.name);
        let shard = options.shard.map(|s| s.to_string());
        let lease = if options.dry_run {
            None
        } else {
            let kind = options.shard.map_or(LeaseKind::Exclusive, LeaseKind::Shard);
            let holder = LeaseHolder::new(run_id, &self.config.lease.host);
            let (ttl, wait) = (self.config.lease.ttl, table.lease_wait);
            let acquired =
                Lease::acquire(&self.ledger, &table.name, kind, &holder, ttl, wait, cancel).await;
            match acquired {
                Ok(Acquired::Held(lease, waited)) => {
                    outcome.lease_wait_ms = millis(waited);
                    Some(lease)
                }
                Ok(Acquired::Busy(holder, waited)) => {
                    outcome.lease_wait_ms = millis(waited);
                    log_lease_held(table, &holder, waited);
                    outcome.worsen(TableStatus::LeaseHeld);
                    outcome.error = Some(format!(
                        "lease held by run {} on {} since {}",
                        holder.run_id, holder.host, holder.since
                    ));
                    outcome.log_finished(run_id, shard.as_deref());
                    return outcome;
                }
                Ok(Acquired::Cancelled) => {
                    outcome.error = Some("shutdown while waiting for the lease".to_string());
                    outcome.log_finished(run_id, shard.as_deref());
                    return outcome;
                }
                Err(err) => {
                    table_failed(&mut outcome, &err, "cannot take the table's lease");
                    outcome.log_finished(run_id, shard.as_deref());
                    return outcome;
                }
            }
        };
        // Cancelled on shutdown, or by the lease's renewal when the lease is lost.
        let work = cancel.child_token();
        if let Some(lease) = &lease {
            lease.keep_renewed(work.clone());
        }
        let limits = self
            .global_limit
            .iter()
            .cloned()
            .chain(table.max_keys_per_sec.map(RateLimit::new))
            .collect();
        let run = TableRun {
            table,
            options,
            run_id,
            cancel: &work,
            lease: lease.as_ref(),
            limiter: RateLimiter::new(limits),
        };
        self.run_planned_table(&run, &mut outcome).await;
        if let Some(lease) = lease {
            if let Some(reason) = lease.lost_reason() {
                outcome.worsen(TableStatus::Failed);
                outcome
                    .error
                    .get_or_insert(format!("lease lost while loading: {reason}"));
            }
            if let Err(err) = lease.release().await {
                tracing::warn!(
                    target: LOG_TARGET,
                    event = "lease_release_failed",
                    table = %table.name,
                    error = %err,
                    "cannot release the table's lease: it expires by itself after [lease] ttl_secs"
                );
            }
        }
        outcome.log_finished(run_id, shard.as_deref());
        outcome
    }

    /// Plans the table, loads what needs it, waits for a late partition, updates the ledger.
    async fn run_planned_table(&self, run: &TableRun<'_>, outcome: &mut TableOutcome) {
        let (table, options) = (run.table, run.options);
        let (listing, entries, mut plan) = match self.plan_table(table, options.as_of).await {
            Ok(planned) => planned,
            Err(err) => {
                table_failed(outcome, &err, "table failed");
                return;
            }
        };
        log_plan_findings(table, &plan);
        let mut dates = match options.backfill {
            Some(b) => plan.dates_to_backfill(b.from, b.to, b.force),
            None => plan.dates_to_load(),
        };
        if let Some(shard) = options.shard {
            dates.retain(|date| shard.includes(*date));
        }
        let mut loaded = Loaded {
            newest: entries.keys().next_back().copied(),
            dates: Vec::new(),
        };
        for date in dates {
            if run.cancel.is_cancelled() {
                break;
            }
            let planned = (&listing, &entries, &plan);
            self.load_date(run, planned, date, &mut loaded, outcome)
                .await;
        }
        // A shard reports (and waits for) the late date only when that date is in its share.
        let mut late = plan
            .late
            .filter(|date| options.shard.is_none_or(|shard| shard.includes(*date)));
        let mut waited = Duration::ZERO;
        if let Some(date) = late.filter(|date| self.waits_for(run, *date)) {
            let wait = self
                .wait_for_late(run, plan, date, &mut loaded, outcome)
                .await;
            (late, plan, waited) = (wait.late, wait.plan, wait.waited);
        }
        if let Some(lease) = run.lease.filter(|lease| !lease.is_lost()) {
            let updated = self.update_ledger(table, &plan, lease, &loaded.dates, outcome);
            if let Err(err) = updated.await {
                table_failed(outcome, &err, "ledger update failed");
            }
        }
        outcome.watermark_lag_days = outcome
            .watermark
            .map(|watermark| (plan.newest_cold - watermark).num_days());
        if let Some(late) = late {
            log_partition_late(table, &plan, late, waited);
            outcome.late = Some(late);
            outcome.worsen(TableStatus::Late);
        }
    }

    /// Loads one planned date (or, in a dry run, logs that it would) and counts it in `outcome`.
    pub(super) async fn load_date(
        &self,
        run: &TableRun<'_>,
        (listing, entries, plan): (&TableListing, &BTreeMap<NaiveDate, LedgerEntry>, &TablePlan),
        date: NaiveDate,
        loaded: &mut Loaded,
        outcome: &mut TableOutcome,
    ) {
        let table = run.table;
        let partition = &listing.partitions[&date];
        let state = plan.partition(date).map_or("", |p| p.state.as_str());
        let span = tracing::info_span!("partition", table = %table.name, date = %date);
        if run.options.dry_run {
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
            return;
        }
        let job = PartitionJob {
            table,
            listing,
            entries,
            date,
            // Shards load beside each other: a newer date may land at any moment, so every
            // write of a shard goes through the version guard (latest wins in any order).
            guarded: run.options.shard.is_some()
                || loaded.newest.is_some_and(|newest| date < newest),
            limiter: &run.limiter,
            lease: run
                .lease
                .expect("a run that writes holds the table's lease"),
        };
        let result = self
            .load_and_record(job, state, run.run_id, run.cancel)
            .instrument(span)
            .await;
        match result {
            Ok(stats) => {
                loaded.newest = Some(loaded.newest.map_or(date, |n| n.max(date)));
                loaded.dates.push(date);
                outcome.partitions_loaded += 1;
                outcome.counters.add(&stats);
            }
            Err(_) => {
                outcome.partitions_failed += 1;
                outcome.worsen(TableStatus::Failed);
            }
        }
    }

    /// Loads a partition (with retries) and records it in the ledger if the lease is still
    /// held; logs `partition_loaded` or `partition_failed`.
    async fn load_and_record(
        &self,
        job: PartitionJob<'_>,
        state: &str,
        run_id: &str,
        cancel: &CancellationToken,
    ) -> Result<Counters, PartitionError> {
        let (table, date) = (job.table, job.date);
        let started = Instant::now();
        let lease_lost = || PartitionError::LeaseLost {
            table: table.name.clone(),
        };
        let loaded = async {
            let stats = self.load_with_retries(job, cancel).await?;
            let entry = LedgerEntry {
                fingerprint: job.listing.partitions[&date].fingerprint(),
                counters: stats,
                run_id: run_id.to_string(),
                loaded_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                expires_at_ms: partition_expiry(table, date).millis,
            };
            if !job.lease.record(date, &entry).await? {
                return Err(lease_lost());
            }
            Ok(stats)
        }
        .await;
        let loaded = match loaded {
            Err(PartitionError::Cancelled) if job.lease.is_lost() => Err(lease_lost()),
            other => other,
        };
        match &loaded {
            Ok(stats) => log_partition_loaded(table, date, state, stats, job.guarded, started),
            Err(err) => log_partition_failed(table, date, err),
        }
        loaded
    }

    /// Forgets expired (and superseded snapshot) ledger entries and updates the watermark, from
    /// the ledger as it is now and only while the lease is held. Shards record beside each other:
    /// when one records between the read and the write, the watermark is computed again.
    async fn update_ledger(
        &self,
        table: &TableConfig,
        plan: &TablePlan,
        lease: &Lease,
        loaded_now: &[NaiveDate],
        outcome: &mut TableOutcome,
    ) -> Result<(), RedisError> {
        for _ in 0..WATERMARK_ATTEMPTS {
            let entries = self.ledger.entries(&table.name).await?;
            let update = ledger_update(table.mode, plan, &entries, loaded_now);
            self.ledger.forget(&table.name, &update.forget).await?;
            let forgotten = update.forget.iter().filter(|d| entries.contains_key(d));
            let remaining = entries.len() - forgotten.count();
            let watermark_key = self.ledger.watermark_key(&table.name);
            match lease
                .set_watermark(&watermark_key, remaining, update.watermark)
                .await?
            {
                WatermarkSet::Set => {
                    outcome.watermark = update.watermark;
                    return Ok(());
                }
                WatermarkSet::LeaseLost => return Ok(()),
                WatermarkSet::LedgerChanged => continue,
            }
        }
        Err(RedisError::Protocol(format!(
            "the ledger of {} changed {WATERMARK_ATTEMPTS} times while its watermark was computed",
            table.name
        )))
    }

    /// Loads a partition, retrying transient failures (`redis.retry_attempts` in all).
    async fn load_with_retries(
        &self,
        job: PartitionJob<'_>,
        cancel: &CancellationToken,
    ) -> Result<Counters, PartitionError> {
        let (table, date) = (job.table, job.date);
        retry(
            RetryPolicy::partition_loads(self.config.redis.retry_attempts),
            cancel,
            PartitionError::is_transient,
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
            |_attempt| self.load_partition(job),
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
            lease: _,
        } = job;
        let partition = &listing.partitions[&date];
        let concurrency = self.config.source.read_concurrency;
        let prepared = prepare(&self.operator, table, partition, concurrency, false).await?;
        let _progress = progress::report(
            &table.name,
            date,
            prepared.rows,
            prepared.progress(),
            self.config.progress_interval,
        );
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
    crate::counters_event!(
        info,
        target: LOG_TARGET,
        *stats,
        "partition loaded",
        event = "partition_loaded",
        table = %table.name,
        date = %date,
        state,
        guarded,
        duration_ms = started.elapsed().as_millis() as u64
    );
}

/// Logs `lease_held`: another run holds the table's lease; this run skips the table.
fn log_lease_held(table: &TableConfig, holder: &LeaseHolder, waited: Duration) {
    tracing::error!(
        target: LOG_TARGET,
        event = "lease_held",
        table = %table.name,
        holder_run_id = %holder.run_id,
        holder_host = %holder.host,
        holder_since = %holder.since,
        holder_shard = holder.shard.as_deref(),
        waited_ms = millis(waited),
        "another run holds the table's lease: table skipped, not loaded by this run"
    );
}

fn log_partition_failed(table: &TableConfig, date: NaiveDate, err: &PartitionError) {
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

fn log_partition_late(table: &TableConfig, plan: &TablePlan, late: NaiveDate, waited: Duration) {
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
        waited_secs = waited.as_secs(),
        "newest cold partition is not complete: readers miss a day"
    );
}
