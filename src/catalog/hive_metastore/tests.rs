//! [`discover`] and [`load_table`] against a fake metastore: the generated Thrift processor
//! serving a table and partitions from memory on a loopback port, over a real file system store.
//! (The real metastore, a JVM, is in `tests/hive_metastore.rs`.)

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::thread;

use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::server::TProcessor;
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport};

use super::thrift_gen::{
    FieldSchema, MetaException, NoSuchObjectException, Partition, StorageDescriptor, Table,
    ThriftHiveMetastoreSyncHandler, ThriftHiveMetastoreSyncProcessor,
};
use super::*;
use crate::config::Config;

/// A metastore holding one table `sales.orders`.
struct Fake {
    table: Table,
    partitions: Vec<Partition>,
}

impl ThriftHiveMetastoreSyncHandler for Fake {
    fn handle_get_table(&self, db: String, name: String) -> thrift::Result<Table> {
        if (db.as_str(), name.as_str()) != ("sales", "orders") {
            return Err(thrift::Error::User(Box::new(NoSuchObjectException::new(
                format!("{db}.{name} table not found"),
            ))));
        }
        Ok(self.table.clone())
    }

    fn handle_get_partition_names(
        &self,
        _: String,
        _: String,
        _: i16,
    ) -> thrift::Result<Vec<String>> {
        let keys = key_names(&self.table.partition_keys);
        Ok(self
            .partitions
            .iter()
            .map(|p| names::partition_name(&keys, p.values.as_ref().unwrap()))
            .collect())
    }

    fn handle_get_partitions_by_names(
        &self,
        _: String,
        _: String,
        wanted: Vec<String>,
    ) -> thrift::Result<Vec<Partition>> {
        if wanted.is_empty() {
            return Err(thrift::Error::User(Box::new(MetaException::new(
                "no names".to_string(),
            ))));
        }
        let keys = key_names(&self.table.partition_keys);
        Ok(self
            .partitions
            .iter()
            .filter(|p| wanted.contains(&names::partition_name(&keys, p.values.as_ref().unwrap())))
            .cloned()
            .collect())
    }
}

/// Serves `fake` on a free loopback port until the test process ends; `thrift://127.0.0.1:PORT`.
fn serve(fake: Fake) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let processor = Arc::new(ThriftHiveMetastoreSyncProcessor::new(fake));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let processor = Arc::clone(&processor);
            thread::spawn(move || {
                let reader = TBufferedReadTransport::new(stream.try_clone().unwrap());
                let mut input = TBinaryInputProtocol::new(reader, true);
                let mut output =
                    TBinaryOutputProtocol::new(TBufferedWriteTransport::new(stream), true);
                while processor.process(&mut input, &mut output).is_ok() {}
            });
        }
    });
    format!("thrift://127.0.0.1:{port}")
}

fn hms_table(keys: &[&str], parameters: &[(&str, &str)]) -> Table {
    Table::new(
        "orders".to_string(),
        "sales".to_string(),
        StorageDescriptor::new("file:/nowhere/orders".to_string()),
        keys.iter()
            .map(|k| FieldSchema::new(k.to_string(), "string".to_string(), None))
            .collect::<Vec<_>>(),
        parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        "EXTERNAL_TABLE".to_string(),
    )
}

fn partition(values: &[&str], location: &str, ddl_time: &str) -> Partition {
    Partition::new(
        values.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
        StorageDescriptor::new(location.to_string()),
        BTreeMap::from([
            ("transient_lastDdlTime".to_string(), ddl_time.to_string()),
            ("numFiles".to_string(), "1".to_string()),
        ]),
    )
}

fn config(root: &Path, uris: &[String], extra: &str) -> TableConfig {
    let uris: Vec<String> = uris.iter().map(|u| format!("{u:?}")).collect();
    let text = format!(
        "[source]\nscheme = \"fs\"\nroot = \"{}\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n\
         [defaults]\nretention_days = 10\n\
         [[tables]]\nname = \"orders\"\nkey = \"k:{{id}}\"\ncatalog = \"hive_metastore\"\n\
         metastore_uris = [{}]\ndatabase = \"sales\"\ntable = \"orders\"\n{extra}\n",
        root.display(),
        uris.join(", ")
    );
    Config::parse(&text, &HashMap::new()).unwrap().tables[0].clone()
}

