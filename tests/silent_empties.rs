//! Silent empties made loud, through the built binary:
//!
//! - a table root that does not exist is a configuration error of that table (`table_failed`
//!   naming the path, exit 3; `check --connect` fails for it), not a late partition; an existing
//!   but empty root is still "no partitions yet";
//! - a partition whose key column is null in (more than `max_skipped_ratio` of) its rows fails
//!   loudly and is not recorded, nor does a snapshot delete its predecessor's keys for it; within
//!   the ratio a `keys_skipped` warning says how many.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use coldsync::config::Config;
use coldsync::run::{exit_code, Engine, RunOptions};
use common::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A temp dir with `warehouse/` (the fs source root) and `coldsync.toml`.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(redis: &RedisServer, tables: &str) -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("coldsync-empties-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("warehouse");
        std::fs::create_dir_all(&root).unwrap();
        let config = format!(
            "[source]\nscheme = \"fs\"\nroot = {:?}\n\n[redis]\nurl = \"redis://127.0.0.1:{}/0\"\n\
             retry_attempts = 1\n\n[defaults]\nretention_days = 30\n\n{tables}",
            root.display().to_string(),
            redis.port
        );
        std::fs::write(dir.path().join("coldsync.toml"), config).unwrap();
        Workspace { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    fn cli(&self, args: &[&str]) -> CliOutput {
        let config = self.dir.path().join("coldsync.toml");
        let mut full = vec!["--config", config.to_str().unwrap(), "--log-format", "json"];
        full.extend_from_slice(args);
        run_cli(&full, &[("RUST_LOG", "info")])
    }

    fn run(&self, as_of: &str) -> CliOutput {
        self.cli(&["run", "--as-of", as_of])
    }

    /// Writes `batch` as the one file of `table/dt=date`, with its `_SUCCESS`.
    fn partition(&self, table: &str, date: &str, batch: &RecordBatch) -> &Self {
        let dir = format!("{table}/dt={date}");
        let bytes = parquet_bytes(batch, 1000, parquet::basic::Compression::SNAPPY);
        write_file(&self.root(), &format!("{dir}/part-00000.parquet"), &bytes);
        write_success(&self.root(), &dir);
        self
    }
}

fn number(v: &Value, key: &str) -> u64 {
    field(v, key)
        .as_u64()
        .unwrap_or_else(|| panic!("{key} of {v}"))
}

fn table(name: &str, extra: &str) -> String {
    format!("[[tables]]\nname = \"{name}\"\npath = \"{name}\"\nkey = \"{name}:{{id}}\"\n{extra}\n")
}

/// Rows `id` (null where `None`) and `v`.
fn rows(ids: &[Option<i64>]) -> RecordBatch {
    let values: Vec<String> = (0..ids.len()).map(|i| format!("v{i}")).collect();
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        ("v", Arc::new(StringArray::from(values)) as ArrayRef),
    ])
    .unwrap()
}

