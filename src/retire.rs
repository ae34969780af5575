//! `coldsync retire --table T --layout OLD`: deletes the keys an old layout wrote, derived from its
//! ledger (each recorded partition is read again and its keys computed as its load computed them),
//! so it never touches a key the layout did not write. Keys go in `UNLINK` batches, throttled by
//! the table's rate limits, under the layout's lease (no run loads it meanwhile).
//!
//! Resumable: a partition's ledger entry is removed once its keys are unlinked, so a retire that
//! was interrupted goes on with the partitions left; the ledger, watermark and verify result
//! are removed at the end.
//!
//! Refused (exit 2): the only layout of a table (unless `--force`), and a layout whose key
//! template another `[[tables]]` entry also uses (their keys are the same keys). Without `--yes`
//! it only says what it would delete.

use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, TableConfig};
use crate::error::{PartitionError, RedisError};
use crate::lease::{Acquired, Lease, LeaseError, LeaseHolder, LeaseKind};
use crate::load::{prepare, RowStream};
use crate::redis::{CommandBatch, Connection, Reply};
use crate::run::{CommandOutcome, Engine, ExitCode};
use crate::throttle::RateLimiter;

/// How to retire.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetireOptions {
    /// Delete (without it: only report what would be deleted).
    pub yes: bool,
    /// Retire the only layout of a table too.
    pub force: bool,
}

/// Why a retire stopped.
#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    /// The layout may not be retired (exit 2).
    #[error("retire {table} ({layout}) refused: {reason}")]
    Refused {
        /// The table.
        table: String,
        /// The layout.
        layout: String,
        /// Why.
        reason: String,
    },
    /// Another run holds the layout's lease.
    #[error("the lease of {table} is held by run {run_id} on {host}: retire when it is over")]
    LeaseHeld {
        /// The ledger id.
        table: String,
        /// The holder's run.
        run_id: String,
        /// The holder's host.
        host: String,
    },
    /// Taking the lease failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// Reading a partition, or unlinking its keys, failed: what was retired stays retired.
    #[error("partition {date}: {source}")]
    Partition {
        /// The partition.
        date: chrono::NaiveDate,
        /// What failed.
        #[source]
        source: PartitionError,
    },
    /// Listing the table failed.
    #[error("cannot list the table: {0}")]
    Listing(crate::error::SourceError),
    /// The ledger could not be read or changed.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// Stopped by a shutdown (or a lost lease) between batches: run it again to go on.
    #[error("stopped before the end: run retire again to go on")]
    Cancelled,
}

impl RetireError {
    /// True when running the retire again later may get further.
    pub fn is_transient(&self) -> bool {
        match self {
            RetireError::Refused { .. } => false,
            RetireError::LeaseHeld { .. } | RetireError::Cancelled => true,
            RetireError::Lease(err) => err.is_transient(),
            RetireError::Partition { source, .. } => source.is_transient(),
            RetireError::Listing(source) => source.is_transient(),
            RetireError::Redis(err) => err.is_transient(),
        }
    }
}

impl RetireError {
    /// Logs `retire_failed`.
    pub fn log(&self, table: &TableConfig) {
        tracing::error!(
            event = "retire_failed",
            table = %table.name,
            layout = table.layout_name(),
            error = %self,
            retry = self.is_transient(),
            "retire stopped"
        );
    }

    /// Refused: 2 (a configuration matter); anything else: 3 (run it again to go on).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RetireError::Refused { .. } => ExitCode::of(CommandOutcome::InvalidConfig),
            _ => ExitCode::of(CommandOutcome::Report { failed: true }),
        }
    }
}

/// What a retire did (`retire --json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetireSummary {
    /// The table.
    pub table: String,
    /// The layout retired.
    pub layout: String,
    /// Only reported (no `--yes`).
    pub dry_run: bool,
    /// Partitions whose keys were unlinked (or, in a dry run, would be).
    pub partitions: u64,
    /// Keys unlinked (in a dry run: the keys the ledger recorded).
    pub keys_unlinked: u64,
    /// Keys computed that were not there (expired, or a duplicate within the layout).
    pub keys_absent: u64,
    /// Recorded partitions whose files are gone: their keys are left to expire.
    pub partitions_gone: u64,
    /// Wall time.
    pub duration_ms: u64,
}

impl RetireSummary {
    /// Logs `retire_finished`.
    pub fn log_finished(&self) {
        tracing::info!(
            event = "retire_finished",
            table = %self.table,
            layout = %self.layout,
            dry_run = self.dry_run,
            partitions = self.partitions,
            keys_unlinked = self.keys_unlinked,
            keys_absent = self.keys_absent,
            partitions_gone = self.partitions_gone,
            duration_ms = self.duration_ms,
            "retire finished"
        );
    }

