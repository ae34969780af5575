//! One small retry helper: an operation is retried, with exponential back-off and jitter between
//! attempts, only while its errors are classified transient, for at least a number of attempts
//! and, beyond them, until a time budget counted from the first failure is spent (a Redis that
//! restarts or stalls for less than the budget costs no failure), and no longer than a
//! [`CancellationToken`] allows (it returns at once when the token fires during an attempt or a
//! back-off). Generic over the operation and its error: partition loads and the idempotent Redis
//! control commands use it.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts at least, the first one included (0 counts as 1).
    pub attempts: u32,
    /// Beyond `attempts`, keep retrying until this long after the first failure; the last
    /// back-off is cut short so that one attempt starts when the budget ends (zero: none).
    pub budget: Duration,
    /// Back-off after the first failed attempt; it doubles after each further one.
    pub initial_delay: Duration,
    /// Longest back-off, before jitter.
    pub max_delay: Duration,
    /// Up to this fraction of each back-off is added at random, so that clients that failed
    /// together do not retry in step (0 for none).
    pub jitter: f64,
}

impl RetryPolicy {
    /// The policy of partition loads: at least `attempts`, and more within `budget` of the first
    /// failure; 0.5 s doubling up to 30 s, plus up to half of it as jitter.
    pub fn partition_loads(attempts: usize, budget: Duration) -> RetryPolicy {
        RetryPolicy {
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            budget,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            jitter: 0.5,
        }
    }

    /// The policy of idempotent Redis control commands: retried within `budget` of the first
    /// failure, 100 ms doubling up to 2 s, plus up to half of it as jitter (a ledger write waits
    /// for a restarted Redis about as soon as it answers).
    pub fn control_commands(budget: Duration) -> RetryPolicy {
        RetryPolicy {
            attempts: 1,
            budget,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            jitter: 0.5,
        }
    }

    /// The back-off after failed attempt `attempt` (1-based), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.initial_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }

    /// `backoff` plus a random jitter of up to `jitter` of it, in whole milliseconds.
    fn backoff_with_jitter(&self, attempt: u32) -> Duration {
        let backoff = self.backoff(attempt);
        let max_jitter_ms = (backoff.as_millis() as f64 * self.jitter.max(0.0)) as u64;
        backoff + Duration::from_millis(rand::random_range(0..=max_jitter_ms))
    }
}

/// The retried operation was cancelled: what [`retry`] returns (as the operation's error type)
/// when its token fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// How a failure may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retryable {
    /// Permanent: never retried.
    Never,
    /// Transient: retried up to `policy.attempts`.
    ForAttempts,
    /// Transient, and a fault the budget covers (a Redis restart or stall): retried up to
    /// `policy.attempts` and beyond, until `policy.budget` is spent.
    ForBudget,
}

/// Runs `operation` (given the 1-based attempt number) until it succeeds, fails with an error
/// `is_transient` calls permanent, or has used both `policy.attempts` and `policy.budget` (from
/// the end of the first failed attempt); then returns its last result. Before each back-off,
/// `on_retry` sees the error, the attempt that failed and the delay. When `cancel` fires, the
/// attempt in progress is dropped and `E::from(Cancelled)` returned.
pub async fn retry<T, E, Attempt>(
    policy: RetryPolicy,
    cancel: &CancellationToken,
    is_transient: impl Fn(&E) -> bool,
    on_retry: impl FnMut(&E, u32, Duration),
    operation: impl FnMut(u32) -> Attempt,
) -> Result<T, E>
where
    Attempt: Future<Output = Result<T, E>>,
    E: From<Cancelled>,
{
    let classify = |err: &E| match is_transient(err) {
        true => Retryable::ForBudget,
        false => Retryable::Never,
    };
    retry_classified(policy, cancel, classify, on_retry, operation).await
}

