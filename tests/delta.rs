//! Delta Lake tables (`format = "delta"`), written by PyPI `deltalake` (delta-rs) in the test's
//! temp dir and loaded by the `coldsync` binary into a real Redis:
//! - several days, exact Redis contents (values, `PEXPIRETIME`, latest-wins), ledger versions,
//!   `plan`/`status` naming `none/delta version N`;
//! - a second run is a no-op (0 partitions, no data write in `INFO commandstats`);
//! - an append to one cold day and an overwrite of another (`predicate`) reload those days only;
//! - a checkpoint, then the commits before it deleted, then more commits: read from the
//!   checkpoint and the log;
//! - a protocol with a reader feature coldsync does not handle (delta-rs writes none: crafted
//!   commits) fails the table, exit 3, nothing recorded;
//! - a deletion vector on one file (a crafted commit: delta-rs does not write deletion vectors)
//!   refuses that day alone, the others load.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate, Utc};
use common::*;
use serde_json::{json, Value};

/// The UTC day when the test binary started.
fn today() -> NaiveDate {
    static TODAY: std::sync::OnceLock<NaiveDate> = std::sync::OnceLock::new();
    *TODAY.get_or_init(|| Utc::now().date_naive())
}

/// `today - days` as `YYYY-MM-DD`.
fn ago(days: u64) -> String {
    (today() - Days::new(days)).format("%Y-%m-%d").to_string()
}

/// The expiry of a key of `day` with `retention_days = 30`: the start of `day + 31` (UTC).
fn expiry(day: &str) -> i64 {
    let date = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap() + Days::new(31);
    date.and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

const TABLE: &str = "[[tables]]\nname = \"orders\"\npath = \"orders\"\nformat = \"delta\"\nkey = \"ord:{order_id}\"\n";

struct Fixture {
    ws: CliWorkspace,
    redis: RedisServer,
    delta: DeltaTable,
}

fn fixture() -> Fixture {
    let ws = CliWorkspace::new();
    std::fs::create_dir_all(ws.root()).unwrap();
    let redis = RedisServer::start();
    ws.write(&redis, TABLE);
    let delta = DeltaTable::at(&ws.root().join("orders"));
    Fixture { ws, redis, delta }
}

impl Fixture {
    fn run(&self) -> CliOutput {
        self.ws.cli(&["run", "--as-of", &ago(0), "--json"])
    }

    /// `run --json`, which must exit 0; its summary.
    fn run_ok(&self) -> Value {
        let out = self.run();
        assert_eq!(out.status_code, 0, "{}", out.dump());
        serde_json::from_str(&out.stdout).expect("summary JSON on stdout")
    }

    /// The ledger: date -> entry.
    fn ledger(&self) -> BTreeMap<String, Value> {
        self.redis
            .hgetall("coldsync:{orders}:partitions")
            .into_iter()
            .map(|(k, v)| (k, serde_json::from_str(&v).unwrap()))
            .collect()
    }

    /// Every key with its value and expiry; the ledger's own keys by name only.
    fn contents(&self) -> BTreeMap<String, Option<(String, i64)>> {
        self.redis
            .keys("*")
            .into_iter()
            .map(|key| {
                let data = key
                    .starts_with("ord:")
                    .then(|| (self.redis.get(&key).unwrap(), self.redis.pexpiretime(&key)));
                (key, data)
            })
            .collect()
    }
}

/// What Redis must hold: each `(key, row, day)` with the row's value and the day's expiry, and
/// the ledger's keys.
fn expected(rows: &[(&DeltaRow, &str)]) -> BTreeMap<String, Option<(String, i64)>> {
    let mut map: BTreeMap<String, Option<(String, i64)>> = rows
        .iter()
        .map(|(row, day)| {
            (
                format!("ord:{}", row.order_id),
                Some((row.json(), expiry(day))),
            )
        })
        .collect();
    map.insert("coldsync:{orders}:partitions".into(), None);
    map.insert("coldsync:{orders}:watermark".into(), None);
    map
}

/// Successful calls of the commands that write data keys, from `INFO commandstats`, by command.
/// Not `EVALSHA`: the lease and the ledger run their scripts on every run (a guarded data write
/// is a script too, but only a load of an older day than the newest loaded one is guarded).
fn data_write_calls(redis: &RedisServer) -> BTreeMap<String, u64> {
    let info: String = redis.cmd("INFO", &["commandstats"]);
    let commands = [
        "set",
        "restore",
        "hset",
        "del",
        "unlink",
        "pexpireat",
        "pexpire",
        "multi",
    ];
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            commands.contains(&name).then_some((name, stats))
        })
        .map(|(name, stats)| {
            let field = |field: &str| -> u64 {
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
                    .map_or(0, |v| v.parse().unwrap())
            };
            (name.to_string(), field("calls") - field("failed_calls"))
        })
        .collect()
}

