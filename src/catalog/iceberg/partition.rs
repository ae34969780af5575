//! Which partition field of each spec gives a file's date, and the date a partition value is.
//!
//! `partition_column` names a table column; in every spec the field that transforms it (matched
//! by the column's field id, so a renamed column still matches) gives the date:
//! - a `date` column, `identity` or `day` transform: the value is days since 1970-01-01;
//! - a `timestamp`/`timestamptz` (or `_ns`) column, `day` transform: days since 1970-01-01 (UTC
//!   days, as Iceberg defines them); `hour` transform: hours since the epoch, grouped by UTC day;
//! - a `string` column, `identity` transform: the text, parsed with `partition_format`.
//!
//! Other partition fields of a spec (a bucket, a region) are sub-partitions of the date. A spec
//! without such a field has no date: its files cannot be placed.

use std::collections::BTreeMap;

use apache_avro::types::Value;
use chrono::{Duration, NaiveDate};

use super::metadata::{PartitionSpec, TableMetadata};

/// How a spec's date field turns into a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateKind {
    /// Days since the epoch (`identity` of a date, `day` of a date or timestamp).
    Days,
    /// Hours since the epoch (`hour` of a timestamp): the UTC day of the hour.
    Hours,
    /// Text in `partition_format` (`identity` of a string column).
    Text,
}

/// The date field of one spec, or why the spec has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecDate {
    /// The field giving the date.
    Field {
        /// The partition field id (the Avro `field-id` in manifests).
        field_id: Option<i32>,
        /// The partition field's name.
        name: String,
        /// How its value is a date.
        kind: DateKind,
    },
    /// No usable field: why (names the spec and its fields).
    None(String),
}

/// The date field of every spec of the table, by spec id.
pub fn spec_dates(
    metadata: &TableMetadata,
    partition_column: &str,
) -> Result<BTreeMap<i32, SpecDate>, String> {
    let column = metadata.column(partition_column).ok_or_else(|| {
        format!(
            "the table has no column {partition_column:?} (partition_column); its columns: {}",
            metadata.column_names().join(", ")
        )
    })?;
    let column_type = column.type_name();
    Ok(metadata
        .specs()
        .into_values()
        .map(|spec| {
            let date = spec_date(&spec, column.id, partition_column, &column_type);
            (spec.spec_id, date)
        })
        .collect())
}

fn spec_date(spec: &PartitionSpec, column_id: i32, column: &str, column_type: &str) -> SpecDate {
    let describe = || {
        let fields: Vec<String> = spec
            .fields
            .iter()
            .map(|f| format!("{}={}", f.name, f.transform))
            .collect();
        if fields.is_empty() {
            format!("partition spec {} (unpartitioned)", spec.spec_id)
        } else {
            format!("partition spec {} ({})", spec.spec_id, fields.join(", "))
        }
    };
    let mut refused = Vec::new();
    for field in spec.fields.iter().filter(|f| f.reads_column(column_id)) {
        let kind = match (column_type, field.transform.as_str()) {
            ("date", "identity" | "day") => Some(DateKind::Days),
            (t, "day") if t.starts_with("timestamp") => Some(DateKind::Days),
            (t, "hour") if t.starts_with("timestamp") => Some(DateKind::Hours),
            ("string", "identity") => Some(DateKind::Text),
            _ => None,
        };
        match kind {
            Some(kind) => {
                return SpecDate::Field {
                    field_id: field.field_id,
                    name: field.name.clone(),
                    kind,
                }
            }
            None => refused.push(format!("{}({column}: {column_type})", field.transform)),
        }
    }
    if refused.is_empty() {
        SpecDate::None(format!(
            "{} has no partition field on column {column:?}",
            describe()
        ))
    } else {
        SpecDate::None(format!(
            "{} partitions column {column:?} by {}, which is not a day (coldsync reads identity of a date or string, day or hour of a timestamp, day of a date)",
            describe(),
            refused.join(", ")
        ))
    }
}

