//! The object store: an opendal [`Operator`] built from `[source]`, with a timeout on every
//! operation and retries (exponential backoff with jitter) of transient failures only, each retry
//! logged as a `store_retry` event; and the one classification of store errors that the rest of
//! coldsync uses ([`is_transient`], [`http_status`]).
//!
//! opendal's `RetryLayer` marks every error it returns `persistent` once its own retries are
//! spent (and also errors it never retried), so `opendal::Error::is_temporary` says nothing about
//! whether a later attempt (coldsync's partition-level retry) can help: the kind of the error and
//! the HTTP status of the store's response do.

use std::time::Duration;

use opendal::layers::{RetryEvent, RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};

use crate::config::SourceConfig;
use crate::error::SourceError;

/// The `target` of the store's log events.
const LOG_TARGET: &str = "coldsync::source";

/// Builds the operator for `[source]`. Nothing is contacted yet.
pub fn build_operator(config: &SourceConfig) -> Result<Operator, SourceError> {
    opendal::init_default_registry();
    let options = config
        .options
        .iter()
        .map(|(name, value)| (name.clone(), value.expose().to_string()));
    let operator =
        Operator::via_iter(&config.scheme, options).map_err(|source| SourceError::Build {
            scheme: config.scheme.clone(),
            source,
        })?;
    // The timeout layer sits below the retry layer so that a timed-out attempt is retried.
    Ok(operator
        .layer(
            TimeoutLayer::new()
                .with_timeout(config.timeout)
                .with_io_timeout(config.timeout),
        )
        .layer(
            RetryLayer::new()
                .with_max_times(config.retry_attempts)
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(10))
                .with_jitter()
                .with_notify(log_store_retry),
        ))
}

/// Logs one retry of opendal's `RetryLayer` as the `store_retry` event (opendal's own default
/// would log a line without an event name).
fn log_store_retry(event: RetryEvent<'_>) {
    let error = event.err.to_string();
    tracing::warn!(
        target: LOG_TARGET,
        event = "store_retry",
        operation = event.op.into_static(),
        path = context_value(&error, "path").unwrap_or(""),
        attempt = event.attempt,
        retry_after_ms = event.retry_after.as_millis() as u64,
        status = http_status(event.err),
        error = %error,
        "object store operation failed, retrying"
    );
}

/// True when the same operation may succeed later: rate limiting, a 5xx (or 408, 429, 499)
/// response, a timeout, or a connection that could not be made or broke mid-response. Judged by
/// the error's kind and response, never by opendal's retry status (see the module doc).
pub fn is_transient(err: &opendal::Error) -> bool {
    match err.kind() {
        ErrorKind::RateLimited => true,
        ErrorKind::Unexpected => match http_status(err) {
            Some(status) => status >= 500 || matches!(status, 408 | 429 | 499),
            None => {
                let message = err.message();
                TRANSIENT_MESSAGES.contains(&message) || err.is_temporary()
            }
        },
        _ => false,
    }
}

/// opendal's messages (in 0.59) for the failures without a response that a retry may cure:
/// the request could not be sent (connection refused or reset), the response body broke off, an
/// attempt or one of its reads took longer than `[source] timeout_secs`.
const TRANSIENT_MESSAGES: &[&str] = &[
    "send http request",
    "read data from http response",
    "operation timeout reached",
    "io operation timeout reached",
    "loading credential to sign http request",
];

/// The HTTP status of the store's response that caused `err`, if it came from one.
///
/// opendal keeps the response head only in the error's context (`response: Parts { status: 503,
/// .. }`), which it exposes through `Display` alone.
pub fn http_status(err: &opendal::Error) -> Option<u16> {
    let text = err.to_string();
    let (_, rest) = text.split_once("response: Parts { status: ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The value of context entry `key` in the `Display` form of an opendal error
/// (`... context: { service: s3, path: a/b, range: 0- } => ...`).
fn context_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let (_, context) = text.split_once(", context: { ")?;
    let start = if let Some(rest) = context.strip_prefix(&format!("{key}: ")) {
        rest
    } else {
        let (_, rest) = context.split_once(&format!(", {key}: "))?;
        rest
    };
    let end = [", ", " }"]
        .iter()
        .filter_map(|sep| start.find(sep))
        .min()
        .unwrap_or(start.len());
    Some(&start[..end])
}

#[cfg(test)]
mod tests {
    use opendal::Error;

    use super::*;

    /// What opendal's S3 service builds for an error response, as the retry layer returns it.
    fn response_error(kind: ErrorKind, status: u16) -> Error {
        Error::new(kind, "S3Error { code: \"SlowDown\" }")
            .with_context("service_operation", "GetObject")
            .with_context("uri", "http://127.0.0.1:9/b/orders/dt=2026-11-20/part-0")
            .with_context(
                "response",
                format!(
                    "Parts {{ status: {status}, version: HTTP/1.1, headers: {{\"a\": \"b, c\"}} }}"
                ),
            )
            .with_context("service", "s3")
            .with_context("path", "orders/dt=2026-11-20/part-0")
            .set_persistent()
    }

    #[test]
    fn retry_spent_errors_are_judged_by_kind_and_status() {
        assert!(is_transient(&response_error(ErrorKind::RateLimited, 503)));
        for status in [500, 502, 503, 504, 408, 429, 499] {
            let err = response_error(ErrorKind::Unexpected, status);
            assert_eq!(http_status(&err), Some(status));
            assert!(is_transient(&err), "{status}");
        }
        for status in [400, 409, 416] {
            assert!(!is_transient(&response_error(
                ErrorKind::Unexpected,
                status
            )));
        }
        assert!(!is_transient(&response_error(ErrorKind::NotFound, 404)));
        assert!(!is_transient(&response_error(
            ErrorKind::PermissionDenied,
            403
        )));
        for message in TRANSIENT_MESSAGES {
            let err = Error::new(ErrorKind::Unexpected, *message).set_persistent();
            assert!(is_transient(&err), "{message}");
            assert_eq!(http_status(&err), None);
        }
        let io = Error::new(ErrorKind::Unexpected, "io error").set_temporary();
        assert!(
            is_transient(&io),
            "an error opendal itself still calls temporary"
        );
        let config = Error::new(ErrorKind::ConfigInvalid, "bucket is empty").set_persistent();
        assert!(!is_transient(&config));
        let other = Error::new(ErrorKind::Unexpected, "checksum mismatch").set_persistent();
        assert!(!is_transient(&other));
    }

    #[test]
    fn context_values_are_read_from_the_display_form() {
        let text = response_error(ErrorKind::Unexpected, 503).to_string();
        assert_eq!(
            context_value(&text, "path"),
            Some("orders/dt=2026-11-20/part-0")
        );
        assert_eq!(context_value(&text, "service"), Some("s3"));
        assert_eq!(context_value(&text, "service_operation"), Some("GetObject"));
        assert_eq!(context_value(&text, "range"), None);
        let only = Error::new(ErrorKind::Unexpected, "x").with_context("path", "a/b");
        assert_eq!(context_value(&only.to_string(), "path"), Some("a/b"));
        assert_eq!(context_value("no context here", "path"), None);
    }
}
