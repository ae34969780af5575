//! Leases: one run at a time on a table, across processes and pods, kept in Redis beside the
//! table's ledger (same hash tag, so every script below touches one cluster slot).
//!
//! - `<prefix>:{<table>}:lease`: the **exclusive** lease of a whole-table run (the nightly run,
//!   an unsharded backfill, the daemon). A string whose value names its holder
//!   ([`LeaseHolder`] as JSON: a random token, run id, host, since when), set with `NX PX ttl`.
//! - `<prefix>:{<table>}:lease:shards`: the **shard** leases of a sharded run, a sorted set with
//!   one member per shard holder (the same JSON, with its `shard`), scored by its expiry in Redis
//!   server time. Shards of one backfill hold it together; the same shard twice does not.
//!
//! The exclusive lease is refused while any shard lease is live, and shard leases while the
//! exclusive one is held. Every operation is one Lua script reading the server's clock (`TIME`),
//! never the local one, sent through the run's [`ControlClient`] (bounded, reconnecting, and
//! retried within the reconnect budget: every script here is idempotent for its own holder). A
//! lease is renewed every third of its ttl while its table runs; a renewal that finds another
//! holder, or that fails until the lease may have expired, marks it lost and cancels the table's
//! work ([`Lease::keep_renewed`]). Only the holder releases it (compare and delete), and a
//! partition is recorded in the ledger only by a holder that still holds it: the ledger's one
//! record script checks the lease (`LEASE_HELD`, in `scripts`) and writes in the same step
//! ([`Lease::record`]). A holder killed with -9 holds nothing once its ttl runs out.
//!
//! A restarted Redis (see [`crate::redis::control`]) may have lost the lease with everything
//! else. "Not held" from another server than the one the lease was last held on is therefore no
//! loss: the lease is taken again there, unless another run took it first
//! ([`Lease::ensure_on`], also done by the renewal), and a record refused so is reloaded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::RedisError;
use crate::ledger::{LeaseCheck, Ledger, LedgerEntry, RecordOutcome, Recorded, Watermarks};
use crate::redis::control::{ControlClient, ServerRunId};
use crate::run::shard::Shard;

mod scripts;

use scripts::scripts;
pub(crate) use scripts::LEASE_HELD;

/// Where log events of leases come from: the run's target, so run filters keep them.
const LOG_TARGET: &str = "coldsync::run";

/// How often a run waiting for a lease asks again.
const ACQUIRE_POLL: Duration = Duration::from_millis(500);

/// What [`Lease::set_watermark`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatermarkSet {
    /// Set (or cleared).
    Set,
    /// The lease is lost (logged): nothing written.
    LeaseLost,
    /// Not held on the server that answered, another one than the lease was held on (Redis
    /// restarted): nothing written, and the lease is not lost (the table is run again).
    ServerChanged,
    /// The ledger changed since it was read (another shard recorded): read it and compute again.
    LedgerChanged,
}

/// Who holds a lease: the value of the exclusive lease, or a member of the shard set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHolder {
    /// Random, so that only this holder matches its own lease.
    pub token: String,
    /// The holder's run id.
    pub run_id: String,
    /// The holder's host: its pod name (`POD_NAME`), else `HOSTNAME`.
    pub host: String,
    /// When it took the lease (RFC 3339, UTC).
    pub since: String,
    /// The shard it holds (`I/N`), for a shard lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
}

impl LeaseHolder {
    /// A new holder for `run_id` on `host`, now, with a fresh token (its shard is set by
    /// [`Lease::acquire`] from the lease it takes).
    pub fn new(run_id: &str, host: &str) -> LeaseHolder {
        LeaseHolder {
            token: uuid::Uuid::new_v4().to_string(),
            run_id: run_id.to_string(),
            host: host.to_string(),
            since: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            shard: None,
        }
    }

    /// A holder read back from Redis; a value coldsync did not write is shown as it is.
    fn parse(text: &str) -> LeaseHolder {
        serde_json::from_str(text).unwrap_or_else(|_| LeaseHolder {
            token: String::new(),
            run_id: "unknown".to_string(),
            host: format!("unknown (lease value {text:?})"),
            since: "unknown".to_string(),
            shard: None,
        })
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).expect("holder serializes")
    }
}

/// Which lease a run takes on a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    /// A whole-table run: alone on the table.
    Exclusive,
    /// One shard of a sharded run: beside the other shards, never beside a whole-table run.
    Shard(Shard),
}

