//! One table's run: take the table's lease, plan it, load each partition that needs it (with
//! retries, in a span naming the partition), record each in the ledger once fully acknowledged
//! (only while the lease is held, moving the watermark), wait for a late partition if the table
//! says so, then forget what expired, update the watermark, release the lease and log
//! `table_finished`. After a Redis restart, the table is planned again and what the restart lost
//! is loaded again (see [`super::restarts`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::restarts::{restarted_too_often, Landed, TableRun, Written, MAX_TABLE_PASSES};
use super::retry::{retry_classified, Cancelled, RetryPolicy, Retryable};
use super::table_events::{
    log_keys_skipped, log_lease_held, log_partition_failed, log_partition_late,
    log_partition_loaded, log_plan_findings, millis, table_failed,
};
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
use crate::load::{check_skipped_keys, prepare, send_partition, RowCommand};
use crate::plan::TablePlan;
use crate::redis::control::ServerRunId;
use crate::redis::{WriteSession, WriteStyle};
use crate::throttle::RateLimiter;

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
    /// Older than the newest loaded partition, or a shard's: write with the version guard.
    guarded: bool,
    limiter: &'a RateLimiter,
    /// The table's lease: the partition is recorded only while it is held.
    lease: &'a Lease,
}

/// What every step of one table's run shares.
pub(super) struct TableContext<'a> {
    pub(super) table: &'a TableConfig,
    pub(super) options: &'a RunOptions,
    pub(super) run_id: &'a str,
    /// Fires on shutdown, and when the lease is lost.
    pub(super) cancel: &'a CancellationToken,
    /// `None` in a dry run (which writes nothing).
    pub(super) lease: Option<&'a Lease>,
    pub(super) limiter: RateLimiter,
}

/// What the partitions loaded so far in a pass of a table's run changed.
#[derive(Default)]
pub(super) struct Loaded {
    /// The newest date in the ledger (guards loads of older dates).
    newest: Option<NaiveDate>,
    /// The dates loaded (and recorded) in this pass.
    dates: Vec<NaiveDate>,
}

impl From<Cancelled> for PartitionError {
    fn from(_: Cancelled) -> PartitionError {
        PartitionError::Cancelled
    }
}

