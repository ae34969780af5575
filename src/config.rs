//! Configuration: the strict TOML file (`RawConfig`) and its validated, typed form (`Config`).
//!
//! Loading is two-staged: serde parses the file with `deny_unknown_fields` and defaults, then
//! [`RawConfig::build`] checks every option against the process environment handed in by the caller
//! (never read here, so tests do not touch the global environment) and produces a [`Config`] whose
//! types rule out invalid states. Every error names the option at fault.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;

use crate::encode::{DateEncoding, EncodeSpec, TimestampEncoding, ValueFormat};
use crate::error::ConfigError;
use crate::template::KeyTemplate;

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// The file as written: strict, with defaults, not yet validated.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    source: RawSource,
    redis: RawRedis,
    #[serde(default)]
    defaults: RawTableOptions,
    #[serde(default)]
    ledger: RawLedger,
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    tables: Vec<RawTable>,
}

/// `[source]`: the known keys, and every other key passed through to opendal (so this struct
/// cannot deny unknown fields; opendal rejects options it does not know).
#[derive(Debug, Deserialize)]
struct RawSource {
    scheme: String,
    #[serde(default = "default_source_retries")]
    retry_attempts: usize,
    #[serde(default = "default_source_timeout")]
    timeout_secs: u64,
    #[serde(default = "default_list_concurrency")]
    read_concurrency: usize,
    #[serde(flatten)]
    options: BTreeMap<String, toml::Value>,
}

fn default_source_retries() -> usize {
    4
}
fn default_source_timeout() -> u64 {
    60
}
fn default_list_concurrency() -> usize {
    8
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedis {
    url: Option<String>,
    url_env: Option<String>,
    db: Option<i64>,
    #[serde(default = "default_username_env")]
    username_env: String,
    #[serde(default = "default_password_env")]
    password_env: String,
    password_file: Option<PathBuf>,
    #[serde(default = "default_batch_size")]
    batch_size: usize,
    #[serde(default = "default_connections")]
    connections: usize,
    #[serde(default = "default_in_flight")]
    pipelines_per_connection: usize,
    #[serde(default = "default_redis_timeout")]
    timeout_secs: u64,
    #[serde(default = "default_redis_retries")]
    retry_attempts: usize,
    tls_ca_file: Option<PathBuf>,
    #[serde(default)]
    tls_insecure: bool,
    max_keys_per_sec: Option<u64>,
    adaptive_latency_ms: Option<u64>,
}

fn default_username_env() -> String {
    "COLDSYNC_REDIS_USERNAME".into()
}
fn default_password_env() -> String {
    "COLDSYNC_REDIS_PASSWORD".into()
}
fn default_batch_size() -> usize {
    1000
}
fn default_connections() -> usize {
    4
}
fn default_in_flight() -> usize {
    4
}
fn default_redis_timeout() -> u64 {
    30
}
fn default_redis_retries() -> usize {
    3
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    schedule: Option<String>,
    timezone: Option<String>,
}

/// Per-table options that may also be given once under `[defaults]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTableOptions {
    partition_column: Option<String>,
    partition_format: Option<String>,
    timezone: Option<String>,
    hot_days: Option<u32>,
    retention_days: Option<u32>,
    value_format: Option<String>,
    value_column: Option<String>,
    separator: Option<String>,
    null_string: Option<String>,
    timestamp_encoding: Option<TimestampEncoding>,
    date_encoding: Option<DateEncoding>,
    mode: Option<String>,
    completeness: Option<String>,
    min_age_minutes: Option<u64>,
    snapshot_grace_days: Option<u32>,
    delete_missing: Option<bool>,
    max_keys_per_sec: Option<u64>,
}

/// `[[tables]]`: the table's own keys; the rest must be [`RawTableOptions`] (checked strictly in
/// [`build_table`], since serde cannot deny unknown fields through `flatten`).
#[derive(Debug, Deserialize)]
struct RawTable {
    name: String,
    path: String,
    key: String,
    columns: Option<Vec<String>>,
    #[serde(flatten)]
    options: BTreeMap<String, toml::Value>,
}

