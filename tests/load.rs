//! End-to-end loading through the library API (`Engine::run`) from a local-filesystem source
//! into a private Redis: every value format, key templates, null keys, every Arrow type of the
//! value contract, schema evolution, broken files and a Redis that refuses writes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow_array::builder::{Int32Builder, MapBuilder, StringBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, Int8Array, ListArray,
    RecordBatch, StringArray, StructArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    UInt64Array,
};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, Fields};
use chrono::NaiveDate;
use coldsync::ledger::LedgerEntry;
use coldsync::run::{partition_expiry, Engine, RunOptions, RunSummary};
use common::*;
use parquet::basic::Compression;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::instrument::WithSubscriber;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// Unix ms of midnight UTC of a date.
fn utc_midnight_ms(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// Collects the JSON log lines of one run.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn events(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }
}

/// A run's summary and its log events (those emitted by the run's own task).
struct Ran {
    summary: RunSummary,
    events: Vec<Value>,
}

impl Ran {
    fn named(&self, name: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["event"].as_str() == Some(name))
            .collect()
    }

    fn failed(&self) -> Vec<&Value> {
        self.named("partition_failed")
    }
}

async fn run(engine: &Engine, as_of: NaiveDate) -> Ran {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let options = RunOptions {
        tables: vec![],
        as_of: Some(as_of),
        dry_run: false,
        backfill: None,
        ..RunOptions::default()
    };
    let summary = engine
        .run(&options, &CancellationToken::new())
        .with_subscriber(subscriber)
        .await
        .unwrap_or_else(|e| panic!("run did not start: {e}"));
    Ran {
        summary,
        events: capture.events(),
    }
}

fn pq(batch: &RecordBatch) -> Vec<u8> {
    parquet_bytes(batch, 1024, Compression::SNAPPY)
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("record batch")
}

fn expiry_of(engine: &Engine, table: &str, date: NaiveDate) -> i64 {
    let cfg = engine
        .config()
        .tables
        .iter()
        .find(|t| t.name == table)
        .unwrap_or_else(|| panic!("no table {table}"));
    partition_expiry(cfg, date).millis
}

async fn ledger(engine: &Engine, table: &str) -> BTreeMap<NaiveDate, LedgerEntry> {
    engine
        .ledger()
        .entries(table)
        .await
        .expect("ledger entries")
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn dec(values: Vec<Option<i128>>, p: u8, s: i8) -> ArrayRef {
    Arc::new(
        Decimal128Array::from(values)
            .with_precision_and_scale(p, s)
            .unwrap(),
    )
}

fn strs(values: Vec<Option<&str>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn i64s(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(values))
}

fn ts_ms(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values))
}

fn assert_ok(ran: &Ran, partitions: u64) {
    assert_eq!(
        ran.summary.exit_code, 0,
        "summary {:#?}\nevents {:#?}",
        ran.summary, ran.events
    );
    assert_eq!(ran.summary.partitions_loaded, partitions);
    assert_eq!(ran.summary.partitions_failed, 0);
}

// ---------------------------------------------------------------------------
// 1. Value formats
// ---------------------------------------------------------------------------

