//! The control client: the few commands of the ledger (and the lease, and `check`), `INFO` and
//! the version check, through the `redis` crate.
//!
//! - Every command is bounded by `[redis] timeout_secs` (connect, and the reply).
//! - A connection that broke or timed out is dropped and reopened on the next command, so one
//!   dropped connection never fails every later command.
//! - Idempotent commands ([`ControlClient::query_idempotent`]) are retried with back-off,
//!   reconnecting, within `[redis] reconnect_budget_secs` of the first failure.
//! - Each (re)connect reads the server's `run_id` (`INFO server`, new at every start of a Redis
//!   process). A changed one is a **restarted** server, which may have lost what this run
//!   recorded: it is logged (`redis_restarted`) and counted ([`ControlClient::restarts`]), and
//!   every answer says which server gave it ([`Answered`]), so that the run can re-plan.
//!
//! A connection is opened by the [`Connector`] like every other (same TCP, TLS and handshake,
//! same errors), checked with `PING` through the bounded reply reader of [`super::reply`], and
//! only then handed to the `redis` crate. So a server that does not speak the Redis protocol is
//! refused with a clear error before the crate's reader, which buffers without bound, sees it.
//! The crate's connection sits behind [`ControlConnection`]; its Redis Cluster variant is in
//! [`cluster`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Cmd, FromRedisValue, RedisConnectionInfo, Script};
use tokio_util::sync::CancellationToken;

use crate::error::{is_permission_error, RedisError};
use crate::run::retry::{retry, Cancelled, RetryPolicy};

use super::connection::{ConnectStep, Connector};

mod cluster;

use cluster::{open_cluster, ControlConnection};

/// Oldest Redis major version the writes work with (they rely on `PEXPIRETIME`, new in 7.0).
pub const MIN_REDIS_MAJOR: u32 = 7;

/// The log target of the control client's events.
const LOG_TARGET: &str = "coldsync::redis";

impl Connector {
    /// Opens a control connection, checked with `PING`, with `[redis] timeout_secs` as the
    /// crate's connect and reply timeouts.
    pub async fn control(&self) -> Result<MultiplexedConnection, RedisError> {
        // ring as the process-wide rustls provider, installed here as it always was (the redis
        // crate's TLS needed it): rustls users that consult it (the object store's HTTP client,
        // when built after this) keep the provider they had. An error only means one is set.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let stream = self.open_pinged().await?.into_stream();
        // Already authenticated and on its database: the crate only selects the database again
        // (it does not announce itself with `CLIENT SETINFO`, one permission less to grant).
        let info = RedisConnectionInfo::default()
            .set_db(self.config().db)
            .set_skip_set_lib_name();
        let timeout = self.config().timeout;
        let seconds = timeout.as_secs();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let handover = MultiplexedConnection::new_with_config(&info, stream, config);
        let (connection, driver) = tokio::time::timeout(timeout, handover)
            .await
            .map_err(|_| {
                let detail = format!("timed out after {seconds}s");
                self.connect_error(ConnectStep::Handshake, detail, true)
            })?
            .map_err(|err| {
                let transient = err.is_io_error()
                    || err.is_timeout()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal();
                self.connect_error(ConnectStep::Handshake, err, transient)
            })?;
        tokio::spawn(driver);
        Ok(connection)
    }
}

/// One Redis server process, named by its `run_id` (`INFO server`): a restarted Redis has a new
/// one, even on the same address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerRunId(Arc<str>);

impl ServerRunId {
    /// The `run_id` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerRunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reply, with the server process that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered<T> {
    /// The reply.
    pub value: T,
    /// The server that answered.
    pub server: ServerRunId,
}

/// The open connection and the server it talks to.
struct Current {
    connection: ControlConnection,
    /// Counts the connections opened: a failure drops the connection only if it is still the one
    /// that failed.
    generation: u64,
    server: ServerRunId,
}

/// A failed attempt of a retried command (the retry's token never fires).
enum Attempt {
    Failed(RedisError),
    Cancelled,
}

impl From<Cancelled> for Attempt {
    fn from(_: Cancelled) -> Attempt {
        Attempt::Cancelled
    }
}

