//! End to end against a real S3-compatible server (moto): Spark- and Hive-style tables in a bucket,
//! credentials from the environment, exact Redis values and ledger, no-op second run, a rewritten
//! object reloading its partition, and a corrupt object failing only its own partition.

mod common;
use common::orders_json as order_json;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use coldsync::config::Config;
use coldsync::ledger::LedgerEntry;
use coldsync::plan::PartitionState;
use coldsync::run::{exit_code, partition_expiry, Engine, RunOptions, RunSummary};
use common::*;
use parquet::basic::Compression;
use tokio_util::sync::CancellationToken;

const KEY_VAR: &str = "COLDSYNC_S3_TEST_KEY_ID";
const SECRET_VAR: &str = "COLDSYNC_S3_TEST_SECRET";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn as_of() -> NaiveDate {
    d("2026-11-22")
}

/// moto accepts any credentials; these come from the env map, never from the file.
fn creds_env() -> HashMap<String, String> {
    HashMap::from([
        (KEY_VAR.to_string(), "test".to_string()),
        (SECRET_VAR.to_string(), "s3-secret-value-xyz".to_string()),
    ])
}

fn source_section(bucket: &str) -> String {
    s3_source_section(&s3().endpoint(), bucket, (KEY_VAR, SECRET_VAR), 1, 20)
}

fn config_text(bucket: &str, redis: &RedisServer, tables: &str) -> String {
    format!(
        "{}\n[redis]\nurl = \"redis://127.0.0.1:{}/0\"\nretry_attempts = 1\n\n[defaults]\nretention_days = 30\n\n{tables}",
        source_section(bucket),
        redis.port
    )
}

const SPARK_TABLE: &str = r#"[[tables]]
name = "orders"
path = "warehouse/orders"
key = "ord:{order_id}"
"#;

const HIVE_TABLE: &str = r#"[[tables]]
name = "orders_hive"
path = "warehouse/orders_hive"
key = "hive:{order_id}"
partition_format = "%Y%m%d"
completeness = "none"
"#;

fn options() -> RunOptions {
    RunOptions {
        tables: vec![],
        as_of: Some(as_of()),
        dry_run: false,
        backfill: None,
        ..RunOptions::default()
    }
}

async fn run(engine: &Engine) -> RunSummary {
    engine
        .run(&options(), &CancellationToken::new())
        .await
        .expect("run starts")
}

fn table_cfg(config: &Config, name: &str) -> coldsync::config::TableConfig {
    config
        .tables
        .iter()
        .find(|t| t.name == name)
        .unwrap()
        .clone()
}

/// The Hive table of [`hive_hourly_orders_table`] plus a `__HIVE_DEFAULT_PARTITION__` partition
/// that must be skipped.
fn hive_fixture() -> HiveTableFixture {
    let mut fx = hive_hourly_orders_table();
    fx.hive_partition(
        "dt=__HIVE_DEFAULT_PARTITION__",
        &[orders_batch(&[999], "null")],
    );
    fx
}

