//! Fidelity through `coldsync export` on files shaped like apache/parquet-testing's odd ones
//! (the originals are not available offline, so each is rebuilt here with the parquet crate and a
//! patched footer), and `export` + `redis-cli --pipe` being the same as a load.
//!
//! - `repeated_no_annotation.parquet`: the footer's file-level `num_rows` is 0, its row group
//!   holds 6 rows: all 6 are exported (and loaded).
//! - `dict-page-offset-zero.parquet`: an int32 list column whose column chunk says
//!   `dictionary_page_offset = 0` (parquet-mr's "no dictionary"): its 39 rows are exported.
//! - float16 values print in their shortest round-trip form, in json and text.
//! - hash `export` deletes each key before writing it: piped into a Redis holding older hashes
//!   of the same keys, the result equals a load.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{Int32Builder, ListBuilder};
use arrow_array::types::Float16Type;
use arrow_array::ArrowPrimitiveType;
use arrow_array::{
    ArrayRef, Float16Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema};
use bytes::Bytes;
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter};
use parquet::file::properties::WriterProperties;

const DATE: &str = "2026-11-20";

/// `half::f16` (arrow does not re-export it).
#[allow(non_camel_case_types)]
type f16 = <Float16Type as ArrowPrimitiveType>::Native;

/// A temp dir with `warehouse/` (the fs source root) and `coldsync.toml`.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(tables: &str, redis_port: u16) -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("coldsync-fidelity-")
            .tempdir()
            .unwrap();
        let config = format!(
            "[source]\nscheme = \"fs\"\nroot = {:?}\n\n[redis]\nurl = \"redis://127.0.0.1:{redis_port}/0\"\n\n\
             [defaults]\nretention_days = 30\ncompleteness = \"none\"\n\n{tables}",
            dir.path().join("warehouse").display().to_string()
        );
        std::fs::write(dir.path().join("coldsync.toml"), config).unwrap();
        Workspace { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    /// Writes `bytes` as the one file of partition `DATE` of table root `table`.
    fn file(&self, table: &str, bytes: &[u8]) -> &Self {
        self.files(table, &[bytes.to_vec()])
    }

    /// Writes `files` as `part-00000.parquet`, ... of partition `DATE` of table root `table`.
    fn files(&self, table: &str, files: &[Vec<u8>]) -> &Self {
        for (i, bytes) in files.iter().enumerate() {
            let path = format!("{table}/dt={DATE}/part-{i:05}.parquet");
            write_file(&self.root(), &path, bytes);
        }
        self
    }

    fn cli(&self, args: &[&str]) -> CliOutput {
        let config = self.dir.path().join("coldsync.toml");
        let mut full = vec!["--config", config.to_str().unwrap(), "--log-format", "json"];
        full.extend_from_slice(args);
        run_cli(&full, &[("RUST_LOG", "info")])
    }

    /// `export` of `DATE`: the RESP bytes, after checking the exit code.
    fn export(&self, table: &str) -> Vec<u8> {
        let out = self.cli(&["export", "--table", table, "--date", DATE]);
        assert_eq!(out.status_code, 0, "{}", out.dump());
        out.stdout.into_bytes()
    }
}

fn table(name: &str, key: &str, extra: &str) -> String {
    format!("[[tables]]\nname = \"{name}\"\npath = \"{name}\"\nkey = \"{key}\"\n{extra}\n")
}

/// The commands of a RESP stream, each as its arguments.
fn commands(resp: &[u8]) -> Vec<Vec<String>> {
    fn line<'a>(bytes: &'a [u8], pos: &mut usize) -> &'a str {
        let end = *pos + bytes[*pos..].windows(2).position(|w| w == b"\r\n").unwrap();
        let text = std::str::from_utf8(&bytes[*pos..end]).unwrap();
        *pos = end + 2;
        text
    }
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < resp.len() {
        let count: usize = line(resp, &mut pos)
            .strip_prefix('*')
            .unwrap()
            .parse()
            .unwrap();
        let mut args = Vec::with_capacity(count);
        for _ in 0..count {
            let len: usize = line(resp, &mut pos)
                .strip_prefix('$')
                .unwrap()
                .parse()
                .unwrap();
            args.push(String::from_utf8(resp[pos..pos + len].to_vec()).unwrap());
            pos += len + 2;
        }
        out.push(args);
    }
    out
}

