//! (Test-only: compiled under `#[cfg(test)]`. Over 600 lines because every Arrow type needs its own
//! generator and an oracle computed independently of the encoder.)
//!
//! Property tests of the value encodings: any generated row (integers of every
//! width and their extremes, floats with NaN and infinities, decimals of many
//! precisions and scales, arbitrary unicode strings, binary, booleans, dates,
//! timestamps with and without zones, lists, structs and maps of these)
//! encodes in the `json` format to an object that `serde_json` parses, with
//! one member per column meaning exactly what the column held; the text forms
//! (hash fields, `column`, `delimited`) agree with it.
//!
//! Every expected value is computed independently of the encoder: integers by
//! `serde_json`/`to_string`, decimals by string arithmetic on the unscaled
//! value, dates and timestamps by chrono, binary by decoding the base64.
//!
//! Test-only: the module is compiled under `#[cfg(test)]`.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, LargeListBuilder, MapBuilder, StringBuilder};
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, BinaryArray, BinaryViewArray, BooleanArray, Date32Array,
    Date64Array, Decimal128Array, Decimal256Array, DictionaryArray, Float32Array, Float64Array,
    Int32Array, Int64Array, LargeStringArray, ListArray, PrimitiveArray, RecordBatch, StringArray,
    StringViewArray, StructArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray,
};
use arrow_buffer::{i256, NullBuffer};
use arrow_schema::{DataType, Field, Fields};
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::strategy::Union;
use serde_json::{json, Value};

use super::{DateEncoding, EncodeSpec, EncodedRows, RowEncoder, TimestampEncoding, ValueFormat};
use crate::template::KeyTemplate;

/// What one non-null cell must encode to.
#[derive(Debug, Clone)]
enum Expect {
    /// JSON form equal to the value; text form equal to the string.
    Exact(Value, String),
    /// A finite float: a JSON number; its text parses back to the same bits.
    F64(f64),
    /// A finite `f32`, likewise.
    F32(f32),
    /// Binary: a JSON string and a text form that decode to these bytes.
    Base64(Vec<u8>),
    /// Lists, structs, maps: JSON equal to the value, text the same JSON.
    Nested(Value),
}

/// One generated column: its array and, per row, the expected cell (`None`
/// for null, including non-finite floats).
#[derive(Debug, Clone)]
struct Column {
    array: ArrayRef,
    cells: Vec<Option<Expect>>,
}

/// The encodings a case is run with (they change what dates and timestamps
/// encode to, so columns are generated knowing them).
#[derive(Debug, Clone, Copy)]
struct Encodings {
    date: DateEncoding,
    timestamp: TimestampEncoding,
}

fn encodings() -> impl Strategy<Value = Encodings> {
    let date = prop_oneof![Just(DateEncoding::Iso8601), Just(DateEncoding::EpochDays)];
    let timestamp = prop_oneof![
        Just(TimestampEncoding::Iso8601),
        Just(TimestampEncoding::EpochMillis)
    ];
    (date, timestamp).prop_map(|(date, timestamp)| Encodings { date, timestamp })
}

/// Cells are null a fifth of the time.
fn cell<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
    proptest::option::weighted(0.8, s)
}

/// Any value of the type, with its extremes and zero well represented.
fn with_extremes<N>(min: N, max: N, zero: N) -> impl Strategy<Value = N>
where
    N: Arbitrary + Copy + std::fmt::Debug + 'static,
{
    prop_oneof![1 => Just(min), 1 => Just(max), 1 => Just(zero), 5 => any::<N>()]
}

/// Arbitrary unicode, with ASCII control characters, quotes and backslashes
/// (the characters JSON escapes) drawn often.
fn text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        3 => any::<char>(),
        2 => proptest::char::range('\0', '\u{7f}'),
        1 => proptest::sample::select(vec!['"', '\\', '\n', '\u{1f}', '\u{7f}', 'é', '😀']),
    ];
    vec(ch, 0..12).prop_map(String::from_iter)
}

