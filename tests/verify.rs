//! `coldsync verify` and `verify_sample` end to end, on a real Redis: a clean load verifies with
//! zero mismatches in every value format; values corrupted, keys deleted and expiries changed
//! behind coldsync's back are each found and counted exactly (exit 6); a key a newer partition
//! wrote counts as superseded; `verify_sample` refuses to record a partition a second writer
//! overwrote.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use chrono::NaiveDate;
use coldsync::config::Config;
use coldsync::run::partition_expiry;
use common::*;
use serde_json::Value;

const AS_OF: &str = "2026-11-22";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn u(v: &Value, key: &str) -> u64 {
    event_field(v, key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("field {key:?} of {v} is not an unsigned number"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    event_field(v, key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("field {key:?} of {v} is not a string"))
}

const ORDERS: &str = "[[tables]]\nname = \"orders\"\npath = \"orders\"\nkey = \"ord:{order_id}\"\n";

/// The counts of a `--json` partition (or summary) object, in report order.
fn counts(v: &Value) -> [u64; 6] {
    [
        "sampled",
        "matched",
        "missing",
        "different",
        "superseded",
        "wrong_expiry",
    ]
    .map(|name| u(v, name))
}

/// `text` as examples show it: at most 80 characters, `...` marking a cut.
fn short(text: &str) -> String {
    if text.chars().count() <= 80 {
        return text.to_string();
    }
    format!("{}...", text.chars().take(77).collect::<String>())
}

fn verify_json(ws: &CliWorkspace, args: &[&str]) -> (i32, Value, CliOutput) {
    let mut full = vec!["verify", "--json"];
    full.extend_from_slice(args);
    let out = ws.cli(&full);
    let json: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("verify --json prints JSON ({e}): {}", out.dump()));
    (out.status_code, json, out)
}

fn expiry(ws: &CliWorkspace, redis: &RedisServer, tables: &str, date: &str) -> i64 {
    let config = Config::parse(&ws.config_text(redis, tables), &HashMap::new()).unwrap();
    partition_expiry(&config.tables[0], d(date)).millis
}

/// 11-19: ids 1..=10 (suffix a); 11-20: ids 11..=20 and id 1 again (suffix b), so key 1
/// belongs to 11-20 (latest wins) and counts as superseded when 11-19 is verified.
fn two_days(ws: &CliWorkspace) {
    let mut fx = HiveTableFixture::new("orders");
    fx.spark_partition(
        "dt=2026-11-19",
        &[orders_batch(&(1..=10).collect::<Vec<_>>(), "a")],
    )
    .spark_partition(
        "dt=2026-11-20",
        &[orders_batch(&(11..=20).chain([1]).collect::<Vec<_>>(), "b")],
    );
    fx.write_local(&ws.root());
}

#[test]
fn verify_counts_each_corruption_exactly_and_exits_6() {
    let ws = CliWorkspace::new();
    two_days(&ws);
    let redis = RedisServer::start();
    ws.write(&redis, ORDERS);
    ws.cli(&["run", "--as-of", AS_OF]).assert_success();

    // Clean: every key matches, key 1 of 11-19 is superseded by 11-20.
    let (code, json, out) = verify_json(&ws, &["--full"]);
    assert_eq!(code, 0, "{}", out.dump());
    let parts = json["tables"][0]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{json}");
    assert_eq!(parts[0]["date"], "2026-11-19");
    assert_eq!(counts(&parts[0]), [10, 9, 0, 0, 1, 0]);
    assert_eq!(counts(&parts[1]), [11, 11, 0, 0, 0, 0]);
    assert_eq!(counts(&json), [21, 20, 0, 0, 1, 0]);
    let superseded = &parts[0]["examples"][0];
    assert_eq!(superseded["kind"], "superseded");
    assert_eq!(superseded["key"], "ord:1");
    assert_eq!(superseded["expected"], short(&orders_json(1, "a")));
    assert_eq!(superseded["found"], short(&orders_json(1, "b")));
    let finished = out.event("verify_finished").expect("verify_finished");
    assert_eq!(u(finished, "partitions"), 2);
    assert_eq!(u(finished, "matched"), 20);
    assert_eq!(u(finished, "superseded"), 1);
    assert_eq!(u(finished, "missing"), 0);
    assert_eq!(out.events_named("verify_partition").len(), 2);
    assert!(
        out.events_named("verify_mismatch").is_empty(),
        "{}",
        out.dump()
    );

    // Behind coldsync's back: a value corrupted (its expiry kept), a key deleted, an expiry
    // moved, in 11-19; a value corrupted in 11-20.
    let exp19 = expiry(&ws, &redis, ORDERS, "2026-11-19");
    let _: String = redis.cmd("SET", &["ord:2", "garbage", "KEEPTTL"]);
    let _: i64 = redis.cmd("DEL", &["ord:3"]);
    let _: i64 = redis.cmd("PEXPIREAT", &["ord:4", &(exp19 - 60_000).to_string()]);
    let _: String = redis.cmd("SET", &["ord:12", "{\"x\":1}", "KEEPTTL"]);

    let (code, json, out) = verify_json(&ws, &["--full"]);
    assert_eq!(code, 6, "{}", out.dump());
    let parts = json["tables"][0]["partitions"].as_array().unwrap();
    assert_eq!(counts(&parts[0]), [10, 6, 1, 1, 1, 1]);
    assert_eq!(counts(&parts[1]), [11, 10, 0, 1, 0, 0]);
    assert_eq!(counts(&json), [21, 16, 1, 2, 1, 1]);
    let example = |part: &Value, kind: &str| -> Value {
        part["examples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} example in {part}"))
            .clone()
    };
    let different = example(&parts[0], "different");
    assert_eq!(different["key"], "ord:2");
    assert_eq!(different["expected"], short(&orders_json(2, "a")));
    assert_eq!(different["found"], "garbage");
    assert_eq!(different["found_expiry_ms"], exp19);
    let missing = example(&parts[0], "missing");
    assert_eq!(missing["key"], "ord:3");
    assert_eq!(missing["found"], "(no key)");
    let wrong = example(&parts[0], "wrong_expiry");
    assert_eq!(wrong["key"], "ord:4");
    assert_eq!(wrong["expected_expiry_ms"], exp19);
    assert_eq!(wrong["found_expiry_ms"], exp19 - 60_000);
    assert_eq!(example(&parts[1], "different")["key"], "ord:12");
    let mismatches = out.events_named("verify_mismatch");
    let keys: Vec<&str> = mismatches.iter().map(|e| s(e, "key")).collect();
    assert_eq!(
        keys,
        ["ord:2", "ord:3", "ord:4", "ord:12"],
        "{}",
        out.dump()
    );
    let finished = out.event("verify_finished").unwrap();
    assert_eq!(
        ["missing", "different", "wrong_expiry", "superseded"].map(|f| u(finished, f)),
        [1, 2, 1, 1]
    );
    let partition = out.events_named("verify_partition")[0];
    assert_eq!(s(partition, "date"), "2026-11-19");
    assert_eq!(s(partition, "layout"), "default");
    assert_eq!(u(partition, "missing"), 1);

    // One date, and a sample: only that partition, exactly `--sample` keys, the same ones on
    // every run (the seed is logged).
    let (code, json, out) = verify_json(&ws, &["--date", "2026-11-20", "--sample", "4"]);
    assert_eq!(
        code,
        0,
        "ord:12 is not among the 4 sampled keys: {}",
        out.dump()
    );
    let parts = json["tables"][0]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0]["date"], "2026-11-20");
    assert_eq!(parts[0]["sampled"], 4);
    let seed = parts[0]["seed"].clone();
    let (_, again, _) = verify_json(&ws, &["--date", "2026-11-20", "--sample", "4"]);
    assert_eq!(again["tables"][0]["partitions"][0]["seed"], seed);
    assert_eq!(
        u(out.event("verify_partition").unwrap(), "seed"),
        seed.as_u64().unwrap()
    );

    // Text output names the partition and the counts.
    let text = ws.cli(&["verify", "--full", "--date", "2026-11-19"]);
    assert_eq!(text.status_code, 6, "{}", text.dump());
    assert!(
        text.stdout.contains("orders (default) 2026-11-19: 10 sampled, 6 matched, 1 missing, 1 different, 1 superseded, 1 wrong_expiry"),
        "{}",
        text.stdout
    );
    // The last verify is recorded beside the ledger.
    let verified = redis.hgetall("coldsync:{orders}:verified");
    assert_eq!(verified["passed"], "false");
    assert_eq!(verified["mismatched"], "3");
    assert_eq!(verified["from"], "2026-11-19");
}

