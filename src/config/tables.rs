//! `[[tables]]` (with `[defaults]`): each table validated into a [`TableConfig`]: where its
//! partitions are, how they are dated, loaded and judged complete ([`LoadMode`],
//! [`Completeness`]), and how its rows become keys and values.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;

use super::catalog::{RawSource, TableSource};
use super::raw::{table_options, RawTable, RawTableOptions, ValueFormatName};
use super::{invalid, parse_tz, positive};
use crate::encode::{DateEncoding, EncodeSpec, TimestampEncoding, ValueFormat};
use crate::error::ConfigError;
use crate::template::KeyTemplate;

/// How a table's partitions relate to each other (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// Each partition holds new or changed rows; the KV is their union, the newest partition wins.
    Incremental,
    /// Each partition is the whole table; only the newest complete cold partition is loaded.
    Snapshot,
}

/// When a partition counts as completely written by its producer (`completeness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Completeness {
    /// The partition's own `_SUCCESS` marker (or one in every leaf sub-partition).
    Marker,
    /// The table root's `_SUCCESS` is newer than every file of the partition (Spark `partitionBy`).
    TableMarker,
    /// Every partition is complete (optionally subject to `min_age_minutes`).
    None,
}

/// One table to keep in the cold KV.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// Name used in logs, the ledger hash tag and `--table`.
    pub name: String,
    /// Table root inside the source, without leading or trailing `/`; empty when the catalog
    /// says where the table is.
    pub path: String,
    /// Where the partitions come from (`catalog`, `format` and their options).
    pub source: TableSource,
    /// Name of the date partition column (`dt`).
    pub partition_column: String,
    /// chrono format of the partition value (`%Y-%m-%d`, `%Y%m%d`), as written.
    pub partition_format: String,
    /// `partition_format` parsed once at load, checked to name exactly one day.
    partition_items: Vec<Item<'static>>,
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
    /// Largest share of a partition's rows that may be skipped for a null or empty key before
    /// the partition fails instead of being recorded (`max_skipped_ratio`, 0..=1).
    pub max_skipped_ratio: f64,
    /// Timestamp encoding.
    pub timestamp: TimestampEncoding,
    /// Date encoding.
    pub date: DateEncoding,
    /// How long a run waits for another run's lease on this table before it skips the table.
    pub lease_wait: Duration,
    /// How long a run waits for a late newest cold partition (0: not at all).
    pub wait_for_partition: Duration,
    /// How often the table is listed again while waiting for a late partition.
    pub wait_poll_interval: Duration,
    /// The layout (`layout`): part of the table's identity, so that one source table can be
    /// loaded under two layouts at once, each with its own ledger. `None`: the default layout.
    pub layout: Option<String>,
    /// Rows of each loaded partition verified against Redis before it is recorded (0: none).
    pub verify_sample: u64,
}

/// `--layout default` (and the `layout` field of events and reports) names a table without
/// `layout`: the reserved name cannot be configured.
pub const DEFAULT_LAYOUT: &str = "default";

impl TableConfig {
    /// Parses a partition value into a date with this table's format.
    pub fn parse_partition_value(&self, value: &str) -> Option<NaiveDate> {
        let date = parse_date(&self.partition_items, value)?;
        // Reject values that parse loosely but are not in canonical form (e.g. `2026-1-5`).
        (self.format_partition_value(date) == value).then_some(date)
    }