/// order_id Int64, amount Decimal(10,2), status Utf8, created_at Timestamp(ms), qty Int32:
/// row 1 fully set, row 2 with every value column but created_at null.
fn format_rows() -> RecordBatch {
    batch(vec![
        ("order_id", i64s(vec![Some(1), Some(2)])),
        ("amount", dec(vec![Some(1230), None], 10, 2)),
        ("status", strs(vec![Some("paid"), None])),
        (
            "created_at",
            ts_ms(vec![
                Some(ORDERS_BASE_TS_MS + 1000),
                Some(ORDERS_BASE_TS_MS + 2000),
            ]),
        ),
        ("qty", Arc::new(Int32Array::from(vec![Some(3), None]))),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_format_writes_exact_values_and_expiry() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    scenario.partition("wh/orders", "2026-11-20", &[pq(&format_rows())]);
    let tables = r#"
[[tables]]
name = "json"
path = "wh/orders"
key = "cold:oj:{order_id}"

[[tables]]
name = "hash"
path = "wh/orders"
key = "cold:oh:{order_id}"
value_format = "hash"

[[tables]]
name = "column"
path = "wh/orders"
key = "cold:oc:{order_id}"
value_format = "column"
value_column = "status"

[[tables]]
name = "delim"
path = "wh/orders"
key = "cold:od:{order_id}"
value_format = "delimited"

[[tables]]
name = "delim_custom"
path = "wh/orders"
key = "cold:odc:{order_id}"
value_format = "delimited"
separator = "|"
null_string = '\N'

[[tables]]
name = "json_sh"
path = "wh/orders"
key = "cold:osh:{order_id}"
timezone = "Asia/Shanghai"
"#;
    let engine = scenario.engine(tables).await;
    let date = d(2026, 11, 20);
    let ran = run(&engine, d(2026, 11, 22)).await;
    assert_ok(&ran, 6);
    assert_eq!(ran.summary.rows, 12);
    assert_eq!(ran.summary.keys, 12);
    assert_eq!(ran.summary.skipped_null_keys, 0);

    // json: decimal as string, null as null, timestamp ISO with ms and Z.
    assert_eq!(
        redis.get("cold:oj:1").as_deref(),
        Some(
            r#"{"amount":"12.30","status":"paid","created_at":"2026-11-20T00:00:01.000Z","qty":3}"#
        )
    );
    assert_eq!(
        redis.get("cold:oj:2").as_deref(),
        Some(r#"{"amount":null,"status":null,"created_at":"2026-11-20T00:00:02.000Z","qty":null}"#)
    );
    // hash: text forms, null columns absent.
    assert_eq!(redis.key_type("cold:oh:1"), "hash");
    assert_eq!(
        redis.hgetall("cold:oh:1"),
        map(&[
            ("amount", "12.30"),
            ("status", "paid"),
            ("created_at", "2026-11-20T00:00:01.000Z"),
            ("qty", "3"),
        ])
    );
    assert_eq!(
        redis.hgetall("cold:oh:2"),
        map(&[("created_at", "2026-11-20T00:00:02.000Z")])
    );
    // column: raw text of value_column, null -> empty value.
    assert_eq!(redis.get("cold:oc:1").as_deref(), Some("paid"));
    assert_eq!(redis.get("cold:oc:2").as_deref(), Some(""));
    // delimited, default \u0001 separator and empty null_string.
    assert_eq!(
        redis.get("cold:od:1").as_deref(),
        Some("12.30\u{1}paid\u{1}2026-11-20T00:00:01.000Z\u{1}3")
    );
    assert_eq!(
        redis.get("cold:od:2").as_deref(),
        Some("\u{1}\u{1}2026-11-20T00:00:02.000Z\u{1}")
    );
    // delimited, custom separator and null_string.
    assert_eq!(
        redis.get("cold:odc:1").as_deref(),
        Some("12.30|paid|2026-11-20T00:00:01.000Z|3")
    );
    assert_eq!(
        redis.get("cold:odc:2").as_deref(),
        Some(r"\N|\N|2026-11-20T00:00:02.000Z|\N")
    );
    assert_eq!(
        redis.get("cold:osh:1").as_deref(),
        redis.get("cold:oj:1").as_deref()
    );

    // Expiry: start of (date + retention_days + 1) in the table's time zone.
    let utc_expiry = utc_midnight_ms(d(2026, 12, 21));
    let sh_expiry = utc_expiry - 8 * 3_600_000;
    for table in ["json", "hash", "column", "delim", "delim_custom"] {
        assert_eq!(expiry_of(&engine, table, date), utc_expiry, "{table}");
    }
    assert_eq!(expiry_of(&engine, "json_sh", date), sh_expiry);
    let all = redis.keys("cold:*");
    assert_eq!(all.len(), 12, "{all:?}");
    for key in &all {
        let expected = if key.starts_with("cold:osh:") {
            sh_expiry
        } else {
            utc_expiry
        };
        assert_eq!(redis.pexpiretime(key), expected, "PEXPIRETIME {key}");
    }

    // Ledger: one entry per table, with the same expiry and counts.
    for table in ["json", "hash", "column", "delim", "delim_custom", "json_sh"] {
        let entries = ledger(&engine, table).await;
        assert_eq!(
            entries.keys().copied().collect::<Vec<_>>(),
            vec![date],
            "{table}"
        );
        let e = &entries[&date];
        assert_eq!((e.files, e.rows, e.keys), (1, 2, 2), "{table}");
        assert_eq!(e.skipped_null_keys, 0);
        assert_eq!(e.kept_newer, 0);
        assert_eq!(e.run_id, ran.summary.run_id);
        assert_eq!(e.expires_at_ms, expiry_of(&engine, table, date));
        assert_eq!(engine.ledger().watermark(table).await.unwrap(), Some(date));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_reload_leaves_no_stale_fields() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let rows = |status: Option<&str>, qty: Option<i32>| {
        batch(vec![
            ("order_id", i64s(vec![Some(1)])),
            ("status", strs(vec![status])),
            ("qty", Arc::new(Int32Array::from(vec![qty])) as ArrayRef),
        ])
    };
    let tables = r#"
[[tables]]
name = "orders"
path = "wh/orders"
key = "cold:orders:{order_id}"
value_format = "hash"
"#;
    scenario.partition(
        "wh/orders",
        "2026-11-20",
        &[pq(&rows(Some("paid"), Some(3)))],
    );
    let engine = scenario.engine(tables).await;
    assert_ok(&run(&engine, d(2026, 11, 22)).await, 1);
    assert_eq!(
        redis.hgetall("cold:orders:1"),
        map(&[("status", "paid"), ("qty", "3")])
    );
    assert_eq!(
        redis.pexpiretime("cold:orders:1"),
        utc_midnight_ms(d(2026, 12, 21))
    );

    // A newer partition whose row has a null status: the field disappears.
    scenario.partition("wh/orders", "2026-11-21", &[pq(&rows(None, Some(5)))]);
    assert_ok(&run(&engine, d(2026, 11, 23)).await, 1);
    assert_eq!(redis.hgetall("cold:orders:1"), map(&[("qty", "5")]));
    assert_eq!(
        redis.pexpiretime("cold:orders:1"),
        utc_midnight_ms(d(2026, 12, 22))
    );

    // The same partition rewritten (changed fingerprint) and reloaded: qty now null.
    std::thread::sleep(std::time::Duration::from_millis(20));
    scenario.partition(
        "wh/orders",
        "2026-11-21",
        &[pq(&rows(Some("refunded"), None))],
    );
    let ran = run(&engine, d(2026, 11, 23)).await;
    assert_ok(&ran, 1);
    assert_eq!(
        redis.hgetall("cold:orders:1"),
        map(&[("status", "refunded")])
    );
    assert_eq!(
        redis.pexpiretime("cold:orders:1"),
        utc_midnight_ms(d(2026, 12, 22))
    );
    let entries = ledger(&engine, "orders").await;
    assert_eq!(
        entries.keys().copied().collect::<Vec<_>>(),
        vec![d(2026, 11, 20), d(2026, 11, 21)]
    );
    assert_eq!(entries[&d(2026, 11, 21)].run_id, ran.summary.run_id);
}

// ---------------------------------------------------------------------------
// 2. Key templates
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_escaped_and_date_key_templates() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let skus = batch(vec![
        ("shop_id", strs(vec![Some("s1"), Some("s2"), Some("s1")])),
        ("sku_id", i64s(vec![Some(7), Some(7), Some(8)])),
        ("price", dec(vec![Some(100), Some(250), Some(-5)], 10, 2)),
    ]);
    scenario.partition("wh/skus", "2026-11-20", &[pq(&skus)]);
    scenario.partition("wh/orders", "2026-11-20", &[pq(&orders_batch(&[42], "x"))]);
    let daily = batch(vec![
        (
            "day",
            Arc::new(Date32Array::from(vec![Some(20777), Some(20778)])) as ArrayRef,
        ),
        ("region", strs(vec![Some("eu"), Some("us")])),
        ("total", i64s(vec![Some(10), Some(20)])),
    ]);
    scenario.partition("wh/daily", "2026-11-20", &[pq(&daily)]);
    let tables = r#"
[[tables]]
name = "skus"
path = "wh/skus"
key = "cold:sku:{shop_id}:{sku_id}"

[[tables]]
name = "orders"
path = "wh/orders"
key = "cold:{{orders}}:{order_id}"

[[tables]]
name = "daily"
path = "wh/daily"
key = "cold:daily:{day}:{region}"
"#;
    let engine = scenario.engine(tables).await;
    let ran = run(&engine, d(2026, 11, 22)).await;
    assert_ok(&ran, 3);
    assert_eq!(
        redis.keys("cold:*"),
        set(&[
            "cold:sku:s1:7",
            "cold:sku:s2:7",
            "cold:sku:s1:8",
            "cold:{orders}:42",
            "cold:daily:2026-11-20:eu",
            "cold:daily:2026-11-21:us",
        ])
    );
    // Key columns are not repeated in the value.
    assert_eq!(
        redis.get("cold:sku:s1:8").as_deref(),
        Some(r#"{"price":"-0.05"}"#)
    );
    assert_eq!(
        redis.get("cold:sku:s2:7").as_deref(),
        Some(r#"{"price":"2.50"}"#)
    );
    assert_eq!(
        redis.get("cold:{orders}:42").as_deref(),
        Some(
            r#"{"user_id":10042,"amount":"42.99","status":"paid-x","created_at":"2026-11-20T00:00:42.000Z"}"#
        )
    );
    assert_eq!(
        redis.get("cold:daily:2026-11-21:us").as_deref(),
        Some(r#"{"total":20}"#)
    );
    let expiry = utc_midnight_ms(d(2026, 12, 21));
    for key in redis.keys("cold:*") {
        assert_eq!(redis.pexpiretime(&key), expiry, "{key}");
    }
}

// ---------------------------------------------------------------------------
// 3. Null and empty keys
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_and_empty_key_rows_are_skipped_and_counted() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let orders = batch(vec![
        ("order_id", i64s(vec![Some(1), None, Some(3), None])),
        (
            "note",
            strs(vec![Some("a"), Some("b"), Some("c"), Some("d")]),
        ),
    ]);
    scenario.partition("wh/orders", "2026-11-20", &[pq(&orders)]);
    let by_code = batch(vec![
        ("code", strs(vec![Some("A"), Some(""), None, Some("B")])),
        ("n", i64s(vec![Some(1), Some(2), Some(3), Some(4)])),
    ]);
    scenario.partition("wh/codes", "2026-11-20", &[pq(&by_code)]);
    let skus = batch(vec![
        ("shop_id", strs(vec![Some(""), Some("s1"), Some("s1")])),
        ("sku_id", i64s(vec![Some(7), None, Some(9)])),
        ("n", i64s(vec![Some(1), Some(2), Some(3)])),
    ]);
    scenario.partition("wh/skus", "2026-11-20", &[pq(&skus)]);
    // Half the rows are skipped, above the default max_skipped_ratio (0.01): allowed here, this
    // test is about the counting (tests/silent_empties.rs tests the limit).
    let tables = r#"
[[tables]]
name = "orders"
path = "wh/orders"
key = "cold:orders:{order_id}"
max_skipped_ratio = 1.0

[[tables]]
name = "codes"
path = "wh/codes"
key = "cold:code:{code}"
max_skipped_ratio = 1.0

[[tables]]
name = "skus"
path = "wh/skus"
key = "cold:sku:{shop_id}:{sku_id}"
max_skipped_ratio = 1.0
"#;
    let engine = scenario.engine(tables).await;
    let date = d(2026, 11, 20);
    let ran = run(&engine, d(2026, 11, 22)).await;
    assert_ok(&ran, 3);
    assert_eq!(ran.summary.rows, 11);
    assert_eq!(ran.summary.keys, 5);
    assert_eq!(ran.summary.skipped_null_keys, 6);
    let per_table: Vec<(&str, u64, u64, u64)> = ran
        .summary
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t.rows, t.keys, t.skipped_null_keys))
        .collect();
    assert_eq!(
        per_table,
        vec![("orders", 4, 2, 2), ("codes", 4, 2, 2), ("skus", 3, 1, 2)]
    );
    assert_eq!(
        redis.keys("*"),
        set(&[
            "cold:orders:1",
            "cold:orders:3",
            "cold:code:A",
            "cold:code:B",
            "cold:sku:s1:9",
            "coldsync:{orders}:partitions",
            "coldsync:{orders}:watermark",
            "coldsync:{codes}:partitions",
            "coldsync:{codes}:watermark",
            "coldsync:{skus}:partitions",
            "coldsync:{skus}:watermark",
        ])
    );
    assert_eq!(redis.get("cold:orders:"), None);
    assert_eq!(redis.get("cold:code:"), None);
    assert_eq!(
        redis.get("cold:orders:3").as_deref(),
        Some(r#"{"note":"c"}"#)
    );
    assert_eq!(redis.get("cold:code:B").as_deref(), Some(r#"{"n":4}"#));
    for (table, rows, keys, skipped) in [("orders", 4, 2, 2), ("codes", 4, 2, 2), ("skus", 3, 1, 2)]
    {
        let entries = ledger(&engine, table).await;
        let e = &entries[&date];
        assert_eq!(
            (e.rows, e.keys, e.skipped_null_keys),
            (rows, keys, skipped),
            "{table}"
        );
    }
    let loaded = ran.named("partition_loaded");
    assert_eq!(loaded.len(), 3);
    assert_eq!(loaded[0]["table"], "orders");
    assert_eq!(loaded[0]["skipped_null_keys"], 2);
}

// ---------------------------------------------------------------------------
// 4. Every Arrow type of the contract
// ---------------------------------------------------------------------------

fn all_types_batch() -> RecordBatch {
    let base_us = ORDERS_BASE_TS_MS * 1000;
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), None, Some(3)]),
        None,
    ]);
    let st = StructArray::try_new(
        Fields::from(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ]),
        vec![
            Arc::new(Int32Array::from(vec![Some(1), None])) as ArrayRef,
            strs(vec![Some("x"), None]),
        ],
        Some(NullBuffer::from(vec![true, false])),
    )
    .unwrap();
    let mut mb = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
    mb.keys().append_value("k1");
    mb.values().append_value(1);
    mb.keys().append_value("k2");
    mb.values().append_null();
    mb.append(true).unwrap();
    mb.append(false).unwrap();
    let map_arr = mb.finish();
    let dict: DictionaryArray<Int32Type> = vec![Some("blue"), None].into_iter().collect();
    batch(vec![
        ("order_id", i64s(vec![Some(1), Some(2)])),
        ("i8", Arc::new(Int8Array::from(vec![Some(-128), None]))),
        ("i16", Arc::new(Int16Array::from(vec![Some(-32768), None]))),
        (
            "i32",
            Arc::new(Int32Array::from(vec![Some(i32::MAX), None])),
        ),
        ("i64", i64s(vec![Some(i64::MIN), None])),
        (
            "u64",
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), None])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(-2.5e-7)])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![Some(0.1f32), Some(f32::INFINITY)])),
        ),
        ("dec", dec(vec![Some(-5), None], 10, 2)),
        ("dec38", dec(vec![Some(-123_456_789), Some(1200)], 38, 4)),
        ("s", strs(vec![Some("he said \"hi\"\nbye\\"), None])),
        (
            "bin",
            Arc::new(BinaryArray::from_opt_vec(vec![
                Some(&[0u8, 1, 2, 255][..]),
                None,
            ])),
        ),
        ("d", Arc::new(Date32Array::from(vec![Some(20777), None]))),
        ("ts_ms", ts_ms(vec![Some(ORDERS_BASE_TS_MS + 123), None])),
        (
            "ts_us_sh",
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(base_us + 456), None])
                    .with_timezone("Asia/Shanghai"),
            ),
        ),
        (
            "ts_us",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(base_us + 789),
                Some(-1),
            ])),
        ),
        ("list", Arc::new(list)),
        ("st", Arc::new(st)),
        ("m", Arc::new(map_arr)),
        ("dict", Arc::new(dict)),
        (
            "flag",
            Arc::new(BooleanArray::from(vec![Some(true), Some(false)])),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_arrow_type_round_trips_to_exact_json() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let b = all_types_batch();
    let bytes = pq(&b);
    // The Parquet file keeps the Arrow types (sanity check of the fixture itself).
    let back = read_parquet_bytes(&bytes);
    assert_eq!(back[0].schema().fields(), b.schema().fields());
    scenario.partition("wh/types", "2026-11-20", &[bytes]);
    let tables = r#"
[[tables]]
name = "iso"
path = "wh/types"
key = "cold:iso:{order_id}"

[[tables]]
name = "epoch"
path = "wh/types"
key = "cold:epoch:{order_id}"
date_encoding = "epoch_days"
timestamp_encoding = "epoch_millis"
"#;
    let engine = scenario.engine(tables).await;
    let ran = run(&engine, d(2026, 11, 22)).await;
    assert_ok(&ran, 2);

    let iso1 = concat!(
        r#"{"i8":-128,"i16":-32768,"i32":2147483647,"i64":-9223372036854775808,"#,
        r#""u64":18446744073709551615,"f64":null,"f32":0.1,"dec":"-0.05","dec38":"-12345.6789","#,
        r#""s":"he said \"hi\"\nbye\\","bin":"AAEC/w==","d":"2026-11-20","#,
        r#""ts_ms":"2026-11-20T00:00:00.123Z","ts_us_sh":"2026-11-20T08:00:00.000456+08:00","#,
        r#""ts_us":"2026-11-20T00:00:00.000789Z","list":[1,null,3],"st":{"a":1,"b":"x"},"#,
        r#""m":{"k1":1,"k2":null},"dict":"blue","flag":true}"#
    );
    let iso2 = concat!(
        r#"{"i8":null,"i16":null,"i32":null,"i64":null,"u64":null,"f64":-2.5e-7,"f32":null,"#,
        r#""dec":null,"dec38":"0.1200","s":null,"bin":null,"d":null,"ts_ms":null,"ts_us_sh":null,"#,
        r#""ts_us":"1969-12-31T23:59:59.999999Z","list":null,"st":null,"m":null,"dict":null,"#,
        r#""flag":false}"#
    );
    let epoch1 = concat!(
        r#"{"i8":-128,"i16":-32768,"i32":2147483647,"i64":-9223372036854775808,"#,
        r#""u64":18446744073709551615,"f64":null,"f32":0.1,"dec":"-0.05","dec38":"-12345.6789","#,
        r#""s":"he said \"hi\"\nbye\\","bin":"AAEC/w==","d":20777,"#,
        r#""ts_ms":1795132800123,"ts_us_sh":1795132800000,"#,
        r#""ts_us":1795132800000,"list":[1,null,3],"st":{"a":1,"b":"x"},"#,
        r#""m":{"k1":1,"k2":null},"dict":"blue","flag":true}"#
    );
    let epoch2 = concat!(
        r#"{"i8":null,"i16":null,"i32":null,"i64":null,"u64":null,"f64":-2.5e-7,"f32":null,"#,
        r#""dec":null,"dec38":"0.1200","s":null,"bin":null,"d":null,"ts_ms":null,"ts_us_sh":null,"#,
        r#""ts_us":-1,"list":null,"st":null,"m":null,"dict":null,"#,
        r#""flag":false}"#
    );
    for (key, expected) in [
        ("cold:iso:1", iso1),
        ("cold:iso:2", iso2),
        ("cold:epoch:1", epoch1),
        ("cold:epoch:2", epoch2),
    ] {
        let got = redis.get(key);
        assert_eq!(got.as_deref(), Some(expected), "{key}");
        let parsed: Value = serde_json::from_str(expected).expect("valid JSON");
        assert!(parsed.is_object());
    }
    let v: Value = serde_json::from_str(&redis.get("cold:iso:1").unwrap()).unwrap();
    assert_eq!(v["s"], "he said \"hi\"\nbye\\");
    assert_eq!(v["u64"].as_u64(), Some(u64::MAX));
    assert_eq!(v["i64"].as_i64(), Some(i64::MIN));
}

