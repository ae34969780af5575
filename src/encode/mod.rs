//! Turns Arrow record batches into Redis keys and values (bytes only, no I/O).
//!
//! A [`RowEncoder`] is built once per ([`EncodeSpec`], file schema) pair and
//! then appends the encoded form of every row of each batch to a reusable
//! [`EncodedRows`] buffer. Columns are looked up **by name** in the file's
//! schema, so files of one table may differ (a column added later, an `Int32`
//! widened to `Int64`) and still encode identically.
//!
//! # Contract
//!
//! * **Keys** are rendered from the [`KeyTemplate`]: literal parts verbatim,
//!   integers as decimal digits, strings as their raw UTF-8 bytes, dates as
//!   `YYYY-MM-DD` (whatever the [`DateEncoding`]), booleans as `true`/`false`,
//!   decimals as decimal text with the column's scale (`12.30`). A row whose
//!   key column is null or an empty string is skipped and counted in
//!   [`EncodedRows::skipped_null_keys`].
//! * **Values** follow the [`ValueFormat`]: one compact JSON object per row,
//!   Redis hash field/value pairs (null columns omitted), one column's text, or
//!   delimited text.
//! * **JSON forms**: integers are exact JSON numbers; floats use the shortest
//!   round-trip representation with NaN/±inf as `null`; decimals are JSON
//!   strings (`"12.30"`); strings are escaped JSON strings; binary is standard
//!   padded base64 in a string; dates, times and timestamps follow
//!   [`DateEncoding`]/[`TimestampEncoding`]; lists are arrays, structs and maps
//!   are objects; dictionaries encode their looked-up value.
//! * **Text forms** (hash fields, [`ValueFormat::Column`],
//!   [`ValueFormat::Delimited`], key parts) are the JSON forms without quotes
//!   and with strings raw (unescaped); a non-finite float counts as null;
//!   lists, structs and maps are their compact JSON text.
//!
//! Every unsupported type is rejected by [`RowEncoder::new`], so encoding a
//! batch never fails half-way through a row.
//!
//! # Layout
//!
//! * `mod.rs`: this contract, [`EncodeSpec`] and its formats, [`EncodeError`],
//!   [`check_key_column`].
//! * `row.rs`: [`RowEncoder`], which resolves columns by name and encodes
//!   batches row by row.
//! * `rows.rs`: [`EncodedRows`], the flat buffer rows are appended to.
//! * `writer.rs`: the per-column `Writer` trait and `bind`, which picks a
//!   writer by Arrow type once per (column, batch).
//! * `scalar.rs`, `temporal.rs`, `nested.rs`: the writers by family (null,
//!   booleans, numbers, decimals, strings, binary; dates, times, timestamps;
//!   lists, structs, maps, dictionaries).

mod nested;
mod row;
mod rows;
mod scalar;
mod temporal;
mod writer;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod test_support;

use arrow_schema::DataType;

use crate::template::KeyTemplate;

pub use row::RowEncoder;
pub use rows::EncodedRows;

/// How a row's value is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueFormat {
    /// One compact JSON object per row with every value column, in order, as
    /// `"name":value`; null columns are written as `null`.
    Json,
    /// Redis hash: one (field name, text form) pair per value column that is
    /// non-null in the row. A row whose value columns are all null has no
    /// pairs, which the caller has to handle (`HSET` needs at least one).
    Hash,
    /// The text form of the named column; null (or missing from the file)
    /// gives an empty value. The column need not be listed in
    /// [`EncodeSpec::columns`].
    Column(String),
    /// Text forms of the value columns joined by `separator`, with
    /// `null_string` for nulls. Values are not quoted or escaped, so a value
    /// containing the separator is ambiguous.
    Delimited {
        /// Placed between consecutive columns.
        separator: String,
        /// Written in place of a null column.
        null_string: String,
    },
}

/// How timestamp columns are written in values (keys cannot hold timestamps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampEncoding {
    /// RFC 3339 text (`"iso8601"` in config) with as many fractional digits
    /// as the unit has (s: 0, ms: 3, us: 6, ns: 9). Columns without a
    /// timezone, or with `UTC`/`+00:00`, end in `Z`; other zones are rendered
    /// as local time plus their offset, e.g. `+08:00`.
    #[default]
    Iso8601,
    /// Integer milliseconds since the Unix epoch (`"epoch_millis"`), floored
    /// for negative or sub-millisecond values.
    EpochMillis,
}

