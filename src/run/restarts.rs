//! What a Redis restart costs a run, and how the run makes up for it.
//!
//! A restarted Redis (detected by the control client: its `run_id` changed) may have lost the
//! keys and the ledger entries this run already wrote. So:
//! - a table's run keeps its state across **passes** ([`TableRun`]): when a restart is detected
//!   during a pass, the table is planned again (the ledger re-read) and what is now missing is
//!   loaded again, in the same run; a table that finished before a restart is run again at the
//!   end of the run ([`Engine::rerun_after_restarts`]);
//! - a partition is reported loaded only if the server that holds its ledger entry is the one
//!   that acknowledged its data ([`Engine::record_loaded`]); otherwise the entry is withdrawn and
//!   the partition reloaded by the next pass;
//! - the watermark moves with each record, computed by [`ledger_update`] from what the ledger
//!   holds, and is set again from the fresh ledger when a pass follows a restart;
//! - the table's lease may be gone with the rest: it is taken again on the restarted server
//!   before anything more is written (see [`crate::lease`]), and a record refused for want of it
//!   by another server than the lease was held on is a restart, not a lost lease.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, Utc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::watermark::ledger_update;
use super::{
    partition_expiry, Counters, Engine, RunOptions, TableOutcome, TableStatus, LOG_TARGET,
};
use crate::config::TableConfig;
use crate::error::{PartitionError, RedisError};
use crate::lease::{Lease, LeasedRecord};
use crate::ledger::{LedgerEntry, Watermarks};
use crate::plan::TablePlan;
use crate::redis::control::ServerRunId;

/// Passes of one table in one run at most: the first, and one per restart detected after it.
/// A Redis that restarts more often than this during one run is failing, not hiccuping.
pub const MAX_TABLE_PASSES: u32 = 4;

/// What a table's run did so far, kept across its passes.
#[derive(Debug, Default)]
pub struct TableRun {
    /// Partitions loaded in this run and, as far as the latest plan knows, still recorded.
    pub(super) loaded: BTreeMap<NaiveDate, Counters>,
    /// Partitions that failed in this run: not tried again by a later pass.
    pub(super) failed: BTreeSet<NaiveDate>,
    /// Restarts the control client had detected when the latest pass planned the table.
    pub(super) restarts_seen: u64,
    /// Passes run so far.
    pub(super) passes: u32,
}

impl TableRun {
    /// Starts a pass on the fresh ledger `entries`: partitions loaded earlier in this run that
    /// the ledger lost (a restart) no longer count as loaded (the pass loads them again).
    pub(super) fn start_pass(
        &mut self,
        entries: &BTreeMap<NaiveDate, LedgerEntry>,
        restarts_seen: u64,
    ) {
        self.passes += 1;
        self.restarts_seen = restarts_seen;
        self.loaded.retain(|date, _| entries.contains_key(date));
    }

    /// The dates of `planned` this pass loads: not those that failed earlier in this run, nor
    /// those this run already recorded on the server that holds the ledger now (a forced
    /// backfill planned again after a restart lists them as loaded).
    pub(super) fn to_load(
        &self,
        planned: Vec<NaiveDate>,
        entries: &BTreeMap<NaiveDate, LedgerEntry>,
        run_id: &str,
    ) -> Vec<NaiveDate> {
        planned
            .into_iter()
            .filter(|date| !self.failed.contains(date))
            .filter(|date| entries.get(date).is_none_or(|e| e.run_id != run_id))
            .collect()
    }

    /// A partition loaded (and recorded) in this pass.
    pub(super) fn mark_loaded(&mut self, date: NaiveDate, stats: Counters) {
        self.failed.remove(&date);
        self.loaded.insert(date, stats);
    }

    /// A partition that failed in this pass.
    pub(super) fn mark_failed(&mut self, date: NaiveDate) {
        self.loaded.remove(&date);
        self.failed.insert(date);
    }

    /// Fills `outcome`'s partition counts and counters from what the run did in all its passes
    /// (a partition failed in an earlier pass fails the table too).
    pub(super) fn count_into(&self, outcome: &mut TableOutcome) {
        outcome.partitions_loaded = self.loaded.len() as u64;
        outcome.partitions_failed = self.failed.len() as u64;
        if !self.failed.is_empty() {
            outcome.worsen(TableStatus::Failed);
        }
        outcome.counters = Counters::default();
        for stats in self.loaded.values() {
            outcome.counters.add(stats);
        }
    }
}

/// What became of a partition whose data was fully acknowledged.
pub(super) enum Landed {
    /// Recorded, on the server that holds its data.
    Recorded(Counters),
    /// Its entry landed on another server than its data (a restart in between): withdrawn, the
    /// table must be planned again to reload it.
    Withdrawn,
}