/// Times the watermark is computed again when other shards record meanwhile.
const WATERMARK_ATTEMPTS: usize = 16;

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
        let mut outcome = TableOutcome::new(&table.name).in_layout(table.layout_name());
        let shard = options.shard.map(|s| s.to_string());
        let lease = if options.dry_run {
            None
        } else {
            let kind = options.shard.map_or(LeaseKind::Exclusive, LeaseKind::Shard);
            let holder = LeaseHolder::new(run_id, &self.config.lease.host);
            let (ttl, wait) = (self.config.lease.ttl, table.lease_wait);
            let acquired = Lease::acquire(
                &self.ledger,
                &table.ledger_id(),
                kind,
                &holder,
                ttl,
                wait,
                cancel,
            )
            .await;
            match acquired {
                Ok(Acquired::Held(lease, waited)) => {
                    outcome.lease_wait_ms = millis(waited);
                    Some(lease)
                }
                Ok(Acquired::Busy(holder, waited)) => {
                    outcome.lease_wait_ms = millis(waited);
                    log_lease_held(table, &holder, waited);
                    run.count_into(&mut outcome);
                    outcome.worsen(TableStatus::LeaseHeld);
                    outcome.error = Some(format!(
                        "lease held by run {} on {} since {}",
                        holder.run_id, holder.host, holder.since
                    ));
                    outcome.log_finished(run_id, shard.as_deref());
                    return outcome;
                }
                Ok(Acquired::Cancelled) => {
                    run.count_into(&mut outcome);
                    outcome.error = Some("shutdown while waiting for the lease".to_string());
                    outcome.log_finished(run_id, shard.as_deref());
                    return outcome;
                }
                Err(err) => {
                    run.count_into(&mut outcome);
                    table_failed(&mut outcome, &err, "cannot take the table's lease");
                    outcome.log_finished(run_id, shard.as_deref());
                    return outcome;
                }
            }
        };
        // Cancelled on shutdown, or when the lease is lost (by its renewal, or a record).
        let work = cancel.child_token();
        if let Some(lease) = &lease {
            lease.keep_renewed(work.clone());
        }
        let context = TableContext {
            table,
            options,
            run_id,
            cancel: &work,
            lease: lease.as_ref(),
            limiter: self.table_limiter(table),
        };
        self.run_planned_table(&context, run, &mut outcome).await;
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
                    layout = table.layout_name(),
                    error = %err,
                    "cannot release the table's lease: it expires by itself after [lease] ttl_secs"
                );
            }
        }
        outcome.log_finished(run_id, shard.as_deref());
        outcome
    }

    /// Plans the table, loads what needs it, waits for a late partition, updates the ledger;
    /// plans it again (a new pass) when Redis restarted meanwhile.
    async fn run_planned_table(
        &self,
        context: &TableContext<'_>,
        run: &mut TableRun,
        outcome: &mut TableOutcome,
    ) {
        let (table, options) = (context.table, context.options);
        let control = self.ledger.control();
        loop {
            let first_pass = run.passes == 0;
            let (listing, entries, plan) = match self.plan_table(table, options.as_of).await {
                Ok(planned) => planned,
                Err(err) => {
                    table_failed(outcome, &err, "table failed");
                    run.count_into(outcome);
                    return;
                }
            };
            run.start_pass(&entries, control.restarts());
            if first_pass {
                log_plan_findings(table, &plan);
            } else if let Some(lease) = context.lease {
                tracing::info!(
                    target: LOG_TARGET,
                    event = "table_replanned",
                    table = %table.name,
                    layout = table.layout_name(),
                    pass = run.passes,
                    recorded = entries.len(),
                    "table planned again after a redis restart"
                );
                if let Err(err) = self.after_restart(table, &plan, lease, outcome).await {
                    table_failed(outcome, &err, "ledger update failed");
                    run.count_into(outcome);
                    return;
                }
            }
            let mut dates = match options.backfill {
                Some(b) => plan.dates_to_backfill(b.from, b.to, b.force),
                None => plan.dates_to_load(),
            };
            if let Some(shard) = options.shard {
                dates.retain(|date| shard.includes(*date));
            }
            let dates = run.to_load(dates, &entries, context.run_id);
            let mut loaded = Loaded {
                newest: entries.keys().next_back().copied(),
                dates: Vec::new(),
            };
            for date in dates {
                if context.cancel.is_cancelled() || control.restarts() != run.restarts_seen {
                    break;
                }
                let planned = (&listing, &entries, &plan);
                self.load_date(context, planned, date, &mut loaded, run)
                    .await;
            }
            let restarted = control.restarts() != run.restarts_seen;
            if restarted && !context.cancel.is_cancelled() && !options.dry_run {
                if run.passes < MAX_TABLE_PASSES {
                    continue;
                }
                restarted_too_often(outcome, run.passes);
            }
            self.finish_pass(context, plan, loaded, run, outcome).await;
            return;
        }
    }

    /// The end of a table's last pass: waits for a late partition (a shard only for one in its
    /// share), updates the ledger while the lease is held, reports a late partition.
    async fn finish_pass(
        &self,
        context: &TableContext<'_>,
        plan: TablePlan,
        mut loaded: Loaded,
        run: &mut TableRun,
        outcome: &mut TableOutcome,
    ) {
        let (table, options) = (context.table, context.options);
        let mut late = plan
            .late
            .filter(|date| options.shard.is_none_or(|shard| shard.includes(*date)));
        let (mut plan, mut waited) = (plan, Duration::ZERO);
        if let Some(date) = late.filter(|date| self.waits_for(context, *date)) {
            let wait = self
                .wait_for_late(context, plan, date, &mut loaded, run)
                .await;
            (late, plan, waited) = (wait.late, wait.plan, wait.waited);
        }
        if let Some(lease) = context.lease.filter(|lease| !lease.is_lost()) {
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
        run.count_into(outcome);
    }

    /// At the start of a pass after a Redis restart: takes the lease again on the restarted
    /// server (the restart may have lost it), then sets the watermark from the fresh ledger (the
    /// last record may have moved it on the stale plan's word).
    async fn after_restart(
        &self,
        table: &TableConfig,
        plan: &TablePlan,
        lease: &Lease,
        outcome: &mut TableOutcome,
    ) -> Result<(), RedisError> {
        let server = self.ledger.control().server().await?;
        if !lease.ensure_on(&server).await? {
            // Lost (logged, the work cancelled): the pass loads nothing.
            return Ok(());
        }
        self.update_ledger(table, plan, lease, &[], outcome).await
    }

    /// Loads one planned date (or, in a dry run, logs that it would) and counts it in `run`.
    pub(super) async fn load_date(
        &self,
        context: &TableContext<'_>,
        (listing, entries, plan): (&TableListing, &BTreeMap<NaiveDate, LedgerEntry>, &TablePlan),
        date: NaiveDate,
        loaded: &mut Loaded,
        run: &mut TableRun,
    ) {
        let table = context.table;
        let partition = &listing.partitions[&date];
        let state = plan.partition(date).map_or("", |p| p.state.as_str());
        let span = tracing::info_span!("partition", table = %table.name, date = %date);
        if context.options.dry_run {
            span.in_scope(|| {
                tracing::info!(
                    target: LOG_TARGET,
                    event = "partition_planned",
                    table = %table.name,
                    layout = table.layout_name(),
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
            plan,
            loaded_now: &loaded.dates,
            date,
            // Shards load beside each other: a newer date may land at any moment, so every
            // write of a shard goes through the version guard (latest wins in any order).
            guarded: context.options.shard.is_some()
                || loaded.newest.is_some_and(|newest| date < newest),
            limiter: &context.limiter,
            lease: context
                .lease
                .expect("a run that writes holds the table's lease"),
        };
        let landed = self
            .load_and_record(job, state, context.run_id, context.cancel)
            .instrument(span)
            .await;
        match landed {
            Ok(Landed::Recorded(stats)) => {
                loaded.newest = Some(loaded.newest.map_or(date, |n| n.max(date)));
                loaded.dates.push(date);
                run.mark_loaded(date, stats);
            }
            Ok(Landed::Withdrawn) => {}
            Err(_) => run.mark_failed(date),
        }
    }

    /// Loads a partition (with retries) and records it in the ledger if the lease is still
    /// held; logs `partition_loaded` or `partition_failed`. A partition reported failed has no
    /// ledger entry (see [`crate::ledger::Ledger::record`]).
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
                snapshot: job.listing.origin.snapshot.clone(),
                stats,
                server,
                run_id,
            };
            self.record_loaded(written, job.lease, job.plan, job.entries, job.loaded_now)
                .await
        }
        .await;
        let landed = match landed {
            Err(PartitionError::Cancelled) if job.lease.is_lost() => {
                Err(PartitionError::LeaseLost {
                    table: table.name.clone(),
                })
            }
            other => other,
        };
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
            let entries = self.ledger.entries(&table.ledger_id()).await?;
            let update = ledger_update(table.mode, plan, &entries, loaded_now);
            self.ledger
                .forget(&table.ledger_id(), &update.forget)
                .await?;
            let forgotten = update.forget.iter().filter(|d| entries.contains_key(d));
            let remaining = entries.len() - forgotten.count();
            let watermark_key = self.ledger.watermark_key(&table.ledger_id());
            match lease
                .set_watermark(&watermark_key, remaining, update.watermark)
                .await?
            {
                WatermarkSet::Set => {
                    outcome.watermark = update.watermark;
                    return Ok(());
                }
                // Lost: logged, the table fails. Another server: a restart, the table runs again.
                WatermarkSet::LeaseLost | WatermarkSet::ServerChanged => return Ok(()),
                WatermarkSet::LedgerChanged => continue,
            }
        }
        Err(RedisError::Protocol(format!(
            "the ledger of {} changed {WATERMARK_ATTEMPTS} times while its watermark was computed",
            table.name
        )))
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
                    layout = table.layout_name(),
                    date = %date,
                    attempt,
                    error = %err,
                    "transient failure, retrying the partition"
                );
            },
            |_attempt| async {
                // Before the writes: a restart since the last command is detected here, and the
                // server named is one the writes can only follow (they reach it or its successor).
                // The lease is held there before anything is written (taken again after a restart).
                let server = self.ledger.control().server().await?;
                if !job.lease.ensure_on(&server).await? {
                    return Err(PartitionError::LeaseLost {
                        table: table.name.clone(),
                    });
                }
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
        let _progress = progress::report(
            &table.name,
            date,
            prepared.rows,
            prepared.progress(),
            self.config.progress_interval,
        );
        let style = match (&table.format, guarded) {
            (ValueFormat::Hash, guarded) => WriteStyle::Hash {
                guarded,
                restore: self.hash_writes().await?.restore_limits(),
            },
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
        if table.verify_sample > 0 {
            // Before the partition is recorded (and before a snapshot deletes anything).
            self.verify_loaded(table, partition, limiter).await?;
        }
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
                        layout = table.layout_name(),
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
                            layout = table.layout_name(),
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