/// The control client of a run: one connection at a time, reopened when it breaks, every command
/// bounded, idempotent ones retried within the reconnect budget. Shared (`Arc`) by the ledger and
/// whoever else needs control commands.
pub struct ControlClient {
    connector: Arc<Connector>,
    timeout: Duration,
    budget: Duration,
    current: tokio::sync::Mutex<Option<Current>>,
    generations: AtomicU64,
    /// The server of the newest connection: what a reconnect compares its server with.
    known_server: Mutex<ServerRunId>,
    restarts: AtomicU64,
    /// Sources of the scripts loaded on every new connection (so that none is missing on a
    /// restarted server, and a late `EVALSHA` finds its script).
    preloaded: Mutex<Vec<String>>,
    /// Once this fires (a shutdown), failed commands are no longer retried: each still gets its
    /// one attempt, so a lease release or a last ledger write can go out.
    stop_retrying: Mutex<CancellationToken>,
}

impl ControlClient {
    /// Opens the first connection (once: an unreachable Redis at start is fatal) and remembers
    /// the server's `run_id`.
    pub async fn connect(connector: Arc<Connector>) -> Result<ControlClient, RedisError> {
        let config = connector.config();
        let (timeout, budget) = (config.timeout, config.reconnect_budget);
        let (connection, server) = open(&connector, timeout, &[]).await?;
        Ok(ControlClient {
            connector,
            timeout,
            budget,
            current: tokio::sync::Mutex::new(Some(Current {
                connection,
                generation: 0,
                server: server.clone(),
            })),
            generations: AtomicU64::new(0),
            known_server: Mutex::new(server),
            restarts: AtomicU64::new(0),
            preloaded: Mutex::new(Vec::new()),
            stop_retrying: Mutex::new(CancellationToken::new()),
        })
    }

    /// Stops retrying failed commands once `shutdown` fires (each still gets one attempt).
    pub fn stop_retrying_on(&self, shutdown: &CancellationToken) {
        *self.stop_retrying.lock().unwrap() = shutdown.clone();
    }

    /// Loads the script whose source is `code` now and on every later connection, so that a
    /// restarted server has it too. Returns the script to [`ControlClient::eval`].
    pub async fn preload(&self, code: &str) -> Result<Script, RedisError> {
        self.preloaded.lock().unwrap().push(code.to_string());
        self.query_idempotent::<String>(::redis::cmd("SCRIPT").arg("LOAD").arg(code))
            .await?;
        Ok(Script::new(code))
    }