/// How a table's partitions relate to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Each partition holds new or changed rows; the KV is their union, the newest partition wins.
    Incremental,
    /// Each partition is the whole table; only the newest complete cold partition is loaded.
    Snapshot,
}

/// When a partition counts as completely written by its producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    /// The partition's own `_SUCCESS` marker (or one in every leaf sub-partition).
    Marker,
    /// The table root's `_SUCCESS` is newer than every file of the partition (Spark `partitionBy`).
    TableMarker,
    /// Every partition is complete (optionally subject to `min_age_minutes`).
    None,
}

/// Where the cold data comes from: an opendal service and its options.
#[derive(Clone)]
pub struct SourceConfig {
    /// opendal scheme (`fs`, `s3`, `gcs`, `azblob`, `oss`, ...).
    pub scheme: String,
    /// Options passed to the opendal service, secrets already resolved.
    pub options: BTreeMap<String, OptionValue>,
    /// Attempts for transient object-store errors (opendal `RetryLayer`).
    pub retry_attempts: usize,
    /// Timeout of one object-store operation.
    pub timeout: Duration,
    /// Footers and files read at once.
    pub read_concurrency: usize,
}

/// An opendal option value: plain, or a secret that never reaches a log line.
#[derive(Clone, Debug)]
pub enum OptionValue {
    /// A value from the config file.
    Plain(String),
    /// A value read from the environment or a file.
    Secret(Secret),
}

impl OptionValue {
    /// The value to hand to opendal.
    pub fn expose(&self) -> &str {
        match self {
            OptionValue::Plain(v) => v,
            OptionValue::Secret(s) => s.expose(),
        }
    }
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("scheme", &self.scheme)
            .field("options", &self.options)
            .finish()
    }
}

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
    /// Attempts of a partition load after a transient Redis failure.
    pub retry_attempts: usize,
    /// Global write-rate limit (keys per second), all tables together.
    pub max_keys_per_sec: Option<u64>,
    /// Adaptive mode: back off while Redis's PING round trip exceeds this.
    pub adaptive_latency: Option<Duration>,
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
        format!("{scheme}://{auth}{}:{}/{}", self.host, self.port, self.db)
    }
}

/// One table to keep in the cold KV.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// Name used in logs, the ledger hash tag and `--table`.
    pub name: String,
    /// Table root inside the source, without leading or trailing `/`.
    pub path: String,
    /// Name of the date partition column (`dt`).
    pub partition_column: String,
    /// chrono format of the partition value (`%Y-%m-%d`, `%Y%m%d`).
    pub partition_format: String,
    /// Time zone of the business day that decides "today".
    pub timezone: Tz,
    /// Days kept in streaming state: cold means `date <= today - hot_days`.
    pub hot_days: u32,
    /// Partitions older than `today - retention_days` are ignored and their keys expire.
    pub retention_days: u32,
    /// Incremental or snapshot.
    pub mode: LoadMode,
    /// Completeness policy.
    pub completeness: Completeness,
    /// No file may have been modified within this long.
    pub min_age: Duration,
    /// Snapshot keys live until the next snapshot is due plus this many days.
    pub snapshot_grace_days: u32,
    /// Snapshot: delete keys of the previous snapshot absent from the new one.
    pub delete_missing: bool,
    /// Value columns given explicitly (`None`: all but key and partition columns).
    pub columns: Option<Vec<String>>,
    /// Key template.
    pub key: KeyTemplate,
    /// Value layout.
    pub format: ValueFormat,
    /// Write-rate limit of this table (keys per second).
    pub max_keys_per_sec: Option<u64>,
    /// Timestamp encoding.
    pub timestamp: TimestampEncoding,
    /// Date encoding.
    pub date: DateEncoding,
}

impl TableConfig {
    /// Parses a partition value into a date with this table's format.
    pub fn parse_partition_value(&self, value: &str) -> Option<NaiveDate> {
        let date = NaiveDate::parse_from_str(value, &self.partition_format).ok()?;
        // Reject values that parse loosely but are not in canonical form (e.g. `2026-1-5`).
        (date.format(&self.partition_format).to_string() == value).then_some(date)
    }

