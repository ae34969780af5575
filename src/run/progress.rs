//! Progress of a long load: the rows and keys a partition's load has read and sent so far
//! ([`LoadCounters`], bumped by [`crate::load`]), reported every `[logging] progress_interval` as
//! a `load_progress` event with the rate and an ETA from the footers' row count, or, when the
//! logs are text on a terminal, as a progress bar ([`crate::logging::progress_bars`]) instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::LOG_TARGET;

/// How often a progress bar is redrawn.
const BAR_REFRESH: Duration = Duration::from_millis(200);

/// What a partition's load has read and sent so far; shared with the task that reports it.
#[derive(Debug, Default)]
pub struct LoadCounters {
    rows: AtomicU64,
    skipped: AtomicU64,
    keys: AtomicU64,
}

impl LoadCounters {
    /// Rows decoded from the files, `skipped` of them without a key (no write).
    pub fn add_rows(&self, rows: u64, skipped: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.skipped.fetch_add(skipped, Ordering::Relaxed);
    }

    /// Keys whose writes were handed to the Redis connections (past the rate limit).
    pub fn add_keys(&self, keys: u64) {
        self.keys.fetch_add(keys, Ordering::Relaxed);
    }

    /// `(rows read, keys sent)` so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.rows.load(Ordering::Relaxed),
            self.keys.load(Ordering::Relaxed),
        )
    }

    /// Rows done: their writes sent, or skipped (no key). Reading runs a few batches ahead of
    /// the writes, so the rate and the ETA count these.
    pub fn done(&self) -> u64 {
        self.keys.load(Ordering::Relaxed) + self.skipped.load(Ordering::Relaxed)
    }
}

/// Rows per second and the seconds left (when something was done) after `rows` of `total` in
/// `elapsed`.
pub fn rate_and_eta(rows: u64, total: u64, elapsed: Duration) -> (u64, Option<u64>) {
    let seconds = elapsed.as_secs_f64();
    if rows == 0 || seconds <= 0.0 {
        return (0, None);
    }
    let rate = rows as f64 / seconds;
    let left = total.saturating_sub(rows) as f64 / rate;
    (rate.round() as u64, Some(left.ceil() as u64))
}

/// Reports the progress of one partition's load until the returned guard drops.
pub fn report(
    table: &str,
    date: NaiveDate,
    total_rows: u64,
    counters: Arc<LoadCounters>,
    interval: Duration,
) -> DropGuard {
    let stop = CancellationToken::new();
    let guard = stop.clone().drop_guard();
    let table = table.to_string();
    match crate::logging::progress_bars() {
        Some(bars) => {
            let bar = bars.add(ProgressBar::new(total_rows));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {human_pos}/{human_len} rows ({percent}%), {elapsed} elapsed, eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{table} {date}"));
            tokio::spawn(async move {
                loop {
                    bar.set_position(counters.done());
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(BAR_REFRESH) => {}
                    }
                }
                bar.finish_and_clear();
            });
        }
        None => {
            tokio::spawn(log_progress(
                table, date, total_rows, counters, interval, stop,
            ));
        }
    }
    guard
}

/// Logs `load_progress` every `interval` until `stop` fires.
async fn log_progress(
    table: String,
    date: NaiveDate,
    total_rows: u64,
    counters: Arc<LoadCounters>,
    interval: Duration,
    stop: CancellationToken,
) {
    let started = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let (rows, keys) = counters.get();
        let elapsed = started.elapsed();
        let (rows_per_sec, eta_secs) = rate_and_eta(counters.done(), total_rows, elapsed);
        tracing::info!(
            target: LOG_TARGET,
            event = "load_progress",
            table = %table,
            date = %date,
            rows,
            rows_total = total_rows,
            keys,
            rows_per_sec,
            eta_secs,
            elapsed_secs = elapsed.as_secs(),
            "loading"
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::logging::CapturedLog;

    use super::*;

    #[test]
    fn rate_and_eta_from_the_footer_rows() {
        assert_eq!(rate_and_eta(0, 100, Duration::from_secs(5)), (0, None));
        assert_eq!(rate_and_eta(10, 100, Duration::ZERO), (0, None));
        assert_eq!(
            rate_and_eta(250, 1000, Duration::from_secs(10)),
            (25, Some(30))
        );
        assert_eq!(
            rate_and_eta(1000, 1000, Duration::from_secs(4)),
            (250, Some(0))
        );
        assert_eq!(
            rate_and_eta(3, 10, Duration::from_secs(2)),
            (2, Some(5)),
            "1.5 rows/s: 7 rows left take 4.67 s, rounded up"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn logs_every_interval_until_stopped() {
        let log = CapturedLog::default();
        let _guard = log.install();
        let counters = Arc::new(LoadCounters::default());
        let stop = CancellationToken::new();
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let task = tokio::spawn(log_progress(
            "orders".into(),
            date,
            1000,
            counters.clone(),
            Duration::from_secs(30),
            stop.clone(),
        ));
        counters.add_rows(400, 10);
        counters.add_keys(290);
        tokio::time::sleep(Duration::from_secs(31)).await;
        counters.add_rows(300, 0);
        counters.add_keys(300);
        tokio::time::sleep(Duration::from_secs(30)).await;
        stop.cancel();
        task.await.unwrap();
        let events = log.events();
        assert_eq!(events.len(), 2, "{events:?}");
        let first = &events[0];
        assert_eq!(first["event"], "load_progress");
        assert_eq!(first["table"], "orders");
        assert_eq!(first["date"], "2026-11-20");
        assert_eq!(first["rows"], 400, "read");
        assert_eq!(first["rows_total"], 1000);
        assert_eq!(first["keys"], 290, "sent");
        assert_eq!(
            first["rows_per_sec"], 10,
            "300 rows done (290 sent, 10 skipped) in 30 s"
        );
        assert_eq!(first["eta_secs"], 70);
        assert_eq!(first["elapsed_secs"], 30);
        assert_eq!(events[1]["rows"], 700);
        assert_eq!(events[1]["keys"], 590);
        assert_eq!(
            events[1]["eta_secs"], 40,
            "600 done in 60 s: 400 left at 10/s"
        );
    }
}
