//! Hive directories registered in a real Hive Metastore (Hive 2.3 from PySpark's jars, started
//! by the test binary), loaded end to end by the `coldsync` binary into a real Redis:
//! - partitions at the table's paths, one at a custom location outside the table root, a day of
//!   `hour` sub-partitions; exact Redis contents (values and `PEXPIRETIME`), latest wins across
//!   dates; hot, expired and non-date partitions left alone; `plan` and `status` say
//!   `hive_metastore/hive`;
//! - a second run is a no-op: no partition loaded, no write event on a data key (keyspace
//!   notifications), no data-path command in `INFO commandstats`;
//! - a partition registered after the first run loads; a rewritten one (files replaced,
//!   parameters changed) reloads; the window moves with `--as-of`; a registered partition whose
//!   directory vanished is incomplete, never recorded empty;
//! - `load_table` reads an Iceberg table's location and parameters (and `format = "hive"`
//!   refuses it, naming the format to set);
//! - a metastore that is down, and a partition located outside the store, fail the table with a
//!   clear error (exit 3) naming the URI or the location, and nothing is recorded.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use chrono::NaiveDate;
use coldsync::config::Config;
use coldsync::run::partition_expiry;
use common::*;
use parquet::basic::Compression;
use serde_json::Value;

const AS_OF: &str = "2026-11-22";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn table_config(uri: &str, db: &str) -> String {
    format!(
        "[[tables]]\nname = \"orders\"\nkey = \"ord:{{order_id}}\"\ncatalog = \"hive_metastore\"\n\
         metastore_uris = [\"{uri}\"]\ndatabase = \"{db}\"\ntable = \"orders\"\n"
    )
}

/// `file:` URI of `rel` under the store root.
fn at(ws: &CliWorkspace, rel: &str) -> String {
    format!("file:{}/{rel}", ws.root().display())
}

/// Writes a Parquet file of `orders_batch(ids, suffix)` at `rel` under `root`.
fn parquet(root: &Path, rel: &str, ids: &[i64], suffix: &str) {
    write_file(
        root,
        rel,
        &parquet_bytes(&orders_batch(ids, suffix), 100, Compression::SNAPPY),
    );
}

fn u(v: &Value, key: &str) -> u64 {
    event_field(v, key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("field {key:?} of {v} is not an unsigned number"))
}

