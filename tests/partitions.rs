//! Partition discovery, completeness, planning and load-order rules, through the library API
//! (`Config::parse` -> `Engine::connect` -> `Engine::run`) against a local filesystem source and a
//! private `redis-server` per test.
//!
//! Dates are relative to the real current UTC day (`as_of` = today unless a test moves time), so
//! every absolute expiry the loader sets lies in the future and Redis keeps the keys.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use coldsync::plan::{PartitionState, TablePlan};
use coldsync::run::{partition_expiry, Backfill, Engine, RunOptions, RunSummary, TableOutcome};
use common::*;
use tokio_util::sync::CancellationToken;

const ORDERS_PATH: &str = "warehouse/orders";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `dt=YYYY-MM-DD`.
fn dt(d: NaiveDate) -> String {
    format!("dt={}", iso(d))
}

/// The `orders` table at `warehouse/orders`, keys `ord:{order_id}`.
fn orders_toml(extra: &str) -> String {
    table_toml("orders", ORDERS_PATH, "ord", extra)
}

async fn run_opts(engine: &Engine, options: RunOptions) -> RunSummary {
    engine
        .run(&options, &CancellationToken::new())
        .await
        .expect("run starts")
}

async fn run(engine: &Engine, as_of: NaiveDate) -> RunSummary {
    run_opts(
        engine,
        RunOptions {
            as_of: Some(as_of),
            ..RunOptions::default()
        },
    )
    .await
}

async fn backfill(
    engine: &Engine,
    as_of: NaiveDate,
    from: NaiveDate,
    to: NaiveDate,
    force: bool,
) -> RunSummary {
    run_opts(
        engine,
        RunOptions {
            as_of: Some(as_of),
            backfill: Some(Backfill { from, to, force }),
            ..RunOptions::default()
        },
    )
    .await
}

fn outcome<'a>(summary: &'a RunSummary, table: &str) -> &'a TableOutcome {
    summary
        .tables
        .iter()
        .find(|t| t.table == table)
        .unwrap_or_else(|| panic!("no outcome for {table}: {summary:?}"))
}

async fn plan(engine: &Engine, table: &str, as_of: NaiveDate) -> TablePlan {
    let cfg = engine
        .config()
        .tables
        .iter()
        .find(|t| t.name == table)
        .expect("table configured")
        .clone();
    engine
        .plan_table(&cfg, Some(as_of))
        .await
        .expect("plan table")
        .2
}

fn states(plan: &TablePlan) -> BTreeMap<NaiveDate, PartitionState> {
    plan.partitions.iter().map(|p| (p.date, p.state)).collect()
}

