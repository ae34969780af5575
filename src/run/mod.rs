//! A whole run: for every selected table list, plan, load the partitions that need it (oldest
//! first), record each in the ledger once fully acknowledged, update the watermark, report late
//! partitions, and summarize. Also the read-only commands: `plan`, `status`, `check`.
//!
//! - [`Engine`], [`RunOptions`], [`Backfill`] and the run loop: here.
//! - [`outcome`]: table status, run summary and the one mapping to the process exit code.
//! - [`counters`]: the counters summed for a partition, a table, a run and a ledger entry.
//! - [`calendar`]: business days, the start of a day, partition expiries.
//! - [`watermark`]: what the ledger forgets and the new watermark (pure).
//! - [`retry`]: the cancellable retry helper (attempts and a time budget).
//! - `table`: one table's run (lease, plan, load each partition with retries, record).
//! - `table_events`: the log events of a table's run, one function each.
//! - `restarts`: what a Redis restart costs a run: a table planned again, a table run again,
//!   a record on another server than the data withdrawn.
//! - `wait`: waiting for a late newest cold partition.
//! - [`progress`]: `load_progress` events (or a progress bar) during a long load.
//! - [`shard`]: `--shard I/N`, the dates of one shard.
//! - [`report`]: `plan`, `status` and `check --connect`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use opendal::Operator;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{Config, TableConfig};
use crate::error::{ConfigError, PartitionError, RedisError, SourceError};
use crate::ledger::{Ledger, LedgerEntry};
use crate::listing::TableListing;
use crate::plan::{plan_table, TablePlan};
use crate::redis::capability::{probe_hash_writes, HashWriteMethod};
use crate::redis::Connector;
use crate::source::build_operator;
use crate::throttle::{run_adaptive, RateLimit, RateLimiter, ADAPTIVE_CEILING};

use restarts::TableRun;

pub mod calendar;
pub mod counters;
pub mod outcome;
pub mod progress;
pub mod report;
mod restarts;
pub mod retry;
pub mod shard;
mod table;
mod table_events;
mod wait;
pub mod watermark;

pub use calendar::{partition_expiry, start_of_day_ms, today_in};
pub use counters::Counters;
pub use outcome::{exit_code, CommandOutcome, ExitCode, RunSummary, TableOutcome, TableStatus};
pub use shard::Shard;

/// The `target` of the run's log events: `coldsync::run`, the module they came from before the
/// run was split into submodules, so that log lines (and `RUST_LOG`/pipeline filters on the
/// target) stay as they were.
const LOG_TARGET: &str = "coldsync::run";

/// What a run loads.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Tables to run (all when empty).
    pub tables: Vec<String>,
    /// Business day taken as today (default: now in each table's time zone).
    pub as_of: Option<NaiveDate>,
    /// Plan and log, write nothing.
    pub dry_run: bool,
    /// Load only this date range.
    pub backfill: Option<Backfill>,
    /// Load only the dates of this shard (holding a shard lease instead of the exclusive one).
    pub shard: Option<Shard>,
}

/// A backfill range.
#[derive(Debug, Clone, Copy)]
pub struct Backfill {
    /// First date, inclusive.
    pub from: NaiveDate,
    /// Last date, inclusive.
    pub to: NaiveDate,
    /// Reload partitions already loaded.
    pub force: bool,
}

/// Ledger, object store and config, ready for commands.
pub struct Engine {
    config: Config,
    operator: Operator,
    ledger: Ledger,
    /// Opens every Redis connection of the engine (TLS set up once).
    connector: Arc<Connector>,
    /// `redis.max_keys_per_sec`, or the adaptive rate; shared by every table of a run.
    global_limit: Option<Arc<RateLimit>>,
    /// How hash tables are written, probed at the first hash write (or `check --connect`).
    hash_writes: tokio::sync::OnceCell<HashWriteMethod>,
}

