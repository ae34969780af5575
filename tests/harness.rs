//! Self-tests of the shared harness in `tests/common/`.
//!
//! These only exercise the harness (redis-server, moto, fixtures), never the
//! `coldsync` binary, so they can run before `src/` is complete.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int64Type, TimestampMillisecondType};
use arrow_array::Array;
use common::*;
use parquet::basic::Compression;

const UUID: &str = SPARK_JOB_UUID;

fn port_is_closed(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err()
}

#[test]
fn two_redis_servers_run_in_parallel_and_stop_on_drop() {
    let a = thread::spawn(RedisServer::start);
    let b = thread::spawn(RedisServer::start);
    let a = a.join().unwrap();
    let b = b.join().unwrap();
    assert_ne!(a.port, b.port);
    assert_ne!(a.pid(), b.pid());
    assert_eq!(a.url(), format!("redis://127.0.0.1:{}/", a.port));

    a.set("k", "from-a");
    b.set("k", "from-b");
    assert_eq!(a.get("k").as_deref(), Some("from-a"));
    assert_eq!(b.get("k").as_deref(), Some("from-b"));
    assert_eq!(a.get("missing"), None);

    // The async client from `client()` works too.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let via_async: Option<String> = rt.block_on(async {
        let mut con = a.client().get_multiplexed_async_connection().await.unwrap();
        redis::cmd("GET")
            .arg("k")
            .query_async(&mut con)
            .await
            .unwrap()
    });
    assert_eq!(via_async.as_deref(), Some("from-a"));

    // Helpers.
    let _: i64 = a.cmd("HSET", &["h", "f1", "v1", "f2", "v2"]);
    let expected: BTreeMap<String, String> = [("f1", "v1"), ("f2", "v2")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(a.hgetall("h"), expected);
    assert!(a.hgetall("nope").is_empty());
    assert_eq!(a.key_type("h"), "hash");
    assert_eq!(
        a.keys("*"),
        BTreeSet::from(["h".to_string(), "k".to_string()])
    );
    assert_eq!(a.dbsize(), 2);
    assert_eq!(a.pexpiretime("k"), -1);
    assert_eq!(a.pexpiretime("missing"), -2);
    let _: i64 = a.cmd("PEXPIREAT", &["k", "4102444800000"]);
    assert_eq!(a.pexpiretime("k"), 4_102_444_800_000);
    let n: i64 = a.query(redis::cmd("HLEN").arg("h"));
    assert_eq!(n, 2);
    assert_eq!(b.dbsize(), 1);
    a.flushall();
    assert_eq!(a.dbsize(), 0);

    let (pa, pb) = (a.port, b.port);
    let dir_a = a.dir().to_path_buf();
    drop(a);
    assert!(port_is_closed(pa), "redis on {pa} still answers after drop");
    assert!(!dir_a.exists(), "temp dir not removed");
    assert_eq!(b.get("k").as_deref(), Some("from-b"));
    drop(b);
    assert!(port_is_closed(pb));
}

#[test]
fn redis_start_with_extra_args() {
    let r = RedisServer::start_with_args(&["--maxmemory", "10mb"]);
    let cfg: Vec<String> = r.cmd("CONFIG", &["GET", "maxmemory"]);
    assert_eq!(cfg, vec!["maxmemory".to_string(), "10485760".to_string()]);
    let save: Vec<String> = r.cmd("CONFIG", &["GET", "save"]);
    assert_eq!(save, vec!["save".to_string(), String::new()]);
}

/// The fixture used by both the local and the S3 layout tests.
fn sample_fixture() -> HiveTableFixture {
    let mut fx = HiveTableFixture::new("warehouse/orders");
    fx.spark_partition(
        "dt=2026-11-20",
        &[orders_batch(&[1, 2, 3, 4, 5], "a"), orders_batch(&[6], "a")],
    )
    .hive_partition(
        &partition_path("dt", "20261119", &[("hour", "03")]),
        &[orders_batch(&[7, 8], "b"), orders_batch(&[9], "b")],
    )
    .spark_partition_with(
        "dt=2026-11-18",
        &[orders_batch(&[10], "c")],
        &SparkOptions {
            success: SuccessMarker::TableRoot,
            crc: false,
            temporary_junk: false,
            ..Default::default()
        },
    );
    fx
}