/// `created_at` of `orders_batch` as the loader's ISO-8601 text (millisecond unit -> 3 digits, Z).
fn created_at_iso(id: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(orders_created_at_ms(id))
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Expected JSON value of `orders_batch` row `id` with `suffix` (key column `order_id` excluded).
fn json_value(id: i64, suffix: &str) -> String {
    format!(
        "{{\"user_id\":{},\"amount\":\"{id}.99\",\"status\":\"paid-{suffix}\",\"created_at\":\"{}\"}}",
        orders_user_id(id),
        created_at_iso(id)
    )
}

/// Expected hash value of `orders_batch` row `id` with `suffix`.
fn hash_value(id: i64, suffix: &str) -> BTreeMap<String, String> {
    [
        ("user_id", orders_user_id(id).to_string()),
        ("amount", format!("{id}.99")),
        ("status", format!("paid-{suffix}")),
        ("created_at", created_at_iso(id)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Start of `date + days` in UTC, in ms (computed independently of the crate).
fn utc_midnight_ms(date: NaiveDate, days: u64) -> i64 {
    (date + Days::new(days))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// Incremental expiry with the default 30-day retention: start of `date + 31` UTC.
fn exp30(date: NaiveDate) -> i64 {
    utc_midnight_ms(date, 31)
}

fn set_mtime(path: &Path, at: SystemTime) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.set_modified(at)
        .unwrap_or_else(|e| panic!("set_modified {}: {e}", path.display()));
}

/// Sets the mtime of every file under `dir`.
fn set_tree_mtime(dir: &Path, at: SystemTime) {
    for rel in list_files(dir) {
        set_mtime(&dir.join(rel), at);
    }
}

/// Every key of db 0 with its type, value (GET or HGETALL as JSON) and PEXPIRETIME.
fn redis_dump(redis: &RedisServer) -> BTreeMap<String, (String, String, i64)> {
    redis
        .keys("*")
        .into_iter()
        .map(|k| {
            let t = redis.key_type(&k);
            let v = match t.as_str() {
                "string" => redis.get(&k).unwrap(),
                "hash" => serde_json::to_string(&redis.hgetall(&k)).unwrap(),
                other => panic!("unexpected type {other} of {k}"),
            };
            let exp = redis.pexpiretime(&k);
            (k, (t, v, exp))
        })
        .collect()
}

fn ledger_key(table: &str) -> String {
    format!("coldsync:{{{table}}}:partitions")
}

fn watermark_key(table: &str) -> String {
    format!("coldsync:{{{table}}}:watermark")
}

fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Asserts `prefix:{id}` holds the JSON value of (`id`, `suffix`) and expires at `expiry_ms`.
fn assert_json_key(redis: &RedisServer, prefix: &str, id: i64, suffix: &str, expiry_ms: i64) {
    let key = format!("{prefix}:{id}");
    assert_eq!(
        redis.get(&key),
        Some(json_value(id, suffix)),
        "value of {key}"
    );
    assert_eq!(redis.pexpiretime(&key), expiry_ms, "PEXPIRETIME of {key}");
}

// ---------------------------------------------------------------------------
// 1. Spark and Hive layouts: only real data, junk never read
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_and_hive_layouts_load_only_real_data() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let root = scenario.root();
    let (d1, d2) = (ago(3), ago(2));

    // Spark: two part files per partition, .crc siblings, _SUCCESS + ._SUCCESS.crc, and a corrupt
    // `PAR1...` file under _temporary/ (plus more junk at the table root).
    let mut sfx = HiveTableFixture::new("warehouse/spark_orders");
    sfx.spark_partition(
        &dt(d1),
        &[orders_batch(&[1, 2], "s1"), orders_batch(&[3], "s1")],
    )
    .spark_partition(
        &dt(d2),
        &[orders_batch(&[4, 5], "s2"), orders_batch(&[6], "s2")],
    );
    sfx.add_file(
        "warehouse/spark_orders/_temporary/0/part-00000.snappy.parquet",
        SPARK_TEMPORARY_JUNK.to_vec(),
        FileKind::Junk,
    );
    sfx.add_file(
        &format!("warehouse/spark_orders/{}/_temporary/not-parquet", dt(d2)),
        b"PAR1garbage".to_vec(),
        FileKind::Junk,
    );
    // Parquet summary files (hidden names) are never data either.
    sfx.add_file(
        &format!("warehouse/spark_orders/{}/_metadata", dt(d1)),
        b"PAR1 not a data file".to_vec(),
        FileKind::Junk,
    );
    sfx.add_file(
        "warehouse/spark_orders/_common_metadata",
        b"PAR1 not a data file".to_vec(),
        FileKind::Junk,
    );
    sfx.write_local(root);
    assert_eq!(sfx.paths_of(FileKind::Junk).len(), 6);
    assert_eq!(sfx.paths_of(FileKind::Checksum).len(), 6);

    // Hive: 000000_0, 000001_0 and .hive-staging_* junk; Hive writes no _SUCCESS.
    let mut hfx = HiveTableFixture::new("warehouse/hive_orders");
    hfx.hive_partition(
        &dt(d1),
        &[orders_batch(&[1, 2], "h1"), orders_batch(&[3], "h1")],
    )
    .hive_partition(&dt(d2), &[orders_batch(&[4], "h2")]);
    hfx.write_local(root);
    for junk in hfx.paths_of(FileKind::Junk) {
        assert!(junk.contains(".hive-staging_"), "{junk}");
        assert!(root.join(&junk).is_file());
    }

    let tables = table_toml("spark_orders", "warehouse/spark_orders", "sp", "")
        + &table_toml(
            "hive_orders",
            "warehouse/hive_orders",
            "hv",
            "completeness = \"none\"",
        );
    let engine = scenario.engine(&tables).await;
    let summary = run(&engine, today()).await;

    assert_eq!(summary.exit_code, 0, "{summary:?}");
    assert_eq!(summary.partitions_loaded, 4);
    assert_eq!(summary.partitions_failed, 0);
    assert_eq!(summary.partitions_late, 0);
    assert_eq!(summary.rows, 6 + 4);
    assert_eq!(summary.keys, 6 + 4);
    for t in &summary.tables {
        assert_eq!(t.status, "ok", "{t:?}");
        assert_eq!(t.error, None);
        assert_eq!(t.watermark, Some(d2));
    }

    for id in 1..=3 {
        assert_json_key(&redis, "sp", id, "s1", exp30(d1));
        assert_json_key(&redis, "hv", id, "h1", exp30(d1));
    }
    for id in 4..=6 {
        assert_json_key(&redis, "sp", id, "s2", exp30(d2));
    }
    assert_json_key(&redis, "hv", 4, "h2", exp30(d2));

    let mut expected: BTreeSet<String> = (1..=6).map(|i| format!("sp:{i}")).collect();
    expected.extend((1..=4).map(|i| format!("hv:{i}")));
    for t in ["spark_orders", "hive_orders"] {
        expected.insert(ledger_key(t));
        expected.insert(watermark_key(t));
    }
    assert_eq!(redis.keys("*"), expected);

    let spark_ledger = engine.ledger().entries("spark_orders").await.unwrap();
    assert_eq!(
        spark_ledger.keys().copied().collect::<Vec<_>>(),
        vec![d1, d2]
    );
    for (date, rows) in [(d1, 3), (d2, 3)] {
        let e = &spark_ledger[&date];
        assert_eq!(e.files, 2, "only part files counted for {date}");
        assert_eq!((e.rows, e.keys, e.skipped_null_keys), (rows, rows, 0));
        assert_eq!(e.run_id, summary.run_id);
        assert_eq!(e.expires_at_ms, exp30(date));
        let data_bytes: u64 = sfx
            .data_files()
            .iter()
            .filter(|p| p.contains(&dt(date)))
            .map(|p| sfx.files()[p].bytes.len() as u64)
            .sum();
        assert_eq!(e.bytes, data_bytes);
    }
    let hive_ledger = engine.ledger().entries("hive_orders").await.unwrap();
    assert_eq!(
        (hive_ledger[&d1].files, hive_ledger[&d1].rows),
        (2, 3),
        "staging junk not read"
    );
    assert_eq!((hive_ledger[&d2].files, hive_ledger[&d2].rows), (1, 1));
}

// ---------------------------------------------------------------------------
// 2. Sub-partitions
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hour_sub_partitions_load_as_one_date() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let root = scenario.root();
    let d = ago(2);
    let h3 = format!("{}/hour=03", dt(d));
    let h4 = format!("{}/hour=04", dt(d));

    // sub_a: one marker in the date dir; sub_b: a marker in every hour dir;
    // sub_c: a marker in hour=03 only -> incomplete.
    scenario.spark_unmarked("t/sub_a", &h3, &[orders_batch(&[1, 2, 9], "h3")]);
    scenario.spark_unmarked("t/sub_a", &h4, &[orders_batch(&[3, 4, 9], "h4")]);
    write_success(root, &format!("t/sub_a/{}", dt(d)));
    scenario.spark("t/sub_b", &h3, &[orders_batch(&[1, 2, 9], "h3")]);
    scenario.spark("t/sub_b", &h4, &[orders_batch(&[3, 4, 9], "h4")]);
    scenario.spark("t/sub_c", &h3, &[orders_batch(&[1, 2], "h3")]);
    scenario.spark_unmarked("t/sub_c", &h4, &[orders_batch(&[3, 4], "h4")]);

    let tables = table_toml("sub_a", "t/sub_a", "a", "")
        + &table_toml("sub_b", "t/sub_b", "b", "")
        + &table_toml("sub_c", "t/sub_c", "c", "");
    let engine = scenario.engine(&tables).await;

    let pc = plan(&engine, "sub_c", today()).await;
    assert_eq!(
        states(&pc),
        BTreeMap::from([(d, PartitionState::Incomplete)])
    );
    assert_eq!(
        pc.partitions[0].reason.as_deref(),
        Some("no _SUCCESS marker in the partition")
    );
    assert_eq!(pc.partitions[0].files, 2);

    let summary = run(&engine, today()).await;
    assert_eq!(summary.partitions_loaded, 2);
    assert_eq!(summary.partitions_failed, 0);
    assert_eq!(
        summary.partitions_late, 1,
        "sub_c's newest cold date is late"
    );
    assert_eq!(summary.exit_code, 4);
    assert_eq!(outcome(&summary, "sub_a").status, "ok");
    assert_eq!(outcome(&summary, "sub_b").status, "ok");
    assert_eq!(outcome(&summary, "sub_c").status, "late");
    assert_eq!(outcome(&summary, "sub_c").late, Some(d));

    for (table, prefix) in [("sub_a", "a"), ("sub_b", "b")] {
        let entries = engine.ledger().entries(table).await.unwrap();
        assert_eq!(entries.keys().copied().collect::<Vec<_>>(), vec![d]);
        let e = &entries[&d];
        // `keys` counts acknowledged writes: ord 9 is written twice, hour=04 (later path) last.
        assert_eq!((e.files, e.rows, e.keys), (2, 6, 6), "{table}");
        for id in [1, 2] {
            assert_json_key(&redis, prefix, id, "h3", exp30(d));
        }
        for id in [3, 4, 9] {
            assert_json_key(&redis, prefix, id, "h4", exp30(d));
        }
        assert_eq!(engine.ledger().watermark(table).await.unwrap(), Some(d));
    }
    assert!(engine.ledger().entries("sub_c").await.unwrap().is_empty());
    assert!(redis.keys("c:*").is_empty());
    assert_eq!(
        redis.dbsize(),
        10 + 4,
        "10 data keys, 2 ledger keys per loaded table"
    );
}

// ---------------------------------------------------------------------------
// 3. partition_format = "%Y%m%d"
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_partition_format() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let (d1, d2) = (ago(3), ago(2));
    let compact = |d: NaiveDate| format!("dt={}", d.format("%Y%m%d"));
    scenario.spark(ORDERS_PATH, &compact(d1), &[orders_batch(&[1], "c1")]);
    scenario.spark(ORDERS_PATH, &compact(d2), &[orders_batch(&[2], "c2")]);
    // The dashed form is not a value in this table's format.
    scenario.spark(ORDERS_PATH, &dt(d2), &[orders_batch(&[99], "dash")]);

    let engine = scenario
        .engine(&orders_toml("partition_format = \"%Y%m%d\""))
        .await;
    let p = plan(&engine, "orders", today()).await;
    assert_eq!(p.invalid_values, vec![iso(d2)]);
    assert_eq!(
        states(&p),
        BTreeMap::from([(d1, PartitionState::Pending), (d2, PartitionState::Pending)])
    );

    let summary = run(&engine, today()).await;
    assert_eq!(summary.exit_code, 0, "{summary:?}");
    assert_eq!(summary.partitions_loaded, 2);
    assert_json_key(&redis, "ord", 1, "c1", exp30(d1));
    assert_json_key(&redis, "ord", 2, "c2", exp30(d2));
    assert_eq!(redis.get("ord:99"), None);
    let fields: BTreeSet<String> = redis.cmd("HKEYS", &[&ledger_key("orders")]);
    assert_eq!(fields, set_of(&[&iso(d1), &iso(d2)]));
    assert_eq!(redis.get(&watermark_key("orders")), Some(iso(d2)));
    assert_eq!(redis.dbsize(), 2 + 2);
}

// ---------------------------------------------------------------------------
// 4. __HIVE_DEFAULT_PARTITION__
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_default_partition_is_skipped() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let d = ago(2);
    scenario.spark(ORDERS_PATH, &dt(d), &[orders_batch(&[1, 2], "ok")]);
    scenario.spark(
        ORDERS_PATH,
        "dt=__HIVE_DEFAULT_PARTITION__",
        &[orders_batch(&[900, 901], "null-dt")],
    );
    scenario.spark(ORDERS_PATH, "dt=not-a-date", &[orders_batch(&[902], "x")]);

    let engine = scenario.engine(&orders_toml("")).await;
    let p = plan(&engine, "orders", today()).await;
    assert_eq!(
        p.invalid_values,
        vec![
            "__HIVE_DEFAULT_PARTITION__".to_string(),
            "not-a-date".to_string()
        ]
    );
    assert_eq!(states(&p), BTreeMap::from([(d, PartitionState::Pending)]));

    let summary = run(&engine, today()).await;
    assert_eq!(summary.exit_code, 0, "{summary:?}");
    assert_eq!(summary.partitions_loaded, 1);
    assert_eq!(summary.partitions_failed, 0);
    assert_eq!(outcome(&summary, "orders").status, "ok");
    assert_json_key(&redis, "ord", 1, "ok", exp30(d));
    assert_json_key(&redis, "ord", 2, "ok", exp30(d));
    for id in [900, 901, 902] {
        assert_eq!(redis.get(&format!("ord:{id}")), None);
    }
    assert_eq!(
        engine
            .ledger()
            .entries("orders")
            .await
            .unwrap()
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![d]
    );
    assert_eq!(redis.dbsize(), 2 + 2);
}