/// The date of a partition value, or the value as text when it is not a date (null, a string
/// not in `partition_format`).
pub fn value_date(
    kind: DateKind,
    value: &Value,
    parse_text: &dyn Fn(&str) -> Option<NaiveDate>,
) -> Result<NaiveDate, String> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date");
    let days = |days: i64| {
        epoch
            .checked_add_signed(Duration::days(days))
            .ok_or_else(|| format!("{days} days"))
    };
    match (kind, value) {
        (_, Value::Null) => Err("null".to_string()),
        (DateKind::Days, Value::Date(d) | Value::Int(d)) => days(i64::from(*d)),
        (DateKind::Days, Value::Long(d)) => days(*d),
        (DateKind::Hours, Value::Int(h)) => days(i64::from(*h).div_euclid(24)),
        (DateKind::Hours, Value::Long(h)) => days(h.div_euclid(24)),
        (DateKind::Text, Value::String(s)) => parse_text(s).ok_or_else(|| s.clone()),
        (_, other) => Err(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(column_type: &str, specs: &str) -> TableMetadata {
        let json = format!(
            r#"{{"format-version": 2, "current-schema-id": 0,
              "schemas": [{{"schema-id": 0, "fields": [
                {{"id": 1, "name": "id", "type": "long"}},
                {{"id": 2, "name": "dt", "type": "{column_type}"}}]}}],
              "partition-specs": {specs}}}"#
        );
        TableMetadata::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn every_spec_gets_its_date_field_or_the_reason_it_has_none() {
        let table = metadata(
            "date",
            r#"[{"spec-id": 0, "fields": []},
                {"spec-id": 1, "fields": [{"name": "dt", "transform": "identity", "source-id": 2, "field-id": 1000}]},
                {"spec-id": 2, "fields": [{"name": "dt", "transform": "identity", "source-id": 2, "field-id": 1000},
                                          {"name": "id_bucket", "transform": "bucket[8]", "source-id": 1, "field-id": 1001}]},
                {"spec-id": 3, "fields": [{"name": "dt_month", "transform": "month", "source-id": 2, "field-id": 1002}]}]"#,
        );
        let dates = spec_dates(&table, "dt").unwrap();
        let reason = |spec: i32| match &dates[&spec] {
            SpecDate::None(reason) => reason.clone(),
            other => panic!("spec {spec}: {other:?}"),
        };
        let unpartitioned = reason(0);
        assert!(
            unpartitioned.contains(
                "partition spec 0 (unpartitioned) has no partition field on column \"dt\""
            ),
            "{unpartitioned}"
        );
        for spec in [1, 2] {
            assert_eq!(
                dates[&spec],
                SpecDate::Field {
                    field_id: Some(1000),
                    name: "dt".into(),
                    kind: DateKind::Days
                }
            );
        }
        let month = reason(3);
        assert!(month.contains("month(dt: date)"), "{month}");
        assert!(month.contains("not a day"), "{month}");
        let missing = spec_dates(&table, "day").unwrap_err();
        assert!(missing.contains("no column \"day\""), "{missing}");
        assert!(missing.contains("id, dt"), "{missing}");
    }

    #[test]
    fn timestamps_by_day_or_hour_and_strings_by_identity() {
        let ts = metadata(
            "timestamptz",
            r#"[{"spec-id": 0, "fields": [{"name": "dt_day", "transform": "day", "source-id": 2, "field-id": 1000}]},
                {"spec-id": 1, "fields": [{"name": "dt_hour", "transform": "hour", "source-id": 2, "field-id": 1001}]},
                {"spec-id": 2, "fields": [{"name": "dt", "transform": "identity", "source-id": 2, "field-id": 1002}]}]"#,
        );
        let dates = spec_dates(&ts, "dt").unwrap();
        assert!(matches!(
            dates[&0],
            SpecDate::Field {
                kind: DateKind::Days,
                ..
            }
        ));
        assert!(matches!(
            dates[&1],
            SpecDate::Field {
                kind: DateKind::Hours,
                ..
            }
        ));
        assert!(matches!(dates[&2], SpecDate::None(_)));
        let text = metadata(
            "string",
            r#"[{"spec-id": 0, "fields": [{"name": "dt", "transform": "identity", "source-id": 2, "field-id": 1000}]}]"#,
        );
        assert!(matches!(
            spec_dates(&text, "dt").unwrap()[&0],
            SpecDate::Field {
                kind: DateKind::Text,
                ..
            }
        ));
    }

    #[test]
    fn values_become_dates() {
        let parse = |s: &str| NaiveDate::parse_from_str(s, "%Y%m%d").ok();
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(
            value_date(DateKind::Days, &Value::Date(20_412), &parse),
            Ok(day(2025, 11, 20))
        );
        assert_eq!(
            value_date(DateKind::Days, &Value::Int(0), &parse),
            Ok(day(1970, 1, 1))
        );
        assert_eq!(
            value_date(DateKind::Hours, &Value::Int(20_412 * 24 + 23), &parse),
            Ok(day(2025, 11, 20))
        );
        assert_eq!(
            value_date(DateKind::Hours, &Value::Int(-1), &parse),
            Ok(day(1969, 12, 31))
        );
        assert_eq!(
            value_date(DateKind::Text, &Value::String("20251121".into()), &parse),
            Ok(day(2025, 11, 21))
        );
        assert_eq!(
            value_date(DateKind::Text, &Value::String("x".into()), &parse),
            Err("x".to_string())
        );
        assert_eq!(
            value_date(DateKind::Days, &Value::Null, &parse),
            Err("null".to_string())
        );
    }
}