fn int_column<T>(n: usize, min: T::Native, max: T::Native) -> BoxedStrategy<Column>
where
    T: ArrowPrimitiveType,
    T::Native: Arbitrary + Into<Value> + ToString + Default,
    PrimitiveArray<T>: From<Vec<Option<T::Native>>>,
{
    vec(cell(with_extremes(min, max, T::Native::default())), n)
        .prop_map(|values| Column {
            array: Arc::new(PrimitiveArray::<T>::from(values.clone())),
            cells: values
                .into_iter()
                .map(|v| v.map(|v| Expect::Exact(v.into(), v.to_string())))
                .collect(),
        })
        .boxed()
}

/// Floats of every class (NaN and infinities included); non-finite ones are
/// expected as null.
fn float_column(n: usize) -> BoxedStrategy<Column> {
    fn column<F: Copy>(
        array: ArrayRef,
        values: Vec<Option<F>>,
        expect: fn(F) -> Option<Expect>,
    ) -> Column {
        let cells = values.into_iter().map(|v| v.and_then(expect)).collect();
        Column { array, cells }
    }
    let f64s = vec(cell(proptest::num::f64::ANY), n).prop_map(|values| {
        let array = Arc::new(Float64Array::from(values.clone()));
        column(array, values, |v| v.is_finite().then_some(Expect::F64(v)))
    });
    let f32s = vec(cell(proptest::num::f32::ANY), n).prop_map(|values| {
        let array = Arc::new(Float32Array::from(values.clone()));
        column(array, values, |v| v.is_finite().then_some(Expect::F32(v)))
    });
    prop_oneof![f64s, f32s].boxed()
}

/// `unscaled * 10^-scale` as plain decimal text, by string arithmetic on the
/// unscaled value's digits: `(1230, 2)` is `12.30`, `(-5, 3)` is `-0.005`,
/// `(12, -2)` is `1200`, zero never has a sign or trailing zeros.
fn decimal_text(unscaled: &str, scale: i8) -> String {
    let (sign, digits) = match unscaled.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", unscaled),
    };
    let body = if scale > 0 {
        let scale = scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        format!("{whole}.{fraction}")
    } else if scale < 0 && digits != "0" {
        format!("{digits}{}", "0".repeat(scale.unsigned_abs() as usize))
    } else {
        digits.to_string()
    };
    format!("{sign}{body}")
}

fn decimal_column(n: usize) -> BoxedStrategy<Column> {
    let d128 = (1u8..=38)
        .prop_flat_map(move |precision| {
            let limit = 10i128.pow(u32::from(precision)) - 1;
            let value = prop_oneof![
                1 => Just(limit),
                1 => Just(-limit),
                1 => Just(0),
                5 => any::<i128>().prop_map(move |v| v % (limit + 1)),
            ];
            (
                Just(precision),
                -10i8..=precision as i8,
                vec(cell(value), n),
            )
        })
        .prop_map(|(precision, scale, values)| Column {
            array: Arc::new(
                Decimal128Array::from(values.clone())
                    .with_precision_and_scale(precision, scale)
                    .expect("generated precision and scale are valid"),
            ),
            cells: values
                .into_iter()
                .map(|v| v.map(|v| decimal_expect(&v.to_string(), scale)))
                .collect(),
        });
    // Beyond i128: the high half is kept under 2^124 so |v| < 10^76.
    let value256 = (any::<u128>(), any::<i128>())
        .prop_map(|(low, high)| i256::from_parts(low, high >> 4))
        .boxed();
    let d256 = (-10i8..=40, vec(cell(value256), n)).prop_map(|(scale, values)| Column {
        array: Arc::new(
            Decimal256Array::from(values.clone())
                .with_precision_and_scale(76, scale)
                .expect("precision 76 takes scales up to 76"),
        ),
        cells: values
            .into_iter()
            .map(|v| v.map(|v| decimal_expect(&v.to_string(), scale)))
            .collect(),
    });
    prop_oneof![3 => d128, 1 => d256].boxed()
}

fn decimal_expect(unscaled: &str, scale: i8) -> Expect {
    let text = decimal_text(unscaled, scale);
    Expect::Exact(Value::String(text.clone()), text)
}