    /// The line `retire` prints.
    pub fn text(&self) -> String {
        if self.dry_run {
            format!(
                "would retire {} ({}): {} partitions, about {} keys; pass --yes to delete them",
                self.table, self.layout, self.partitions, self.keys_unlinked
            )
        } else {
            format!(
                "retired {} ({}): {} partitions, {} keys unlinked, its ledger removed",
                self.table, self.layout, self.partitions, self.keys_unlinked
            )
        }
    }
}

/// Why `table` may not be retired, if it may not: the only layout of its name (unless `force`),
/// or a key template another entry shares.
pub fn refusal(config: &Config, table: &TableConfig, force: bool) -> Option<String> {
    let others = || {
        config
            .tables
            .iter()
            .filter(move |t| t.ledger_id() != table.ledger_id())
    };
    if let Some(shared) = others().find(|t| t.key == table.key) {
        return Some(format!(
            "{} ({}) writes the same keys ({}): they would be deleted too",
            shared.name,
            shared.layout_name(),
            table.key
        ));
    }
    if !force && !others().any(|t| t.name == table.name) {
        return Some(
            "it is the table's only layout: readers would find nothing (pass --force to retire it anyway)"
                .to_string(),
        );
    }
    None
}

/// Unlinks `keys` in one command; returns how many existed.
async fn unlink(connection: &mut Connection, keys: &[Vec<u8>]) -> Result<u64, RedisError> {
    let mut batch = CommandBatch::with_capacity(keys.iter().map(|k| k.len() + 16).sum(), 1);
    let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
    args.push(b"UNLINK");
    args.extend(keys.iter().map(Vec::as_slice));
    batch.push_command(&args);
    match connection.call(&batch).await?.as_slice() {
        [Reply::Integer(n)] => Ok(u64::try_from(*n).unwrap_or(0)),
        other => Err(RedisError::Protocol(format!(
            "unexpected reply to UNLINK: {other:?}"
        ))),
    }
}

/// A partition's keys unlinked so far.
#[derive(Default)]
struct Unlinked {
    unlinked: u64,
    absent: u64,
}

impl Engine {
    /// Retires `table` (one layout): see the module doc.
    pub async fn retire(
        &self,
        table: &TableConfig,
        options: RetireOptions,
        cancel: &CancellationToken,
    ) -> Result<RetireSummary, RetireError> {
        let started = Instant::now();
        if let Some(reason) = refusal(self.config(), table, options.force) {
            return Err(RetireError::Refused {
                table: table.name.clone(),
                layout: table.layout_name().to_string(),
                reason,
            });
        }
        let id = table.ledger_id();
        let mut summary = RetireSummary {
            table: table.name.clone(),
            layout: table.layout_name().to_string(),
            dry_run: !options.yes,
            ..RetireSummary::default()
        };
        let entries = self.ledger().entries(&id).await?;
        if !options.yes {
            summary.partitions = entries.len() as u64;
            summary.keys_unlinked = entries.values().map(|e| e.keys).sum();
            return Ok(summary);
        }
        let run_id = uuid::Uuid::new_v4().to_string();
        let holder = LeaseHolder::new(&run_id, &self.config().lease.host);
        let (ttl, wait) = (self.config().lease.ttl, table.lease_wait);
        let kind = LeaseKind::Exclusive;
        let lease =
            match Lease::acquire(self.ledger(), &id, kind, &holder, ttl, wait, cancel).await? {
                Acquired::Held(lease, _) => lease,
                Acquired::Busy(other, _) => {
                    return Err(RetireError::LeaseHeld {
                        table: id,
                        run_id: other.run_id,
                        host: other.host,
                    })
                }
                Acquired::Cancelled => return Err(RetireError::Cancelled),
            };
        let work = cancel.child_token();
        lease.keep_renewed(work.clone());
        let result = self
            .retire_partitions(
                table,
                entries.keys().copied().collect(),
                &work,
                &mut summary,
            )
            .await;
        let result = match result {
            Ok(()) if !lease.is_lost() => self
                .ledger()
                .remove(&id)
                .await
                .map(|_| ())
                .map_err(Into::into),
            Ok(()) => Err(RetireError::Cancelled),
            Err(err) => Err(err),
        };
        if let Err(err) = lease.release().await {
            tracing::warn!(event = "lease_release_failed", table = %id, error = %err, "lease not released: it expires");
        }
        summary.duration_ms = started.elapsed().as_millis() as u64;
        result.map(|()| summary)
    }