fn expected_paths() -> Vec<String> {
    [
        "warehouse/orders/_SUCCESS".to_string(),
        format!("warehouse/orders/dt=2026-11-18/part-00000-{UUID}-c000.snappy.parquet"),
        "warehouse/orders/dt=2026-11-20/._SUCCESS.crc".to_string(),
        format!("warehouse/orders/dt=2026-11-20/.part-00000-{UUID}-c000.snappy.parquet.crc"),
        format!("warehouse/orders/dt=2026-11-20/.part-00001-{UUID}-c000.snappy.parquet.crc"),
        "warehouse/orders/dt=2026-11-20/_SUCCESS".to_string(),
        format!(
            "warehouse/orders/dt=2026-11-20/_temporary/0/_temporary/{SPARK_ATTEMPT}/part-00000.parquet"
        ),
        format!("warehouse/orders/dt=2026-11-20/part-00000-{UUID}-c000.snappy.parquet"),
        format!("warehouse/orders/dt=2026-11-20/part-00001-{UUID}-c000.snappy.parquet"),
        format!("warehouse/orders/dt=20261119/hour=03/{HIVE_STAGING_DIR}/-ext-10000/000000_0"),
        "warehouse/orders/dt=20261119/hour=03/000000_0".to_string(),
        "warehouse/orders/dt=20261119/hour=03/000001_0".to_string(),
    ]
    .to_vec()
}

#[test]
fn local_fixture_layout_is_exact() {
    let fx = sample_fixture();
    assert_eq!(fx.paths(), expected_paths());
    assert_eq!(
        fx.data_files(),
        vec![
            format!("warehouse/orders/dt=2026-11-18/part-00000-{UUID}-c000.snappy.parquet"),
            format!("warehouse/orders/dt=2026-11-20/part-00000-{UUID}-c000.snappy.parquet"),
            format!("warehouse/orders/dt=2026-11-20/part-00001-{UUID}-c000.snappy.parquet"),
            "warehouse/orders/dt=20261119/hour=03/000000_0".to_string(),
            "warehouse/orders/dt=20261119/hour=03/000001_0".to_string(),
        ]
    );

    let dir = tempfile::tempdir().unwrap();
    fx.write_local(dir.path());
    assert_eq!(list_files(dir.path()), expected_paths());

    // Data files are valid Parquet with the rows that went in; junk is not.
    let root = dir.path().join("warehouse/orders");
    let bytes = std::fs::read(root.join(format!(
        "dt=2026-11-20/part-00000-{UUID}-c000.snappy.parquet"
    )))
    .unwrap();
    let batches = read_parquet_bytes(&bytes);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 5);
    let meta = parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(
        meta.metadata().num_row_groups(),
        2,
        "row groups of <= 4 rows"
    );

    let hive = std::fs::read(root.join("dt=20261119/hour=03/000000_0")).unwrap();
    assert_eq!(&hive[..4], b"PAR1");
    assert_eq!(read_parquet_bytes(&hive)[0].num_rows(), 2);

    for junk in fx.paths_of(FileKind::Junk) {
        let b = std::fs::read(dir.path().join(&junk)).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(b),
        );
        assert!(r.is_err(), "{junk} must not be valid parquet");
    }
    for success in fx.paths_of(FileKind::Success) {
        assert_eq!(
            std::fs::metadata(dir.path().join(success)).unwrap().len(),
            0
        );
    }
}

#[test]
fn write_file_and_write_success_create_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let b = parquet_bytes(&orders_batch(&[1], "x"), 1, Compression::UNCOMPRESSED);
    write_file(dir.path(), "t/dt=2026-11-20/a.parquet", &b);
    write_success(dir.path(), "t/dt=2026-11-20");
    write_success(dir.path(), "");
    assert_eq!(
        list_files(dir.path()),
        vec![
            "_SUCCESS",
            "t/dt=2026-11-20/_SUCCESS",
            "t/dt=2026-11-20/a.parquet"
        ]
    );
    assert_eq!(partition_path("dt", "2026-11-20", &[]), "dt=2026-11-20");
    assert_eq!(
        partition_path("dt", "20261120", &[("hour", "03"), ("m", "5")]),
        "dt=20261120/hour=03/m=5"
    );
    let zstd = parquet_bytes(
        &orders_batch(&[1, 2, 3], "z"),
        2,
        Compression::ZSTD(Default::default()),
    );
    assert_eq!(
        read_parquet_bytes(&zstd)
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        3
    );
}

#[test]
fn orders_batch_values_are_as_documented() {
    let b = orders_batch(&[0, 7, 123], "x1");
    assert_eq!(b.schema(), orders_schema());
    assert_eq!(b.num_rows(), 3);
    let order_id = b.column(0).as_primitive::<Int64Type>();
    let user_id = b.column(1).as_primitive::<Int64Type>();
    let amount = b.column(2).as_primitive::<Decimal128Type>();
    let status = b.column(3).as_string::<i32>();
    let created = b.column(4).as_primitive::<TimestampMillisecondType>();
    assert_eq!(order_id.values().to_vec(), vec![0, 7, 123]);
    assert_eq!(user_id.values().to_vec(), vec![10_000, 10_007, 10_023]);
    assert_eq!(amount.values().to_vec(), vec![99, 799, 12_399]);
    assert_eq!(amount.value_as_string(1), "7.99");
    assert_eq!(status.value(2), "paid-x1");
    assert_eq!(created.value(1), ORDERS_BASE_TS_MS + 7_000);
    assert_eq!(
        created.value_as_datetime(1).unwrap().to_string(),
        "2026-11-20 00:00:07"
    );
    for c in b.columns() {
        assert_eq!(c.null_count(), 0);
    }
    // Round trip through parquet keeps the schema (timestamp without tz, decimal(10,2)).
    // (The reader merges the two row groups into one batch.)
    let back = read_parquet_bytes(&parquet_bytes(&b, 2, Compression::SNAPPY));
    assert_eq!(back.len(), 1);
    assert_eq!(back[0], b);
}

