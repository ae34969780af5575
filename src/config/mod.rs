//! Configuration: the strict TOML file ([`RawConfig`]) and its validated, typed form ([`Config`]).
//!
//! Loading is two-staged: serde parses the file with `deny_unknown_fields` and defaults
//! (`raw`), then [`RawConfig::build`] checks every option against the process environment handed
//! in by the caller (never read here, so tests do not touch the global environment) and produces
//! a [`Config`] whose types rule out invalid states. Every error names the option at fault.
//!
//! - `raw`: the serde structs of the file, with defaults.
//! - `secret`: [`Secret`], [`OptionValue`], credentials from the environment or files.
//! - `source`: `[source]` into [`SourceConfig`].
//! - `redis`: `[redis]` into [`RedisConfig`].
//! - `sentinel`: the sentinels of a `redis+sentinel://` URL ([`SentinelConfig`]).
//! - `tables`: `[[tables]]` and `[defaults]` into [`TableConfig`].
//! - here: [`Config`] itself, `[ledger]`, `[daemon]`, `[lease]` and `[logging]`, and the checks
//!   the sections share.

mod catalog;
mod raw;
mod redis;
mod secret;
mod sentinel;
mod source;
mod tables;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;

pub use self::catalog::{Catalog, TableFormat, TableSource};
pub use self::raw::RawConfig;
pub use self::redis::{ClusterConfig, RedisConfig};
pub use self::secret::{OptionValue, Secret};
pub use self::sentinel::SentinelConfig;
pub use self::source::SourceConfig;
pub use self::tables::{Completeness, LoadMode, TableConfig, DEFAULT_LAYOUT};
use crate::error::ConfigError;

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Object store.
    pub source: SourceConfig,
    /// Redis.
    pub redis: RedisConfig,
    /// Prefix of ledger keys (`coldsync` -> `coldsync:{table}:...`).
    pub ledger_prefix: String,
    /// Cron expression of the daemon (6 or 7 fields, seconds first), if any.
    pub schedule: Option<CronSchedule>,
    /// Time zone of the cron schedule.
    pub schedule_timezone: Tz,
    /// Tables, in file order.
    pub tables: Vec<TableConfig>,
    /// `[lease]`, and who this process is in a lease.
    pub lease: LeaseConfig,
    /// `[logging] progress_interval`: how often a long load logs `load_progress`.
    pub progress_interval: Duration,
}

/// `[lease]`: how long a table's lease lives without renewal, and the name a holder gives.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Expiry of a lease not renewed (it is renewed every third of it).
    pub ttl: Duration,
    /// This process's host in a lease's holder: `POD_NAME`, else `HOSTNAME`, else `unknown`.
    pub host: String,
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

    /// The tables named in `names` (all when empty), every layout of each; an unknown name is
    /// an error.
    pub fn select_tables(&self, names: &[String]) -> Result<Vec<TableConfig>, ConfigError> {
        self.select_layouts(names, None)
    }

    /// [`Config::select_tables`], narrowed to `layout` when given (`default`: the entries without
    /// `layout`); a name without that layout is an error. A name may name its layout itself:
    /// `orders@v2`.
    pub fn select_layouts(
        &self,
        names: &[String],
        layout: Option<&str>,
    ) -> Result<Vec<TableConfig>, ConfigError> {
        let of_layout = |t: &&TableConfig| layout.is_none_or(|l| t.layout_name() == l);
        if names.is_empty() {
            let tables: Vec<TableConfig> = self.tables.iter().filter(of_layout).cloned().collect();
            if tables.is_empty() {
                return Err(invalid(
                    "--layout",
                    format!("no table has layout {:?}", layout.unwrap_or_default()),
                ));
            }
            return Ok(tables);
        }
        let mut selected = Vec::new();
        for name in names {
            // `orders@v2`: one layout of a table (what `--table orders --layout v2` passes on).
            let (name, layout) = match name.split_once('@') {
                Some((name, own)) => (name, Some(own)),
                None => (name.as_str(), layout),
            };
            let of_layout = |t: &&TableConfig| layout.is_none_or(|l| t.layout_name() == l);
            let named: Vec<&TableConfig> = self.tables.iter().filter(|t| t.name == name).collect();
            if named.is_empty() {
                return Err(invalid(
                    "--table",
                    format!("no table named {name:?} in the config"),
                ));
            }
            let chosen: Vec<&TableConfig> = named.into_iter().filter(of_layout).collect();
            if chosen.is_empty() {
                return Err(invalid(
                    "--layout",
                    format!(
                        "table {name:?} has no layout {:?}",
                        layout.unwrap_or_default()
                    ),
                ));
            }
            selected.extend(chosen.into_iter().cloned());
        }
        Ok(selected)
    }
}

