//! The object store: an opendal [`Operator`] built from `[source]`, with a timeout on every
//! operation and retries (exponential backoff with jitter) of transient failures only.

use std::time::Duration;

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::Operator;

use crate::config::SourceConfig;
use crate::error::SourceError;

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
                .with_jitter(),
        ))
}
