//! The daemon: runs every table on the `[daemon] schedule` (cron with seconds, in
//! `daemon.timezone`) with tokio-cron-scheduler. A tick that finds the previous run still going
//! is skipped (logged), never run concurrently. On shutdown the scheduler stops and the run in
//! progress is abandoned (its partition is not recorded as loaded; the next run reloads it). Every run
//! connects anew, so the daemon outlives Redis restarts.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::run::{Engine, RunOptions};

/// The daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// `[daemon] schedule` is not set.
    #[error("option daemon.schedule: missing: the daemon needs a cron schedule")]
    NoSchedule,
    /// The scheduler refused the schedule or failed.
    #[error("scheduler: {0}")]
    Scheduler(#[from] JobSchedulerError),
}

/// Runs until `shutdown` is cancelled. With `run_now`, one run starts immediately too.
pub async fn run_daemon(
    engine: Engine,
    run_now: bool,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let schedule = engine
        .config()
        .schedule
        .clone()
        .ok_or(DaemonError::NoSchedule)?;
    let timezone = engine.config().schedule_timezone;
    // Each run connects anew (a Redis restart between two nights must not break the daemon);
    // the engine given here proved at start-up that the config reaches Redis and the store.
    let config = Arc::new(engine.config().clone());
    drop(engine);
    let busy = Arc::new(Mutex::new(()));
    let scheduler = JobScheduler::new().await?;
    let job = {
        let (config, busy, shutdown) = (config.clone(), busy.clone(), shutdown.clone());
        Job::new_async_tz(schedule.as_str(), timezone, move |_id, _scheduler| {
            scheduled_run(config.clone(), busy.clone(), shutdown.clone())
        })?
    };
    scheduler.add(job).await?;
    let mut scheduler = scheduler;
    scheduler.start().await?;
    tracing::info!(event = "daemon_started", schedule = %schedule, timezone = %timezone, "daemon started");
    if run_now {
        tokio::spawn(scheduled_run(
            config.clone(),
            busy.clone(),
            shutdown.clone(),
        ));
    }
    shutdown.cancelled().await;
    tracing::info!(
        event = "daemon_stopping",
        "shutdown requested, waiting for the run in progress"
    );
    scheduler.shutdown().await?;
    let _idle = busy.lock().await;
    tracing::info!(event = "daemon_stopped", "daemon stopped");
    Ok(())
}

/// One scheduled run, skipped when the previous one is still going.
fn scheduled_run(
    config: Arc<Config>,
    busy: Arc<Mutex<()>>,
    shutdown: CancellationToken,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let Ok(_guard) = busy.try_lock() else {
            tracing::warn!(
                event = "run_skipped",
                reason = "previous run still in progress",
                "scheduled run skipped"
            );
            return;
        };
        let options = RunOptions::default();
        let engine = match Engine::connect(Config::clone(&config)).await {
            Ok(engine) => engine,
            Err(err) => {
                tracing::error!(event = "run_failed", error = %err, "scheduled run cannot reach redis or the store");
                return;
            }
        };
        if let Err(err) = engine.run(&options, &shutdown).await {
            tracing::error!(event = "run_failed", error = %err, "scheduled run could not start");
        }
    })
}
