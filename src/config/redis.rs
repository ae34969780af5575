//! `[redis]`: how to reach the cold KV and how hard to push it, validated into a
//! [`RedisConfig`] (URL split into its parts, password from the URL, a file or the environment).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawRedis;
use super::secret::{self, Secret};
use super::SentinelConfig;
use super::{invalid, positive};
use crate::error::ConfigError;
use crate::redis::capability::HashWriteOption;

/// Longest `reconnect_budget_secs`: a day. A Redis away longer than that is an outage to page
/// someone about, not a hiccup to wait out.
const MAX_RECONNECT_BUDGET_SECS: u64 = 86_400;

/// How to reach Redis and how hard to push it.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `rediss://`: TLS.
    pub tls: bool,
    /// Skip certificate verification (tests only).
    pub tls_insecure: bool,
    /// Extra CA certificate (PEM) for TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// Mutual TLS: the client certificate chain (PEM) and its private key (PEM), both or neither.
    pub tls_client_cert: Option<(PathBuf, PathBuf)>,
    /// `redis+sentinel://`: the sentinels that name the master (then `host`/`port` are the first
    /// sentinel's, and each connection asks the sentinels where the master is).
    pub sentinel: Option<SentinelConfig>,
    /// Database number.
    pub db: i64,
    /// ACL user name.
    pub username: Option<String>,
    /// Password (never logged).
    pub password: Option<Secret>,
    /// Commands per pipeline batch.
    pub batch_size: usize,
    /// Bulk-load connections.
    pub connections: usize,
    /// Pipeline batches in flight per connection.
    pub pipelines_per_connection: usize,
    /// Timeout for connecting and for one reply.
    pub timeout: Duration,
    /// Attempts of a partition load after a transient Redis failure (at least; see
    /// `reconnect_budget`).
    pub retry_attempts: usize,
    /// How long after a transient failure (a restart, a stall, a dropped connection) a partition
    /// load or an idempotent control command keeps being retried, reconnecting with back-off.
    /// Zero: only `retry_attempts` (partitions) and a single attempt (control commands).
    pub reconnect_budget: Duration,
    /// Global write-rate limit (keys per second), all tables together.
    pub max_keys_per_sec: Option<u64>,
    /// Adaptive mode: back off while Redis's PING round trip exceeds this.
    pub adaptive_latency: Option<Duration>,
    /// `hash_write`: how hash tables are written (`RESTORE` when permitted, or always `HSET`).
    pub hash_write: HashWriteOption,
    /// Redis Cluster: `None` for one server.
    pub cluster: Option<ClusterConfig>,
    /// `WAIT` for this many replicas after each batch (0: no `WAIT`).
    pub wait_replicas: usize,
    /// The `WAIT` timeout.
    pub wait_timeout: Duration,
}

/// `[redis] cluster = true`: the seed nodes the topology is discovered from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `(host, port)` of each seed: the URL's, then those of `urls`.
    pub seeds: Vec<(String, u16)>,
}