fn string_column(n: usize) -> BoxedStrategy<Column> {
    vec(cell(text()), n)
        .prop_flat_map(|values| (Just(values), 0..4usize))
        .prop_map(|(values, kind)| {
            let refs: Vec<Option<&str>> = values.iter().map(|v| v.as_deref()).collect();
            let array: ArrayRef = match kind {
                0 => Arc::new(StringArray::from(refs)),
                1 => Arc::new(LargeStringArray::from(refs)),
                2 => Arc::new(StringViewArray::from(refs)),
                _ => Arc::new(refs.into_iter().collect::<DictionaryArray<Int32Type>>()),
            };
            Column {
                array,
                cells: values
                    .into_iter()
                    .map(|v| v.map(|v| Expect::Exact(Value::String(v.clone()), v)))
                    .collect(),
            }
        })
        .boxed()
}

fn binary_column(n: usize) -> BoxedStrategy<Column> {
    (vec(cell(vec(any::<u8>(), 0..10)), n), any::<bool>())
        .prop_map(|(values, view)| {
            let refs: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
            let array: ArrayRef = if view {
                Arc::new(BinaryViewArray::from(refs))
            } else {
                Arc::new(BinaryArray::from(refs))
            };
            Column {
                array,
                cells: values.into_iter().map(|v| v.map(Expect::Base64)).collect(),
            }
        })
        .boxed()
}

fn bool_column(n: usize) -> BoxedStrategy<Column> {
    vec(cell(any::<bool>()), n)
        .prop_map(|values| Column {
            array: Arc::new(BooleanArray::from(values.clone())),
            cells: values
                .into_iter()
                .map(|v| v.map(|v| Expect::Exact(Value::Bool(v), v.to_string())))
                .collect(),
        })
        .boxed()
}

/// Days chrono can represent (its years run from -262144 to 262143).
const DAYS: std::ops::Range<i64> = -95_000_000..95_000_000;

fn date_expect(date: chrono::NaiveDate, encoding: DateEncoding) -> Expect {
    match encoding {
        DateEncoding::Iso8601 => {
            let text = date.format("%Y-%m-%d").to_string();
            Expect::Exact(Value::String(text.clone()), text)
        }
        DateEncoding::EpochDays => {
            let days = date
                .signed_duration_since(chrono::NaiveDate::default())
                .num_days();
            Expect::Exact(Value::from(days), days.to_string())
        }
    }
}

fn date_column(n: usize, enc: Encodings) -> BoxedStrategy<Column> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let d32 = vec(cell(DAYS.prop_map(|d| d as i32)), n).prop_map(move |values| Column {
        array: Arc::new(Date32Array::from(values.clone())),
        cells: values
            .into_iter()
            .map(|v| {
                v.map(|days| date_expect(epoch + chrono::Duration::days(days.into()), enc.date))
            })
            .collect(),
    });
    let millis = (DAYS.start * 86_400_000)..(DAYS.end * 86_400_000);
    let d64 = vec(cell(millis), n).prop_map(move |values| Column {
        array: Arc::new(Date64Array::from(values.clone())),
        cells: values
            .into_iter()
            .map(|v| {
                v.map(|ms| {
                    let at = DateTime::from_timestamp_millis(ms).expect("in chrono's range");
                    date_expect(at.date_naive(), enc.date)
                })
            })
            .collect(),
    });
    prop_oneof![d32, d64].boxed()
}

/// A timestamp column's zone as the schema names it, and as chrono knows it.
#[derive(Debug, Clone, Copy)]
enum Zone {
    Utc,
    Fixed(i32),
    Named(chrono_tz::Tz),
}

const ZONES: &[(Option<&str>, Zone)] = &[
    (None, Zone::Utc),
    (Some("UTC"), Zone::Utc),
    (Some("+00:00"), Zone::Utc),
    (Some("+08:00"), Zone::Fixed(8 * 3600)),
    (Some("+0800"), Zone::Fixed(8 * 3600)),
    (Some("-05:30"), Zone::Fixed(-(5 * 3600 + 30 * 60))),
    (
        Some("Asia/Shanghai"),
        Zone::Named(chrono_tz::Asia::Shanghai),
    ),
    (
        Some("America/New_York"),
        Zone::Named(chrono_tz::America::New_York),
    ),
    (
        Some("Europe/London"),
        Zone::Named(chrono_tz::Europe::London),
    ),
    (Some("Asia/Kolkata"), Zone::Named(chrono_tz::Asia::Kolkata)),
];

