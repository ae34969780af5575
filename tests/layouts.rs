//! Changing a layout without a gap, end to end on a real Redis: a table loaded as `json`, a
//! `hash` layout added and backfilled while the old keeps loading nightly, both exact, verify
//! passes on both, `status` shows them ready, `retire` removes exactly the old layout's keys (a
//! table whose keys share the prefix survives) and its ledger; an interrupted retire resumes.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use coldsync::config::Config;
use coldsync::run::partition_expiry;
use common::*;
use serde_json::Value;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    event_field(v, key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("field {key:?} of {v} is not a string"))
}

fn u(v: &Value, key: &str) -> u64 {
    event_field(v, key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("field {key:?} of {v} is not an unsigned number"))
}

const OLD: &str = "[[tables]]\nname = \"orders\"\npath = \"orders\"\nkey = \"ord:{order_id}\"\n\n\
    [[tables]]\nname = \"items\"\npath = \"items\"\nkey = \"ord:items:{order_id}\"\n\n";
const ORDERS_OLD: &str =
    "[[tables]]\nname = \"orders\"\npath = \"orders\"\nkey = \"ord:{order_id}\"\n\n";
const NEW: &str =
    "[[tables]]\nname = \"orders\"\nlayout = \"v2\"\npath = \"orders\"\nkey = \"ord2:{order_id}\"\nvalue_format = \"hash\"\n\n";

/// The hash fields the `hash` layout writes for `orders_batch` row `id`: the JSON layout's
/// values as text.
fn orders_fields(id: i64, suffix: &str) -> BTreeMap<String, String> {
    let json: serde_json::Map<String, Value> =
        serde_json::from_str(&orders_json(id, suffix)).unwrap();
    json.into_iter()
        .map(|(k, v)| match v {
            Value::String(text) => (k, text),
            other => (k, other.to_string()),
        })
        .collect()
}

fn ids(range: std::ops::RangeInclusive<i64>, extra: &[i64]) -> Vec<i64> {
    range.chain(extra.iter().copied()).collect()
}

/// orders 11-19: 1..=5 (a); 11-20: 6..=8 and 1 (b); items 11-20: 1..=3.
fn first_days(ws: &CliWorkspace) {
    let mut fx = HiveTableFixture::new("orders");
    fx.spark_partition("dt=2026-11-19", &[orders_batch(&ids(1..=5, &[]), "a")])
        .spark_partition("dt=2026-11-20", &[orders_batch(&ids(6..=8, &[1]), "b")]);
    fx.write_local(&ws.root());
    let mut items = HiveTableFixture::new("items");
    items.spark_partition("dt=2026-11-20", &[orders_batch(&ids(1..=3, &[]), "i")]);
    items.write_local(&ws.root());
}

