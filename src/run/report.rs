//! Read-only reports: `plan` (partitions, states, rows from footers, estimated keys and Redis
//! memory), `status` (ledger and watermark per table) and `check --connect`. Each is a method of
//! [`Engine`] returning data; `main` prints it and picks the exit code.

use chrono::NaiveDate;
use serde::Serialize;

use super::Engine;
use crate::config::TableConfig;
use crate::encode::ValueFormat;
use crate::error::PartitionError;
use crate::load::prepare;
use crate::plan::PartitionState;
use crate::verify::record::{load as verify_record, VerifyRecord};

/// The `target` of the reports' log events: `coldsync::report`, the module they came from
/// before it moved under `run`, so that log lines stay as they were.
const REPORT_LOG_TARGET: &str = "coldsync::report";

/// Approximate Redis bytes per key beyond its key and value bytes (dict entry, object headers,
/// expiry entry, allocator rounding) for a string value.
const STRING_KEY_OVERHEAD: u64 = 80;
/// The same for a small hash (listpack encoding), plus 2 bytes per field.
const HASH_KEY_OVERHEAD: u64 = 100;

/// One partition line of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanLine {
    /// Date.
    pub date: NaiveDate,
    /// State.
    pub state: PartitionState,
    /// Files.
    pub files: usize,
    /// Bytes of the files.
    pub bytes: u64,
    /// Rows from the footers (partitions to load only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Estimated keys written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub est_keys: Option<u64>,
    /// Estimated Redis memory of those keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub est_memory_bytes: Option<u64>,
    /// Why incomplete, or why the footers could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The plan of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// Table.
    pub table: String,
    /// Layout (`default` without `layout`).
    pub layout: String,
    /// Where the partitions came from (catalog, format, snapshot or version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::listing::ListingOrigin>,
    /// Today as used.
    pub today: Option<NaiveDate>,
    /// Late date.
    pub late: Option<NaiveDate>,
    /// Partitions.
    pub partitions: Vec<PlanLine>,
    /// Error listing the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// Per table.
    pub tables: Vec<TableReport>,
    /// Sum of estimated memory of everything to load.
    pub est_memory_bytes: u64,
    /// `maxmemory - used_memory` when Redis has a maxmemory; on a cluster, the least of the
    /// masters'.
    pub redis_free_bytes: Option<u64>,
    /// On a Redis Cluster: each master's share of the estimate (keys spread by slot, as sampled)
    /// and its free memory. The fullest master decides the warning.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masters: Vec<MasterMemory>,
}

/// One master's share of a plan on a Redis Cluster.
#[derive(Debug, Clone, Serialize)]
pub struct MasterMemory {
    /// `host:port`.
    pub node: String,
    /// Estimated memory of the keys of its slots.
    pub est_memory_bytes: u64,
    /// Its `maxmemory - used_memory` when it has a maxmemory.
    pub redis_free_bytes: Option<u64>,
}

/// `maxmemory - used_memory` of an `INFO memory`, when there is a maxmemory.
fn free_bytes(info: &std::collections::BTreeMap<String, String>) -> Option<u64> {
    let get = |name: &str| info.get(name).and_then(|v| v.parse::<u64>().ok());
    match (get("maxmemory"), get("used_memory")) {
        (Some(max), Some(used)) if max > 0 => Some(max.saturating_sub(used)),
        _ => None,
    }
}

impl Engine {
    /// Estimates bytes per key from the first batch of the first file of a partition.
    async fn estimate_key_bytes(
        &self,
        table: &TableConfig,
        partition: &crate::listing::DiscoveredPartition,
    ) -> Result<(u64, u64, Vec<u16>), PartitionError> {
        let prepared = prepare(
            self.operator(),
            table,
            partition,
            self.config().source.read_concurrency,
            false,
        )
        .await?;
        let rows_total = prepared.rows;
        let sample = prepared.sample_rows().await?;
        let slots = sample.as_ref().map_or_else(Vec::new, |(_, encoded)| {
            (0..encoded.len())
                .map(|row| crate::redis::key_slot(encoded.key(row)))
                .collect()
        });
        let per_key = match sample {
            Some((rows, encoded)) if rows > 0 => {
                let overhead = match table.format {
                    ValueFormat::Hash => {
                        HASH_KEY_OVERHEAD + 2 * table.columns.as_ref().map_or(8, |c| c.len() as u64)
                    }
                    _ => STRING_KEY_OVERHEAD,
                };
                encoded.byte_len() as u64 / encoded.len().max(1) as u64 + overhead
            }
            _ => STRING_KEY_OVERHEAD,
        };
        Ok((rows_total, per_key, slots))
    }