/// `key -> value` of the `SET key value PXAT ms` commands, in order.
fn set_values(resp: &[u8]) -> Vec<(String, String)> {
    commands(resp)
        .into_iter()
        .map(|c| {
            assert_eq!(
                (c[0].as_str(), c.len(), c[3].as_str()),
                ("SET", 5, "PXAT"),
                "{c:?}"
            );
            (c[1].clone(), c[2].clone())
        })
        .collect()
}

fn parquet(batch: &RecordBatch, props: WriterProperties) -> Vec<u8> {
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.into_inner().unwrap()
}

/// The footer of a Parquet file: (where the FileMetaData starts, its bytes).
fn footer(file: &[u8]) -> (usize, &[u8]) {
    assert_eq!(&file[file.len() - 4..], b"PAR1");
    let len = u32::from_le_bytes(file[file.len() - 8..file.len() - 4].try_into().unwrap()) as usize;
    let start = file.len() - 8 - len;
    (start, &file[start..file.len() - 8])
}

fn metadata(file: &[u8]) -> ParquetMetaData {
    ParquetMetaDataReader::new()
        .parse_and_finish(&Bytes::copy_from_slice(file))
        .unwrap()
}

/// The file with `metadata` as its footer (the data pages as they were).
fn with_footer(file: &[u8], metadata: &ParquetMetaData) -> Vec<u8> {
    let (start, _) = footer(file);
    let mut out = file[..start].to_vec();
    let mut tail = Vec::new();
    ParquetMetaDataWriter::new(&mut tail, metadata)
        .finish()
        .unwrap();
    out.extend_from_slice(&tail);
    out
}

/// The thrift compact protocol, just enough to find one field of the FileMetaData struct.
mod compact {
    pub fn varint(bytes: &[u8], pos: &mut usize) -> u64 {
        let (mut value, mut shift) = (0u64, 0);
        loop {
            let byte = bytes[*pos];
            *pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
            shift += 7;
        }
    }

