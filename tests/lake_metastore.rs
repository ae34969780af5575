//! Iceberg and Delta tables registered in a real Hive Metastore (`catalog = "hive_metastore"`):
//! the metastore says where the table is (an Iceberg table's `metadata_location` parameter, a
//! Delta table's location), the table's own metadata says which files are current. Each table is
//! written by its real producer (pyiceberg, deltalake) and registered as Spark and Iceberg's Hive
//! catalog register them; the loads are checked key by key against a real Redis, a rerun is a
//! no-op, and a commit that the metastore points at reloads only the day it rewrote.

mod common;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use common::*;
use serde_json::Value;

fn loaded_dates(out: &CliOutput) -> Vec<String> {
    out.events_named("partition_loaded")
        .iter()
        .map(|e| text(e, "date").to_string())
        .collect()
}

fn snapshot_of(redis: &RedisServer, table: &str, date: NaiveDate) -> Value {
    let entries = redis.hgetall(&format!("coldsync:{{{table}}}:partitions"));
    let entry = entries
        .get(&iso(date))
        .unwrap_or_else(|| panic!("{table} {date} not recorded"));
    serde_json::from_str::<Value>(entry).unwrap()["snapshot"].clone()
}

/// The table entry of a metastore-registered table.
fn registered(name: &str, format: &str, key: &str, metastore: &HiveMetastore, db: &str) -> String {
    format!(
        "[[tables]]\nname = \"{name}\"\ncatalog = \"hive_metastore\"\nmetastore_uris = [\"{}\"]\n\
         database = \"{db}\"\ntable = \"{name}\"\nformat = \"{format}\"\nkey = \"{key}\"\n",
        metastore.uri()
    )
}

#[test]
fn an_iceberg_table_found_through_the_metastores_metadata_location() {
    let metastore = hive_metastore();
    let ws = CliWorkspace::new();
    let catalog = IcebergCatalog::new(ws.root().parent().unwrap());
    let [d4, d3, d2] = [ago(4), ago(3), ago(2)];
    let commit = catalog.last(
        &format!(
            "create orders identity_dt\n\
             append orders {} 1 2 a\n\
             append orders {} 2 3 b\n\
             append orders {} 4 4 a\n\
             append orders {} 5 5 a\n",
            iso(d4),
            iso(d3),
            iso(d2),
            iso(ago(1)) // hot: never loaded
        ),
        "orders",
    );
    let db = "lake_ice";
    let location = catalog.warehouse().join("sales/orders");
    let location = format!("file:{}", location.display());
    metastore.create_database(db, &format!("file:{}", catalog.warehouse().display()));
    metastore.create_table(
        db,
        "orders",
        &location,
        &[],
        &[
            ("table_type", "ICEBERG"),
            ("metadata_location", &commit.metadata_location),
        ],
    );
    let redis = RedisServer::start();
    ws.write(
        &redis,
        &registered("orders", "iceberg", "ord:{id}", metastore, db),
    );

    let out = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert_eq!(loaded_dates(&out), [d4, d3, d2].map(iso), "{}", out.dump());
    let value =
        |region: &str, id: i64| format!("{{\"region\":\"{region}\",\"amount\":{}}}", id * 10);
    let mut expected = BTreeMap::from([
        ("ord:1".to_string(), (value("eu-a", 1), d4)),
        ("ord:2".to_string(), (value("eu-b", 2), d3)), // in d4 too: the newer day wins
        ("ord:3".to_string(), (value("eu-b", 3), d3)),
        ("ord:4".to_string(), (value("eu-a", 4), d2)),
    ]);
    assert_contents(&redis, "ord:*", &expected);
    let snapshot = commit.snapshot_id.clone().unwrap();
    assert_eq!(
        snapshot_of(&redis, "orders", d2),
        Value::String(snapshot.clone())
    );
    let plan = ws.cli(&["plan", "--as-of", &iso(today())]);
    assert!(
        plan.stdout.contains(&format!(
            "table orders from hive_metastore/iceberg snapshot {snapshot}"
        )),
        "{}",
        plan.dump()
    );

    // Unchanged: a no-op.
    let again = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(again.status_code, 0, "{}", again.dump());
    assert_eq!(
        loaded_dates(&again),
        Vec::<String>::new(),
        "{}",
        again.dump()
    );

    // An overwrite of d3 committed as Iceberg's Hive catalog does (the table's
    // metadata_location moves): d3 alone reloads.
    let overwritten = catalog.last(&format!("overwrite orders {} 2 3 c\n", iso(d3)), "orders");
    metastore.alter_table(
        db,
        "orders",
        &[
            ("metadata_location", &overwritten.metadata_location),
            ("previous_metadata_location", &commit.metadata_location),
        ],
    );
    let third = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(third.status_code, 0, "{}", third.dump());
    assert_eq!(loaded_dates(&third), [iso(d3)], "{}", third.dump());
    for id in 2..=3 {
        expected.insert(format!("ord:{id}"), (value("eu-c", id), d3));
    }
    assert_contents(&redis, "ord:*", &expected);
    assert_eq!(
        snapshot_of(&redis, "orders", d3),
        Value::String(overwritten.snapshot_id.unwrap())
    );
}

