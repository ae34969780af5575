//! Late partitions, waited for: when a table's newest cold partition is missing or incomplete,
//! the run loads everything else first, then lists the table again every `wait_poll_interval`
//! (logging `partition_waiting`) until the partition is complete and loadable, or until
//! `wait_for_partition` has passed. Arrived: it is loaded like any other. Never arrived: the run
//! reports `partition_late` as it always did.

use std::time::Duration;

use chrono::NaiveDate;
use tokio::time::Instant;

use super::restarts::TableRun;
use super::table::{Loaded, TableContext};
use super::{Engine, LOG_TARGET};
use crate::plan::{PartitionState, TablePlan};

/// What waiting for a late partition came to.
pub(super) struct Waited {
    /// Still late (`None`: it arrived and was loaded, or failed to load: then the table failed).
    pub(super) late: Option<NaiveDate>,
    /// The table's latest plan (the one the partition was loaded from, if it arrived).
    pub(super) plan: TablePlan,
    /// How long the run waited.
    pub(super) waited: Duration,
}

/// Why the late date is not loadable yet, as its plan says.
fn not_ready(plan: &TablePlan, date: NaiveDate) -> String {
    match plan.partition(date) {
        Some(partition) => partition
            .reason
            .clone()
            .unwrap_or_else(|| partition.state.as_str().to_string()),
        None => "missing".to_string(),
    }
}

impl Engine {
    /// True when this run waits for the late `date`: it writes (and was not stopped), the table
    /// waits at all, and the date is one the run would load (a backfill's range includes it).
    pub(super) fn waits_for(&self, context: &TableContext<'_>, date: NaiveDate) -> bool {
        let in_range = context
            .options
            .backfill
            .is_none_or(|range| range.from <= date && date <= range.to);
        !context.options.dry_run
            && !context.cancel.is_cancelled()
            && !context.table.wait_for_partition.is_zero()
            && in_range
    }

    /// Polls until the late `date` is complete and loads it, or until `wait_for_partition` ends
    /// (or the run is cancelled: shutdown, lease lost).
    pub(super) async fn wait_for_late(
        &self,
        context: &TableContext<'_>,
        mut plan: TablePlan,
        date: NaiveDate,
        loaded: &mut Loaded,
        run: &mut TableRun,
    ) -> Waited {
        let table = context.table;
        let started = Instant::now();
        let deadline = started + table.wait_for_partition;
        let mut reason = not_ready(&plan, date);
        loop {
            let waited = started.elapsed();
            tracing::info!(
                target: LOG_TARGET,
                event = "partition_waiting",
                table = %table.name,
                layout = table.layout_name(),
                date = %date,
                reason = %reason,
                waited_secs = waited.as_secs(),
                wait_for_partition_secs = table.wait_for_partition.as_secs(),
                "newest cold partition not complete yet: waiting for it"
            );
            let now = Instant::now();
            if now >= deadline {
                return Waited {
                    late: Some(date),
                    plan,
                    waited,
                };
            }
            let pause = table.wait_poll_interval.min(deadline - now);
            tokio::select! {
                _ = context.cancel.cancelled() => {
                    return Waited { late: Some(date), plan, waited: started.elapsed() };
                }
                _ = tokio::time::sleep(pause) => {}
            }
            // The same business day as the first plan, even if midnight passed meanwhile.
            let (listing, entries, fresh) = match self.plan_table(table, Some(plan.today)).await {
                Ok(planned) => planned,
                Err(err) => {
                    reason = format!("cannot list the table: {err}");
                    continue;
                }
            };
            match fresh.partition(date).map(|p| p.state) {
                Some(state) if state.needs_load() => {
                    self.load_date(context, (&listing, &entries, &fresh), date, loaded, run)
                        .await;
                    return Waited {
                        late: None,
                        plan: fresh,
                        waited: started.elapsed(),
                    };
                }
                Some(PartitionState::Loaded) => {
                    return Waited {
                        late: None,
                        plan: fresh,
                        waited: started.elapsed(),
                    };
                }
                _ => {
                    reason = not_ready(&fresh, date);
                    plan = fresh;
                }
            }
        }
    }
}