#[test]
fn a_missing_table_root_fails_the_table_and_check_naming_the_path() {
    let redis = RedisServer::start();
    let ws = Workspace::new(
        &redis,
        &format!("{}{}", table("present", ""), table("absent", "")),
    );
    // `present` exists but is empty; `absent` does not exist at all.
    std::fs::create_dir_all(ws.root().join("present")).unwrap();

    let out = ws.run("2026-11-22");
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let failed = out.events_named("table_failed");
    assert_eq!(failed.len(), 1, "{}", out.dump());
    assert_eq!(text(failed[0], "table"), "absent");
    let error = text(failed[0], "error");
    assert!(
        error.starts_with("the table root absent/ does not exist in the fs source"),
        "{error}"
    );
    // Only the existing, empty table has a late partition: the missing one is not "late".
    let late = out.events_named("partition_late");
    assert_eq!(late.len(), 1, "{}", out.dump());
    assert_eq!(text(late[0], "table"), "present");

    let check = ws.cli(&["check", "--connect"]);
    assert_eq!(check.status_code, 3, "{}", check.dump());
    assert!(
        check
            .stdout
            .contains("table present: ok: no partitions under present/ yet"),
        "{}",
        check.dump()
    );
    assert!(
        check.stdout.contains(
            "table absent: FAILED: the table root absent/ does not exist in the fs source"
        ),
        "{}",
        check.dump()
    );

    // With the root created, the table is only empty: check passes.
    std::fs::create_dir_all(ws.root().join("absent")).unwrap();
    let check = ws.cli(&["check", "--connect"]);
    assert_eq!(check.status_code, 0, "{}", check.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_root_in_s3_fails_the_table() {
    let server = s3();
    let bucket = server.fresh_bucket("cs-noroot");
    let op = server.operator(&bucket);
    let mut fx = HiveTableFixture::new("warehouse/orders");
    fx.spark_partition("dt=2026-11-20", &[orders_batch(&[1], "a")]);
    fx.write_to(&op).await;
    let redis = RedisServer::start();
    let source: String = server
        .opendal_config(&bucket)
        .into_iter()
        .filter(|(k, _)| !k.contains("access_key"))
        .map(|(k, v)| format!("{k} = {v:?}\n"))
        .collect();
    let text = format!(
        "[source]\nscheme = \"s3\"\n{source}access_key_id_env = \"K\"\nsecret_access_key_env = \"S\"\n\n\
         [redis]\nurl = \"redis://127.0.0.1:{}/0\"\n\n[defaults]\nretention_days = 30\n\n\
         [[tables]]\nname = \"orders\"\npath = \"warehouse/orders\"\nkey = \"o:{{order_id}}\"\n\n\
         [[tables]]\nname = \"typo\"\npath = \"warehouse/oders\"\nkey = \"t:{{order_id}}\"\n",
        redis.port
    );
    let env = HashMap::from([
        ("K".to_string(), "test".to_string()),
        ("S".to_string(), "test".to_string()),
    ]);
    let engine = Engine::connect(Config::parse(&text, &env).unwrap())
        .await
        .unwrap();
    let options = RunOptions {
        as_of: Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()),
        ..RunOptions::default()
    };
    let summary = engine
        .run(&options, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.exit_code, exit_code::FAILED, "{summary:?}");
    let by_name: HashMap<&str, _> = summary
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t))
        .collect();
    assert_eq!(by_name["orders"].status, "ok");
    assert_eq!(by_name["typo"].status, "failed");
    let error = by_name["typo"].error.as_deref().unwrap();
    assert_eq!(
        error,
        "the table root warehouse/oders/ does not exist in the s3 source (check the table's path and the source's root or bucket)"
    );
    let checks = engine.check_tables(&engine.config().tables).await;
    assert!(checks[0].1.is_ok(), "{checks:?}");
    assert_eq!(checks[1].1.as_ref().unwrap_err(), error);
}