    /// Formats a date as this table's partition value.
    pub fn format_partition_value(&self, date: NaiveDate) -> String {
        date.format(&self.partition_format).to_string()
    }

    /// Builds the encoder spec once the value columns are known.
    pub fn encode_spec(&self, columns: Vec<String>) -> Arc<EncodeSpec> {
        Arc::new(EncodeSpec {
            key: self.key.clone(),
            format: self.format.clone(),
            columns,
            timestamp: self.timestamp,
            date: self.date,
        })
    }

    /// Columns used by the key template.
    pub fn key_columns(&self) -> Vec<String> {
        self.key.columns().into_iter().map(str::to_string).collect()
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Object store.
    pub source: SourceConfig,
    /// Redis.
    pub redis: RedisConfig,
    /// Prefix of ledger keys (`coldsync` -> `coldsync:{table}:...`).
    pub ledger_prefix: String,
    /// Cron expression of the daemon (6 fields, seconds first), if any.
    pub schedule: Option<String>,
    /// Time zone of the cron schedule.
    pub schedule_timezone: Tz,
    /// Tables, in file order.
    pub tables: Vec<TableConfig>,
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, env).map_err(|err| match err {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates config text.
    pub fn parse(text: &str, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: PathBuf::new(),
            message: err.to_string(),
        })?;
        raw.build(env)
    }

    /// The tables named in `names` (all when empty); an unknown name is an error.
    pub fn select_tables(&self, names: &[String]) -> Result<Vec<TableConfig>, ConfigError> {
        if names.is_empty() {
            return Ok(self.tables.clone());
        }
        names
            .iter()
            .map(|name| {
                self.tables
                    .iter()
                    .find(|t| &t.name == name)
                    .cloned()
                    .ok_or_else(|| {
                        invalid("--table", format!("no table named {name:?} in the config"))
                    })
            })
            .collect()
    }
}

fn invalid(option: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        option: option.into(),
        message: message.into(),
    }
}

/// Option names that hold credentials: they must come from the environment or a file.
fn is_secret_option(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "credential",
        "sas",
        "account_key",
    ]
    .iter()
    .any(|word| name.contains(word))
}

impl RawConfig {
    /// Validates every option and resolves secrets from `env`.
    pub fn build(self, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let source = build_source(self.source, env)?;
        let redis = build_redis(self.redis, env)?;
        let ledger_prefix = self.ledger.prefix.unwrap_or_else(|| "coldsync".to_string());
        if ledger_prefix.is_empty() || ledger_prefix.contains(['{', '}', ' ']) {
            return Err(invalid(
                "ledger.prefix",
                "must be non-empty, without braces or spaces",
            ));
        }
        let schedule_timezone = parse_tz(
            "daemon.timezone",
            self.daemon.timezone.as_deref().unwrap_or("UTC"),
        )?;
        if let Some(schedule) = &self.daemon.schedule {
            let fields = schedule.split_whitespace().count();
            if !(6..=7).contains(&fields) {
                return Err(invalid(
                    "daemon.schedule",
                    format!("{schedule:?} must be a cron expression with seconds first (6 or 7 fields), e.g. \"0 30 2 * * *\""),
                ));
            }
        }
        if self.tables.is_empty() {
            return Err(invalid("tables", "no [[tables]] configured"));
        }
        let mut seen = HashSet::new();
        let mut tables = Vec::with_capacity(self.tables.len());
        for (index, table) in self.tables.into_iter().enumerate() {
            let built = build_table(index, table, &self.defaults)?;
            if !seen.insert(built.name.clone()) {
                return Err(invalid(
                    format!("tables[{index}].name"),
                    format!("duplicate table name {:?}", built.name),
                ));
            }
            tables.push(built);
        }
        Ok(Config {
            source,
            redis,
            ledger_prefix,
            schedule: self.daemon.schedule,
            schedule_timezone,
            tables,
        })
    }
}

