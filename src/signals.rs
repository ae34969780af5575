//! Shutdown signals: SIGTERM (what Kubernetes sends) and Ctrl-C cancel the run's token, so the
//! partition in progress is abandoned unrecorded and the process exits fast.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// The log target of these events: the binary's, where they were first logged.
const LOG_TARGET: &str = "coldsync";

/// Cancels `shutdown` when SIGTERM or Ctrl-C arrives (`shutdown_requested`).
pub async fn watch_signals(shutdown: CancellationToken) {
    let sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map(
        |mut term| async move {
            term.recv().await;
        },
    );
    wait_for_shutdown_signal(sigterm, tokio::signal::ctrl_c()).await;
    tracing::warn!(
        target: LOG_TARGET,
        event = "shutdown_requested",
        "abandoning the partition in progress; it is not recorded and the next run reloads it"
    );
    shutdown.cancel();
}

/// Returns when SIGTERM or Ctrl-C (SIGINT) arrives. A handler that cannot be installed is logged
/// (`signal_handler_failed`) and the other signal is still watched; with neither, this never
/// returns (no signal can stop the process gracefully, but nothing stops it by mistake either).
pub async fn wait_for_shutdown_signal(
    sigterm: std::io::Result<impl Future<Output = ()>>,
    ctrl_c: impl Future<Output = std::io::Result<()>>,
) {
    let sigterm = async {
        match sigterm {
            Ok(term) => term.await,
            Err(err) => {
                signal_handler_failed("SIGTERM", &err);
                std::future::pending().await
            }
        }
    };
    let ctrl_c = async {
        if let Err(err) = ctrl_c.await {
            signal_handler_failed("SIGINT", &err);
            std::future::pending::<()>().await
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = sigterm => {},
    }
}

fn signal_handler_failed(signal: &str, err: &std::io::Error) {
    tracing::warn!(
        target: LOG_TARGET,
        event = "signal_handler_failed",
        signal,
        error = %err,
        "cannot watch a shutdown signal: only the other one stops the process gracefully"
    );
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;

    use crate::logging::CapturedLog;

    use futures::FutureExt;
    use tokio::sync::oneshot;

    use super::*;

    /// A signal future that completes when the sender is used.
    fn signal() -> (oneshot::Sender<()>, impl Future<Output = ()>) {
        let (tx, rx) = oneshot::channel::<()>();
        (tx, rx.map(|_| ()))
    }

    fn failed_handler() -> std::io::Error {
        std::io::Error::other("no signal handler for you")
    }

    #[tokio::test]
    async fn ctrl_c_is_still_watched_when_the_sigterm_handler_cannot_be_installed() {
        let log = CapturedLog::default();
        let _guard = log.install();
        let (ctrl_c, ctrl_c_future) = signal();
        let mut wait = pin!(wait_for_shutdown_signal(
            Err::<std::future::Pending<()>, _>(failed_handler()),
            ctrl_c_future.map(Ok)
        ));
        assert!(
            (&mut wait).now_or_never().is_none(),
            "no signal arrived yet: keep waiting"
        );
        let events = log.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["event"], "signal_handler_failed");
        assert_eq!(events[0]["signal"], "SIGTERM");
        assert_eq!(events[0]["level"], "WARN");
        ctrl_c.send(()).unwrap();
        assert!(wait.now_or_never().is_some(), "Ctrl-C stops the wait");
    }

    #[tokio::test]
    async fn sigterm_is_still_watched_when_ctrl_c_cannot_be() {
        let log = CapturedLog::default();
        let _guard = log.install();
        let (sigterm, sigterm_future) = signal();
        let mut wait = pin!(wait_for_shutdown_signal(
            Ok(sigterm_future),
            std::future::ready(Err(failed_handler()))
        ));
        assert!((&mut wait).now_or_never().is_none());
        let events = log.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["event"], "signal_handler_failed");
        assert_eq!(events[0]["signal"], "SIGINT");
        sigterm.send(()).unwrap();
        assert!(wait.now_or_never().is_some(), "SIGTERM stops the wait");
    }

    #[tokio::test]
    async fn either_signal_ends_the_wait() {
        let (sigterm, sigterm_future) = signal();
        let (_ctrl_c, ctrl_c_future) = signal();
        let mut wait = pin!(wait_for_shutdown_signal(
            Ok(sigterm_future),
            ctrl_c_future.map(Ok)
        ));
        assert!((&mut wait).now_or_never().is_none());
        sigterm.send(()).unwrap();
        assert!(wait.now_or_never().is_some());

        let (_sigterm, sigterm_future) = signal();
        let (ctrl_c, ctrl_c_future) = signal();
        let mut wait = pin!(wait_for_shutdown_signal(
            Ok(sigterm_future),
            ctrl_c_future.map(Ok)
        ));
        assert!((&mut wait).now_or_never().is_none());
        ctrl_c.send(()).unwrap();
        assert!(wait.now_or_never().is_some());
    }
}
