//! Partition planning: classifies every partition of a table against the ledger and the calendar,
//! and picks what a run (or a backfill) loads. Pure: no I/O, so every rule is unit-tested.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use serde::Serialize;

use crate::config::{Completeness, LoadMode, TableConfig};
use crate::listing::{DiscoveredPartition, TableListing};

/// What a partition is, for this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionState {
    /// In the ledger with the same fingerprint: nothing to do.
    Loaded,
    /// Cold, complete, not loaded yet.
    Pending,
    /// Loaded, but its files changed since: reload it.
    Changed,
    /// Cold but not (yet) complete by the table's completeness policy.
    Incomplete,
    /// Newer than `today - hot_days`: the streaming jobs' state still holds it.
    Hot,
    /// Older than `today - retention_days`: ignored, its keys have expired.
    Expired,
    /// Snapshot tables: an older complete snapshot than the one that counts.
    Superseded,
}

impl PartitionState {
    /// The state's name as in logs and JSON (`pending`, `changed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionState::Loaded => "loaded",
            PartitionState::Pending => "pending",
            PartitionState::Changed => "changed",
            PartitionState::Incomplete => "incomplete",
            PartitionState::Hot => "hot",
            PartitionState::Expired => "expired",
            PartitionState::Superseded => "superseded",
        }
    }

    /// True for a cold partition in the window that is complete (loaded or to be loaded).
    pub fn is_complete(self) -> bool {
        matches!(
            self,
            PartitionState::Loaded | PartitionState::Pending | PartitionState::Changed
        )
    }

    /// True for states a run loads.
    pub fn needs_load(self) -> bool {
        matches!(self, PartitionState::Pending | PartitionState::Changed)
    }
}

/// One partition and its state.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionPlan {
    /// Partition date.
    pub date: NaiveDate,
    /// Its state.
    pub state: PartitionState,
    /// Data files.
    pub files: usize,
    /// Bytes of the data files.
    pub bytes: u64,
    /// Why it is incomplete, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The plan of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TablePlan {
    /// Table name.
    pub table: String,
    /// The business day taken as today.
    pub today: NaiveDate,
    /// Newest cold date (`today - hot_days`): readers expect it in the KV.
    pub newest_cold: NaiveDate,
    /// Oldest date kept (`today - retention_days`).
    pub oldest_kept: NaiveDate,
    /// Every partition found, by date.
    pub partitions: Vec<PartitionPlan>,
    /// Set when the newest cold date has no complete partition.
    pub late: Option<NaiveDate>,
    /// Partition values that are not dates (skipped).
    pub invalid_values: Vec<String>,
}

impl TablePlan {
    /// Dates a normal run loads, oldest first.
    pub fn dates_to_load(&self) -> Vec<NaiveDate> {
        self.partitions
            .iter()
            .filter(|p| p.state.needs_load())
            .map(|p| p.date)
            .collect()
    }

    /// Dates a backfill of `[from, to]` loads: pending and changed ones, and with `force` also
    /// loaded ones. Hot, incomplete, expired and superseded partitions are never loaded.
    pub fn dates_to_backfill(&self, from: NaiveDate, to: NaiveDate, force: bool) -> Vec<NaiveDate> {
        self.partitions
            .iter()
            .filter(|p| p.date >= from && p.date <= to)
            .filter(|p| p.state.needs_load() || (force && p.state == PartitionState::Loaded))
            .map(|p| p.date)
            .collect()
    }

    /// The plan entry of a date.
    pub fn partition(&self, date: NaiveDate) -> Option<&PartitionPlan> {
        self.partitions.iter().find(|p| p.date == date)
    }
}