#[test]
fn order_facts_batch_has_the_fact_schema_and_its_values() {
    let row = |order_id, remark| OrderFact {
        order_id,
        user_id: 7,
        shop_id: 8,
        amount_cents: 12_345,
        status: "paid",
        city: "Wien",
        created_at_ms: ORDERS_BASE_TS_MS,
        remark,
        is_first_order: order_id == 1,
    };
    let b = order_facts_batch(&[row(1, Some("fragile")), row(2, None)]);
    assert_eq!(b.schema(), order_facts_schema());
    assert_eq!(b.num_rows(), 2);
    let amount = b.column(3).as_primitive::<Decimal128Type>();
    assert_eq!(amount.value_as_string(0), "123.45");
    let created = b.column(6).as_primitive::<TimestampMillisecondType>();
    assert_eq!(created.timezone(), Some("UTC"));
    let remark = b.column(7).as_string::<i32>();
    assert_eq!((remark.value(0), remark.is_null(1)), ("fragile", true));
    let first = b.column(8).as_boolean();
    assert_eq!((first.value(0), first.value(1)), (true, false));
    for (i, c) in b.columns().iter().enumerate() {
        assert_eq!(c.null_count(), usize::from(i == 7), "column {i}");
    }
}

#[test]
fn scenario_writes_partitions_where_its_docs_say() {
    let redis = RedisServer::start();
    let scenario = Scenario::new(&redis);
    scenario
        .partition("wh/t", "2026-11-20", &[b"a".to_vec(), b"b".to_vec()])
        .spark("wh/s", "dt=2026-11-20", &[orders_batch(&[1], "x")])
        .spark_unmarked("wh/s", "dt=2026-11-21", &[orders_batch(&[2], "y")]);
    let files = list_files(scenario.root());
    let in_partition = |dir: &str| -> Vec<&str> {
        files
            .iter()
            .filter_map(|f| f.strip_prefix(dir))
            .filter(|f| !f.contains('/'))
            .collect()
    };
    assert_eq!(
        in_partition("wh/t/dt=2026-11-20/"),
        vec!["_SUCCESS", "part-00000.parquet", "part-00001.parquet"]
    );
    assert_eq!(
        std::fs::read(
            scenario
                .root()
                .join("wh/t/dt=2026-11-20/part-00001.parquet")
        )
        .unwrap(),
        b"b"
    );
    assert!(in_partition("wh/s/dt=2026-11-20/").contains(&"_SUCCESS"));
    assert!(!in_partition("wh/s/dt=2026-11-21/").contains(&"_SUCCESS"));
    let text = scenario.config_text(&table_toml("t", "wh/t", "k", "value_format = \"hash\""));
    let config = coldsync::config::Config::parse(&text, &Default::default()).unwrap();
    assert_eq!(config.tables[0].name, "t");
    assert!(
        text.contains(&format!("redis://127.0.0.1:{}/0", redis.port)),
        "{text}"
    );
}

#[test]
fn cli_output_event_helpers() {
    let stdout = r#"{"timestamp":"t","level":"INFO","fields":{"event":"run_start","tables":2}}
not json
{"event":"partition_done","rows":5}
[1,2]
"#;
    let stderr = r#"{"fields":{"event":"partition_done","rows":7}}
"#;
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .chain(stderr.lines())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.is_object())
        .collect();
    let out = CliOutput {
        status_code: 0,
        stdout: stdout.into(),
        stderr: stderr.into(),
        events,
    };
    assert!(out.success());
    assert_eq!(out.events.len(), 3);
    assert_eq!(
        out.event_names(),
        vec!["run_start", "partition_done", "partition_done"]
    );
    let start = out.event("run_start").unwrap();
    assert_eq!(event_field(start, "tables").unwrap(), 2);
    assert_eq!(out.events_named("partition_done").len(), 2);
    assert_eq!(
        event_field(out.last_event("partition_done").unwrap(), "rows").unwrap(),
        7
    );
    assert!(out.event("nope").is_none());
    // Only referenced, not run: the binary may not be built yet.
    let _ = run_cli as fn(&[&str], &[(&str, &str)]) -> CliOutput;
    let _ = coldsync_bin as fn() -> std::path::PathBuf;
}