/// What a timestamp of `value` units (`per_sec` to the second) must encode
/// to, computed by chrono. Named zones print their offset even when it is
/// zero; UTC and fixed offsets use `Z` for zero.
fn timestamp_expect(value: i64, per_sec: i64, zone: Zone, encoding: TimestampEncoding) -> Expect {
    let at: DateTime<Utc> = match per_sec {
        1 => DateTime::from_timestamp(value, 0),
        1_000 => DateTime::from_timestamp_millis(value),
        1_000_000 => DateTime::from_timestamp_micros(value),
        _ => Some(DateTime::from_timestamp_nanos(value)),
    }
    .expect("generated in chrono's range");
    if encoding == TimestampEncoding::EpochMillis {
        let millis = at.timestamp_millis();
        return Expect::Exact(Value::from(millis), millis.to_string());
    }
    let format = match per_sec {
        1 => SecondsFormat::Secs,
        1_000 => SecondsFormat::Millis,
        1_000_000 => SecondsFormat::Micros,
        _ => SecondsFormat::Nanos,
    };
    let text = match zone {
        Zone::Utc => at.to_rfc3339_opts(format, true),
        Zone::Fixed(east) => at
            .with_timezone(&FixedOffset::east_opt(east).expect("valid offset"))
            .to_rfc3339_opts(format, true),
        Zone::Named(tz) => at.with_timezone(&tz).to_rfc3339_opts(format, false),
    };
    Expect::Exact(Value::String(text.clone()), text)
}

fn timestamp_column(n: usize, enc: Encodings) -> BoxedStrategy<Column> {
    (0..4usize, proptest::sample::select(ZONES))
        .prop_flat_map(move |(unit, (tz, zone))| {
            let per_sec = 10i64.pow(3 * unit as u32);
            // Named zones: 1950..2100, where every offset is whole minutes
            // (chrono's RFC 3339 drops offset seconds). Others: years 1..9999
            // (all of i64 for nanoseconds, 1677..2262).
            let seconds = match zone {
                Zone::Named(_) => -631_152_000i64..4_102_444_800,
                _ => -62_135_596_800 + 86_400..253_402_300_799 - 86_400,
            };
            let values = match (unit, zone) {
                (3, Zone::Utc | Zone::Fixed(_)) => any::<i64>().boxed(),
                _ => (seconds.start * per_sec..seconds.end * per_sec).boxed(),
            };
            (Just(per_sec), Just(tz), Just(zone), vec(cell(values), n))
        })
        .prop_map(move |(per_sec, tz, zone, values)| {
            let array: ArrayRef = match per_sec {
                1 => Arc::new(TimestampSecondArray::from(values.clone())),
                1_000 => Arc::new(TimestampMillisecondArray::from(values.clone())),
                1_000_000 => Arc::new(TimestampMicrosecondArray::from(values.clone())),
                _ => Arc::new(TimestampNanosecondArray::from(values.clone())),
            };
            let array = match tz {
                Some(tz) => with_timezone(array, tz),
                None => array,
            };
            Column {
                array,
                cells: values
                    .into_iter()
                    .map(|v| v.map(|v| timestamp_expect(v, per_sec, zone, enc.timestamp)))
                    .collect(),
            }
        })
        .boxed()
}

fn with_timezone(array: ArrayRef, tz: &str) -> ArrayRef {
    let DataType::Timestamp(unit, _) = array.data_type() else {
        unreachable!("only timestamp arrays get a zone")
    };
    let data_type = DataType::Timestamp(*unit, Some(tz.into()));
    let data = array.to_data().into_builder().data_type(data_type);
    arrow_array::make_array(data.build().expect("same layout, other zone"))
}

/// Expected cells of a nested column: each non-null row as the JSON of its
/// value.
fn nested_cells<T: serde::Serialize>(rows: &[Option<T>]) -> Vec<Option<Expect>> {
    rows.iter()
        .map(|row| row.as_ref().map(|value| Expect::Nested(json!(value))))
        .collect()
}

