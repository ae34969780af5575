//! Polite loading: write-rate limits (global and per table) and an adaptive mode that lowers the
//! rate while Redis answers a probe `PING` slower than a target, so live readers keep their latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::redis::{CommandBatch, Connection, Connector};

/// A write-rate limit in keys per second, shared by every load of a run (the global limit) or
/// of a table; `None` rate means unlimited. Waits so that on average no more than `rate` keys
/// per second pass, allowing a burst of one batch.
#[derive(Debug, Default)]
pub struct RateLimiter {
    limits: Vec<Arc<RateLimit>>,
}

impl RateLimiter {
    /// A limiter applying every given limit (the slowest wins).
    pub fn new(limits: Vec<Arc<RateLimit>>) -> Self {
        RateLimiter { limits }
    }

    /// Waits until `keys` more keys may be sent.
    pub async fn acquire(&self, keys: usize) {
        for limit in &self.limits {
            limit.acquire(keys).await;
        }
    }
}

/// One rate: the time the next key may go, advanced by `1/rate` per key.
#[derive(Debug)]
pub struct RateLimit {
    keys_per_sec: AtomicU64,
    next: tokio::sync::Mutex<Instant>,
}

impl RateLimit {
    /// A limit of `keys_per_sec` (must be positive).
    pub fn new(keys_per_sec: u64) -> Arc<Self> {
        Arc::new(RateLimit {
            keys_per_sec: AtomicU64::new(keys_per_sec.max(1)),
            next: tokio::sync::Mutex::new(Instant::now()),
        })
    }

    /// The current rate.
    pub fn rate(&self) -> u64 {
        self.keys_per_sec.load(Ordering::Relaxed)
    }

    /// Changes the rate (the adaptive controller does).
    pub fn set_rate(&self, keys_per_sec: u64) {
        self.keys_per_sec
            .store(keys_per_sec.max(1), Ordering::Relaxed);
    }

    /// Waits until `keys` more keys may be sent.
    pub async fn acquire(&self, keys: usize) {
        let cost = Duration::from_secs_f64(keys as f64 / self.rate() as f64);
        let start = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            // Unused time does not accumulate beyond one batch's cost: after an idle pause at most
            // one extra batch goes at once.
            let start = (*next).max(now - cost.min(Duration::from_secs(1)));
            *next = start + cost;
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// Lowest rate the adaptive mode goes down to, keys per second.
pub const ADAPTIVE_FLOOR: u64 = 1_000;
/// Rate the adaptive mode starts from (and its ceiling) when no `max_keys_per_sec` is set.
pub const ADAPTIVE_CEILING: u64 = 2_000_000;
/// How often the adaptive mode probes Redis.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// One step of the adaptive controller (AIMD): halve the rate when the probe round trip is above
/// the target, otherwise raise it by a tenth, within `[ADAPTIVE_FLOOR, ceiling]`.
pub fn adapt(rate: u64, round_trip: Duration, target: Duration, ceiling: u64) -> u64 {
    if round_trip > target {
        (rate / 2).max(ADAPTIVE_FLOOR)
    } else {
        (rate + rate / 10 + ADAPTIVE_FLOOR).min(ceiling)
    }
}

/// Probes Redis with `PING` on its own connection every [`PROBE_INTERVAL`] and adapts `limit`
/// until `stop`. A failed probe counts as a slow one (the rate halves) and reconnects.
pub async fn run_adaptive(
    connector: Arc<Connector>,
    target: Duration,
    limit: Arc<RateLimit>,
    stop: CancellationToken,
) {
    let ceiling = connector
        .config()
        .max_keys_per_sec
        .unwrap_or(ADAPTIVE_CEILING);
    let mut ping = CommandBatch::default();
    ping.push_command(&[b"PING"]);
    let mut last_logged = limit.rate();
    let mut connection: Option<Connection> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
        let sent = Instant::now();
        let probed = match connection.as_mut() {
            Some(open) => open.call(&ping).await.map(|_| ()),
            None => connector.open().await.map(|open| connection = Some(open)),
        };
        let round_trip = match probed {
            Ok(()) => sent.elapsed(),
            // A probe that fails or times out is the strongest "redis is struggling" signal:
            // back off as for a slow answer, and reconnect on the next probe.
            Err(err) => {
                tracing::warn!(event = "adaptive_probe_failed", error = %err, "adaptive rate probe failed");
                connection = None;
                Duration::MAX
            }
        };
        let rate = adapt(limit.rate(), round_trip, target, ceiling);
        limit.set_rate(rate);
        if rate * 2 <= last_logged || rate >= last_logged * 2 {
            tracing::info!(
                event = "write_rate_adapted",
                keys_per_sec = rate,
                probe_ms = round_trip.as_secs_f64() * 1000.0,
                "write rate adapted to redis latency"
            );
            last_logged = rate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rate_limit_spaces_batches_by_their_cost() {
        let limit = RateLimit::new(1000);
        let limiter = RateLimiter::new(vec![limit.clone()]);
        let t0 = tokio::time::Instant::now();
        // The first batch goes at once (one batch of burst); each next one waits for the cost
        // of the one before (1 ms per key).
        limiter.acquire(500).await;
        limiter.acquire(500).await;
        limiter.acquire(500).await;
        let elapsed = t0.elapsed();
        assert!(
            elapsed >= std::time::Duration::from_millis(1000),
            "{elapsed:?}"
        );
        assert!(
            elapsed <= std::time::Duration::from_millis(1001),
            "{elapsed:?}"
        );
        limit.set_rate(100);
        let t1 = tokio::time::Instant::now();
        limiter.acquire(100).await;
        limiter.acquire(100).await;
        let elapsed = t1.elapsed();
        assert!(
            elapsed >= std::time::Duration::from_millis(1500),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slowest_limit_wins() {
        let limiter = RateLimiter::new(vec![RateLimit::new(10_000), RateLimit::new(100)]);
        let t0 = tokio::time::Instant::now();
        for _ in 0..3 {
            limiter.acquire(100).await;
        }
        assert!(
            t0.elapsed() >= std::time::Duration::from_secs(1),
            "{:?}",
            t0.elapsed()
        );
        assert!(RateLimiter::default().limits.is_empty());
    }
}

#[cfg(test)]
mod adapt_tests {
    use super::*;

    #[test]
    fn aimd_halves_on_slow_probe_and_grows_by_a_tenth_otherwise() {
        let target = Duration::from_millis(2);
        assert_eq!(
            adapt(100_000, Duration::from_millis(3), target, 500_000),
            50_000
        );
        assert_eq!(
            adapt(100_000, Duration::from_millis(1), target, 500_000),
            111_000
        );
        assert_eq!(
            adapt(1_500, Duration::from_millis(9), target, 500_000),
            ADAPTIVE_FLOOR
        );
        assert_eq!(adapt(490_000, Duration::ZERO, target, 500_000), 500_000);
    }
}