    /// The plan of the selected tables, with footers read for the partitions a run would load.
    pub async fn plan_report(
        &self,
        tables: &[TableConfig],
        as_of: Option<NaiveDate>,
    ) -> PlanReport {
        let mut report = PlanReport {
            tables: Vec::new(),
            est_memory_bytes: 0,
            redis_free_bytes: None,
            masters: Vec::new(),
        };
        // Estimated bytes per slot (a cluster's spread), from the slots of the sampled keys.
        let mut slot_bytes = vec![0f64; crate::redis::cluster::SLOTS];
        for table in tables {
            let (listing, plan) = match self.plan_table(table, as_of).await {
                Ok((listing, _, plan)) => (listing, plan),
                Err(err) => {
                    report.tables.push(TableReport {
                        table: table.name.clone(),
                        layout: table.layout_name().to_string(),
                        origin: None,
                        today: None,
                        late: None,
                        partitions: Vec::new(),
                        error: Some(err.to_string()),
                    });
                    continue;
                }
            };
            let mut lines = Vec::new();
            for p in &plan.partitions {
                let mut line = PlanLine {
                    date: p.date,
                    state: p.state,
                    files: p.files,
                    bytes: p.bytes,
                    rows: None,
                    est_keys: None,
                    est_memory_bytes: None,
                    note: p.reason.clone(),
                };
                if p.state.needs_load() {
                    match self
                        .estimate_key_bytes(table, &listing.partitions[&p.date])
                        .await
                    {
                        Ok((rows, per_key, slots)) => {
                            let share = (rows * per_key) as f64 / slots.len().max(1) as f64;
                            for slot in slots {
                                slot_bytes[usize::from(slot)] += share;
                            }
                            line.rows = Some(rows);
                            line.est_keys = Some(rows);
                            line.est_memory_bytes = Some(rows * per_key);
                            report.est_memory_bytes += rows * per_key;
                        }
                        Err(err) => line.note = Some(err.to_string()),
                    }
                }
                lines.push(line);
            }
            report.tables.push(TableReport {
                table: table.name.clone(),
                layout: table.layout_name().to_string(),
                origin: (!table.source.is_listed_directories()).then(|| listing.origin.clone()),
                today: Some(plan.today),
                late: plan.late,
                partitions: lines,
                error: None,
            });
        }
        if self.config().redis.cluster.is_some() {
            self.cluster_memory(&mut report, &slot_bytes).await;
            return report;
        }
        if let Ok(info) = self.ledger().info("memory").await {
            report.redis_free_bytes = free_bytes(&info);
        }
        if let Some(free) = report.redis_free_bytes {
            if report.est_memory_bytes > free {
                tracing::warn!(
                    target: REPORT_LOG_TARGET,
                    event = "memory_warning",
                    est_memory_bytes = report.est_memory_bytes,
                    redis_free_bytes = free,
                    "the load would exceed the memory redis has free (maxmemory - used_memory)"
                );
            }
        }
        report
    }