    async fn retire_partitions(
        &self,
        table: &TableConfig,
        dates: Vec<chrono::NaiveDate>,
        work: &CancellationToken,
        summary: &mut RetireSummary,
    ) -> Result<(), RetireError> {
        let id = table.ledger_id();
        let listing = crate::catalog::discover(self.operator(), table)
            .await
            .map_err(RetireError::Listing)?;
        let limiter = self.table_limiter(table);
        let total = dates.len();
        for (done, date) in dates.into_iter().enumerate() {
            if work.is_cancelled() {
                return Err(RetireError::Cancelled);
            }
            let Some(partition) = listing.partitions.get(&date) else {
                tracing::warn!(
                    event = "retire_partition_gone",
                    table = %table.name,
                    layout = table.layout_name(),
                    date = %date,
                    "the partition's files are gone: its keys cannot be derived and expire with the window"
                );
                summary.partitions_gone += 1;
                self.ledger().forget(&id, &[date]).await?;
                continue;
            };
            let unlinked = self
                .retire_partition(table, partition, &limiter, work)
                .await
                .map_err(|source| match source {
                    PartitionError::Cancelled => RetireError::Cancelled,
                    source => RetireError::Partition { date, source },
                })?;
            self.ledger().forget(&id, &[date]).await?;
            summary.partitions += 1;
            summary.keys_unlinked += unlinked.unlinked;
            summary.keys_absent += unlinked.absent;
            tracing::info!(
                event = "retire_progress",
                table = %table.name,
                layout = table.layout_name(),
                date = %date,
                keys_unlinked = unlinked.unlinked,
                keys_absent = unlinked.absent,
                partitions_done = done + 1,
                partitions_left = total - done - 1,
                "a partition's keys unlinked"
            );
        }
        Ok(())
    }

    async fn retire_partition(
        &self,
        table: &TableConfig,
        partition: &crate::listing::DiscoveredPartition,
        limiter: &RateLimiter,
        work: &CancellationToken,
    ) -> Result<Unlinked, PartitionError> {
        let concurrency = self.config().source.read_concurrency;
        let prepared = prepare(self.operator(), table, partition, concurrency, true).await?;
        let batch_size = self.config().redis.batch_size.max(1);
        let mut connection = self.connector().open().await?;
        let mut stream = RowStream::new(prepared);
        let mut pending: Vec<Vec<u8>> = Vec::with_capacity(batch_size);
        let mut done = Unlinked::default();
        loop {
            let rows = stream.next().await?;
            let end = rows.is_none();
            if let Some(rows) = rows {
                pending.extend((0..rows.len()).map(|row| rows.key(row).to_vec()));
            }
            while pending.len() >= batch_size || (end && !pending.is_empty()) {
                if work.is_cancelled() {
                    return Err(PartitionError::Cancelled);
                }
                let take = pending.len().min(batch_size);
                let keys: Vec<Vec<u8>> = pending.drain(..take).collect();
                limiter.acquire(keys.len()).await;
                let existed = unlink(&mut connection, &keys).await?;
                done.unlinked += existed;
                done.absent += keys.len() as u64 - existed;
            }
            if end {
                return Ok(done);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(tables: &str) -> Config {
        let text = format!(
            "[source]\nscheme = \"fs\"\nroot = \"/w\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n\
             [defaults]\nretention_days = 30\n{tables}"
        );
        Config::parse(&text, &HashMap::new()).unwrap()
    }

    const TWO_LAYOUTS: &str = "[[tables]]\nname = \"o\"\npath = \"o\"\nkey = \"o:{id}\"\n\
        [[tables]]\nname = \"o\"\npath = \"o\"\nkey = \"o2:{id}\"\nlayout = \"v2\"\nvalue_format = \"hash\"\n";

    #[test]
    fn a_layout_beside_another_may_be_retired() {
        let config = config(TWO_LAYOUTS);
        assert_eq!(refusal(&config, &config.tables[0], false), None);
        assert_eq!(refusal(&config, &config.tables[1], false), None);
    }

    #[test]
    fn the_only_layout_needs_force() {
        let config = config("[[tables]]\nname = \"o\"\npath = \"o\"\nkey = \"o:{id}\"\n");
        let reason = refusal(&config, &config.tables[0], false).unwrap();
        assert!(
            reason.contains("only layout") && reason.contains("--force"),
            "{reason}"
        );
        assert_eq!(refusal(&config, &config.tables[0], true), None);
    }

    #[test]
    fn a_key_template_another_table_uses_is_refused_even_with_force() {
        let config = config(&format!(
            "{TWO_LAYOUTS}[[tables]]\nname = \"p\"\npath = \"p\"\nkey = \"o:{{id}}\"\n"
        ));
        let reason = refusal(&config, &config.tables[0], true).unwrap();
        assert!(
            reason.contains("p (default) writes the same keys (o:{id})"),
            "{reason}"
        );
    }
}
