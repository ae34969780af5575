//! How hash tables are written on this server, found once per run: by `RESTORE` (the payload
//! of [`super::dump`]) when the user may run it, within the listpack limits the server reports,
//! else the `HSET` way.
//!
//! - `RESTORE` is in the `@dangerous` ACL category: a user without `+restore` gets `NOPERM`. The
//!   probe sends `RESTORE <probe key> 0 ""`: an empty payload that no server accepts, so it never
//!   writes anything; the answer says whether the command was allowed (`ERR DUMP payload ...`)
//!   or refused (`NOPERM`, or an unknown command where it was renamed away). Refused: the hash
//!   writes go the `HSET` way, logged once as `restore_not_permitted`.
//! - The limits come from `CONFIG GET hash-max-listpack-entries` and `hash-max-listpack-value`;
//!   when `CONFIG` is not allowed (or not there, on managed Redis), Redis's defaults (512, 64)
//!   are taken, and the event `hash_write_method` says so.

use ::redis::Value;

use crate::error::RedisError;

use super::control::ControlClient;
use super::dump::HashListpackLimits;

/// The log target of these events.
const LOG_TARGET: &str = "coldsync::redis";

/// The `[redis] hash_write` option: how hash tables are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashWriteOption {
    /// `RESTORE` when the user may run it, else `HSET` (with one warning).
    #[default]
    Auto,
    /// Always `MULTI`/`DEL`/`HSET`/`PEXPIREAT`/`EXEC`; `RESTORE` is never sent.
    Hset,
}

/// Where the listpack limits came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitsSource {
    /// `CONFIG GET`.
    Config,
    /// Redis's defaults: `CONFIG GET` was refused.
    Defaults,
}

impl LimitsSource {
    fn as_str(self) -> &'static str {
        match self {
            LimitsSource::Config => "config",
            LimitsSource::Defaults => "defaults",
        }
    }
}

/// How this run writes hash tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashWriteMethod {
    /// `RESTORE` for hashes within these limits, `HSET` for the others.
    Restore {
        /// The server's listpack limits.
        limits: HashListpackLimits,
        /// Where they came from.
        source: LimitsSource,
    },
    /// Always the `HSET` way, because `[redis] hash_write = "hset"`.
    HsetConfigured,
    /// Always the `HSET` way, because the server refused `RESTORE` (its error line).
    RestoreNotPermitted(String),
}

impl HashWriteMethod {
    /// The listpack limits when `RESTORE` is used.
    pub fn restore_limits(&self) -> Option<HashListpackLimits> {
        match self {
            HashWriteMethod::Restore { limits, .. } => Some(*limits),
            _ => None,
        }
    }

    /// One line for `check --connect`.
    pub fn describe(&self) -> String {
        match self {
            HashWriteMethod::Restore { limits, source } => format!(
                "RESTORE for hashes of at most {} fields of at most {} bytes (hash-max-listpack-* \
                 from {}), HSET for larger ones",
                limits.max_entries,
                limits.max_value_bytes,
                match source {
                    LimitsSource::Config => "CONFIG GET",
                    LimitsSource::Defaults => "Redis's defaults: CONFIG GET refused",
                }
            ),
            HashWriteMethod::HsetConfigured => "HSET (redis.hash_write = \"hset\")".to_string(),
            HashWriteMethod::RestoreNotPermitted(error) => format!(
                "HSET: RESTORE not permitted ({error}); grant the user +restore for faster hash loads"
            ),
        }
    }
}

/// Finds how hash tables are written (see the module doc) and logs it: `hash_write_method`,
/// and `restore_not_permitted` (a warning) when `RESTORE` was refused. `probe_key` is a key the
/// user may write (the ledger's prefix); nothing is ever written to it. `redis` names the server
/// in the events (masked).
pub async fn probe_hash_writes(
    control: &ControlClient,
    option: HashWriteOption,
    probe_key: &str,
    redis: &str,
) -> Result<HashWriteMethod, RedisError> {
    let method = match option {
        HashWriteOption::Hset => HashWriteMethod::HsetConfigured,
        HashWriteOption::Auto => match restore_refusal(control, probe_key).await? {
            Some(error) => {
                tracing::warn!(
                    target: LOG_TARGET,
                    event = "restore_not_permitted",
                    redis,
                    error = %error,
                    "RESTORE is not permitted: hash tables are written with MULTI/HSET (grant +restore for faster loads)"
                );
                HashWriteMethod::RestoreNotPermitted(error)
            }
            None => {
                let (limits, source) = listpack_limits(control).await?;
                HashWriteMethod::Restore { limits, source }
            }
        },
    };
    let (limits, source) = match &method {
        HashWriteMethod::Restore { limits, source } => (Some(*limits), Some(*source)),
        _ => (None, None),
    };
    tracing::info!(
        target: LOG_TARGET,
        event = "hash_write_method",
        redis,
        method = if limits.is_some() { "restore" } else { "hset" },
        max_listpack_entries = limits.map(|l| l.max_entries as u64),
        max_listpack_value = limits.map(|l| l.max_value_bytes as u64),
        limits_from = source.map(LimitsSource::as_str),
        "hash tables are written by {}",
        if limits.is_some() { "RESTORE" } else { "HSET" }
    );
    Ok(method)
}

/// `None` when the user may run `RESTORE`, else the server's error line.
async fn restore_refusal(
    control: &ControlClient,
    probe_key: &str,
) -> Result<Option<String>, RedisError> {
    let mut probe = ::redis::cmd("RESTORE");
    probe.arg(probe_key).arg(0).arg(&b""[..]);
    match control.query_idempotent::<Value>(&probe).await {
        // Allowed: the empty payload is refused after the ACL check passed.
        Err(RedisError::Client(err)) if err.to_string().contains("DUMP payload") => Ok(None),
        Err(RedisError::Client(err)) if err.code().is_some() => Ok(Some(server_line(&err))),
        Err(RedisError::NoPermission { message, .. }) => Ok(Some(message)),
        Err(err) => Err(err),
        Ok(reply) => Err(RedisError::Protocol(format!(
            "RESTORE of an empty payload replied {reply:?}, not an error"
        ))),
    }
}

/// The server's error line (`NOPERM this user has no permissions ...`).
fn server_line(err: &::redis::RedisError) -> String {
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => err.to_string(),
    }
}

/// The server's listpack limits, or Redis's defaults when `CONFIG GET` is refused.
async fn listpack_limits(
    control: &ControlClient,
) -> Result<(HashListpackLimits, LimitsSource), RedisError> {
    let mut get = ::redis::cmd("CONFIG");
    get.arg("GET")
        .arg("hash-max-listpack-entries")
        .arg("hash-max-listpack-value");
    let pairs = match control
        .query_idempotent::<std::collections::HashMap<String, String>>(&get)
        .await
    {
        Ok(pairs) => pairs,
        Err(RedisError::Client(err)) if err.code().is_some() => {
            return Ok((HashListpackLimits::default(), LimitsSource::Defaults))
        }
        Err(RedisError::NoPermission { .. }) => {
            return Ok((HashListpackLimits::default(), LimitsSource::Defaults))
        }
        Err(err) => return Err(err),
    };
    let value = |name: &str| pairs.get(name).map_or("", String::as_str);
    let limits = HashListpackLimits::from_config_values(
        value("hash-max-listpack-entries"),
        value("hash-max-listpack-value"),
    )
    .map_err(|err| RedisError::Protocol(err.to_string()))?;
    Ok((limits, LimitsSource::Config))
}