// ---------------------------------------------------------------------------
// 5. Schema evolution and unusable key columns
// ---------------------------------------------------------------------------

fn old_schema_rows(ids: &[i32]) -> RecordBatch {
    batch(vec![
        (
            "order_id",
            Arc::new(Int32Array::from(ids.to_vec())) as ArrayRef,
        ),
        (
            "amount",
            dec(ids.iter().map(|&i| Some(i as i128 * 100)).collect(), 10, 2),
        ),
    ])
}

fn new_schema_rows(ids: &[i64]) -> RecordBatch {
    batch(vec![
        ("order_id", i64s(ids.iter().map(|&i| Some(i)).collect())),
        (
            "amount",
            dec(ids.iter().map(|&i| Some(i as i128 * 100)).collect(), 10, 2),
        ),
        (
            "new_col",
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("n{i}")).collect::<Vec<_>>(),
            )),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_evolution_widened_key_and_added_column() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    // Table with explicit columns: partition A (old schema), B (new schema).
    scenario.partition("wh/evo", "2026-11-20", &[pq(&old_schema_rows(&[1, 2]))]);
    scenario.partition("wh/evo", "2026-11-21", &[pq(&new_schema_rows(&[3, 4]))]);
    // Table without `columns`: one partition mixing both schemas.
    scenario.partition(
        "wh/mixed",
        "2026-11-21",
        &[pq(&old_schema_rows(&[1])), pq(&new_schema_rows(&[2]))],
    );
    let tables = r#"
[[tables]]
name = "evo"
path = "wh/evo"
key = "cold:evo:{order_id}"
columns = ["amount", "new_col"]

[[tables]]
name = "evo_hash"
path = "wh/evo"
key = "cold:evoh:{order_id}"
columns = ["amount", "new_col"]
value_format = "hash"

[[tables]]
name = "mixed"
path = "wh/mixed"
key = "cold:mixed:{order_id}"
"#;
    let engine = scenario.engine(tables).await;
    let ran = run(&engine, d(2026, 11, 23)).await;
    assert_ok(&ran, 5);
    assert_eq!(
        redis.get("cold:evo:1").as_deref(),
        Some(r#"{"amount":"1.00","new_col":null}"#)
    );
    assert_eq!(
        redis.get("cold:evo:2").as_deref(),
        Some(r#"{"amount":"2.00","new_col":null}"#)
    );
    assert_eq!(
        redis.get("cold:evo:4").as_deref(),
        Some(r#"{"amount":"4.00","new_col":"n4"}"#)
    );
    assert_eq!(redis.hgetall("cold:evoh:1"), map(&[("amount", "1.00")]));
    assert_eq!(
        redis.hgetall("cold:evoh:3"),
        map(&[("amount", "3.00"), ("new_col", "n3")])
    );
    assert_eq!(
        redis.get("cold:mixed:1").as_deref(),
        Some(r#"{"amount":"1.00","new_col":null}"#)
    );
    assert_eq!(
        redis.get("cold:mixed:2").as_deref(),
        Some(r#"{"amount":"2.00","new_col":"n2"}"#)
    );
    assert_eq!(redis.keys("cold:evo:*").len(), 4);
    assert_eq!(
        redis.pexpiretime("cold:evo:1"),
        utc_midnight_ms(d(2026, 12, 21))
    );
    assert_eq!(
        redis.pexpiretime("cold:evo:3"),
        utc_midnight_ms(d(2026, 12, 22))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_key_column_type_fails_only_its_partition() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let t = "wh/orders";
    scenario.partition(t, "2026-11-20", &[pq(&orders_batch(&[1, 2], "a"))]);
    // A good file beside a file whose key column is a float.
    let float_key = batch(vec![
        (
            "order_id",
            Arc::new(Float64Array::from(vec![Some(30.0), Some(31.0)])) as ArrayRef,
        ),
        ("status", strs(vec![Some("x"), Some("y")])),
    ]);
    scenario.partition(
        t,
        "2026-11-21",
        &[pq(&orders_batch(&[20, 21], "b")), pq(&float_key)],
    );
    // A partition whose key column is a struct.
    let struct_key = StructArray::try_new(
        Fields::from(vec![Field::new("id", DataType::Int64, true)]),
        vec![i64s(vec![Some(40)])],
        None,
    )
    .unwrap();
    let struct_batch = batch(vec![
        ("order_id", Arc::new(struct_key) as ArrayRef),
        ("status", strs(vec![Some("z")])),
    ]);
    scenario.partition(t, "2026-11-22", &[pq(&struct_batch)]);
    scenario.partition(t, "2026-11-23", &[pq(&orders_batch(&[5], "c"))]);
    let engine = scenario
        .engine(&table_toml("orders", "wh/orders", "cold:orders", ""))
        .await;
    let ran = run(&engine, d(2026, 11, 25)).await;
    assert_eq!(ran.summary.exit_code, 3, "{:#?}", ran.summary);
    assert_eq!(ran.summary.partitions_loaded, 2);
    assert_eq!(ran.summary.partitions_failed, 2);
    assert_eq!(ran.summary.tables[0].status, "failed");
    assert_eq!(
        redis.keys("cold:*"),
        set(&["cold:orders:1", "cold:orders:2", "cold:orders:5"])
    );
    let entries = ledger(&engine, "orders").await;
    assert_eq!(
        entries.keys().copied().collect::<Vec<_>>(),
        vec![d(2026, 11, 20), d(2026, 11, 23)]
    );
    assert_eq!(
        engine.ledger().watermark("orders").await.unwrap(),
        Some(d(2026, 11, 20))
    );
    let failed = ran.failed();
    assert_eq!(failed.len(), 2, "{:#?}", ran.events);
    let float_file = "wh/orders/dt=2026-11-21/part-00001.parquet";
    let struct_file = "wh/orders/dt=2026-11-22/part-00000.parquet";
    for (event, date, file, type_name) in [
        (failed[0], "2026-11-21", float_file, "Float64"),
        (failed[1], "2026-11-22", struct_file, "Struct"),
    ] {
        assert_eq!(event["table"], "orders");
        assert_eq!(event["date"], date);
        assert_eq!(event["file"], file);
        assert_eq!(event["transient"], false);
        let error = event["error"].as_str().unwrap();
        assert!(error.contains(file), "{error}");
        assert!(error.contains("\"order_id\""), "{error}");
        assert!(error.contains(type_name), "{error}");
    }
}

// ---------------------------------------------------------------------------
// 6. Corrupt file
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_file_fails_partition_before_any_write() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let t = "wh/orders";
    scenario.partition(t, "2026-11-20", &[pq(&orders_batch(&[1, 2, 3], "a"))]);
    let good: Vec<i64> = (100..400).collect();
    scenario.partition(
        t,
        "2026-11-21",
        &[
            pq(&orders_batch(&good, "b")),
            b"this is not parquet at all, just some garbage bytes".to_vec(),
        ],
    );
    let engine = scenario
        .engine(&table_toml("orders", "wh/orders", "cold:orders", ""))
        .await;
    let ran = run(&engine, d(2026, 11, 23)).await;
    assert_eq!(ran.summary.exit_code, 3, "{:#?}", ran.summary);
    assert_eq!(ran.summary.partitions_failed, 1);
    assert_eq!(ran.summary.partitions_loaded, 1);
    assert_eq!(ran.summary.keys, 3);
    assert_eq!(
        redis.keys("cold:*"),
        set(&["cold:orders:1", "cold:orders:2", "cold:orders:3"])
    );
    let entries = ledger(&engine, "orders").await;
    assert_eq!(
        entries.keys().copied().collect::<Vec<_>>(),
        vec![d(2026, 11, 20)]
    );
    let failed = ran.failed();
    assert_eq!(failed.len(), 1, "{:#?}", ran.events);
    let bad = "wh/orders/dt=2026-11-21/part-00001.parquet";
    assert_eq!(failed[0]["date"], "2026-11-21");
    assert_eq!(failed[0]["file"], bad);
    let error = failed[0]["error"].as_str().unwrap();
    assert!(error.contains(bad), "{error}");
    assert_eq!(ran.named("partition_loaded").len(), 1);

    // Still refused on the next run: nothing from the partition ever lands.
    let again = run(&engine, d(2026, 11, 23)).await;
    assert_eq!(again.summary.exit_code, 3);
    assert_eq!(again.summary.partitions_loaded, 0);
    assert_eq!(again.summary.partitions_failed, 1);
    assert_eq!(redis.keys("cold:*").len(), 3);
}

// ---------------------------------------------------------------------------
// 7. Hive-style file names
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_extensionless_files_load() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let mut fx = HiveTableFixture::new("wh/hive_orders");
    fx.hive_partition(
        "dt=2026-11-20",
        &[orders_batch(&[1, 2], "h"), orders_batch(&[3], "h")],
    );
    fx.write_local(scenario.root());
    write_success(scenario.root(), "wh/hive_orders/dt=2026-11-20");
    assert!(
        list_files(scenario.root()).contains(&"wh/hive_orders/dt=2026-11-20/000001_0".to_string())
    );
    let tables = r#"
[[tables]]
name = "hive"
path = "wh/hive_orders"
key = "cold:hive:{order_id}"
columns = ["status"]
"#;
    let engine = scenario.engine(tables).await;
    let ran = run(&engine, d(2026, 11, 22)).await;
    assert_ok(&ran, 1);
    assert_eq!(
        redis.keys("cold:*"),
        set(&["cold:hive:1", "cold:hive:2", "cold:hive:3"])
    );
    assert_eq!(
        redis.get("cold:hive:3").as_deref(),
        Some(r#"{"status":"paid-h"}"#)
    );
    let entries = ledger(&engine, "hive").await;
    let e = &entries[&d(2026, 11, 20)];
    assert_eq!((e.files, e.rows, e.keys), (2, 3, 3));
}

// ---------------------------------------------------------------------------
// 8. Redis refusing writes
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_out_of_memory_fails_partition_without_ledger_entry() {
    let redis =
        RedisServer::start_with_args(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]);
    let scenario = Scenario::new(&redis);
    let t = "wh/orders";
    scenario.partition(t, "2026-11-20", &[pq(&orders_batch(&[1, 2], "small"))]);
    let ids: Vec<i64> = (1_000..31_000).collect();
    let padding = "p".repeat(200);
    let big = batch(vec![
        ("order_id", i64s(ids.iter().map(|&i| Some(i)).collect())),
        (
            "payload",
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|i| format!("{i}-{padding}"))
                    .collect::<Vec<_>>(),
            )),
        ),
    ]);
    scenario.partition(t, "2026-11-21", &[pq(&big)]);
    let engine = scenario
        .engine(&table_toml("orders", "wh/orders", "cold:orders", ""))
        .await;
    let ran = run(&engine, d(2026, 11, 23)).await;
    assert_eq!(ran.summary.exit_code, 3, "{:#?}", ran.summary);
    assert_eq!(ran.summary.partitions_loaded, 1);
    assert_eq!(ran.summary.partitions_failed, 1);
    let failed = ran.failed();
    assert_eq!(failed.len(), 1, "{:#?}", ran.events);
    assert_eq!(failed[0]["date"], "2026-11-21");
    assert_eq!(failed[0]["transient"], false);
    let error = failed[0]["error"].as_str().unwrap();
    assert!(error.contains("OOM"), "{error}");
    assert!(error.contains("cold:orders:"), "{error}");
    let entries = ledger(&engine, "orders").await;
    assert_eq!(
        entries.keys().copied().collect::<Vec<_>>(),
        vec![d(2026, 11, 20)]
    );
    assert_eq!(
        redis.get("cold:orders:1").as_deref(),
        Some(
            r#"{"user_id":10001,"amount":"1.99","status":"paid-small","created_at":"2026-11-20T00:00:01.000Z"}"#
        )
    );
    // Only one attempt: OOM is permanent, no partition_retry.
    assert!(ran.named("partition_retry").is_empty());
}
