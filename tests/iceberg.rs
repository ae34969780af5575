//! `format = "iceberg"` end to end, against tables written by the real producer (pyiceberg, a
//! SQL catalog on sqlite, a `file://` warehouse in the test's directory) and a real Redis:
//! - a table partitioned by identity(dt), found by `metadata_location`: the cold days loaded
//!   (exact values and expiries, latest date wins), a rerun that touches no data key, an
//!   overwrite of one day that reloads that day only;
//! - a table partitioned by day(ts) behind a REST catalog (a shim over the same catalog, started
//!   and killed by the test): `plan` and `status` say `rest/iceberg snapshot N`, an append to
//!   one day reloads that day only;
//! - spec evolution (identity(dt), then identity(dt) + identity(region)): the files of both
//!   specs placed on their days; the table found through a Hadoop `version-hint.text`;
//! - a position delete file (merge-on-read): its day refused (exit 3, the file named), the rest
//!   loaded; an unpartitioned table and a table without a metadata pointer refused, saying why.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use chrono::NaiveDate;
use common::*;
use serde_json::Value;

/// The value of row `id` written with `region` (the fixture's `amount` is `id * 10`; the
/// partition column and the key column are not values).
fn value(region: &str, id: i64) -> String {
    format!("{{\"region\":\"{region}\",\"amount\":{}}}", id * 10)
}

fn ledger(redis: &RedisServer, table: &str) -> BTreeMap<String, Value> {
    redis
        .hgetall(&format!("coldsync:{{{table}}}:partitions"))
        .into_iter()
        .map(|(k, v)| (k, serde_json::from_str(&v).unwrap()))
        .collect()
}

fn u(event: &Value, name: &str) -> u64 {
    field(event, name)
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {event}"))
}

/// `calls` of `command` in `INFO commandstats` (0 when never called).
fn calls(redis: &RedisServer, command: &str) -> u64 {
    let info: String = redis.cmd("INFO", &["commandstats"]);
    info.lines()
        .find(|l| l.starts_with(&format!("cmdstat_{command}:")))
        .and_then(|l| l.split([':', ',']).find_map(|kv| kv.strip_prefix("calls=")))
        .map_or(0, |v| v.parse().unwrap())
}

/// The workspace's config with one Iceberg table.
fn iceberg_table(name: &str, key: &str, partition_column: &str, pointer: &str) -> String {
    format!(
        "[[tables]]\nname = \"{name}\"\nformat = \"iceberg\"\nkey = \"{key}\"\npartition_column = \"{partition_column}\"\n{pointer}\n"
    )
}

fn catalog_of(ws: &CliWorkspace) -> IcebergCatalog {
    IcebergCatalog::new(ws.root().parent().unwrap())
}