fn build_source(
    raw: RawSource,
    env: &HashMap<String, String>,
) -> Result<SourceConfig, ConfigError> {
    const SCHEMES: &[&str] = &["fs", "s3", "gcs", "azblob", "oss"];
    if !SCHEMES.contains(&raw.scheme.as_str()) {
        return Err(invalid(
            "source.scheme",
            format!(
                "{:?} is not a supported opendal service (supported: {})",
                raw.scheme,
                SCHEMES.join(", ")
            ),
        ));
    }
    if raw.retry_attempts == 0 {
        return Err(invalid("source.retry_attempts", "must be at least 1"));
    }
    if raw.timeout_secs == 0 {
        return Err(invalid("source.timeout_secs", "must be at least 1"));
    }
    if raw.read_concurrency == 0 {
        return Err(invalid("source.read_concurrency", "must be at least 1"));
    }
    let mut options = BTreeMap::new();
    for (name, value) in raw.options {
        let option = format!("source.{name}");
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => return Err(invalid(option, "must be a string, integer or boolean")),
        };
        if let Some(target) = name.strip_suffix("_env") {
            let value = env.get(&text).ok_or_else(|| {
                invalid(&option, format!("environment variable {text} is not set"))
            })?;
            options.insert(
                target.to_string(),
                OptionValue::Secret(Secret::new(value.clone())),
            );
        } else if let Some(target) = name.strip_suffix("_file") {
            let value = std::fs::read_to_string(&text)
                .map_err(|err| invalid(&option, format!("cannot read {text}: {err}")))?;
            options.insert(
                target.to_string(),
                OptionValue::Secret(Secret::new(value.trim_end().to_string())),
            );
        } else if is_secret_option(&name) {
            return Err(invalid(
                option,
                format!("credentials must not be written in the config file: use {name}_env = \"VAR\" or {name}_file = \"/path\""),
            ));
        } else {
            options.insert(name, OptionValue::Plain(text));
        }
    }
    if raw.scheme == "fs" && !options.contains_key("root") {
        return Err(invalid(
            "source.root",
            "the fs service needs a root directory",
        ));
    }
    if matches!(raw.scheme.as_str(), "s3" | "gcs" | "azblob" | "oss")
        && !options.contains_key("bucket")
        && !options.contains_key("container")
    {
        return Err(invalid(
            "source.bucket",
            format!("the {} service needs a bucket", raw.scheme),
        ));
    }
    Ok(SourceConfig {
        scheme: raw.scheme,
        options,
        retry_attempts: raw.retry_attempts,
        timeout: Duration::from_secs(raw.timeout_secs),
        read_concurrency: raw.read_concurrency,
    })
}