#[tokio::test]
async fn s3_fixture_round_trip() {
    let s3 = s3();
    assert_eq!(s3.endpoint(), format!("http://127.0.0.1:{}", s3.port));
    assert!(s3.is_alive());
    let bucket = s3.fresh_bucket("harness");
    let op = s3.operator(&bucket);
    let fx = sample_fixture();
    fx.write_to(&op).await;

    let mut listed: Vec<String> = op
        .list_with("/")
        .recursive(true)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.metadata().is_file())
        .map(|e| e.path().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, expected_paths());

    // Non-recursive listing of a partition shows the junk dirs as dirs.
    let mut part: Vec<String> = op
        .list("warehouse/orders/dt=20261119/hour=03/")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path().to_string())
        .collect();
    part.sort();
    assert_eq!(
        part,
        vec![
            format!("warehouse/orders/dt=20261119/hour=03/{HIVE_STAGING_DIR}/"),
            "warehouse/orders/dt=20261119/hour=03/000000_0".to_string(),
            "warehouse/orders/dt=20261119/hour=03/000001_0".to_string(),
        ]
    );

    let path = format!("warehouse/orders/dt=2026-11-20/part-00001-{UUID}-c000.snappy.parquet");
    let got = op.read(&path).await.unwrap().to_vec();
    assert_eq!(got, fx.files()[&path].bytes);
    let batches = read_parquet_bytes(&got);
    assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 6);
    let success = op.read("warehouse/orders/_SUCCESS").await.unwrap();
    assert!(success.is_empty());

    // A second bucket is independent.
    let other = s3.fresh_bucket("harness");
    assert_ne!(other, bucket);
    let listed_other = s3
        .operator(&other)
        .list_with("/")
        .recursive(true)
        .await
        .unwrap();
    assert!(listed_other.iter().all(|e| e.metadata().is_dir()));
}

/// Runs `f` on a thread of its own and returns the message it panicked with. Fails the test if
/// `f` returns without panicking, or neither returns nor panics within `limit` (a wait that
/// blocks: the thread is left behind).
fn panic_message_within(limit: Duration, f: impl FnOnce() + Send + 'static) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let message = result.err().map(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
        let _ = tx.send(message);
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the wait neither returned nor failed within {limit:?}"))
        .expect("the wait should have failed")
}

/// True while a process with this id exists (a reaped child is gone from /proc).
fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_silent_child_fails_the_line_wait_in_time_and_is_killed() {
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    let message = panic_message_within(Duration::from_secs(30), move || {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "echo started >&2; exec sleep 1000"]);
        let mut child = WatchedChild::spawn("silent sh", &mut cmd);
        pid_tx.send(child.id()).unwrap();
        let soon = || std::time::Instant::now() + Duration::from_secs(5);
        assert_eq!(child.next_line(soon()).as_deref(), Some("started"));
        child.next_line(std::time::Instant::now() + Duration::from_millis(300));
    });
    assert!(message.contains("silent sh"), "{message}");
    assert!(
        message.contains("started"),
        "what it printed so far: {message}"
    );
    let pid = pid_rx.recv().unwrap();
    assert!(!process_exists(pid), "child {pid} still runs");
}

#[test]
fn a_child_that_never_exits_fails_the_exit_wait_in_time_and_is_killed() {
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    let message = panic_message_within(Duration::from_secs(30), move || {
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("1000");
        let mut child = WatchedChild::spawn("sleep", &mut cmd);
        pid_tx.send(child.id()).unwrap();
        child.wait(std::time::Instant::now() + Duration::from_millis(300));
    });
    assert!(message.contains("sleep"), "{message}");
    let pid = pid_rx.recv().unwrap();
    assert!(!process_exists(pid), "child {pid} still runs");
}

#[test]
fn a_command_that_hangs_fails_output_within_in_time() {
    let message = panic_message_within(Duration::from_secs(30), || {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "echo partial; exec sleep 1000"]);
        output_within(
            &mut cmd,
            std::process::Stdio::null(),
            Duration::from_millis(300),
        );
    });
    assert!(
        message.contains("partial"),
        "what it printed so far: {message}"
    );
}

#[test]
fn bounded_waits_return_what_a_quick_child_prints() {
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
    let out = output_within(
        &mut cmd,
        std::process::Stdio::null(),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );

    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "echo one >&2; echo two >&2; echo three >&2"]);
    let mut child = WatchedChild::spawn("sh", &mut cmd);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    assert_eq!(child.next_line(deadline).as_deref(), Some("one"));
    assert_eq!(child.remaining_lines(deadline), vec!["two", "three"]);
    assert_eq!(child.next_line(deadline), None);
    assert!(child.wait(deadline).success());
}