/// Taking a lease failed (Redis failed; another holder is not an error, see [`Acquired`]).
#[derive(Debug, thiserror::Error)]
#[error("lease on table {table}: {source}")]
pub struct LeaseError {
    /// The table.
    pub table: String,
    /// What Redis said.
    #[source]
    pub source: RedisError,
}

impl LeaseError {
    /// True when trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.source.is_transient()
    }
}

/// What waiting for a lease came to.
pub enum Acquired {
    /// Taken, after waiting this long.
    Held(Lease, Duration),
    /// Still held by another holder when the wait ended.
    Busy(LeaseHolder, Duration),
    /// The shutdown token fired while waiting.
    Cancelled,
}

/// What [`Lease::record`] came to.
#[derive(Debug)]
pub enum LeasedRecord {
    /// Recorded (see [`Recorded`]: the server that holds the entry).
    Recorded(Recorded),
    /// The lease is lost (logged, the table's work cancelled): nothing recorded.
    LeaseLost,
    /// Not held on `server`, another server than the one the lease was held on (Redis
    /// restarted): nothing recorded, the lease is not lost; the table is planned again.
    ServerChanged(ServerRunId),
}

/// Why a lease was lost.
#[derive(Debug, Clone)]
struct Loss {
    reason: String,
}

/// What a lease and its renewal task share.
struct Shared {
    control: Arc<ControlClient>,
    table: String,
    kind: LeaseKind,
    /// The exclusive lease key and the shard set (the keys of the acquire scripts).
    acquire_keys: [String; 2],
    partitions_key: String,
    /// The holder as stored: the lease's value, or the set member.
    value: String,
    ttl: Duration,
    lost: Mutex<Option<Loss>>,
    /// The server the lease was last taken or renewed on.
    server: Mutex<ServerRunId>,
    /// Cancelled when the lease is lost (the table's work: see [`Lease::keep_renewed`]).
    work: Mutex<Option<CancellationToken>>,
}

/// A lease this process holds on a table.
pub struct Lease {
    shared: Arc<Shared>,
    /// Stops the renewal task.
    stop_renewal: CancellationToken,
}

impl Shared {
    /// The key this lease lives at: the exclusive key, or the shard set.
    fn key(&self) -> &str {
        match self.kind {
            LeaseKind::Exclusive => &self.acquire_keys[0],
            LeaseKind::Shard(_) => &self.acquire_keys[1],
        }
    }

    /// `exclusive` or `shard`, as the scripts take it.
    fn kind_name(&self) -> &'static str {
        match self.kind {
            LeaseKind::Exclusive => "exclusive",
            LeaseKind::Shard(_) => "shard",
        }
    }

    /// One try to take the lease (or confirm it is this holder's): the holder that has it
    /// instead, if another one does, and the server that answered.
    async fn take(&self) -> Result<(Option<String>, ServerRunId), RedisError> {
        let ttl_ms = self.ttl.as_millis().to_string();
        let (script, args) = match self.kind {
            LeaseKind::Exclusive => (
                &scripts().acquire_exclusive,
                vec![self.value.clone(), ttl_ms],
            ),
            LeaseKind::Shard(shard) => (
                &scripts().acquire_shard,
                vec![self.value.clone(), ttl_ms, shard.to_string()],
            ),
        };
        let answered = self
            .control
            .eval_idempotent::<(i64, String)>(script, &self.acquire_keys, &args)
            .await?;
        let (taken, other) = answered.value;
        Ok(((taken != 1).then_some(other), answered.server))
    }

    /// Makes sure the lease is held on `server`: nothing to do if it was last held there;
    /// after a restart, takes it again (logging `lease_retaken`), or marks it lost if another
    /// run took it first. Returns whether it is held.
    async fn ensure_on(&self, server: &ServerRunId) -> Result<bool, RedisError> {
        if self.is_lost() {
            return Ok(false);
        }
        if *self.server.lock().expect("lease lock") == *server {
            return Ok(true);
        }
        let (other, answered) = self.take().await?;
        if let Some(other) = other {
            let holder = LeaseHolder::parse(&other);
            self.mark_lost(format!(
                "redis restarted and run {} on {} took the lease first",
                holder.run_id, holder.host
            ));
            return Ok(false);
        }
        tracing::info!(
            target: LOG_TARGET,
            event = "lease_retaken",
            table = %self.table,
            redis_run_id = %answered,
            "redis restarted: the table's lease was taken again"
        );
        *self.server.lock().expect("lease lock") = answered;
        Ok(true)
    }

    /// Renews the lease: `Ok(false)` when another holder has it (or it expired). Not held on
    /// another server than the last one (a restart) is no loss: taken again there if it can be.
    async fn renew(&self) -> Result<bool, RedisError> {
        let script = match self.kind {
            LeaseKind::Exclusive => &scripts().renew_exclusive,
            LeaseKind::Shard(_) => &scripts().renew_shard,
        };
        let keys = [self.key().to_string()];
        let args = [self.value.clone(), self.ttl.as_millis().to_string()];
        let answered = self
            .control
            .eval_idempotent::<i64>(script, &keys, &args)
            .await?;
        if answered.value == 1 {
            *self.server.lock().expect("lease lock") = answered.server;
            return Ok(true);
        }
        if *self.server.lock().expect("lease lock") == answered.server {
            return Ok(false);
        }
        self.ensure_on(&answered.server).await
    }

    /// True once the lease was found lost.
    fn is_lost(&self) -> bool {
        self.lost.lock().expect("lease lock").is_some()
    }

    /// "Not held", answered by `server`: lost if that is the server the lease was held on
    /// (marked, logged), else a restart (not lost). Returns whether it is lost.
    fn not_held_on(&self, server: &ServerRunId, when: &str) -> bool {
        if *self.server.lock().expect("lease lock") != *server {
            return false;
        }
        self.mark_lost(format!(
            "another holder has the lease (or it expired) when {when}"
        ));
        true
    }

    /// Records the loss once, logs `lease_lost` and cancels the table's work.
    fn mark_lost(&self, reason: String) {
        let mut lost = self.lost.lock().expect("lease lock");
        if lost.is_some() {
            return;
        }
        tracing::error!(
            target: LOG_TARGET,
            event = "lease_lost",
            table = %self.table,
            reason = %reason,
            "lease lost: stopping this table before writing more; what was not finished is not recorded"
        );
        *lost = Some(Loss { reason });
        drop(lost);
        if let Some(work) = self.work.lock().expect("lease lock").as_ref() {
            work.cancel();
        }
    }
}