    /// The plan's memory per master of a cluster (`slot_bytes`: the estimate per slot), and a
    /// `memory_warning` for each master it would not fit in.
    async fn cluster_memory(&self, report: &mut PlanReport, slot_bytes: &[f64]) {
        let seeds = crate::redis::cluster::seeds(&self.config().redis);
        let Ok(topology) = crate::redis::cluster::discover(&self.connector, &seeds).await else {
            return;
        };
        let infos = self.ledger().control().master_infos("memory").await;
        let infos = infos.unwrap_or_default();
        let mut per_master = vec![0f64; topology.masters.len()];
        for (slot, bytes) in slot_bytes.iter().enumerate() {
            per_master[topology.master_of(slot as u16)] += bytes;
        }
        for (master, bytes) in topology.masters.iter().zip(per_master) {
            let node = master.to_string();
            let free = infos
                .iter()
                .find(|(name, _)| *name == node)
                .and_then(|(_, info)| free_bytes(info));
            let est = bytes.round() as u64;
            if let Some(free) = free.filter(|&free| est > free) {
                tracing::warn!(
                    target: REPORT_LOG_TARGET,
                    event = "memory_warning",
                    node = %node,
                    est_memory_bytes = est,
                    redis_free_bytes = free,
                    "the load would exceed the memory this cluster master has free (maxmemory - used_memory)"
                );
            }
            report.masters.push(MasterMemory {
                node,
                est_memory_bytes: est,
                redis_free_bytes: free,
            });
        }
        report.redis_free_bytes = report
            .masters
            .iter()
            .filter_map(|m| m.redis_free_bytes)
            .min();
    }

    /// Per-table ledger summary.
    pub async fn status(&self, tables: &[TableConfig]) -> Vec<LedgerStatus> {
        let mut out = Vec::new();
        for table in tables {
            let id = table.ledger_id();
            let status = match (
                self.ledger().entries(&id).await,
                self.ledger().watermark(&id).await,
                verify_record(self.ledger(), table).await,
            ) {
                (Ok(entries), Ok(watermark), Ok(verified)) => LedgerStatus {
                    table: table.name.clone(),
                    layout: table.layout_name().to_string(),
                    verified,
                    caught_up: false,
                    ready: false,
                    partitions_loaded: entries.len() as u64,
                    oldest_loaded: entries.keys().next().copied(),
                    newest_loaded: entries.keys().next_back().copied(),
                    watermark,
                    rows: entries.values().map(|e| e.rows).sum(),
                    keys: entries.values().map(|e| e.keys).sum(),
                    last_loaded_at: entries.values().map(|e| e.loaded_at.clone()).max(),
                    snapshot: entries
                        .values()
                        .max_by(|a, b| a.loaded_at.cmp(&b.loaded_at))
                        .and_then(|e| e.snapshot.clone()),
                    catalog: table.source.catalog.as_str(),
                    format: table.source.format.as_str(),
                    error: None,
                },
                (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => LedgerStatus {
                    table: table.name.clone(),
                    layout: table.layout_name().to_string(),
                    catalog: table.source.catalog.as_str(),
                    format: table.source.format.as_str(),
                    error: Some(err.to_string()),
                    ..LedgerStatus::default()
                },
            };
            out.push(status);
        }
        mark_ready(&mut out);
        out
    }

    /// `check --connect`: lists each table and checks the newest partition's files against the
    /// key template and value encoding. Returns one line per table (`None` when fine).
    pub async fn check_tables(
        &self,
        tables: &[TableConfig],
    ) -> Vec<(String, Result<String, String>)> {
        let mut out = Vec::new();
        for table in tables {
            let result = async {
                let listing = crate::catalog::discover(self.operator(), table)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(partition) = listing.partitions.values().rev().find(|p| !p.files.is_empty()) else {
                    return Ok(if table.source.is_listed_directories() {
                        format!("no partitions under {}/ yet", table.path)
                    } else {
                        format!(
                            "no partitions in the {}/{} table yet",
                            table.source.catalog.as_str(),
                            table.source.format.as_str()
                        )
                    });
                };
                let prepared = prepare(self.operator(), table, partition, self.config().source.read_concurrency, false)
                    .await
                    .map_err(|e| format!("partition {}: {e}", partition.date))?;
                Ok(format!(
                    "{} partitions; newest {} has {} files, {} rows; key and value columns readable",
                    listing.partitions.len(),
                    partition.date,
                    prepared.files(),
                    prepared.rows
                ))
            }
            .await;
            out.push((table.name.clone(), result));
        }
        out
    }
}

/// The ledger of one table, as `status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LedgerStatus {
    /// Table.
    pub table: String,
    /// Partitions recorded.
    pub partitions_loaded: u64,
    /// Oldest recorded date.
    pub oldest_loaded: Option<NaiveDate>,
    /// Newest recorded date.
    pub newest_loaded: Option<NaiveDate>,
    /// Watermark.
    pub watermark: Option<NaiveDate>,
    /// Rows of the recorded partitions.
    pub rows: u64,
    /// Keys of the recorded partitions.
    pub keys: u64,
    /// Most recent load.
    pub last_loaded_at: Option<String>,
    /// Error reading the ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The layout (`default` without `layout`).
    pub layout: String,
    /// The table's `catalog` (`none`, `hive_metastore`, `rest`).
    pub catalog: &'static str,
    /// The table's `format` (`hive`, `iceberg`, `delta`).
    pub format: &'static str,
    /// The Iceberg snapshot or Delta version of the most recent load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The last `verify` of this layout, if any.
    pub verified: Option<VerifyRecord>,
    /// The watermark has caught up with every other layout's of the table.
    pub caught_up: bool,
    /// Caught up, and the last verify passed: readers may switch to this layout.
    pub ready: bool,
}

