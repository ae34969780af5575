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

use std::io::Write as _;
use std::iter;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowDictionaryKeyType, ArrowPrimitiveType, Date32Type, Date64Type, Decimal128Type,
    Decimal256Type, Decimal32Type, Decimal64Type, DecimalType, DurationMicrosecondType,
    DurationMillisecondType, DurationNanosecondType, DurationSecondType, Float16Type, Float32Type,
    Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{
    new_empty_array, Array, ArrayAccessor, BooleanArray, FixedSizeListArray, GenericListArray,
    GenericListViewArray, MapArray, OffsetSizeTrait, PrimitiveArray, RecordBatch, StructArray,
};
use arrow_buffer::{i256, ArrowNativeType};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use base64::Engine as _;
use chrono::{Offset as _, TimeZone as _};

use crate::template::{KeyTemplate, TemplatePart};

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

// ---------------------------------------------------------------------------
// EncodedRows
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct RowSpan {
    key_start: usize,
    key_end: usize,
    value_start: usize,
    value_end: usize,
    fields_start: usize,
    fields_end: usize,
}

#[derive(Debug, Clone, Copy)]
struct FieldSpan {
    name_start: usize,
    name_end: usize,
    value_end: usize,
}

/// Encoded rows held in one flat byte buffer plus offset tables.
///
/// Reuse one instance across batches: [`clear`](Self::clear) keeps the
/// allocated capacity. Rows are appended by [`RowEncoder::encode_batch`];
/// skipped rows do not appear but are counted.
#[derive(Debug, Clone, Default)]
pub struct EncodedRows {
    buf: Vec<u8>,
    rows: Vec<RowSpan>,
    fields: Vec<FieldSpan>,
    skipped_null_keys: u64,
}

impl EncodedRows {
    /// Creates an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets all rows and resets the skip counter, keeping capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.rows.clear();
        self.fields.clear();
        self.skipped_null_keys = 0;
    }

    /// Number of encoded rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no rows are held (skipped rows do not count).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The Redis key of row `i`. Panics if `i >= len()`.
    pub fn key(&self, i: usize) -> &[u8] {
        let r = &self.rows[i];
        &self.buf[r.key_start..r.key_end]
    }

    /// The value of row `i` for the `Json`, `Column` and `Delimited` formats;
    /// empty for `Hash` rows (use [`fields`](Self::fields)). Panics if
    /// `i >= len()`.
    pub fn value(&self, i: usize) -> &[u8] {
        let r = &self.rows[i];
        &self.buf[r.value_start..r.value_end]
    }

    /// The (field name, value) pairs of `Hash` row `i`, one per non-null value
    /// column in spec order; empty for other formats. Panics if `i >= len()`.
    pub fn fields(&self, i: usize) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let r = &self.rows[i];
        self.fields[r.fields_start..r.fields_end].iter().map(|f| {
            (
                &self.buf[f.name_start..f.name_end],
                &self.buf[f.name_end..f.value_end],
            )
        })
    }

    /// Rows skipped since the last [`clear`](Self::clear) because a key
    /// column was null or an empty string.
    pub fn skipped_null_keys(&self) -> u64 {
        self.skipped_null_keys
    }

    /// Bytes of keys and values held (hash field names included), a proxy
    /// for the payload size of the rows.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }
}

// ---------------------------------------------------------------------------
// RowEncoder
// ---------------------------------------------------------------------------

/// A column located in the file schema.
#[derive(Debug, Clone)]
struct Source {
    name: String,
    index: usize,
    data_type: DataType,
}

#[derive(Debug, Clone)]
enum KeyPart {
    Literal(Vec<u8>),
    Column(usize),
}

#[derive(Debug, Clone)]
struct ValueCol {
    /// Raw column name (hash field name).
    name: Vec<u8>,
    /// `"name":` with the name JSON-escaped.
    json_prefix: Vec<u8>,
    /// `None` when the column is missing from the file (encodes as null).
    source: Option<Source>,
}

/// Encodes the rows of one file's batches according to an [`EncodeSpec`].
///
/// Build it once per (spec, file schema): `new` resolves every column by
/// name and rejects unusable types up front, so
/// [`encode_batch`](Self::encode_batch) only fails when handed a batch whose
/// schema differs from the one given to `new`.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    spec: Arc<EncodeSpec>,
    key_parts: Vec<KeyPart>,
    key_cols: Vec<Source>,
    value_cols: Vec<ValueCol>,
    column_src: Option<Source>,
}

fn lookup(schema: &SchemaRef, name: &str) -> Option<Source> {
    schema.index_of(name).ok().map(|index| Source {
        name: name.to_string(),
        index,
        data_type: schema.field(index).data_type().clone(),
    })
}

impl RowEncoder {
    /// Resolves the spec's key and value columns against a file schema.
    ///
    /// Errors: a key column absent from the schema
    /// ([`EncodeError::MissingKeyColumn`]) or of a non-key type
    /// ([`EncodeError::UnsupportedKeyType`]); a value column (including the
    /// [`ValueFormat::Column`] column) of a type that cannot be encoded
    /// ([`EncodeError::UnsupportedType`], [`EncodeError::InvalidTimezone`]).
    /// Value columns absent from the schema are fine and encode as null.
    pub fn new(spec: Arc<EncodeSpec>, schema: &SchemaRef) -> Result<Self, EncodeError> {
        let key_names = spec.key.columns();
        let mut key_cols = Vec::with_capacity(key_names.len());
        for name in &key_names {
            let src = lookup(schema, name).ok_or_else(|| EncodeError::MissingKeyColumn {
                column: name.to_string(),
            })?;
            check_key_column(name, &src.data_type)?;
            validate(&src, key_opts(&spec))?;
            key_cols.push(src);
        }
        let key_parts = spec
            .key
            .parts()
            .iter()
            .map(|p| match p {
                TemplatePart::Literal(s) => KeyPart::Literal(s.as_bytes().to_vec()),
                TemplatePart::Column(c) => KeyPart::Column(
                    key_names
                        .iter()
                        .position(|n| n == c)
                        .expect("template columns() lists every placeholder"),
                ),
            })
            .collect();

        let opts = value_opts(&spec);
        let mut value_cols = Vec::new();
        let mut column_src = None;
        match &spec.format {
            ValueFormat::Column(c) => {
                column_src = lookup(schema, c);
                if let Some(src) = &column_src {
                    validate(src, opts)?;
                }
            }
            ValueFormat::Json | ValueFormat::Hash | ValueFormat::Delimited { .. } => {
                for name in &spec.columns {
                    let source = lookup(schema, name);
                    if let Some(src) = &source {
                        validate(src, opts)?;
                    }
                    let mut json_prefix = Vec::with_capacity(name.len() + 3);
                    write_json_str(&mut json_prefix, name.as_bytes());
                    json_prefix.push(b':');
                    value_cols.push(ValueCol {
                        name: name.as_bytes().to_vec(),
                        json_prefix,
                        source,
                    });
                }
            }
        }

        Ok(RowEncoder {
            spec,
            key_parts,
            key_cols,
            value_cols,
            column_src,
        })
    }

    /// The spec this encoder was built from.
    pub fn spec(&self) -> &Arc<EncodeSpec> {
        &self.spec
    }