/// Why a partition is not complete under the table's policy (`None` when it is complete).
fn incompleteness(
    table: &TableConfig,
    listing: &TableListing,
    partition: &DiscoveredPartition,
    now_ms: i64,
) -> Option<String> {
    // Nothing but hidden paths (a job still writing to `_temporary/`): not complete. A partition
    // whose producer marked it done with no rows (only zero-byte files, or only `_SUCCESS`) is a
    // complete, empty partition under the policy below.
    if partition.files.is_empty() && partition.empty_files == 0 && partition.marker_dirs.is_empty()
    {
        return Some("no data files".to_string());
    }
    match table.completeness {
        Completeness::Marker if !partition.has_marker() => {
            return Some("no _SUCCESS marker in the partition".to_string());
        }
        Completeness::TableMarker => match (listing.table_marker_ms, partition.newest_file_ms()) {
            (None, _) => return Some("no _SUCCESS marker at the table root".to_string()),
            (Some(marker), Some(newest)) if marker < newest => {
                return Some("a file is newer than the table's _SUCCESS marker".to_string());
            }
            _ => {}
        },
        _ => {}
    }
    let min_age_ms = table.min_age.as_millis() as i64;
    if min_age_ms > 0 {
        if let Some(newest) = partition.newest_file_ms() {
            if now_ms - newest < min_age_ms {
                return Some(format!(
                    "a file was modified {}s ago, within min_age_minutes",
                    (now_ms - newest).max(0) / 1000
                ));
            }
        }
    }
    None
}