fn list_column(n: usize) -> BoxedStrategy<Column> {
    let int = cell(with_extremes(i64::MIN, i64::MAX, 0));
    let ints = vec(cell(vec(int, 0..4)), n).prop_map(|rows| Column {
        array: Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
            rows.clone(),
        )),
        cells: nested_cells(&rows),
    });
    let strings = vec(cell(vec(cell(text()), 0..4)), n).prop_map(|rows| {
        let mut builder = LargeListBuilder::new(StringBuilder::new());
        for row in &rows {
            for item in row.iter().flatten() {
                builder.values().append_option(item.as_deref());
            }
            builder.append(row.is_some());
        }
        Column {
            array: Arc::new(builder.finish()),
            cells: nested_cells(&rows),
        }
    });
    prop_oneof![ints, strings].boxed()
}

/// Structs with an integer, a string and a decimal child, and a field name
/// that needs escaping.
fn struct_column(n: usize) -> BoxedStrategy<Column> {
    let child = (
        cell(with_extremes(i32::MIN, i32::MAX, 0)),
        cell(text()),
        cell(any::<i64>()),
    );
    (vec(child, n), vec(any::<bool>(), n))
        .prop_map(|(children, valid)| {
            let fields = Fields::from(vec![
                Field::new("i", DataType::Int32, true),
                Field::new("s\"\\", DataType::Utf8, true),
                Field::new("d", DataType::Decimal128(20, 3), true),
            ]);
            let ints: Vec<Option<i32>> = children.iter().map(|c| c.0).collect();
            let strings: Vec<Option<&str>> = children.iter().map(|c| c.1.as_deref()).collect();
            let decimals: Vec<Option<i128>> =
                children.iter().map(|c| c.2.map(i128::from)).collect();
            let decimal_array = Decimal128Array::from(decimals)
                .with_precision_and_scale(20, 3)
                .expect("valid precision and scale");
            let array = StructArray::new(
                fields,
                vec![
                    Arc::new(Int32Array::from(ints)) as ArrayRef,
                    Arc::new(StringArray::from(strings)),
                    Arc::new(decimal_array),
                ],
                Some(NullBuffer::from(valid.clone())),
            );
            let cells = children
                .into_iter()
                .zip(valid)
                .map(|((i, s, d), valid)| {
                    valid.then(|| {
                        let d = d.map(|d| decimal_text(&d.to_string(), 3));
                        Expect::Nested(json!({"i": i, "s\"\\": s, "d": d}))
                    })
                })
                .collect();
            Column {
                array: Arc::new(array),
                cells,
            }
        })
        .boxed()
}

/// Maps from arbitrary strings (distinct within a row) to integers.
fn map_column(n: usize) -> BoxedStrategy<Column> {
    vec(cell(btree_map(text(), cell(any::<i64>()), 0..4)), n)
        .prop_map(|rows| {
            let mut builder = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
            for row in &rows {
                for (key, value) in row.iter().flatten() {
                    builder.keys().append_value(key);
                    builder.values().append_option(*value);
                }
                builder
                    .append(row.is_some())
                    .expect("keys and values match");
            }
            Column {
                array: Arc::new(builder.finish()),
                cells: nested_cells(&rows),
            }
        })
        .boxed()
}

/// A column of any supported family, `n` rows long.
fn column(n: usize, enc: Encodings) -> BoxedStrategy<Column> {
    Union::new(vec![
        int_column::<Int8Type>(n, i8::MIN, i8::MAX),
        int_column::<Int16Type>(n, i16::MIN, i16::MAX),
        int_column::<Int32Type>(n, i32::MIN, i32::MAX),
        int_column::<Int64Type>(n, i64::MIN, i64::MAX),
        int_column::<UInt8Type>(n, u8::MIN, u8::MAX),
        int_column::<UInt16Type>(n, u16::MIN, u16::MAX),
        int_column::<UInt32Type>(n, u32::MIN, u32::MAX),
        int_column::<UInt64Type>(n, u64::MIN, u64::MAX),
        float_column(n),
        decimal_column(n),
        string_column(n),
        binary_column(n),
        bool_column(n),
        date_column(n, enc),
        timestamp_column(n, enc),
        list_column(n),
        struct_column(n),
        map_column(n),
    ])
    .boxed()
}

/// A case: encodings, then 1..6 rows of 1..6 columns with distinct names
/// (arbitrary text after a unique prefix).
fn case() -> impl Strategy<Value = (Encodings, Vec<(String, Column)>)> {
    (encodings(), 1..6usize).prop_flat_map(|(enc, n)| {
        let named = (text(), column(n, enc));
        (Just(enc), vec(named, 1..6)).prop_map(|(enc, columns)| {
            let columns = columns
                .into_iter()
                .enumerate()
                .map(|(i, (name, column))| (format!("c{i}:{name}"), column))
                .collect();
            (enc, columns)
        })
    })
}