    /// Formats a date as this table's partition value.
    pub fn format_partition_value(&self, date: NaiveDate) -> String {
        // Cannot fail: the items were checked at load to format a date alone (no time or zone).
        date.format_with_items(self.partition_items.iter())
            .to_string()
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

    /// The table's identity in the ledger, leases and watermark: its name, or `name@layout`
    /// (inside the hash tag: `coldsync:{orders@v2}:partitions`). The default layout keeps the
    /// plain name, so ledgers written before layouts existed stay valid.
    pub fn ledger_id(&self) -> String {
        match &self.layout {
            Some(layout) => format!("{}@{layout}", self.name),
            None => self.name.clone(),
        }
    }

    /// The layout's name as events and reports show it (`default` without `layout`).
    pub fn layout_name(&self) -> &str {
        self.layout.as_deref().unwrap_or(DEFAULT_LAYOUT)
    }

    /// Columns used by the key template.
    pub fn key_columns(&self) -> Vec<String> {
        self.key.columns().into_iter().map(str::to_string).collect()
    }

    /// Validates `[[tables]]` entry `index`; options it leaves out come from `defaults`.
    pub(super) fn build(
        index: usize,
        raw: RawTable,
        defaults: &RawTableOptions,
    ) -> Result<TableConfig, ConfigError> {
        let own = table_options(index, &raw)?;
        macro_rules! pick {
            ($field:ident) => {
                own.$field.clone().or_else(|| defaults.$field.clone())
            };
        }
        let name = raw.name.clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(invalid(
                format!("tables[{index}].name"),
                format!("{name:?} must be non-empty and use only letters, digits, '_', '-', '.'"),
            ));
        }
        let at = |field: &str| format!("tables[{index}] ({name}).{field}");
        if let Some(layout) = &raw.layout {
            if layout.is_empty()
                || layout == DEFAULT_LAYOUT
                || !layout
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Err(invalid(
                    at("layout"),
                    format!("{layout:?} must be non-empty, not {DEFAULT_LAYOUT:?}, and use only letters, digits, '_', '-', '.'"),
                ));
            }
        }
        let source = super::catalog::build(
            RawSource {
                catalog: pick!(catalog),
                format: pick!(format),
                metastore_uris: pick!(metastore_uris),
                catalog_uri: pick!(catalog_uri),
                database: pick!(database),
                table: pick!(table),
                metadata_location: pick!(metadata_location),
                location_prefix: pick!(location_prefix),
            },
            &at,
        )?;
        let path = match &raw.path {
            Some(path) => {
                let trimmed = path.trim_matches('/').to_string();
                if trimmed.is_empty()
                    || trimmed
                        .split('/')
                        .any(|part| part == ".." || part.is_empty())
                {
                    return Err(invalid(
                        at("path"),
                        format!("{path:?} is not a table root path"),
                    ));
                }
                trimmed
            }
            None if source.needs_path() => {
                return Err(invalid(
                    at("path"),
                    format!(
                        "missing: a {} table without a catalog is read at its path",
                        source.format.as_str()
                    ),
                ))
            }
            None => String::new(),
        };
        let partition_column = pick!(partition_column).unwrap_or_else(|| "dt".to_string());
        if partition_column.is_empty() || partition_column.contains(['/', '=']) {
            return Err(invalid(
                at("partition_column"),
                format!("{partition_column:?} is not a column name"),
            ));
        }
        let partition_format = pick!(partition_format).unwrap_or_else(|| "%Y-%m-%d".to_string());
        let partition_items = parse_partition_format(&at("partition_format"), &partition_format)?;
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
        let mode = pick!(mode).unwrap_or(LoadMode::Incremental);
        // A registered partition or a committed snapshot is complete: the `_SUCCESS` default
        // is only for partitions found by listing.
        let completeness = pick!(completeness).unwrap_or(if source.is_listed_directories() {
            Completeness::Marker
        } else {
            Completeness::None
        });
        if source.format != super::catalog::TableFormat::Hive && completeness != Completeness::None
        {
            return Err(invalid(
                at("completeness"),
                format!(
                    "a {} table's committed files are complete: only \"none\" applies (min_age_minutes still does)",
                    source.format.as_str()
                ),
            ));
        }
        let delete_missing = pick!(delete_missing).unwrap_or(false);
        if delete_missing && mode != LoadMode::Snapshot {
            return Err(invalid(
                at("delete_missing"),
                "only applies to mode = \"snapshot\"",
            ));
        }
        let key =
            KeyTemplate::parse(&raw.key).map_err(|err| invalid(at("key"), err.to_string()))?;
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
        let format = match pick!(value_format).unwrap_or(ValueFormatName::Json) {
            ValueFormatName::Json => ValueFormat::Json,
            ValueFormatName::Hash => ValueFormat::Hash,
            ValueFormatName::Column => {
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
            ValueFormatName::Delimited => ValueFormat::Delimited {
                separator: pick!(separator).unwrap_or_else(|| "\u{1}".to_string()),
                null_string: pick!(null_string).unwrap_or_default(),
            },
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
        let max_skipped_ratio = pick!(max_skipped_ratio).unwrap_or(0.01);
        if !(0.0..=1.0).contains(&max_skipped_ratio) {
            return Err(invalid(
                at("max_skipped_ratio"),
                format!("{max_skipped_ratio} is not a share between 0 and 1"),
            ));
        }
        let columns = match (&format, raw.columns) {
            (ValueFormat::Column(column), None) => Some(vec![column.clone()]),
            (_, columns) => columns,
        };
        Ok(TableConfig {
            layout: raw.layout,
            verify_sample: pick!(verify_sample).unwrap_or(0),
            name: raw.name,
            path,
            source,
            partition_column,
            partition_format,
            partition_items,
            timezone,
            hot_days,
            retention_days,
            mode,
            completeness,
            min_age: Duration::from_secs(60 * pick!(min_age_minutes).unwrap_or(0)),
            snapshot_grace_days: pick!(snapshot_grace_days).unwrap_or(2),
            delete_missing,
            max_keys_per_sec: positive(&at("max_keys_per_sec"), pick!(max_keys_per_sec))?,
            max_skipped_ratio,
            columns,
            key,
            format,
            timestamp: pick!(timestamp_encoding).unwrap_or(TimestampEncoding::Iso8601),
            date: pick!(date_encoding).unwrap_or(DateEncoding::Iso8601),
            lease_wait: duration(&at("lease_wait"), pick!(lease_wait).as_deref(), "0s")?,
            wait_for_partition: duration(
                &at("wait_for_partition"),
                pick!(wait_for_partition).as_deref(),
                "0s",
            )?,
            wait_poll_interval: positive_duration(
                &at("wait_poll_interval"),
                pick!(wait_poll_interval).as_deref(),
                "60s",
            )?,
        })
    }
}

/// A duration option written like `"90s"`, `"10m"`, `"2h"` (humantime), `default` when absent.
pub(super) fn duration(
    option: &str,
    value: Option<&str>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or(default);
    humantime::parse_duration(text).map_err(|err| {
        invalid(
            option,
            format!("{text:?} is not a duration such as \"90s\", \"10m\" or \"2h\" ({err})"),
        )
    })
}

/// [`duration`], refusing zero.
pub(super) fn positive_duration(
    option: &str,
    value: Option<&str>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let parsed = duration(option, value, default)?;
    if parsed.is_zero() {
        return Err(invalid(option, "must be longer than 0s"));
    }
    Ok(parsed)
}

/// Parses a partition format into chrono items, refusing one that does not name exactly one day.
///
/// The format must render a date alone (no time, zone or unknown specifier), without `/` (it is
/// one path segment), and read its rendering back as the same day. Rendering goes through
/// `write!`, which reports chrono's formatting error where `to_string` would panic.
fn parse_partition_format(option: &str, format: &str) -> Result<Vec<Item<'static>>, ConfigError> {
    let not_one_day = || {
        invalid(
            option,
            format!("{format:?} is not a date format that names one day (e.g. \"%Y-%m-%d\", \"%Y%m%d\")"),
        )
    };
    let items = StrftimeItems::new(format)
        .parse_to_owned()
        .map_err(|_| not_one_day())?;
    let probe = NaiveDate::from_ymd_opt(2026, 11, 20).expect("valid date");
    let mut rendered = String::new();
    write!(rendered, "{}", probe.format_with_items(items.iter())).map_err(|_| not_one_day())?;
    if rendered.contains('/') || parse_date(&items, &rendered) != Some(probe) {
        return Err(not_one_day());
    }
    Ok(items)
}

