//! [`RowEncoder`]: resolves an [`EncodeSpec`]'s key and value columns by name
//! against one file's schema, then encodes every row of each batch into
//! [`EncodedRows`] in the spec's [`ValueFormat`].

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef};

use super::rows::{EncodedRows, FieldSpan, RowSpan};
use super::scalar::{write_json_str, NullWriter};
use super::writer::{bind_source, json_or_null, validate, BoxedWriter, Opts};
use super::{check_key_column, DateEncoding, EncodeError, EncodeSpec, ValueFormat};
use crate::template::TemplatePart;

/// A column found in the file schema: its name, position and type.
#[derive(Debug, Clone)]
pub(super) struct FileColumn {
    pub(super) name: String,
    pub(super) index: usize,
    pub(super) data_type: DataType,
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
    source: Option<FileColumn>,
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
    key_cols: Vec<FileColumn>,
    value_cols: Vec<ValueCol>,
    column_src: Option<FileColumn>,
}

fn lookup(schema: &SchemaRef, name: &str) -> Option<FileColumn> {
    schema.index_of(name).ok().map(|index| FileColumn {
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
                None => Ok(Box::new(NullWriter) as BoxedWriter<'_>),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let column: BoxedWriter<'_> = match &self.column_src {
            Some(s) => bind_source(batch, s, vopts)?,
            None => Box::new(NullWriter),
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
    fn write_key(&self, keys: &[BoxedWriter<'_>], row: usize, buf: &mut Vec<u8>) -> bool {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::StringBuilder;
    use arrow_array::types::{Int32Type, Int8Type};
    use arrow_array::*;
    use arrow_buffer::i256;
    use arrow_schema::{Field, IntervalUnit, Schema, TimeUnit};

    use super::*;
    use crate::encode::test_support::*;

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
}