    /// Once, bounded by `[redis] timeout_secs`; a broken connection is reopened on the next call.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        Ok(self
            .attempt(|mut c| async move { cmd.query_async(&mut c).await })
            .await
            .map_err(|err| denied(err, &command_name(cmd), &command_key(cmd)))?
            .value)
    }

    /// An idempotent command: retried with back-off (reconnecting) within
    /// `[redis] reconnect_budget_secs` of the first failure.
    pub async fn query_idempotent<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        Ok(self.query_idempotent_answered(cmd).await?.value)
    }

    /// [`ControlClient::query_idempotent`], with the server that answered.
    pub async fn query_idempotent_answered<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
    ) -> Result<Answered<T>, RedisError> {
        let name = command_name(cmd);
        self.retried(&name, || {
            self.attempt(|mut c| async move { cmd.query_async(&mut c).await })
        })
        .await
        .map_err(|err| denied(err, &name, &command_key(cmd)))
    }

    /// A Lua script (EVALSHA, loading it on NOSCRIPT), once.
    pub async fn eval<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, RedisError> {
        Ok(self
            .attempt(|c| invoke(c, script, keys, args))
            .await
            .map_err(|err| denied(err, "EVALSHA", keys.first().map_or("", String::as_str)))?
            .value)
    }

    /// An idempotent Lua script (running it twice leaves what running it once does): retried as
    /// [`ControlClient::query_idempotent`] is, with the server that answered.
    pub async fn eval_idempotent<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Answered<T>, RedisError> {
        self.retried("EVALSHA", || {
            self.attempt(|c| invoke(c, script, keys, args))
        })
        .await
        .map_err(|err| denied(err, "EVALSHA", keys.first().map_or("", String::as_str)))
    }

    /// The server the client talks to now, checked with a `PING` (retried within the budget):
    /// a server that restarted since the last command is detected here.
    pub async fn server(&self) -> Result<ServerRunId, RedisError> {
        let ping = ::redis::cmd("PING");
        Ok(self.query_idempotent_answered::<()>(&ping).await?.server)
    }

    /// Restarts detected so far (reconnects that found a new `run_id`).
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// `INFO <section>` parsed into its `name:value` lines (retried within the budget); on a
    /// cluster, that of its first master.
    pub async fn info(&self, section: &str) -> Result<BTreeMap<String, String>, RedisError> {
        if self.connector.config().cluster.is_some() {
            let mut infos = self.master_infos(section).await?;
            return Ok(infos.swap_remove(0).1);
        }
        self.server_info(section).await
    }

    /// `INFO <section>` of the one server.
    async fn server_info(&self, section: &str) -> Result<BTreeMap<String, String>, RedisError> {
        let text: String = self
            .query_idempotent(::redis::cmd("INFO").arg(section))
            .await?;
        Ok(parse_info(&text))
    }

    /// `INFO <section>` of every master (`host:port`, parsed lines): the server itself when not
    /// a cluster; on a cluster each master of the topology read now, over its own connection.
    pub async fn master_infos(
        &self,
        section: &str,
    ) -> Result<Vec<(String, BTreeMap<String, String>)>, RedisError> {
        let seeds = super::cluster::seeds(self.connector.config());
        if seeds.is_empty() {
            let info = self.server_info(section).await?;
            return Ok(vec![(self.connector.masked_addr().to_string(), info)]);
        }
        let topology = super::cluster::discover(&self.connector, &seeds).await?;
        let mut infos = Vec::with_capacity(topology.masters.len());
        for master in &topology.masters {
            let mut connection = self.connector.for_node(master).control().await?;
            let mut info = ::redis::cmd("INFO");
            let query = info.arg(section).query_async(&mut connection);
            let text: String =
                tokio::time::timeout(self.timeout, query)
                    .await
                    .map_err(|_| RedisError::Timeout {
                        seconds: self.timeout.as_secs(),
                    })??;
            infos.push((master.to_string(), parse_info(&text)));
        }
        Ok(infos)
    }

    /// Fails unless the server is Redis 7.0 or newer; returns its version.
    pub async fn check_version(&self) -> Result<String, RedisError> {
        let info = self.info("server").await?;
        let version = info.get("redis_version").cloned().unwrap_or_default();
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < MIN_REDIS_MAJOR {
            return Err(RedisError::Connect {
                addr: self.connector.masked_addr().to_string(),
                message: format!(
                    "redis {version:?} is too old: coldsync needs 7.0 or newer (PEXPIRETIME)"
                ),
                transient: false,
            });
        }
        Ok(version)
    }

    /// Runs `attempt` until it succeeds or fails permanently, retrying transient failures within
    /// the reconnect budget; logs `control_retry` before each back-off.
    async fn retried<T, F, Fut>(&self, command: &str, mut attempt: F) -> Result<T, RedisError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        // The retry's own token would also refuse a first attempt: shutdown only ends retries.
        let never = CancellationToken::new();
        let shutdown = self.stop_retrying.lock().unwrap().clone();
        let result = retry(
            RetryPolicy::control_commands(self.budget),
            &never,
            |err: &Attempt| {
                !shutdown.is_cancelled()
                    && matches!(err, Attempt::Failed(err) if err.is_transient())
            },
            |err, attempt, delay| {
                if let Attempt::Failed(err) = err {
                    tracing::warn!(
                        target: LOG_TARGET,
                        event = "control_retry",
                        command,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        error = %err,
                        "redis control command failed, retrying"
                    );
                }
            },
            |_| {
                let attempted = attempt();
                async move { attempted.await.map_err(Attempt::Failed) }
            },
        )
        .await;
        result.map_err(|err| match err {
            Attempt::Failed(err) => err,
            Attempt::Cancelled => unreachable!("the control client's retry token never fires"),
        })
    }

    /// One attempt of `op` on the current connection (opened first if there is none), bounded by
    /// the timeout. A transient failure drops the connection: the next attempt reopens it.
    async fn attempt<T, F, Fut>(&self, op: F) -> Result<Answered<T>, RedisError>
    where
        F: FnOnce(ControlConnection) -> Fut,
        Fut: Future<Output = ::redis::RedisResult<T>>,
    {
        let (connection, generation, server) = self.connection().await?;
        let result = match tokio::time::timeout(self.timeout, op(connection)).await {
            Ok(Ok(value)) => return Ok(Answered { value, server }),
            Ok(Err(err)) => RedisError::Client(err),
            Err(_) => RedisError::Timeout {
                seconds: self.timeout.as_secs(),
            },
        };
        if result.is_transient() {
            let mut current = self.current.lock().await;
            if current.as_ref().is_some_and(|c| c.generation == generation) {
                *current = None;
            }
        }
        Err(result)
    }

    /// The current connection, opening one (and comparing its server with the known one) if the
    /// last one was dropped. Concurrent callers wait for one reconnect.
    async fn connection(&self) -> Result<(ControlConnection, u64, ServerRunId), RedisError> {
        let mut current = self.current.lock().await;
        if let Some(open) = current.as_ref() {
            return Ok((
                open.connection.clone(),
                open.generation,
                open.server.clone(),
            ));
        }
        let scripts = self.preloaded.lock().unwrap().clone();
        let (connection, server) = open(&self.connector, self.timeout, &scripts).await?;
        let generation = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        let old = std::mem::replace(&mut *self.known_server.lock().unwrap(), server.clone());
        if old != server {
            self.restarts.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(
                target: LOG_TARGET,
                event = "redis_restarted",
                redis = %self.connector.masked_addr(),
                old_run_id = %old,
                new_run_id = %server,
                "redis restarted: what this run recorded before may be lost, the table is re-planned"
            );
        } else {
            tracing::info!(
                target: LOG_TARGET,
                event = "control_reconnected",
                redis = %self.connector.masked_addr(),
                "redis control connection reopened"
            );
        }
        *current = Some(Current {
            connection: connection.clone(),
            generation,
            server: server.clone(),
        });
        Ok((connection, generation, server))
    }
}