#[test]
fn keys_null_in_too_many_rows_fail_the_partition_within_the_ratio_they_warn() {
    let redis = RedisServer::start();
    let tables = [
        table("all_null", ""),
        table("few_null", ""),
        table("lenient", "max_skipped_ratio = 0.5"),
    ]
    .concat();
    let ws = Workspace::new(&redis, &tables);
    // all_null: every key null (an upstream rename of the key column); few_null: 1 of 200;
    // lenient: 4 of 10, allowed by its ratio.
    ws.partition("all_null", "2026-11-20", &rows(&[None; 100]));
    let few: Vec<Option<i64>> = (0..200).map(|i| (i != 50).then_some(i)).collect();
    ws.partition("few_null", "2026-11-20", &rows(&few));
    let lenient: Vec<Option<i64>> = (0..10).map(|i| (i % 5 > 1).then_some(i)).collect();
    ws.partition("lenient", "2026-11-20", &rows(&lenient));

    let out = ws.run("2026-11-22");
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let failed = out.events_named("partition_failed");
    assert_eq!(failed.len(), 1, "{}", out.dump());
    let failed = failed[0];
    assert_eq!(text(failed, "table"), "all_null");
    assert_eq!(text(failed, "level"), "ERROR");
    assert_eq!(
        (number(failed, "rows"), number(failed, "skipped_null_keys")),
        (100, 100)
    );
    assert_eq!(field(failed, "transient"), &Value::Bool(false));
    assert!(
        text(failed, "error").starts_with("100 of 100 rows have a null or empty key column"),
        "{failed}"
    );
    assert!(out.events_named("partition_retry").is_empty());

    let warned: HashMap<&str, &Value> = out
        .events_named("keys_skipped")
        .into_iter()
        .map(|e| (text(e, "table"), e))
        .collect();
    assert_eq!(warned.len(), 2, "{}", out.dump());
    for (table, rows, skipped) in [("few_null", 200, 1), ("lenient", 10, 4)] {
        let warning = warned[table];
        assert_eq!(text(warning, "level"), "WARN");
        assert_eq!(text(warning, "date"), "2026-11-20");
        assert_eq!(
            (
                number(warning, "rows"),
                number(warning, "skipped_null_keys")
            ),
            (rows, skipped)
        );
    }

    // The failed partition is not recorded; the others are.
    assert!(redis.hgetall("coldsync:{all_null}:partitions").is_empty());
    assert_eq!(redis.hgetall("coldsync:{few_null}:partitions").len(), 1);
    assert_eq!(redis.hgetall("coldsync:{lenient}:partitions").len(), 1);
    assert_eq!(redis.keys("few_null:*").len(), 199);
    assert_eq!(redis.keys("lenient:*").len(), 6);
}

#[test]
fn a_snapshot_with_null_keys_fails_before_deleting_the_previous_snapshots_keys() {
    let redis = RedisServer::start();
    let ws = Workspace::new(
        &redis,
        &table("stock", "mode = \"snapshot\"\ndelete_missing = true"),
    );
    // Snapshot keys live a few days from their date: dates around the real today.
    let today = chrono::Utc::now().date_naive();
    let day = |back: u64| (today - chrono::Days::new(back)).to_string();
    ws.partition("stock", &day(3), &rows(&[Some(1), Some(2), Some(3)]));
    let first = ws.run(&day(1));
    assert_eq!(first.status_code, 0, "{}", first.dump());
    assert_eq!(redis.keys("stock:*").len(), 3);

    ws.partition("stock", &day(2), &rows(&[None, None, None]));
    let second = ws.run(&day(0));
    assert_eq!(second.status_code, 3, "{}", second.dump());
    assert!(
        second.event("snapshot_keys_deleted").is_none(),
        "{}",
        second.dump()
    );
    let failed = second.event("partition_failed").expect("partition_failed");
    assert_eq!(text(failed, "date"), day(2));
    assert_eq!(number(failed, "skipped_null_keys"), 3);
    // Readers still see the previous snapshot.
    for id in 1..=3 {
        assert!(redis.get(&format!("stock:{id}")).is_some(), "stock:{id}");
    }
    let ledger = redis.hgetall("coldsync:{stock}:partitions");
    assert_eq!(ledger.keys().cloned().collect::<Vec<_>>(), [day(3)]);
}

#[test]
fn max_skipped_ratio_must_be_a_share() {
    let base = "[source]\nscheme = \"fs\"\nroot = \"/data\"\n[redis]\nurl = \"redis://127.0.0.1:6379/0\"\n\
                [defaults]\nretention_days = 30\nmax_skipped_ratio = RATIO\n\
                [[tables]]\nname = \"t\"\npath = \"t\"\nkey = \"t:{id}\"\n";
    for bad in ["1.5", "-0.1"] {
        let err = Config::parse(&base.replace("RATIO", bad), &HashMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("option tables[0] (t).max_skipped_ratio: {bad} is not a share between 0 and 1")
        );
    }
    let config = Config::parse(&base.replace("RATIO", "0"), &HashMap::new()).unwrap();
    assert_eq!(config.tables[0].max_skipped_ratio, 0.0);
    let text = base.replace("max_skipped_ratio = RATIO\n", "");
    let config = Config::parse(&text, &HashMap::new()).unwrap();
    assert_eq!(config.tables[0].max_skipped_ratio, 0.01, "the default");
}
