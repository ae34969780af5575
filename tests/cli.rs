//! The `coldsync` binary end to end: exit codes, JSON log events on stderr, config errors naming
//! the option, `check`, `plan --json`, `status --json`, `backfill`, secrets kept out of output,
//! and `--help` of every subcommand.

mod common;
use common::orders_json as order_json;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use coldsync::config::Config;
use coldsync::run::partition_expiry;
use common::*;
use serde_json::{json, Value};
use tempfile::TempDir;

const AS_OF: &str = "2026-11-22";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

const ORDERS_TABLE: &str = r#"[[tables]]
name = "orders"
path = "orders"
key = "ord:{order_id}"
"#;

/// A temp dir holding `warehouse/` (the fs source root) and `coldsync.toml`.
struct Workspace {
    dir: TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        Workspace {
            dir: tempfile::Builder::new()
                .prefix("coldsync-cli-")
                .tempdir()
                .unwrap(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("coldsync.toml")
    }

    /// Config text with an fs source at `warehouse/`, the given Redis URL and tables.
    fn config_text(&self, redis_url: &str, tables: &str) -> String {
        format!(
            r#"[source]
scheme = "fs"
root = "{root}"

[redis]
url = "{redis_url}"
timeout_secs = 3
retry_attempts = 1

[defaults]
retention_days = 30

{tables}"#,
            root = self.root().display()
        )
    }

    fn write_config(&self, text: &str) -> &Self {
        std::fs::write(self.config_path(), text).unwrap();
        self
    }

    fn write(&self, redis_url: &str, tables: &str) -> &Self {
        self.write_config(&self.config_text(redis_url, tables))
    }

    fn cli(&self, args: &[&str]) -> CliOutput {
        let config = self.config_path();
        let mut full: Vec<&str> =
            vec!["--config", config.to_str().unwrap(), "--log-format", "json"];
        full.extend_from_slice(args);
        run_cli(&full, &[("RUST_LOG", "info")])
    }
}

fn redis_url(redis: &RedisServer) -> String {
    format!("redis://127.0.0.1:{}/0", redis.port)
}

/// 11-19: ids 1,2,3 and 4 (two files); 11-20: id 5 (one file); 11-21: hot (id 6).
fn small_table() -> HiveTableFixture {
    let mut fx = HiveTableFixture::new("orders");
    fx.spark_partition(
        "dt=2026-11-19",
        &[orders_batch(&[1, 2, 3], "a"), orders_batch(&[4], "a")],
    )
    .spark_partition("dt=2026-11-20", &[orders_batch(&[5], "b")])
    .spark_partition("dt=2026-11-21", &[orders_batch(&[6], "c")]);
    fx
}

fn u(v: &Value, key: &str) -> u64 {
    field(v, key)
        .as_u64()
        .unwrap_or_else(|| panic!("field {key:?} of {v} is not an unsigned number"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    field(v, key)
        .as_str()
        .unwrap_or_else(|| panic!("field {key:?} of {v} is not a string"))
}

fn ledger(redis: &RedisServer, table: &str) -> BTreeMap<String, Value> {
    redis
        .hgetall(&format!("coldsync:{{{table}}}:partitions"))
        .into_iter()
        .map(|(k, v)| (k, serde_json::from_str(&v).unwrap()))
        .collect()
}

fn assert_all_stderr_json(out: &CliOutput) {
    for line in out.stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}\n{}", out.dump()));
        assert!(v.is_object(), "{line}");
    }
}

#[test]
fn run_logs_events_and_loads_exact_values() {
    let ws = Workspace::new();
    let fx = small_table();
    fx.write_local(&ws.root());
    let redis = RedisServer::start();
    ws.write(&redis_url(&redis), ORDERS_TABLE);

    let out = ws.cli(&["run", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert_all_stderr_json(&out);
    assert_eq!(out.stdout, "", "logs go to stderr only");
    assert_eq!(out.events_named("run_started").len(), 1, "{}", out.dump());
    let started = out.event("run_started").unwrap();
    assert_eq!(s(started, "redis"), redis_url(&redis));
    assert_eq!(u(started, "tables"), 1);

    let loaded = out.events_named("partition_loaded");
    assert_eq!(loaded.len(), 2, "{}", out.dump());
    let b19 = fx.data_bytes_under("orders/dt=2026-11-19/");
    let b20 = fx.data_bytes_under("orders/dt=2026-11-20/");
    let expect = [("2026-11-19", 2, 4, 4, b19), ("2026-11-20", 1, 1, 1, b20)];
    for (ev, (date, files, rows, keys, bytes)) in loaded.iter().zip(expect) {
        assert_eq!(s(ev, "table"), "orders");
        assert_eq!(s(ev, "date"), date);
        assert_eq!(u(ev, "files"), files, "{ev}");
        assert_eq!(u(ev, "rows"), rows, "{ev}");
        assert_eq!(u(ev, "keys"), keys, "{ev}");
        assert_eq!(u(ev, "skipped_null_keys"), 0, "{ev}");
        assert_eq!(u(ev, "bytes"), bytes, "{ev}");
        u(ev, "duration_ms");
    }
    assert!(out.events_named("partition_failed").is_empty());
    assert!(out.events_named("partition_late").is_empty());

    let finished = out.events_named("run_finished");
    assert_eq!(finished.len(), 1, "{}", out.dump());
    let fin = finished[0];
    assert_eq!(field(fin, "exit_code"), &json!(0));
    assert_eq!(u(fin, "partitions_loaded"), 2);
    assert_eq!(u(fin, "partitions_failed"), 0);
    assert_eq!(u(fin, "partitions_late"), 0);
    assert_eq!(u(fin, "rows"), 5);
    assert_eq!(u(fin, "keys"), 5);
    assert_eq!(u(fin, "skipped_null_keys"), 0);
    assert_eq!(u(fin, "bytes"), b19 + b20);
    assert_eq!(s(fin, "run_id"), s(started, "run_id"));
    assert_eq!(
        out.event_names().last().copied(),
        Some("run_finished"),
        "run_finished is the last event"
    );

    // What the run wrote.
    let config = Config::parse(
        &ws.config_text(&redis_url(&redis), ORDERS_TABLE),
        &HashMap::new(),
    )
    .unwrap();
    let table = &config.tables[0];
    let exp19 = partition_expiry(table, d("2026-11-19")).millis;
    let exp20 = partition_expiry(table, d("2026-11-20")).millis;
    for (id, suffix, exp) in [
        (1, "a", exp19),
        (2, "a", exp19),
        (3, "a", exp19),
        (4, "a", exp19),
        (5, "b", exp20),
    ] {
        let key = format!("ord:{id}");
        assert_eq!(redis.get(&key), Some(order_json(id, suffix)), "{key}");
        assert_eq!(redis.pexpiretime(&key), exp, "{key}");
    }
    assert_eq!(redis.get("ord:6"), None, "hot partition not loaded");
    assert_eq!(redis.dbsize(), 7);
    let entries = ledger(&redis, "orders");
    assert_eq!(
        entries.keys().cloned().collect::<Vec<_>>(),
        vec!["2026-11-19".to_string(), "2026-11-20".to_string()]
    );
    let e19 = &entries["2026-11-19"];
    assert_eq!(e19["rows"], json!(4));
    assert_eq!(e19["keys"], json!(4));
    assert_eq!(e19["files"], json!(2));
    assert_eq!(e19["bytes"], json!(b19));
    assert_eq!(e19["expires_at_ms"], json!(exp19));
    assert_eq!(e19["run_id"], json!(s(started, "run_id")));
    assert_eq!(entries["2026-11-20"]["expires_at_ms"], json!(exp20));
    assert_eq!(
        redis.get("coldsync:{orders}:watermark").as_deref(),
        Some("2026-11-20")
    );

    // Second run: a no-op, summary on stdout with --json.
    let again = ws.cli(&["run", "--as-of", AS_OF, "--json"]);
    assert_eq!(again.status_code, 0, "{}", again.dump());
    assert!(again.events_named("partition_loaded").is_empty());
    let summary: Value = serde_json::from_str(&again.stdout).expect("summary JSON on stdout");
    assert_eq!(summary["exit_code"], json!(0));
    assert_eq!(summary["partitions_loaded"], json!(0));
    assert_eq!(summary["keys"], json!(0));
    assert_eq!(summary["tables"][0]["table"], json!("orders"));
    assert_eq!(summary["tables"][0]["status"], json!("ok"));
    assert_eq!(summary["tables"][0]["watermark"], json!("2026-11-20"));
    assert_eq!(ledger(&redis, "orders"), entries);
}

#[test]
fn late_partition_exits_4_with_partition_late_event() {
    let ws = Workspace::new();
    let mut fx = HiveTableFixture::new("orders");
    fx.spark_partition("dt=2026-11-19", &[orders_batch(&[1], "a")])
        .spark_partition_with(
            "dt=2026-11-20",
            &[orders_batch(&[2], "b")],
            &SparkOptions {
                success: SuccessMarker::None,
                ..Default::default()
            },
        );
    fx.write_local(&ws.root());
    let redis = RedisServer::start();
    ws.write(&redis_url(&redis), ORDERS_TABLE);

    let out = ws.cli(&["run", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 4, "{}", out.dump());
    let late = out.events_named("partition_late");
    assert_eq!(late.len(), 1, "{}", out.dump());
    assert_eq!(s(late[0], "table"), "orders");
    assert_eq!(s(late[0], "date"), "2026-11-20");
    let incomplete = out.events_named("partition_incomplete");
    assert_eq!(incomplete.len(), 1, "{}", out.dump());
    assert_eq!(s(incomplete[0], "date"), "2026-11-20");
    let loaded = out.events_named("partition_loaded");
    assert_eq!(loaded.len(), 1);
    assert_eq!(s(loaded[0], "date"), "2026-11-19");
    let fin = out.event("run_finished").unwrap();
    assert_eq!(field(fin, "exit_code"), &json!(4));
    assert_eq!(u(fin, "partitions_late"), 1);
    assert_eq!(u(fin, "partitions_loaded"), 1);
    assert_eq!(redis.get("ord:1"), Some(order_json(1, "a")));
    assert_eq!(redis.get("ord:2"), None);
    assert_eq!(
        redis.get("coldsync:{orders}:watermark").as_deref(),
        Some("2026-11-19")
    );
}

#[test]
fn corrupt_file_exits_3_with_partition_failed_naming_the_file() {
    let ws = Workspace::new();
    let mut fx = HiveTableFixture::new("orders");
    fx.spark_partition(
        "dt=2026-11-19",
        &[orders_batch(&[1, 2], "a"), orders_batch(&[3], "a")],
    )
    .spark_partition("dt=2026-11-20", &[orders_batch(&[5], "b")]);
    let bad = format!("orders/dt=2026-11-19/{}", fx.spark_file_name(1));
    fx.add_file(&bad, b"this is not a parquet file".to_vec(), FileKind::Data);
    fx.write_local(&ws.root());
    let redis = RedisServer::start();
    ws.write(&redis_url(&redis), ORDERS_TABLE);

    let out = ws.cli(&["run", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let failed = out.events_named("partition_failed");
    assert_eq!(failed.len(), 1, "{}", out.dump());
    let ev = failed[0];
    assert_eq!(s(ev, "table"), "orders");
    assert_eq!(s(ev, "date"), "2026-11-19");
    assert_eq!(s(ev, "file"), bad);
    let error = s(ev, "error");
    assert!(error.contains(&bad), "error should name the file: {error}");
    let loaded = out.events_named("partition_loaded");
    assert_eq!(loaded.len(), 1);
    assert_eq!(s(loaded[0], "date"), "2026-11-20");
    let fin = out.event("run_finished").unwrap();
    assert_eq!(field(fin, "exit_code"), &json!(3));
    assert_eq!(u(fin, "partitions_failed"), 1);
    assert_eq!(u(fin, "partitions_loaded"), 1);
    assert_eq!(redis.get("ord:1"), None);
    assert_eq!(redis.get("ord:5"), Some(order_json(5, "b")));
    assert_eq!(
        ledger(&redis, "orders").keys().cloned().collect::<Vec<_>>(),
        vec!["2026-11-20".to_string()]
    );
}

#[test]
fn config_errors_exit_2_and_name_the_option() {
    let ws = Workspace::new();
    // Nothing listens here: config errors must be reported before any connection.
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let table_with = |extra: &str| format!("{ORDERS_TABLE}{extra}\n");
    let s3_source_with_secret = format!(
        r#"[source]
scheme = "s3"
bucket = "warehouse"
region = "us-east-1"
secret_access_key = "literal-secret-value"

[redis]
url = "{url}"

[defaults]
retention_days = 30

{ORDERS_TABLE}"#
    );
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown option in [[tables]]",
            ws.config_text(&url, &table_with("bogus_option = 1")),
            vec!["tables[0] (orders)", "bogus_option"],
        ),
        (
            "bad key template",
            ws.config_text(
                &url,
                "[[tables]]\nname = \"orders\"\npath = \"orders\"\nkey = \"cold:{order_id\"\n",
            ),
            vec!["tables[0] (orders).key"],
        ),
        (
            "bad partition_format",
            ws.config_text(&url, &table_with("partition_format = \"%Y-%m\"")),
            vec!["tables[0] (orders).partition_format"],
        ),
        (
            "bad timezone",
            ws.config_text(&url, &table_with("timezone = \"Mars/Olympus_Mons\"")),
            vec!["tables[0] (orders).timezone", "Mars/Olympus_Mons"],
        ),
        (
            "missing tables",
            ws.config_text(&url, ""),
            vec!["option tables:"],
        ),
        (
            "literal secret in [source]",
            s3_source_with_secret,
            vec!["source.secret_access_key"],
        ),
    ];
    for (name, text, needles) in cases {
        ws.write_config(&text);
        for args in [vec!["check"], vec!["run", "--as-of", AS_OF]] {
            let out = ws.cli(&args);
            assert_eq!(out.status_code, 2, "{name} / {args:?}:\n{}", out.dump());
            let ev = out
                .event("config_invalid")
                .unwrap_or_else(|| panic!("{name}: no config_invalid event:\n{}", out.dump()));
            for needle in &needles {
                assert!(
                    s(ev, "error").contains(needle),
                    "{name}: event error lacks {needle:?}:\n{}",
                    out.dump()
                );
                assert!(
                    out.stderr
                        .lines()
                        .any(|l| l.starts_with("error: ") && l.contains(needle)),
                    "{name}: no plain error line naming {needle:?}:\n{}",
                    out.dump()
                );
            }
            assert!(out.event("run_started").is_none(), "{name}");
            assert!(out.event("startup_failed").is_none(), "{name}");
            assert!(
                !out.stdout.contains("literal-secret-value")
                    && !out.stderr.contains("literal-secret-value"),
                "{name}: secret echoed:\n{}",
                out.dump()
            );
        }
    }
}

#[test]
fn check_validates_offline_and_with_connect() {
    let ws = Workspace::new();
    small_table().write_local(&ws.root());
    let mut other = HiveTableFixture::new("payments");
    other.spark_partition("dt=2026-11-20", &[orders_batch(&[7, 8], "p")]);
    other.write_local(&ws.root());
    let two_tables = format!(
        "{ORDERS_TABLE}\n[[tables]]\nname = \"payments\"\npath = \"payments\"\nkey = \"pay:{{order_id}}\"\n"
    );

    // Offline: no Redis needed.
    let dead = format!("redis://127.0.0.1:{}/0", free_port());
    ws.write(&dead, &two_tables);
    let out = ws.cli(&["check"]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert_eq!(out.stdout.trim(), "config ok: 2 tables");

    let redis = RedisServer::start();
    ws.write(&redis_url(&redis), &two_tables);
    let out = ws.cli(&["check", "--connect"]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.dump());
    assert_eq!(lines[0], format!("redis ok: {}", redis_url(&redis)));
    // The permission check (ACL DRYRUN) of the default user: everything allowed.
    assert_eq!(
        lines[1],
        "acl ok: user default may send every command of a load"
    );
    assert!(
        lines[2]
            .starts_with("table orders: ok: 3 partitions; newest 2026-11-21 has 1 files, 1 rows"),
        "{}",
        out.dump()
    );
    assert!(
        lines[3]
            .starts_with("table payments: ok: 1 partitions; newest 2026-11-20 has 1 files, 2 rows"),
        "{}",
        out.dump()
    );
    assert_eq!(redis.dbsize(), 0, "check writes nothing");

    // A key column the files do not have.
    let bad = "[[tables]]\nname = \"orders\"\npath = \"orders\"\nkey = \"ord:{no_such_column}\"\n";
    ws.write(&redis_url(&redis), bad);
    assert_eq!(ws.cli(&["check"]).status_code, 0, "valid offline");
    let out = ws.cli(&["check", "--connect"]);
    assert_ne!(out.status_code, 0, "{}", out.dump());
    assert_eq!(out.status_code, 3, "{}", out.dump());
    assert!(
        out.stdout.contains("table orders: FAILED") && out.stdout.contains("no_such_column"),
        "{}",
        out.dump()
    );
}

#[test]
fn unreachable_redis_exits_1_without_leaking_the_password() {
    let ws = Workspace::new();
    small_table().write_local(&ws.root());
    let port = free_port();
    ws.write(
        &format!("redis://:hunter2@127.0.0.1:{port}/0"),
        ORDERS_TABLE,
    );
    for args in [
        vec!["run", "--as-of", AS_OF],
        vec!["check", "--connect"],
        vec!["status", "--json"],
        vec!["plan", "--json", "--as-of", AS_OF],
    ] {
        let out = ws.cli(&args);
        assert_eq!(out.status_code, 1, "{args:?}:\n{}", out.dump());
        let ev = out
            .event("startup_failed")
            .unwrap_or_else(|| panic!("{args:?}: no startup_failed:\n{}", out.dump()));
        assert!(
            s(ev, "error").contains(&format!("127.0.0.1:{port}")),
            "{}",
            out.dump()
        );
        assert!(out.event("run_started").is_none());
        assert!(
            !out.stdout.contains("hunter2") && !out.stderr.contains("hunter2"),
            "password leaked:\n{}",
            out.dump()
        );
    }
}

#[test]
fn password_in_url_is_masked_when_connected() {
    let ws = Workspace::new();
    small_table().write_local(&ws.root());
    let redis = RedisServer::start_with_args(&["--requirepass", "hunter2"]);
    let masked = format!("redis://:****@127.0.0.1:{}/0", redis.port);
    ws.write(
        &format!("redis://:hunter2@127.0.0.1:{}/0", redis.port),
        ORDERS_TABLE,
    );
    let check = ws.cli(&["check", "--connect"]);
    assert_eq!(check.status_code, 0, "{}", check.dump());
    assert!(
        check.stdout.starts_with(&format!("redis ok: {masked}\n")),
        "{}",
        check.dump()
    );
    let run = ws.cli(&["run", "--as-of", AS_OF, "--json"]);
    assert_eq!(run.status_code, 0, "{}", run.dump());
    assert_eq!(s(run.event("run_started").unwrap(), "redis"), masked);
    assert_eq!(u(run.event("run_finished").unwrap(), "keys"), 5);
    for out in [&check, &run] {
        assert!(
            !out.stdout.contains("hunter2") && !out.stderr.contains("hunter2"),
            "password leaked:\n{}",
            out.dump()
        );
    }

    // A wrong password: refused at start, still not echoed.
    ws.write(
        &format!("redis://:hunter2-wrong@127.0.0.1:{}/0", redis.port),
        ORDERS_TABLE,
    );
    let out = ws.cli(&["run", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 1, "{}", out.dump());
    assert!(out.event("startup_failed").is_some(), "{}", out.dump());
    assert!(
        !out.stdout.contains("hunter2") && !out.stderr.contains("hunter2"),
        "password leaked:\n{}",
        out.dump()
    );
}

#[test]
fn plan_status_and_backfill_json() {
    let ws = Workspace::new();
    let fx = small_table();
    fx.write_local(&ws.root());
    let redis = RedisServer::start();
    ws.write(&redis_url(&redis), ORDERS_TABLE);
    let b19 = fx.data_bytes_under("orders/dt=2026-11-19/");
    let b20 = fx.data_bytes_under("orders/dt=2026-11-20/");
    let b21 = fx.data_bytes_under("orders/dt=2026-11-21/");

    // Plan before anything is loaded.
    let out = ws.cli(&["plan", "--json", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let plan: Value = serde_json::from_str(&out.stdout).expect("plan JSON on stdout");
    let table = &plan["tables"][0];
    assert_eq!(plan["tables"].as_array().unwrap().len(), 1);
    assert_eq!(table["table"], json!("orders"));
    assert_eq!(table["today"], json!(AS_OF));
    assert_eq!(table["late"], Value::Null);
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3, "{}", out.stdout);
    let expect = [
        ("2026-11-19", "pending", 2, b19, Some(4)),
        ("2026-11-20", "pending", 1, b20, Some(1)),
        ("2026-11-21", "hot", 1, b21, None),
    ];
    let mut est_total = 0;
    for (p, (date, state, files, bytes, rows)) in parts.iter().zip(expect) {
        assert_eq!(p["date"], json!(date), "{p}");
        assert_eq!(p["state"], json!(state), "{p}");
        assert_eq!(p["files"], json!(files), "{p}");
        assert_eq!(p["bytes"], json!(bytes), "{p}");
        match rows {
            Some(rows) => {
                assert_eq!(p["rows"], json!(rows), "{p}");
                assert_eq!(p["est_keys"], json!(rows), "{p}");
                let mem = p["est_memory_bytes"].as_u64().expect("est_memory_bytes");
                assert!(mem >= rows * 80, "{p}");
                est_total += mem;
            }
            None => {
                assert!(p.get("rows").is_none(), "{p}");
                assert!(p.get("est_keys").is_none(), "{p}");
            }
        }
    }
    assert_eq!(plan["est_memory_bytes"], json!(est_total));
    assert_eq!(redis.dbsize(), 0, "plan writes nothing");

    // Status before: nothing loaded.
    let out = ws.cli(&["status", "--json"]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let status: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status[0]["table"], json!("orders"));
    assert_eq!(status[0]["partitions_loaded"], json!(0));
    assert_eq!(status[0]["watermark"], Value::Null);

    let run = ws.cli(&["run", "--as-of", AS_OF]);
    assert_eq!(run.status_code, 0, "{}", run.dump());
    let before = ledger(&redis, "orders");

    let out = ws.cli(&["status", "--json"]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let status: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status.as_array().unwrap().len(), 1);
    let st = &status[0];
    assert_eq!(st["table"], json!("orders"));
    assert_eq!(st["partitions_loaded"], json!(2));
    assert_eq!(st["oldest_loaded"], json!("2026-11-19"));
    assert_eq!(st["newest_loaded"], json!("2026-11-20"));
    assert_eq!(st["watermark"], json!("2026-11-20"));
    assert_eq!(st["rows"], json!(5));
    assert_eq!(st["keys"], json!(5));
    let newest_load = before
        .values()
        .map(|e| e["loaded_at"].as_str().unwrap())
        .max()
        .unwrap();
    assert_eq!(st["last_loaded_at"], json!(newest_load));

    // Plan after the run: loaded, no footers read.
    let out = ws.cli(&["plan", "--json", "--as-of", AS_OF]);
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    let states: Vec<&str> = plan["tables"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["loaded", "loaded", "hot"]);
    assert_eq!(plan["est_memory_bytes"], json!(0));

    // Forced backfill of one loaded day reloads just that day.
    redis.set("ord:1", "tampered");
    let out = ws.cli(&[
        "backfill",
        "--table",
        "orders",
        "--from",
        "2026-11-19",
        "--to",
        "2026-11-19",
        "--force",
        "--as-of",
        AS_OF,
    ]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let loaded = out.events_named("partition_loaded");
    assert_eq!(loaded.len(), 1, "{}", out.dump());
    assert_eq!(s(loaded[0], "date"), "2026-11-19");
    assert_eq!(u(loaded[0], "keys"), 4);
    let fin = out.event("run_finished").unwrap();
    assert_eq!(field(fin, "exit_code"), &json!(0));
    assert_eq!(u(fin, "partitions_loaded"), 1);
    assert_eq!(redis.get("ord:1"), Some(order_json(1, "a")));
    let after = ledger(&redis, "orders");
    assert_eq!(after["2026-11-20"], before["2026-11-20"]);
    assert_eq!(after["2026-11-19"]["run_id"], json!(s(fin, "run_id")));
    assert_ne!(
        after["2026-11-19"]["run_id"],
        before["2026-11-19"]["run_id"]
    );
    assert_eq!(
        after["2026-11-19"]["fingerprint"],
        before["2026-11-19"]["fingerprint"]
    );

    // Without --force, the same backfill has nothing to do.
    let out = ws.cli(&[
        "backfill",
        "--table",
        "orders",
        "--from",
        "2026-11-19",
        "--to",
        "2026-11-19",
        "--as-of",
        AS_OF,
    ]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert!(
        out.events_named("partition_loaded").is_empty(),
        "{}",
        out.dump()
    );

    // An unknown table is a config error.
    let out = ws.cli(&[
        "backfill",
        "--table",
        "nope",
        "--from",
        "2026-11-19",
        "--to",
        "2026-11-19",
    ]);
    assert_eq!(out.status_code, 2, "{}", out.dump());
}

#[test]
fn help_works_for_every_subcommand() {
    let subcommands = [
        "run", "plan", "backfill", "status", "check", "daemon", "verify", "retire",
    ];
    let top = run_cli(&["--help"], &[]);
    assert_eq!(top.status_code, 0, "{}", top.dump());
    for sub in subcommands {
        assert!(
            top.stdout.contains(sub),
            "top-level help lists {sub}:\n{}",
            top.stdout
        );
    }
    let no_config = Path::new("/nonexistent/coldsync.toml");
    for sub in subcommands {
        let out = run_cli(
            &["--config", no_config.to_str().unwrap(), sub, "--help"],
            &[],
        );
        assert_eq!(out.status_code, 0, "{sub} --help:\n{}", out.dump());
        assert!(out.stdout.contains("Usage:"), "{sub}:\n{}", out.stdout);
        assert!(out.stdout.contains(sub), "{sub}:\n{}", out.stdout);
    }
    let helps: BTreeSet<String> = subcommands
        .iter()
        .map(|sub| run_cli(&["help", sub], &[]).stdout)
        .collect();
    assert_eq!(
        helps.len(),
        subcommands.len(),
        "each subcommand has its own help"
    );
    // An unknown subcommand is an argument error, not a success.
    assert_ne!(run_cli(&["frobnicate"], &[]).status_code, 0);
}

#[test]
fn daemon_runs_on_schedule_and_stops_cleanly_on_sigterm() {
    use std::process::{Command, Stdio};
    use std::time::Duration;

    /// Runs a short command (redis-cli, kill), bounded.
    fn quick(program: &str, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(program);
        cmd.args(args);
        output_within(&mut cmd, Stdio::null(), Duration::from_secs(30))
    }

    let redis = RedisServer::start();
    let ws = Workspace::new();
    small_table().write_local(&ws.root());
    let text = ws.config_text(&redis_url(&redis), ORDERS_TABLE);
    ws.write_config(&format!("[daemon]\nschedule = \"*/1 * * * * *\"\n\n{text}"));
    // Every read of its log and the wait for its exit are bounded; it is killed if the test fails.
    let mut daemon_cmd = Command::new(coldsync_bin());
    daemon_cmd
        .args([
            "--config",
            ws.config_path().to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .args(["daemon", "--run-now"])
        .stdout(Stdio::null());
    let mut child = WatchedChild::spawn("coldsync daemon", &mut daemon_cmd);
    let mut events: Vec<Value> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Wait for two finished runs: the immediate one and at least one scheduled one.
    while events
        .iter()
        .filter(|e| event_name(e) == Some("run_finished"))
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no two runs within 60s: {events:?}"
        );
        let line = child.next_line(deadline).expect("daemon stderr open");
        events.push(serde_json::from_str(&line).expect("json log line"));
    }
    // Redis restarts, empty, on the same port: the daemon reconnects and loads everything again.
    let port = redis.port.to_string();
    let down = quick("redis-cli", &["-p", &port, "shutdown", "nosave"]);
    assert!(down.stdout.is_empty(), "{down:?}");
    let restart_dir = tempfile::tempdir().unwrap();
    let mut restart_cmd = Command::new("redis-server");
    restart_cmd
        .args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(restart_dir.path())
        .stdout(Stdio::null());
    let restarted = WatchedChild::spawn("restarted redis-server", &mut restart_cmd);
    let reloaded =
        |e: &Value| event_name(e) == Some("run_finished") && u(e, "partitions_loaded") == 3;
    let before = events.iter().filter(|e| reloaded(e)).count();
    while events.iter().filter(|e| reloaded(e)).count() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload after the restart: {events:?}"
        );
        let line = child.next_line(deadline).expect("daemon stderr open");
        events.push(serde_json::from_str(&line).expect("json log line"));
    }
    let reloaded_value = quick("redis-cli", &["-p", &port, "GET", "ord:5"]);
    assert_eq!(
        String::from_utf8_lossy(&reloaded_value.stdout).trim(),
        order_json(5, "b")
    );

    let status = quick("kill", &["-TERM", &child.id().to_string()]).status;
    assert!(status.success());
    let stop_deadline = std::time::Instant::now() + Duration::from_secs(30);
    for line in child.remaining_lines(stop_deadline) {
        events.push(serde_json::from_str(&line).expect("json log line"));
    }
    let exit = child.wait(stop_deadline);
    assert_eq!(exit.code(), Some(0));
    let names: Vec<&str> = events.iter().filter_map(event_name).collect();
    assert_eq!(names.first(), Some(&"daemon_started"));
    assert_eq!(
        &names[names.len() - 3..],
        &["shutdown_requested", "daemon_stopping", "daemon_stopped"]
    );
    // The first run loads the three cold partitions, the next ones find nothing new, and the run
    // after the restart loads all three again.
    assert_eq!(
        names.iter().filter(|n| **n == "partition_loaded").count(),
        6
    );
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| event_name(e) == Some("run_finished"))
        .collect();
    assert_eq!(u(finished[0], "partitions_loaded"), 3);
    assert_eq!(u(finished[1], "partitions_loaded"), 0);
    assert_eq!(redis.get("ord:5"), Some(order_json(5, "b")));
    assert_eq!(redis.get("ord:6"), Some(order_json(6, "c")));
    drop(restarted);
}

#[test]
fn plan_estimates_redis_memory_and_warns_before_an_oom() {
    let ws = Workspace::new();
    let ids: Vec<i64> = (1..=20_000).collect();
    let mut fx = HiveTableFixture::new("orders");
    fx.spark_partition("dt=2026-11-20", &[orders_batch(&ids, "m")]);
    fx.write_local(&ws.root());

    // Unlimited redis: no warning; the estimate is within a factor 1.5 of what the load really uses.
    let redis = RedisServer::start();
    ws.write(&redis_url(&redis), ORDERS_TABLE);
    let out = ws.cli(&["plan", "--json", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert!(
        out.events_named("memory_warning").is_empty(),
        "{}",
        out.dump()
    );
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["redis_free_bytes"], Value::Null);
    let estimate = plan["est_memory_bytes"].as_u64().unwrap();
    let used = |redis: &RedisServer| -> u64 {
        let info: String = redis.cmd("INFO", &["memory"]);
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = used(&redis);
    assert_eq!(ws.cli(&["run", "--as-of", AS_OF]).status_code, 0);
    let actual = used(&redis) - before;
    let ratio = estimate as f64 / actual as f64;
    assert!(
        (0.67..1.5).contains(&ratio),
        "estimate {estimate} vs actual {actual}"
    );

    // A redis with 2 MB maxmemory has less free than the load needs: plan warns (and still exits 0).
    let small =
        RedisServer::start_with_args(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]);
    ws.write(&redis_url(&small), ORDERS_TABLE);
    let out = ws.cli(&["plan", "--json", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    let free = plan["redis_free_bytes"]
        .as_u64()
        .expect("free memory reported");
    assert!(free < 2 * 1024 * 1024);
    let warnings = out.events_named("memory_warning");
    assert_eq!(warnings.len(), 1, "{}", out.dump());
    assert_eq!(u(warnings[0], "est_memory_bytes"), estimate);
    assert_eq!(u(warnings[0], "redis_free_bytes"), free);
}

/// Runs `export` of one date of the small orders table with nothing listening on the Redis port
/// (export must not need Redis): the workspace, the RESP file's path and the command's output.
fn export_without_redis(date: &str) -> (Workspace, std::path::PathBuf, CliOutput) {
    let ws = Workspace::new();
    small_table().write_local(&ws.root());
    let dead = format!("redis://127.0.0.1:{}/0", common::free_port());
    ws.write(&dead, ORDERS_TABLE);
    let resp = ws.dir.path().join("out.resp");
    let out = ws.cli(&[
        "export",
        "--table",
        "orders",
        "--date",
        date,
        "--out",
        resp.to_str().unwrap(),
    ]);
    (ws, resp, out)
}

#[test]
fn export_writes_what_run_writes_without_touching_redis() {
    let (ws, resp, out) = export_without_redis("2026-11-19");
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let exported = out
        .event("partition_exported")
        .expect("partition_exported event");
    assert_eq!((u(exported, "rows"), u(exported, "keys")), (4, 4));

    // Piped into one redis, it gives exactly what `run` gives in another (keys, values, expiries).
    let piped = RedisServer::start();
    let mut pipe = std::process::Command::new("redis-cli");
    pipe.args(["-p", &piped.port.to_string(), "--pipe"]);
    let stdin = std::fs::File::open(&resp).unwrap().into();
    let status = output_within(&mut pipe, stdin, std::time::Duration::from_secs(60)).status;
    assert!(status.success());
    let loaded = RedisServer::start();
    ws.write(&redis_url(&loaded), ORDERS_TABLE);
    assert_eq!(
        ws.cli(&["run", "--as-of", AS_OF, "--table", "orders"])
            .status_code,
        0
    );
    let piped_keys = piped.keys("ord:*");
    assert_eq!(
        piped_keys,
        ["ord:1", "ord:2", "ord:3", "ord:4"]
            .iter()
            .map(|k| k.to_string())
            .collect()
    );
    for key in &piped_keys {
        assert_eq!(piped.get(key), loaded.get(key), "{key}");
        assert_eq!(piped.pexpiretime(key), loaded.pexpiretime(key), "{key}");
    }
}

#[test]
fn export_of_a_missing_partition_names_the_table_the_partition_and_the_path() {
    let (_ws, _resp, out) = export_without_redis("2026-11-25");
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let failed = out.event("export_failed").expect("export_failed event");
    let error = s(failed, "error");
    assert_eq!(
        error,
        "table orders has no partition 2026-11-25 at orders/dt=2026-11-25/",
        "{}",
        out.dump()
    );
    assert!(!out.stderr.contains("cannot write"), "{}", out.dump());
}
