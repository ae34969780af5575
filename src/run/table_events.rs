//! The log events of a table's run (one function per event, so that each event's fields are
//! written in one place): `partition_skipped`, `partition_incomplete`, `table_failed`,
//! `partition_loaded`, `keys_skipped`, `lease_held`, `partition_failed`, `partition_late`.

use std::time::{Duration, Instant};

use chrono::NaiveDate;

use super::{Counters, TableOutcome, TableStatus, LOG_TARGET};
use crate::config::TableConfig;
use crate::error::PartitionError;
use crate::lease::LeaseHolder;
use crate::plan::{PartitionState, TablePlan};

/// Milliseconds, saturating.
pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Logs what the plan found that the run will not load: partition values that are not dates,
/// and cold partitions not complete yet.
pub(super) fn log_plan_findings(table: &TableConfig, plan: &TablePlan) {
    for value in &plan.invalid_values {
        tracing::warn!(
            target: LOG_TARGET,
            event = "partition_skipped",
            table = %table.name,
            layout = table.layout_name(),
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
            layout = table.layout_name(),
            date = %partition.date,
            reason = partition.reason.as_deref().unwrap_or(""),
            "partition incomplete"
        );
    }
}

/// Marks the table failed and logs the `table_failed` event.
pub(super) fn table_failed(outcome: &mut TableOutcome, err: &dyn std::fmt::Display, message: &str) {
    tracing::error!(target: LOG_TARGET, event = "table_failed", table = %outcome.table, layout = %outcome.layout, error = %err, "{message}");
    outcome.worsen(TableStatus::Failed);
    outcome.error = Some(err.to_string());
}

pub(super) fn log_partition_loaded(
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
        layout = table.layout_name(),
        date = %date,
        state,
        guarded,
        duration_ms = started.elapsed().as_millis() as u64
    );
}

/// WARN when a loaded partition skipped rows for a null or empty key (within
/// `max_skipped_ratio`, or it would have failed).
pub(super) fn log_keys_skipped(table: &TableConfig, date: NaiveDate, stats: &Counters) {
    if stats.skipped_null_keys == 0 {
        return;
    }
    tracing::warn!(
        target: LOG_TARGET,
        event = "keys_skipped",
        table = %table.name,
        layout = table.layout_name(),
        date = %date,
        rows = stats.rows,
        skipped_null_keys = stats.skipped_null_keys,
        max_skipped_ratio = table.max_skipped_ratio,
        "rows with a null or empty key column were skipped"
    );
}

/// Logs `lease_held`: another run holds the table's lease; this run skips the table.
pub(super) fn log_lease_held(table: &TableConfig, holder: &LeaseHolder, waited: Duration) {
    tracing::error!(
        target: LOG_TARGET,
        event = "lease_held",
        table = %table.name,
        layout = table.layout_name(),
        holder_run_id = %holder.run_id,
        holder_host = %holder.host,
        holder_since = %holder.since,
        holder_shard = holder.shard.as_deref(),
        waited_ms = millis(waited),
        "another run holds the table's lease: table skipped, not loaded by this run"
    );
}

pub(super) fn log_partition_failed(table: &TableConfig, date: NaiveDate, err: &PartitionError) {
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
            layout = table.layout_name(),
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
        layout = table.layout_name(),
        date = %date,
        file = err.file().unwrap_or(""),
        transient = err.is_transient(),
        error = %err,
        "partition failed"
    );
}

pub(super) fn log_partition_late(
    table: &TableConfig,
    plan: &TablePlan,
    late: NaiveDate,
    waited: Duration,
) {
    let reason = plan
        .partition(late)
        .map(|p| p.reason.as_deref().unwrap_or("incomplete"))
        .unwrap_or("missing");
    tracing::error!(
        target: LOG_TARGET,
        event = "partition_late",
        table = %table.name,
        layout = table.layout_name(),
        date = %late,
        today = %plan.today,
        partition = %table.format_partition_value(late),
        reason,
        waited_secs = waited.as_secs(),
        "newest cold partition is not complete: readers miss a day"
    );
}