/// [`retry`], where `classify` says of each failure whether the budget covers it, or only the
/// attempts (say, a store error, when the budget is for Redis faults).
pub async fn retry_classified<T, E, Attempt>(
    policy: RetryPolicy,
    cancel: &CancellationToken,
    classify: impl Fn(&E) -> Retryable,
    mut on_retry: impl FnMut(&E, u32, Duration),
    mut operation: impl FnMut(u32) -> Attempt,
) -> Result<T, E>
where
    Attempt: Future<Output = Result<T, E>>,
    E: From<Cancelled>,
{
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    let mut first_failure: Option<tokio::time::Instant> = None;
    loop {
        // Checked first: the select below creates the attempt before it polls anything.
        if cancel.is_cancelled() {
            return Err(Cancelled.into());
        }
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Cancelled.into()),
            result = operation(attempt) => result,
        };
        let err = match result {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let now = tokio::time::Instant::now();
        let deadline = *first_failure.get_or_insert(now) + policy.budget;
        let mut delay = policy.backoff_with_jitter(attempt);
        match classify(&err) {
            Retryable::Never => return Err(err),
            _ if attempt < attempts => {}
            Retryable::ForAttempts => return Err(err),
            Retryable::ForBudget if now >= deadline => return Err(err),
            Retryable::ForBudget => delay = delay.min(deadline - now),
        }
        on_retry(&err, attempt, delay);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Cancelled.into()),
            _ = tokio::time::sleep(delay) => {}
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::time::Instant;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum TestError {
        Transient(u32),
        Permanent(u32),
        Cancelled,
    }

    impl From<Cancelled> for TestError {
        fn from(_: Cancelled) -> TestError {
            TestError::Cancelled
        }
    }

    fn transient(err: &TestError) -> bool {
        matches!(err, TestError::Transient(_))
    }

    fn policy(attempts: u32, initial_ms: u64, max_ms: u64, jitter: f64) -> RetryPolicy {
        RetryPolicy {
            attempts,
            budget: Duration::ZERO,
            initial_delay: Duration::from_millis(initial_ms),
            max_delay: Duration::from_millis(max_ms),
            jitter,
        }
    }

    /// What the operation saw: the (paused) clock at each attempt, and each `on_retry` call.
    #[derive(Clone, Default)]
    struct Trace {
        attempts: Arc<Mutex<Vec<(u32, Instant)>>>,
        retries: Arc<Mutex<Vec<(TestError, u32, Duration)>>>,
    }

    impl Trace {
        fn attempt(&self, attempt: u32) {
            self.attempts
                .lock()
                .unwrap()
                .push((attempt, Instant::now()));
        }

        fn on_retry(&self) -> impl FnMut(&TestError, u32, Duration) {
            let retries = self.retries.clone();
            move |err, attempt, delay| retries.lock().unwrap().push((err.clone(), attempt, delay))
        }

        fn attempt_numbers(&self) -> Vec<u32> {
            self.attempts.lock().unwrap().iter().map(|a| a.0).collect()
        }

        /// Milliseconds between consecutive attempts.
        fn gaps_ms(&self) -> Vec<u64> {
            let attempts = self.attempts.lock().unwrap();
            attempts
                .windows(2)
                .map(|w| (w[1].1 - w[0].1).as_millis() as u64)
                .collect()
        }
    }

    /// An operation that fails transiently `failures` times, then returns its attempt number.
    fn flaky(
        trace: &Trace,
        failures: u32,
    ) -> impl FnMut(u32) -> std::future::Ready<Result<u32, TestError>> {
        let trace = trace.clone();
        move |attempt| {
            trace.attempt(attempt);
            std::future::ready(if attempt <= failures {
                Err(TestError::Transient(attempt))
            } else {
                Ok(attempt)
            })
        }
    }

    /// Retries [`flaky`] (failing `failures` times) under `policy`, never cancelled.
    async fn retry_flaky(policy: RetryPolicy, failures: u32) -> (Result<u32, TestError>, Trace) {
        let trace = Trace::default();
        let result = retry(
            policy,
            &CancellationToken::new(),
            transient,
            trace.on_retry(),
            flaky(&trace, failures),
        )
        .await;
        (result, trace)
    }

    /// The task's result; fails (rather than hangs) if it does not end once cancelled: on the
    /// paused clock, the timeout fires as soon as nothing else can run.
    async fn finish<T>(task: tokio::task::JoinHandle<T>) -> T {
        tokio::time::timeout(Duration::from_secs(3600), task)
            .await
            .expect("the retry did not return on cancellation")
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_with_doubling_back_off_until_success() {
        let (result, trace) = retry_flaky(policy(5, 500, 30_000, 0.0), 3).await;
        assert_eq!(result, Ok(4));
        assert_eq!(trace.attempt_numbers(), vec![1, 2, 3, 4]);
        assert_eq!(trace.gaps_ms(), vec![500, 1000, 2000]);
        assert_eq!(
            *trace.retries.lock().unwrap(),
            vec![
                (TestError::Transient(1), 1, Duration::from_millis(500)),
                (TestError::Transient(2), 2, Duration::from_millis(1000)),
                (TestError::Transient(3), 3, Duration::from_millis(2000)),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_attempts_with_the_last_error_and_caps_the_delay() {
        let trace = Trace::default();
        let started = Instant::now();
        let result = retry(
            policy(5, 1000, 3000, 0.0),
            &CancellationToken::new(),
            transient,
            trace.on_retry(),
            flaky(&trace, u32::MAX),
        )
        .await;
        assert_eq!(result, Err(TestError::Transient(5)));
        assert_eq!(trace.attempt_numbers(), vec![1, 2, 3, 4, 5]);
        assert_eq!(trace.gaps_ms(), vec![1000, 2000, 3000, 3000]);
        assert_eq!(
            trace.retries.lock().unwrap().len(),
            4,
            "none after the last"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(9000));
    }

    #[tokio::test(start_paused = true)]
    async fn one_attempt_means_no_retry_and_zero_counts_as_one() {
        for attempts in [0, 1] {
            let (result, trace) = retry_flaky(policy(attempts, 500, 30_000, 0.0), 1).await;
            assert_eq!(result, Err(TestError::Transient(1)), "{attempts}");
            assert_eq!(trace.attempt_numbers(), vec![1]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_adds_at_most_its_fraction_of_the_back_off() {
        let (result, trace) = retry_flaky(policy(6, 1000, 60_000, 0.5), 5).await;
        assert_eq!(result, Ok(6));
        let gaps = trace.gaps_ms();
        for (gap, backoff) in gaps.iter().zip([1000, 2000, 4000, 8000, 16000]) {
            assert!((backoff..=backoff + backoff / 2).contains(gap), "{gaps:?}");
        }
        let delays: Vec<u64> = trace
            .retries
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.2.as_millis() as u64)
            .collect();
        assert_eq!(delays, gaps, "on_retry is told the delay actually waited");
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let trace = Trace::default();
        let attempts = trace.clone();
        let started = Instant::now();
        let result: Result<(), _> = retry(
            policy(5, 500, 30_000, 0.0),
            &CancellationToken::new(),
            transient,
            trace.on_retry(),
            move |attempt| {
                attempts.attempt(attempt);
                std::future::ready(Err(TestError::Permanent(attempt)))
            },
        )
        .await;
        assert_eq!(result, Err(TestError::Permanent(1)));
        assert_eq!(trace.attempt_numbers(), vec![1]);
        assert!(trace.retries.lock().unwrap().is_empty());
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_during_an_attempt_returns_at_once() {
        let trace = Trace::default();
        let cancel = CancellationToken::new();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let mut started_tx = Some(started_tx);
        let attempts = trace.clone();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            let on_retry = trace.on_retry();
            async move {
                retry(
                    policy(5, 500, 30_000, 0.0),
                    &cancel,
                    transient,
                    on_retry,
                    move |attempt| {
                        attempts.attempt(attempt);
                        if let Some(tx) = started_tx.take() {
                            let _ = tx.send(());
                        }
                        std::future::pending::<Result<(), TestError>>()
                    },
                )
                .await
            }
        });
        started_rx.await.unwrap();
        let cancelled_at = Instant::now();
        cancel.cancel();
        assert_eq!(finish(task).await, Err(TestError::Cancelled));
        assert_eq!(Instant::now(), cancelled_at, "no time passes");
        assert_eq!(trace.attempt_numbers(), vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_during_a_back_off_returns_at_once_without_another_attempt() {
        let trace = Trace::default();
        let cancel = CancellationToken::new();
        let (backing_off_tx, backing_off_rx) = tokio::sync::oneshot::channel();
        let mut backing_off_tx = Some(backing_off_tx);
        let mut on_retry = trace.on_retry();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            let operation = flaky(&trace, u32::MAX);
            async move {
                retry(
                    policy(5, 10_000, 30_000, 0.0),
                    &cancel,
                    transient,
                    move |err, attempt, delay| {
                        on_retry(err, attempt, delay);
                        if let Some(tx) = backing_off_tx.take() {
                            let _ = tx.send(());
                        }
                    },
                    operation,
                )
                .await
            }
        });
        backing_off_rx.await.unwrap();
        let backing_off_since = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        cancel.cancel();
        assert_eq!(finish(task).await, Err(TestError::Cancelled));
        assert_eq!(
            Instant::now() - backing_off_since,
            Duration::from_secs(1),
            "the 10 s back-off was cut short"
        );
        assert_eq!(trace.attempt_numbers(), vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_already_cancelled_token_starts_no_attempt() {
        let trace = Trace::default();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let result = retry(
            policy(5, 500, 30_000, 0.0),
            &cancel,
            transient,
            trace.on_retry(),
            flaky(&trace, 0),
        )
        .await;
        assert_eq!(result, Err(TestError::Cancelled));
        assert!(trace.attempt_numbers().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_the_attempts_retries_go_on_until_the_budget_is_spent() {
        let trace = Trace::default();
        let started = Instant::now();
        let budget = RetryPolicy {
            budget: Duration::from_secs(10),
            ..policy(2, 1000, 4000, 0.0)
        };
        let result = retry(
            budget,
            &CancellationToken::new(),
            transient,
            trace.on_retry(),
            flaky(&trace, u32::MAX),
        )
        .await;
        // Attempts at 0, 1, 3, 7 s; the next back-off (4 s) is cut to end with the budget at
        // 10 s, where the last attempt runs.
        assert_eq!(result, Err(TestError::Transient(5)));
        assert_eq!(trace.gaps_ms(), vec![1000, 2000, 4000, 3000]);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_counts_from_the_end_of_the_first_failed_attempt() {
        let trace = Trace::default();
        let started = Instant::now();
        let attempts = trace.clone();
        let budget = RetryPolicy {
            budget: Duration::from_secs(5),
            ..policy(1, 1000, 1000, 0.0)
        };
        let result: Result<(), _> = retry(
            budget,
            &CancellationToken::new(),
            transient,
            trace.on_retry(),
            move |attempt| {
                attempts.attempt(attempt);
                // Each attempt times out after 3 s.
                async move {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Err(TestError::Transient(attempt))
                }
            },
        )
        .await;
        // The first failure ends at 3 s: the budget lasts until 8 s. Attempt 2 runs from 4 to
        // 7 s, attempt 3 from 8 s (its back-off is not cut: it ends with the budget) to 11 s.
        assert_eq!(result, Err(TestError::Transient(3)));
        let starts: Vec<Duration> = trace
            .attempts
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.1 - started)
            .collect();
        let secs = |s| Duration::from_secs(s);
        assert_eq!(starts, vec![secs(0), secs(4), secs(8)]);
        assert_eq!(started.elapsed(), secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_within_the_budget_ends_the_retries() {
        let (result, trace) =
            retry_flaky(RetryPolicy::control_commands(Duration::from_secs(60)), 6).await;
        assert_eq!(result, Ok(7));
        let gaps = trace.gaps_ms();
        for (gap, backoff) in gaps.iter().zip([100, 200, 400, 800, 1600, 2000]) {
            assert!((backoff..=backoff + backoff / 2).contains(gap), "{gaps:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_the_budget_does_not_cover_get_only_the_attempts() {
        let trace = Trace::default();
        let budget = RetryPolicy {
            budget: Duration::from_secs(60),
            ..policy(3, 500, 30_000, 0.0)
        };
        let result = retry_classified(
            budget,
            &CancellationToken::new(),
            |err: &TestError| match err {
                TestError::Transient(_) => Retryable::ForAttempts,
                _ => Retryable::Never,
            },
            trace.on_retry(),
            flaky(&trace, u32::MAX),
        )
        .await;
        assert_eq!(result, Err(TestError::Transient(3)));
        assert_eq!(trace.gaps_ms(), vec![500, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_within_a_budget_either() {
        let trace = Trace::default();
        let attempts = trace.clone();
        let result: Result<(), _> = retry(
            RetryPolicy::control_commands(Duration::from_secs(60)),
            &CancellationToken::new(),
            transient,
            trace.on_retry(),
            move |attempt| {
                attempts.attempt(attempt);
                std::future::ready(Err(TestError::Permanent(attempt)))
            },
        )
        .await;
        assert_eq!(result, Err(TestError::Permanent(1)));
        assert_eq!(trace.attempt_numbers(), vec![1]);
    }

    #[test]
    fn back_off_doubles_from_the_initial_delay_up_to_the_cap() {
        let p = RetryPolicy::partition_loads(10, Duration::ZERO);
        let ms: Vec<u128> = (1..=9).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(
            ms,
            vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(30));
    }
}