/// The commands Redis executes while `f` runs (scripts' inner calls included), from `MONITOR`.
fn monitored<T>(redis: &RedisServer, f: impl FnOnce() -> T) -> (T, Vec<String>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    stream.write_all(b"MONITOR\r\n").unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut ok = String::new();
    reader.read_line(&mut ok).unwrap();
    assert_eq!(ok.trim_end(), "+OK");
    let stop = Arc::new(AtomicBool::new(false));
    let lines = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut lines = Vec::new();
            let mut line = String::new();
            loop {
                match reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => lines.push(std::mem::take(&mut line)),
                    Err(_) if stop.load(Ordering::SeqCst) => break,
                    Err(_) => {}
                }
            }
            lines
        }
    });
    let result = f();
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    (result, lines.join().unwrap())
}

/// The versions the ledger recorded, by date.
fn versions(ledger: &BTreeMap<String, Value>) -> BTreeMap<String, String> {
    ledger
        .iter()
        .map(|(date, entry)| {
            (
                date.clone(),
                entry["snapshot"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

#[test]
fn delta_days_load_exactly_rerun_as_no_op_and_reload_only_changed_days() {
    let fx = fixture();
    let (oldest, middle, newest, hot) = (ago(4), ago(3), ago(2), ago(1));
    let r1 = DeltaRow::new(1, "a", 10, &oldest);
    let r2 = DeltaRow::new(2, "b", 20, &oldest);
    let r7_old = DeltaRow::new(7, "old", 70, &oldest);
    let r3 = DeltaRow::new(3, "c", 30, &middle);
    let r7_new = DeltaRow::new(7, "new", 71, &middle);
    let r4 = DeltaRow::new(4, "d", 40, &newest);
    let r5_hot = DeltaRow::new(5, "hot", 50, &hot);
    assert_eq!(
        fx.delta.append(&[
            r1.clone(),
            r2.clone(),
            r7_old,
            r3.clone(),
            r7_new.clone(),
            r4.clone(),
            r5_hot
        ]),
        0
    );

    // Plan before anything is loaded: the version, three cold days pending, one hot.
    let out = fx.ws.cli(&["plan", "--json", "--as-of", &ago(0)]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    let table = &plan["tables"][0];
    assert_eq!(
        table["origin"],
        json!({"catalog": "none", "format": "delta", "snapshot": "0"}),
        "{table}"
    );
    let states: Vec<(String, String)> = table["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["date"].as_str().unwrap().into(),
                p["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (oldest.clone(), "pending"),
            (middle.clone(), "pending"),
            (newest.clone(), "pending"),
            (hot.clone(), "hot")
        ]
        .map(|(d, s)| (d, s.to_string()))
    );
    let text = fx.ws.cli(&["plan", "--as-of", &ago(0)]);
    assert!(
        text.stdout
            .contains("table orders from none/delta version 0"),
        "{}",
        text.dump()
    );

    // First run: three days, exact contents, latest day wins for key 7.
    let summary = fx.run_ok();
    assert_eq!(summary["partitions_loaded"], json!(3), "{summary}");
    assert_eq!(summary["rows"], json!(6), "{summary}");
    let mut want = expected(&[
        (&r1, &oldest),
        (&r2, &oldest),
        (&r3, &middle),
        (&r7_new, &middle),
        (&r4, &newest),
    ]);
    assert_eq!(fx.contents(), want);
    assert_eq!(
        versions(&fx.ledger()),
        BTreeMap::from([
            (oldest.clone(), "0".into()),
            (middle.clone(), "0".into()),
            (newest.clone(), "0".into())
        ])
    );
    let status = fx.ws.cli(&["status"]);
    assert!(
        status
            .stdout
            .contains("orders (default): none/delta version 0: 3 partitions loaded"),
        "{}",
        status.dump()
    );

    // Second run: nothing changed, no data key touched. `INFO commandstats` moves only by what
    // every run's control scripts call (the lease's SET NX and release DEL, the watermark's
    // SET), and no command Redis executed names a data key.
    let writes = data_write_calls(&fx.redis);
    let (summary, commands) = monitored(&fx.redis, || fx.run_ok());
    assert_eq!(summary["partitions_loaded"], json!(0), "{summary}");
    let after = data_write_calls(&fx.redis);
    let grew: BTreeMap<&str, u64> = after
        .iter()
        .map(|(name, calls)| {
            (
                name.as_str(),
                calls - writes.get(name).copied().unwrap_or(0),
            )
        })
        .filter(|(_, grew)| *grew > 0)
        .collect();
    assert_eq!(
        grew,
        BTreeMap::from([("set", 2), ("del", 1)]),
        "{commands:#?}"
    );
    assert!(
        commands.iter().any(|c| c.contains("coldsync:{orders}")),
        "MONITOR saw the run: {commands:#?}"
    );
    let touching: Vec<&String> = commands.iter().filter(|c| c.contains("\"ord:")).collect();
    assert!(
        touching.is_empty(),
        "a no-op run touches no data key: {touching:#?}"
    );
    assert_eq!(fx.contents(), want);

    // An append to one cold day reloads that day only.
    let r8 = DeltaRow::new(8, "e", 80, &middle);
    assert_eq!(fx.delta.append(std::slice::from_ref(&r8)), 1);
    let summary = fx.run_ok();
    assert_eq!(summary["partitions_loaded"], json!(1), "{summary}");
    assert_eq!(
        summary["rows"],
        json!(3),
        "middle's files: two rows, then one: {summary}"
    );
    want.insert("ord:8".into(), Some((r8.json(), expiry(&middle))));
    assert_eq!(fx.contents(), want);
    assert_eq!(
        versions(&fx.ledger()),
        BTreeMap::from([
            (oldest.clone(), "0".into()),
            (middle.clone(), "1".into()),
            (newest.clone(), "0".into())
        ])
    );

    // An overwrite of one day (its files replaced) reloads it. Incremental tables upsert:
    // the key of the removed row stays until it expires with its day, as for Hive rewrites.
    let r9 = DeltaRow::new(9, "f", 90, &newest);
    let r4_new = DeltaRow::new(4, "d2", 41, &newest);
    assert_eq!(
        fx.delta
            .overwrite_day(&newest, &[r9.clone(), r4_new.clone()]),
        2
    );
    let summary = fx.run_ok();
    assert_eq!(summary["partitions_loaded"], json!(1), "{summary}");
    assert_eq!(
        summary["rows"],
        json!(2),
        "only the new files are read: {summary}"
    );
    want.insert("ord:9".into(), Some((r9.json(), expiry(&newest))));
    want.insert("ord:4".into(), Some((r4_new.json(), expiry(&newest))));
    assert_eq!(fx.contents(), want);
    let summary = fx.run_ok();
    assert_eq!(summary["partitions_loaded"], json!(0), "{summary}");

    // A checkpoint at version 2; the commits before it deleted (as log clean-up does, keeping the
    // checkpoint's own commit), so the files of versions 0 and 1 can only come from the
    // checkpoint; then one more commit.
    assert_eq!(fx.delta.checkpoint(), 2);
    let log = fx.delta.dir().join("_delta_log");
    assert!(log.join("_last_checkpoint").exists());
    for version in 0..2 {
        std::fs::remove_file(log.join(format!("{version:020}.json"))).unwrap();
    }
    let summary = fx.run_ok();
    assert_eq!(
        summary["partitions_loaded"],
        json!(0),
        "the checkpoint holds the same files: {summary}"
    );
    let r10 = DeltaRow::new(10, "g", 100, &oldest);
    assert_eq!(fx.delta.append(std::slice::from_ref(&r10)), 3);
    let summary = fx.run_ok();
    assert_eq!(summary["partitions_loaded"], json!(1), "{summary}");
    want.insert("ord:10".into(), Some((r10.json(), expiry(&oldest))));
    assert_eq!(fx.contents(), want);
    assert_eq!(
        versions(&fx.ledger()),
        BTreeMap::from([
            (oldest.clone(), "3".into()),
            (middle.clone(), "1".into()),
            (newest.clone(), "2".into())
        ])
    );
    let status = fx.ws.cli(&["status", "--json"]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        (
            &status[0]["catalog"],
            &status[0]["format"],
            &status[0]["snapshot"]
        ),
        (&json!("none"), &json!("delta"), &json!("3")),
        "{status}"
    );
    let plan = fx.ws.cli(&["plan", "--as-of", &ago(0)]);
    assert!(
        plan.stdout
            .contains("table orders from none/delta version 3"),
        "{}",
        plan.dump()
    );
}

/// The protocol action of a table that needs `feature` to be read.
fn protocol_needing(feature: &str) -> Value {
    json!({"protocol": {
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": [feature],
        "writerFeatures": [feature],
    }})
}

/// The table's `metaData` action (from its first commit) with column mapping by name: every
/// column given an id and a physical name, as Spark writes them.
fn column_mapped_metadata(delta: &DeltaTable) -> Value {
    let first =
        std::fs::read_to_string(delta.dir().join("_delta_log/00000000000000000000.json")).unwrap();
    let mut metadata = first
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|action| action.get("metaData").is_some())
        .expect("a metaData action")["metaData"]
        .clone();
    let mut schema: Value =
        serde_json::from_str(metadata["schemaString"].as_str().unwrap()).unwrap();
    let fields = schema["fields"].as_array_mut().unwrap();
    let columns = fields.len();
    for (i, field) in fields.iter_mut().enumerate() {
        field["metadata"] = json!({
            "delta.columnMapping.id": i + 1,
            "delta.columnMapping.physicalName": format!("col-{}", i + 1),
        });
    }
    metadata["schemaString"] = json!(schema.to_string());
    metadata["configuration"] = json!({
        "delta.columnMapping.mode": "name",
        "delta.columnMapping.maxColumnId": columns.to_string(),
    });
    json!({"metaData": metadata})
}

#[test]
fn a_reader_feature_coldsync_does_not_handle_fails_the_table_and_records_nothing() {
    let fx = fixture();
    let (middle, newest) = (ago(3), ago(2));
    let rows = [
        DeltaRow::new(1, "a", 10, &middle),
        DeltaRow::new(2, "b", 20, &newest),
    ];
    fx.delta.append(&rows);
    // typeWidening: delta_kernel reads it, coldsync refuses it; an unknown feature: refused by
    // delta_kernel, named all the same; column mapping by name (reader version 2): the files'
    // column names are physical names.
    let cases = [
        ("\"typeWidening\"", vec![protocol_needing("typeWidening")]),
        ("fancyNewFeature", vec![protocol_needing("fancyNewFeature")]),
        (
            "column mapping (delta.columnMapping.mode = name)",
            vec![
                json!({"protocol": {"minReaderVersion": 2, "minWriterVersion": 5}}),
                column_mapped_metadata(&fx.delta),
            ],
        ),
    ];
    for (feature, actions) in cases {
        let version = fx.delta.commit_raw(&actions);
        let out = fx.run();
        assert_eq!(out.status_code, 3, "{}", out.dump());
        let failed = out
            .event("table_failed")
            .unwrap_or_else(|| panic!("{}", out.dump()));
        let error = text(failed, "error");
        assert!(error.contains("table orders"), "{error}");
        assert!(error.contains(feature), "{error}");
        assert!(error.contains("nothing of the table is loaded"), "{error}");
        assert!(
            fx.redis.keys("ord:*").is_empty(),
            "{feature}: nothing written"
        );
        assert!(fx.ledger().is_empty(), "{feature}: nothing recorded");
        let plan = fx.ws.cli(&["plan", "--as-of", &ago(0)]);
        assert!(
            plan.stdout.contains(feature),
            "plan says why: {}",
            plan.dump()
        );
        std::fs::remove_file(
            fx.delta
                .dir()
                .join(format!("_delta_log/{version:020}.json")),
        )
        .unwrap();
    }
    // Without the crafted commit the table loads.
    let summary = fx.run_ok();
    assert_eq!(summary["partitions_loaded"], json!(2), "{summary}");
    assert_eq!(
        fx.contents(),
        expected(&[(&rows[0], &middle), (&rows[1], &newest)])
    );
}

/// Commits what a deletion-vector writer (Spark, Databricks) commits for a `DELETE` of one row
/// of `day`: the protocol enables the feature, the day's only file is removed and re-added with
/// a vector. Returns the file's path.
fn delete_one_row_by_deletion_vector(delta: &DeltaTable, day: &str) -> String {
    let adds = delta.add_actions_of_day(day);
    assert_eq!(adds.len(), 1, "{adds:?}");
    let mut add = adds[0].clone();
    let remove = json!({"remove": {
        "path": add["path"], "deletionTimestamp": 1, "dataChange": true,
        "extendedFileMetadata": true, "partitionValues": add["partitionValues"], "size": add["size"],
    }});
    add["deletionVector"] = json!({
        "storageType": "u", "pathOrInlineDv": "ab^-aqEH.-t@S}K{vb[*k^", "offset": 1,
        "sizeInBytes": 36, "cardinality": 1,
    });
    delta.commit_raw(&[
        protocol_needing("deletionVectors"),
        remove,
        json!({"add": add.clone()}),
    ]);
    add["path"].as_str().unwrap().to_string()
}

/// A run that fails (exit 3) on `day` alone, for a deletion vector on `file`.
fn assert_day_refused_for_deletion_vector(out: &CliOutput, day: &str, file: &str) {
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let failed = out.events_named("partition_failed");
    assert_eq!(failed.len(), 1, "{}", out.dump());
    assert_eq!(text(failed[0], "date"), day);
    let error = text(failed[0], "error");
    assert!(error.contains("deletion vector"), "{error}");
    assert!(error.contains(file), "{error}");
}

#[test]
fn a_deletion_vector_refuses_its_day_and_the_other_days_load() {
    let fx = fixture();
    let (oldest, middle, newest) = (ago(4), ago(3), ago(2));
    let rows = [
        DeltaRow::new(1, "a", 10, &oldest),
        DeltaRow::new(2, "b", 20, &middle),
        DeltaRow::new(3, "c", 30, &middle),
        DeltaRow::new(4, "d", 40, &newest),
    ];
    fx.delta.append(&rows);

    // A deletion vector on a day not loaded yet: that day fails, the others load.
    let file = delete_one_row_by_deletion_vector(&fx.delta, &middle);
    let out = fx.run();
    assert_day_refused_for_deletion_vector(&out, &middle, &file);
    let mut want = expected(&[(&rows[0], &oldest), (&rows[3], &newest)]);
    assert_eq!(
        fx.contents(),
        want,
        "the other days load, nothing of middle"
    );
    assert_eq!(
        fx.ledger().keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([oldest.clone(), newest.clone()])
    );

    // The remedy: the day rewritten without deletion vectors (a purge: its file without the
    // deleted row) loads at the next run.
    fx.delta.purge_day(&middle, &rows[2..3]);
    let summary = fx.run_ok();
    assert_eq!(summary["partitions_loaded"], json!(1), "{summary}");
    want.insert("ord:3".into(), Some((rows[2].json(), expiry(&middle))));
    assert_eq!(fx.contents(), want);

    // A deletion vector on a loaded day: the day is changed and fails at every run; its keys
    // stay as they were loaded.
    let file = delete_one_row_by_deletion_vector(&fx.delta, &newest);
    for _ in 0..2 {
        let out = fx.run();
        assert_day_refused_for_deletion_vector(&out, &newest, &file);
        assert_eq!(fx.contents(), want);
    }
}