#[test]
fn an_identity_dt_table_loads_its_cold_days_then_a_rerun_is_a_no_op_and_an_overwritten_day_reloads_alone(
) {
    let ws = CliWorkspace::new();
    let catalog = catalog_of(&ws);
    let [d5, d4, d3, d2, d1] = [ago(5), ago(4), ago(3), ago(2), ago(1)];
    let commit = catalog.last(
        &format!(
            "create orders identity_dt\n\
             append orders {} 1 3 a\n\
             append orders {} 3 5 b\n\
             append orders {} 6 6 a\n\
             append orders {} 7 8 a\n\
             append orders {} 9 9 a\n\
             append orders {} 10 10 a\n",
            iso(d5),
            iso(d4),
            iso(d3),
            iso(d2),
            iso(d1),
            iso(ago(40)) // older than retention_days = 30: never loaded
        ),
        "orders",
    );
    let snapshot = commit.snapshot_id.clone().unwrap();
    let redis = RedisServer::start();
    let table = |location: &str| {
        iceberg_table(
            "orders",
            "ord:{id}",
            "dt",
            &format!("metadata_location = \"{location}\""),
        )
    };
    ws.write(&redis, &table(&commit.metadata_location));

    let out = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let finished = out.event("run_finished").unwrap();
    assert_eq!(u(finished, "partitions_loaded"), 4, "{}", out.dump());
    let mut expected: BTreeMap<String, (String, NaiveDate)> = BTreeMap::new();
    for (ids, region, date) in [
        (1..=2, "eu-a", d5),
        (3..=5, "eu-b", d4), // ord:3 is in d5 too: the newer day wins
        (6..=6, "eu-a", d3),
        (7..=8, "eu-a", d2),
    ] {
        for id in ids {
            expected.insert(format!("ord:{id}"), (value(region, id), date));
        }
    }
    assert_contents(&redis, "ord:*", &expected);
    let entries = ledger(&redis, "orders");
    assert_eq!(
        entries.keys().cloned().collect::<Vec<_>>(),
        [d5, d4, d3, d2].map(iso).to_vec()
    );
    for entry in entries.values() {
        assert_eq!(
            entry["snapshot"],
            Value::String(snapshot.clone()),
            "{entry}"
        );
    }
    let status = ws.cli(&["status"]);
    assert!(
        status.stdout.contains(&format!(
            "orders (default): none/iceberg snapshot {snapshot}: 4 partitions loaded"
        )),
        "{}",
        status.dump()
    );
    let plan = ws.cli(&["plan", "--as-of", &iso(today())]);
    assert!(
        plan.stdout.contains(&format!(
            "table orders from none/iceberg snapshot {snapshot}"
        )),
        "{}",
        plan.dump()
    );

    // Unchanged table: nothing loaded, no command on a data key.
    let sets_before = calls(&redis, "set");
    let monitor = RedisMonitor::start(&redis);
    let again = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(again.status_code, 0, "{}", again.dump());
    assert_eq!(
        u(again.event("run_finished").unwrap(), "partitions_loaded"),
        0
    );
    assert_eq!(monitor.commands_on(&redis, "ord:"), Vec::<String>::new());
    assert!(
        calls(&redis, "set") - sets_before < 3,
        "a no-op run sets the lease and the watermark only"
    );
    assert_eq!(ledger(&redis, "orders"), entries);
    assert_contents(&redis, "ord:*", &expected);

    // An overwrite of d4: d4 reloads, the other days are not touched.
    let overwritten = catalog.last(&format!("overwrite orders {} 3 5 c\n", iso(d4)), "orders");
    assert_ne!(overwritten.snapshot_id.as_deref(), Some(snapshot.as_str()));
    ws.write(&redis, &table(&overwritten.metadata_location));
    let monitor = RedisMonitor::start(&redis);
    let third = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(third.status_code, 0, "{}", third.dump());
    let loaded: Vec<&str> = third
        .events_named("partition_loaded")
        .iter()
        .map(|e| text(e, "date"))
        .collect();
    assert_eq!(loaded, [iso(d4)], "{}", third.dump());
    let reloaded = third.event("partition_loaded").unwrap();
    assert_eq!(
        (u(reloaded, "files"), u(reloaded, "rows")),
        (1, 3),
        "the overwritten file (status DELETED) is not read"
    );
    let touched: BTreeSet<String> = monitor
        .commands_on(&redis, "ord:")
        .iter()
        .flat_map(|l| {
            l.split('"')
                .skip(1)
                .step_by(2)
                .filter(|token| token.starts_with("ord:"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        touched,
        ["ord:3", "ord:4", "ord:5"].map(String::from).into(),
        "only the overwritten day's keys are written"
    );
    for id in 3..=5 {
        expected.insert(format!("ord:{id}"), (value("eu-c", id), d4));
    }
    assert_contents(&redis, "ord:*", &expected);
    assert_eq!(
        ledger(&redis, "orders")[&iso(d4)]["snapshot"],
        Value::String(overwritten.snapshot_id.unwrap())
    );
}

#[test]
fn a_day_ts_table_behind_a_rest_catalog_names_its_snapshot_and_an_append_reloads_that_day_only() {
    let ws = CliWorkspace::new();
    let catalog = catalog_of(&ws);
    let [d4, d3, d2] = [ago(4), ago(3), ago(2)];
    let commit = catalog.last(
        &format!(
            "create events day_ts\n\
             append events {} 1 2 a\n\
             append events {} 2 3 b\n\
             append events {} 4 4 a\n",
            iso(d4),
            iso(d3),
            iso(d2)
        ),
        "events",
    );
    let snapshot = commit.snapshot_id.clone().unwrap();
    let shim = catalog.serve_rest();
    let redis = RedisServer::start();
    let events_table = iceberg_table(
        "events",
        "ev:{id}",
        "ts",
        &format!(
            "catalog = \"rest\"\ncatalog_uri = \"{}\"\ndatabase = \"sales\"\ntable = \"events\"",
            shim.uri()
        ),
    );
    ws.write(&redis, &events_table);

    let plan = ws.cli(&["plan", "--as-of", &iso(today())]);
    assert!(
        plan.stdout.contains(&format!(
            "table events from rest/iceberg snapshot {snapshot}"
        )),
        "{}",
        plan.dump()
    );
    let out = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert_eq!(
        u(out.event("run_finished").unwrap(), "partitions_loaded"),
        3
    );
    let mut expected: BTreeMap<String, (String, NaiveDate)> = [
        ("ev:1", value("eu-a", 1), d4),
        ("ev:2", value("eu-b", 2), d3),
        ("ev:3", value("eu-b", 3), d3),
        ("ev:4", value("eu-a", 4), d2),
    ]
    .into_iter()
    .map(|(k, v, d)| (k.to_string(), (v, d)))
    .collect();
    assert_contents(&redis, "ev:*", &expected);
    let status = ws.cli(&["status"]);
    assert!(
        status.stdout.contains(&format!(
            "events (default): rest/iceberg snapshot {snapshot}: 3 partitions loaded"
        )),
        "{}",
        status.dump()
    );

    let again = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(again.status_code, 0, "{}", again.dump());
    assert_eq!(
        u(again.event("run_finished").unwrap(), "partitions_loaded"),
        0
    );

    // A table the catalog does not have: the catalog's 404, named.
    ws.write(
        &redis,
        &iceberg_table(
            "missing",
            "miss:{id}",
            "ts",
            &format!(
                "catalog = \"rest\"\ncatalog_uri = \"{}\"\ndatabase = \"sales\"\ntable = \"nope\"",
                shim.uri()
            ),
        ),
    );
    let missing = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_ne!(missing.status_code, 0, "{}", missing.dump());
    let error = text(missing.event("table_failed").unwrap(), "error");
    assert!(error.contains("the rest catalog at"), "{error}");
    assert!(
        error.contains("/v1/shim/namespaces/sales/tables/nope"),
        "{error}"
    );
    assert!(
        error.contains("HTTP 404 (check database and table)"),
        "{error}"
    );
    ws.write(&redis, &events_table);

    // An append to d2 is a new snapshot: d2's file set changed, d3 and d4 did not.
    let appended = catalog.last(&format!("append events {} 5 5 c\n", iso(d2)), "events");
    let third = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(third.status_code, 0, "{}", third.dump());
    let loaded: Vec<&str> = third
        .events_named("partition_loaded")
        .iter()
        .map(|e| text(e, "date"))
        .collect();
    assert_eq!(loaded, [iso(d2)], "{}", third.dump());
    expected.insert("ev:5".into(), (value("eu-c", 5), d2));
    assert_contents(&redis, "ev:*", &expected);
    let entries = ledger(&redis, "events");
    assert_eq!(
        entries[&iso(d2)]["snapshot"],
        Value::String(appended.snapshot_id.unwrap())
    );
    assert_eq!(entries[&iso(d3)]["snapshot"], Value::String(snapshot));
}

#[test]
fn files_of_every_partition_spec_are_placed_on_their_days_in_a_table_found_by_its_version_hint() {
    let ws = CliWorkspace::new();
    let catalog = catalog_of(&ws);
    let [d4, d3, d2] = [ago(4), ago(3), ago(2)];
    let commit = catalog.last(
        &format!(
            "create evolved identity_dt\n\
             append evolved {} 1 2 a\n\
             append evolved {} 3 3 a\n\
             evolve evolved\n\
             append evolved {} 4 5 b us\n\
             append evolved {} 6 6 c\n",
            iso(d3),
            iso(d2),
            iso(d2),
            iso(d4)
        ),
        "evolved",
    );
    // A Hadoop table's pointer: metadata/version-hint.text names v<N>.metadata.json.
    let metadata_dir = catalog.warehouse().join("sales/evolved/metadata");
    let current = commit.metadata_location.strip_prefix("file://").unwrap();
    fs::copy(current, metadata_dir.join("v7.metadata.json")).unwrap();
    fs::write(metadata_dir.join("version-hint.text"), "7\n").unwrap();
    let redis = RedisServer::start();
    ws.write(
        &redis,
        &iceberg_table("evolved", "evo:{id}", "dt", "path = \"sales/evolved\""),
    );

    let out = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let files: BTreeMap<String, u64> = out
        .events_named("partition_loaded")
        .iter()
        .map(|e| (text(e, "date").to_string(), u(e, "files")))
        .collect();
    assert_eq!(
        files,
        [(iso(d4), 1), (iso(d3), 1), (iso(d2), 2)].into(),
        "d2 has one file of each spec"
    );
    let expected: BTreeMap<String, (String, NaiveDate)> = [
        ("evo:1", value("eu-a", 1), d3),
        ("evo:2", value("eu-a", 2), d3),
        ("evo:3", value("eu-a", 3), d2),
        ("evo:4", value("us-b", 4), d2),
        ("evo:5", value("us-b", 5), d2),
        ("evo:6", value("eu-c", 6), d4),
    ]
    .into_iter()
    .map(|(k, v, d)| (k.to_string(), (v, d)))
    .collect();
    assert_contents(&redis, "evo:*", &expected);
}

#[test]
fn a_day_with_a_delete_file_is_refused_naming_it_and_the_other_days_load() {
    let ws = CliWorkspace::new();
    let catalog = catalog_of(&ws);
    let [d3, d2] = [ago(3), ago(2)];
    let commit = catalog.last(
        &format!(
            "create refunds identity_dt\n\
             append refunds {} 1 2 a\n\
             append refunds {} 3 4 a\n\
             delete refunds {}\n",
            iso(d3),
            iso(d2),
            iso(d3)
        ),
        "refunds",
    );
    let redis = RedisServer::start();
    ws.write(
        &redis,
        &iceberg_table(
            "refunds",
            "ref:{id}",
            "dt",
            &format!("metadata_location = \"{}\"", commit.metadata_location),
        ),
    );
    let out = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let failed = out.events_named("partition_failed");
    assert_eq!(failed.len(), 1, "{}", out.dump());
    assert_eq!(text(failed[0], "date"), iso(d3));
    let error = text(failed[0], "error");
    assert!(error.contains("position delete file file://"), "{error}");
    assert!(
        error.contains(&format!("dt={}/delete-", iso(d3))),
        "{error}"
    );
    assert!(
        error.contains("merge-on-read deletes are out of scope"),
        "{error}"
    );
    let expected: BTreeMap<String, (String, NaiveDate)> = [
        ("ref:3", value("eu-a", 3), d2),
        ("ref:4", value("eu-a", 4), d2),
    ]
    .into_iter()
    .map(|(k, v, d)| (k.to_string(), (v, d)))
    .collect();
    assert_contents(&redis, "ref:*", &expected);
    assert_eq!(
        ledger(&redis, "refunds")
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        [iso(d2)]
    );
    let plan = ws.cli(&["plan", "--as-of", &iso(today())]);
    assert!(
        plan.stdout
            .contains("refused: the current snapshot has delete files"),
        "{}",
        plan.dump()
    );
}

#[test]
fn an_unpartitioned_table_and_a_table_without_a_metadata_pointer_are_refused_saying_what_to_do() {
    let ws = CliWorkspace::new();
    let catalog = catalog_of(&ws);
    let commit = catalog.last(
        &format!(
            "create flat unpartitioned\nappend flat {} 1 2 a\ncreate orders identity_dt\n",
            iso(ago(3))
        ),
        "flat",
    );
    let redis = RedisServer::start();
    ws.write(
        &redis,
        &format!(
            "{}{}",
            iceberg_table(
                "flat",
                "flat:{id}",
                "dt",
                &format!("metadata_location = \"{}\"", commit.metadata_location)
            ),
            iceberg_table("orders", "ord:{id}", "dt", "path = \"sales/orders\"")
        ),
    );
    let out = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let errors: BTreeMap<&str, &str> = out
        .events_named("table_failed")
        .iter()
        .map(|e| (text(e, "table"), text(e, "error")))
        .collect();
    assert_eq!(errors.len(), 2, "{}", out.dump());
    let flat = errors["flat"];
    assert!(flat.contains("sales/flat/data/"), "names the file: {flat}");
    assert!(
        flat.contains("partition spec 0 (unpartitioned) has no partition field on column \"dt\""),
        "{flat}"
    );
    let orders = errors["orders"];
    assert!(
        orders.contains("sales/orders/metadata/version-hint.text"),
        "{orders}"
    );
    assert!(orders.contains("set metadata_location"), "{orders}");
    assert!(
        orders.contains("never guesses the newest metadata file"),
        "{orders}"
    );
    assert_eq!(redis.keys("flat:*"), BTreeSet::new());
}

#[test]
fn min_age_minutes_counts_from_the_snapshot_that_added_the_files() {
    let ws = CliWorkspace::new();
    let catalog = catalog_of(&ws);
    let commit = catalog.last(
        &format!(
            "create fresh identity_dt\nappend fresh {} 1 1 a\n",
            iso(ago(2))
        ),
        "fresh",
    );
    let redis = RedisServer::start();
    let pointer = format!("metadata_location = \"{}\"", commit.metadata_location);
    ws.write(
        &redis,
        &iceberg_table(
            "fresh",
            "fr:{id}",
            "dt",
            &format!("{pointer}\nmin_age_minutes = 60"),
        ),
    );
    let out = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(
        u(out.event("run_finished").unwrap(), "partitions_loaded"),
        0,
        "{}",
        out.dump()
    );
    assert_eq!(redis.keys("fr:*"), BTreeSet::new());
    ws.write(&redis, &iceberg_table("fresh", "fr:{id}", "dt", &pointer));
    let out = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert_eq!(redis.get("fr:1"), Some(value("eu-a", 1)));
}