/// How date columns are written in values; keys always use `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateEncoding {
    /// `YYYY-MM-DD` text (`"iso8601"` in config). Years beyond 9999 are
    /// written with a leading `+`, years before 0 with a leading `-`.
    #[default]
    Iso8601,
    /// Integer days since 1970-01-01 (`"epoch_days"`); `Date64` milliseconds
    /// are floored to whole days.
    EpochDays,
}

/// Everything needed to encode a table's rows, independent of any one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeSpec {
    /// Template for the Redis key of each row.
    pub key: KeyTemplate,
    /// Layout of the Redis value.
    pub format: ValueFormat,
    /// Value columns, in output order (used by `Json`, `Hash`, `Delimited`).
    pub columns: Vec<String>,
    /// Encoding of timestamp value columns.
    pub timestamp: TimestampEncoding,
    /// Encoding of date value columns.
    pub date: DateEncoding,
}

/// Why rows could not be encoded. Every variant names the column involved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// A column used by the key template does not exist in the file.
    #[error("key column \"{column}\" is missing from the file schema")]
    MissingKeyColumn {
        /// The key column's name.
        column: String,
    },
    /// A key column has a type that cannot be rendered into a key.
    #[error("key column \"{column}\" has type {data_type}, which cannot be used in a key")]
    UnsupportedKeyType {
        /// The key column's name.
        column: String,
        /// The column's type in the file.
        data_type: DataType,
    },
    /// A value column has a type this encoder cannot write.
    #[error("column \"{column}\" has type {data_type}, which cannot be encoded")]
    UnsupportedType {
        /// The column's name.
        column: String,
        /// The column's (top-level) type in the file.
        data_type: DataType,
    },
    /// A timestamp column (possibly nested) names a timezone that is neither
    /// a fixed offset nor a known IANA zone.
    #[error("column \"{column}\" has unknown timezone \"{timezone}\"")]
    InvalidTimezone {
        /// The column's name.
        column: String,
        /// The timezone string from the schema.
        timezone: String,
    },
    /// A batch passed to [`RowEncoder::encode_batch`] does not have the
    /// schema the encoder was built for.
    #[error(
        "column \"{column}\" of the batch does not match the file schema (expected {expected})"
    )]
    BatchMismatch {
        /// The column's name.
        column: String,
        /// The type recorded when the encoder was built.
        expected: DataType,
    },
}

/// Checks that a column of type `data_type` may be used in a key template.
///
/// Allowed: all signed and unsigned integers, `Utf8`, `LargeUtf8`, `Utf8View`,
/// dictionaries of an integer key and one of those string types, `Date32`,
/// `Date64`, `Boolean` and `Decimal32/64/128/256`. Meant for validating
/// Parquet footers before loading any rows; [`RowEncoder::new`] applies the
/// same check.
pub fn check_key_column(name: &str, data_type: &DataType) -> Result<(), EncodeError> {
    use DataType as D;
    let ok = match data_type {
        D::Int8 | D::Int16 | D::Int32 | D::Int64 => true,
        D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64 => true,
        D::Utf8 | D::LargeUtf8 | D::Utf8View => true,
        D::Dictionary(k, v) => {
            k.is_dictionary_key_type() && matches!(**v, D::Utf8 | D::LargeUtf8 | D::Utf8View)
        }
        D::Date32 | D::Date64 | D::Boolean => true,
        D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(EncodeError::UnsupportedKeyType {
            column: name.to_string(),
            data_type: data_type.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{Field, TimeUnit};

    use super::*;

    #[test]
    fn check_key_column_types() {
        let ok = [
            DataType::Int8,
            DataType::UInt64,
            DataType::Utf8View,
            DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::LargeUtf8)),
            DataType::Date64,
            DataType::Boolean,
            DataType::Decimal32(9, 2),
            DataType::Decimal256(50, 0),
        ];
        for dt in ok {
            check_key_column("c", &dt).unwrap();
        }
        let bad = [
            DataType::Float32,
            DataType::Binary,
            DataType::Timestamp(TimeUnit::Millisecond, None),
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Int64)),
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
        ];
        for dt in bad {
            assert!(matches!(
                check_key_column("c", &dt),
                Err(EncodeError::UnsupportedKeyType { .. })
            ));
        }
    }

    #[test]
    fn encodings_deserialize_from_snake_case() {
        let t: Vec<TimestampEncoding> =
            serde_json::from_str(r#"["iso8601","epoch_millis"]"#).unwrap();
        assert_eq!(
            t,
            vec![TimestampEncoding::Iso8601, TimestampEncoding::EpochMillis]
        );
        let d: Vec<DateEncoding> = serde_json::from_str(r#"["iso8601","epoch_days"]"#).unwrap();
        assert_eq!(d, vec![DateEncoding::Iso8601, DateEncoding::EpochDays]);
    }
}
