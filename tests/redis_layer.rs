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
use coldsync::redis::dump::HashListpackLimits;
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
    // The HSET way (a transaction) and the RESTORE way (a DEL of its own) alike.
    for restore in [None, Some(HashListpackLimits::default())] {
        redis.flushall();
        // h:2 held an older value: its all-null row deletes it.
        let _: i64 = redis.cmd("HSET", &["h:2", "status", "old"]);
        let batch = rows(&[
            (1, Some("paid"), Some(3)),
            (2, None, None),
            (3, Some("open"), None),
            (4, None, None),
        ]);
        let prepared = prepared(dir.path(), &config, &batch).await;
        let style = WriteStyle::Hash {
            guarded: false,
            restore,
        };
        let stats = load(&config, prepared, style, &expiry).await;
        assert_eq!((stats.rows, stats.keys, stats.kept_newer), (4, 2, 0));
        assert_eq!(stats.deleted_empty_keys, 2, "{restore:?}");
        assert_eq!(
            redis.keys("h:*"),
            ["h:1", "h:3"].iter().map(|k| k.to_string()).collect()
        );
        assert_eq!(redis.hgetall("h:1").len(), 2);
        assert_eq!(redis.pexpiretime("h:3"), expiry.millis);
    }
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
    // The script's HSET way and its RESTORE way alike.
    for restore in [None, Some(HashListpackLimits::default())] {
        redis.flushall();
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
        let style = WriteStyle::Hash {
            guarded: true,
            restore,
        };
        let stats = load(&config, prepared, style, &expiry).await;
        assert_eq!((stats.rows, stats.keys, stats.kept_newer), (5, 1, 2));
        assert_eq!(stats.deleted_empty_keys, 2, "{restore:?}");
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
        assert_eq!(redis.pexpiretime("h:1"), at);
    }
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

/// A guarded load of 1000 rows (over four connections, several script calls on each) over keys
/// of which a third are newer, a third older and a third absent; over keys none of which is
/// there; over keys one of which is there, newer: exactly the newer ones are kept (and counted),
/// the others written with the partition's expiry, json and hash (the script's RESTORE and HSET
/// ways).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_batch_keeps_exactly_the_newer_keys() {
    let redis = RedisServer::start();
    let at = 4_102_444_800_000;
    let expiry = Expiry::at(at);
    let (newer, older) = ((at + 86_400_000).to_string(), (at - 1).to_string());
    let ids: Vec<i64> = (1..=1000).collect();
    let row_data: Vec<(i64, Option<String>, Option<i32>)> = ids
        .iter()
        .map(|&i| (i, Some(format!("s{i}")), Some(i as i32)))
        .collect();
    let row_refs: Vec<(i64, Option<&str>, Option<i32>)> = row_data
        .iter()
        .map(|(i, s, q)| (*i, s.as_deref(), *q))
        .collect();
    let batch = rows(&row_refs);
    let limits = Some(HashListpackLimits::default());
    for (format, style) in [
        ("json", WriteStyle::GuardedSet),
        (
            "hash",
            WriteStyle::Hash {
                guarded: true,
                restore: limits,
            },
        ),
        (
            "hash",
            WriteStyle::Hash {
                guarded: true,
                restore: None,
            },
        ),
    ] {
        // A third newer, a third older, a third absent; then none there (each call skips the
        // per-key check); then one newer key among absent ones (its call checks every key).
        for newer_ids in [Vec::from_iter((3..=1000).step_by(3)), vec![], vec![500]] {
            redis.flushall();
            let dir = tempfile::tempdir().unwrap();
            let config = config(dir.path(), redis.port, format);
            let is_newer = |i: i64| newer_ids.contains(&i);
            for &i in &ids {
                let key = format!("h:{i}");
                let expires = match i % 3 {
                    _ if is_newer(i) => &newer,
                    1 if newer_ids.len() > 1 => &older,
                    _ => continue,
                };
                let _: () = redis.cmd("SET", &[&key, "kept", "PXAT", expires]);
            }
            let prepared = prepared(dir.path(), &config, &batch).await;
            let stats = load(&config, prepared, style, &expiry).await;
            let kept = newer_ids.len() as u64;
            assert_eq!(
                (stats.keys, stats.kept_newer),
                (1000 - kept, kept),
                "{style:?}"
            );
            for &i in &ids {
                let key = format!("h:{i}");
                if is_newer(i) {
                    assert_eq!(redis.get(&key).as_deref(), Some("kept"), "{key} {style:?}");
                    assert_eq!(redis.pexpiretime(&key), at + 86_400_000);
                    continue;
                }
                assert_eq!(redis.pexpiretime(&key), at, "{key} {style:?}");
                if format == "json" {
                    let expected = format!("{{\"status\":\"s{i}\",\"qty\":{i}}}");
                    assert_eq!(redis.get(&key), Some(expected), "{key}");
                } else {
                    let fields = redis.hgetall(&key);
                    assert_eq!(fields["status"], format!("s{i}"), "{key} {style:?}");
                    assert_eq!(fields["qty"], i.to_string(), "{key} {style:?}");
                    assert_eq!(fields.len(), 2, "{key} {style:?}");
                }
            }
        }
    }
}

