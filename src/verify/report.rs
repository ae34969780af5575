//! What a verify found: the counts of each [`Verdict`], the first examples of each mismatch, per
//! partition, per table (layout) and in all, and their log events (`verify_partition`,
//! `verify_mismatch`, `verify_finished`), all with flat fields.

use chrono::NaiveDate;
use serde::Serialize;

use super::compare::Verdict;

/// Examples kept of each verdict but `matched`.
pub const EXAMPLES_PER_KIND: usize = 3;

/// Keys by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Keys read back.
    pub sampled: u64,
    /// Value and expiry as the load writes them.
    pub matched: u64,
    /// No key where the load writes one.
    pub missing: u64,
    /// Another value (or type).
    pub different: u64,
    /// A newer partition owns the key (latest wins): not a mismatch.
    pub superseded: u64,
    /// The value the load writes with another expiry.
    pub wrong_expiry: u64,
}

impl Counts {
    /// Counts one key.
    pub fn add(&mut self, verdict: Verdict) {
        self.sampled += 1;
        *match verdict {
            Verdict::Matched => &mut self.matched,
            Verdict::Missing => &mut self.missing,
            Verdict::Different => &mut self.different,
            Verdict::Superseded => &mut self.superseded,
            Verdict::WrongExpiry => &mut self.wrong_expiry,
        } += 1;
    }

    /// Adds `other` in.
    pub fn merge(&mut self, other: &Counts) {
        self.sampled += other.sampled;
        self.matched += other.matched;
        self.missing += other.missing;
        self.different += other.different;
        self.superseded += other.superseded;
        self.wrong_expiry += other.wrong_expiry;
    }

    /// Keys missing, different or with a wrong expiry.
    pub fn mismatched(&self) -> u64 {
        self.missing + self.different + self.wrong_expiry
    }
}

/// One key that did not match, shortened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    /// `missing`, `different`, `superseded` or `wrong_expiry`.
    pub kind: &'static str,
    /// The key.
    pub key: String,
    /// What the load writes (shortened to ~80 characters).
    pub expected: String,
    /// What Redis holds (shortened).
    pub found: String,
    /// The partition's expiry, ms since the epoch.
    pub expected_expiry_ms: i64,
    /// The key's expiry (`None`: missing or without expiry).
    pub found_expiry_ms: Option<i64>,
}

/// The verify of one partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    /// Table.
    pub table: String,
    /// Layout (`default` without `layout`).
    pub layout: String,
    /// Partition date.
    pub date: NaiveDate,
    /// The seed the sample was drawn with.
    pub seed: u64,
    /// Rows read from the store.
    pub rows: u64,
    /// Keys by verdict.
    #[serde(flatten)]
    pub counts: Counts,
    /// The first [`EXAMPLES_PER_KIND`] keys of each verdict but `matched`.
    pub examples: Vec<Example>,
    /// Why the partition could not be verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PartitionReport {
    /// Keeps `example` if its kind has fewer than [`EXAMPLES_PER_KIND`] yet.
    pub fn keep_example(&mut self, example: Example) {
        let kind = example.kind;
        if self.examples.iter().filter(|e| e.kind == kind).count() < EXAMPLES_PER_KIND {
            self.examples.push(example);
        }
    }

    /// Logs `verify_partition` (WARN when something is off), and `verify_mismatch` for each
    /// example. `after_load`: the `verify_sample` of a load.
    pub fn log(&self, after_load: bool) {
        let c = &self.counts;
        let fields = (self.error.as_deref(), c.mismatched());
        macro_rules! event {
            ($level:ident) => {
                tracing::$level!(
                    event = "verify_partition",
                    table = %self.table,
                    layout = %self.layout,
                    date = %self.date,
                    after_load,
                    seed = self.seed,
                    rows = self.rows,
                    sampled = c.sampled,
                    matched = c.matched,
                    missing = c.missing,
                    different = c.different,
                    superseded = c.superseded,
                    wrong_expiry = c.wrong_expiry,
                    error = fields.0,
                    "partition verified"
                )
            };
        }
        if fields.0.is_some() || fields.1 > 0 {
            event!(warn);
        } else {
            event!(info);
        }
        for example in self.examples.iter().filter(|e| e.kind != "superseded") {
            tracing::warn!(
                event = "verify_mismatch",
                table = %self.table,
                layout = %self.layout,
                date = %self.date,
                kind = example.kind,
                key = %example.key,
                expected = %example.expected,
                found = %example.found,
                expected_expiry_ms = example.expected_expiry_ms,
                found_expiry_ms = example.found_expiry_ms,
                "key does not match what the load writes"
            );
        }
    }
}