/// Opens a control connection, reads its server's `run_id` and loads `scripts` (sources), each
/// step bounded by `timeout`.
async fn open(
    connector: &Connector,
    timeout: Duration,
    scripts: &[String],
) -> Result<(ControlConnection, ServerRunId), RedisError> {
    if connector.config().cluster.is_some() {
        return open_cluster(connector, timeout, scripts).await;
    }
    let mut connection = ControlConnection::Single(connector.control().await?);
    let bounded = |seconds| RedisError::Timeout { seconds };
    let text: String = tokio::time::timeout(
        timeout,
        ::redis::cmd("INFO")
            .arg("server")
            .query_async(&mut connection),
    )
    .await
    .map_err(|_| bounded(timeout.as_secs()))??;
    let run_id = parse_info(&text).remove("run_id").ok_or_else(|| {
        RedisError::Protocol("INFO server has no run_id: not a Redis server?".into())
    })?;
    for script in scripts {
        let mut load = ::redis::cmd("SCRIPT");
        load.arg("LOAD").arg(script);
        tokio::time::timeout(timeout, load.query_async::<String>(&mut connection))
            .await
            .map_err(|_| bounded(timeout.as_secs()))??;
    }
    Ok((connection, ServerRunId(run_id.into())))
}

/// Invokes `script` with `keys` and `args` (EVALSHA, loading it on NOSCRIPT).
async fn invoke<T: FromRedisValue>(
    mut connection: ControlConnection,
    script: &Script,
    keys: &[String],
    args: &[String],
) -> ::redis::RedisResult<T> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(key);
    }
    for arg in args {
        invocation.arg(arg);
    }
    invocation.invoke_async(&mut connection).await
}

/// `INFO` text parsed into its `name:value` lines.
fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// An ACL refusal of `command` on `key`, named as such ([`RedisError::NoPermission`]).
fn denied(err: RedisError, command: &str, key: &str) -> RedisError {
    match err {
        RedisError::Client(inner) if is_permission_error(&inner.to_string()) => {
            RedisError::NoPermission {
                command: command.to_string(),
                key: key.to_string(),
                message: inner.to_string(),
            }
        }
        other => other,
    }
}

/// The key of a control command (its second word), empty for the commands without one.
fn command_key(cmd: &Cmd) -> String {
    let keyless = ["PING", "INFO", "SELECT", "SCRIPT", "TIME", "ACL"];
    if keyless.contains(&command_name(cmd).as_str()) {
        return String::new();
    }
    match cmd.args_iter().nth(1) {
        Some(::redis::Arg::Simple(key)) => String::from_utf8_lossy(key).into_owned(),
        _ => String::new(),
    }
}

/// The command's name, for log lines (never its arguments, which may be large or secret).
fn command_name(cmd: &Cmd) -> String {
    match cmd.args_iter().next() {
        Some(::redis::Arg::Simple(name)) => String::from_utf8_lossy(name).to_uppercase(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_are_parsed_and_the_run_id_found() {
        let info = parse_info("# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\n\r\n");
        assert_eq!(info["redis_version"], "7.0.15");
        assert_eq!(info["run_id"], "abc123");
    }

    #[test]
    fn commands_are_named_without_their_arguments() {
        assert_eq!(command_name(::redis::cmd("hgetall").arg("k")), "HGETALL");
    }
}