/// One partition fully written: what recording it needs.
pub(super) struct Written<'a> {
    pub(super) table: &'a TableConfig,
    pub(super) date: NaiveDate,
    pub(super) fingerprint: String,
    /// The snapshot or version the files were read from (Iceberg, Delta).
    pub(super) snapshot: Option<String>,
    pub(super) stats: Counters,
    /// The server that acknowledged every write of the partition.
    pub(super) server: ServerRunId,
    pub(super) run_id: &'a str,
}

impl Engine {
    /// Records a fully written partition with the watermark it moves to (see the module doc),
    /// while `lease` is held, and checks that the server holding the entry is the one that holds
    /// the data.
    pub(super) async fn record_loaded(
        &self,
        written: Written<'_>,
        lease: &Lease,
        plan: &TablePlan,
        entries: &BTreeMap<NaiveDate, LedgerEntry>,
        loaded_now: &[NaiveDate],
    ) -> Result<Landed, PartitionError> {
        let Written {
            table,
            date,
            fingerprint,
            snapshot,
            stats,
            server,
            run_id,
        } = written;
        let entry = LedgerEntry {
            fingerprint,
            counters: stats,
            run_id: run_id.to_string(),
            loaded_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            expires_at_ms: partition_expiry(table, date).millis,
            snapshot,
        };
        let mut with = loaded_now.to_vec();
        with.push(date);
        let mut without_entry = entries.clone();
        without_entry.remove(&date);
        let watermarks = Watermarks {
            with: ledger_update(table.mode, plan, entries, &with).watermark,
            without: ledger_update(table.mode, plan, &without_entry, loaded_now).watermark,
        };
        let recorded = match lease
            .record(&self.ledger, date, &entry, Some(watermarks))
            .await?
        {
            LeasedRecord::Recorded(recorded) => recorded,
            LeasedRecord::LeaseLost => {
                return Err(PartitionError::LeaseLost {
                    table: table.name.clone(),
                })
            }
            LeasedRecord::ServerChanged(ledger_server) => {
                // Nothing recorded: the next pass takes the lease again and reloads it.
                log_withdrawn(table, date, &server, &ledger_server);
                return Ok(Landed::Withdrawn);
            }
        };
        if recorded.server == server {
            return Ok(Landed::Recorded(stats));
        }
        // The data went to `server` (or to the one it restarted into), the entry elsewhere: the
        // data may be missing where the entry says it is.
        let withdrawn = self.ledger.withdraw(&table.ledger_id(), &recorded).await;
        log_withdrawn(table, date, &server, &recorded.server);
        withdrawn.map_err(|source| RedisError::Record {
            table: table.name.clone(),
            date: date.to_string(),
            settled: false,
            source: Box::new(source),
        })?;
        Ok(Landed::Withdrawn)
    }

    /// Runs again every table that finished before a restart detected later in the run (its
    /// keys and ledger may be gone): each plans again and reloads what is missing.
    pub(super) async fn rerun_after_restarts(
        &self,
        finished: &mut [(TableConfig, TableRun, TableOutcome)],
        options: &RunOptions,
        run_id: &str,
        cancel: &CancellationToken,
    ) {
        if options.dry_run {
            return;
        }
        loop {
            let restarts = self.ledger.control().restarts();
            let stale = finished
                .iter_mut()
                .find(|(_, run, _)| run.restarts_seen != restarts);
            let Some((table, run, outcome)) = stale else {
                return;
            };
            if cancel.is_cancelled() {
                return;
            }
            let span = tracing::info_span!("table", table = %table.name);
            if run.passes >= MAX_TABLE_PASSES {
                // Not again: fail it loudly (the next run reloads what is missing).
                run.restarts_seen = restarts;
                span.in_scope(|| restarted_too_often(outcome, run.passes));
                continue;
            }
            *outcome = self
                .run_table(table, options, run_id, cancel, run)
                .instrument(span)
                .await;
        }
    }
}

/// Logs `partition_withdrawn`: the data went to `data`, the record to `ledger`.
fn log_withdrawn(table: &TableConfig, date: NaiveDate, data: &ServerRunId, ledger: &ServerRunId) {
    tracing::warn!(
        target: LOG_TARGET,
        event = "partition_withdrawn",
        table = %table.name,
        layout = table.layout_name(),
        date = %date,
        data_run_id = %data,
        ledger_run_id = %ledger,
        "redis restarted between the partition's writes and its record: reloading it"
    );
}

/// Fails a table whose Redis restarted again after `passes` passes of it.
pub(super) fn restarted_too_often(outcome: &mut TableOutcome, passes: u32) {
    let error = format!(
        "redis restarted again after {passes} passes of the table: what it lost is reloaded by \
         the next run"
    );
    tracing::error!(target: LOG_TARGET, event = "table_failed", table = %outcome.table, error = %error, "table failed");
    outcome.worsen(TableStatus::Failed);
    outcome.error = Some(error);
}