/// The verify of one table (layout).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableReport {
    /// Table.
    pub table: String,
    /// Layout.
    pub layout: String,
    /// Partitions verified (those that failed included).
    pub partitions: Vec<PartitionReport>,
    /// Keys by verdict, over every partition.
    #[serde(flatten)]
    pub counts: Counts,
    /// Why the table could not be verified (ledger or listing unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TableReport {
    /// Partitions (or the table) that could not be verified.
    pub fn failed(&self) -> u64 {
        u64::from(self.error.is_some())
            + self.partitions.iter().filter(|p| p.error.is_some()).count() as u64
    }

    /// Nothing missing, different or with a wrong expiry, and nothing failed.
    pub fn passed(&self) -> bool {
        self.counts.mismatched() == 0 && self.failed() == 0
    }
}

/// What `verify` found (`verify --json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifySummary {
    /// Every table (layout) verified.
    pub tables: Vec<TableReport>,
    /// Partitions verified.
    pub partitions: u64,
    /// Partitions (or tables) that could not be verified.
    pub partitions_failed: u64,
    /// Keys by verdict, over everything.
    #[serde(flatten)]
    pub counts: Counts,
    /// Wall time.
    pub duration_ms: u64,
}

impl VerifySummary {
    /// Adds a table's report in.
    pub fn add(&mut self, table: TableReport) {
        self.partitions += table.partitions.len() as u64;
        self.partitions_failed += table.failed();
        self.counts.merge(&table.counts);
        self.tables.push(table);
    }

    /// Logs `verify_finished`.
    pub fn log_finished(&self) {
        let c = &self.counts;
        tracing::info!(
            event = "verify_finished",
            tables = self.tables.len(),
            partitions = self.partitions,
            partitions_failed = self.partitions_failed,
            sampled = c.sampled,
            matched = c.matched,
            missing = c.missing,
            different = c.different,
            superseded = c.superseded,
            wrong_expiry = c.wrong_expiry,
            duration_ms = self.duration_ms,
            "verify finished"
        );
    }

    /// The text `verify` prints: one line per partition, then its examples.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for table in &self.tables {
            if let Some(error) = &table.error {
                out.push_str(&format!(
                    "{} ({}): FAILED {error}\n",
                    table.table, table.layout
                ));
            }
            for p in &table.partitions {
                let c = &p.counts;
                out.push_str(&format!(
                    "{} ({}) {}: {} sampled, {} matched, {} missing, {} different, {} superseded, {} wrong_expiry{}\n",
                    p.table, p.layout, p.date, c.sampled, c.matched, c.missing, c.different,
                    c.superseded, c.wrong_expiry,
                    p.error.as_ref().map(|e| format!(", FAILED {e}")).unwrap_or_default()
                ));
                for e in &p.examples {
                    out.push_str(&format!(
                        "  {} {}: expected {} (expires {}), found {} (expires {})\n",
                        e.kind,
                        e.key,
                        e.expected,
                        e.expected_expiry_ms,
                        e.found,
                        e.found_expiry_ms
                            .map_or("-".to_string(), |ms| ms.to_string())
                    ));
                }
            }
        }
        let c = &self.counts;
        out.push_str(&format!(
            "total: {} partitions ({} failed), {} sampled, {} matched, {} missing, {} different, {} superseded, {} wrong_expiry\n",
            self.partitions, self.partitions_failed, c.sampled, c.matched, c.missing,
            c.different, c.superseded, c.wrong_expiry
        ));
        out
    }
}