impl RawConfig {
    /// Validates every option and resolves secrets from `env`.
    pub fn build(self, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let source = SourceConfig::build(self.source, env)?;
        let redis = RedisConfig::build(self.redis, env)?;
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
        let schedule = self
            .daemon
            .schedule
            .map(|expression| CronSchedule::parse("daemon.schedule", expression))
            .transpose()?;
        if self.tables.is_empty() {
            return Err(invalid("tables", "no [[tables]] configured"));
        }
        let mut seen = HashSet::new();
        let mut tables = Vec::with_capacity(self.tables.len());
        for (index, table) in self.tables.into_iter().enumerate() {
            let built = TableConfig::build(index, table, &self.defaults)?;
            if !seen.insert(built.ledger_id()) {
                return Err(invalid(
                    format!("tables[{index}].name"),
                    format!(
                        "duplicate table name {:?} with layout {:?}: two entries of one name need different layouts",
                        built.name,
                        built.layout_name()
                    ),
                ));
            }
            if let Some(other) = tables
                .iter()
                .find(|t: &&TableConfig| t.name == built.name && t.key == built.key)
            {
                return Err(invalid(
                    format!("tables[{index}] ({}).key", built.name),
                    format!(
                        "layout {:?} has the key template of layout {:?} ({}): two layouts of a table must write different keys, or each overwrites the other's",
                        built.layout_name(),
                        other.layout_name(),
                        built.key
                    ),
                ));
            }
            tables.push(built);
        }
        if self.lease.ttl_secs == 0 || self.lease.ttl_secs > 86_400 {
            return Err(invalid("lease.ttl_secs", "must be between 1 and 86400"));
        }
        let host = ["POD_NAME", "HOSTNAME"]
            .iter()
            .find_map(|var| env.get(*var).filter(|v| !v.is_empty()))
            .cloned()
            .unwrap_or_else(|| "unknown".to_string());
        let lease = LeaseConfig {
            ttl: Duration::from_secs(self.lease.ttl_secs),
            host,
        };
        let progress_interval = tables::positive_duration(
            "logging.progress_interval",
            self.logging.progress_interval.as_deref(),
            "30s",
        )?;
        Ok(Config {
            source,
            redis,
            ledger_prefix,
            schedule,
            schedule_timezone,
            tables,
            lease,
            progress_interval,
        })
    }
}

/// A cron expression (seconds first) that the daemon's scheduler accepts; reads as the `str`
/// the daemon hands to tokio-cron-scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule(String);

impl CronSchedule {
    /// Checks `expression` at load, so `coldsync check` refuses what the daemon would refuse.
    ///
    /// tokio-cron-scheduler 0.15 (`Job::new_async_tz`) parses with croner, seconds required,
    /// day-of-month and day-of-week combined: the same parser and options are used here. The
    /// field count is checked first, as before, so nicknames such as `@daily` stay refused.
    fn parse(option: &str, expression: String) -> Result<CronSchedule, ConfigError> {
        let fields = expression.split_whitespace().count();
        if !(6..=7).contains(&fields) {
            return Err(invalid(
                option,
                format!("{expression:?} must be a cron expression with seconds first (6 or 7 fields), e.g. \"0 30 2 * * *\""),
            ));
        }
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(&expression)
            .map_err(|err| {
                invalid(
                    option,
                    format!("{expression:?} is not a valid cron expression with seconds first ({err}), e.g. \"0 30 2 * * *\""),
                )
            })?;
        Ok(CronSchedule(expression))
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for CronSchedule {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The error for `option` (its dotted path, e.g. `tables[0] (orders).key`).
fn invalid(option: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        option: option.into(),
        message: message.into(),
    }
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

/// An IANA time zone name.
fn parse_tz(option: &str, name: &str) -> Result<Tz, ConfigError> {
    name.parse::<Tz>().map_err(|_| {
        invalid(
            option,
            format!("{name:?} is not an IANA time zone name (e.g. \"Asia/Shanghai\", \"UTC\")"),
        )
    })
}