/// The status line of `table` (`layout`) in `status --json`.
fn status_of(ws: &CliWorkspace, table: &str, layout: &str) -> Value {
    let out = ws.cli(&["status", "--json"]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let all: Value = serde_json::from_str(&out.stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["table"] == table && s["layout"] == layout)
        .unwrap_or_else(|| panic!("no status of {table} ({layout}): {all}"))
        .clone()
}

#[test]
fn a_hash_layout_is_built_beside_the_json_one_verified_and_the_old_one_retired() {
    let ws = CliWorkspace::new();
    first_days(&ws);
    let redis = RedisServer::start();
    ws.write(&redis, OLD);
    ws.cli(&["run", "--as-of", "2026-11-22"]).assert_success();

    // The new layout beside the old: nothing of it yet, the old one caught up but not verified.
    ws.write(&redis, &format!("{OLD}{NEW}"));
    let v2 = status_of(&ws, "orders", "v2");
    assert_eq!(
        (v2["partitions_loaded"].as_u64(), v2["ready"].as_bool()),
        (Some(0), Some(false))
    );
    assert_eq!(v2["caught_up"], false);
    let old = status_of(&ws, "orders", "default");
    assert_eq!(
        (old["caught_up"].as_bool(), old["ready"].as_bool()),
        (Some(true), Some(false))
    );

    // Backfill only the new layout.
    let out = ws.cli(&[
        "backfill",
        "--table",
        "orders",
        "--layout",
        "v2",
        "--from",
        "2026-11-19",
        "--to",
        "2026-11-20",
        "--as-of",
        "2026-11-22",
    ]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let loaded = out.events_named("partition_loaded");
    let loaded: Vec<(&str, &str)> = loaded
        .iter()
        .map(|e| (s(e, "layout"), s(e, "date")))
        .collect();
    assert_eq!(loaded, [("v2", "2026-11-19"), ("v2", "2026-11-20")]);
    assert_eq!(
        redis.hgetall("coldsync:{orders@v2}:partitions").len(),
        2,
        "the new layout has its own ledger"
    );
    assert_eq!(
        redis.get("coldsync:{orders@v2}:watermark").as_deref(),
        Some("2026-11-20")
    );

    // Nightly: both layouts (and items) load the new day.
    let mut fx = HiveTableFixture::new("orders");
    fx.spark_partition("dt=2026-11-21", &[orders_batch(&ids(9..=10, &[2]), "c")]);
    fx.write_local(&ws.root());
    let mut items = HiveTableFixture::new("items");
    items.spark_partition("dt=2026-11-21", &[orders_batch(&ids(4..=4, &[]), "i")]);
    items.write_local(&ws.root());
    let out = ws.cli(&["run", "--as-of", "2026-11-23"]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let loaded: BTreeSet<(String, String, String)> = out
        .events_named("partition_loaded")
        .iter()
        .map(|e| {
            (
                s(e, "table").into(),
                s(e, "layout").into(),
                s(e, "date").into(),
            )
        })
        .collect();
    let day = "2026-11-21".to_string();
    assert_eq!(
        loaded,
        BTreeSet::from([
            ("items".into(), "default".into(), day.clone()),
            ("orders".into(), "default".into(), day.clone()),
            ("orders".into(), "v2".into(), day.clone()),
        ])
    );
    let finished: BTreeSet<(String, String)> = out
        .events_named("table_finished")
        .iter()
        .map(|e| (s(e, "table").into(), s(e, "layout").into()))
        .collect();
    assert_eq!(finished.len(), 3, "{finished:?}");

    // Both layouts exact: the newest partition of each key wins, with its expiry.
    let config = Config::parse(
        &ws.config_text(&redis, &format!("{OLD}{NEW}")),
        &HashMap::new(),
    )
    .unwrap();
    let suffix = |id: i64| match id {
        2 | 9 | 10 => ("c", "2026-11-21"),
        1 | 6..=8 => ("b", "2026-11-20"),
        _ => ("a", "2026-11-19"),
    };
    for id in 1..=10 {
        let (suffix, date) = suffix(id);
        let expiry = partition_expiry(&config.tables[0], d(date)).millis;
        assert_eq!(
            redis.get(&format!("ord:{id}")),
            Some(orders_json(id, suffix)),
            "{id}"
        );
        assert_eq!(redis.pexpiretime(&format!("ord:{id}")), expiry, "{id}");
        let fields: BTreeMap<String, String> =
            redis.hgetall(&format!("ord2:{id}")).into_iter().collect();
        assert_eq!(fields, orders_fields(id, suffix), "{id}");
        assert_eq!(redis.pexpiretime(&format!("ord2:{id}")), expiry, "{id}");
    }

    // Verify passes on both layouts (and items); status shows them ready.
    let out = ws.cli(&["verify", "--full", "--json"]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    let layouts: Vec<(&str, &str, u64, u64)> = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap(),
                t["layout"].as_str().unwrap(),
                t["matched"].as_u64().unwrap(),
                t["superseded"].as_u64().unwrap(),
            )
        })
        .collect();
    // 12 keys written per orders layout (5 + 4 + 3), 10 distinct: 2 superseded.
    assert_eq!(
        layouts,
        [
            ("orders", "default", 10, 2),
            ("items", "default", 4, 0),
            ("orders", "v2", 10, 2)
        ]
    );
    for layout in ["default", "v2"] {
        let status = status_of(&ws, "orders", layout);
        assert_eq!(status["ready"], true, "{status}");
        assert_eq!(status["watermark"], "2026-11-21");
        assert_eq!(status["verified"]["passed"], true);
        assert_eq!(status["verified"]["partitions"], 3);
    }

    // Retire: refused for a table's only layout, a dry run without --yes.
    let out = ws.cli(&["retire", "--table", "items", "--layout", "default", "--yes"]);
    assert_eq!(out.status_code, 2, "{}", out.dump());
    assert!(out.stderr.contains("only layout"), "{}", out.dump());
    let out = ws.cli(&["retire", "--table", "orders", "--layout", "default"]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert!(
        out.stdout
            .contains("would retire orders (default): 3 partitions"),
        "{}",
        out.stdout
    );
    assert_eq!(redis.keys("ord:*").len(), 14, "a dry run deletes nothing");

    let out = ws.cli(&[
        "retire", "--table", "orders", "--layout", "default", "--yes", "--json",
    ]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["keys_unlinked"], 10);
    assert_eq!(
        summary["keys_absent"], 2,
        "ord:1 and ord:2 were unlinked with 11-19"
    );
    assert_eq!(summary["partitions"], 3);
    let progress: Vec<(String, u64, u64)> = out
        .events_named("retire_progress")
        .iter()
        .map(|e| {
            (
                s(e, "date").to_string(),
                u(e, "keys_unlinked"),
                u(e, "partitions_left"),
            )
        })
        .collect();
    assert_eq!(
        progress,
        [
            ("2026-11-19".to_string(), 5, 2),
            ("2026-11-20".into(), 3, 1),
            ("2026-11-21".into(), 2, 0)
        ]
    );
    // Exactly the old keys are gone: items (same `ord:` prefix) and the new layout survive.
    let items_keys: BTreeSet<String> = (1..=4).map(|i| format!("ord:items:{i}")).collect();
    assert_eq!(redis.keys("ord:*"), items_keys);
    assert_eq!(redis.keys("ord2:*").len(), 10);
    for key in ["partitions", "watermark", "verified", "lease"] {
        assert_eq!(
            redis.key_type(&format!("coldsync:{{orders}}:{key}")),
            "none",
            "{key}"
        );
    }
    assert_eq!(redis.hgetall("coldsync:{orders@v2}:partitions").len(), 3);
    assert_eq!(redis.hgetall("coldsync:{items}:partitions").len(), 2);
}

/// Writes the config with `redis.batch_size = 10`.
fn write_batched(ws: &CliWorkspace, redis: &RedisServer, tables: &str) {
    let text = ws.config_text(redis, tables).replace(
        "retry_attempts = 1\n",
        "retry_attempts = 1\nbatch_size = 10\n",
    );
    std::fs::write(ws.config_path(), text).unwrap();
}

#[test]
fn an_interrupted_retire_goes_on_where_it_stopped() {
    let ws = CliWorkspace::new();
    let mut fx = HiveTableFixture::new("orders");
    fx.spark_partition("dt=2026-11-19", &[orders_batch(&ids(1..=10, &[]), "a")])
        .spark_partition("dt=2026-11-20", &[orders_batch(&ids(100..=399, &[]), "b")]);
    fx.write_local(&ws.root());
    let redis = RedisServer::start();
    write_batched(&ws, &redis, &format!("{ORDERS_OLD}{NEW}"));
    ws.cli(&["run", "--as-of", "2026-11-22"]).assert_success();
    assert_eq!(redis.keys("ord:*").len(), 310);

    // Slowly (20 keys a second, 10 per UNLINK): stopped by SIGTERM during 11-20.
    let slow = ORDERS_OLD.replace(
        "key = \"ord:{order_id}\"\n",
        "key = \"ord:{order_id}\"\nmax_keys_per_sec = 20\n",
    );
    write_batched(&ws, &redis, &format!("{slow}{NEW}"));
    let config = ws.config_path();
    let mut child = WatchedChild::spawn(
        "coldsync retire",
        Command::new(coldsync_bin())
            .args(["--config", config.to_str().unwrap(), "--log-format", "json"])
            .args([
                "retire", "--table", "orders", "--layout", "default", "--yes",
            ])
            .env("RUST_LOG", "info"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = child
            .next_line(deadline)
            .expect("retire prints retire_progress");
        if line.contains("\"retire_progress\"") {
            assert!(line.contains("2026-11-19"), "{line}");
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest = child.remaining_lines(deadline);
    let status = child.wait(deadline);
    assert_eq!(status.code(), Some(3), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("\"retire_failed\"") && l.contains("run retire again")),
        "{rest:?}"
    );
    // 11-19 retired and forgotten; 11-20 half way, still in the ledger; the lease released.
    let ledger = redis.hgetall("coldsync:{orders}:partitions");
    assert_eq!(ledger.keys().collect::<Vec<_>>(), ["2026-11-20"]);
    let left = redis.keys("ord:*").len();
    assert!(
        (1..300).contains(&left),
        "some of 11-20 unlinked, not all: {left} left"
    );
    assert_eq!(redis.key_type("coldsync:{orders}:lease"), "none");

    // Again, at full speed: it goes on with 11-20 only and finishes.
    write_batched(&ws, &redis, &format!("{ORDERS_OLD}{NEW}"));
    let out = ws.cli(&[
        "retire", "--table", "orders", "--layout", "default", "--yes", "--json",
    ]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let progress = out.events_named("retire_progress");
    assert_eq!(progress.len(), 1);
    assert_eq!(s(progress[0], "date"), "2026-11-20");
    assert_eq!(u(progress[0], "keys_unlinked") as usize, left);
    assert_eq!(u(progress[0], "keys_absent") as usize, 300 - left);
    assert!(
        redis.keys("ord:*").is_empty(),
        "every key of the old layout gone"
    );
    assert_eq!(redis.keys("ord2:*").len(), 310);
    assert_eq!(redis.key_type("coldsync:{orders}:partitions"), "none");
}

fn config_error(tables: &str) -> String {
    let text = format!(
        "[source]\nscheme = \"fs\"\nroot = \"/w\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n[defaults]\nretention_days = 30\n{tables}"
    );
    Config::parse(&text, &HashMap::new())
        .expect_err("config must be rejected")
        .to_string()
}

#[test]
fn layouts_are_validated_naming_the_option() {
    let twice = format!("{ORDERS_OLD}{ORDERS_OLD}");
    let err = config_error(&twice);
    assert!(
        err.contains("tables[1].name")
            && err.contains("duplicate table name \"orders\" with layout \"default\""),
        "{err}"
    );
    let same_keys = format!("{ORDERS_OLD}{}", NEW.replace("ord2:", "ord:"));
    let err = config_error(&same_keys);
    assert!(
        err.contains("tables[1] (orders).key")
            && err.contains("layout \"v2\" has the key template of layout \"default\""),
        "{err}"
    );
    let err = config_error(&NEW.replace("layout = \"v2\"", "layout = \"default\""));
    assert!(err.contains("tables[0] (orders).layout"), "{err}");
    let err = config_error(&NEW.replace("layout = \"v2\"", "layout = \"v 2\""));
    assert!(err.contains("tables[0] (orders).layout"), "{err}");
    let err = config_error(&format!("{ORDERS_OLD}verify_sample = -1\n"));
    assert!(err.contains("tables[0] (orders).verify_sample"), "{err}");
    // `layout` belongs to a table, never to [defaults].
    let text = format!(
        "[source]\nscheme = \"fs\"\nroot = \"/w\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n[defaults]\nretention_days = 30\nlayout = \"v2\"\n{ORDERS_OLD}"
    );
    assert!(Config::parse(&text, &HashMap::new()).is_err());
}

#[test]
fn the_example_configs_second_layout_parses() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/coldsync.example.toml"
    ))
    .unwrap();
    let example = text
        .split_once("# The same source table under a second layout")
        .unwrap()
        .1;
    let block: String = example
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.trim_start_matches("# ")))
        .collect();
    let config = Config::parse(&format!("{text}\n{block}"), &HashMap::new()).unwrap();
    let layouts: Vec<(String, String, u64)> = config
        .tables
        .iter()
        .map(|t| (t.name.clone(), t.ledger_id(), t.verify_sample))
        .collect();
    assert_eq!(
        layouts,
        [
            ("orders".into(), "orders".into(), 0),
            ("orders".into(), "orders@v2".into(), 100)
        ]
    );
}
