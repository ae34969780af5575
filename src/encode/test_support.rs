//! Helpers shared by the encoder's unit tests: build a spec and a batch,
//! encode it, and read keys and values back as text.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch};

use super::{DateEncoding, EncodeSpec, EncodedRows, RowEncoder, TimestampEncoding, ValueFormat};
use crate::template::KeyTemplate;

pub(super) fn spec(key: &str, format: ValueFormat, cols: &[&str]) -> EncodeSpec {
    EncodeSpec {
        key: KeyTemplate::parse(key).unwrap(),
        format,
        columns: cols.iter().map(|c| c.to_string()).collect(),
        timestamp: TimestampEncoding::Iso8601,
        date: DateEncoding::Iso8601,
    }
}

pub(super) fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(cols).unwrap()
}

pub(super) fn encode(spec: EncodeSpec, b: &RecordBatch) -> EncodedRows {
    let enc = RowEncoder::new(Arc::new(spec), b.schema_ref()).unwrap();
    let mut out = EncodedRows::new();
    enc.encode_batch(b, &mut out).unwrap();
    out
}

pub(super) fn s(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

pub(super) fn keys(out: &EncodedRows) -> Vec<String> {
    (0..out.len()).map(|i| s(out.key(i))).collect()
}

pub(super) fn values(out: &EncodedRows) -> Vec<String> {
    (0..out.len()).map(|i| s(out.value(i))).collect()
}

pub(super) fn ids(n: usize) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(0..n as i64))
}

/// JSON forms of `v` with the given encodings (one per row).
pub(super) fn json_enc(v: ArrayRef, ts: TimestampEncoding, date: DateEncoding) -> Vec<String> {
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

pub(super) fn json(v: ArrayRef) -> Vec<String> {
    json_enc(v, TimestampEncoding::Iso8601, DateEncoding::Iso8601)
}

/// Text forms of `v` (null rendered as `NULL`).
pub(super) fn text_enc(v: ArrayRef, ts: TimestampEncoding, date: DateEncoding) -> Vec<String> {
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

pub(super) fn text(v: ArrayRef) -> Vec<String> {
    text_enc(v, TimestampEncoding::Iso8601, DateEncoding::Iso8601)
}

pub(super) fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}