#[test]
fn a_delta_table_found_through_the_metastores_location() {
    let metastore = hive_metastore();
    let ws = CliWorkspace::new();
    std::fs::create_dir_all(ws.root()).unwrap();
    // The table lives away from any path in the config: only the metastore knows where.
    let delta = DeltaTable::at(&ws.root().join("lake/payments_v7"));
    let [d4, d3, d2] = [ago(4), ago(3), ago(2)];
    let rows = [
        DeltaRow::new(1, "paid", 1, &iso(d4)),
        DeltaRow::new(2, "paid", 2, &iso(d4)),
        DeltaRow::new(2, "refunded", 3, &iso(d3)), // the newer day wins
        DeltaRow::new(3, "paid", 4, &iso(d2)),
        DeltaRow::new(4, "paid", 5, &iso(ago(1))), // hot: never loaded
    ];
    delta.append(&rows);
    let db = "lake_delta";
    metastore.create_database(db, &format!("file:{}", ws.root().display()));
    // Spark registers a Delta table with its location and no partitions in the metastore.
    metastore.create_table(
        db,
        "payments",
        &format!("file:{}", delta.dir().display()),
        &[],
        &[("spark.sql.sources.provider", "DELTA")],
    );
    let redis = RedisServer::start();
    ws.write(
        &redis,
        &registered("payments", "delta", "pay:{order_id}", metastore, db),
    );

    let out = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert_eq!(loaded_dates(&out), [d4, d3, d2].map(iso), "{}", out.dump());
    let mut expected: BTreeMap<String, (String, NaiveDate)> = [(0, d4), (2, d3), (3, d2)]
        .into_iter()
        .map(|(i, date)| (format!("pay:{}", rows[i].order_id), (rows[i].json(), date)))
        .collect();
    assert_contents(&redis, "pay:*", &expected);
    let version = delta.latest_version();
    assert_eq!(
        snapshot_of(&redis, "payments", d2),
        Value::String(version.to_string())
    );
    let plan = ws.cli(&["plan", "--as-of", &iso(today())]);
    assert!(
        plan.stdout.contains(&format!(
            "table payments from hive_metastore/delta version {version}"
        )),
        "{}",
        plan.dump()
    );

    let again = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(again.status_code, 0, "{}", again.dump());
    assert_eq!(
        loaded_dates(&again),
        Vec::<String>::new(),
        "{}",
        again.dump()
    );

    // An overwrite of d4 (a new version): d4 alone reloads.
    let rewritten = DeltaRow::new(1, "cancelled", 9, &iso(d4));
    delta.overwrite_day(&iso(d4), std::slice::from_ref(&rewritten));
    let third = ws.cli(&["run", "--as-of", &iso(today())]);
    assert_eq!(third.status_code, 0, "{}", third.dump());
    assert_eq!(loaded_dates(&third), [iso(d4)], "{}", third.dump());
    expected.insert("pay:1".into(), (rewritten.json(), d4));
    assert_contents(&redis, "pay:*", &expected);
}
