//! The per-column [`Writer`] trait and [`bind`], which picks the writer for an
//! Arrow array by its type once per (column, batch): encoding a row then costs
//! one dynamic call per column and never matches on a type.
//!
//! [`validate`] runs the same binding on an empty array of a column's type
//! when a [`RowEncoder`](super::RowEncoder) is built, so unsupported types are
//! refused before any row is encoded.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type,
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{new_empty_array, Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};

use super::nested::{dict, fixed_size_list, list, list_view, map, structure};
use super::row::FileColumn;
use super::scalar::{
    decimal, float, int, write_json_str, BinaryWriter, BoolWriter, NullWriter, StringWriter,
};
use super::temporal::{date, parse_tz, time, ts, MILLIS_PER_DAY};
use super::{DateEncoding, EncodeError, TimestampEncoding};

/// The encodings a writer needs: keys always get ISO dates, values the
/// spec's.
#[derive(Debug, Clone, Copy)]
pub(super) struct Opts {
    pub(super) date: DateEncoding,
    pub(super) ts: TimestampEncoding,
}

/// Why an array cannot be bound; turned into an [`EncodeError`] naming the
/// column by [`Problem::into_error`].
pub(super) enum Problem {
    Type,
    Timezone(String),
}

impl Problem {
    pub(super) fn into_error(self, src: &FileColumn) -> EncodeError {
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
pub(super) trait Writer {
    /// Null, or (for floats) not finite.
    fn is_null(&self, i: usize) -> bool;
    /// JSON form.
    fn json(&self, i: usize, out: &mut Vec<u8>);
    /// Text form (unquoted, strings raw).
    fn text(&self, i: usize, out: &mut Vec<u8>);
    /// JSON string holding the text form, for map keys. The default suits
    /// types whose text form never needs JSON escaping.
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        quoted_text(self, i, out)
    }
}

/// Writes `w`'s text form as a JSON string, for types whose text form never needs escaping
/// (dates, times, decimals, base64).
pub(super) fn quoted_text<W: Writer + ?Sized>(w: &W, i: usize, out: &mut Vec<u8>) {
    out.push(b'"');
    w.text(i, out);
    out.push(b'"');
}

/// A writer bound to one array of one batch.
pub(super) type BoxedWriter<'a> = Box<dyn Writer + 'a>;

pub(super) fn json_or_null(w: &dyn Writer, i: usize, out: &mut Vec<u8>) {
    if w.is_null(i) {
        out.extend_from_slice(b"null");
    } else {
        w.json(i, out);
    }
}

/// JSON key for nested types: their JSON text, escaped into a string.
pub(super) fn escaped_json_key(w: &dyn Writer, i: usize, out: &mut Vec<u8>) {
    let start = out.len();
    w.json(i, out);
    let raw = out.split_off(start);
    write_json_str(out, &raw);
}

pub(super) fn downcast<T>(o: Option<T>) -> Result<T, Problem> {
    o.ok_or(Problem::Type)
}

pub(super) fn bind<'a>(arr: &'a dyn Array, o: Opts) -> Result<BoxedWriter<'a>, Problem> {
    use DataType as D;
    Ok(match arr.data_type() {
        D::Null => Box::new(NullWriter),
        D::Boolean => Box::new(BoolWriter(downcast(arr.as_boolean_opt())?)),
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
        D::Utf8 => Box::new(StringWriter(downcast(arr.as_string_opt::<i32>())?)),
        D::LargeUtf8 => Box::new(StringWriter(downcast(arr.as_string_opt::<i64>())?)),
        D::Utf8View => Box::new(StringWriter(downcast(arr.as_string_view_opt())?)),
        D::Binary => Box::new(BinaryWriter(downcast(arr.as_binary_opt::<i32>())?)),
        D::LargeBinary => Box::new(BinaryWriter(downcast(arr.as_binary_opt::<i64>())?)),
        D::BinaryView => Box::new(BinaryWriter(downcast(arr.as_binary_view_opt())?)),
        D::FixedSizeBinary(_) => Box::new(BinaryWriter(downcast(arr.as_fixed_size_binary_opt())?)),
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
        D::FixedSizeList(..) => fixed_size_list(downcast(arr.as_fixed_size_list_opt())?, o)?,
        D::Struct(_) => structure(downcast(arr.as_struct_opt())?, o)?,
        D::Map(..) => map(downcast(arr.as_map_opt())?, o)?,
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

/// Checks at construction time that `src` can be bound, by binding it to an
/// empty array of its type.
pub(super) fn validate(src: &FileColumn, opts: Opts) -> Result<(), EncodeError> {
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

pub(super) fn bind_source<'a>(
    batch: &'a RecordBatch,
    src: &FileColumn,
    opts: Opts,
) -> Result<BoxedWriter<'a>, EncodeError> {
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