    pub fn write_varint(out: &mut Vec<u8>, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// Skips a value of compact type `ty`; `in_list`: booleans take a byte of their own.
    fn skip(bytes: &[u8], pos: &mut usize, ty: u8, in_list: bool) {
        match ty {
            1 | 2 if !in_list => {}
            1..=3 => *pos += 1,
            4..=6 => {
                varint(bytes, pos);
            }
            7 => *pos += 8,
            8 => {
                let len = varint(bytes, pos) as usize;
                *pos += len;
            }
            9 | 10 => {
                let header = bytes[*pos];
                *pos += 1;
                let mut size = u64::from(header >> 4);
                if size == 15 {
                    size = varint(bytes, pos);
                }
                for _ in 0..size {
                    skip(bytes, pos, header & 0x0f, true);
                }
            }
            11 => {
                let size = varint(bytes, pos);
                if size > 0 {
                    let types = bytes[*pos];
                    *pos += 1;
                    for _ in 0..size {
                        skip(bytes, pos, types >> 4, true);
                        skip(bytes, pos, types & 0x0f, true);
                    }
                }
            }
            12 => {
                let mut id = 0i64;
                while field(bytes, pos, &mut id).is_some_and(|ty| {
                    skip(bytes, pos, ty, false);
                    true
                }) {}
            }
            other => panic!("unknown compact type {other}"),
        }
    }

    /// Reads a field header (`None` at the struct's end), updating the field id.
    fn field(bytes: &[u8], pos: &mut usize, id: &mut i64) -> Option<u8> {
        let header = bytes[*pos];
        *pos += 1;
        if header == 0 {
            return None;
        }
        let delta = header >> 4;
        if delta == 0 {
            let zigzag = varint(bytes, pos);
            *id = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        } else {
            *id += i64::from(delta);
        }
        Some(header & 0x0f)
    }

    /// The byte range of the value of top-level i64 field `wanted` of the struct in `bytes`.
    pub fn i64_field(bytes: &[u8], wanted: i64) -> std::ops::Range<usize> {
        let (mut pos, mut id) = (0, 0);
        while let Some(ty) = field(bytes, &mut pos, &mut id) {
            let start = pos;
            skip(bytes, &mut pos, ty, false);
            if id == wanted {
                assert_eq!(ty, 6, "field {wanted} is not an i64");
                return start..pos;
            }
        }
        panic!("no field {wanted}");
    }
}

/// The file with the footer's file-level `num_rows` (FileMetaData field 3) set to `rows`.
fn with_file_num_rows(file: &[u8], rows: i64) -> Vec<u8> {
    let (start, meta) = footer(file);
    let range = compact::i64_field(meta, 3);
    let mut new_meta = meta[..range.start].to_vec();
    compact::write_varint(&mut new_meta, ((rows << 1) ^ (rows >> 63)) as u64);
    new_meta.extend_from_slice(&meta[range.end..]);
    let mut out = file[..start].to_vec();
    out.extend_from_slice(&new_meta);
    out.extend_from_slice(&(new_meta.len() as u32).to_le_bytes());
    out.extend_from_slice(b"PAR1");
    out
}

/// `repeated_no_annotation.parquet`'s rows: `id`, and `phoneNumbers` a struct holding a list
/// `phone` of structs `{number, kind}`, null for ids 1 and 2, an empty list for id 3.
fn phone_numbers() -> RecordBatch {
    let phone_fields = Fields::from(vec![
        Field::new("number", DataType::Int64, false),
        Field::new("kind", DataType::Utf8, true),
    ]);
    let phone = StructArray::new(
        phone_fields.clone(),
        vec![
            Arc::new(Int64Array::from(vec![
                5555555555, 1111111111, 1111111111, 2222222222, 3333333333,
            ])) as ArrayRef,
            Arc::new(StringArray::from(vec![
                None,
                Some("home"),
                Some("home"),
                None,
                Some("mobile"),
            ])),
        ],
        None,
    );
    let item = Arc::new(Field::new("phone", DataType::Struct(phone_fields), false));
    let phones = ListArray::new(
        item.clone(),
        OffsetBuffer::new(vec![0, 0, 0, 0, 1, 2, 5].into()),
        Arc::new(phone),
        None,
    );
    let numbers_fields = Fields::from(vec![Field::new("phone", DataType::List(item), true)]);
    let numbers = StructArray::new(
        numbers_fields,
        vec![Arc::new(phones) as ArrayRef],
        Some(NullBuffer::from(vec![false, false, true, true, true, true])),
    );
    RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5, 6])) as ArrayRef,
        ),
        ("phoneNumbers", Arc::new(numbers) as ArrayRef),
    ])
    .unwrap()
}

