//! `coldsync verify`, and `verify_sample` after a load: re-read partitions from the store,
//! encode their rows exactly as a load does (the same [`prepare`] and row encoder), sample keys
//! (or take all), read them back from Redis and compare value and expiry.
//!
//! - here: [`check_partition`] (one partition), [`Engine::verify`] (the command: every loaded
//!   partition of the ledger in range) and [`Engine::verify_loaded`] (`verify_sample`).
//! - [`compare`]: the pure comparison of expected and found, into a [`compare::Verdict`].
//! - `sample`: the deterministic reservoir sample of a partition's keys.
//! - `read`: pipelined `GET`/`HGETALL` + `PEXPIRETIME` (only reads, throttled like a load).
//! - [`report`]: counts, examples, events, `--json`.
//! - [`record`]: the last verify result of each table (layout), kept beside its ledger.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::NaiveDate;
use opendal::Operator;

use crate::config::TableConfig;
use crate::encode::{EncodedRows, ValueFormat};
use crate::error::PartitionError;
use crate::listing::DiscoveredPartition;
use crate::load::{prepare, RowStream};
use crate::redis::Connector;
use crate::run::{partition_expiry, Engine};
use crate::throttle::RateLimiter;

use compare::{classify, expected_text, found_text, Expected, Found, Verdict};
use report::{Counts, Example, PartitionReport, TableReport, VerifySummary};
use sample::Reservoir;

pub mod compare;
mod read;
pub mod record;
pub mod report;
mod sample;

/// What a verify reads.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// First date, inclusive (default: the oldest loaded).
    pub from: Option<NaiveDate>,
    /// Last date, inclusive (default: the newest loaded).
    pub to: Option<NaiveDate>,
    /// Keys sampled per partition; `None`: every key (`--full`).
    pub sample: Option<u64>,
    /// The seed of every partition's sample (default: derived from the table and date).
    pub seed: Option<u64>,
}

/// Keys sampled per partition when neither `--sample` nor `--full` is given.
pub const DEFAULT_SAMPLE: u64 = 1000;

/// What verifying one partition needs.
pub struct PartitionCheck<'a> {
    /// The object store.
    pub operator: &'a Operator,
    /// Opens the connection the keys are read on.
    pub connector: &'a Connector,
    /// The table (layout).
    pub table: &'a TableConfig,
    /// The partition's files.
    pub partition: &'a DiscoveredPartition,
    /// `source.read_concurrency`.
    pub read_concurrency: usize,
    /// Keys read per round trip (`redis.batch_size`).
    pub batch_size: usize,
    /// The table's rate limits.
    pub limiter: &'a RateLimiter,
}

/// The default seed of a partition's sample: FNV-1a of `<ledger id>/<date>`, the same on every
/// run (a verify run twice reads the same keys).
pub fn partition_seed(table: &TableConfig, date: NaiveDate) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("{}/{date}", table.ledger_id()).bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn expected_of(rows: &EncodedRows, row: usize, hash: bool) -> Expected {
    if hash {
        Expected::Hash(
            rows.fields(row)
                .map(|(name, value)| (name.to_vec(), value.to_vec()))
                .collect(),
        )
    } else {
        Expected::Value(rows.value(row).to_vec())
    }
}

/// Verifies `sample` keys (all with `usize::MAX`) of one partition, drawn with `seed`.
pub async fn check_partition(
    check: &PartitionCheck<'_>,
    sample: usize,
    seed: u64,
) -> Result<PartitionReport, PartitionError> {
    let table = check.table;
    let prepared = prepare(
        check.operator,
        table,
        check.partition,
        check.read_concurrency,
        false,
    )
    .await?;
    let hash = table.format == ValueFormat::Hash;
    let mut reservoir = Reservoir::new(sample, seed);
    let mut stream = RowStream::new(prepared);
    while let Some(rows) = stream.next().await? {
        for row in 0..rows.len() {
            reservoir.offer(rows.key(row), || expected_of(rows, row, hash));
        }
    }
    let rows = stream.rows_read();
    let sampled = reservoir.into_sample();
    let expiry_ms = partition_expiry(table, check.partition.date).millis;
    let mut report = PartitionReport {
        table: table.name.clone(),
        layout: table.layout_name().to_string(),
        date: check.partition.date,
        seed,
        rows,
        counts: Counts::default(),
        examples: Vec::new(),
        error: None,
    };
    if sampled.is_empty() {
        return Ok(report);
    }
    let mut connection = check.connector.open().await?;
    for chunk in sampled.chunks(check.batch_size.max(1)) {
        check.limiter.acquire(chunk.len()).await;
        let keys: Vec<&[u8]> = chunk.iter().map(|(key, _)| key.as_slice()).collect();
        let found = read::read_keys(&mut connection, &keys, hash).await?;
        for ((key, expected), found) in chunk.iter().zip(found) {
            let verdict = classify(expected, expiry_ms, &found);
            report.counts.add(verdict);
            if verdict != Verdict::Matched {
                report.keep_example(Example {
                    kind: verdict.as_str(),
                    key: compare::shorten(&String::from_utf8_lossy(key)),
                    expected: expected_text(expected),
                    found: found_text(&found),
                    expected_expiry_ms: expiry_ms,
                    found_expiry_ms: match found {
                        Found::Present { expiry_ms, .. } => expiry_ms,
                        Found::Missing => None,
                    },
                });
            }
        }
    }
    Ok(report)
}