fn fs(root: &Path) -> Operator {
    Operator::via_iter("fs", [("root".to_string(), root.display().to_string())]).unwrap()
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[tokio::test]
async fn registered_partitions_group_by_date_with_their_files_and_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let at = |rel: &str| format!("file:{}/{rel}", root.display());
    write(root, "orders/dt=2026-11-19/hour=00/part-0", b"data-a");
    write(root, "orders/dt=2026-11-19/hour=00/_SUCCESS", b"");
    write(root, "orders/dt=2026-11-19/hour=00/.part-0.crc", b"x");
    write(
        root,
        "orders/dt=2026-11-19/hour=00/_temporary/0/part-9",
        b"junk",
    );
    write(root, "orders/dt=2026-11-19/hour=01/part-0", b"data-b");
    write(root, "orders/dt=2026-11-19/hour=01/empty", b"");
    write(root, "custom/late-day/part-0", b"data-c");
    write(
        root,
        "orders/dt=2026-11-20/hour=00/unregistered",
        b"not read: no partition",
    );
    let fake = Fake {
        table: hms_table(&["dt", "hour"], &[]),
        partitions: vec![
            partition(
                &["2026-11-19", "00"],
                &at("orders/dt=2026-11-19/hour=00"),
                "100",
            ),
            partition(
                &["2026-11-19", "01"],
                &at("orders/dt=2026-11-19/hour=01/"),
                "101",
            ),
            partition(&["2026-11-18", "00"], &at("custom/late-day"), "102"),
            partition(
                &["2026-11-17", "00"],
                &at("orders/dt=2026-11-17/hour=00"),
                "103",
            ),
            partition(&["__HIVE_DEFAULT_PARTITION__", "00"], &at("orders/x"), "1"),
            partition(&["2026-1-5", "00"], &at("orders/y"), "1"),
        ],
    };
    let uri = serve(fake);
    let table = config(root, &[uri], "");
    let listing = discover(&fs(root), &table).await.unwrap();

    assert_eq!(
        listing.invalid_values.iter().collect::<Vec<_>>(),
        ["2026-1-5", "__HIVE_DEFAULT_PARTITION__"]
    );
    assert_eq!(
        listing.partitions.keys().copied().collect::<Vec<_>>(),
        [d("2026-11-17"), d("2026-11-18"), d("2026-11-19")]
    );
    let day = &listing.partitions[&d("2026-11-19")];
    let paths: Vec<&str> = day.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "orders/dt=2026-11-19/hour=00/part-0",
            "orders/dt=2026-11-19/hour=01/part-0"
        ]
    );
    assert_eq!(day.dir, "orders/dt=2026-11-19/");
    assert_eq!(day.empty_files, 1);
    assert!(day.committed && day.refusal.is_none());
    assert!(day.marker_dirs.contains("orders/dt=2026-11-19/hour=00/"));
    assert_eq!(listing.ignored_objects, 2, "the .crc and _temporary/ files");
    let custom = &listing.partitions[&d("2026-11-18")];
    assert_eq!(custom.files[0].path, "custom/late-day/part-0");
    assert_eq!(custom.dir, "custom/late-day/");
    // A registered partition whose directory holds nothing: no files, no markers (the plan
    // calls it incomplete, it is never recorded empty).
    let vanished = &listing.partitions[&d("2026-11-17")];
    assert!(vanished.files.is_empty() && vanished.marker_dirs.is_empty());
    assert_eq!(vanished.empty_files, 0);

    // A parameter change alone changes the date's fingerprint.
    let before = day.fingerprint();
    let fake = Fake {
        table: hms_table(&["dt", "hour"], &[]),
        partitions: vec![
            partition(
                &["2026-11-19", "00"],
                &at("orders/dt=2026-11-19/hour=00"),
                "100",
            ),
            partition(
                &["2026-11-19", "01"],
                &at("orders/dt=2026-11-19/hour=01/"),
                "999",
            ),
        ],
    };
    let table = config(root, &[serve(fake)], "");
    let again = discover(&fs(root), &table).await.unwrap();
    assert_ne!(again.partitions[&d("2026-11-19")].fingerprint(), before);
}

