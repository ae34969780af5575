//! The run's tracing spans: every event of a run sits in a `run` span naming the run, a table's
//! events in a `table` span naming the table, a partition's in a `partition` span naming the
//! table and the date (the JSON log leaves spans out; the text log and span-aware subscribers
//! show them).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use coldsync::run::RunOptions;
use common::*;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::instrument::WithSubscriber;

/// Collects JSON log lines, with the list of spans each event is in.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_table_and_partition_spans_carry_their_identity() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut fx = HiveTableFixture::new("orders");
    fx.spark_partition("dt=2026-11-19", &[orders_batch(&[1, 2], "a")])
        .spark_partition("dt=2026-11-20", &[orders_batch(&[3], "b")]);
    fx.write_local(dir.path());
    let engine = fs_engine(
        dir.path(),
        &redis,
        "[[tables]]\nname = \"orders\"\npath = \"orders\"\nkey = \"ord:{order_id}\"\n",
    )
    .await;
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let options = RunOptions {
        as_of: NaiveDate::from_ymd_opt(2026, 11, 23),
        ..RunOptions::default()
    };
    let summary = engine
        .run(&options, &CancellationToken::new())
        .with_subscriber(subscriber)
        .await
        .unwrap();
    assert_eq!(summary.partitions_loaded, 2, "{summary:?}");
    let bytes = capture.0.lock().unwrap().clone();
    let events: Vec<Value> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let spans_of = |name: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["event"] == name)
            .map(|e| e["spans"].clone())
            .collect()
    };
    let run = json!({"name": "run", "run_id": summary.run_id});
    let table = json!({"name": "table", "table": "orders"});
    let partition = |date: &str| json!({"name": "partition", "table": "orders", "date": date});
    assert_eq!(spans_of("run_started"), vec![json!([run])]);
    assert_eq!(spans_of("run_finished"), vec![json!([run])]);
    assert_eq!(
        spans_of("partition_loaded"),
        vec![
            json!([run, table, partition("2026-11-19")]),
            json!([run, table, partition("2026-11-20")]),
        ]
    );
    assert_eq!(
        spans_of("partition_late"),
        vec![json!([run, table])],
        "the 21st is missing: a table event, in no partition's span"
    );
}
