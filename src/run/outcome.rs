//! What a run came to: each table's [`TableOutcome`] (with its [`TableStatus`]; the
//! `table_finished` event), the [`RunSummary`] (the `run_finished` event and `run --json`), and
//! the process [`ExitCode`]. [`ExitCode::of`] is the one place that maps how a command ended to
//! its exit code.

use std::ops::Deref;

use chrono::NaiveDate;
use serde::Serialize;

use super::{Counters, StartError, LOG_TARGET};

/// How a table's run ended. Ordered from best to worst: a table's status only ever worsens.
/// The order is the exit codes' precedence: failed (3) > lease held (5) > late (4) > ok (0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    /// Everything due was loaded.
    #[default]
    Ok,
    /// Nothing failed, but the newest cold partition is missing or incomplete.
    Late,
    /// Another run held the table's lease until `lease_wait` ran out: the table was skipped.
    LeaseHeld,
    /// A partition, the listing or the ledger failed (or the lease was lost while loading).
    Failed,
}

impl TableStatus {
    /// The status as in logs and JSON: `ok`, `late`, `lease_held`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            TableStatus::Ok => "ok",
            TableStatus::Late => "late",
            TableStatus::LeaseHeld => "lease_held",
            TableStatus::Failed => "failed",
        }
    }
}

impl PartialEq<&str> for TableStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<TableStatus> for &str {
    fn eq(&self, other: &TableStatus) -> bool {
        *self == other.as_str()
    }
}

/// The process exit codes, documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything loaded, nothing late.
    Ok = 0,
    /// Unexpected failure: Redis or the object store unreachable at start, bad arguments.
    Fatal = 1,
    /// The configuration is invalid.
    Config = 2,
    /// At least one partition (or table) failed to load.
    Failed = 3,
    /// Everything that could load loaded, but a table's newest cold partition is missing.
    Late = 4,
    /// Nothing failed, but another run held a table's lease: that table was skipped.
    LeaseHeld = 5,
    /// `verify` found keys missing, different or with a wrong expiry.
    Mismatch = 6,
}

/// The exit codes by their old constant names (`exit_code::OK`).
pub mod exit_code {
    use super::ExitCode;

    /// Everything loaded, nothing late.
    pub const OK: ExitCode = ExitCode::Ok;
    /// Unexpected failure: Redis or the object store unreachable at start, bad arguments.
    pub const FATAL: ExitCode = ExitCode::Fatal;
    /// The configuration is invalid.
    pub const CONFIG: ExitCode = ExitCode::Config;
    /// At least one partition (or table) failed to load.
    pub const FAILED: ExitCode = ExitCode::Failed;
    /// Everything that could load loaded, but a table's newest cold partition is missing.
    pub const LATE: ExitCode = ExitCode::Late;
    /// Nothing failed, but another run held a table's lease: that table was skipped.
    pub const LEASE_HELD: ExitCode = ExitCode::LeaseHeld;
    /// `verify` found keys missing, different or with a wrong expiry.
    pub const MISMATCH: ExitCode = ExitCode::Mismatch;
}

/// How a command ended, as far as its exit code goes.
#[derive(Debug, Clone, Copy)]
pub enum CommandOutcome<'a> {
    /// A run or backfill went through its tables; `cancelled` when a shutdown stopped it.
    Run {
        /// The outcome of every table it ran.
        tables: &'a [TableOutcome],
        /// A shutdown signal stopped it before the end.
        cancelled: bool,
    },
    /// A read-only command (`plan`, `status`, `check`, `export`) finished; `failed` when a
    /// table (or the exported partition) failed.
    Report {
        /// Something it reports on failed.
        failed: bool,
    },
    /// `verify` finished: `mismatched` when a key was missing, different or had a wrong expiry
    /// (exit 6, before anything else), `failed` when a partition could not be verified (exit 3).
    Verify {
        /// A key did not match.
        mismatched: bool,
        /// A partition (or table) could not be verified.
        failed: bool,
    },
    /// The config file, or an argument checked against it (unknown table), is invalid.
    InvalidConfig,
    /// The command could not start.
    StartFailed(&'a StartError),
    /// The daemon stopped: on a shutdown signal, or `failed` to set up its schedule.
    Daemon {
        /// The schedule could not be set up.
        failed: bool,
    },
}

