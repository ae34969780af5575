//! The control client: the few commands of the ledger, the leases, `INFO` and the version check,
//! through the `redis` crate's multiplexed connection.
//!
//! The connection is opened by the [`Connector`] like every other (same TCP, TLS and handshake,
//! same errors), checked with `PING` through the bounded reply reader of [`super::reply`], and
//! only then handed to the `redis` crate. So a server that does not speak the Redis protocol is
//! refused with a clear error before the crate's reader, which buffers without bound, sees it.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, RedisConnectionInfo};

use crate::error::RedisError;

use super::connection::{ConnectStep, Connector};

/// Oldest Redis major version the writes work with (they rely on `PEXPIRETIME`, new in 7.0).
pub const MIN_REDIS_MAJOR: u32 = 7;

impl Connector {
    /// Opens the control connection, checked with `PING`.
    pub async fn control(&self) -> Result<MultiplexedConnection, RedisError> {
        // ring as the process-wide rustls provider, installed here as it always was (the redis
        // crate's TLS needed it): rustls users that consult it (the object store's HTTP client,
        // when built after this) keep the provider they had. An error only means one is set.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let stream = self.open_pinged().await?.into_stream();
        // Already authenticated and on its database: the crate only announces itself (`CLIENT
        // SETINFO`) and selects the database again.
        let info = RedisConnectionInfo::default().set_db(self.config().db);
        let timeout = self.config().timeout;
        let seconds = timeout.as_secs();
        let handover =
            MultiplexedConnection::new_with_config(&info, stream, AsyncConnectionConfig::default());
        let (connection, driver) = tokio::time::timeout(timeout, handover)
            .await
            .map_err(|_| {
                let detail = format!("timed out after {seconds}s");
                self.connect_error(ConnectStep::Handshake, detail, true)
            })?
            .map_err(|err| {
                let transient = err.is_io_error() || err.is_timeout();
                self.connect_error(ConnectStep::Handshake, err, transient)
            })?;
        tokio::spawn(driver);
        Ok(connection)
    }
}

/// `INFO <section>` parsed into its `name:value` lines.
pub async fn info(
    connection: &MultiplexedConnection,
    section: &str,
) -> Result<BTreeMap<String, String>, RedisError> {
    let mut connection = connection.clone();
    let text: String = ::redis::cmd("INFO")
        .arg(section)
        .query_async(&mut connection)
        .await?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect())
}

/// Fails unless the server is Redis 7.0 or newer; returns its version.
pub async fn check_version(connection: &MultiplexedConnection) -> Result<String, RedisError> {
    let info = info(connection, "server").await?;
    let version = info.get("redis_version").cloned().unwrap_or_default();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < MIN_REDIS_MAJOR {
        return Err(RedisError::Connect {
            addr: "redis".into(),
            message: format!(
                "redis {version:?} is too old: coldsync needs 7.0 or newer (PEXPIRETIME)"
            ),
            transient: false,
        });
    }
    Ok(version)
}

/// The control client (W-B's minimal version of the shared contract, until W-A's, with
/// reconnection and retries, lands: the lead keeps W-A's at merge). Every call is bounded by
/// `[redis] timeout_secs`.
#[derive(Clone)]
pub struct ControlClient {
    connection: MultiplexedConnection,
    timeout: Duration,
}

impl ControlClient {
    /// A client over an open control connection, each call bounded by `timeout`.
    pub fn new(connection: MultiplexedConnection, timeout: Duration) -> ControlClient {
        ControlClient {
            connection,
            timeout,
        }
    }

    /// The connection itself, for the ledger's own commands.
    pub fn connection(&self) -> &MultiplexedConnection {
        &self.connection
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, ::redis::RedisError>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisError::Timeout {
                seconds: self.timeout.as_secs(),
            }),
        }
    }

    /// Once, bounded by `[redis] timeout_secs`.
    pub async fn query<T: ::redis::FromRedisValue>(
        &self,
        cmd: &::redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut connection = self.connection.clone();
        self.bounded(cmd.query_async(&mut connection)).await
    }

    /// An idempotent command (minimal version: once, like [`ControlClient::query`]).
    pub async fn query_idempotent<T: ::redis::FromRedisValue>(
        &self,
        cmd: &::redis::Cmd,
    ) -> Result<T, RedisError> {
        self.query(cmd).await
    }

    /// A Lua script (EVALSHA, loading it on NOSCRIPT), once.
    pub async fn eval<T: ::redis::FromRedisValue>(
        &self,
        script: &::redis::Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, RedisError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let mut connection = self.connection.clone();
        self.bounded(invocation.invoke_async(&mut connection)).await
    }
}
