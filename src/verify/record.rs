//! The last verify of each table (layout), kept beside its ledger in
//! `<prefix>:{<table>[@<layout>]}:verified` (a hash of flat fields) so that `status` can tell
//! whether a layout is ready.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Utc};
use serde::Serialize;

use super::report::TableReport;
use super::VerifyOptions;
use crate::config::TableConfig;
use crate::error::RedisError;
use crate::ledger::Ledger;

/// The last verify of a table (layout), as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyRecord {
    /// The oldest partition verified.
    pub from: Option<NaiveDate>,
    /// The newest partition verified.
    pub to: Option<NaiveDate>,
    /// Partitions verified.
    pub partitions: u64,
    /// Keys read back.
    pub sampled: u64,
    /// Keys missing, different or with a wrong expiry.
    pub mismatched: u64,
    /// Partitions that could not be verified.
    pub failed: u64,
    /// At least one partition verified, nothing mismatched or failed.
    pub passed: bool,
    /// When (RFC 3339, UTC).
    pub verified_at: String,
    /// `--full`, or the keys sampled per partition.
    pub sample: String,
}

/// Records `report` as the table's last verify.
pub async fn save(
    ledger: &Ledger,
    table: &TableConfig,
    options: &VerifyOptions,
    report: &TableReport,
) -> Result<(), RedisError> {
    let record = VerifyRecord {
        from: report.partitions.first().map(|p| p.date),
        to: report.partitions.last().map(|p| p.date),
        partitions: report.partitions.len() as u64,
        sampled: report.counts.sampled,
        mismatched: report.counts.mismatched(),
        failed: report.failed(),
        passed: report.passed() && !report.partitions.is_empty(),
        verified_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        sample: options.sample.map_or("full".to_string(), |n| n.to_string()),
    };
    let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    let fields = [
        ("from", date(record.from)),
        ("to", date(record.to)),
        ("partitions", record.partitions.to_string()),
        ("sampled", record.sampled.to_string()),
        ("mismatched", record.mismatched.to_string()),
        ("failed", record.failed.to_string()),
        ("passed", record.passed.to_string()),
        ("verified_at", record.verified_at.clone()),
        ("sample", record.sample.clone()),
    ];
    let mut cmd = ::redis::cmd("HSET");
    cmd.arg(ledger.verified_key(&table.ledger_id()));
    for (name, value) in &fields {
        cmd.arg(*name).arg(value);
    }
    ledger.control().query_idempotent::<i64>(&cmd).await?;
    Ok(())
}

/// The table's last verify, if one was recorded.
pub async fn load(
    ledger: &Ledger,
    table: &TableConfig,
) -> Result<Option<VerifyRecord>, RedisError> {
    let raw: BTreeMap<String, String> = ledger
        .control()
        .query_idempotent(::redis::cmd("HGETALL").arg(ledger.verified_key(&table.ledger_id())))
        .await?;
    if raw.is_empty() {
        return Ok(None);
    }
    let text = |name: &str| raw.get(name).cloned().unwrap_or_default();
    let number = |name: &str| text(name).parse::<u64>().unwrap_or(0);
    let date = |name: &str| NaiveDate::parse_from_str(&text(name), "%Y-%m-%d").ok();
    Ok(Some(VerifyRecord {
        from: date("from"),
        to: date("to"),
        partitions: number("partitions"),
        sampled: number("sampled"),
        mismatched: number("mismatched"),
        failed: number("failed"),
        passed: text("passed") == "true",
        verified_at: text("verified_at"),
        sample: text("sample"),
    }))
}