/// Sets `caught_up` and `ready` of each layout: its watermark is at least every other layout's
/// of the same table, and its last verify passed.
pub fn mark_ready(statuses: &mut [LedgerStatus]) {
    let newest: Vec<Option<NaiveDate>> = statuses
        .iter()
        .map(|s| {
            statuses
                .iter()
                .filter(|o| o.table == s.table && o.layout != s.layout)
                .filter_map(|o| o.watermark)
                .max()
        })
        .collect();
    for (status, others) in statuses.iter_mut().zip(newest) {
        status.caught_up = match (status.watermark, others) {
            (Some(own), Some(others)) => own >= others,
            (own, None) => own.is_some(),
            (None, Some(_)) => false,
        };
        status.ready = status.caught_up
            && status.error.is_none()
            && status.verified.as_ref().is_some_and(|v| v.passed);
    }
}

/// `hive_metastore/iceberg snapshot 42: ` for a table that does not come from listed Hive
/// directories; nothing for one that does (the original source, whose lines stay as they were).
fn origin_note(catalog: &str, format: &str, snapshot: Option<&str>) -> String {
    if (catalog, format) == ("none", "hive") || catalog.is_empty() {
        return String::new();
    }
    let version = match (format, snapshot) {
        (_, None) => String::new(),
        ("delta", Some(v)) => format!(" version {v}"),
        (_, Some(v)) => format!(" snapshot {v}"),
    };
    format!("{catalog}/{format}{version}: ")
}

/// Text form of `status`, one line per table layout.
pub fn format_status(status: &[LedgerStatus]) -> String {
    let d = |d: Option<NaiveDate>| d.map_or("-".to_string(), |d| d.to_string());
    let mut out = String::new();
    for s in status {
        let verified = s.verified.as_ref().map_or("never".to_string(), |v| {
            let result = if v.passed { "passed" } else { "FAILED" };
            format!("{result} {}", v.verified_at)
        });
        let readiness = if s.ready {
            "ready"
        } else if s.caught_up {
            "not verified"
        } else {
            "not caught up"
        };
        out.push_str(&format!(
            "{} ({}): {}{} partitions loaded ({} .. {}), watermark {}, {} keys, last load {}, verify {verified}, {readiness}{}\n",
            s.table,
            s.layout,
            origin_note(s.catalog, s.format, s.snapshot.as_deref()),
            s.partitions_loaded,
            d(s.oldest_loaded),
            d(s.newest_loaded),
            d(s.watermark),
            s.keys,
            s.last_loaded_at.as_deref().unwrap_or("-"),
            s.error.as_ref().map(|e| format!(" ERROR {e}")).unwrap_or_default()
        ));
    }
    out
}