/// Reads `value` as a date with `items` (what `NaiveDate::parse_from_str` does with a format).
fn parse_date(items: &[Item<'static>], value: &str) -> Option<NaiveDate> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, value, items.iter()).ok()?;
    parsed.to_naive_date().ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use crate::config::Config;

    fn parse(extra: &str, table: &str) -> Result<Config, String> {
        let text = format!(
            "[source]\nscheme = \"fs\"\nroot = \"/w\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n{extra}\n\
             [[tables]]\nname = \"t\"\npath = \"t\"\nkey = \"k:{{id}}\"\nretention_days = 10\n{table}\n"
        );
        Config::parse(&text, &HashMap::new()).map_err(|err| err.to_string())
    }

    #[test]
    fn the_operations_options_default_and_parse_durations() {
        let config = parse("", "").unwrap();
        let table = &config.tables[0];
        assert_eq!(table.lease_wait, Duration::ZERO);
        assert_eq!(table.wait_for_partition, Duration::ZERO);
        assert_eq!(table.wait_poll_interval, Duration::from_secs(60));
        assert_eq!(config.lease.ttl, Duration::from_secs(60));
        assert_eq!(config.lease.host, "unknown");
        assert_eq!(config.progress_interval, Duration::from_secs(30));

        let defaults = "[defaults]\nlease_wait = \"10m\"\nwait_for_partition = \"2h\"";
        let extra =
            format!("[lease]\nttl_secs = 9\n[logging]\nprogress_interval = \"500ms\"\n{defaults}");
        let config = parse(
            &extra,
            "wait_poll_interval = \"90s\"\nlease_wait = \"1m 30s\"",
        )
        .unwrap();
        let table = &config.tables[0];
        assert_eq!(
            table.lease_wait,
            Duration::from_secs(90),
            "the table's own wins"
        );
        assert_eq!(table.wait_for_partition, Duration::from_secs(7200));
        assert_eq!(table.wait_poll_interval, Duration::from_secs(90));
        assert_eq!(config.lease.ttl, Duration::from_secs(9));
        assert_eq!(config.progress_interval, Duration::from_millis(500));
    }

    #[test]
    fn bad_durations_are_refused_naming_the_option() {
        let refused = |extra: &str, table: &str, option: &str| {
            let err = parse(extra, table).unwrap_err();
            assert!(err.starts_with(&format!("option {option}: ")), "{err}");
        };
        refused("", "lease_wait = \"soon\"", "tables[0] (t).lease_wait");
        refused(
            "",
            "wait_for_partition = \"10\"",
            "tables[0] (t).wait_for_partition",
        );
        refused(
            "",
            "wait_poll_interval = \"0s\"",
            "tables[0] (t).wait_poll_interval",
        );
        refused("", "lease_wait = 5", "tables[0] (t).lease_wait");
        refused("[lease]\nttl_secs = 0", "", "lease.ttl_secs");
        refused(
            "[logging]\nprogress_interval = \"0s\"",
            "",
            "logging.progress_interval",
        );
    }

    #[test]
    fn the_holder_host_is_the_pod_name_then_the_host_name() {
        let text = "[source]\nscheme = \"fs\"\nroot = \"/w\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n\
                    [[tables]]\nname = \"t\"\npath = \"t\"\nkey = \"k:{id}\"\nretention_days = 10\n";
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let host = |pairs| Config::parse(text, &env(pairs)).unwrap().lease.host;
        assert_eq!(host(&[("HOSTNAME", "h"), ("POD_NAME", "pod-1")]), "pod-1");
        assert_eq!(host(&[("HOSTNAME", "h")]), "h");
        assert_eq!(host(&[("HOSTNAME", ""), ("POD_NAME", "")]), "unknown");
    }
}