/// Calls of every command in `INFO commandstats`.
fn command_calls(redis: &RedisServer) -> BTreeMap<String, u64> {
    let info: String = redis.cmd("INFO", &["commandstats"]);
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// The write commands of the data path (`SET ... PXAT`, the version-guarded script, `RESTORE`
/// of hashes, `HSET`, expiries, deletes). The lease and the ledger use some of them too (on their
/// own keys), so their counts are compared only together with [`data_key_events`].
const DATA_WRITES: [&str; 5] = ["restore", "pexpireat", "eval", "unlink", "hset"];

fn data_write_calls(redis: &RedisServer) -> BTreeMap<String, u64> {
    command_calls(redis)
        .into_iter()
        .filter(|(name, _)| DATA_WRITES.contains(&name.as_str()))
        .collect()
}

/// The keyspace events (every write: `set`, `expire`, `del`, `restore`, `hset`, ...) on `ord:*`
/// keys while `during` runs.
fn data_key_events<T>(redis: &RedisServer, during: impl FnOnce() -> T) -> (T, Vec<String>) {
    let _: String = redis.cmd("CONFIG", &["SET", "notify-keyspace-events", "KA"]);
    let mut con = redis.connection();
    let mut pubsub = con.as_pubsub();
    pubsub.psubscribe("__keyspace@0__:ord:*").unwrap();
    let result = during();
    pubsub
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let mut events = Vec::new();
    while let Ok(message) = pubsub.get_message() {
        let op: String = message.get_payload().unwrap();
        events.push(format!("{} {op}", message.get_channel_name()));
    }
    (result, events)
}

/// Every `ord:*` key with its value and `PEXPIRETIME`.
fn contents(redis: &RedisServer) -> BTreeMap<String, (String, i64)> {
    redis
        .keys("ord:*")
        .into_iter()
        .map(|key| {
            let value = redis.get(&key).unwrap();
            let expiry = redis.pexpiretime(&key);
            (key, (value, expiry))
        })
        .collect()
}

/// What Redis must hold: for each id, the suffix and date of the partition it comes from.
fn expected(
    ws: &CliWorkspace,
    redis: &RedisServer,
    tables: &str,
    rows: &[(i64, &str, &str)],
) -> BTreeMap<String, (String, i64)> {
    let config = Config::parse(&ws.config_text(redis, tables), &HashMap::new()).unwrap();
    rows.iter()
        .map(|(id, suffix, date)| {
            (
                format!("ord:{id}"),
                (
                    orders_json(*id, suffix),
                    partition_expiry(&config.tables[0], d(date)).millis,
                ),
            )
        })
        .collect()
}

/// Partition parameters as a producer's DDL leaves them.
fn stats(files: &'static str, ddl: &'static str) -> [(&'static str, &'static str); 3] {
    [
        ("numFiles", files),
        ("totalSize", "1000"),
        ("transient_lastDdlTime", ddl),
    ]
}

fn loaded_dates(out: &CliOutput) -> Vec<String> {
    out.events_named("partition_loaded")
        .iter()
        .map(|e| text(e, "date").to_string())
        .collect()
}

#[test]
fn registered_partitions_load_exactly_rerun_is_a_noop_and_changes_reload() {
    let hms = hive_metastore();
    let ws = CliWorkspace::new();
    let root = ws.root();
    let redis = RedisServer::start();
    let db = "sales_e2e";

    // The producer: files first, then the DDL that registers them.
    parquet(&root, "landing/orders-1118/part-0.parquet", &[1, 2, 3], "a");
    parquet(
        &root,
        "orders/dt=2026-11-19/hour=00/part-0.parquet",
        &[4, 5, 6],
        "b",
    );
    parquet(
        &root,
        "orders/dt=2026-11-19/hour=01/part-0.parquet",
        &[7, 8, 1],
        "c",
    );
    write_file(&root, "orders/dt=2026-11-19/hour=01/_SUCCESS", b"");
    write_file(
        &root,
        "orders/dt=2026-11-19/hour=01/.part-0.parquet.crc",
        b"crc",
    );
    parquet(
        &root,
        "orders/dt=2026-11-20/hour=00/part-0.parquet",
        &[9, 10],
        "d",
    );
    parquet(
        &root,
        "orders/dt=2026-11-21/hour=00/part-0.parquet",
        &[11],
        "hot",
    );
    parquet(
        &root,
        "orders/dt=2026-10-01/hour=00/part-0.parquet",
        &[12],
        "old",
    );
    parquet(
        &root,
        "orders/dt=__HIVE_DEFAULT_PARTITION__/hour=00/part-0.parquet",
        &[13],
        "null",
    );
    let mut ops = vec![
        serde_json::json!({"op": "create_database", "db": db, "location": at(&ws, "sales_e2e.db")}),
        create_table_op(db, "orders", &at(&ws, "orders"), &["dt", "hour"], &[]),
        add_partition_op(
            db,
            "orders",
            &["2026-11-18", "00"],
            &at(&ws, "landing/orders-1118"),
            &stats("1", "1795000000"),
        ),
    ];
    for (dt, hour) in [
        ("2026-11-19", "00"),
        ("2026-11-19", "01"),
        ("2026-11-20", "00"),
        ("2026-11-21", "00"),
        ("2026-10-01", "00"),
        ("__HIVE_DEFAULT_PARTITION__", "00"),
    ] {
        let location = at(&ws, &format!("orders/dt={dt}/hour={hour}"));
        ops.push(add_partition_op(
            db,
            "orders",
            &[dt, hour],
            &location,
            &stats("1", "1795000000"),
        ));
    }
    hms.apply(&ops);

    let tables = table_config(&hms.uri(), db);
    ws.write(&redis, &tables);

    let plan = ws.cli(&["plan", "--as-of", AS_OF]);
    plan.assert_success();
    assert!(
        plan.stdout
            .contains("table orders from hive_metastore/hive (today 2026-11-22)"),
        "{}",
        plan.dump()
    );

    let first = ws.cli(&["run", "--as-of", AS_OF]);
    first.assert_success();
    assert_eq!(
        loaded_dates(&first),
        ["2026-11-18", "2026-11-19", "2026-11-20"],
        "{}",
        first.dump()
    );
    let finished = first.last_event("run_finished").expect("run_finished");
    assert_eq!(u(finished, "partitions_loaded"), 3, "{finished}");
    // Id 1 is in 11-18 and 11-19: the newer date wins. 11-21 is hot, 10-01 expired,
    // __HIVE_DEFAULT_PARTITION__ is not a date.
    let mut rows = vec![
        (1, "c", "2026-11-19"),
        (2, "a", "2026-11-18"),
        (3, "a", "2026-11-18"),
    ];
    rows.extend([4, 5, 6].map(|i| (i, "b", "2026-11-19")));
    rows.extend([7, 8].map(|i| (i, "c", "2026-11-19")));
    rows.extend([9, 10].map(|i| (i, "d", "2026-11-20")));
    assert_eq!(contents(&redis), expected(&ws, &redis, &tables, &rows));
    let ledger = redis.hgetall("coldsync:{orders}:partitions");
    assert_eq!(
        ledger.keys().map(String::as_str).collect::<Vec<_>>(),
        ["2026-11-18", "2026-11-19", "2026-11-20"]
    );
    let status = ws.cli(&["status"]);
    status.assert_success();
    assert!(
        status
            .stdout
            .contains("orders (default): hive_metastore/hive: 3 partitions loaded"),
        "{}",
        status.dump()
    );

    // Nothing changed: nothing loaded, no data key written.
    let writes_before = data_write_calls(&redis);
    let (second, events) = data_key_events(&redis, || ws.cli(&["run", "--as-of", AS_OF]));
    second.assert_success();
    assert_eq!(events, Vec::<String>::new(), "{}", second.dump());
    let finished = second.last_event("run_finished").expect("run_finished");
    assert_eq!(u(finished, "partitions_loaded"), 0, "{}", second.dump());
    assert_eq!(data_write_calls(&redis), writes_before, "{}", second.dump());
    assert_eq!(redis.hgetall("coldsync:{orders}:partitions"), ledger);
    assert_eq!(contents(&redis), expected(&ws, &redis, &tables, &rows));

    // A day registered after the first run (older: its id 1 stays 11-19's), and 11-20
    // rewritten by its producer: new files, new parameters.
    parquet(
        &root,
        "orders/dt=2026-11-16/hour=00/part-0.parquet",
        &[14, 1],
        "e",
    );
    std::fs::remove_file(root.join("orders/dt=2026-11-20/hour=00/part-0.parquet")).unwrap();
    parquet(
        &root,
        "orders/dt=2026-11-20/hour=00/part-1.parquet",
        &[9, 15],
        "f",
    );
    hms.apply(&[
        add_partition_op(db, "orders", &["2026-11-16", "00"], &at(&ws, "orders/dt=2026-11-16/hour=00"), &stats("1", "1795100000")),
        serde_json::json!({
            "op": "alter_partition", "db": db, "table": "orders", "values": ["2026-11-20", "00"],
            "parameters": {"numFiles": "1", "totalSize": "2000", "transient_lastDdlTime": "1795200000"},
        }),
    ]);
    let (third, events) = data_key_events(&redis, || ws.cli(&["run", "--as-of", AS_OF]));
    third.assert_success();
    // The watch sees writes when there are some (so its silence above means something).
    assert!(
        events.contains(&"__keyspace@0__:ord:15 set".to_string()),
        "{events:?}"
    );
    assert_eq!(
        loaded_dates(&third),
        ["2026-11-16", "2026-11-20"],
        "{}",
        third.dump()
    );
    rows.push((14, "e", "2026-11-16"));
    rows.retain(|(id, _, _)| *id != 9);
    rows.extend([(9, "f", "2026-11-20"), (15, "f", "2026-11-20")]);
    // Id 10 left 11-20's files: it keeps the value it had (a key removed from a changed
    // partition is not deleted).
    assert_eq!(contents(&redis), expected(&ws, &redis, &tables, &rows));

    // A day later 11-21 is cold and loads; 11-16 is still in the window.
    let fourth = ws.cli(&["run", "--as-of", "2026-11-23"]);
    fourth.assert_success();
    assert_eq!(loaded_dates(&fourth), ["2026-11-21"], "{}", fourth.dump());
    rows.push((11, "hot", "2026-11-21"));
    assert_eq!(contents(&redis), expected(&ws, &redis, &tables, &rows));

    // 11-18's directory vanishes while it stays registered: incomplete, never recorded empty;
    // its keys and ledger entry stay as they were.
    let ledger = redis.hgetall("coldsync:{orders}:partitions");
    std::fs::remove_dir_all(root.join("landing/orders-1118")).unwrap();
    let fifth = ws.cli(&["run", "--as-of", "2026-11-23"]);
    fifth.assert_success();
    assert_eq!(
        loaded_dates(&fifth),
        Vec::<String>::new(),
        "{}",
        fifth.dump()
    );
    let incomplete = fifth
        .event("partition_incomplete")
        .unwrap_or_else(|| panic!("no partition_incomplete: {}", fifth.dump()));
    assert_eq!(
        (text(incomplete, "date"), text(incomplete, "reason")),
        ("2026-11-18", "no data files")
    );
    assert_eq!(redis.hgetall("coldsync:{orders}:partitions"), ledger);
    assert_eq!(contents(&redis), expected(&ws, &redis, &tables, &rows));
}

#[test]
fn load_table_reads_what_iceberg_and_delta_tables_registered_in_the_metastore_need() {
    let hms = hive_metastore();
    let ws = CliWorkspace::new();
    let redis = RedisServer::start();
    let db = "sales_iceberg";
    let metadata = at(&ws, "events/metadata/00001-abc.metadata.json");
    hms.apply(&[
        serde_json::json!({"op": "create_database", "db": db, "location": at(&ws, "iceberg.db")}),
        create_table_op(
            db,
            "orders",
            &at(&ws, "events"),
            &[],
            &[("table_type", "ICEBERG"), ("metadata_location", &metadata)],
        ),
    ]);
    let config_text = ws.config_text(&redis, &table_config(&hms.uri(), db));
    let config = Config::parse(&config_text, &HashMap::new()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let table = runtime
        .block_on(coldsync::catalog::hive_metastore::load_table(
            &config.tables[0],
        ))
        .unwrap();
    assert_eq!(table.location, at(&ws, "events"));
    assert_eq!(table.parameters["table_type"], "ICEBERG");
    assert_eq!(table.parameters["metadata_location"], metadata);
    assert!(table.partition_keys.is_empty());
    // As Hive directories it is refused, saying what to set.
    let out = ws
        .write(&redis, &table_config(&hms.uri(), db))
        .cli(&["run", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let error = text(out.event("table_failed").unwrap(), "error").to_string();
    assert!(
        error.contains("sales_iceberg.orders is an Iceberg table: set format = \"iceberg\""),
        "{error}"
    );
}

#[test]
fn a_metastore_that_is_down_fails_the_table_naming_it_and_records_nothing() {
    let ws = CliWorkspace::new();
    let redis = RedisServer::start();
    let uri = format!("thrift://127.0.0.1:{}", free_port());
    ws.write(&redis, &table_config(&uri, "sales"));
    let out = ws.cli(&["run", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let failed = out.event("table_failed").expect("table_failed");
    let error = text(failed, "error");
    assert!(
        error.contains(&format!(
            "the hive_metastore catalog at {uri}: cannot connect"
        )),
        "{error}"
    );
    assert!(redis.keys("*").iter().all(|k| !k.starts_with("ord:")));
    assert!(redis.hgetall("coldsync:{orders}:partitions").is_empty());
}

#[test]
fn a_partition_located_outside_the_store_is_refused_naming_it() {
    let hms = hive_metastore();
    let ws = CliWorkspace::new();
    let redis = RedisServer::start();
    let db = "sales_outside";
    let outside = ws.root().parent().unwrap().join("outside");
    parquet(&outside, "dt=2026-11-20/part-0.parquet", &[1], "x");
    parquet(&ws.root(), "orders/dt=2026-11-19/part-0.parquet", &[2], "y");
    let location = format!("file:{}/dt=2026-11-20", outside.display());
    hms.apply(&[
        serde_json::json!({"op": "create_database", "db": db, "location": at(&ws, "outside.db")}),
        create_table_op(db, "orders", &at(&ws, "orders"), &["dt"], &[]),
        add_partition_op(
            db,
            "orders",
            &["2026-11-19"],
            &at(&ws, "orders/dt=2026-11-19"),
            &[],
        ),
        add_partition_op(db, "orders", &["2026-11-20"], &location, &[]),
    ]);
    ws.write(&redis, &table_config(&hms.uri(), db));
    let out = ws.cli(&["run", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let error = text(out.event("table_failed").expect("table_failed"), "error").to_string();
    assert!(
        error.contains(&format!(
            "location {location} is not in the configured store"
        )),
        "{error}"
    );
    assert!(error.contains("(partition dt=2026-11-20)"), "{error}");
    assert_eq!(
        redis.keys("ord:*"),
        BTreeSet::new(),
        "nothing of the table is loaded"
    );
    assert!(redis.hgetall("coldsync:{orders}:partitions").is_empty());
}