    /// Appends the encoded rows of `batch` (which has the same schema) to `out`.
    ///
    /// Rows with a null or empty-string key column are skipped and counted.
    /// Nothing is appended if an error is returned; the only error is
    /// [`EncodeError::BatchMismatch`], when the batch's columns differ from
    /// the schema given to [`new`](Self::new).
    pub fn encode_batch(
        &self,
        batch: &RecordBatch,
        out: &mut EncodedRows,
    ) -> Result<(), EncodeError> {
        let kopts = key_opts(&self.spec);
        let vopts = value_opts(&self.spec);
        let keys = self
            .key_cols
            .iter()
            .map(|s| bind_source(batch, s, kopts))
            .collect::<Result<Vec<_>, _>>()?;
        let values = self
            .value_cols
            .iter()
            .map(|c| match &c.source {
                Some(s) => bind_source(batch, s, vopts),
                None => Ok(Box::new(NullW) as W<'_>),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let column: W<'_> = match &self.column_src {
            Some(s) => bind_source(batch, s, vopts)?,
            None => Box::new(NullW),
        };

        let n = batch.num_rows();
        out.rows.reserve(n);
        let EncodedRows {
            buf,
            rows,
            fields,
            skipped_null_keys,
        } = out;
        for row in 0..n {
            let key_start = buf.len();
            if !self.write_key(&keys, row, buf) {
                buf.truncate(key_start);
                *skipped_null_keys += 1;
                continue;
            }
            let key_end = buf.len();
            let fields_start = fields.len();
            let mut value_start = key_end;
            match &self.spec.format {
                ValueFormat::Json => {
                    buf.push(b'{');
                    for (i, (c, w)) in self.value_cols.iter().zip(&values).enumerate() {
                        if i > 0 {
                            buf.push(b',');
                        }
                        buf.extend_from_slice(&c.json_prefix);
                        json_or_null(w.as_ref(), row, buf);
                    }
                    buf.push(b'}');
                }
                ValueFormat::Hash => {
                    for (c, w) in self.value_cols.iter().zip(&values) {
                        if w.is_null(row) {
                            continue;
                        }
                        let name_start = buf.len();
                        buf.extend_from_slice(&c.name);
                        let name_end = buf.len();
                        w.text(row, buf);
                        fields.push(FieldSpan {
                            name_start,
                            name_end,
                            value_end: buf.len(),
                        });
                    }
                    value_start = buf.len();
                }
                ValueFormat::Column(_) => {
                    if !column.is_null(row) {
                        column.text(row, buf);
                    }
                }
                ValueFormat::Delimited {
                    separator,
                    null_string,
                } => {
                    for (i, w) in values.iter().enumerate() {
                        if i > 0 {
                            buf.extend_from_slice(separator.as_bytes());
                        }
                        if w.is_null(row) {
                            buf.extend_from_slice(null_string.as_bytes());
                        } else {
                            w.text(row, buf);
                        }
                    }
                }
            }
            rows.push(RowSpan {
                key_start,
                key_end,
                value_start,
                value_end: buf.len(),
                fields_start,
                fields_end: fields.len(),
            });
        }
        Ok(())
    }

    /// Writes the key of `row`; returns false (leaving partial bytes) if a key
    /// column is null or renders empty.
    fn write_key(&self, keys: &[W<'_>], row: usize, buf: &mut Vec<u8>) -> bool {
        for part in &self.key_parts {
            match part {
                KeyPart::Literal(b) => buf.extend_from_slice(b),
                KeyPart::Column(i) => {
                    let w = &keys[*i];
                    if w.is_null(row) {
                        return false;
                    }
                    let before = buf.len();
                    w.text(row, buf);
                    if buf.len() == before {
                        return false;
                    }
                }
            }
        }
        true
    }
}

fn key_opts(spec: &EncodeSpec) -> Opts {
    Opts {
        date: DateEncoding::Iso8601,
        ts: spec.timestamp,
    }
}

fn value_opts(spec: &EncodeSpec) -> Opts {
    Opts {
        date: spec.date,
        ts: spec.timestamp,
    }
}

/// Checks at construction time that `src` can be bound, by binding it to an
/// empty array of its type.
fn validate(src: &Source, opts: Opts) -> Result<(), EncodeError> {
    if !constructible(&src.data_type) {
        return Err(Problem::Type.into_error(src));
    }
    let empty = new_empty_array(&src.data_type);
    let res = bind(empty.as_ref(), opts).map(|_| ());
    res.map_err(|p| p.into_error(src))
}

/// Rejects types for which `new_empty_array` could panic (and which we do
/// not support anyway).
fn constructible(dt: &DataType) -> bool {
    use DataType as D;
    match dt {
        D::Dictionary(k, v) => k.is_dictionary_key_type() && constructible(v),
        D::List(f) | D::LargeList(f) | D::ListView(f) | D::LargeListView(f) => {
            constructible(f.data_type())
        }
        D::FixedSizeList(f, n) => *n >= 0 && constructible(f.data_type()),
        D::FixedSizeBinary(n) => *n >= 0,
        D::Map(f, _) => match f.data_type() {
            D::Struct(fs) => fs.len() == 2 && fs.iter().all(|f| constructible(f.data_type())),
            _ => false,
        },
        D::Struct(fs) => fs.iter().all(|f| constructible(f.data_type())),
        D::Union(..) | D::RunEndEncoded(..) | D::Interval(_) => false,
        _ => true,
    }
}

fn bind_source<'a>(batch: &'a RecordBatch, src: &Source, opts: Opts) -> Result<W<'a>, EncodeError> {
    let mismatch = || EncodeError::BatchMismatch {
        column: src.name.clone(),
        expected: src.data_type.clone(),
    };
    let schema = batch.schema_ref();
    if src.index >= batch.num_columns() || schema.field(src.index).name() != &src.name {
        return Err(mismatch());
    }
    let arr = batch.column(src.index);
    if arr.data_type() != &src.data_type {
        return Err(mismatch());
    }
    bind(arr.as_ref(), opts).map_err(|_| mismatch())
}

// ---------------------------------------------------------------------------
// Writers: one per (column, batch), bound to downcast arrays.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Opts {
    date: DateEncoding,
    ts: TimestampEncoding,
}

enum Problem {
    Type,
    Timezone(String),
}

impl Problem {
    fn into_error(self, src: &Source) -> EncodeError {
        match self {
            Problem::Type => EncodeError::UnsupportedType {
                column: src.name.clone(),
                data_type: src.data_type.clone(),
            },
            Problem::Timezone(timezone) => EncodeError::InvalidTimezone {
                column: src.name.clone(),
                timezone,
            },
        }
    }
}

/// Writes one array's values. `json`, `text` and `json_key` may only be
/// called for rows where `is_null` is false.
trait Writer {
    /// Null, or (for floats) not finite.
    fn is_null(&self, i: usize) -> bool;
    /// JSON form.
    fn json(&self, i: usize, out: &mut Vec<u8>);
    /// Text form (unquoted, strings raw).
    fn text(&self, i: usize, out: &mut Vec<u8>);
    /// JSON string holding the text form, for map keys. The default suits
    /// types whose text form never needs JSON escaping.
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        out.push(b'"');
        self.text(i, out);
        out.push(b'"');
    }
}

type W<'a> = Box<dyn Writer + 'a>;

fn json_or_null(w: &dyn Writer, i: usize, out: &mut Vec<u8>) {
    if w.is_null(i) {
        out.extend_from_slice(b"null");
    } else {
        w.json(i, out);
    }
}

/// JSON key for nested types: their JSON text, escaped into a string.
fn escaped_json_key(w: &dyn Writer, i: usize, out: &mut Vec<u8>) {
    let start = out.len();
    w.json(i, out);
    let raw = out.split_off(start);
    write_json_str(out, &raw);
}

fn downcast<T>(o: Option<T>) -> Result<T, Problem> {
    o.ok_or(Problem::Type)
}

fn bind<'a>(arr: &'a dyn Array, o: Opts) -> Result<W<'a>, Problem> {
    use DataType as D;
    Ok(match arr.data_type() {
        D::Null => Box::new(NullW),
        D::Boolean => Box::new(BoolW(downcast(arr.as_boolean_opt())?)),
        D::Int8 => int::<Int8Type>(arr)?,
        D::Int16 => int::<Int16Type>(arr)?,
        D::Int32 => int::<Int32Type>(arr)?,
        D::Int64 => int::<Int64Type>(arr)?,
        D::UInt8 => int::<UInt8Type>(arr)?,
        D::UInt16 => int::<UInt16Type>(arr)?,
        D::UInt32 => int::<UInt32Type>(arr)?,
        D::UInt64 => int::<UInt64Type>(arr)?,
        D::Float16 => float::<Float16Type>(arr)?,
        D::Float32 => float::<Float32Type>(arr)?,
        D::Float64 => float::<Float64Type>(arr)?,
        D::Decimal32(_, s) => decimal::<Decimal32Type>(arr, *s)?,
        D::Decimal64(_, s) => decimal::<Decimal64Type>(arr, *s)?,
        D::Decimal128(_, s) => decimal::<Decimal128Type>(arr, *s)?,
        D::Decimal256(_, s) => decimal::<Decimal256Type>(arr, *s)?,
        D::Utf8 => Box::new(StrW(downcast(arr.as_string_opt::<i32>())?)),
        D::LargeUtf8 => Box::new(StrW(downcast(arr.as_string_opt::<i64>())?)),
        D::Utf8View => Box::new(StrW(downcast(arr.as_string_view_opt())?)),
        D::Binary => Box::new(BinW(downcast(arr.as_binary_opt::<i32>())?)),
        D::LargeBinary => Box::new(BinW(downcast(arr.as_binary_opt::<i64>())?)),
        D::BinaryView => Box::new(BinW(downcast(arr.as_binary_view_opt())?)),
        D::FixedSizeBinary(_) => Box::new(BinW(downcast(arr.as_fixed_size_binary_opt())?)),
        D::Date32 => date::<Date32Type>(arr, 1, o)?,
        D::Date64 => date::<Date64Type>(arr, MILLIS_PER_DAY, o)?,
        D::Timestamp(unit, tz) => {
            let tz = parse_tz(tz.as_deref())?;
            match unit {
                TimeUnit::Second => ts::<TimestampSecondType>(arr, 1, 0, tz, o)?,
                TimeUnit::Millisecond => ts::<TimestampMillisecondType>(arr, 1_000, 3, tz, o)?,
                TimeUnit::Microsecond => ts::<TimestampMicrosecondType>(arr, 1_000_000, 6, tz, o)?,
                TimeUnit::Nanosecond => {
                    ts::<TimestampNanosecondType>(arr, 1_000_000_000, 9, tz, o)?
                }
            }
        }
        D::Time32(TimeUnit::Second) => time::<Time32SecondType>(arr, 1, 0)?,
        D::Time32(TimeUnit::Millisecond) => time::<Time32MillisecondType>(arr, 1_000, 3)?,
        D::Time64(TimeUnit::Microsecond) => time::<Time64MicrosecondType>(arr, 1_000_000, 6)?,
        D::Time64(TimeUnit::Nanosecond) => time::<Time64NanosecondType>(arr, 1_000_000_000, 9)?,
        D::Duration(TimeUnit::Second) => int::<DurationSecondType>(arr)?,
        D::Duration(TimeUnit::Millisecond) => int::<DurationMillisecondType>(arr)?,
        D::Duration(TimeUnit::Microsecond) => int::<DurationMicrosecondType>(arr)?,
        D::Duration(TimeUnit::Nanosecond) => int::<DurationNanosecondType>(arr)?,
        D::List(_) => list::<i32>(downcast(arr.as_list_opt::<i32>())?, o)?,
        D::LargeList(_) => list::<i64>(downcast(arr.as_list_opt::<i64>())?, o)?,
        D::ListView(_) => list_view::<i32>(downcast(arr.as_list_view_opt::<i32>())?, o)?,
        D::LargeListView(_) => list_view::<i64>(downcast(arr.as_list_view_opt::<i64>())?, o)?,
        D::FixedSizeList(..) => {
            let a: &'a FixedSizeListArray = downcast(arr.as_fixed_size_list_opt())?;
            Box::new(FixedListW {
                arr: a,
                child: bind(a.values().as_ref(), o)?,
            })
        }
        D::Struct(_) => {
            let a: &'a StructArray = downcast(arr.as_struct_opt())?;
            let mut fields = Vec::with_capacity(a.num_columns());
            for (f, col) in a.fields().iter().zip(a.columns()) {
                let mut prefix = vec![b','];
                write_json_str(&mut prefix, f.name().as_bytes());
                prefix.push(b':');
                fields.push((prefix, bind(col.as_ref(), o)?));
            }
            Box::new(StructW { arr: a, fields })
        }
        D::Map(..) => {
            let a: &'a MapArray = downcast(arr.as_map_opt())?;
            Box::new(MapW {
                arr: a,
                keys: bind(a.keys().as_ref(), o)?,
                values: bind(a.values().as_ref(), o)?,
            })
        }
        D::Dictionary(k, _) => match **k {
            D::Int8 => dict::<Int8Type>(arr, o)?,
            D::Int16 => dict::<Int16Type>(arr, o)?,
            D::Int32 => dict::<Int32Type>(arr, o)?,
            D::Int64 => dict::<Int64Type>(arr, o)?,
            D::UInt8 => dict::<UInt8Type>(arr, o)?,
            D::UInt16 => dict::<UInt16Type>(arr, o)?,
            D::UInt32 => dict::<UInt32Type>(arr, o)?,
            D::UInt64 => dict::<UInt64Type>(arr, o)?,
            _ => return Err(Problem::Type),
        },
        _ => return Err(Problem::Type),
    })
}