impl RedisConfig {
    /// The URL with the password masked, for log lines.
    pub fn masked_url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let auth = match (&self.username, &self.password) {
            (Some(u), Some(_)) => format!("{u}:****@"),
            (None, Some(_)) => ":****@".to_string(),
            (Some(u), None) => format!("{u}@"),
            (None, None) => String::new(),
        };
        if let Some(sentinel) = &self.sentinel {
            return format!("redis+sentinel://{auth}{}/{}", sentinel.describe(), self.db);
        }
        format!("{scheme}://{auth}{}:{}/{}", self.host, self.port, self.db)
    }

    /// Validates `[redis]`; the URL, user name and password may come from `env`.
    pub(super) fn build(
        raw: RawRedis,
        env: &HashMap<String, String>,
    ) -> Result<RedisConfig, ConfigError> {
        let url_text = match (&raw.url, &raw.url_env) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "redis.url",
                    "give either redis.url or redis.url_env, not both",
                ))
            }
            (Some(url), None) => url.clone(),
            (None, Some(var)) => secret::from_env("redis.url_env", var, env)?.clone(),
            (None, None) => {
                return Err(invalid(
                    "redis.url",
                    "missing: the Redis URL (redis:// or rediss://)",
                ))
            }
        };
        let (url_text, sentinel) = super::sentinel::split_url(url_text)?;
        let url = url::Url::parse(&url_text)
            .map_err(|err| invalid("redis.url", format!("not a URL: {err}")))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(invalid(
                    "redis.url",
                    format!("scheme {other:?} is not redis://, rediss:// or redis+sentinel://"),
                ))
            }
        };
        let host = url
            .host_str()
            .ok_or_else(|| invalid("redis.url", "has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port().unwrap_or(6379);
        let url_db =
            match url.path().trim_matches('/') {
                "" => None,
                db => Some(db.parse::<i64>().map_err(|_| {
                    invalid("redis.url", format!("database {db:?} is not a number"))
                })?),
            };
        let db = raw.db.or(url_db).unwrap_or(0);
        if db < 0 {
            return Err(invalid("redis.db", "must not be negative"));
        }
        let url_user = (!url.username().is_empty()).then(|| url.username().to_string());
        let username = url_user.or_else(|| env.get(&raw.username_env).cloned());
        let password = match url.password() {
            Some(p) => Some(Secret::new(p)),
            None => match &raw.password_file {
                Some(path) => Some(secret::from_file("redis.password_file", path)?),
                None => env.get(&raw.password_env).map(Secret::new),
            },
        };
        for (option, value) in [
            ("redis.batch_size", raw.batch_size),
            ("redis.connections", raw.connections),
            (
                "redis.pipelines_per_connection",
                raw.pipelines_per_connection,
            ),
            ("redis.timeout_secs", raw.timeout_secs as usize),
            ("redis.retry_attempts", raw.retry_attempts),
        ] {
            if value == 0 {
                return Err(invalid(option, "must be at least 1"));
            }
        }
        if raw.batch_size > 100_000 {
            return Err(invalid("redis.batch_size", "must be at most 100000"));
        }
        if raw.reconnect_budget_secs > MAX_RECONNECT_BUDGET_SECS {
            return Err(invalid(
                "redis.reconnect_budget_secs",
                format!("must be at most {MAX_RECONNECT_BUDGET_SECS} (one day)"),
            ));
        }
        let tls_client_cert = tls_client_cert(&raw, tls)?;
        let cluster = cluster_config(&raw, &host, port, tls, db)?;
        let wait_timeout = super::tables::positive_duration(
            "redis.wait_timeout",
            raw.wait_timeout.as_deref(),
            "2s",
        )?;
        Ok(RedisConfig {
            host,
            port,
            tls,
            tls_insecure: raw.tls_insecure,
            tls_ca_file: raw.tls_ca_file,
            tls_client_cert,
            sentinel,
            db,
            username,
            password,
            batch_size: raw.batch_size,
            connections: raw.connections,
            pipelines_per_connection: raw.pipelines_per_connection,
            timeout: Duration::from_secs(raw.timeout_secs),
            retry_attempts: raw.retry_attempts,
            reconnect_budget: Duration::from_secs(raw.reconnect_budget_secs),
            max_keys_per_sec: positive("redis.max_keys_per_sec", raw.max_keys_per_sec)?,
            adaptive_latency: positive("redis.adaptive_latency_ms", raw.adaptive_latency_ms)?
                .map(Duration::from_millis),
            hash_write: hash_write(raw.hash_write.as_deref())?,
            cluster,
            wait_replicas: raw.wait_replicas,
            wait_timeout,
        })
    }
}

/// `tls_cert_file` and `tls_key_file`: both or neither, only with `rediss://`, both files there
/// (they are read once per run, when the run connects).
fn tls_client_cert(raw: &RawRedis, tls: bool) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    let (cert, key) = match (&raw.tls_cert_file, &raw.tls_key_file) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (Some(_), None) => {
            return Err(invalid(
                "redis.tls_key_file",
                "missing: tls_cert_file needs its key",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "redis.tls_cert_file",
                "missing: tls_key_file needs its certificate",
            ))
        }
    };
    if !tls {
        return Err(invalid(
            "redis.tls_cert_file",
            "a client certificate needs TLS: use a rediss:// URL",
        ));
    }
    for (option, path) in [("redis.tls_cert_file", &cert), ("redis.tls_key_file", &key)] {
        if !path.is_file() {
            return Err(invalid(
                option,
                format!("{} is not a readable file", path.display()),
            ));
        }
    }
    Ok(Some((cert, key)))
}