/// Id 7 with every value column null.
fn null_row() -> RecordBatch {
    RecordBatch::try_new(
        orders_schema(),
        vec![
            Arc::new(Int64Array::from(vec![7])) as ArrayRef,
            Arc::new(Int64Array::from(vec![None::<i64>])),
            Arc::new(
                Decimal128Array::from(vec![None::<i128>])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(StringArray::from(vec![None::<&str>])),
            Arc::new(TimestampMillisecondArray::from(vec![None::<i64>])),
        ],
    )
    .unwrap()
}

#[test]
fn a_clean_load_verifies_with_zero_mismatches_in_every_value_format() {
    let ws = CliWorkspace::new();
    let mut fx = HiveTableFixture::new("orders");
    fx.spark_partition(
        "dt=2026-11-20",
        &[orders_batch(&[1, 2, 3, 4, 5, 6], "a"), null_row()],
    );
    fx.write_local(&ws.root());
    let redis = RedisServer::start();
    let tables = "[[tables]]\nname = \"json\"\npath = \"orders\"\nkey = \"j:{order_id}\"\n\n\
        [[tables]]\nname = \"hash\"\npath = \"orders\"\nkey = \"h:{order_id}\"\nvalue_format = \"hash\"\n\n\
        [[tables]]\nname = \"column\"\npath = \"orders\"\nkey = \"c:{order_id}\"\nvalue_format = \"column\"\nvalue_column = \"status\"\n\n\
        [[tables]]\nname = \"delimited\"\npath = \"orders\"\nkey = \"d:{order_id}\"\nvalue_format = \"delimited\"\nseparator = \"|\"\n\n\
        [[tables]]\nname = \"epochs\"\npath = \"orders\"\nkey = \"e:{order_id}\"\ntimestamp_encoding = \"epoch_millis\"\n";
    ws.write(&redis, tables);
    ws.cli(&["run", "--as-of", AS_OF]).assert_success();
    // The all-null row: a hash key deleted (Redis has no empty hash), an empty column value.
    assert_eq!(redis.key_type("h:7"), "none");
    assert_eq!(redis.get("c:7").as_deref(), Some(""));
    assert_eq!(redis.get("d:7").as_deref(), Some("|||"));

    let (code, json, out) = verify_json(&ws, &["--full"]);
    assert_eq!(code, 0, "{}", out.dump());
    let tables = json["tables"].as_array().unwrap();
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["json", "hash", "column", "delimited", "epochs"]);
    for table in tables {
        // Seven keys each: the deleted hash key is expected missing, so it matches too.
        assert_eq!(counts(table), [7, 7, 0, 0, 0, 0], "{table}");
    }

    // A stale extra field in a hash is a difference.
    let _: i64 = redis.cmd("HSET", &["h:2", "stale", "x"]);
    let (code, json, out) = verify_json(&ws, &["--table", "hash", "--full"]);
    assert_eq!(code, 6, "{}", out.dump());
    assert_eq!(counts(&json), [7, 6, 0, 1, 0, 0]);
    let example = &json["tables"][0]["partitions"][0]["examples"][0];
    assert_eq!(example["key"], "h:2");
    assert!(
        example["found"].as_str().unwrap().contains("stale=x"),
        "{example}"
    );
    // A hash where the load writes a string is a difference too.
    let _: i64 = redis.cmd("DEL", &["j:3"]);
    let _: i64 = redis.cmd("HSET", &["j:3", "a", "1"]);
    let (code, json, _) = verify_json(&ws, &["--table", "json", "--full"]);
    assert_eq!(code, 6);
    assert_eq!(counts(&json), [7, 6, 0, 1, 0, 0]);
}