// --- null, bool, ints -------------------------------------------------------

struct NullW;

impl Writer for NullW {
    fn is_null(&self, _: usize) -> bool {
        true
    }
    fn json(&self, _: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(b"null");
    }
    fn text(&self, _: usize, _: &mut Vec<u8>) {}
}

struct BoolW<'a>(&'a BooleanArray);

impl Writer for BoolW<'_> {
    fn is_null(&self, i: usize) -> bool {
        self.0.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        self.text(i, out)
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.0.value(i) { b"true" } else { b"false" });
    }
}

struct IntW<'a, T: ArrowPrimitiveType>(&'a PrimitiveArray<T>);

fn int<T: ArrowPrimitiveType>(arr: &dyn Array) -> Result<W<'_>, Problem>
where
    T::Native: itoa::Integer,
{
    Ok(Box::new(IntW(downcast(arr.as_primitive_opt::<T>())?)))
}

impl<T: ArrowPrimitiveType> Writer for IntW<'_, T>
where
    T::Native: itoa::Integer,
{
    fn is_null(&self, i: usize) -> bool {
        self.0.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        self.text(i, out)
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        write_int(out, self.0.value(i));
    }
}

fn write_int<I: itoa::Integer>(out: &mut Vec<u8>, v: I) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

// --- floats ----------------------------------------------------------------

/// Arrow float types printable with ryu.
trait RyuFloat: ArrowPrimitiveType {
    fn finite(v: Self::Native) -> bool;
    fn write(v: Self::Native, out: &mut Vec<u8>);
}

impl RyuFloat for Float32Type {
    fn finite(v: f32) -> bool {
        v.is_finite()
    }
    fn write(v: f32, out: &mut Vec<u8>) {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

impl RyuFloat for Float64Type {
    fn finite(v: f64) -> bool {
        v.is_finite()
    }
    fn write(v: f64, out: &mut Vec<u8>) {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

/// Half floats are printed as the exactly equal `f32` (shortest for f32).
impl RyuFloat for Float16Type {
    fn finite(v: Self::Native) -> bool {
        v.to_f32().is_finite()
    }
    fn write(v: Self::Native, out: &mut Vec<u8>) {
        Float32Type::write(v.to_f32(), out)
    }
}

struct FloatW<'a, T: ArrowPrimitiveType>(&'a PrimitiveArray<T>);

fn float<T: RyuFloat>(arr: &dyn Array) -> Result<W<'_>, Problem> {
    Ok(Box::new(FloatW(downcast(arr.as_primitive_opt::<T>())?)))
}

impl<T: RyuFloat> Writer for FloatW<'_, T> {
    fn is_null(&self, i: usize) -> bool {
        self.0.is_null(i) || !T::finite(self.0.value(i))
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        self.text(i, out)
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        T::write(self.0.value(i), out)
    }
}

// --- decimals --------------------------------------------------------------

/// Decimal natives: writes the digits of `|self|`, returns whether negative.
trait DecimalDigits: Copy {
    fn write_abs(self, out: &mut Vec<u8>) -> bool;
}

impl DecimalDigits for i32 {
    fn write_abs(self, out: &mut Vec<u8>) -> bool {
        write_int(out, self.unsigned_abs());
        self < 0
    }
}

impl DecimalDigits for i64 {
    fn write_abs(self, out: &mut Vec<u8>) -> bool {
        write_int(out, self.unsigned_abs());
        self < 0
    }
}

impl DecimalDigits for i128 {
    fn write_abs(self, out: &mut Vec<u8>) -> bool {
        write_int(out, self.unsigned_abs());
        self < 0
    }
}

impl DecimalDigits for i256 {
    fn write_abs(self, out: &mut Vec<u8>) -> bool {
        if let Some(v) = self.to_i128() {
            return v.write_abs(out);
        }
        let start = out.len();
        write!(out, "{self}").expect("writing to a Vec cannot fail");
        if out.get(start) == Some(&b'-') {
            out.remove(start);
            true
        } else {
            false
        }
    }
}

/// Writes `v * 10^-scale` as plain decimal text: `12.30`, `-0.05`, `1200`.
fn write_decimal<N: DecimalDigits>(out: &mut Vec<u8>, v: N, scale: i8) {
    let start = out.len();
    let neg = v.write_abs(out);
    let n = out.len() - start;
    let is_zero = n == 1 && out[start] == b'0';
    if scale > 0 {
        let s = scale as usize;
        if n > s {
            let at = out.len() - s;
            out.insert(at, b'.');
        } else {
            let prefix = [b'0', b'.'].into_iter().chain(iter::repeat_n(b'0', s - n));
            out.splice(start..start, prefix);
        }
    } else if scale < 0 && !is_zero {
        out.extend(iter::repeat_n(b'0', scale.unsigned_abs() as usize));
    }
    if neg && !is_zero {
        out.insert(start, b'-');
    }
}

struct DecW<'a, T: DecimalType>(&'a PrimitiveArray<T>, i8);

fn decimal<T: DecimalType>(arr: &dyn Array, scale: i8) -> Result<W<'_>, Problem>
where
    T::Native: DecimalDigits,
{
    Ok(Box::new(DecW(
        downcast(arr.as_primitive_opt::<T>())?,
        scale,
    )))
}

impl<T: DecimalType> Writer for DecW<'_, T>
where
    T::Native: DecimalDigits,
{
    fn is_null(&self, i: usize) -> bool {
        self.0.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        out.push(b'"');
        self.text(i, out);
        out.push(b'"');
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        write_decimal(out, self.0.value(i), self.1);
    }
}

// --- strings and binary ----------------------------------------------------

struct StrW<A>(A);

impl<A> Writer for StrW<A>
where
    A: ArrayAccessor,
    A::Item: AsRef<[u8]>,
{
    fn is_null(&self, i: usize) -> bool {
        self.0.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        write_json_str(out, self.0.value(i).as_ref());
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.value(i).as_ref());
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        self.json(i, out)
    }
}

struct BinW<A>(A);

impl<A> Writer for BinW<A>
where
    A: ArrayAccessor,
    A::Item: AsRef<[u8]>,
{
    fn is_null(&self, i: usize) -> bool {
        self.0.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        out.push(b'"');
        self.text(i, out);
        out.push(b'"');
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        let bytes = self.0.value(i);
        let bytes = bytes.as_ref();
        let start = out.len();
        let n = base64::encoded_len(bytes.len(), true).expect("base64 length overflow");
        out.resize(start + n, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(bytes, &mut out[start..])
            .expect("buffer sized by encoded_len");
        out.truncate(start + written);
    }
}

/// Writes `s` as a JSON string: `"` and `\` escaped, control characters
/// below 0x20 as `\n` `\r` `\t` `\b` `\f` or `\u00XX`, everything else as-is.
fn write_json_str(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&s[run..i]);
        out.extend_from_slice(esc);
        run = i + 1;
    }
    out.extend_from_slice(&s[run..]);
    out.push(b'"');
}

// --- dates, times, timestamps ----------------------------------------------

const MILLIS_PER_DAY: i64 = 86_400_000;
const SECS_PER_DAY: i64 = 86_400;

struct DateW<'a, T: ArrowPrimitiveType> {
    arr: &'a PrimitiveArray<T>,
    per_day: i64,
    enc: DateEncoding,
}

fn date<T: ArrowPrimitiveType>(arr: &dyn Array, per_day: i64, o: Opts) -> Result<W<'_>, Problem>
where
    T::Native: Into<i64>,
{
    Ok(Box::new(DateW {
        arr: downcast(arr.as_primitive_opt::<T>())?,
        per_day,
        enc: o.date,
    }))
}