impl Lease {
    /// Waits up to `wait` (polling) for the lease of `kind` on `table`; a holder that does not
    /// renew loses it after `ttl`.
    pub async fn acquire(
        ledger: &Ledger,
        table: &str,
        kind: LeaseKind,
        holder: &LeaseHolder,
        ttl: Duration,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<Acquired, LeaseError> {
        let started = Instant::now();
        let value = LeaseHolder {
            shard: match kind {
                LeaseKind::Exclusive => None,
                LeaseKind::Shard(shard) => Some(shard.to_string()),
            },
            ..holder.clone()
        }
        .to_json();
        let control = ledger.control().clone();
        let server = control.server().await.map_err(|source| LeaseError {
            table: table.to_string(),
            source,
        })?;
        let shared = Shared {
            control,
            table: table.to_string(),
            kind,
            acquire_keys: [ledger.lease_key(table), ledger.shard_leases_key(table)],
            partitions_key: ledger.partitions_key(table),
            value,
            ttl,
            lost: Mutex::new(None),
            server: Mutex::new(server),
            work: Mutex::new(None),
        };
        loop {
            let (other, server) = shared.take().await.map_err(|source| LeaseError {
                table: table.to_string(),
                source,
            })?;
            let waited = started.elapsed();
            let Some(other) = other else {
                *shared.server.lock().expect("lease lock") = server;
                let lease = Lease {
                    shared: Arc::new(shared),
                    stop_renewal: CancellationToken::new(),
                };
                return Ok(Acquired::Held(lease, waited));
            };
            if waited >= wait {
                return Ok(Acquired::Busy(LeaseHolder::parse(&other), waited));
            }
            let pause = ACQUIRE_POLL.min(wait - waited);
            tokio::select! {
                _ = cancel.cancelled() => return Ok(Acquired::Cancelled),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.shared.table
    }

    /// The holder this lease was taken as.
    pub fn holder(&self) -> LeaseHolder {
        LeaseHolder::parse(&self.shared.value)
    }

    /// True once the lease was found lost (renewal or record).
    pub fn is_lost(&self) -> bool {
        self.shared.is_lost()
    }

    /// Why it was lost, if it was.
    pub fn lost_reason(&self) -> Option<String> {
        let lost = self.shared.lost.lock().expect("lease lock");
        lost.as_ref().map(|loss| loss.reason.clone())
    }

    /// Starts renewing the lease every third of its ttl until it is released; when it is lost
    /// (found by the renewal, or by a record), logs `lease_lost` and cancels `work` (the table's
    /// loading) before anything more is written.
    pub fn keep_renewed(&self, work: CancellationToken) {
        *self.shared.work.lock().expect("lease lock") = Some(work);
        let shared = self.shared.clone();
        let renewing = self.shared.clone();
        let renew = move || {
            let shared = renewing.clone();
            async move { shared.renew().await }
        };
        let stop = self.stop_renewal.clone();
        tokio::spawn(async move {
            if let Some(reason) = keep_renewed(&shared.table, shared.ttl, renew, stop).await {
                shared.mark_lost(reason);
            }
        });
    }

    /// Makes sure the lease is held on `server`, the server the next writes go to: after a
    /// Redis restart it is taken again there, unless another run took it first (then it is lost:
    /// logged, the work cancelled). Returns whether it is held.
    pub async fn ensure_on(&self, server: &ServerRunId) -> Result<bool, RedisError> {
        self.shared.ensure_on(server).await
    }

    /// What the ledger's record script checks: this holder, at this lease's key.
    pub fn check(&self) -> LeaseCheck {
        LeaseCheck {
            kind: self.shared.kind_name(),
            key: self.shared.key().to_string(),
            holder: self.shared.value.clone(),
        }
    }

    /// Records a fully written partition in the ledger if this lease is still held, in the
    /// ledger's one record script (fenced, retried, settled: [`Ledger::record_leased`]). The
    /// watermark moves with it only for an exclusive lease: a shard's view of the ledger is
    /// stale the moment another shard records, so shards leave the watermark to
    /// [`Lease::set_watermark`] at the end.
    pub async fn record(
        &self,
        ledger: &Ledger,
        date: NaiveDate,
        entry: &LedgerEntry,
        watermarks: Option<Watermarks>,
    ) -> Result<LeasedRecord, RedisError> {
        let watermarks = watermarks.filter(|_| self.shared.kind == LeaseKind::Exclusive);
        let outcome = ledger
            .record_leased(&self.shared.table, date, entry, watermarks, &self.check())
            .await?;
        Ok(match outcome {
            RecordOutcome::Recorded(recorded) => LeasedRecord::Recorded(recorded),
            RecordOutcome::LeaseNotHeld { server } => {
                if self
                    .shared
                    .not_held_on(&server, "the partition was to be recorded")
                {
                    LeasedRecord::LeaseLost
                } else {
                    LeasedRecord::ServerChanged(server)
                }
            }
        })
    }

    /// Sets the table's watermark (`None` clears it) if this lease is still held and the ledger
    /// still has `entries` entries, i.e. nothing was recorded since the caller read it (shards
    /// record beside each other: the last one to finish then sets the watermark of them all).
    pub async fn set_watermark(
        &self,
        watermark_key: &str,
        entries: usize,
        watermark: Option<NaiveDate>,
    ) -> Result<WatermarkSet, RedisError> {
        let shared = &self.shared;
        let keys = [
            shared.key().to_string(),
            shared.partitions_key.clone(),
            watermark_key.to_string(),
        ];
        let args = [
            shared.kind_name().to_string(),
            shared.value.clone(),
            entries.to_string(),
            watermark.map_or(String::new(), |d| d.format("%Y-%m-%d").to_string()),
        ];
        let set = shared
            .control
            .eval_idempotent::<i64>(&scripts().set_watermark_if_held, &keys, &args)
            .await?;
        Ok(match set.value {
            1 => WatermarkSet::Set,
            0 if shared.not_held_on(&set.server, "the watermark was to be set") => {
                WatermarkSet::LeaseLost
            }
            0 => WatermarkSet::ServerChanged,
            _ => WatermarkSet::LedgerChanged,
        })
    }

    /// Stops renewing and releases the lease if this holder still has it. `Ok(false)`: it was
    /// not held any more (expired or taken), nothing was touched.
    pub async fn release(self) -> Result<bool, RedisError> {
        self.stop_renewal.cancel();
        let shared = &self.shared;
        let script = match shared.kind {
            LeaseKind::Exclusive => &scripts().release_exclusive,
            LeaseKind::Shard(_) => &scripts().release_shard,
        };
        let released = shared
            .control
            .eval_idempotent::<i64>(
                script,
                &[shared.key().to_string()],
                std::slice::from_ref(&shared.value),
            )
            .await?;
        Ok(released.value == 1)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A lease dropped without release (a panic) stops renewing and expires after its ttl.
        self.stop_renewal.cancel();
    }
}

/// Renews every `ttl / 3` until `stop` fires (`None`) or the lease is lost (`Some(reason)`):
/// `renew` answered that another holder has it, or it failed for as long as the lease might have
/// expired meanwhile (two thirds of the ttl since the last renewal that succeeded, so the work
/// stops a third of the ttl before anyone else can take the lease).
async fn keep_renewed<Renew, Attempt>(
    table: &str,
    ttl: Duration,
    mut renew: Renew,
    stop: CancellationToken,
) -> Option<String>
where
    Renew: FnMut() -> Attempt,
    Attempt: std::future::Future<Output = Result<bool, RedisError>>,
{
    let interval = ttl / 3;
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(interval) => {}
        }
        let attempt = tokio::select! {
            _ = stop.cancelled() => return None,
            attempt = tokio::time::timeout(interval, renew()) => attempt,
        };
        match attempt {
            Ok(Ok(true)) => last_renewed = tokio::time::Instant::now(),
            Ok(Ok(false)) => {
                return Some("another holder has the lease (or it expired)".to_string());
            }
            failed => {
                let error = match failed {
                    Ok(Err(err)) => err.to_string(),
                    _ => format!("no reply within {}ms", interval.as_millis()),
                };
                if last_renewed.elapsed() >= interval * 2 {
                    return Some(format!(
                        "cannot renew it ({error}) for {}ms: it may have expired",
                        last_renewed.elapsed().as_millis()
                    ));
                }
                tracing::warn!(
                    target: LOG_TARGET,
                    event = "lease_renewal_failed",
                    table = %table,
                    error = %error,
                    "lease renewal failed, trying again"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A renewal whose answers are scripted, counting its calls.
    fn scripted(
        answers: Vec<Result<bool, RedisError>>,
    ) -> (
        Arc<Mutex<usize>>,
        impl FnMut() -> std::future::Ready<Result<bool, RedisError>>,
    ) {
        let calls = Arc::new(Mutex::new(0));
        let counted = calls.clone();
        let mut answers: VecDeque<_> = answers.into();
        let renew = move || {
            *counted.lock().unwrap() += 1;
            std::future::ready(answers.pop_front().unwrap_or(Ok(true)))
        };
        (calls, renew)
    }

    fn timeout() -> RedisError {
        RedisError::Timeout { seconds: 1 }
    }

    #[tokio::test(start_paused = true)]
    async fn renews_every_third_of_the_ttl_until_stopped() {
        let (calls, renew) = scripted(vec![]);
        let stop = CancellationToken::new();
        let task = tokio::spawn(keep_renewed(
            "t",
            Duration::from_secs(60),
            renew,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(*calls.lock().unwrap(), 3, "at 20s, 40s and 60s");
        stop.cancel();
        assert_eq!(task.await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn another_holder_loses_it_at_once() {
        let (calls, renew) = scripted(vec![Ok(true), Ok(false)]);
        let started = tokio::time::Instant::now();
        let lost = keep_renewed(
            "t",
            Duration::from_secs(60),
            renew,
            CancellationToken::new(),
        )
        .await;
        assert!(lost.unwrap().contains("another holder"));
        assert_eq!(started.elapsed(), Duration::from_secs(40));
        assert_eq!(*calls.lock().unwrap(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn one_failed_renewal_is_survived_two_lose_it_before_the_expiry() {
        let (_, renew) = scripted(vec![Err(timeout()), Ok(true), Err(timeout())]);
        let stop = CancellationToken::new();
        let task = tokio::spawn(keep_renewed(
            "t",
            Duration::from_secs(60),
            renew,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(70)).await;
        assert!(
            !task.is_finished(),
            "a failure between two renewals is survived"
        );
        stop.cancel();
        task.await.unwrap();

        let (_, renew) = scripted(vec![Ok(true), Err(timeout()), Err(timeout())]);
        let started = tokio::time::Instant::now();
        let lost = keep_renewed(
            "t",
            Duration::from_secs(60),
            renew,
            CancellationToken::new(),
        )
        .await;
        let reason = lost.expect("lost");
        assert!(reason.contains("may have expired"), "{reason}");
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(60),
            "renewed at 20s, failed at 40s and at 60s: lost 40s after the last renewal, 20s before its expiry"
        );
    }

    #[test]
    fn a_holder_round_trips_and_a_foreign_value_still_names_something() {
        let holder = LeaseHolder {
            shard: Some(Shard::new("x", 1, 4).unwrap().to_string()),
            ..LeaseHolder::new("run-1", "pod-a")
        };
        assert_eq!(LeaseHolder::parse(&holder.to_json()), holder);
        assert_eq!(holder.shard.as_deref(), Some("1/4"));
        let json: serde_json::Value = serde_json::from_str(&holder.to_json()).unwrap();
        assert!(json.get("token").is_some() && json.get("since").is_some());
        let foreign = LeaseHolder::parse("someone");
        assert_eq!(foreign.run_id, "unknown");
        assert!(foreign.host.contains("someone"));
    }
}