#[tokio::test]
async fn the_date_key_may_come_second_and_must_be_a_partition_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "o/region=eu/day=20261119/f", b"x");
    let location = format!("file:{}/o/region=eu/day=20261119", root.display());
    let fake = || Fake {
        table: hms_table(&["region", "day"], &[]),
        partitions: vec![partition(&["eu", "20261119"], &location, "1")],
    };
    let table = config(
        root,
        &[serve(fake())],
        "partition_column = \"day\"\npartition_format = \"%Y%m%d\"",
    );
    let listing = discover(&fs(root), &table).await.unwrap();
    assert_eq!(listing.partitions[&d("2026-11-19")].files.len(), 1);

    let uri = serve(fake());
    let err = discover(&fs(root), &config(root, std::slice::from_ref(&uri), ""))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(!err.is_transient(), "{text}");
    assert!(text.contains(&uri), "{text}");
    assert!(
        text.contains("partition_column \"dt\" is not a partition key of sales.orders (its keys: region, day)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_location_outside_the_store_fails_the_table_naming_partition_and_location() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let fake = Fake {
        table: hms_table(&["dt"], &[]),
        partitions: vec![partition(
            &["2026-11-19"],
            "s3a://lake/warehouse/orders/dt=2026-11-19",
            "1",
        )],
    };
    let table = config(root, &[serve(fake)], "");
    let err = discover(&fs(root), &table).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SourceError::Location { .. }), "{text}");
    assert!(
        text.contains(
            "location s3a://lake/warehouse/orders/dt=2026-11-19 is not in the configured store"
        ),
        "{text}"
    );
    assert!(text.contains("(partition dt=2026-11-19)"), "{text}");
}

/// A metastore that accepts a connection and closes it at once.
fn up_then_down() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    format!("thrift://127.0.0.1:{port}")
}

#[tokio::test]
async fn uris_are_tried_in_order_and_a_missing_table_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let down = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!(
            "thrift://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        )
    };
    let fake = Fake {
        table: hms_table(
            &["dt"],
            &[("table_type", "ICEBERG"), ("metadata_location", "m.json")],
        ),
        partitions: vec![],
    };
    let up = serve(fake);
    let table = config(root, &[down.clone(), up.clone()], "");
    let found = load_table(&table).await.unwrap();
    assert_eq!(found.location, "file:/nowhere/orders");
    assert_eq!(found.partition_keys, ["dt"]);
    assert_eq!(found.parameters["metadata_location"], "m.json");
    let err = discover(&fs(root), &table).await.unwrap_err().to_string();
    assert!(
        err.contains("is an Iceberg table: set format = \"iceberg\""),
        "{err}"
    );

    // Every URI down: transient, naming the last one tried and what the others said.
    let table = config(root, &[up_then_down(), down.clone()], "");
    let err = discover(&fs(root), &table).await.unwrap_err();
    let text = err.to_string();
    assert!(err.is_transient(), "{text}");
    assert!(
        text.contains(&format!(
            "the hive_metastore catalog at {down}: cannot connect"
        )),
        "{text}"
    );
    assert!(text.contains("also failed: get_table"), "{text}");

    let mut missing = config(root, &[up], "");
    if let Catalog::HiveMetastore { table, .. } = &mut missing.source.catalog {
        *table = "nope".to_string();
    }
    let err = load_table(&missing).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(
        err.to_string()
            .contains("sales.nope not found in the metastore"),
        "{err}"
    );
}