impl<T: ArrowPrimitiveType> Writer for DateW<'_, T>
where
    T::Native: Into<i64>,
{
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        match self.enc {
            DateEncoding::Iso8601 => {
                out.push(b'"');
                self.text(i, out);
                out.push(b'"');
            }
            DateEncoding::EpochDays => self.text(i, out),
        }
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        let days = self.arr.value(i).into().div_euclid(self.per_day);
        match self.enc {
            DateEncoding::Iso8601 => write_date(out, days),
            DateEncoding::EpochDays => write_int(out, days),
        }
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`), total over the inputs we produce.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn write_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut b = itoa::Buffer::new();
    let s = b.format(v).as_bytes();
    out.extend(iter::repeat_n(b'0', width.saturating_sub(s.len())));
    out.extend_from_slice(s);
}

fn write2(out: &mut Vec<u8>, v: u64) {
    write_padded(out, v, 2);
}

fn write_date(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        write_padded(out, y as u64, 4);
    } else {
        out.push(if y < 0 { b'-' } else { b'+' });
        write_padded(out, y.unsigned_abs(), 4);
    }
    out.push(b'-');
    write2(out, u64::from(m));
    out.push(b'-');
    write2(out, u64::from(d));
}

/// `HH:MM:SS` of a second-of-day (hours may exceed 23 for odd inputs).
fn write_hms(out: &mut Vec<u8>, secs: u64) {
    write2(out, secs / 3600);
    out.push(b':');
    write2(out, secs / 60 % 60);
    out.push(b':');
    write2(out, secs % 60);
}

fn write_frac(out: &mut Vec<u8>, frac: u64, digits: usize) {
    if digits > 0 {
        out.push(b'.');
        write_padded(out, frac, digits);
    }
}

struct TimeW<'a, T: ArrowPrimitiveType> {
    arr: &'a PrimitiveArray<T>,
    per_sec: u64,
    digits: usize,
}

fn time<T: ArrowPrimitiveType>(
    arr: &dyn Array,
    per_sec: u64,
    digits: usize,
) -> Result<W<'_>, Problem>
where
    T::Native: Into<i64>,
{
    Ok(Box::new(TimeW {
        arr: downcast(arr.as_primitive_opt::<T>())?,
        per_sec,
        digits,
    }))
}

impl<T: ArrowPrimitiveType> Writer for TimeW<'_, T>
where
    T::Native: Into<i64>,
{
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        out.push(b'"');
        self.text(i, out);
        out.push(b'"');
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        let v: i64 = self.arr.value(i).into();
        if v < 0 {
            out.push(b'-');
        }
        let v = v.unsigned_abs();
        write_hms(out, v / self.per_sec);
        write_frac(out, v % self.per_sec, self.digits);
    }
}

/// How a timestamp column's zone is rendered.
#[derive(Clone, Copy)]
enum TzMode {
    /// No zone, `UTC` or a zero offset: UTC with `Z`.
    Utc,
    /// Fixed offset in seconds east of UTC.
    Fixed(i32),
    /// IANA zone; offset looked up per instant.
    Named(chrono_tz::Tz),
}

fn parse_tz(tz: Option<&str>) -> Result<TzMode, Problem> {
    let Some(s) = tz else {
        return Ok(TzMode::Utc);
    };
    if matches!(s, "UTC" | "utc" | "Z" | "z" | "Etc/UTC") {
        return Ok(TzMode::Utc);
    }
    if let Some(off) = parse_fixed_offset(s) {
        return Ok(if off == 0 {
            TzMode::Utc
        } else {
            TzMode::Fixed(off)
        });
    }
    s.parse::<chrono_tz::Tz>()
        .map(TzMode::Named)
        .map_err(|_| Problem::Timezone(s.to_string()))
}

/// Parses `+HH`, `+HHMM` or `+HH:MM` (or `-`) into seconds east of UTC.
fn parse_fixed_offset(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = match &b[1..] {
        [h1, h2] => ([*h1, *h2], [b'0', b'0']),
        [h1, h2, m1, m2] | [h1, h2, b':', m1, m2] => ([*h1, *h2], [*m1, *m2]),
        _ => return None,
    };
    let two = |d: [u8; 2]| -> Option<i32> {
        if d.iter().all(u8::is_ascii_digit) {
            Some(i32::from(d[0] - b'0') * 10 + i32::from(d[1] - b'0'))
        } else {
            None
        }
    };
    let (h, m) = (two(h)?, two(m)?);
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

fn write_offset(out: &mut Vec<u8>, off: i32) {
    out.push(if off < 0 { b'-' } else { b'+' });
    let a = u64::from(off.unsigned_abs());
    write2(out, a / 3600);
    out.push(b':');
    write2(out, a / 60 % 60);
    if a % 60 != 0 {
        // Historical local-mean-time offsets have seconds; keep them so the
        // instant stays exact.
        out.push(b':');
        write2(out, a % 60);
    }
}

struct TsW<'a, T: ArrowPrimitiveType> {
    arr: &'a PrimitiveArray<T>,
    per_sec: i64,
    digits: usize,
    tz: TzMode,
    enc: TimestampEncoding,
}

fn ts<T: ArrowPrimitiveType>(
    arr: &dyn Array,
    per_sec: i64,
    digits: usize,
    tz: TzMode,
    o: Opts,
) -> Result<W<'_>, Problem>
where
    T::Native: Into<i64>,
{
    Ok(Box::new(TsW {
        arr: downcast(arr.as_primitive_opt::<T>())?,
        per_sec,
        digits,
        tz,
        enc: o.ts,
    }))
}

impl<T: ArrowPrimitiveType> Writer for TsW<'_, T>
where
    T::Native: Into<i64>,
{
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        match self.enc {
            TimestampEncoding::Iso8601 => {
                out.push(b'"');
                self.text(i, out);
                out.push(b'"');
            }
            TimestampEncoding::EpochMillis => self.text(i, out),
        }
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        let v: i64 = self.arr.value(i).into();
        match self.enc {
            TimestampEncoding::EpochMillis => {
                let millis = match self.per_sec {
                    1 => v.saturating_mul(1_000),
                    1_000 => v,
                    p => v.div_euclid(p / 1_000),
                };
                write_int(out, millis);
            }
            TimestampEncoding::Iso8601 => {
                let secs = v.div_euclid(self.per_sec);
                let frac = v.rem_euclid(self.per_sec) as u64;
                let offset = match self.tz {
                    TzMode::Utc => None,
                    TzMode::Fixed(o) => Some(o),
                    TzMode::Named(tz) => Some(
                        chrono::DateTime::from_timestamp(secs, 0)
                            .map(|dt| {
                                tz.offset_from_utc_datetime(&dt.naive_utc())
                                    .fix()
                                    .local_minus_utc()
                            })
                            .unwrap_or(0),
                    ),
                };
                let local = secs.saturating_add(i64::from(offset.unwrap_or(0)));
                write_date(out, local.div_euclid(SECS_PER_DAY));
                out.push(b'T');
                write_hms(out, local.rem_euclid(SECS_PER_DAY) as u64);
                write_frac(out, frac, self.digits);
                match offset {
                    None => out.push(b'Z'),
                    Some(o) => write_offset(out, o),
                }
            }
        }
    }
}

// --- nested ----------------------------------------------------------------

fn write_elements(child: &dyn Writer, range: std::ops::Range<usize>, out: &mut Vec<u8>) {
    out.push(b'[');
    let start = range.start;
    for j in range {
        if j > start {
            out.push(b',');
        }
        json_or_null(child, j, out);
    }
    out.push(b']');
}

struct ListW<'a, O: OffsetSizeTrait> {
    arr: &'a GenericListArray<O>,
    child: W<'a>,
}

fn list<'a, O: OffsetSizeTrait>(arr: &'a GenericListArray<O>, o: Opts) -> Result<W<'a>, Problem> {
    Ok(Box::new(ListW {
        arr,
        child: bind(arr.values().as_ref(), o)?,
    }))
}

impl<O: OffsetSizeTrait> Writer for ListW<'_, O> {
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        let offs = self.arr.value_offsets();
        write_elements(
            self.child.as_ref(),
            offs[i].as_usize()..offs[i + 1].as_usize(),
            out,
        );
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        self.json(i, out)
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        escaped_json_key(self, i, out)
    }
}

struct ListViewW<'a, O: OffsetSizeTrait> {
    arr: &'a GenericListViewArray<O>,
    child: W<'a>,
}

fn list_view<'a, O: OffsetSizeTrait>(
    arr: &'a GenericListViewArray<O>,
    o: Opts,
) -> Result<W<'a>, Problem> {
    Ok(Box::new(ListViewW {
        arr,
        child: bind(arr.values().as_ref(), o)?,
    }))
}

impl<O: OffsetSizeTrait> Writer for ListViewW<'_, O> {
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        let start = self.arr.value_offsets()[i].as_usize();
        let len = self.arr.value_sizes()[i].as_usize();
        write_elements(self.child.as_ref(), start..start + len, out);
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        self.json(i, out)
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        escaped_json_key(self, i, out)
    }
}

struct FixedListW<'a> {
    arr: &'a FixedSizeListArray,
    child: W<'a>,
}

impl Writer for FixedListW<'_> {
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        let start = self.arr.value_offset_at(i);
        let len = self.arr.value_length() as usize;
        write_elements(self.child.as_ref(), start..start + len, out);
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        self.json(i, out)
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        escaped_json_key(self, i, out)
    }
}

struct StructW<'a> {
    arr: &'a StructArray,
    /// (`,"name":`, writer) per child field.
    fields: Vec<(Vec<u8>, W<'a>)>,
}

impl Writer for StructW<'_> {
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        for (n, (prefix, w)) in self.fields.iter().enumerate() {
            let prefix = if n == 0 { &prefix[1..] } else { &prefix[..] };
            out.extend_from_slice(prefix);
            json_or_null(w.as_ref(), i, out);
        }
        out.push(b'}');
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        self.json(i, out)
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        escaped_json_key(self, i, out)
    }
}

struct MapW<'a> {
    arr: &'a MapArray,
    keys: W<'a>,
    values: W<'a>,
}

impl Writer for MapW<'_> {
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        let offs = self.arr.value_offsets();
        let (start, end) = (offs[i] as usize, offs[i + 1] as usize);
        out.push(b'{');
        for j in start..end {
            if j > start {
                out.push(b',');
            }
            if self.keys.is_null(j) {
                // Arrow forbids null map keys; keep the output valid anyway.
                out.extend_from_slice(b"\"\"");
            } else {
                self.keys.json_key(j, out);
            }
            out.push(b':');
            json_or_null(self.values.as_ref(), j, out);
        }
        out.push(b'}');
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        self.json(i, out)
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        escaped_json_key(self, i, out)
    }
}

struct DictW<'a, K: ArrowDictionaryKeyType> {
    keys: &'a PrimitiveArray<K>,
    values: W<'a>,
}

fn dict<K: ArrowDictionaryKeyType>(arr: &dyn Array, o: Opts) -> Result<W<'_>, Problem> {
    let d = downcast(arr.as_dictionary_opt::<K>())?;
    Ok(Box::new(DictW {
        keys: d.keys(),
        values: bind(d.values().as_ref(), o)?,
    }))
}

impl<K: ArrowDictionaryKeyType> DictW<'_, K> {
    fn idx(&self, i: usize) -> usize {
        self.keys.values()[i].as_usize()
    }
}

impl<K: ArrowDictionaryKeyType> Writer for DictW<'_, K> {
    fn is_null(&self, i: usize) -> bool {
        self.keys.is_null(i) || self.values.is_null(self.idx(i))
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        self.values.json(self.idx(i), out)
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        self.values.text(self.idx(i), out)
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        self.values.json_key(self.idx(i), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{Int32Builder, MapBuilder, StringBuilder};
    use arrow_array::types::Int32Type;
    use arrow_array::*;
    use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
    use arrow_schema::{Field, Fields, IntervalUnit, Schema};

    fn spec(key: &str, format: ValueFormat, cols: &[&str]) -> EncodeSpec {
        EncodeSpec {
            key: KeyTemplate::parse(key).unwrap(),
            format,
            columns: cols.iter().map(|c| c.to_string()).collect(),
            timestamp: TimestampEncoding::Iso8601,
            date: DateEncoding::Iso8601,
        }
    }

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(cols).unwrap()
    }

    fn encode(spec: EncodeSpec, b: &RecordBatch) -> EncodedRows {
        let enc = RowEncoder::new(Arc::new(spec), b.schema_ref()).unwrap();
        let mut out = EncodedRows::new();
        enc.encode_batch(b, &mut out).unwrap();
        out
    }

    fn s(b: &[u8]) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    fn keys(out: &EncodedRows) -> Vec<String> {
        (0..out.len()).map(|i| s(out.key(i))).collect()
    }

    fn values(out: &EncodedRows) -> Vec<String> {
        (0..out.len()).map(|i| s(out.value(i))).collect()
    }

    fn ids(n: usize) -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(0..n as i64))
    }

    /// JSON forms of `v` with the given encodings (one per row).
    fn json_enc(v: ArrayRef, ts: TimestampEncoding, date: DateEncoding) -> Vec<String> {
        let b = batch(vec![("id", ids(v.len())), ("v", v)]);
        let mut sp = spec("{id}", ValueFormat::Json, &["v"]);
        sp.timestamp = ts;
        sp.date = date;
        values(&encode(sp, &b))
            .into_iter()
            .map(|j| {
                // Every value must be valid JSON.
                serde_json::from_str::<serde_json::Value>(&j).unwrap();
                j.strip_prefix("{\"v\":")
                    .unwrap()
                    .strip_suffix('}')
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn json(v: ArrayRef) -> Vec<String> {
        json_enc(v, TimestampEncoding::Iso8601, DateEncoding::Iso8601)
    }

    /// Text forms of `v` (null rendered as `NULL`).
    fn text_enc(v: ArrayRef, ts: TimestampEncoding, date: DateEncoding) -> Vec<String> {
        let b = batch(vec![("id", ids(v.len())), ("v", v)]);
        let mut sp = spec(
            "{id}",
            ValueFormat::Delimited {
                separator: "|".into(),
                null_string: "NULL".into(),
            },
            &["v"],
        );
        sp.timestamp = ts;
        sp.date = date;
        values(&encode(sp, &b))
    }

    fn text(v: ArrayRef) -> Vec<String> {
        text_enc(v, TimestampEncoding::Iso8601, DateEncoding::Iso8601)
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    // --- formats -----------------------------------------------------------

    fn orders() -> RecordBatch {
        let tags = {
            let mut b = arrow_array::builder::ListBuilder::new(StringBuilder::new());
            b.values().append_value("a");
            b.values().append_value("b");
            b.append(true);
            b.append(false);
            Arc::new(b.finish()) as ArrayRef
        };
        let addr = Arc::new(StructArray::from(vec![(
            Arc::new(Field::new("city", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec![Some("x"), None])) as ArrayRef,
        )])) as ArrayRef;
        batch(vec![
            (
                "user_id",
                Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef,
            ),
            (
                "amount",
                Arc::new(
                    Decimal128Array::from(vec![Some(1230), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ),
            (
                "status",
                Arc::new(StringArray::from(vec![Some("paid"), None])),
            ),
            ("tags", tags),
            ("addr", addr),
            (
                "at",
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_795_162_530_123),
                    None,
                ])),
            ),
        ])
    }

    const ORDER_COLS: &[&str] = &["user_id", "amount", "status", "tags", "addr", "at"];

    #[test]
    fn json_format_matches_contract_example() {
        let out = encode(
            spec("cold:{{orders}}:{user_id}", ValueFormat::Json, ORDER_COLS),
            &orders(),
        );
        assert_eq!(keys(&out), strs(&["cold:{orders}:7", "cold:{orders}:8"]));
        assert_eq!(
            values(&out),
            strs(&[
                r#"{"user_id":7,"amount":"12.30","status":"paid","tags":["a","b"],"addr":{"city":"x"},"at":"2026-11-20T08:15:30.123Z"}"#,
                r#"{"user_id":8,"amount":null,"status":null,"tags":null,"addr":{"city":null},"at":null}"#,
            ])
        );
        assert_eq!(out.fields(0).count(), 0);
        let total: usize = (0..2).map(|i| out.key(i).len() + out.value(i).len()).sum();
        assert_eq!(out.byte_len(), total);
    }

    #[test]
    fn hash_format_skips_null_columns() {
        let out = encode(
            spec("o:{user_id}", ValueFormat::Hash, ORDER_COLS),
            &orders(),
        );
        let f0: Vec<(String, String)> = out.fields(0).map(|(k, v)| (s(k), s(v))).collect();
        let expect = [
            ("user_id", "7"),
            ("amount", "12.30"),
            ("status", "paid"),
            ("tags", r#"["a","b"]"#),
            ("addr", r#"{"city":"x"}"#),
            ("at", "2026-11-20T08:15:30.123Z"),
        ];
        let expect: Vec<(String, String)> = expect
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(f0, expect);
        let f1: Vec<(String, String)> = out.fields(1).map(|(k, v)| (s(k), s(v))).collect();
        assert_eq!(
            f1,
            vec![
                ("user_id".to_string(), "8".to_string()),
                ("addr".to_string(), r#"{"city":null}"#.to_string())
            ]
        );
        assert_eq!(out.value(0), b"");
        assert_eq!(keys(&out), strs(&["o:7", "o:8"]));
    }

    #[test]
    fn hash_all_null_row_has_no_fields_and_nan_is_null() {
        let b = batch(vec![
            ("id", ids(2)),
            (
                "f",
                Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(2.5)])) as ArrayRef,
            ),
        ]);
        let out = encode(spec("{id}", ValueFormat::Hash, &["f", "missing"]), &b);
        assert_eq!(out.fields(0).count(), 0);
        let f1: Vec<(Vec<u8>, Vec<u8>)> = out
            .fields(1)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(f1, vec![(b"f".to_vec(), b"2.5".to_vec())]);
    }

    #[test]
    fn column_format() {
        let out = encode(
            spec("o:{user_id}", ValueFormat::Column("status".into()), &[]),
            &orders(),
        );
        assert_eq!(values(&out), strs(&["paid", ""]));
        let out = encode(
            spec("o:{user_id}", ValueFormat::Column("tags".into()), &[]),
            &orders(),
        );
        assert_eq!(values(&out), strs(&[r#"["a","b"]"#, ""]));
        // A column missing from the file is null: empty values.
        let out = encode(
            spec("o:{user_id}", ValueFormat::Column("nope".into()), &[]),
            &orders(),
        );
        assert_eq!(values(&out), strs(&["", ""]));
    }

    #[test]
    fn delimited_format() {
        let f = ValueFormat::Delimited {
            separator: "\t".into(),
            null_string: "\\N".into(),
        };
        let out = encode(spec("o:{user_id}", f, ORDER_COLS), &orders());
        assert_eq!(
            values(&out),
            strs(&[
                "7\t12.30\tpaid\t[\"a\",\"b\"]\t{\"city\":\"x\"}\t2026-11-20T08:15:30.123Z",
                "8\t\\N\t\\N\t\\N\t{\"city\":null}\t\\N",
            ])
        );
    }

    // --- keys --------------------------------------------------------------

    #[test]
    fn composite_keys_of_every_key_type() {
        let dict: DictionaryArray<Int8Type> = vec!["eu", "us"].into_iter().collect();
        let b = batch(vec![
            ("i8", Arc::new(Int8Array::from(vec![-128, 1])) as ArrayRef),
            ("u64", Arc::new(UInt64Array::from(vec![u64::MAX, 0]))),
            ("s", Arc::new(LargeStringArray::from(vec!["é x", "b"]))),
            ("v", Arc::new(StringViewArray::from(vec!["view", "w"]))),
            ("dict", Arc::new(dict)),
            ("d32", Arc::new(Date32Array::from(vec![20_777, -1]))),
            ("d64", Arc::new(Date64Array::from(vec![0, -1]))),
            ("b", Arc::new(BooleanArray::from(vec![true, false]))),
            (
                "dec",
                Arc::new(
                    Decimal128Array::from(vec![1230, -5])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ),
            (
                "dec256",
                Arc::new(
                    Decimal256Array::from(vec![i256::from_i128(12), i256::from_i128(-1)])
                        .with_precision_and_scale(40, -2)
                        .unwrap(),
                ),
            ),
        ]);
        let mut sp = spec(
            "k:{i8}:{u64}:{s}/{v}/{dict}/{d32}/{d64}/{b}/{dec}/{dec256}/{i8}",
            ValueFormat::Column("b".into()),
            &[],
        );
        // Keys ignore the date encoding.
        sp.date = DateEncoding::EpochDays;
        let out = encode(sp, &b);
        assert_eq!(
            keys(&out),
            strs(&[
                "k:-128:18446744073709551615:é x/view/eu/2026-11-20/1970-01-01/true/12.30/1200/-128",
                "k:1:0:b/w/us/1969-12-31/1969-12-31/false/-0.05/-100/1",
            ])
        );
        assert_eq!(values(&out), strs(&["true", "false"]));
    }

    #[test]
    fn null_and_empty_keys_are_skipped_and_counted() {
        let b = batch(vec![
            (
                "a",
                Arc::new(StringArray::from(vec![
                    Some("x"),
                    None,
                    Some(""),
                    Some("y"),
                    Some("z"),
                ])) as ArrayRef,
            ),
            (
                "n",
                Arc::new(Int32Array::from(vec![
                    Some(1),
                    Some(2),
                    Some(3),
                    None,
                    Some(5),
                ])),
            ),
        ]);
        let sp = Arc::new(spec("{a}:{n}", ValueFormat::Json, &["n"]));
        let enc = RowEncoder::new(sp, b.schema_ref()).unwrap();
        let mut out = EncodedRows::new();
        enc.encode_batch(&b, &mut out).unwrap();
        assert_eq!(keys(&out), strs(&["x:1", "z:5"]));
        assert_eq!(values(&out), strs(&[r#"{"n":1}"#, r#"{"n":5}"#]));
        assert_eq!(out.skipped_null_keys(), 3);
        // Appending accumulates; clear resets everything.
        enc.encode_batch(&b, &mut out).unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(out.skipped_null_keys(), 6);
        assert_eq!(keys(&out)[3], "z:5");
        out.clear();
        assert!(out.is_empty());
        assert_eq!(out.skipped_null_keys(), 0);
        assert_eq!(out.byte_len(), 0);
        // A dictionary value that is an empty string also skips.
        let d: DictionaryArray<Int32Type> = vec![Some(""), Some("k"), None].into_iter().collect();
        let b = batch(vec![("d", Arc::new(d) as ArrayRef)]);
        let out = encode(spec("{d}", ValueFormat::Column("d".into()), &[]), &b);
        assert_eq!(keys(&out), strs(&["k"]));
        assert_eq!(out.skipped_null_keys(), 2);
    }

    #[test]
    fn missing_value_column_is_null() {
        let b = batch(vec![("id", ids(1))]);
        let out = encode(spec("{id}", ValueFormat::Json, &["id", "later"]), &b);
        assert_eq!(values(&out), strs(&[r#"{"id":0,"later":null}"#]));
        let f = ValueFormat::Delimited {
            separator: ",".into(),
            null_string: "".into(),
        };
        let out = encode(spec("{id}", f, &["later", "id"]), &b);
        assert_eq!(values(&out), strs(&[",0"]));
    }

    #[test]
    fn errors_at_construction() {
        let b = batch(vec![
            ("id", ids(1)),
            ("f", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef),
            (
                "iv",
                Arc::new(IntervalYearMonthArray::from(vec![1])) as ArrayRef,
            ),
        ]);
        let schema = b.schema();
        let new = |sp: EncodeSpec| RowEncoder::new(Arc::new(sp), &schema).unwrap_err();

        let e = new(spec("o:{order_id}", ValueFormat::Json, &[]));
        assert_eq!(
            e,
            EncodeError::MissingKeyColumn {
                column: "order_id".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "key column \"order_id\" is missing from the file schema"
        );

        let e = new(spec("o:{f}", ValueFormat::Json, &[]));
        assert_eq!(
            e,
            EncodeError::UnsupportedKeyType {
                column: "f".into(),
                data_type: DataType::Float64
            }
        );
        assert_eq!(
            e.to_string(),
            "key column \"f\" has type Float64, which cannot be used in a key"
        );

        let e = new(spec("{id}", ValueFormat::Json, &["id", "iv"]));
        assert_eq!(
            e,
            EncodeError::UnsupportedType {
                column: "iv".into(),
                data_type: DataType::Interval(IntervalUnit::YearMonth)
            }
        );
        assert!(e.to_string().starts_with("column \"iv\" has type Interval"));
        let e = new(spec("{id}", ValueFormat::Column("iv".into()), &[]));
        assert!(matches!(e, EncodeError::UnsupportedType { .. }));

        // Unsupported types nested in lists are caught too.
        let item = Arc::new(Field::new(
            "item",
            DataType::Interval(IntervalUnit::DayTime),
            true,
        ));
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("l", DataType::List(item), true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Second, Some("Mars/Base".into())),
                true,
            ),
        ]));
        let e = RowEncoder::new(Arc::new(spec("{id}", ValueFormat::Hash, &["l"])), &schema)
            .unwrap_err();
        assert!(matches!(e, EncodeError::UnsupportedType { ref column, .. } if column == "l"));
        let e = RowEncoder::new(Arc::new(spec("{id}", ValueFormat::Hash, &["t"])), &schema)
            .unwrap_err();
        assert_eq!(
            e,
            EncodeError::InvalidTimezone {
                column: "t".into(),
                timezone: "Mars/Base".into()
            }
        );
    }

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
    fn int32_and_int64_files_encode_identically() {
        let b32 = batch(vec![
            (
                "id",
                Arc::new(Int32Array::from(vec![Some(1), Some(-2), None])) as ArrayRef,
            ),
            (
                "n",
                Arc::new(Int32Array::from(vec![Some(10), None, Some(i32::MIN)])),
            ),
        ]);
        let b64 = batch(vec![
            (
                "n",
                Arc::new(Int64Array::from(vec![
                    Some(10),
                    None,
                    Some(i32::MIN as i64),
                ])) as ArrayRef,
            ),
            ("extra", Arc::new(StringArray::from(vec!["a", "b", "c"]))),
            (
                "id",
                Arc::new(Int64Array::from(vec![Some(1), Some(-2), None])),
            ),
        ]);
        for f in [
            ValueFormat::Json,
            ValueFormat::Hash,
            ValueFormat::Column("n".into()),
            ValueFormat::Delimited {
                separator: ";".into(),
                null_string: "-".into(),
            },
        ] {
            let sp = spec("t:{id}", f, &["n", "id"]);
            let a = encode(sp.clone(), &b32);
            let b = encode(sp, &b64);
            assert_eq!(a.len(), 2);
            assert_eq!(keys(&a), keys(&b));
            assert_eq!(values(&a), values(&b));
            for i in 0..a.len() {
                assert!(a.fields(i).eq(b.fields(i)));
            }
            assert_eq!(a.skipped_null_keys(), 1);
            assert_eq!(b.skipped_null_keys(), 1);
        }
        let out = encode(spec("t:{id}", ValueFormat::Json, &["n", "id"]), &b32);
        assert_eq!(
            values(&out),
            strs(&[r#"{"n":10,"id":1}"#, r#"{"n":null,"id":-2}"#])
        );
    }

    #[test]
    fn batch_with_other_schema_is_rejected() {
        let b1 = batch(vec![("id", ids(1))]);
        let b2 = batch(vec![(
            "id",
            Arc::new(Int32Array::from(vec![1])) as ArrayRef,
        )]);
        let enc = RowEncoder::new(
            Arc::new(spec("{id}", ValueFormat::Json, &["id"])),
            b1.schema_ref(),
        )
        .unwrap();
        let mut out = EncodedRows::new();
        let e = enc.encode_batch(&b2, &mut out).unwrap_err();
        assert_eq!(
            e,
            EncodeError::BatchMismatch {
                column: "id".into(),
                expected: DataType::Int64
            }
        );
        assert!(out.is_empty());
    }

    #[test]
    fn json_column_names_are_escaped() {
        let b = batch(vec![("id", ids(1)), ("we\"ird", ids(1))]);
        let out = encode(spec("{id}", ValueFormat::Json, &["we\"ird"]), &b);
        assert_eq!(values(&out), strs(&[r#"{"we\"ird":0}"#]));
    }

    // --- value types -------------------------------------------------------

    #[test]
    fn integers() {
        let v: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(i64::MAX),
            Some(i64::MIN),
            None,
            Some(0),
        ]));
        assert_eq!(
            json(v.clone()),
            strs(&["9223372036854775807", "-9223372036854775808", "null", "0"])
        );
        assert_eq!(
            text(v),
            strs(&["9223372036854775807", "-9223372036854775808", "NULL", "0"])
        );
        let v: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
        assert_eq!(json(v), strs(&["18446744073709551615"]));
        let v: ArrayRef = Arc::new(Int8Array::from(vec![-128]));
        assert_eq!(json(v), strs(&["-128"]));
        let v: ArrayRef = Arc::new(UInt8Array::from(vec![255]));
        assert_eq!(json(v), strs(&["255"]));
        let v: ArrayRef = Arc::new(Int16Array::from(vec![-300]));
        assert_eq!(json(v), strs(&["-300"]));
        let v: ArrayRef = Arc::new(UInt16Array::from(vec![65535]));
        assert_eq!(json(v), strs(&["65535"]));
        let v: ArrayRef = Arc::new(UInt32Array::from(vec![u32::MAX]));
        assert_eq!(json(v), strs(&["4294967295"]));
    }

    #[test]
    fn booleans_and_null_type() {
        let v: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), Some(false), None]));
        assert_eq!(json(v.clone()), strs(&["true", "false", "null"]));
        assert_eq!(text(v), strs(&["true", "false", "NULL"]));
        let v: ArrayRef = Arc::new(NullArray::new(2));
        assert_eq!(json(v.clone()), strs(&["null", "null"]));
        assert_eq!(text(v), strs(&["NULL", "NULL"]));
    }

    #[test]
    fn floats() {
        let v: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.5),
            Some(1.0),
            Some(-0.1),
            Some(1e300),
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            None,
        ]));
        assert_eq!(
            json(v.clone()),
            strs(&["1.5", "1.0", "-0.1", "1e300", "null", "null", "null", "null"])
        );
        assert_eq!(
            text(v),
            strs(&["1.5", "1.0", "-0.1", "1e300", "NULL", "NULL", "NULL", "NULL"])
        );
        let v: ArrayRef = Arc::new(Float32Array::from(vec![0.1f32, f32::NAN]));
        assert_eq!(json(v), strs(&["0.1", "null"]));
        let v: ArrayRef = Arc::new(Float16Array::from_iter_values(
            [1.5f32, 65504.0, f32::INFINITY, 0.1]
                .into_iter()
                .map(<Float16Type as ArrowPrimitiveType>::Native::from_f32),
        ));
        // 0.1 is not exact in f16; the f32 of the same value prints shortest.
        assert_eq!(json(v), strs(&["1.5", "65504.0", "null", "0.099975586"]));
    }

    #[test]
    fn decimals() {
        let d128 = |vals: Vec<i128>, p: u8, sc: i8| -> ArrayRef {
            Arc::new(
                Decimal128Array::from(vals)
                    .with_precision_and_scale(p, sc)
                    .unwrap(),
            )
        };
        assert_eq!(
            json(d128(vec![1230, -5, 0, -1230, 7, i128::MIN + 1], 38, 2)),
            strs(&[
                "\"12.30\"",
                "\"-0.05\"",
                "\"0.00\"",
                "\"-12.30\"",
                "\"0.07\"",
                "\"-1701411834604692317316873037158841057.27\""
            ])
        );
        assert_eq!(text(d128(vec![1230, -5], 10, 2)), strs(&["12.30", "-0.05"]));
        assert_eq!(
            json(d128(vec![12, 0, -3], 10, -2)),
            strs(&["\"1200\"", "\"0\"", "\"-300\""])
        );
        assert_eq!(json(d128(vec![42], 10, 0)), strs(&["\"42\""]));
        assert_eq!(json(d128(vec![5], 10, 3)), strs(&["\"0.005\""]));

        let v: ArrayRef = Arc::new(
            Decimal32Array::from(vec![Some(-12345), None])
                .with_precision_and_scale(9, 4)
                .unwrap(),
        );
        assert_eq!(json(v), strs(&["\"-1.2345\"", "null"]));
        let v: ArrayRef = Arc::new(
            Decimal64Array::from(vec![i64::MIN])
                .with_precision_and_scale(18, 1)
                .unwrap(),
        );
        assert_eq!(json(v), strs(&["\"-922337203685477580.8\""]));

        let big = i256::from_i128(i128::MAX).wrapping_mul(i256::from_i128(1000));
        let v: ArrayRef = Arc::new(
            Decimal256Array::from(vec![big, big.wrapping_neg(), i256::from_i128(-5)])
                .with_precision_and_scale(76, 3)
                .unwrap(),
        );
        assert_eq!(
            json(v),
            strs(&[
                "\"170141183460469231731687303715884105727.000\"",
                "\"-170141183460469231731687303715884105727.000\"",
                "\"-0.005\"",
            ])
        );
    }

    #[test]
    fn strings_are_escaped_in_json_and_raw_in_text() {
        let raw = "a\"b\\c\nd\te\r\u{1}\u{8}\u{c}\u{1f} é日本😀/";
        let v: ArrayRef = Arc::new(StringArray::from(vec![Some(raw), Some(""), None]));
        let escaped = r#""a\"b\\c\nd\te\r\u0001\b\f\u001f é日本😀/""#;
        assert_eq!(json(v.clone()), strs(&[escaped, "\"\"", "null"]));
        assert_eq!(text(v), strs(&[raw, "", "NULL"]));
        // serde_json agrees on what the string means.
        let back: String = serde_json::from_str(escaped).unwrap();
        assert_eq!(back, raw);
        let v: ArrayRef = Arc::new(LargeStringArray::from(vec!["x\"y"]));
        assert_eq!(json(v), strs(&[r#""x\"y""#]));
        let v: ArrayRef = Arc::new(StringViewArray::from(vec![
            "a string longer than twelve bytes\n",
            "short",
        ]));
        assert_eq!(
            json(v),
            strs(&[r#""a string longer than twelve bytes\n""#, r#""short""#])
        );
    }

    #[test]
    fn binary_is_base64() {
        let data: Vec<Option<&[u8]>> = vec![Some(&[0, 1, 2, 255]), Some(b""), Some(b"hi"), None];
        let v: ArrayRef = Arc::new(BinaryArray::from(data.clone()));
        assert_eq!(
            json(v.clone()),
            strs(&["\"AAEC/w==\"", "\"\"", "\"aGk=\"", "null"])
        );
        assert_eq!(text(v), strs(&["AAEC/w==", "", "aGk=", "NULL"]));
        let v: ArrayRef = Arc::new(LargeBinaryArray::from(data.clone()));
        assert_eq!(json(v), strs(&["\"AAEC/w==\"", "\"\"", "\"aGk=\"", "null"]));
        let v: ArrayRef = Arc::new(BinaryViewArray::from(data));
        assert_eq!(json(v), strs(&["\"AAEC/w==\"", "\"\"", "\"aGk=\"", "null"]));
        let v: ArrayRef = Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                vec![Some([251u8, 255, 0]), None].into_iter(),
                3,
            )
            .unwrap(),
        );
        assert_eq!(json(v), strs(&["\"+/8A\"", "null"]));
    }

    #[test]
    fn timestamps_iso() {
        let ms = 1_795_162_530_123i64;
        let mk = |tz: Option<&str>| -> Vec<ArrayRef> {
            let arrays: Vec<ArrayRef> = vec![
                Arc::new(TimestampSecondArray::from(vec![ms / 1000])),
                Arc::new(TimestampMillisecondArray::from(vec![ms])),
                Arc::new(TimestampMicrosecondArray::from(vec![ms * 1000 + 456])),
                Arc::new(TimestampNanosecondArray::from(vec![
                    ms * 1_000_000 + 456_789,
                ])),
            ];
            match tz {
                None => arrays,
                Some(tz) => arrays
                    .into_iter()
                    .map(|a| {
                        let dt = match a.data_type() {
                            DataType::Timestamp(u, _) => DataType::Timestamp(*u, Some(tz.into())),
                            _ => unreachable!(),
                        };
                        arrow_array::make_array(
                            a.to_data().into_builder().data_type(dt).build().unwrap(),
                        )
                    })
                    .collect(),
            }
        };
        let utc = [
            "\"2026-11-20T08:15:30Z\"",
            "\"2026-11-20T08:15:30.123Z\"",
            "\"2026-11-20T08:15:30.123456Z\"",
            "\"2026-11-20T08:15:30.123456789Z\"",
        ];
        for tz in [None, Some("UTC"), Some("+00:00")] {
            let got: Vec<String> = mk(tz).into_iter().flat_map(json).collect();
            assert_eq!(got, strs(&utc), "tz {tz:?}");
        }
        let cn = [
            "\"2026-11-20T16:15:30+08:00\"",
            "\"2026-11-20T16:15:30.123+08:00\"",
            "\"2026-11-20T16:15:30.123456+08:00\"",
            "\"2026-11-20T16:15:30.123456789+08:00\"",
        ];
        for tz in ["Asia/Shanghai", "+08:00", "+0800"] {
            let got: Vec<String> = mk(Some(tz)).into_iter().flat_map(json).collect();
            assert_eq!(got, strs(&cn), "tz {tz}");
        }
        let got: Vec<String> = mk(Some("-05:30")).into_iter().flat_map(text).collect();
        assert_eq!(got[1], "2026-11-20T02:45:30.123-05:30");

        // IANA zones follow daylight saving time.
        let v: ArrayRef = Arc::new(
            TimestampSecondArray::from(vec![1_795_162_530, 1_782_907_200])
                .with_timezone("America/New_York"),
        );
        assert_eq!(
            text(v),
            strs(&["2026-11-20T03:15:30-05:00", "2026-07-01T08:00:00-04:00"])
        );
    }

    #[test]
    fn timestamps_negative_and_epoch_millis() {
        let v: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(-1),
            Some(0),
            None,
        ]));
        assert_eq!(
            json(v.clone()),
            strs(&[
                "\"1969-12-31T23:59:59.999Z\"",
                "\"1970-01-01T00:00:00.000Z\"",
                "null"
            ])
        );
        let millis =
            |v: ArrayRef| json_enc(v, TimestampEncoding::EpochMillis, DateEncoding::Iso8601);
        assert_eq!(millis(v.clone()), strs(&["-1", "0", "null"]));
        assert_eq!(
            text_enc(v, TimestampEncoding::EpochMillis, DateEncoding::Iso8601),
            strs(&["-1", "0", "NULL"])
        );
        let v: ArrayRef = Arc::new(TimestampSecondArray::from(vec![-86_401, 1]));
        assert_eq!(
            json(v.clone()),
            strs(&["\"1969-12-30T23:59:59Z\"", "\"1970-01-01T00:00:01Z\""])
        );
        assert_eq!(millis(v), strs(&["-86401000", "1000"]));
        let v: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![-1, -1001, 1999]));
        assert_eq!(
            json(v.clone()),
            strs(&[
                "\"1969-12-31T23:59:59.999999Z\"",
                "\"1969-12-31T23:59:59.998999Z\"",
                "\"1970-01-01T00:00:00.001999Z\""
            ])
        );
        assert_eq!(millis(v), strs(&["-1", "-2", "1"]));
        let v: ArrayRef = Arc::new(
            TimestampNanosecondArray::from(vec![-1, 1, 1_795_162_530_123_456_789])
                .with_timezone("Asia/Shanghai"),
        );
        assert_eq!(millis(v.clone()), strs(&["-1", "0", "1795162530123"]));
        assert_eq!(json(v)[0], "\"1970-01-01T07:59:59.999999999+08:00\"");
        // Pre-1900 dates and the Shanghai LMT offset with seconds.
        let v: ArrayRef = Arc::new(
            TimestampSecondArray::from(vec![-2_208_988_800]).with_timezone("Asia/Shanghai"),
        );
        assert_eq!(text(v), strs(&["1900-01-01T08:05:43+08:05:43"]));
    }

    #[test]
    fn dates_both_encodings() {
        let d32: ArrayRef = Arc::new(Date32Array::from(vec![
            Some(20_777),
            Some(0),
            Some(-1),
            Some(11_016),
            Some(-719_528),
            None,
        ]));
        assert_eq!(
            json(d32.clone()),
            strs(&[
                "\"2026-11-20\"",
                "\"1970-01-01\"",
                "\"1969-12-31\"",
                "\"2000-02-29\"",
                "\"0000-01-01\"",
                "null"
            ])
        );
        assert_eq!(text(d32.clone())[0], "2026-11-20");
        let days = |v: ArrayRef| json_enc(v, TimestampEncoding::Iso8601, DateEncoding::EpochDays);
        assert_eq!(
            days(d32.clone()),
            strs(&["20777", "0", "-1", "11016", "-719528", "null"])
        );
        assert_eq!(
            text_enc(d32, TimestampEncoding::Iso8601, DateEncoding::EpochDays)[2],
            "-1"
        );

        let d64: ArrayRef = Arc::new(Date64Array::from(vec![
            20_777 * MILLIS_PER_DAY,
            -1,
            1,
            MILLIS_PER_DAY,
        ]));
        assert_eq!(
            json(d64.clone()),
            strs(&[
                "\"2026-11-20\"",
                "\"1969-12-31\"",
                "\"1970-01-01\"",
                "\"1970-01-02\""
            ])
        );
        assert_eq!(days(d64), strs(&["20777", "-1", "0", "1"]));

        let far: ArrayRef = Arc::new(Date32Array::from(vec![2_932_897, -719_529]));
        assert_eq!(json(far), strs(&["\"+10000-01-01\"", "\"-0001-12-31\""]));
    }

    #[test]
    fn times_and_durations() {
        let v: ArrayRef = Arc::new(Time32SecondArray::from(vec![Some(0), Some(86_399), None]));
        assert_eq!(
            json(v.clone()),
            strs(&["\"00:00:00\"", "\"23:59:59\"", "null"])
        );
        assert_eq!(text(v), strs(&["00:00:00", "23:59:59", "NULL"]));
        let v: ArrayRef = Arc::new(Time32MillisecondArray::from(vec![45_296_007]));
        assert_eq!(json(v), strs(&["\"12:34:56.007\""]));
        let v: ArrayRef = Arc::new(Time64MicrosecondArray::from(vec![45_296_000_001]));
        assert_eq!(json(v), strs(&["\"12:34:56.000001\""]));
        let v: ArrayRef = Arc::new(Time64NanosecondArray::from(vec![45_296_123_456_789]));
        assert_eq!(json(v), strs(&["\"12:34:56.123456789\""]));

        let v: ArrayRef = Arc::new(DurationMillisecondArray::from(vec![Some(-1500), None]));
        assert_eq!(json(v.clone()), strs(&["-1500", "null"]));
        assert_eq!(text(v), strs(&["-1500", "NULL"]));
        let v: ArrayRef = Arc::new(DurationNanosecondArray::from(vec![i64::MAX]));
        assert_eq!(json(v), strs(&["9223372036854775807"]));
        let v: ArrayRef = Arc::new(DurationSecondArray::from(vec![3]));
        assert_eq!(json(v), strs(&["3"]));
        let v: ArrayRef = Arc::new(DurationMicrosecondArray::from(vec![4]));
        assert_eq!(json(v), strs(&["4"]));
    }

    fn list_of_structs() -> ArrayRef {
        let fields = Fields::from(vec![
            Field::new("sku", DataType::Utf8, true),
            Field::new("qty", DataType::Int32, true),
            Field::new("at", DataType::Date32, true),
        ]);
        let values = StructArray::new(
            fields.clone(),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("A"),
                    Some("B\""),
                    None,
                    Some("D"),
                ])) as ArrayRef,
                Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(4)])),
                Arc::new(Date32Array::from(vec![Some(0), Some(1), Some(2), None])),
            ],
            Some(NullBuffer::from(vec![true, true, false, true])),
        );
        let item = Arc::new(Field::new("item", DataType::Struct(fields), true));
        Arc::new(ListArray::new(
            item,
            OffsetBuffer::new(ScalarBuffer::from(vec![0, 2, 3, 3, 4])),
            Arc::new(values),
            Some(NullBuffer::from(vec![true, true, false, true])),
        ))
    }

    #[test]
    fn nested_list_of_struct() {
        let v = list_of_structs();
        assert_eq!(
            json(v.clone()),
            strs(&[
                r#"[{"sku":"A","qty":1,"at":"1970-01-01"},{"sku":"B\"","qty":null,"at":"1970-01-02"}]"#,
                "[null]",
                "null",
                r#"[{"sku":"D","qty":4,"at":null}]"#,
            ])
        );
        // Text form is the compact JSON; nested dates follow the encoding.
        assert_eq!(
            text_enc(v, TimestampEncoding::Iso8601, DateEncoding::EpochDays),
            strs(&[
                r#"[{"sku":"A","qty":1,"at":0},{"sku":"B\"","qty":null,"at":1}]"#,
                "[null]",
                "NULL",
                r#"[{"sku":"D","qty":4,"at":null}]"#,
            ])
        );
        // A slice of the list keeps correct offsets.
        assert_eq!(json(v_slice()), strs(&["[null]", "null"]));
    }

    fn v_slice() -> ArrayRef {
        list_of_structs().slice(1, 2)
    }

    #[test]
    fn other_lists() {
        let item = Arc::new(Field::new("item", DataType::Float64, true));
        let v: ArrayRef = Arc::new(LargeListArray::new(
            item.clone(),
            OffsetBuffer::new(ScalarBuffer::from(vec![0i64, 2, 2])),
            Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(2.0)])),
            None,
        ));
        assert_eq!(json(v), strs(&["[null,2.0]", "[]"]));

        let item32 = Arc::new(Field::new("item", DataType::Int32, true));
        let v: ArrayRef = Arc::new(FixedSizeListArray::new(
            item32.clone(),
            2,
            Arc::new(Int32Array::from(vec![
                Some(1),
                None,
                Some(3),
                Some(4),
                Some(5),
                Some(6),
            ])),
            Some(NullBuffer::from(vec![true, true, false])),
        ));
        assert_eq!(json(v.clone()), strs(&["[1,null]", "[3,4]", "null"]));
        assert_eq!(json(v.slice(1, 2)), strs(&["[3,4]", "null"]));

        let v: ArrayRef = Arc::new(ListViewArray::new(
            item32,
            ScalarBuffer::from(vec![2, 0, 0]),
            ScalarBuffer::from(vec![2, 1, 0]),
            Arc::new(Int32Array::from(vec![7, 8, 9, 10])),
            None,
        ));
        assert_eq!(json(v), strs(&["[9,10]", "[7]", "[]"]));
    }

    #[test]
    fn maps() {
        let mut b = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        b.keys().append_value("a\"k");
        b.values().append_value(1);
        b.keys().append_value("b");
        b.values().append_null();
        b.append(true).unwrap();
        b.append(false).unwrap();
        b.append(true).unwrap();
        let v: ArrayRef = Arc::new(b.finish());
        assert_eq!(
            json(v.clone()),
            strs(&[r#"{"a\"k":1,"b":null}"#, "null", "{}"])
        );
        assert_eq!(text(v), strs(&[r#"{"a\"k":1,"b":null}"#, "NULL", "{}"]));

        let mut b = MapBuilder::new(None, Int32Builder::new(), StringBuilder::new());
        b.keys().append_value(-7);
        b.values().append_value("x");
        b.keys().append_value(8);
        b.values().append_value("y");
        b.append(true).unwrap();
        let v: ArrayRef = Arc::new(b.finish());
        assert_eq!(json(v), strs(&[r#"{"-7":"x","8":"y"}"#]));
    }

    #[test]
    fn dictionaries() {
        let d: DictionaryArray<Int32Type> = vec![Some("a\nb"), None, Some("c"), Some("a\nb")]
            .into_iter()
            .collect();
        let v: ArrayRef = Arc::new(d);
        assert_eq!(
            json(v.clone()),
            strs(&["\"a\\nb\"", "null", "\"c\"", "\"a\\nb\""])
        );
        assert_eq!(text(v), strs(&["a\nb", "NULL", "c", "a\nb"]));

        // Dictionary of non-string values, including a null value slot.
        let keys = UInt8Array::from(vec![Some(1), Some(0), None, Some(2)]);
        let values: ArrayRef = Arc::new(Int64Array::from(vec![Some(10), Some(-20), None]));
        let v: ArrayRef = Arc::new(DictionaryArray::new(keys, values));
        assert_eq!(json(v), strs(&["-20", "10", "null", "null"]));
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

    #[test]
    fn civil_from_days_matches_chrono() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for days in (-800_000i64..800_000)
            .step_by(997)
            .chain([-1, 0, 59, 60, 365, 366, 11_016])
        {
            let d = epoch + chrono::Duration::days(days);
            let mut out = Vec::new();
            write_date(&mut out, days);
            assert_eq!(s(&out), d.format("%Y-%m-%d").to_string(), "days {days}");
        }
    }
}