fn build_redis(raw: RawRedis, env: &HashMap<String, String>) -> Result<RedisConfig, ConfigError> {
    let url_text = match (&raw.url, &raw.url_env) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "redis.url",
                "give either redis.url or redis.url_env, not both",
            ))
        }
        (Some(url), None) => url.clone(),
        (None, Some(var)) => env.get(var).cloned().ok_or_else(|| {
            invalid(
                "redis.url_env",
                format!("environment variable {var} is not set"),
            )
        })?,
        (None, None) => {
            return Err(invalid(
                "redis.url",
                "missing: the Redis URL (redis:// or rediss://)",
            ))
        }
    };
    let url = url::Url::parse(&url_text)
        .map_err(|err| invalid("redis.url", format!("not a URL: {err}")))?;
    let tls = match url.scheme() {
        "redis" => false,
        "rediss" => true,
        other => {
            return Err(invalid(
                "redis.url",
                format!("scheme {other:?} is not redis:// or rediss://"),
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
    let url_db = match url.path().trim_matches('/') {
        "" => None,
        db => Some(
            db.parse::<i64>()
                .map_err(|_| invalid("redis.url", format!("database {db:?} is not a number")))?,
        ),
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
            Some(path) => Some(Secret::new(
                std::fs::read_to_string(path)
                    .map_err(|err| {
                        invalid(
                            "redis.password_file",
                            format!("cannot read {}: {err}", path.display()),
                        )
                    })?
                    .trim_end()
                    .to_string(),
            )),
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
    Ok(RedisConfig {
        host,
        port,
        tls,
        tls_insecure: raw.tls_insecure,
        tls_ca_file: raw.tls_ca_file,
        db,
        username,
        password,
        batch_size: raw.batch_size,
        connections: raw.connections,
        pipelines_per_connection: raw.pipelines_per_connection,
        timeout: Duration::from_secs(raw.timeout_secs),
        retry_attempts: raw.retry_attempts,
        max_keys_per_sec: positive("redis.max_keys_per_sec", raw.max_keys_per_sec)?,
        adaptive_latency: positive("redis.adaptive_latency_ms", raw.adaptive_latency_ms)?
            .map(Duration::from_millis),
    })
}

/// An optional count that must be positive when given.
fn positive(option: &str, value: Option<u64>) -> Result<Option<u64>, ConfigError> {
    match value {
        Some(0) => Err(invalid(
            option,
            "must be at least 1 (leave it out for no limit)",
        )),
        other => Ok(other),
    }
}

fn parse_tz(option: &str, name: &str) -> Result<Tz, ConfigError> {
    name.parse::<Tz>().map_err(|_| {
        invalid(
            option,
            format!("{name:?} is not an IANA time zone name (e.g. \"Asia/Shanghai\", \"UTC\")"),
        )
    })
}

fn build_table(
    index: usize,
    raw: RawTable,
    defaults: &RawTableOptions,
) -> Result<TableConfig, ConfigError> {
    let at = |field: &str| format!("tables[{index}].{field}");
    let o: RawTableOptions = toml::Value::Table(raw.options.clone().into_iter().collect())
        .try_into()
        .map_err(|err: toml::de::Error| {
            invalid(
                format!("tables[{index}] ({})", raw.name),
                err.message().to_string(),
            )
        })?;
    let o = &o;
    macro_rules! pick {
        ($field:ident) => {
            o.$field.clone().or_else(|| defaults.$field.clone())
        };
    }
    let name = raw.name.clone();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(invalid(
            at("name"),
            format!("{name:?} must be non-empty and use only letters, digits, '_', '-', '.'"),
        ));
    }
    let at = |field: &str| format!("tables[{index}] ({name}).{field}");
    let path = raw.path.trim_matches('/').to_string();
    if path.is_empty() || path.split('/').any(|part| part == ".." || part.is_empty()) {
        return Err(invalid(
            at("path"),
            format!("{:?} is not a table root path", raw.path),
        ));
    }
    let partition_column = pick!(partition_column).unwrap_or_else(|| "dt".to_string());
    if partition_column.is_empty() || partition_column.contains(['/', '=']) {
        return Err(invalid(
            at("partition_column"),
            format!("{partition_column:?} is not a column name"),
        ));
    }
    let partition_format = pick!(partition_format).unwrap_or_else(|| "%Y-%m-%d".to_string());
    let probe = NaiveDate::from_ymd_opt(2026, 11, 20).expect("valid date");
    let rendered = std::panic::catch_unwind(|| probe.format(&partition_format).to_string()).ok();
    let round_trips = rendered
        .as_deref()
        .and_then(|text| NaiveDate::parse_from_str(text, &partition_format).ok())
        == Some(probe);
    if !round_trips || rendered.as_deref().is_some_and(|t| t.contains('/')) {
        return Err(invalid(
            at("partition_format"),
            format!("{partition_format:?} is not a date format that names one day (e.g. \"%Y-%m-%d\", \"%Y%m%d\")"),
        ));
    }
    let timezone = parse_tz(
        &at("timezone"),
        &pick!(timezone).unwrap_or_else(|| "UTC".to_string()),
    )?;
    let hot_days = pick!(hot_days).unwrap_or(2);
    let retention_days = pick!(retention_days).ok_or_else(|| {
        invalid(
            at("retention_days"),
            "missing: set it on the table or under [defaults]",
        )
    })?;
    if retention_days < hot_days {
        return Err(invalid(
            at("retention_days"),
            format!("{retention_days} is smaller than hot_days ({hot_days}): no partition would ever be cold"),
        ));
    }
    if retention_days > 36_500 {
        return Err(invalid(at("retention_days"), "must be at most 36500"));
    }
    let mode = match pick!(mode).as_deref().unwrap_or("incremental") {
        "incremental" => LoadMode::Incremental,
        "snapshot" => LoadMode::Snapshot,
        other => {
            return Err(invalid(
                at("mode"),
                format!("{other:?} is not one of incremental, snapshot"),
            ))
        }
    };
    let completeness = match pick!(completeness).as_deref().unwrap_or("marker") {
        "marker" => Completeness::Marker,
        "table_marker" => Completeness::TableMarker,
        "none" => Completeness::None,
        other => {
            return Err(invalid(
                at("completeness"),
                format!("{other:?} is not one of marker, table_marker, none"),
            ))
        }
    };
    let delete_missing = pick!(delete_missing).unwrap_or(false);
    if delete_missing && mode != LoadMode::Snapshot {
        return Err(invalid(
            at("delete_missing"),
            "only applies to mode = \"snapshot\"",
        ));
    }
    let key = KeyTemplate::parse(&raw.key).map_err(|err| invalid(at("key"), err.to_string()))?;
    let key_columns: Vec<String> = key.columns().into_iter().map(str::to_string).collect();
    if key_columns.contains(&partition_column) {
        return Err(invalid(
            at("key"),
            format!("uses the partition column {partition_column:?}, which is not a column of the files"),
        ));
    }
    if let Some(columns) = &raw.columns {
        let mut seen = HashSet::new();
        for column in columns {
            if column.is_empty() || !seen.insert(column) {
                return Err(invalid(
                    at("columns"),
                    format!("{column:?} is empty or listed twice"),
                ));
            }
            if column == &partition_column {
                return Err(invalid(
                    at("columns"),
                    format!("{column:?} is the partition column, not a file column"),
                ));
            }
        }
        if columns.is_empty() {
            return Err(invalid(at("columns"), "must list at least one column"));
        }
    }
    let value_column = pick!(value_column);
    let format = match pick!(value_format).as_deref().unwrap_or("json") {
        "json" => ValueFormat::Json,
        "hash" => ValueFormat::Hash,
        "column" => {
            let column = value_column.clone().ok_or_else(|| {
                invalid(
                    at("value_column"),
                    "value_format = \"column\" needs value_column",
                )
            })?;
            if let Some(columns) = &raw.columns {
                if !columns.contains(&column) {
                    return Err(invalid(
                        at("value_column"),
                        format!("{column:?} is not in columns"),
                    ));
                }
            }
            ValueFormat::Column(column)
        }
        "delimited" => ValueFormat::Delimited {
            separator: pick!(separator).unwrap_or_else(|| "\u{1}".to_string()),
            null_string: pick!(null_string).unwrap_or_default(),
        },
        other => {
            return Err(invalid(
                at("value_format"),
                format!("{other:?} is not one of json, hash, column, delimited"),
            ))
        }
    };
    if value_column.is_some() && !matches!(format, ValueFormat::Column(_)) {
        return Err(invalid(
            at("value_column"),
            "only applies to value_format = \"column\"",
        ));
    }
    if pick!(separator).is_some_and(|s| s.is_empty()) {
        return Err(invalid(at("separator"), "must not be empty"));
    }
    let columns = match (&format, raw.columns) {
        (ValueFormat::Column(column), None) => Some(vec![column.clone()]),
        (_, columns) => columns,
    };
    Ok(TableConfig {
        name: raw.name,
        path,
        partition_column,
        partition_format,
        timezone,
        hot_days,
        retention_days,
        mode,
        completeness,
        min_age: Duration::from_secs(60 * pick!(min_age_minutes).unwrap_or(0)),
        snapshot_grace_days: pick!(snapshot_grace_days).unwrap_or(2),
        delete_missing,
        max_keys_per_sec: positive(&at("max_keys_per_sec"), pick!(max_keys_per_sec))?,
        columns,
        key,
        format,
        timestamp: pick!(timestamp_encoding).unwrap_or(TimestampEncoding::Iso8601),
        date: pick!(date_encoding).unwrap_or(DateEncoding::Iso8601),
    })
}