#[test]
fn verify_sample_refuses_to_record_a_partition_a_second_writer_overwrote() {
    let ws = CliWorkspace::new();
    let mut fx = HiveTableFixture::new("orders");
    fx.spark_partition(
        "dt=2026-11-20",
        &[orders_batch(&(1..=200).collect::<Vec<_>>(), "a")],
    );
    fx.write_local(&ws.root());
    let redis = RedisServer::start();
    let table = format!("{ORDERS}verify_sample = 1000\n");
    ws.write(&redis, &table);

    // A second writer keeps overwriting ord:1 while the load runs: what the load wrote is not
    // what readers see by the time the partition would be recorded.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut conn = redis.connection();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _: () = redis::cmd("SET")
                    .arg("ord:1")
                    .arg("second writer")
                    .query(&mut conn)
                    .unwrap();
            }
        })
    };
    let out = ws.cli(&["run", "--as-of", AS_OF]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let failed = out.event("partition_failed").expect("partition_failed");
    assert_eq!(s(failed, "date"), "2026-11-20");
    let error = s(failed, "error");
    assert!(
        error.contains("verify_sample: 1 of 200 sampled keys do not match")
            && error.contains("different ord:1")
            && error.contains("second writer"),
        "{error}"
    );
    let checked = out.event("verify_partition").expect("verify_partition");
    assert_eq!(u(checked, "sampled"), 200);
    assert_eq!(u(checked, "different"), 1);
    assert_eq!(event_field(checked, "after_load"), Some(&Value::Bool(true)));
    assert!(
        redis.hgetall("coldsync:{orders}:partitions").is_empty(),
        "not recorded"
    );

    // Without the second writer the next run loads it again, verifies and records it.
    let out = ws.cli(&["run", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let checked = out.event("verify_partition").expect("verify_partition");
    assert_eq!(u(checked, "matched"), 200);
    assert_eq!(u(checked, "different"), 0);
    assert!(redis
        .hgetall("coldsync:{orders}:partitions")
        .contains_key("2026-11-20"));
    assert_eq!(redis.get("ord:1"), Some(orders_json(1, "a")));
}