/// Encodes the columns plus an `id` key column in `format`.
fn encode(
    enc: Encodings,
    columns: &[(String, Column)],
    format: ValueFormat,
    value_columns: &[&str],
) -> EncodedRows {
    let rows = columns[0].1.array.len();
    let id: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows as i64));
    let mut arrays = vec![("id".to_string(), id)];
    arrays.extend(columns.iter().map(|(n, c)| (n.clone(), c.array.clone())));
    let batch = RecordBatch::try_from_iter(arrays).expect("columns of equal length");
    let spec = EncodeSpec {
        key: KeyTemplate::parse("k:{id}").expect("valid template"),
        format,
        columns: value_columns.iter().map(|c| c.to_string()).collect(),
        timestamp: enc.timestamp,
        date: enc.date,
    };
    let encoder =
        RowEncoder::new(Arc::new(spec), batch.schema_ref()).expect("every family is supported");
    let mut out = EncodedRows::new();
    encoder
        .encode_batch(&batch, &mut out)
        .expect("the batch has the encoder's schema");
    out
}

fn check_json(expect: &Expect, got: &Value) -> Result<(), TestCaseError> {
    match expect {
        Expect::Exact(value, _) | Expect::Nested(value) => prop_assert_eq!(got, value),
        // serde_json (without `float_roundtrip`) may parse a float a few units in the last
        // place off (9.143395319128257e73: two); the text form is checked bit for bit. So the
        // number must read as `v`, or as serde_json reads `v`'s shortest form.
        Expect::F64(v) => {
            prop_assert!(got.is_number(), "{} is not a number", got);
            let parsed = got.as_f64().unwrap_or(f64::NAN);
            let shortest = ryu::Buffer::new().format_finite(*v).to_string();
            let as_serde_reads = serde_json::from_str::<f64>(&shortest).unwrap_or(f64::NAN);
            prop_assert!(
                ulps_apart(parsed, *v) <= 1 || parsed.to_bits() == as_serde_reads.to_bits(),
                "{} != {}",
                parsed,
                v
            );
        }
        Expect::F32(v) => {
            prop_assert!(got.is_number(), "{} is not a number", got);
            let parsed = got.as_f64().unwrap_or(f64::NAN) as f32;
            prop_assert!(ulps_apart_f32(parsed, *v) <= 1, "{} != {}", parsed, v);
        }
        Expect::Base64(bytes) => {
            let text = got.as_str();
            prop_assert!(text.is_some(), "{got} is not a string");
            check_base64(bytes, text.unwrap_or_default().as_bytes())?;
        }
    }
    Ok(())
}

/// Units in the last place between two floats of the same sign (`u64::MAX`
/// for different signs or NaN).
fn ulps_apart(a: f64, b: f64) -> u64 {
    if a == b {
        return 0;
    }
    if a.is_nan() || b.is_nan() || a.is_sign_negative() != b.is_sign_negative() {
        return u64::MAX;
    }
    a.to_bits().abs_diff(b.to_bits())
}

fn ulps_apart_f32(a: f32, b: f32) -> u64 {
    if a == b {
        return 0;
    }
    if a.is_nan() || b.is_nan() || a.is_sign_negative() != b.is_sign_negative() {
        return u64::MAX;
    }
    u64::from(a.to_bits().abs_diff(b.to_bits()))
}

fn check_base64(bytes: &[u8], got: &[u8]) -> Result<(), TestCaseError> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(got);
    prop_assert!(
        decoded.is_ok(),
        "not base64: {:?}",
        String::from_utf8_lossy(got)
    );
    prop_assert_eq!(decoded.unwrap_or_default(), bytes);
    Ok(())
}