/// A guarded load on one server writes natively first (`SET ... NX`, `RESTORE` without
/// `REPLACE`) and follows up the refused rows through the guard scripts. Over small batches
/// (several in flight on a connection), with keys absent, older and newer, a key repeated in the
/// partition, a hash beyond the listpack limits (the hash-table payload) and empty hashes between
/// rows of a key (the barrier): the last row of each key wins and only the newer key is kept,
/// json and hash; and reloading the same partition (every row refused, every row followed up)
/// gives the same contents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_guarded_writes_follow_up_refusals_and_keep_the_last_row_of_a_key() {
    let redis = RedisServer::start();
    let at = 4_102_444_800_000;
    let expiry = Expiry::at(at);
    let (newer, older) = ((at + 86_400_000).to_string(), (at - 86_400_000).to_string());
    let long = "l".repeat(70);
    // (key id, status, qty): `None, None` is an empty hash (its key deleted, guarded).
    let file: Vec<(i64, Option<&str>, Option<i32>)> = vec![
        (3, Some("a1"), Some(1)),   // absent: written natively
        (1, Some("b1"), Some(1)),   // older: refused, followed up
        (3, Some("a2"), Some(1)),   // written by row 1: refused, followed up
        (5, None, None),            // empty, absent: a barrier, nothing to delete
        (5, Some("c1"), Some(1)),   // absent: written natively
        (4, Some("d1"), Some(1)),   // older: refused, followed up
        (4, None, None),            // empty: after d1's follow-up, deletes it
        (4, Some("d2"), Some(1)),   // absent again: written natively, the last row wins
        (2, Some("late"), Some(1)), // newer: kept
        (3, Some(&long), Some(1)),  // beyond the listpack limits: the hash-table form
        (1, Some("b2"), Some(1)),   // refused, followed up after b1
    ];
    let batch = rows(&file);
    let styles = [
        ("json", WriteStyle::GuardedSet),
        (
            "hash",
            WriteStyle::Hash {
                guarded: true,
                restore: Some(HashListpackLimits::default()),
            },
        ),
    ];
    for (format, style) in styles {
        for connections in [1, 3] {
            redis.flushall();
            for (key, expires) in [("h:1", &older), ("h:2", &newer), ("h:4", &older)] {
                let _: () = redis.cmd("SET", &[key, "old", "PXAT", expires]);
            }
            let dir = tempfile::tempdir().unwrap();
            let mut config = config(dir.path(), redis.port, format);
            config.redis.batch_size = 2;
            config.redis.connections = connections;
            let context = format!("{format}, {connections} connections");
            for load_number in 1..=2 {
                let prepared = prepared(dir.path(), &config, &batch).await;
                let stats = load(&config, prepared, style, &expiry).await;
                let (deleted, kept) = if format == "hash" { (2, 1) } else { (0, 1) };
                assert_eq!(
                    (
                        stats.rows,
                        stats.keys,
                        stats.kept_newer,
                        stats.deleted_empty_keys
                    ),
                    (11, 11 - kept - deleted, kept, deleted),
                    "{context}, load {load_number}"
                );
                assert_eq!(redis.get("h:2").as_deref(), Some("old"), "{context}");
                assert_eq!(redis.pexpiretime("h:2"), at + 86_400_000, "{context}");
                for (key, status) in [
                    ("h:1", "b2"),
                    ("h:3", long.as_str()),
                    ("h:4", "d2"),
                    ("h:5", "c1"),
                ] {
                    assert_eq!(redis.pexpiretime(key), at, "{key} {context}");
                    if format == "json" {
                        let expected = format!("{{\"status\":\"{status}\",\"qty\":1}}");
                        assert_eq!(redis.get(key), Some(expected), "{key} {context}");
                    } else {
                        let fields = redis.hgetall(key);
                        assert_eq!(fields.len(), 2, "{key} {context}");
                        assert_eq!(fields["status"], status, "{key} {context}");
                        let encoding: String = redis.cmd("OBJECT", &["ENCODING", key]);
                        let expected = if key == "h:3" {
                            "hashtable"
                        } else {
                            "listpack"
                        };
                        assert_eq!(encoding, expected, "{key} {context}");
                    }
                }
                assert_eq!(redis.keys("h:*").len(), 5, "{context}");
            }
        }
    }
}