impl ExitCode {
    /// The exit code of a command that ended as `outcome`.
    pub fn of(outcome: CommandOutcome<'_>) -> ExitCode {
        match outcome {
            CommandOutcome::Run { tables, cancelled } => {
                let worst = tables.iter().map(|t| t.status).max();
                match worst {
                    _ if cancelled => ExitCode::Failed,
                    Some(TableStatus::Failed) => ExitCode::Failed,
                    Some(TableStatus::LeaseHeld) => ExitCode::LeaseHeld,
                    Some(TableStatus::Late) => ExitCode::Late,
                    Some(TableStatus::Ok) | None => ExitCode::Ok,
                }
            }
            CommandOutcome::Report { failed: true } => ExitCode::Failed,
            CommandOutcome::Report { failed: false } => ExitCode::Ok,
            CommandOutcome::Verify {
                mismatched: true, ..
            } => ExitCode::Mismatch,
            CommandOutcome::Verify { failed: true, .. } => ExitCode::Failed,
            CommandOutcome::Verify { .. } => ExitCode::Ok,
            CommandOutcome::InvalidConfig => ExitCode::Config,
            CommandOutcome::StartFailed(StartError::Config(_)) => ExitCode::Config,
            CommandOutcome::StartFailed(StartError::Source(_) | StartError::Redis(_)) => {
                ExitCode::Fatal
            }
            CommandOutcome::Daemon { failed: true } => ExitCode::Config,
            CommandOutcome::Daemon { failed: false } => ExitCode::Ok,
        }
    }

    /// The number the process exits with.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The exit code numbered `code`, if there is one.
    pub fn from_code(code: i32) -> Option<ExitCode> {
        [
            ExitCode::Ok,
            ExitCode::Fatal,
            ExitCode::Config,
            ExitCode::Failed,
            ExitCode::Late,
            ExitCode::LeaseHeld,
            ExitCode::Mismatch,
        ]
        .into_iter()
        .find(|exit| exit.code() == code)
    }
}

impl PartialEq<i32> for ExitCode {
    fn eq(&self, other: &i32) -> bool {
        self.code() == *other
    }
}

impl PartialEq<ExitCode> for i32 {
    fn eq(&self, other: &ExitCode) -> bool {
        *self == other.code()
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(exit: ExitCode) -> std::process::ExitCode {
        std::process::ExitCode::from(exit as u8)
    }
}

/// Outcome of one table in a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableOutcome {
    /// Table name.
    pub table: String,
    /// The table's layout (`default` without `layout`).
    pub layout: String,
    /// `ok`, `late`, `failed`.
    pub status: TableStatus,
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
    /// Days the watermark is behind `today - hot_days` (absent without a watermark).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark_lag_days: Option<i64>,
    /// How long the run waited for the table's lease.
    pub lease_wait_ms: u64,
    /// What the partitions loaded in this run read and wrote.
    #[serde(flatten)]
    pub counters: Counters,
    /// A table-level error (listing, ledger, lease).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TableOutcome {
    /// The outcome of a table before anything happened to it.
    pub fn new(table: &str) -> TableOutcome {
        TableOutcome {
            table: table.to_string(),
            layout: crate::config::DEFAULT_LAYOUT.to_string(),
            ..TableOutcome::default()
        }
    }

    /// The same outcome, of `layout`.
    pub fn in_layout(mut self, layout: &str) -> TableOutcome {
        self.layout = layout.to_string();
        self
    }

    /// Worsens the status to `status` (a failed table stays failed when it is also late).
    pub fn worsen(&mut self, status: TableStatus) {
        self.status = self.status.max(status);
    }