// ---------------------------------------------------------------------------
// 5. Completeness policies
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marker_completeness_skips_unmarked_partition() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let root = scenario.root();
    let (d1, d2) = (ago(3), ago(2));
    scenario.spark_unmarked(ORDERS_PATH, &dt(d1), &[orders_batch(&[1], "u")]);
    scenario.spark(ORDERS_PATH, &dt(d2), &[orders_batch(&[2], "m")]);
    // A partition holding only a marker and a zero-byte file is complete and empty.
    write_success(root, &format!("{ORDERS_PATH}/{}", dt(ago(4))));
    write_file(root, &format!("{ORDERS_PATH}/{}/part-0", dt(ago(4))), b"");

    let engine = scenario.engine(&orders_toml("")).await;
    let p = plan(&engine, "orders", today()).await;
    assert_eq!(
        states(&p),
        BTreeMap::from([
            (ago(4), PartitionState::Pending),
            (d1, PartitionState::Incomplete),
            (d2, PartitionState::Pending)
        ])
    );
    assert_eq!(
        p.partition(d1).unwrap().reason.as_deref(),
        Some("no _SUCCESS marker in the partition")
    );
    assert_eq!(p.partition(ago(4)).unwrap().reason, None);

    let summary = run(&engine, today()).await;
    assert_eq!(summary.exit_code, 0, "{summary:?}");
    assert_eq!(summary.partitions_loaded, 2);
    assert_eq!(redis.get("ord:1"), None);
    assert_json_key(&redis, "ord", 2, "m", exp30(d2));
    let entries = engine.ledger().entries("orders").await.unwrap();
    assert_eq!(
        entries.keys().copied().collect::<Vec<_>>(),
        vec![ago(4), d2]
    );
    assert_eq!(
        (
            entries[&ago(4)].rows,
            entries[&ago(4)].keys,
            entries[&ago(4)].files
        ),
        (0, 0, 0)
    );
    // Watermark: the empty partition is loaded, the next day is not.
    assert_eq!(outcome(&summary, "orders").watermark, Some(ago(4)));
    assert_eq!(
        redis.dbsize(),
        1 + 2,
        "ord:2, the ledger hash and the watermark"
    );

    // The producer finishes: the partition loads next time.
    write_success(root, &format!("{ORDERS_PATH}/{}", dt(d1)));
    let summary = run(&engine, today()).await;
    assert_eq!(summary.partitions_loaded, 1);
    assert_json_key(&redis, "ord", 1, "u", exp30(d1));
    assert_eq!(outcome(&summary, "orders").watermark, Some(d2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_marker_completeness_compares_mtimes() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let root = scenario.root();
    let (d1, d2) = (ago(3), ago(2));
    let opts = SparkOptions {
        success: SuccessMarker::TableRoot,
        ..SparkOptions::default()
    };
    let mut fx = HiveTableFixture::new(ORDERS_PATH);
    fx.spark_partition_with(&dt(d1), &[orders_batch(&[1], "old")], &opts)
        .spark_partition_with(&dt(d2), &[orders_batch(&[2], "new")], &opts);
    fx.write_local(root);
    assert!(root.join(ORDERS_PATH).join("_SUCCESS").is_file());
    assert!(!root
        .join(ORDERS_PATH)
        .join(dt(d1))
        .join("_SUCCESS")
        .exists());

    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    set_tree_mtime(&root.join(ORDERS_PATH).join(dt(d1)), now - 3 * hour);
    set_mtime(&root.join(ORDERS_PATH).join("_SUCCESS"), now - 2 * hour);
    // d2 rewritten after the table's marker: a job is still writing it.
    set_tree_mtime(&root.join(ORDERS_PATH).join(dt(d2)), now - hour);

    let engine = scenario
        .engine(&orders_toml("completeness = \"table_marker\""))
        .await;
    let p = plan(&engine, "orders", today()).await;
    assert_eq!(
        states(&p),
        BTreeMap::from([
            (d1, PartitionState::Pending),
            (d2, PartitionState::Incomplete)
        ])
    );
    assert_eq!(
        p.partition(d2).unwrap().reason.as_deref(),
        Some("a file is newer than the table's _SUCCESS marker")
    );

    let summary = run(&engine, today()).await;
    assert_eq!(summary.partitions_loaded, 1);
    assert_eq!(summary.partitions_late, 1);
    assert_eq!(summary.exit_code, 4);
    assert_eq!(outcome(&summary, "orders").late, Some(d2));
    assert_json_key(&redis, "ord", 1, "old", exp30(d1));
    assert_eq!(redis.get("ord:2"), None);

    // The job commits: the table marker is now newer than every file.
    set_mtime(&root.join(ORDERS_PATH).join("_SUCCESS"), now);
    let summary = run(&engine, today()).await;
    assert_eq!(summary.exit_code, 0, "{summary:?}");
    assert_eq!(summary.partitions_loaded, 1);
    assert_json_key(&redis, "ord", 2, "new", exp30(d2));

    // No table marker at all: nothing is complete.
    std::fs::remove_file(root.join(ORDERS_PATH).join("_SUCCESS")).unwrap();
    let p = plan(&engine, "orders", today()).await;
    for part in &p.partitions {
        assert_eq!(part.state, PartitionState::Incomplete);
        assert_eq!(
            part.reason.as_deref(),
            Some("no _SUCCESS marker at the table root")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completeness_none_loads_unmarked_partitions() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let (d1, d2) = (ago(3), ago(2));
    scenario.spark_unmarked(ORDERS_PATH, &dt(d1), &[orders_batch(&[1], "n1")]);
    scenario.spark_unmarked(ORDERS_PATH, &dt(d2), &[orders_batch(&[2], "n2")]);
    let engine = scenario
        .engine(&orders_toml("completeness = \"none\""))
        .await;
    let summary = run(&engine, today()).await;
    assert_eq!(summary.exit_code, 0, "{summary:?}");
    assert_eq!(summary.partitions_loaded, 2);
    assert_json_key(&redis, "ord", 1, "n1", exp30(d1));
    assert_json_key(&redis, "ord", 2, "n2", exp30(d2));
    assert_eq!(redis.dbsize(), 2 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_age_minutes_holds_back_fresh_files() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let root = scenario.root();
    let (d1, d2) = (ago(3), ago(2));
    scenario.spark_unmarked(ORDERS_PATH, &dt(d1), &[orders_batch(&[1], "old")]);
    scenario.spark_unmarked(ORDERS_PATH, &dt(d2), &[orders_batch(&[2], "fresh")]);
    let now = SystemTime::now();
    set_tree_mtime(
        &root.join(ORDERS_PATH).join(dt(d1)),
        now - Duration::from_secs(3 * 3600),
    );
    set_tree_mtime(
        &root.join(ORDERS_PATH).join(dt(d2)),
        now - Duration::from_secs(10 * 60),
    );
    let engine = scenario
        .engine(&orders_toml(
            "completeness = \"none\"\nmin_age_minutes = 60",
        ))
        .await;
    let p = plan(&engine, "orders", today()).await;
    assert_eq!(
        states(&p),
        BTreeMap::from([
            (d1, PartitionState::Pending),
            (d2, PartitionState::Incomplete)
        ])
    );
    let reason = p.partition(d2).unwrap().reason.clone().unwrap();
    assert!(reason.contains("within min_age_minutes"), "{reason}");
    let s = run(&engine, today()).await;
    assert_eq!(
        (s.exit_code, s.partitions_loaded, s.partitions_late),
        (4, 1, 1)
    );
    assert_json_key(&redis, "ord", 1, "old", exp30(d1));
    assert_eq!(redis.get("ord:2"), None);

    set_tree_mtime(
        &root.join(ORDERS_PATH).join(dt(d2)),
        now - Duration::from_secs(61 * 60),
    );
    let s = run(&engine, today()).await;
    assert_eq!((s.exit_code, s.partitions_loaded), (0, 1), "{s:?}");
    assert_json_key(&redis, "ord", 2, "fresh", exp30(d2));
}

// ---------------------------------------------------------------------------
// 6. Late partition
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_newest_cold_partition_exits_4() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let root = scenario.root();
    scenario.spark(ORDERS_PATH, &dt(ago(4)), &[orders_batch(&[1], "a")]);
    scenario.spark(ORDERS_PATH, &dt(ago(3)), &[orders_batch(&[2], "b")]);
    scenario.spark_unmarked(ORDERS_PATH, &dt(ago(2)), &[orders_batch(&[3], "c")]);
    // Hot partitions are complete but never loaded.
    scenario.spark(ORDERS_PATH, &dt(ago(1)), &[orders_batch(&[4], "hot")]);
    scenario.spark(ORDERS_PATH, &dt(today()), &[orders_batch(&[5], "hot")]);

    let engine = scenario.engine(&orders_toml("")).await;
    let p = plan(&engine, "orders", today()).await;
    assert_eq!(p.late, Some(ago(2)));
    assert_eq!(p.partition(ago(1)).unwrap().state, PartitionState::Hot);
    assert_eq!(p.partition(today()).unwrap().state, PartitionState::Hot);

    let summary = run(&engine, today()).await;
    assert_eq!(summary.partitions_loaded, 2);
    assert_eq!(summary.partitions_failed, 0);
    assert_eq!(summary.partitions_late, 1);
    assert_eq!(summary.exit_code, 4);
    let o = outcome(&summary, "orders");
    assert_eq!(o.status, "late");
    assert_eq!(o.late, Some(ago(2)));
    assert_eq!(o.watermark, Some(ago(3)));
    assert_json_key(&redis, "ord", 1, "a", exp30(ago(4)));
    assert_json_key(&redis, "ord", 2, "b", exp30(ago(3)));
    for id in [3, 4, 5] {
        assert_eq!(redis.get(&format!("ord:{id}")), None);
    }

    // The newest cold partition missing entirely is late as well.
    std::fs::remove_dir_all(root.join(ORDERS_PATH).join(dt(ago(2)))).unwrap();
    let summary = run(&engine, today()).await;
    assert_eq!(summary.partitions_loaded, 0);
    assert_eq!(summary.exit_code, 4);
    assert_eq!(outcome(&summary, "orders").late, Some(ago(2)));
}

// ---------------------------------------------------------------------------
// 7. Retention
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_expires_old_partitions_and_sets_expiry() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    scenario.spark(ORDERS_PATH, &dt(ago(6)), &[orders_batch(&[1], "exp")]);
    scenario.spark(ORDERS_PATH, &dt(ago(5)), &[orders_batch(&[2], "edge")]);
    scenario.spark(ORDERS_PATH, &dt(ago(2)), &[orders_batch(&[3], "new")]);
    scenario.spark("warehouse/sh", &dt(ago(4)), &[orders_batch(&[4], "sh")]);
    scenario.spark("warehouse/sh", &dt(ago(2)), &[orders_batch(&[5], "sh2")]);

    let tables = orders_toml("retention_days = 5")
        + &table_toml(
            "orders_sh",
            "warehouse/sh",
            "sh",
            "retention_days = 5\ntimezone = \"Asia/Shanghai\"",
        );
    let engine = scenario.engine(&tables).await;
    let p = plan(&engine, "orders", today()).await;
    assert_eq!(
        states(&p),
        BTreeMap::from([
            (ago(6), PartitionState::Expired),
            (ago(5), PartitionState::Pending),
            (ago(2), PartitionState::Pending)
        ])
    );
    assert_eq!(p.oldest_kept, ago(5));

    let summary = run(&engine, today()).await;
    assert_eq!(summary.exit_code, 0, "{summary:?}");
    assert_eq!(summary.partitions_loaded, 4);
    assert_eq!(redis.get("ord:1"), None, "expired partition not loaded");
    // Incremental keys expire at the start of date + retention_days + 1 (UTC by default).
    assert_json_key(&redis, "ord", 2, "edge", utc_midnight_ms(ago(5), 6));
    assert_json_key(&redis, "ord", 3, "new", utc_midnight_ms(ago(2), 6));
    assert_eq!(utc_midnight_ms(ago(5), 6), utc_midnight_ms(today(), 1));
    // ... in the table's time zone: midnight in Shanghai is 16:00 UTC of the day before.
    let sh_midnight = chrono_tz::Asia::Shanghai
        .from_local_datetime(&(ago(4) + Days::new(6)).and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .timestamp_millis();
    assert_eq!(sh_midnight, utc_midnight_ms(ago(4), 6) - 8 * 3_600_000);
    assert_json_key(&redis, "sh", 4, "sh", sh_midnight);

    let orders_cfg = &engine.config().tables[0];
    let entries = engine.ledger().entries("orders").await.unwrap();
    assert_eq!(
        entries.keys().copied().collect::<Vec<_>>(),
        vec![ago(5), ago(2)]
    );
    for (date, e) in &entries {
        assert_eq!(e.expires_at_ms, utc_midnight_ms(*date, 6));
        assert_eq!(e.expires_at_ms, partition_expiry(orders_cfg, *date).millis);
    }
    let sh_entries = engine.ledger().entries("orders_sh").await.unwrap();
    assert_eq!(sh_entries[&ago(4)].expires_at_ms, sh_midnight);

    // A day later ago(5) leaves the window: the ledger forgets it (its keys expire by TTL).
    let tomorrow = today() + Days::new(1);
    let p = plan(&engine, "orders", tomorrow).await;
    assert_eq!(p.partition(ago(5)).unwrap().state, PartitionState::Expired);
    let summary = run(&engine, tomorrow).await;
    assert_eq!(summary.partitions_loaded, 0);
    let entries = engine.ledger().entries("orders").await.unwrap();
    assert_eq!(entries.keys().copied().collect::<Vec<_>>(), vec![ago(2)]);
    assert_json_key(&redis, "ord", 2, "edge", utc_midnight_ms(ago(5), 6));
}

// ---------------------------------------------------------------------------
// 8. Nothing new
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_with_nothing_new_changes_nothing() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    scenario.spark(ORDERS_PATH, &dt(ago(3)), &[orders_batch(&[1, 2], "a")]);
    scenario.spark(ORDERS_PATH, &dt(ago(2)), &[orders_batch(&[2, 3], "b")]);
    let engine = scenario.engine(&orders_toml("")).await;

    let first = run(&engine, today()).await;
    assert_eq!((first.exit_code, first.partitions_loaded), (0, 2));
    let dump = redis_dump(&redis);
    assert_eq!(dump.len(), 3 + 2);
    let dbsize = redis.dbsize();
    let ledger = engine.ledger().entries("orders").await.unwrap();

    let second = run(&engine, today()).await;
    assert_eq!(second.exit_code, 0, "{second:?}");
    assert_eq!(second.partitions_loaded, 0);
    assert_eq!((second.rows, second.keys), (0, 0));
    assert_eq!(redis.dbsize(), dbsize);
    assert_eq!(redis_dump(&redis), dump);
    assert_eq!(engine.ledger().entries("orders").await.unwrap(), ledger);
    assert_eq!(
        states(&plan(&engine, "orders", today()).await),
        BTreeMap::from([
            (ago(3), PartitionState::Loaded),
            (ago(2), PartitionState::Loaded)
        ])
    );
}

// ---------------------------------------------------------------------------
// 9. Changed partitions
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_partition_is_changed_and_reloaded() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let root = scenario.root();
    let d = ago(2);
    scenario.spark(ORDERS_PATH, &dt(d), &[orders_batch(&[1, 2], "v1")]);
    let engine = scenario.engine(&orders_toml("")).await;
    let first = run(&engine, today()).await;
    assert_eq!(first.partitions_loaded, 1);
    assert_json_key(&redis, "ord", 1, "v1", exp30(d));
    let before = engine.ledger().entries("orders").await.unwrap()[&d].clone();

    // The producer overwrites the partition (same file name, new content).
    scenario.spark(ORDERS_PATH, &dt(d), &[orders_batch(&[1, 2, 3], "v2")]);
    set_tree_mtime(
        &root.join(ORDERS_PATH).join(dt(d)),
        SystemTime::now() + Duration::from_secs(5),
    );
    let p = plan(&engine, "orders", today()).await;
    assert_eq!(states(&p), BTreeMap::from([(d, PartitionState::Changed)]));

    let second = run(&engine, today()).await;
    assert_eq!(second.exit_code, 0, "{second:?}");
    assert_eq!(second.partitions_loaded, 1);
    assert_eq!(second.keys, 3);
    for id in [1, 2, 3] {
        assert_json_key(&redis, "ord", id, "v2", exp30(d));
    }
    let after = engine.ledger().entries("orders").await.unwrap()[&d].clone();
    assert_ne!(after.fingerprint, before.fingerprint);
    assert_eq!(after.run_id, second.run_id);
    assert_eq!((after.rows, after.keys), (3, 3));
    assert_eq!(
        states(&plan(&engine, "orders", today()).await),
        BTreeMap::from([(d, PartitionState::Loaded)])
    );
}

// ---------------------------------------------------------------------------
// 10. Latest wins in every load order
// ---------------------------------------------------------------------------

/// Which (suffix, partition date) each key should hold.
type Expected = BTreeMap<i64, (&'static str, NaiveDate)>;

fn assert_expected(redis: &RedisServer, hash: bool, expected: &Expected) {
    let keys: BTreeSet<String> = redis.keys("ord:*");
    let want: BTreeSet<String> = expected.keys().map(|id| format!("ord:{id}")).collect();
    assert_eq!(keys, want);
    for (id, (suffix, date)) in expected {
        let key = format!("ord:{id}");
        if hash {
            assert_eq!(redis.key_type(&key), "hash");
            assert_eq!(redis.hgetall(&key), hash_value(*id, suffix), "{key}");
        } else {
            assert_eq!(redis.get(&key), Some(json_value(*id, suffix)), "{key}");
        }
        assert_eq!(redis.pexpiretime(&key), exp30(*date), "PEXPIRETIME {key}");
    }
}

async fn latest_wins(format: &str) {
    let hash = format == "hash";
    let (d1, d2, d3) = (ago(4), ago(3), ago(2));
    let write = |scenario: &Scenario| {
        scenario.spark(ORDERS_PATH, &dt(d1), &[orders_batch(&[1, 2, 11, 12], "d1")]);
        scenario.spark(ORDERS_PATH, &dt(d2), &[orders_batch(&[1, 2, 21], "d2")]);
        scenario.spark(ORDERS_PATH, &dt(d3), &[orders_batch(&[1, 31], "d3")]);
    };
    let tables = orders_toml(&format!("value_format = \"{format}\""));
    let all: Expected = BTreeMap::from([
        (1, ("d3", d3)),
        (2, ("d2", d2)),
        (11, ("d1", d1)),
        (12, ("d1", d1)),
        (21, ("d2", d2)),
        (31, ("d3", d3)),
    ]);

    // (a) a normal run loads oldest first: plain writes, newest value last.
    {
        let redis = RedisServer::start();
        let scenario = Scenario::new(&redis);
        write(&scenario);
        let engine = scenario.engine(&tables).await;
        let s = run(&engine, today()).await;
        assert_eq!((s.exit_code, s.partitions_loaded), (0, 3), "{s:?}");
        assert_eq!(outcome(&s, "orders").kept_newer, 0);
        assert_eq!(s.keys, 4 + 3 + 2);
        assert_expected(&redis, hash, &all);

        // (c) d1 rewritten after d3 was loaded: reloaded as changed, under the version guard.
        scenario.spark(ORDERS_PATH, &dt(d1), &[orders_batch(&[1, 11, 13], "d1b")]);
        set_tree_mtime(
            &scenario.root().join(ORDERS_PATH).join(dt(d1)),
            SystemTime::now() + Duration::from_secs(5),
        );
        let p = plan(&engine, "orders", today()).await;
        assert_eq!(p.partition(d1).unwrap().state, PartitionState::Changed);
        let s = run(&engine, today()).await;
        assert_eq!((s.exit_code, s.partitions_loaded), (0, 1), "{s:?}");
        assert_eq!(outcome(&s, "orders").kept_newer, 1, "ord:1 kept d3");
        assert_eq!(s.keys, 2);
        let mut expected = all.clone();
        expected.insert(11, ("d1b", d1));
        expected.insert(13, ("d1b", d1));
        // ord:12 is no longer in d1, but incremental loads never delete: it keeps its old value.
        assert_expected(&redis, hash, &expected);
        let e = &engine.ledger().entries("orders").await.unwrap()[&d1];
        assert_eq!((e.rows, e.keys, e.kept_newer), (3, 2, 1));
        assert_eq!(e.run_id, s.run_id);
    }

    // (b) the newest partition first (backfill of d3 only), then the older ones.
    {
        let redis = RedisServer::start();
        let scenario = Scenario::new(&redis);
        write(&scenario);
        let engine = scenario.engine(&tables).await;
        let s = backfill(&engine, today(), d3, d3, false).await;
        assert_eq!((s.exit_code, s.partitions_loaded), (0, 1), "{s:?}");
        assert_expected(
            &redis,
            hash,
            &BTreeMap::from([(1, ("d3", d3)), (31, ("d3", d3))]),
        );
        let s = backfill(&engine, today(), d1, d2, false).await;
        assert_eq!((s.exit_code, s.partitions_loaded), (0, 2), "{s:?}");
        assert_eq!(
            outcome(&s, "orders").kept_newer,
            2,
            "ord:1 kept by d1 and d2"
        );
        assert_eq!(s.keys, 3 + 2);
        assert_expected(&redis, hash, &all);
        let entries = engine.ledger().entries("orders").await.unwrap();
        assert_eq!(
            (
                entries[&d1].keys,
                entries[&d1].kept_newer,
                entries[&d1].rows
            ),
            (3, 1, 4)
        );
        assert_eq!(
            (
                entries[&d2].keys,
                entries[&d2].kept_newer,
                entries[&d2].rows
            ),
            (2, 1, 3)
        );
        assert_eq!((entries[&d3].keys, entries[&d3].kept_newer), (2, 0));
        assert_eq!(engine.ledger().watermark("orders").await.unwrap(), Some(d3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_partition_wins_in_every_order_json() {
    latest_wins("json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_partition_wins_in_every_order_hash() {
    latest_wins("hash").await;
}

/// Within one partition, the same key in several files: the file later in path order wins,
/// with plain writes and with guarded ones (partition older than the newest loaded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_in_one_partition_last_file_wins() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let (d1, d2) = (ago(3), ago(2));
    let files = [
        orders_batch(&[1, 2], "f0"),
        orders_batch(&[2, 3], "f1"),
        orders_batch(&[3, 1], "f2"),
    ];
    scenario.spark(ORDERS_PATH, &dt(d1), &files);
    scenario.spark("warehouse/g", &dt(d1), &files);
    scenario.spark("warehouse/g", &dt(d2), &[orders_batch(&[100], "new")]);
    scenario.spark(ORDERS_PATH, &dt(d2), &[orders_batch(&[100], "new")]);
    let tables = orders_toml("") + &table_toml("g", "warehouse/g", "g", "");
    let engine = scenario.engine(&tables).await;

    // Table g: newest first, so d1 is written under the version guard.
    let s = run_opts(
        &engine,
        RunOptions {
            tables: vec!["g".into()],
            as_of: Some(today()),
            backfill: Some(Backfill {
                from: d2,
                to: d2,
                force: false,
            }),
            ..RunOptions::default()
        },
    )
    .await;
    assert_eq!((s.exit_code, s.partitions_loaded), (0, 1), "{s:?}");
    assert_eq!(s.tables.len(), 1);

    let s = run(&engine, today()).await;
    assert_eq!((s.exit_code, s.partitions_loaded), (0, 3), "{s:?}");
    assert_eq!(outcome(&s, "g").kept_newer, 0);
    assert_eq!(outcome(&s, "orders").kept_newer, 0);
    for prefix in ["ord", "g"] {
        assert_json_key(&redis, prefix, 1, "f2", exp30(d1));
        assert_json_key(&redis, prefix, 2, "f1", exp30(d1));
        assert_json_key(&redis, prefix, 3, "f2", exp30(d1));
    }
    for prefix in ["ord", "g"] {
        assert_json_key(&redis, prefix, 100, "new", exp30(d2));
    }
}

// ---------------------------------------------------------------------------
// 11. Backfill
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_loads_pending_in_range_and_force_reloads() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let days = [ago(5), ago(4), ago(3), ago(2)];
    for (i, d) in days.iter().enumerate() {
        let id = 10 * (i as i64 + 1);
        scenario.spark(ORDERS_PATH, &dt(*d), &[orders_batch(&[id], "bf")]);
    }
    scenario.spark(ORDERS_PATH, &dt(ago(1)), &[orders_batch(&[99], "hot")]);
    let engine = scenario.engine(&orders_toml("")).await;

    // Reversed range: a config error before anything runs.
    let err = engine
        .run(
            &RunOptions {
                as_of: Some(today()),
                backfill: Some(Backfill {
                    from: days[3],
                    to: days[0],
                    force: false,
                }),
                ..RunOptions::default()
            },
            &CancellationToken::new(),
        )
        .await
        .expect_err("reversed range");
    assert_eq!(err.exit_code(), 2);
    assert_eq!(redis.dbsize(), 0);

    let s1 = backfill(&engine, today(), days[1], days[2], false).await;
    assert_eq!((s1.exit_code, s1.partitions_loaded), (0, 2), "{s1:?}");
    assert_eq!(
        redis.keys("ord:*"),
        set_of(&["ord:20", "ord:30"]),
        "only the range"
    );
    assert_eq!(outcome(&s1, "orders").watermark, None, "days[0] not loaded");
    assert_eq!(redis.get(&watermark_key("orders")), None);

    // Whole range incl. a hot day: only the two pending cold ones load.
    let s2 = backfill(&engine, today(), days[0], ago(1), false).await;
    assert_eq!((s2.exit_code, s2.partitions_loaded), (0, 2), "{s2:?}");
    assert_eq!(
        redis.keys("ord:*"),
        set_of(&["ord:10", "ord:20", "ord:30", "ord:40"])
    );
    let entries = engine.ledger().entries("orders").await.unwrap();
    assert_eq!(entries.keys().copied().collect::<Vec<_>>(), days.to_vec());
    for (d, run_id) in [
        (days[0], &s2.run_id),
        (days[1], &s1.run_id),
        (days[2], &s1.run_id),
        (days[3], &s2.run_id),
    ] {
        assert_eq!(&entries[&d].run_id, run_id, "{d}");
    }
    assert_eq!(
        engine.ledger().watermark("orders").await.unwrap(),
        Some(days[3])
    );

    // Non-forced backfill of loaded days does nothing.
    let s = backfill(&engine, today(), days[1], days[2], false).await;
    assert_eq!((s.exit_code, s.partitions_loaded), (0, 0));

    // Forced: loaded days are rewritten (a tampered value is restored), run ids change.
    redis.set("ord:20", "tampered");
    let s3 = backfill(&engine, today(), days[1], days[2], true).await;
    assert_eq!((s3.exit_code, s3.partitions_loaded), (0, 2), "{s3:?}");
    assert_json_key(&redis, "ord", 20, "bf", exp30(days[1]));
    let entries = engine.ledger().entries("orders").await.unwrap();
    for (d, run_id) in [
        (days[0], &s2.run_id),
        (days[1], &s3.run_id),
        (days[2], &s3.run_id),
        (days[3], &s2.run_id),
    ] {
        assert_eq!(&entries[&d].run_id, run_id, "{d}");
    }
    assert_eq!(redis.get("ord:99"), None);
    assert_eq!(redis.dbsize(), 4 + 2);
}

// ---------------------------------------------------------------------------
// 12. Snapshot mode
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_loads_only_newest_complete_partition() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let (d1, d2) = (ago(3), ago(2));
    scenario.spark(ORDERS_PATH, &dt(d1), &[orders_batch(&[1, 2, 3], "s1")]);
    scenario.spark(ORDERS_PATH, &dt(d2), &[orders_batch(&[1, 2, 4], "s2")]);
    let engine = scenario.engine(&orders_toml("mode = \"snapshot\"")).await;
    let p = plan(&engine, "orders", today()).await;
    assert_eq!(
        states(&p),
        BTreeMap::from([
            (d1, PartitionState::Superseded),
            (d2, PartitionState::Pending)
        ])
    );

    let s = run(&engine, today()).await;
    assert_eq!((s.exit_code, s.partitions_loaded), (0, 1), "{s:?}");
    // hot_days 2 + 1 + snapshot_grace_days 2.
    let expiry = utc_midnight_ms(d2, 5);
    assert_eq!(
        expiry,
        partition_expiry(&engine.config().tables[0], d2).millis
    );
    for id in [1, 2, 4] {
        assert_json_key(&redis, "ord", id, "s2", expiry);
    }
    assert_eq!(redis.get("ord:3"), None);
    let entries = engine.ledger().entries("orders").await.unwrap();
    assert_eq!(entries.keys().copied().collect::<Vec<_>>(), vec![d2]);
    assert_eq!(entries[&d2].expires_at_ms, expiry);
    assert_eq!(engine.ledger().watermark("orders").await.unwrap(), Some(d2));
    assert_eq!(redis.dbsize(), 3 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_delete_missing_removes_absent_keys() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let (d2, d3) = (ago(2), ago(1));
    let tomorrow = today() + Days::new(1);
    scenario.spark(ORDERS_PATH, &dt(d2), &[orders_batch(&[1, 2, 3, 4], "s2")]);
    // A second snapshot table without delete_missing, same data, for contrast.
    scenario.spark(
        "warehouse/keep",
        &dt(d2),
        &[orders_batch(&[1, 2, 3, 4], "s2")],
    );
    let tables = orders_toml("mode = \"snapshot\"\ndelete_missing = true")
        + &table_toml("keep", "warehouse/keep", "keep", "mode = \"snapshot\"");
    let engine = scenario.engine(&tables).await;

    let s = run(&engine, today()).await;
    assert_eq!((s.exit_code, s.partitions_loaded), (0, 2), "{s:?}");
    for id in 1..=4 {
        assert_json_key(&redis, "ord", id, "s2", utc_midnight_ms(d2, 5));
    }

    // The next day's snapshot lacks keys 3 and 4 and adds 5.
    scenario.spark(ORDERS_PATH, &dt(d3), &[orders_batch(&[1, 2, 5], "s3")]);
    scenario.spark("warehouse/keep", &dt(d3), &[orders_batch(&[1, 2, 5], "s3")]);
    let p = plan(&engine, "orders", tomorrow).await;
    assert_eq!(
        states(&p),
        BTreeMap::from([
            (d2, PartitionState::Superseded),
            (d3, PartitionState::Pending)
        ])
    );
    let s = run(&engine, tomorrow).await;
    assert_eq!((s.exit_code, s.partitions_loaded), (0, 2), "{s:?}");
    assert_eq!(
        redis.keys("ord:*"),
        set_of(&["ord:1", "ord:2", "ord:5"]),
        "keys absent from the new snapshot deleted"
    );
    for id in [1, 2, 5] {
        assert_json_key(&redis, "ord", id, "s3", utc_midnight_ms(d3, 5));
    }
    let entries = engine.ledger().entries("orders").await.unwrap();
    assert_eq!(entries.keys().copied().collect::<Vec<_>>(), vec![d3]);
    assert_eq!(engine.ledger().watermark("orders").await.unwrap(), Some(d3));

    // Without delete_missing the old keys stay until their own expiry.
    for id in [1, 2, 5] {
        assert_json_key(&redis, "keep", id, "s3", utc_midnight_ms(d3, 5));
    }
    for id in [3, 4] {
        assert_json_key(&redis, "keep", id, "s2", utc_midnight_ms(d2, 5));
    }
    let entries = engine.ledger().entries("keep").await.unwrap();
    assert_eq!(entries.keys().copied().collect::<Vec<_>>(), vec![d3]);
    assert_eq!(redis.dbsize(), 3 + 5 + 4);
}

// ---------------------------------------------------------------------------
// 13. Watermark
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermark_stops_at_first_gap() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    let root = scenario.root();
    let (d1, d2, d3) = (ago(4), ago(3), ago(2));
    scenario.spark(ORDERS_PATH, &dt(d1), &[orders_batch(&[1, 7], "w1")]);
    scenario.spark_unmarked(ORDERS_PATH, &dt(d2), &[orders_batch(&[2, 7], "w2")]);
    scenario.spark(ORDERS_PATH, &dt(d3), &[orders_batch(&[3], "w3")]);
    let engine = scenario.engine(&orders_toml("")).await;

    let s = run(&engine, today()).await;
    assert_eq!((s.exit_code, s.partitions_loaded), (0, 2), "{s:?}");
    assert_eq!(outcome(&s, "orders").watermark, Some(d1));
    assert_eq!(engine.ledger().watermark("orders").await.unwrap(), Some(d1));
    assert_eq!(redis.get(&watermark_key("orders")), Some(iso(d1)));
    assert_eq!(redis.get("ord:2"), None);

    write_success(root, &format!("{ORDERS_PATH}/{}", dt(d2)));
    let s = run(&engine, today()).await;
    assert_eq!((s.exit_code, s.partitions_loaded), (0, 1), "{s:?}");
    assert_eq!(outcome(&s, "orders").watermark, Some(d3));
    assert_eq!(redis.get(&watermark_key("orders")), Some(iso(d3)));
    assert_json_key(&redis, "ord", 2, "w2", exp30(d2));
    // d2 is newer than d1: its value of ord:7 wins over d1's even though loaded out of order.
    assert_json_key(&redis, "ord", 7, "w2", exp30(d2));
    assert_json_key(&redis, "ord", 3, "w3", exp30(d3));
}

// ---------------------------------------------------------------------------
// 14. Dry run
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    scenario.spark(ORDERS_PATH, &dt(ago(3)), &[orders_batch(&[1], "a")]);
    scenario.spark(ORDERS_PATH, &dt(ago(2)), &[orders_batch(&[2], "b")]);
    let engine = scenario.engine(&orders_toml("")).await;

    let s = run_opts(
        &engine,
        RunOptions {
            as_of: Some(today()),
            dry_run: true,
            ..RunOptions::default()
        },
    )
    .await;
    assert!(s.dry_run);
    assert_eq!(s.exit_code, 0, "{s:?}");
    assert_eq!((s.partitions_loaded, s.rows, s.keys), (0, 0, 0));
    assert_eq!(redis.dbsize(), 0);
    assert!(engine.ledger().entries("orders").await.unwrap().is_empty());
    assert_eq!(engine.ledger().watermark("orders").await.unwrap(), None);

    // A dry backfill with force writes nothing either.
    let s = run_opts(
        &engine,
        RunOptions {
            as_of: Some(today()),
            dry_run: true,
            backfill: Some(Backfill {
                from: ago(3),
                to: ago(2),
                force: true,
            }),
            ..RunOptions::default()
        },
    )
    .await;
    assert_eq!((s.exit_code, s.partitions_loaded), (0, 0));
    assert_eq!(redis.dbsize(), 0);

    // The same run for real loads both partitions.
    let s = run(&engine, today()).await;
    assert_eq!((s.exit_code, s.partitions_loaded), (0, 2));
    assert_eq!(redis.dbsize(), 2 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermark_stops_at_a_day_without_any_partition() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    // ago(5) and ago(4), no directory at all for ago(3), then ago(2) (the newest cold day).
    for (day, id) in [(5, 1), (4, 2), (2, 3)] {
        scenario.spark(ORDERS_PATH, &dt(ago(day)), &[orders_batch(&[id], "g")]);
    }
    let engine = scenario.engine(&orders_toml("")).await;
    let summary = run(&engine, today()).await;
    assert_eq!(
        (summary.exit_code, summary.partitions_loaded),
        (0, 3),
        "{summary:?}"
    );
    assert_eq!(outcome(&summary, "orders").watermark, Some(ago(4)));
    assert_eq!(
        engine.ledger().watermark("orders").await.unwrap(),
        Some(ago(4))
    );

    // The missing day arrives (late): once loaded, the watermark reaches the newest cold day.
    scenario.spark(ORDERS_PATH, &dt(ago(3)), &[orders_batch(&[4], "g")]);
    let summary = run(&engine, today()).await;
    assert_eq!(summary.partitions_loaded, 1);
    assert_eq!(outcome(&summary, "orders").watermark, Some(ago(2)));
}
