//! What a table's ledger becomes after a run: the recorded partitions it forgets and its new
//! watermark. Pure (no I/O): [`ledger_update`] decides, the table's run writes the result.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::config::LoadMode;
use crate::plan::TablePlan;

/// The ledger changes at the end of a table's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerUpdate {
    /// Recorded dates to forget, oldest first: older than the window, and for snapshot tables
    /// older than the snapshot loaded in this run (superseded).
    pub forget: Vec<NaiveDate>,
    /// The new watermark (`None` clears it).
    pub watermark: Option<NaiveDate>,
}

/// Decides what the ledger forgets and the new watermark, from the table's mode, its plan, the
/// dates recorded when it was planned and the dates loaded (and recorded) in this run.
///
/// The watermark of an incremental table is the newest date of an unbroken run of loaded days
/// starting at the oldest partition in the window: a day not loaded, or with no partition at all,
/// stops it. A snapshot table's watermark is its newest loaded snapshot in the window.
pub fn ledger_update<Entry>(
    mode: LoadMode,
    plan: &TablePlan,
    recorded: &BTreeMap<NaiveDate, Entry>,
    loaded_now: &[NaiveDate],
) -> LedgerUpdate {
    let newest_snapshot = loaded_now.iter().max().copied();
    let forget: Vec<NaiveDate> = recorded
        .keys()
        .copied()
        .filter(|date| {
            *date < plan.oldest_kept
                || (mode == LoadMode::Snapshot && newest_snapshot.is_some_and(|n| *date < n))
        })
        .collect();
    let is_loaded = |date: NaiveDate| {
        loaded_now.contains(&date) || (recorded.contains_key(&date) && !forget.contains(&date))
    };
    let watermark = match mode {
        LoadMode::Snapshot => plan
            .partitions
            .iter()
            .rev()
            .map(|p| p.date)
            .find(|d| is_loaded(*d) && *d >= plan.oldest_kept),
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
    LedgerUpdate { forget, watermark }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PartitionPlan, PartitionState};

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    /// A plan for today the 25th: cold up to the 23rd, kept from the 15th, with partitions on
    /// `days` (the states do not matter to the ledger update).
    fn plan(days: &[u32]) -> TablePlan {
        TablePlan {
            table: "t".into(),
            today: d(25),
            newest_cold: d(23),
            oldest_kept: d(15),
            partitions: days
                .iter()
                .map(|day| PartitionPlan {
                    date: d(*day),
                    state: PartitionState::Pending,
                    files: 1,
                    bytes: 1,
                    reason: None,
                })
                .collect(),
            late: None,
            invalid_values: Vec::new(),
        }
    }

    fn recorded(days: &[u32]) -> BTreeMap<NaiveDate, ()> {
        days.iter().map(|day| (d(*day), ())).collect()
    }

    fn dates(days: &[u32]) -> Vec<NaiveDate> {
        days.iter().map(|day| d(*day)).collect()
    }

    fn incremental(partitions: &[u32], recorded_days: &[u32], loaded_now: &[u32]) -> LedgerUpdate {
        ledger_update(
            LoadMode::Incremental,
            &plan(partitions),
            &recorded(recorded_days),
            &dates(loaded_now),
        )
    }

    #[test]
    fn the_watermark_is_the_newest_day_of_an_unbroken_run_from_the_oldest_partition() {
        let update = incremental(&[20, 21, 22, 23, 24], &[20, 21], &[22, 23]);
        assert_eq!(update.watermark, Some(d(23)), "hot day 24 does not count");
        assert!(update.forget.is_empty());
    }

    #[test]
    fn a_partition_not_loaded_stops_the_watermark() {
        let update = incremental(&[20, 21, 22, 23], &[20], &[22, 23]);
        assert_eq!(update.watermark, Some(d(20)));
        let update = incremental(&[20, 21, 22, 23], &[], &[21, 22, 23]);
        assert_eq!(update.watermark, None, "the oldest partition is not loaded");
    }

    #[test]
    fn a_day_with_no_partition_stops_the_watermark() {
        let update = incremental(&[20, 21, 23], &[20, 21], &[23]);
        assert_eq!(update.watermark, Some(d(21)));
    }

    #[test]
    fn nothing_loaded_clears_the_watermark() {
        let update = incremental(&[20, 21], &[], &[]);
        assert_eq!(
            update,
            LedgerUpdate {
                forget: Vec::new(),
                watermark: None
            }
        );
        assert_eq!(incremental(&[], &[], &[]).watermark, None);
    }

    #[test]
    fn expired_entries_are_forgotten_and_the_watermark_starts_in_the_window() {
        let update = incremental(&[10, 14, 15, 16], &[10, 14, 15], &[16]);
        assert_eq!(update.forget, dates(&[10, 14]));
        assert_eq!(update.watermark, Some(d(16)));
        // A recorded date whose partition is gone from the store is forgotten only once expired.
        let update = incremental(&[16], &[12, 15], &[16]);
        assert_eq!(update.forget, dates(&[12]));
        assert_eq!(
            update.watermark,
            Some(d(16)),
            "starts at the oldest partition"
        );
    }

    #[test]
    fn a_snapshot_loaded_now_supersedes_the_older_ones() {
        let update = ledger_update(
            LoadMode::Snapshot,
            &plan(&[10, 18, 20, 22]),
            &recorded(&[10, 18, 20]),
            &dates(&[22]),
        );
        assert_eq!(update.forget, dates(&[10, 18, 20]));
        assert_eq!(update.watermark, Some(d(22)));
    }

    #[test]
    fn a_snapshot_table_with_nothing_loaded_now_keeps_its_newest_recorded_snapshot() {
        let update = ledger_update(
            LoadMode::Snapshot,
            &plan(&[10, 18, 20, 22]),
            &recorded(&[10, 18, 20]),
            &[],
        );
        assert_eq!(update.forget, dates(&[10]), "only the expired one");
        assert_eq!(update.watermark, Some(d(20)));
        let update = ledger_update(LoadMode::Snapshot, &plan(&[10, 22]), &recorded(&[10]), &[]);
        assert_eq!(
            update.watermark, None,
            "an expired snapshot is no watermark"
        );
    }
}