    /// Logs the `table_finished` event: one per table, every field a plain value.
    pub fn log_finished(&self, run_id: &str, shard: Option<&str>) {
        crate::counters_event!(
            info,
            target: LOG_TARGET,
            self.counters,
            "table finished",
            event = "table_finished",
            run_id = %run_id,
            table = %self.table,
            layout = %self.layout,
            status = self.status.as_str(),
            shard,
            partitions_loaded = self.partitions_loaded,
            partitions_failed = self.partitions_failed,
            late = self.late.map(tracing::field::display),
            watermark = self.watermark.map(tracing::field::display),
            watermark_lag_days = self.watermark_lag_days,
            lease_wait_ms = self.lease_wait_ms,
            error = self.error.as_deref()
        );
    }
}

impl Deref for TableOutcome {
    type Target = Counters;

    fn deref(&self) -> &Counters {
        &self.counters
    }
}

/// The summary of a run: the `run_finished` event and `--json` output.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// The exit code the process ends with, as a number ([`ExitCode::code`]) because that is
    /// what the JSON shows and what callers compare; [`RunSummary::exit`] gives it typed.
    pub exit_code: i32,
    /// Wall time.
    pub duration_ms: u64,
    /// Partitions loaded.
    pub partitions_loaded: u64,
    /// Partitions failed.
    pub partitions_failed: u64,
    /// Tables with a late partition.
    pub partitions_late: u64,
    /// The shard of the dates this run took (`I/N`), when it was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// What every partition loaded in the run read and wrote.
    #[serde(flatten)]
    pub counters: Counters,
    /// Dry run: nothing was written.
    pub dry_run: bool,
    /// Per table.
    pub tables: Vec<TableOutcome>,
}

impl RunSummary {
    /// The exit code, typed.
    pub fn exit(&self) -> ExitCode {
        ExitCode::from_code(self.exit_code).unwrap_or(ExitCode::Fatal)
    }

    /// Adds a table's outcome to the totals and the list.
    pub fn add_table(&mut self, outcome: TableOutcome) {
        self.partitions_loaded += outcome.partitions_loaded;
        self.partitions_failed += outcome.partitions_failed;
        self.partitions_late += u64::from(outcome.late.is_some());
        self.counters.add(&outcome.counters);
        self.tables.push(outcome);
    }

    /// Sets the exit code from the tables' outcomes (every table added, `cancelled` when a
    /// shutdown stopped the run).
    pub fn set_exit_code(&mut self, cancelled: bool) {
        let exit = ExitCode::of(CommandOutcome::Run {
            tables: &self.tables,
            cancelled,
        });
        self.exit_code = exit.code();
    }

    /// Logs the `run_finished` event (the tables have their own `table_finished` events).
    pub fn log_finished(&self) {
        crate::counters_event!(
            info,
            target: LOG_TARGET,
            self.counters,
            "run finished",
            event = "run_finished",
            run_id = %self.run_id,
            exit_code = self.exit_code,
            duration_ms = self.duration_ms,
            partitions_loaded = self.partitions_loaded,
            partitions_failed = self.partitions_failed,
            partitions_late = self.partitions_late,
            shard = self.shard.as_deref(),
            dry_run = self.dry_run
        );
    }
}

impl Deref for RunSummary {
    type Target = Counters;