fn assert_entry(
    entry: &LedgerEntry,
    files: u64,
    rows: u64,
    keys: u64,
    kept_newer: u64,
    bytes: u64,
    expires_at_ms: i64,
) {
    assert_eq!(entry.files, files, "files of {entry:?}");
    assert_eq!(entry.rows, rows, "rows of {entry:?}");
    assert_eq!(entry.keys, keys, "keys of {entry:?}");
    assert_eq!(entry.skipped_null_keys, 0, "skipped of {entry:?}");
    assert_eq!(entry.kept_newer, kept_newer, "kept_newer of {entry:?}");
    assert_eq!(entry.bytes, bytes, "bytes of {entry:?}");
    assert_eq!(entry.expires_at_ms, expires_at_ms, "expiry of {entry:?}");
    assert_eq!(entry.fingerprint.len(), 32, "fingerprint of {entry:?}");
    assert!(
        entry
            .fingerprint
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "fingerprint of {entry:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_and_hive_tables_load_from_s3_then_second_run_is_noop() {
    let server = s3();
    let bucket = server.fresh_bucket("cs-both");
    let op = server.operator(&bucket);
    let spark = spark_orders_table();
    let hive = hive_fixture();
    spark.write_to(&op).await;
    hive.write_to(&op).await;
    let redis = RedisServer::start();

    let text = config_text(&bucket, &redis, &format!("{SPARK_TABLE}\n{HIVE_TABLE}"));
    let config = Config::parse(&text, &creds_env()).expect("valid config");
    // The secret resolved from the env never shows in Debug output.
    assert!(!format!("{config:?}").contains("s3-secret-value-xyz"));
    let spark_cfg = table_cfg(&config, "orders");
    let hive_cfg = table_cfg(&config, "orders_hive");
    let engine = Engine::connect(config).await.expect("connect");

    let summary = run(&engine).await;
    assert_eq!(summary.exit_code, exit_code::OK, "{summary:?}");
    assert_eq!(summary.partitions_loaded, 4, "{summary:?}");
    assert_eq!(summary.partitions_failed, 0);
    assert_eq!(summary.partitions_late, 0);
    assert_eq!(summary.rows, 4 + 3 + 2 + 3);
    assert_eq!(summary.keys, 12);
    assert_eq!(summary.skipped_null_keys, 0);
    let spark_bytes = spark.data_bytes_under("warehouse/orders/dt=2026-11-19/")
        + spark.data_bytes_under("warehouse/orders/dt=2026-11-20/");
    let hive_bytes = hive.data_bytes_under("warehouse/orders_hive/dt=20261119/")
        + hive.data_bytes_under("warehouse/orders_hive/dt=20261120/");
    assert_eq!(summary.bytes, spark_bytes + hive_bytes);
    assert_eq!(summary.tables.len(), 2);
    for t in &summary.tables {
        assert_eq!(t.status, "ok", "{t:?}");
        assert_eq!(t.partitions_loaded, 2, "{t:?}");
        assert_eq!(t.watermark, Some(d("2026-11-20")), "{t:?}");
        assert_eq!(t.late, None);
        assert_eq!(t.kept_newer, 0);
        assert_eq!(t.error, None);
    }

    // Exact Redis contents.
    let exp19 = partition_expiry(&spark_cfg, d("2026-11-19")).millis;
    let exp20 = partition_expiry(&spark_cfg, d("2026-11-20")).millis;
    // Start of day (date + retention_days + 1) in UTC.
    assert_eq!(exp19, 1_797_724_800_000); // 2026-12-20T00:00:00Z
    assert_eq!(exp20, 1_797_811_200_000); // 2026-12-21T00:00:00Z
    assert_eq!(partition_expiry(&hive_cfg, d("2026-11-20")).millis, exp20);
    let expected: Vec<(String, String, i64)> = vec![
        ("ord:1".into(), order_json(1, "a"), exp19),
        ("ord:2".into(), order_json(2, "a"), exp19),
        ("ord:3".into(), order_json(3, "a"), exp19),
        ("ord:4".into(), order_json(4, "b"), exp20),
        ("ord:5".into(), order_json(5, "b"), exp20),
        ("ord:6".into(), order_json(6, "b"), exp20),
        ("hive:100".into(), order_json(100, "j"), exp20),
        ("hive:101".into(), order_json(101, "h"), exp19),
        ("hive:102".into(), order_json(102, "i"), exp20),
        ("hive:103".into(), order_json(103, "j"), exp20),
    ];
    for (key, value, expiry) in &expected {
        assert_eq!(redis.get(key).as_deref(), Some(value.as_str()), "{key}");
        assert_eq!(redis.pexpiretime(key), *expiry, "expiry of {key}");
    }
    assert_eq!(
        order_json(4, "b"),
        r#"{"user_id":10004,"amount":"4.99","status":"paid-b","created_at":"2026-11-20T00:00:04.000Z"}"#
    );
    let mut all_keys: BTreeSet<String> = expected.iter().map(|(k, _, _)| k.clone()).collect();
    for table in ["orders", "orders_hive"] {
        all_keys.insert(format!("coldsync:{{{table}}}:partitions"));
        all_keys.insert(format!("coldsync:{{{table}}}:watermark"));
    }
    assert_eq!(
        redis.keys("*"),
        all_keys,
        "hot, junk, crc and default-partition rows are not loaded"
    );

    // Ledger.
    let ledger = engine.ledger();
    let spark_entries = ledger.entries("orders").await.unwrap();
    assert_eq!(
        spark_entries.keys().copied().collect::<Vec<_>>(),
        vec![d("2026-11-19"), d("2026-11-20")]
    );
    assert_entry(
        &spark_entries[&d("2026-11-19")],
        2,
        4,
        4,
        0,
        spark.data_bytes_under("warehouse/orders/dt=2026-11-19/"),
        exp19,
    );
    assert_entry(
        &spark_entries[&d("2026-11-20")],
        2,
        3,
        3,
        0,
        spark.data_bytes_under("warehouse/orders/dt=2026-11-20/"),
        exp20,
    );
    let hive_entries = ledger.entries("orders_hive").await.unwrap();
    assert_eq!(
        hive_entries.keys().copied().collect::<Vec<_>>(),
        vec![d("2026-11-19"), d("2026-11-20")]
    );
    assert_entry(
        &hive_entries[&d("2026-11-19")],
        1,
        2,
        2,
        0,
        hive.data_bytes_under("warehouse/orders_hive/dt=20261119/"),
        exp19,
    );
    assert_entry(
        &hive_entries[&d("2026-11-20")],
        2,
        3,
        3,
        0,
        hive.data_bytes_under("warehouse/orders_hive/dt=20261120/"),
        exp20,
    );
    for e in spark_entries.values().chain(hive_entries.values()) {
        assert_eq!(e.run_id, summary.run_id);
    }
    assert_eq!(
        ledger.watermark("orders").await.unwrap(),
        Some(d("2026-11-20"))
    );
    assert_eq!(
        ledger.watermark("orders_hive").await.unwrap(),
        Some(d("2026-11-20"))
    );
    assert_eq!(
        redis.get("coldsync:{orders}:watermark").as_deref(),
        Some("2026-11-20")
    );

    // Second run: nothing to do, nothing changes.
    let raw_ledger_before = redis.hgetall("coldsync:{orders}:partitions");
    let second = run(&engine).await;
    assert_eq!(second.exit_code, exit_code::OK, "{second:?}");
    assert_eq!(second.partitions_loaded, 0);
    assert_eq!(second.rows, 0);
    assert_eq!(second.keys, 0);
    assert_eq!(second.bytes, 0);
    assert_eq!(ledger.entries("orders").await.unwrap(), spark_entries);
    assert_eq!(ledger.entries("orders_hive").await.unwrap(), hive_entries);
    assert_eq!(
        redis.hgetall("coldsync:{orders}:partitions"),
        raw_ledger_before
    );
    for (key, value, expiry) in &expected {
        assert_eq!(redis.get(key).as_deref(), Some(value.as_str()), "{key}");
        assert_eq!(redis.pexpiretime(key), *expiry, "expiry of {key}");
    }
    assert_eq!(redis.keys("*"), all_keys);
    let report = engine
        .plan_report(&engine.config().tables, Some(as_of()))
        .await;
    let states: Vec<(String, NaiveDate, PartitionState)> = report
        .tables
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.table.clone(), p.date, p.state))
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (
                "orders".to_string(),
                d("2026-11-19"),
                PartitionState::Loaded
            ),
            (
                "orders".to_string(),
                d("2026-11-20"),
                PartitionState::Loaded
            ),
            ("orders".to_string(), d("2026-11-21"), PartitionState::Hot),
            (
                "orders_hive".to_string(),
                d("2026-11-19"),
                PartitionState::Loaded
            ),
            (
                "orders_hive".to_string(),
                d("2026-11-20"),
                PartitionState::Loaded
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuploaded_object_makes_partition_changed_and_reloads_it() {
    let server = s3();
    let bucket = server.fresh_bucket("cs-changed");
    let op = server.operator(&bucket);
    let spark = spark_orders_table();
    spark.write_to(&op).await;
    let redis = RedisServer::start();
    let config = Config::parse(&config_text(&bucket, &redis, SPARK_TABLE), &creds_env()).unwrap();
    let cfg = table_cfg(&config, "orders");
    let engine = Engine::connect(config).await.unwrap();

    let first = run(&engine).await;
    assert_eq!(first.exit_code, exit_code::OK, "{first:?}");
    assert_eq!(first.partitions_loaded, 2);
    let before = engine.ledger().entries("orders").await.unwrap();

    // Re-upload the first file of 11-19 with different content (ids 1..3, new status).
    let path = format!(
        "warehouse/orders/dt=2026-11-19/{}",
        spark.spark_file_name(0)
    );
    let new_bytes = parquet_bytes(&orders_batch(&[1, 2, 3], "a2"), 4, Compression::SNAPPY);
    op.write(&path, new_bytes.clone()).await.unwrap();

    let report = engine
        .plan_report(&engine.config().tables, Some(as_of()))
        .await;
    let lines = &report.tables[0].partitions;
    let states: Vec<(NaiveDate, PartitionState)> =
        lines.iter().map(|p| (p.date, p.state)).collect();
    assert_eq!(
        states,
        vec![
            (d("2026-11-19"), PartitionState::Changed),
            (d("2026-11-20"), PartitionState::Loaded),
            (d("2026-11-21"), PartitionState::Hot),
        ]
    );
    assert_eq!(lines[0].rows, Some(4));
    assert_eq!(lines[0].est_keys, Some(4));
    assert_eq!(lines[1].rows, None);

    let second = run(&engine).await;
    assert_eq!(second.exit_code, exit_code::OK, "{second:?}");
    assert_eq!(second.partitions_loaded, 1, "{second:?}");
    assert_eq!(second.rows, 4);
    // id 4 is also in the newer 11-20 partition: the guarded write keeps that value.
    assert_eq!(second.keys, 3);
    assert_eq!(second.tables[0].kept_newer, 1);

    let exp19 = partition_expiry(&cfg, d("2026-11-19")).millis;
    let exp20 = partition_expiry(&cfg, d("2026-11-20")).millis;
    for id in [1, 2, 3] {
        let key = format!("ord:{id}");
        assert_eq!(redis.get(&key), Some(order_json(id, "a2")), "{key}");
        assert_eq!(redis.pexpiretime(&key), exp19);
    }
    assert_eq!(redis.get("ord:4"), Some(order_json(4, "b")));
    assert_eq!(redis.pexpiretime("ord:4"), exp20);
    for id in [5, 6] {
        assert_eq!(redis.get(&format!("ord:{id}")), Some(order_json(id, "b")));
    }

    let after = engine.ledger().entries("orders").await.unwrap();
    let old19 = &before[&d("2026-11-19")];
    let new19 = &after[&d("2026-11-19")];
    assert_ne!(new19.fingerprint, old19.fingerprint);
    assert_eq!(new19.run_id, second.run_id);
    let bytes19 = new_bytes.len() as u64
        + spark.files()[&format!(
            "warehouse/orders/dt=2026-11-19/{}",
            spark.spark_file_name(1)
        )]
            .bytes
            .len() as u64;
    assert_entry(new19, 2, 4, 3, 1, bytes19, exp19);
    assert_eq!(after[&d("2026-11-20")], before[&d("2026-11-20")]);
    assert_eq!(after.len(), 2);
    assert_eq!(
        engine.ledger().watermark("orders").await.unwrap(),
        Some(d("2026-11-20"))
    );

    // And now it is stable again.
    let third = run(&engine).await;
    assert_eq!(third.exit_code, exit_code::OK);
    assert_eq!(third.partitions_loaded, 0);
    assert_eq!(engine.ledger().entries("orders").await.unwrap(), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_object_fails_only_its_partition() {
    let server = s3();
    let bucket = server.fresh_bucket("cs-corrupt");
    let op = server.operator(&bucket);
    let mut spark = HiveTableFixture::new("warehouse/orders");
    spark
        .spark_partition("dt=2026-11-18", &[orders_batch(&[10, 11], "x")])
        .spark_partition(
            "dt=2026-11-19",
            &[orders_batch(&[20, 21], "y"), orders_batch(&[22], "y")],
        )
        .spark_partition("dt=2026-11-20", &[orders_batch(&[30], "z")]);
    // Truncate the second file of 11-19: a Parquet file cut in half (no footer).
    let bad_path = format!(
        "warehouse/orders/dt=2026-11-19/{}",
        spark.spark_file_name(1)
    );
    let good = spark.files()[&bad_path].bytes.clone();
    spark.add_file(&bad_path, good[..good.len() / 2].to_vec(), FileKind::Data);
    spark.write_to(&op).await;
    let redis = RedisServer::start();
    let config = Config::parse(&config_text(&bucket, &redis, SPARK_TABLE), &creds_env()).unwrap();
    let cfg = table_cfg(&config, "orders");
    let engine = Engine::connect(config).await.unwrap();

    let summary = run(&engine).await;
    assert_eq!(summary.exit_code, exit_code::FAILED, "{summary:?}");
    assert_eq!(summary.partitions_loaded, 2);
    assert_eq!(summary.partitions_failed, 1);
    assert_eq!(summary.partitions_late, 0);
    assert_eq!(summary.rows, 3);
    assert_eq!(summary.keys, 3);
    let t = &summary.tables[0];
    assert_eq!(t.status, "failed");
    assert_eq!(t.partitions_failed, 1);
    // 11-19 is not loaded, so the watermark stops before it.
    assert_eq!(t.watermark, Some(d("2026-11-18")));

    let entries = engine.ledger().entries("orders").await.unwrap();
    assert_eq!(
        entries.keys().copied().collect::<Vec<_>>(),
        vec![d("2026-11-18"), d("2026-11-20")]
    );
    assert_eq!(
        engine.ledger().watermark("orders").await.unwrap(),
        Some(d("2026-11-18"))
    );
    // Nothing of the failed partition was written, not even the rows of its good file.
    let expected: BTreeMap<String, (String, i64)> = [
        ("ord:10", order_json(10, "x"), d("2026-11-18")),
        ("ord:11", order_json(11, "x"), d("2026-11-18")),
        ("ord:30", order_json(30, "z"), d("2026-11-20")),
    ]
    .into_iter()
    .map(|(k, v, date)| (k.to_string(), (v, partition_expiry(&cfg, date).millis)))
    .collect();
    for (key, (value, expiry)) in &expected {
        assert_eq!(redis.get(key).as_ref(), Some(value), "{key}");
        assert_eq!(redis.pexpiretime(key), *expiry, "{key}");
    }
    let data_keys: BTreeSet<String> = redis
        .keys("*")
        .into_iter()
        .filter(|k| !k.starts_with("coldsync:"))
        .collect();
    assert_eq!(data_keys, expected.keys().cloned().collect());

    // Replacing the object with a good one lets the next run load it (pending, not changed).
    op.write(&bad_path, good).await.unwrap();
    let again = run(&engine).await;
    assert_eq!(again.exit_code, exit_code::OK, "{again:?}");
    assert_eq!(again.partitions_loaded, 1);
    assert_eq!(again.keys, 3);
    for id in [20, 21, 22] {
        assert_eq!(redis.get(&format!("ord:{id}")), Some(order_json(id, "y")));
    }
    assert_eq!(
        engine.ledger().watermark("orders").await.unwrap(),
        Some(d("2026-11-20"))
    );
}

#[test]
fn literal_secret_in_source_is_rejected() {
    let env = creds_env();
    let base = format!(
        r#"[source]
scheme = "s3"
bucket = "b"
endpoint = "http://127.0.0.1:1"
region = "us-east-1"
access_key_id_env = "{KEY_VAR}"
SECRET_LINE
[redis]
url = "redis://127.0.0.1:6379/0"
[defaults]
retention_days = 30
{SPARK_TABLE}"#
    );
    // A literal secret in the file.
    let text = base.replace("SECRET_LINE", r#"secret_access_key = "literal-secret-123""#);
    let err = Config::parse(&text, &env).expect_err("literal secret must be rejected");
    let msg = err.to_string();
    assert!(msg.contains("source.secret_access_key"), "{msg}");
    assert!(!msg.contains("literal-secret-123"), "{msg}");

    // The _env form naming a variable that is not set.
    let text = base.replace(
        "SECRET_LINE",
        r#"secret_access_key_env = "COLDSYNC_S3_TEST_UNSET""#,
    );
    let err = Config::parse(&text, &env).expect_err("unset env var must be rejected");
    let msg = err.to_string();
    assert!(msg.contains("source.secret_access_key_env"), "{msg}");
    assert!(msg.contains("COLDSYNC_S3_TEST_UNSET"), "{msg}");

    // The _env form with the variable present is accepted, as a secret.
    let text = base.replace(
        "SECRET_LINE",
        &format!(r#"secret_access_key_env = "{SECRET_VAR}""#),
    );
    let config = Config::parse(&text, &env).expect("valid");
    let value = &config.source.options["secret_access_key"];
    assert!(matches!(value, coldsync::config::OptionValue::Secret(_)));
    assert_eq!(value.expose(), "s3-secret-value-xyz");
    assert_eq!(config.source.options["access_key_id"].expose(), "test");
    assert!(!format!("{config:?}").contains("s3-secret-value-xyz"));
}