/// `redis.hash_write`: `"auto"` (the default) or `"hset"`.
fn hash_write(value: Option<&str>) -> Result<HashWriteOption, ConfigError> {
    match value {
        None | Some("auto") => Ok(HashWriteOption::Auto),
        Some("hset") => Ok(HashWriteOption::Hset),
        Some(other) => Err(invalid(
            "redis.hash_write",
            format!("{other:?} is not \"auto\" or \"hset\""),
        )),
    }
}

/// `cluster` and `urls`: the seeds (the URL's host first), each `redis://host:port` or
/// `rediss://host:port` like `url`; a cluster has only database 0.
fn cluster_config(
    raw: &RawRedis,
    host: &str,
    port: u16,
    tls: bool,
    db: i64,
) -> Result<Option<ClusterConfig>, ConfigError> {
    if !raw.cluster {
        if !raw.urls.is_empty() {
            return Err(invalid(
                "redis.urls",
                "seed nodes are only for a cluster: set redis.cluster = true",
            ));
        }
        return Ok(None);
    }
    if db != 0 {
        return Err(invalid(
            "redis.db",
            format!("a Redis Cluster has only database 0, not {db}"),
        ));
    }
    let mut seeds = vec![(host.to_string(), port)];
    for text in &raw.urls {
        let url = url::Url::parse(text)
            .map_err(|err| invalid("redis.urls", format!("{text:?} is not a URL: {err}")))?;
        let scheme = if tls { "rediss" } else { "redis" };
        if url.scheme() != scheme {
            return Err(invalid(
                "redis.urls",
                format!("{text:?}: every seed uses the scheme of redis.url ({scheme}://)"),
            ));
        }
        let seed_host = url
            .host_str()
            .ok_or_else(|| invalid("redis.urls", format!("{text:?} has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let seed = (seed_host, url.port().unwrap_or(6379));
        if !seeds.contains(&seed) {
            seeds.push(seed);
        }
    }
    Ok(Some(ClusterConfig { seeds }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use crate::config::Config;

    fn parse(redis_options: &str) -> Result<Config, crate::error::ConfigError> {
        let text = format!(
            "[source]\nscheme = \"fs\"\nroot = \"/tmp\"\n\n[redis]\nurl = \"redis://h:1/0\"\n\
             {redis_options}\n\n[defaults]\nretention_days = 3\n\n[[tables]]\nname = \"t\"\n\
             path = \"t\"\nkey = \"k:{{id}}\"\n"
        );
        Config::parse(&text, &HashMap::new())
    }

    #[test]
    fn reconnect_budget_defaults_to_a_minute_and_is_bounded() {
        let config = parse("").unwrap();
        assert_eq!(config.redis.reconnect_budget, Duration::from_secs(60));
        let config = parse("reconnect_budget_secs = 0").unwrap();
        assert_eq!(config.redis.reconnect_budget, Duration::ZERO);
        let err = parse("reconnect_budget_secs = 100000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis.reconnect_budget_secs"), "{err}");
        assert!(err.contains("at most 86400"), "{err}");
    }

    #[test]
    fn a_client_certificate_needs_its_key_tls_and_its_files() {
        let err = parse("tls_cert_file = \"/etc/hostname\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis.tls_key_file"), "{err}");
        let err = parse("tls_key_file = \"/etc/hostname\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis.tls_cert_file"), "{err}");
        let both = "tls_cert_file = \"/etc/hostname\"\ntls_key_file = \"/etc/hostname\"";
        let err = parse(both).unwrap_err().to_string();
        assert!(
            err.contains("redis.tls_cert_file") && err.contains("rediss://"),
            "{err}"
        );
    }

    #[test]
    fn hash_write_is_auto_or_hset() {
        use crate::redis::capability::HashWriteOption;
        assert_eq!(parse("").unwrap().redis.hash_write, HashWriteOption::Auto);
        let config = parse("hash_write = \"hset\"").unwrap();
        assert_eq!(config.redis.hash_write, HashWriteOption::Hset);
        let err = parse("hash_write = \"restore\"").unwrap_err().to_string();
        assert!(err.contains("redis.hash_write"), "{err}");
        assert!(err.contains("\"restore\" is not"), "{err}");
    }
}
