//! The Redis layer against a real redis-server: what the write session counts for hash rows
//! whose every value is null (their key is deleted, not written), and how big a batch of large
//! values grows before it is sent.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use chrono::NaiveDate;
use coldsync::config::{Config, TableConfig};
use coldsync::load::{prepare, produce_commands, send_partition, PreparedPartition, RowCommand};
use coldsync::redis::{Connector, Expiry, ScriptShas, WriteSession, WriteStyle};
use coldsync::throttle::RateLimiter;
use common::{parquet_bytes, write_file, RedisServer};
use parquet::basic::Compression;

const DATE: &str = "2026-11-20";

fn date() -> NaiveDate {
    NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap()
}

/// `order_id`, `status`, `qty` rows; `None` values are nulls.
fn rows(rows: &[(i64, Option<&str>, Option<i32>)]) -> RecordBatch {
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let status: Vec<Option<&str>> = rows.iter().map(|r| r.1).collect();
    let qty: Vec<Option<i32>> = rows.iter().map(|r| r.2).collect();
    RecordBatch::try_from_iter([
        ("order_id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("status", Arc::new(StringArray::from(status)) as ArrayRef),
        ("qty", Arc::new(Int32Array::from(qty)) as ArrayRef),
    ])
    .unwrap()
}

fn config(root: &Path, redis_port: u16, value_format: &str) -> Config {
    let text = format!(
        "[source]\nscheme = \"fs\"\nroot = {:?}\n\n[redis]\nurl = \"redis://127.0.0.1:{redis_port}/0\"\n\n\
         [defaults]\nretention_days = 30\n\n[[tables]]\nname = \"orders\"\npath = \"orders\"\n\
         key = \"h:{{order_id}}\"\nvalue_format = \"{value_format}\"\n",
        root.display().to_string()
    );
    Config::parse(&text, &HashMap::new()).unwrap()
}

/// Writes `batch` as the partition's only file and prepares it for loading.
async fn prepared(root: &Path, config: &Config, batch: &RecordBatch) -> PreparedPartition {
    write_file(
        root,
        &format!("orders/dt={DATE}/part-00000.parquet"),
        &parquet_bytes(batch, 1000, Compression::UNCOMPRESSED),
    );
    let table: &TableConfig = &config.tables[0];
    let operator = coldsync::source::build_operator(&config.source).unwrap();
    let listing = coldsync::listing::list_table(&operator, table)
        .await
        .unwrap();
    prepare(&operator, table, &listing.partitions[&date()], 1, false)
        .await
        .unwrap()
}

/// Loads the partition with `style` and returns `(keys, kept_newer)` of its stats.
async fn load(
    config: &Config,
    prepared: PreparedPartition,
    style: WriteStyle,
    expiry: &Expiry,
) -> coldsync::load::PartitionStats {
    let connector = Connector::new(&config.redis).unwrap();
    let session = WriteSession::open(&connector).await.unwrap();
    send_partition(
        prepared,
        session,
        RowCommand::Write(style),
        expiry,
        config.redis.batch_size,
        &RateLimiter::default(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_null_hash_rows_delete_their_key_and_are_not_counted_as_written() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), redis.port, "hash");
    let expiry = Expiry::at(4_102_444_800_000);
    // h:2 held an older value: its all-null row deletes it.
    let _: i64 = redis.cmd("HSET", &["h:2", "status", "old"]);
    let batch = rows(&[
        (1, Some("paid"), Some(3)),
        (2, None, None),
        (3, Some("open"), None),
        (4, None, None),
    ]);
    let prepared = prepared(dir.path(), &config, &batch).await;
    let stats = load(
        &config,
        prepared,
        WriteStyle::Hash { guarded: false },
        &expiry,
    )
    .await;
    assert_eq!((stats.rows, stats.keys, stats.kept_newer), (4, 2, 0));
    assert_eq!(stats.deleted_empty_keys, 2);
    assert_eq!(
        redis.keys("h:*"),
        ["h:1", "h:3"].iter().map(|k| k.to_string()).collect()
    );
    assert_eq!(redis.hgetall("h:1").len(), 2);
    assert_eq!(redis.pexpiretime("h:3"), expiry.millis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_all_null_hash_rows_keep_newer_keys() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), redis.port, "hash");
    let at = 4_102_444_800_000;
    let expiry = Expiry::at(at);
    let newer = (at + 86_400_000).to_string();
    let older = (at - 86_400_000).to_string();
    for (key, expires) in [("h:2", &newer), ("h:5", &older), ("h:7", &newer)] {
        let _: i64 = redis.cmd("HSET", &[key, "status", "kept"]);
        let _: i64 = redis.cmd("PEXPIREAT", &[key, expires]);
    }
    let batch = rows(&[
        // Written.
        (1, Some("paid"), Some(3)),
        // Empty, but the key is newer: kept.
        (2, None, None),
        // Empty, the key is older: deleted.
        (5, None, None),
        // Empty, no key: nothing to delete, counted as deleted all the same.
        (6, None, None),
        // A value, but the key is newer: kept.
        (7, Some("late"), None),
    ]);
    let prepared = prepared(dir.path(), &config, &batch).await;
    let stats = load(
        &config,
        prepared,
        WriteStyle::Hash { guarded: true },
        &expiry,
    )
    .await;
    assert_eq!((stats.rows, stats.keys, stats.kept_newer), (5, 1, 2));
    assert_eq!(stats.deleted_empty_keys, 2);
    assert_eq!(
        redis.keys("h:*"),
        ["h:1", "h:2", "h:7"]
            .iter()
            .map(|k| k.to_string())
            .collect()
    );
    assert_eq!(redis.hgetall("h:2")["status"], "kept");
    assert_eq!(redis.hgetall("h:7")["status"], "kept");
    assert_eq!(redis.hgetall("h:1")["status"], "paid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_counts_all_null_hash_rows_apart() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), redis.port, "hash");
    let batch = rows(&[(1, Some("paid"), None), (2, None, None)]);
    write_file(
        dir.path(),
        &format!("orders/dt={DATE}/part-00000.parquet"),
        &parquet_bytes(&batch, 1000, Compression::UNCOMPRESSED),
    );
    let mut out = Vec::new();
    let produced = coldsync::export::export(&config, &config.tables[0], date(), &mut out)
        .await
        .unwrap();
    assert_eq!((produced.rows, produced.keys), (2, 1));
    assert_eq!(produced.deleted_empty_keys, 1);
    let text = String::from_utf8(out).unwrap();
    // The all-null row is deleted, as a load deletes it (export sends what a load sends), never
    // written.
    assert!(
        text.contains("h:1") && !text.contains("HSET\r\n$3\r\nh:2"),
        "{text}"
    );
    assert!(text.contains("*2\r\n$3\r\nDEL\r\n$3\r\nh:2\r\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_large_values_is_sent_before_it_passes_the_byte_cap() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 1, "json");
    // Four values of 6 MiB: far fewer rows than `batch_size`, but 24 MiB in all.
    let big = "x".repeat(6 << 20);
    let batch = rows(&[
        (1, Some(big.as_str()), None),
        (2, Some(big.as_str()), None),
        (3, Some(big.as_str()), None),
        (4, Some(big.as_str()), None),
    ]);
    let prepared = prepared(dir.path(), &config, &batch).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let producing = tokio::spawn(produce_commands(
        prepared,
        RowCommand::Write(WriteStyle::Set),
        Expiry::at(1),
        ScriptShas::default(),
        coldsync::redis::Router::Single { connections: 1 },
        1000,
        tx,
    ));
    let mut batches = Vec::new();
    while let Some((_, batch)) = rx.recv().await {
        batches.push(batch.bytes.len());
    }
    let produced = producing.await.unwrap().unwrap();
    assert_eq!(produced.keys, 4);
    // The cap (16 MiB) is passed by the third value: that batch goes, the fourth value follows.
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert!(batches[0] < 19 << 20 && batches[1] < 7 << 20, "{batches:?}");
}