/// Text form of a plan, one line per partition; sizes in binary units (`1.43 MiB`), counts with
/// thousands separators (`plan --json` keeps plain bytes and counts).
pub fn format_plan(report: &PlanReport) -> String {
    use indicatif::{HumanBytes, HumanCount};
    let mut out = String::new();
    for table in &report.tables {
        out.push_str(&format!("table {}", table.table));
        if table.layout != crate::config::DEFAULT_LAYOUT {
            out.push_str(&format!(" layout {}", table.layout));
        }
        if let Some(origin) = &table.origin {
            out.push_str(&format!(
                " from {}",
                origin_note(origin.catalog, origin.format, origin.snapshot.as_deref())
                    .trim_end_matches(": ")
            ));
        }
        if let Some(today) = table.today {
            out.push_str(&format!(" (today {today})"));
        }
        out.push('\n');
        if let Some(err) = &table.error {
            out.push_str(&format!("  error: {err}\n"));
            continue;
        }
        out.push_str("  date        state       files        bytes         rows     est_keys   est_memory  note\n");
        for p in &table.partitions {
            let count = |v: Option<u64>| v.map_or("-".to_string(), |v| HumanCount(v).to_string());
            let size = |v: Option<u64>| v.map_or("-".to_string(), |v| HumanBytes(v).to_string());
            out.push_str(&format!(
                "  {}  {:<10} {:>6} {:>12} {:>12} {:>12} {:>12}  {}\n",
                p.date,
                p.state.as_str(),
                p.files,
                size(Some(p.bytes)),
                count(p.rows),
                count(p.est_keys),
                size(p.est_memory_bytes),
                p.note.as_deref().unwrap_or("")
            ));
        }
        if let Some(late) = table.late {
            out.push_str(&format!("  LATE: no complete partition for {late}\n"));
        }
    }
    out.push_str(&format!(
        "estimated redis memory to write: {}",
        HumanBytes(report.est_memory_bytes)
    ));
    if let Some(free) = report.redis_free_bytes {
        out.push_str(&format!(" (redis free: {})", HumanBytes(free)));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_plan_shows_sizes_in_human_units() {
        let report = PlanReport {
            tables: vec![TableReport {
                table: "orders".into(),
                layout: "default".into(),
                origin: None,
                today: NaiveDate::from_ymd_opt(2026, 11, 22),
                late: None,
                partitions: vec![PlanLine {
                    date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
                    state: PartitionState::Pending,
                    files: 2,
                    bytes: 1_500_000,
                    rows: Some(1_234_567),
                    est_keys: Some(1_234_567),
                    est_memory_bytes: Some(3 * 1024 * 1024 * 1024),
                    note: None,
                }],
                error: None,
            }],
            est_memory_bytes: 3 * 1024 * 1024 * 1024,
            redis_free_bytes: Some(512 * 1024),
            masters: Vec::new(),
        };
        let text = format_plan(&report);
        assert!(text.contains("1.43 MiB"), "{text}");
        assert!(text.contains("1,234,567"), "{text}");
        assert!(text.contains("3.00 GiB"), "{text}");
        assert!(
            text.ends_with("estimated redis memory to write: 3.00 GiB (redis free: 512.00 KiB)\n"),
            "{text}"
        );
        assert!(
            !text.contains("1500000") && !text.contains("3221225472"),
            "{text}"
        );
    }

    fn layout(
        table: &str,
        layout: &str,
        watermark: Option<&str>,
        passed: Option<bool>,
    ) -> LedgerStatus {
        LedgerStatus {
            table: table.into(),
            layout: layout.into(),
            watermark: watermark.map(|d| d.parse().unwrap()),
            verified: passed.map(|passed| VerifyRecord {
                passed,
                ..VerifyRecord::default()
            }),
            ..LedgerStatus::default()
        }
    }

    #[test]
    fn a_layout_is_ready_once_caught_up_with_the_others_and_verified() {
        let mut statuses = vec![
            layout("orders", "default", Some("2026-11-21"), Some(true)),
            layout("orders", "v2", Some("2026-11-20"), Some(true)),
            layout("orders", "v3", None, None),
            layout("items", "default", Some("2026-11-01"), Some(false)),
            layout("users", "default", Some("2026-11-01"), Some(true)),
        ];
        mark_ready(&mut statuses);
        let got: Vec<(bool, bool)> = statuses.iter().map(|s| (s.caught_up, s.ready)).collect();
        assert_eq!(
            got,
            [
                (true, true),
                (false, false),
                (false, false),
                (true, false),
                (true, true)
            ],
            "v2 is a day behind; items failed its verify; another table's watermark does not count"
        );
        statuses[1].watermark = statuses[0].watermark;
        mark_ready(&mut statuses);
        assert!(statuses[1].ready);
    }
}