    fn deref(&self) -> &Counters {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ConfigError;

    fn table(status: TableStatus) -> TableOutcome {
        TableOutcome {
            status,
            ..TableOutcome::new("t")
        }
    }

    fn run_exit(statuses: &[TableStatus], cancelled: bool) -> ExitCode {
        let tables: Vec<TableOutcome> = statuses.iter().map(|s| table(*s)).collect();
        ExitCode::of(CommandOutcome::Run {
            tables: &tables,
            cancelled,
        })
    }

    #[test]
    fn a_run_exits_with_its_worst_table() {
        use TableStatus::*;
        assert_eq!(run_exit(&[], false), ExitCode::Ok);
        assert_eq!(run_exit(&[Ok, Ok], false), ExitCode::Ok);
        assert_eq!(run_exit(&[Ok, Late], false), ExitCode::Late);
        assert_eq!(run_exit(&[Failed, Late, Ok], false), ExitCode::Failed);
        assert_eq!(run_exit(&[Late, LeaseHeld, Ok], false), ExitCode::LeaseHeld);
        assert_eq!(run_exit(&[LeaseHeld, Failed], false), ExitCode::Failed);
        assert_eq!(run_exit(&[Ok], true), ExitCode::Failed, "cancelled");
        assert_eq!(run_exit(&[], true), ExitCode::Failed, "cancelled");
    }

    #[test]
    fn other_commands_map_to_their_documented_codes() {
        let config = StartError::Config(ConfigError::Invalid {
            option: "--table".into(),
            message: "unknown".into(),
        });
        assert_eq!(ExitCode::of(CommandOutcome::StartFailed(&config)), 2);
        let redis = StartError::Redis(crate::error::RedisError::Timeout { seconds: 3 });
        assert_eq!(ExitCode::of(CommandOutcome::StartFailed(&redis)), 1);
        assert_eq!(ExitCode::of(CommandOutcome::InvalidConfig), 2);
        assert_eq!(ExitCode::of(CommandOutcome::Report { failed: true }), 3);
        assert_eq!(ExitCode::of(CommandOutcome::Report { failed: false }), 0);
        assert_eq!(ExitCode::of(CommandOutcome::Daemon { failed: true }), 2);
        assert_eq!(ExitCode::of(CommandOutcome::Daemon { failed: false }), 0);
        let verify =
            |mismatched, failed| ExitCode::of(CommandOutcome::Verify { mismatched, failed });
        assert_eq!(
            verify(true, true),
            6,
            "a mismatch is reported before a failure"
        );
        assert_eq!(verify(true, false), 6);
        assert_eq!(verify(false, true), 3);
        assert_eq!(verify(false, false), 0);
    }

    #[test]
    fn exit_codes_are_the_documented_numbers() {
        let all = [
            (exit_code::OK, 0),
            (exit_code::FATAL, 1),
            (exit_code::CONFIG, 2),
            (exit_code::FAILED, 3),
            (exit_code::LATE, 4),
            (exit_code::LEASE_HELD, 5),
            (exit_code::MISMATCH, 6),
        ];
        for (exit, code) in all {
            assert_eq!(exit, code);
            assert_eq!(code, exit);
            assert_eq!(ExitCode::from_code(code), Some(exit));
        }
        // Was `from_code(5)`: 5 is the lease's code now (issue 7).
        assert_eq!(ExitCode::from_code(6), Some(ExitCode::Mismatch));
        assert_eq!(ExitCode::from_code(7), None);
    }

    #[test]
    fn a_status_only_worsens_and_serializes_lowercase() {
        let mut outcome = TableOutcome::new("t");
        assert_eq!(outcome.status, "ok");
        outcome.worsen(TableStatus::Failed);
        outcome.worsen(TableStatus::Late);
        assert_eq!(outcome.status, TableStatus::Failed);
        assert_eq!("failed", outcome.status);
        for status in [
            TableStatus::Ok,
            TableStatus::Late,
            TableStatus::LeaseHeld,
            TableStatus::Failed,
        ] {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
    }

    #[test]
    fn the_summary_json_is_flat_with_the_exit_code_as_a_number() {
        let mut summary = RunSummary {
            run_id: "r".into(),
            ..RunSummary::default()
        };
        let mut late = TableOutcome::new("t");
        late.late = NaiveDate::from_ymd_opt(2026, 11, 20);
        late.worsen(TableStatus::Late);
        late.partitions_loaded = 2;
        late.counters.rows = 7;
        summary.add_table(late);
        summary.set_exit_code(false);
        assert_eq!(summary.exit(), ExitCode::Late);
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["exit_code"], serde_json::json!(4));
        assert_eq!(json["rows"], serde_json::json!(7));
        assert_eq!(json["partitions_late"], serde_json::json!(1));
        assert_eq!(json["partitions_loaded"], serde_json::json!(2));
        assert_eq!(json["tables"][0]["status"], serde_json::json!("late"));
        assert_eq!(json["tables"][0]["late"], serde_json::json!("2026-11-20"));
        assert_eq!(json["tables"][0]["rows"], serde_json::json!(7));
        assert!(json.get("counters").is_none());
    }
}