impl Engine {
    fn partition_check<'a>(
        &'a self,
        table: &'a TableConfig,
        partition: &'a DiscoveredPartition,
        limiter: &'a RateLimiter,
    ) -> PartitionCheck<'a> {
        PartitionCheck {
            operator: self.operator(),
            connector: self.connector(),
            table,
            partition,
            read_concurrency: self.config().source.read_concurrency,
            batch_size: self.config().redis.batch_size,
            limiter,
        }
    }

    /// `verify_sample`: verifies `table.verify_sample` random keys of a partition just loaded,
    /// before it is recorded. A mismatch is [`PartitionError::VerifyFailed`].
    pub async fn verify_loaded(
        &self,
        table: &TableConfig,
        partition: &DiscoveredPartition,
        limiter: &RateLimiter,
    ) -> Result<(), PartitionError> {
        let check = self.partition_check(table, partition, limiter);
        let sample = usize::try_from(table.verify_sample).unwrap_or(usize::MAX);
        let report = check_partition(&check, sample, rand::random()).await?;
        report.log(true);
        let mismatched = report.counts.mismatched();
        if mismatched == 0 {
            return Ok(());
        }
        let example = report
            .examples
            .iter()
            .find(|e| e.kind != Verdict::Superseded.as_str())
            .map(|e| {
                format!(
                    "{} {}: expected {}, found {}",
                    e.kind, e.key, e.expected, e.found
                )
            })
            .unwrap_or_default();
        Err(PartitionError::VerifyFailed {
            sampled: report.counts.sampled,
            mismatched,
            example,
        })
    }

    /// `coldsync verify`: every partition of each table's ledger in the range, sampled or in full;
    /// the result of each table is recorded beside its ledger (for `status`).
    pub async fn verify(&self, tables: &[TableConfig], options: &VerifyOptions) -> VerifySummary {
        let started = Instant::now();
        let mut summary = VerifySummary::default();
        for table in tables {
            let report = self.verify_table(table, options).await;
            if let Err(err) = record::save(self.ledger(), table, options, &report).await {
                tracing::warn!(
                    event = "verify_not_recorded",
                    table = %table.name,
                    layout = table.layout_name(),
                    error = %err,
                    "the verify result could not be recorded for status"
                );
            }
            summary.add(report);
        }
        summary.duration_ms = started.elapsed().as_millis() as u64;
        summary.log_finished();
        summary
    }

    async fn verify_table(&self, table: &TableConfig, options: &VerifyOptions) -> TableReport {
        let mut report = TableReport {
            table: table.name.clone(),
            layout: table.layout_name().to_string(),
            ..TableReport::default()
        };
        let entries = match self.ledger().entries(&table.ledger_id()).await {
            Ok(entries) => entries,
            Err(err) => {
                report.error = Some(format!("cannot read the ledger: {err}"));
                return report;
            }
        };
        let entries: BTreeMap<_, _> = entries
            .into_iter()
            .filter(|(date, _)| options.from.is_none_or(|from| *date >= from))
            .filter(|(date, _)| options.to.is_none_or(|to| *date <= to))
            .collect();
        if entries.is_empty() {
            return report;
        }
        let listing = match crate::catalog::discover(self.operator(), table).await {
            Ok(listing) => listing,
            Err(err) => {
                report.error = Some(format!("cannot list the table: {err}"));
                return report;
            }
        };
        let limiter = self.table_limiter(table);
        let sample = options
            .sample
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        for (date, entry) in entries {
            let seed = options.seed.unwrap_or_else(|| partition_seed(table, date));
            let failed = |error: String| PartitionReport {
                table: table.name.clone(),
                layout: table.layout_name().to_string(),
                date,
                seed,
                rows: 0,
                counts: Counts::default(),
                examples: Vec::new(),
                error: Some(error),
            };
            let partition = match listing.partitions.get(&date) {
                None => failed("the partition is not in the store any more".to_string()),
                Some(p) if p.fingerprint() != entry.fingerprint => failed(
                    "its files changed since it was loaded: run (or backfill) it first".to_string(),
                ),
                Some(p) => {
                    let check = self.partition_check(table, p, &limiter);
                    match check_partition(&check, sample, seed).await {
                        Ok(checked) => checked,
                        Err(err) => failed(err.to_string()),
                    }
                }
            };
            partition.log(false);
            report.counts.merge(&partition.counts);
            report.partitions.push(partition);
        }
        report
    }
}