fn check_text(expect: &Expect, got: &[u8]) -> Result<(), TestCaseError> {
    let as_str = std::str::from_utf8(got);
    match expect {
        Expect::Exact(_, text) => prop_assert!(
            got == text.as_bytes(),
            "{:?} != {:?}",
            String::from_utf8_lossy(got),
            text
        ),
        Expect::F64(v) => {
            let parsed = as_str.ok().and_then(|s| s.parse::<f64>().ok());
            prop_assert_eq!(parsed.map(f64::to_bits), Some(v.to_bits()), "{:?}", as_str);
        }
        Expect::F32(v) => {
            let parsed = as_str.ok().and_then(|s| s.parse::<f32>().ok());
            prop_assert_eq!(parsed.map(f32::to_bits), Some(v.to_bits()), "{:?}", as_str);
        }
        Expect::Base64(bytes) => check_base64(bytes, got)?,
        Expect::Nested(value) => {
            let parsed = serde_json::from_slice::<Value>(got);
            prop_assert!(parsed.is_ok(), "not JSON: {:?}", as_str);
            prop_assert_eq!(&parsed.unwrap_or_default(), value);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every row's JSON value parses, has one member per column, and each
    /// member is what the column held.
    #[test]
    fn any_row_encodes_to_json_that_means_the_row((enc, columns) in case()) {
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let out = encode(enc, &columns, ValueFormat::Json, &names);
        let rows = columns[0].1.array.len();
        prop_assert_eq!(out.len(), rows);
        for row in 0..rows {
            let key = format!("k:{row}");
            prop_assert_eq!(out.key(row), key.as_bytes());
            let parsed = serde_json::from_slice::<Value>(out.value(row));
            prop_assert!(parsed.is_ok(), "{:?}: {:?}", String::from_utf8_lossy(out.value(row)), parsed);
            let parsed = parsed.unwrap_or_default();
            let object = parsed.as_object();
            prop_assert!(object.is_some(), "not an object: {}", parsed);
            let object = object.cloned().unwrap_or_default();
            prop_assert_eq!(object.len(), columns.len());
            for (name, column) in &columns {
                let member = object.get(name);
                prop_assert!(member.is_some(), "no member {:?}", name);
                let member = member.cloned().unwrap_or_default();
                match &column.cells[row] {
                    None => prop_assert_eq!(&member, &Value::Null, "column {:?}", name),
                    Some(expect) => check_json(expect, &member)?,
                }
            }
        }
    }

    /// The text forms agree: hash fields are the non-null columns' text in
    /// order, and `column` and `delimited` of one column give its text (or
    /// nothing, or the null string).
    #[test]
    fn text_forms_are_the_values_text((enc, columns) in case()) {
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let rows = columns[0].1.array.len();
        let hash = encode(enc, &columns, ValueFormat::Hash, &names);
        for row in 0..rows {
            let fields: Vec<(&[u8], &[u8])> = hash.fields(row).collect();
            let present: Vec<(&String, &Expect)> = columns
                .iter()
                .filter_map(|(name, column)| column.cells[row].as_ref().map(|e| (name, e)))
                .collect();
            prop_assert_eq!(fields.len(), present.len());
            for ((field, text), (name, expect)) in fields.into_iter().zip(present) {
                prop_assert_eq!(field, name.as_bytes());
                check_text(expect, text)?;
            }
        }
        for (name, column) in &columns {
            let single = encode(enc, &columns, ValueFormat::Column(name.clone()), &[]);
            let delimited = ValueFormat::Delimited {
                separator: ",".into(),
                null_string: "\\N".into(),
            };
            let delimited = encode(enc, &columns, delimited, &[name.as_str()]);
            for row in 0..rows {
                match &column.cells[row] {
                    None => {
                        prop_assert_eq!(single.value(row), b"");
                        prop_assert_eq!(delimited.value(row), b"\\N");
                    }
                    Some(expect) => {
                        check_text(expect, single.value(row))?;
                        check_text(expect, delimited.value(row))?;
                    }
                }
            }
        }
    }
}

#[test]
fn decimal_text_by_string_arithmetic() {
    let cases = [
        ("1230", 2, "12.30"),
        ("-5", 3, "-0.005"),
        ("0", 2, "0.00"),
        ("12", -2, "1200"),
        ("0", -2, "0"),
        ("-3", -1, "-30"),
        ("42", 0, "42"),
        ("-12345", 4, "-1.2345"),
    ];
    for (unscaled, scale, text) in cases {
        assert_eq!(
            decimal_text(unscaled, scale),
            text,
            "{unscaled} scale {scale}"
        );
    }
}