/// Starting a command failed before any table was touched.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The object store could not be set up.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Redis is unreachable or unsuitable.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// Bad command-line arguments (unknown table, reversed range).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl StartError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::of(CommandOutcome::StartFailed(self))
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Engine {
    /// Builds the object-store operator, connects to Redis and checks its version.
    pub async fn connect(config: Config) -> Result<Engine, StartError> {
        let operator = build_operator(&config.source)?;
        let connector = Arc::new(Connector::new(&config.redis)?);
        let ledger = Ledger::open(connector.clone(), &config.ledger_prefix).await?;
        ledger.check_version().await?;
        let global_limit = match (config.redis.max_keys_per_sec, config.redis.adaptive_latency) {
            (Some(rate), _) => Some(RateLimit::new(rate)),
            (None, Some(_)) => Some(RateLimit::new(ADAPTIVE_CEILING)),
            (None, None) => None,
        };
        Ok(Engine {
            config,
            operator,
            ledger,
            connector,
            global_limit,
            hash_writes: tokio::sync::OnceCell::new(),
        })
    }

    /// How hash tables are written on this server (`RESTORE` or `HSET`), probed once (see
    /// [`crate::redis::capability`]).
    pub async fn hash_writes(&self) -> Result<&HashWriteMethod, RedisError> {
        let probe_key = format!("{}:restore-probe", self.config.ledger_prefix);
        self.hash_writes
            .get_or_try_init(|| async {
                probe_hash_writes(
                    self.ledger.control(),
                    self.config.redis.hash_write,
                    &probe_key,
                    self.connector.masked_addr(),
                )
                .await
            })
            .await
    }

    /// The validated config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The object store.
    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    /// Opens the engine's Redis connections.
    pub fn connector(&self) -> &Arc<Connector> {
        &self.connector
    }

    /// The rate limits of `table`: `redis.max_keys_per_sec` (or the adaptive rate) shared by
    /// every table, and the table's own `max_keys_per_sec`.
    pub fn table_limiter(&self, table: &TableConfig) -> RateLimiter {
        let limits = self
            .global_limit
            .iter()
            .cloned()
            .chain(table.max_keys_per_sec.map(RateLimit::new))
            .collect();
        RateLimiter::new(limits)
    }

    /// Lists a table and plans it against the ledger.
    pub async fn plan_table(
        &self,
        table: &TableConfig,
        as_of: Option<NaiveDate>,
    ) -> Result<(TableListing, BTreeMap<NaiveDate, LedgerEntry>, TablePlan), PartitionError> {
        let listing = crate::catalog::discover(&self.operator, table).await?;
        let entries = self.ledger.entries(&table.ledger_id()).await?;
        let fingerprints = entries
            .iter()
            .map(|(date, entry)| (*date, entry.fingerprint.clone()))
            .collect();
        let today = as_of.unwrap_or_else(|| today_in(table.timezone));
        let plan = plan_table(table, &listing, &fingerprints, today, now_ms());
        Ok((listing, entries, plan))
    }

    /// Runs (or backfills) the selected tables. Never fails as a whole once started: every
    /// problem is logged with its identity and reflected in the summary's exit code.
    pub async fn run(
        &self,
        options: &RunOptions,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, StartError> {
        let tables = self.config.select_tables(&options.tables)?;
        if let Some(backfill) = options.backfill {
            if backfill.from > backfill.to {
                return Err(ConfigError::Invalid {
                    option: "--from".into(),
                    message: format!("{} is after --to {}", backfill.from, backfill.to),
                }
                .into());
            }
        }
        // A shutdown ends the control client's retries (not its single attempts).
        self.ledger.control().stop_retrying_on(cancel);
        let run_id = uuid::Uuid::new_v4().to_string();
        let span = tracing::info_span!("run", run_id = %run_id);
        Ok(self
            .run_tables(&tables, options, run_id, cancel)
            .instrument(span)
            .await)
    }

    /// The run loop, in the run's span.
    async fn run_tables(
        &self,
        tables: &[TableConfig],
        options: &RunOptions,
        run_id: String,
        cancel: &CancellationToken,
    ) -> RunSummary {
        let started = Instant::now();
        tracing::info!(
            event = "run_started",
            run_id = %run_id,
            tables = tables.len(),
            dry_run = options.dry_run,
            backfill = options.backfill.is_some(),
            as_of = options.as_of.map(tracing::field::display),
            shard = options.shard.map(tracing::field::display),
            redis = %self.config.redis.masked_url(),
            source = %self.config.source.scheme,
            "run started"
        );
        if self.config.redis.tls_insecure {
            tracing::warn!(
                event = "tls_insecure",
                redis = %self.config.redis.masked_url(),
                "redis.tls_insecure = true: the server's certificate is not checked"
            );
        }
        let stop_probe = cancel.child_token();
        if let (Some(target), Some(limit)) =
            (self.config.redis.adaptive_latency, &self.global_limit)
        {
            if !options.dry_run {
                tokio::spawn(
                    run_adaptive(
                        self.connector.clone(),
                        target,
                        limit.clone(),
                        stop_probe.clone(),
                    )
                    .in_current_span(),
                );
            }
        }
        let _stop_probe = stop_probe.drop_guard();
        let mut summary = RunSummary {
            run_id: run_id.clone(),
            dry_run: options.dry_run,
            shard: options.shard.map(|shard| shard.to_string()),
            ..RunSummary::default()
        };
        let mut finished = Vec::with_capacity(tables.len());
        for table in tables {
            if cancel.is_cancelled() {
                break;
            }
            let span = tracing::info_span!("table", table = %table.name);
            let mut run = TableRun::default();
            let outcome = self
                .run_table(table, options, &run_id, cancel, &mut run)
                .instrument(span)
                .await;
            finished.push((table.clone(), run, outcome));
        }
        // A restart detected after a table finished may have taken its keys and ledger with it.
        self.rerun_after_restarts(&mut finished, options, &run_id, cancel)
            .await;
        for (_, _, outcome) in finished {
            summary.add_table(outcome);
        }
        summary.set_exit_code(cancel.is_cancelled());
        summary.duration_ms = started.elapsed().as_millis() as u64;
        summary.log_finished();
        summary
    }
}