/// Classifies every partition of `listing`. `loaded` maps loaded dates to their fingerprints.
pub fn plan_table(
    table: &TableConfig,
    listing: &TableListing,
    loaded: &BTreeMap<NaiveDate, String>,
    today: NaiveDate,
    now_ms: i64,
) -> TablePlan {
    let newest_cold = today - Days::new(table.hot_days.into());
    let oldest_kept = today - Days::new(table.retention_days.into());
    let mut partitions: Vec<PartitionPlan> = listing
        .partitions
        .values()
        .map(|partition| {
            let reason = incompleteness(table, listing, partition, now_ms);
            let state = if partition.date > newest_cold {
                PartitionState::Hot
            } else if partition.date < oldest_kept {
                PartitionState::Expired
            } else if reason.is_some() {
                PartitionState::Incomplete
            } else {
                match loaded.get(&partition.date) {
                    Some(fingerprint) if *fingerprint == partition.fingerprint() => {
                        PartitionState::Loaded
                    }
                    Some(_) => PartitionState::Changed,
                    None => PartitionState::Pending,
                }
            };
            PartitionPlan {
                date: partition.date,
                state,
                files: partition.files.len(),
                bytes: partition.bytes(),
                reason: (state == PartitionState::Incomplete).then(|| reason.unwrap_or_default()),
            }
        })
        .collect();
    if table.mode == LoadMode::Snapshot {
        // Only the newest complete cold snapshot counts; older complete ones are superseded.
        let newest_complete = partitions
            .iter()
            .rev()
            .find(|p| p.state.is_complete())
            .map(|p| p.date);
        for p in &mut partitions {
            if Some(p.date) != newest_complete && p.state.is_complete() {
                p.state = PartitionState::Superseded;
            }
        }
    }
    let newest_cold_complete = partitions
        .iter()
        .any(|p| p.date == newest_cold && p.state.is_complete());
    TablePlan {
        table: table.name.clone(),
        today,
        newest_cold,
        oldest_kept,
        partitions,
        late: (!newest_cold_complete).then_some(newest_cold),
        invalid_values: listing.invalid_values.iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    use super::*;
    use crate::config::Config;
    use crate::listing::DataFile;

    fn table(extra: &str) -> TableConfig {
        let text = format!(
            "[source]\nscheme = \"fs\"\nroot = \"/w\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n\
             [[tables]]\nname = \"t\"\npath = \"t\"\nkey = \"k:{{id}}\"\nretention_days = 10\n{extra}\n"
        );
        Config::parse(&text, &HashMap::new())
            .unwrap()
            .tables
            .remove(0)
    }

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    fn partition(day: u32, marker: bool, mtime: i64) -> DiscoveredPartition {
        let dir = format!("t/dt=2026-11-{day:02}/");
        DiscoveredPartition {
            date: d(day),
            files: vec![DataFile {
                path: format!("{dir}part-0.parquet"),
                size: 10,
                etag: None,
                last_modified_ms: Some(mtime),
            }],
            marker_dirs: if marker {
                BTreeSet::from([dir.clone()])
            } else {
                BTreeSet::new()
            },
            dir,
            empty_files: 0,
            committed: false,
            refusal: None,
            catalog_fingerprint: None,
        }
    }

    fn listing(parts: Vec<DiscoveredPartition>) -> TableListing {
        TableListing {
            partitions: parts.into_iter().map(|p| (p.date, p)).collect(),
            ..TableListing::default()
        }
    }

    fn states(plan: &TablePlan) -> Vec<(u32, PartitionState)> {
        use chrono::Datelike;
        plan.partitions
            .iter()
            .map(|p| (p.date.day(), p.state))
            .collect()
    }

    #[test]
    fn classifies_every_state_and_reports_late() {
        let t = table("");
        let l = listing(vec![
            partition(10, true, 0),
            partition(16, true, 0),
            partition(17, true, 0),
            partition(18, true, 0),
            partition(19, false, 0),
            partition(24, true, 0),
        ]);
        let changed = partition(17, true, 0);
        let mut loaded = BTreeMap::from([
            (d(16), partition(16, true, 0).fingerprint()),
            (d(17), "old".to_string()),
        ]);
        let plan = plan_table(&t, &l, &loaded, d(25), 0);
        use PartitionState::*;
        assert_eq!(
            states(&plan),
            vec![
                (10, Expired),
                (16, Loaded),
                (17, Changed),
                (18, Pending),
                (19, Incomplete),
                (24, Hot)
            ]
        );
        assert_eq!(plan.newest_cold, d(23));
        assert_eq!(plan.oldest_kept, d(15));
        assert_eq!(plan.late, Some(d(23)));
        assert_eq!(plan.dates_to_load(), vec![d(17), d(18)]);
        assert_eq!(plan.dates_to_backfill(d(16), d(17), false), vec![d(17)]);
        assert_eq!(
            plan.dates_to_backfill(d(16), d(17), true),
            vec![d(16), d(17)]
        );
        loaded.insert(d(17), changed.fingerprint());
        let plan = plan_table(&t, &l, &loaded, d(20), 0);
        assert_eq!(
            plan.late, None,
            "the 18th is complete and the newest cold date on the 20th"
        );
    }

    #[test]
    fn table_marker_and_min_age() {
        let t = table("completeness = \"table_marker\"");
        let mut l = listing(vec![
            partition(18, false, 1_000),
            partition(19, false, 5_000),
        ]);
        l.table_marker_ms = Some(2_000);
        let plan = plan_table(&t, &l, &BTreeMap::new(), d(21), 10_000);
        assert_eq!(
            states(&plan),
            vec![
                (18, PartitionState::Pending),
                (19, PartitionState::Incomplete)
            ]
        );
        assert_eq!(plan.late, Some(d(19)));

        let t = table("completeness = \"none\"\nmin_age_minutes = 1");
        let l = listing(vec![partition(18, false, 0), partition(19, false, 50_000)]);
        let plan = plan_table(&t, &l, &BTreeMap::new(), d(21), 100_000);
        assert_eq!(
            states(&plan),
            vec![
                (18, PartitionState::Pending),
                (19, PartitionState::Incomplete)
            ]
        );
    }

    #[test]
    fn snapshot_loads_only_the_newest_complete_cold_partition() {
        let t = table("mode = \"snapshot\"");
        let l = listing(vec![
            partition(17, true, 0),
            partition(18, true, 0),
            partition(19, false, 0),
        ]);
        let loaded = BTreeMap::from([(d(17), partition(17, true, 0).fingerprint())]);
        let plan = plan_table(&t, &l, &loaded, d(21), 0);
        use PartitionState::*;
        assert_eq!(
            states(&plan),
            vec![(17, Superseded), (18, Pending), (19, Incomplete)]
        );
        assert_eq!(plan.dates_to_load(), vec![d(18)]);
        assert_eq!(plan.late, Some(d(19)));
    }
}