#[test]
fn a_footer_with_zero_num_rows_exports_and_loads_every_row_of_its_row_groups() {
    let bytes = with_file_num_rows(&parquet(&phone_numbers(), WriterProperties::default()), 0);
    let meta = metadata(&bytes);
    assert_eq!(
        meta.file_metadata().num_rows(),
        0,
        "the fixture's footer says 0 rows"
    );
    assert_eq!(meta.row_group(0).num_rows(), 6, "its row group holds 6");

    let redis = RedisServer::start();
    let ws = Workspace::new(&table("phones", "p:{id}", ""), redis.port);
    ws.file("phones", &bytes);
    let phone = |number: u64, kind: &str| format!(r#"{{"number":{number},"kind":{kind}}}"#);
    let expected: Vec<(String, String)> = [
        (1, "null".to_string()),
        (2, "null".to_string()),
        (3, r#"{"phone":[]}"#.to_string()),
        (4, format!(r#"{{"phone":[{}]}}"#, phone(5555555555, "null"))),
        (
            5,
            format!(r#"{{"phone":[{}]}}"#, phone(1111111111, r#""home""#)),
        ),
        (
            6,
            format!(
                r#"{{"phone":[{},{},{}]}}"#,
                phone(1111111111, r#""home""#),
                phone(2222222222, "null"),
                phone(3333333333, r#""mobile""#)
            ),
        ),
    ]
    .into_iter()
    .map(|(id, numbers)| {
        (
            format!("p:{id}"),
            format!(r#"{{"phoneNumbers":{numbers}}}"#),
        )
    })
    .collect();
    assert_eq!(set_values(&ws.export("phones")), expected);

    // A load counts (and checks) the rows of the row groups too.
    let out = ws.cli(&["run", "--as-of", "2026-11-22"]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let loaded = out.event("partition_loaded").expect("partition_loaded");
    assert_eq!(
        event_field(loaded, "rows").and_then(|v| v.as_u64()),
        Some(6)
    );
    assert_eq!(
        event_field(loaded, "keys").and_then(|v| v.as_u64()),
        Some(6)
    );
    for (key, value) in &expected {
        assert_eq!(redis.get(key).as_ref(), Some(value), "{key}");
    }
}

/// 39 rows: `id` 0..39 and `l` an int32 list (null every 7th row, empty every 5th), written
/// without dictionary, then the list column's chunk marked `dictionary_page_offset = 0` as
/// parquet-mr before 1.11 wrote it.
fn dictionary_offset_zero() -> (Vec<u8>, Vec<String>) {
    let mut lists = ListBuilder::new(Int32Builder::new());
    let mut values = Vec::new();
    for i in 0..39i32 {
        if i % 7 == 3 {
            lists.append_null();
            values.push(r#"{"l":null}"#.to_string());
            continue;
        }
        let items: Vec<i32> = (0..(i % 5)).map(|k| i * 100 + k).collect();
        for item in &items {
            lists.values().append_value(*item);
        }
        lists.append(true);
        let items: Vec<String> = items.iter().map(i32::to_string).collect();
        values.push(format!(r#"{{"l":[{}]}}"#, items.join(",")));
    }
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
                true,
            ),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(0..39)) as ArrayRef,
            Arc::new(lists.finish()),
        ],
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .build();
    let bytes = parquet(&batch, props);
    let mut builder = metadata(&bytes).into_builder();
    let mut row_groups = builder.take_row_groups();
    for group in &mut row_groups {
        let column = &mut group.columns_mut()[1];
        assert_eq!(column.column_path().string(), "l.list.item");
        assert_eq!(column.dictionary_page_offset(), None);
        *column = column
            .clone()
            .into_builder()
            .set_dictionary_page_offset(Some(0))
            .build()
            .unwrap();
    }
    let patched = with_footer(&bytes, &builder.set_row_groups(row_groups).build());
    (patched, values)
}

#[test]
fn a_dictionary_page_offset_of_zero_means_no_dictionary() {
    let (bytes, values) = dictionary_offset_zero();
    assert_eq!(
        metadata(&bytes)
            .row_group(0)
            .column(1)
            .dictionary_page_offset(),
        Some(0)
    );
    // The parquet crate alone reads the chunk from byte 0 (the magic) and fails.
    let plain = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes.clone()))
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<Vec<_>, _>>();
    assert!(
        plain.is_err(),
        "the fixture has the shape that fails: {plain:?}"
    );

    let ws = Workspace::new(&table("lists", "l:{id}", ""), 1);
    ws.file("lists", &bytes);
    let expected: Vec<(String, String)> = values
        .into_iter()
        .enumerate()
        .map(|(id, value)| (format!("l:{id}"), value))
        .collect();
    assert_eq!(expected.len(), 39);
    assert_eq!(set_values(&ws.export("lists")), expected);
}

#[test]
fn float16_values_print_their_shortest_round_trip_form() {
    let values = [
        Some(10.305f32),
        Some(0.1),
        Some(65504.0),
        Some(-0.0),
        Some(1.0),
        None,
        Some(f32::INFINITY),
    ];
    let batch = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from_iter_values(0..7)) as ArrayRef,
        ),
        (
            "f",
            Arc::new(Float16Array::from_iter(
                values.iter().map(|v| v.map(f16::from_f32)),
            )) as ArrayRef,
        ),
    ])
    .unwrap();
    assert_eq!(f16::from_f32(10.305).to_f32(), 10.304_687_5);
    let bytes = parquet(&batch, WriterProperties::default());
    let tables = format!(
        "{}{}",
        table("halves", "h:{id}", ""),
        "[[tables]]\nname = \"halves_text\"\npath = \"halves\"\nkey = \"t:{id}\"\n\
         value_format = \"column\"\nvalue_column = \"f\"\n"
    );
    let ws = Workspace::new(&tables, 1);
    ws.file("halves", &bytes);
    let json: Vec<String> = set_values(&ws.export("halves"))
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let expected = ["10.305", "0.1", "65500.0", "-0.0", "1.0", "null", "null"];
    assert_eq!(json, expected.map(|f| format!(r#"{{"f":{f}}}"#)).to_vec());
    let text: Vec<String> = set_values(&ws.export("halves_text"))
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(text, ["10.305", "0.1", "65500.0", "-0.0", "1.0", "", ""]);
}

/// Every data key of `redis` (not the ledger's) with its hash and expiry.
fn hashes(redis: &RedisServer) -> BTreeMap<String, (BTreeMap<String, String>, i64)> {
    redis
        .keys("*")
        .into_iter()
        .filter(|k| !k.starts_with("coldsync:"))
        .map(|k| {
            let value = (redis.hgetall(&k), redis.pexpiretime(&k));
            (k, value)
        })
        .collect()
}

fn redis_cli_pipe(redis: &RedisServer, resp: &[u8]) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli (scripts/install-deps.sh installs it)");
    child.stdin.take().unwrap().write_all(resp).unwrap();
    let output = output_of(child, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "redis-cli --pipe: {text}");
    text
}

fn output_of(child: std::process::Child, timeout: Duration) -> std::process::Output {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(timeout)
        .expect("redis-cli --pipe finished in time")
        .unwrap()
}

#[test]
fn hash_export_piped_into_redis_equals_a_load_even_over_older_hashes() {
    // ids 1..=40 but 7 (more than one 32-key transaction), then id 7 with every value null.
    let ids: Vec<i64> = (1..=40).filter(|id| *id != 7).collect();
    let full = orders_batch(&ids, "new");
    let empty_columns: Vec<ArrayRef> = full
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| match i {
            0 => Arc::new(Int64Array::from(vec![7])) as ArrayRef,
            _ => arrow_array::new_null_array(field.data_type(), 1),
        })
        .collect();
    let empty = RecordBatch::try_new(full.schema(), empty_columns).unwrap();
    let compression = parquet::basic::Compression::SNAPPY;
    let files = [
        parquet_bytes(&full, 16, compression),
        parquet_bytes(&empty, 16, compression),
    ];

    let piped = RedisServer::start();
    let loaded = RedisServer::start();
    for redis in [&piped, &loaded] {
        // Older hashes of the same keys, with a field the new rows do not have.
        for id in [1, 7, 40] {
            redis.cmd::<i64>(
                "HSET",
                &[&format!("ord:{id}"), "stale", "x", "status", "old"],
            );
        }
    }
    let tables = table("orders", "ord:{order_id}", "value_format = \"hash\"");
    let ws = Workspace::new(&tables, loaded.port);
    ws.files("orders", &files);

    let resp = ws.export("orders");
    let commands = commands(&resp);
    assert_eq!(commands[0], ["MULTI"]);
    assert_eq!(commands[1], ["DEL", "ord:1"]);
    assert_eq!(commands[2][..2], ["HSET", "ord:1"]);
    assert_eq!(commands[3][..2], ["PEXPIREAT", "ord:1"]);
    assert_eq!(commands.last().unwrap(), &["EXEC"]);
    assert!(commands.iter().any(|c| c == &["DEL", "ord:7"]));
    assert!(!commands.iter().any(|c| c[0] == "HSET" && c[1] == "ord:7"));
    let report = redis_cli_pipe(&piped, &resp);
    assert!(report.contains("errors: 0"), "{report}");

    let out = ws.cli(&["run", "--as-of", "2026-11-22"]);
    assert_eq!(out.status_code, 0, "{}", out.dump());

    let after_pipe = hashes(&piped);
    assert_eq!(
        after_pipe,
        hashes(&loaded),
        "export + redis-cli --pipe == a load"
    );
    assert_eq!(after_pipe.len(), 39, "ord:7 (every value null) is deleted");
    assert!(!after_pipe.contains_key("ord:7"));
    for (key, (fields, expiry)) in &after_pipe {
        assert!(!fields.contains_key("stale"), "{key}: {fields:?}");
        assert_eq!(fields["status"], "paid-new", "{key}");
        assert!(*expiry > 0, "{key}");
    }
}
