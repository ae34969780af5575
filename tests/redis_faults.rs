//! Redis restarts and stalls during a run (issue 9), against real `redis-server`s and the
//! fault-injecting [`TcpProxy`]: a restart (empty, same port) mid-load, `CLIENT PAUSE` while the
//! run lists and while it loads, a stall shorter and one longer than `reconnect_budget_secs`, a
//! ledger write given up on that arrives late, a cut control connection, and `kill -9` of
//! coldsync itself. In every case the ledger and the report agree, and the watermark matches the
//! ledger (and a restart that lost the table's lease has it taken again). Last, the ledger's
//! record and withdraw on their own.
//!
//! Each run loads four small cold partitions (400 keys each) paced by `max_keys_per_sec`, so that
//! a fault lands while the run is still going; budgets and timeouts are short, so that every test
//! takes a few seconds.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use parquet::basic::Compression;
use serde_json::Value;

/// Cold partition dates of the test table (`--as-of 2026-11-22`, hot_days 2: cold up to the 20th).
const DATES: [&str; 4] = ["2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"];
const AS_OF: &str = "2026-11-22";
const ROWS_PER_PARTITION: i64 = 400;
const LEDGER: &str = "coldsync:{orders}:partitions";
const WATERMARK: &str = "coldsync:{orders}:watermark";

/// The order ids of partition `index`: 400 of them, distinct from every other partition's.
fn ids(index: usize) -> Vec<i64> {
    let first = (index as i64 + 1) * 10_000;
    (first..first + ROWS_PER_PARTITION).collect()
}

/// A temp dir holding the warehouse (four marked partitions) and the config file.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    /// Writes the four partitions and a config for Redis at `url` with `redis_options` added
    /// to `[redis]`.
    fn new(url: &str, redis_options: &str) -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("coldsync-faults-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("warehouse");
        for (index, date) in DATES.iter().enumerate() {
            let batch = orders_batch(&ids(index), date);
            let partition = format!("orders/dt={date}");
            write_file(
                &root,
                &format!("{partition}/part-00000.parquet"),
                &parquet_bytes(&batch, 100, Compression::UNCOMPRESSED),
            );
            write_success(&root, &partition);
        }
        let config = format!(
            "[source]\nscheme = \"fs\"\nroot = {root:?}\n\n[redis]\nurl = \"{url}\"\n\
             connections = 2\nbatch_size = 50\nmax_keys_per_sec = 2000\n{redis_options}\n\n\
             [defaults]\nretention_days = 30\n\n[[tables]]\nname = \"orders\"\npath = \"orders\"\n\
             key = \"ord:{{order_id}}\"\n",
            root = root.display().to_string()
        );
        std::fs::write(dir.path().join("coldsync.toml"), config).unwrap();
        Workspace { dir }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("coldsync.toml")
    }

    /// Starts `coldsync run --as-of AS_OF` with JSON logs.
    fn spawn_run(&self) -> Run {
        let mut cmd = Command::new(coldsync_bin());
        cmd.arg("--config")
            .arg(self.config_path())
            .args(["--log-format", "json", "run", "--as-of", AS_OF])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        Run {
            child: WatchedChild::spawn("coldsync run", &mut cmd),
            events: Vec::new(),
            started: Instant::now(),
        }
    }
}

/// A running `coldsync run` and the JSON events it logged so far.
struct Run {
    child: WatchedChild,
    events: Vec<Value>,
    started: Instant,
}

impl Run {
    /// Reads events until one satisfies `wanted` (panics if the run ends or 60 s pass first).
    fn until(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let Some(line) = self.child.next_line(deadline) else {
                panic!("the run ended before {what}: {:#?}", self.events);
            };
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            self.events.push(event.clone());
            if wanted(&event) {
                return event;
            }
        }
    }

    /// Reads events until the `n`-th `partition_loaded`.
    fn until_loaded(&mut self, n: usize) {
        while self.named("partition_loaded").len() < n {
            self.until("a partition_loaded", |e| {
                event_name(e) == Some("partition_loaded")
            });
        }
    }

    /// Waits (at most 60 s) for the run to end: its exit code.
    fn finish(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(60);
        for line in self.child.remaining_lines(deadline) {
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                self.events.push(event);
            }
        }
        self.child.wait(deadline).code().unwrap_or(-1)
    }

    fn named(&self, name: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| event_name(e) == Some(name))
            .collect()
    }

    /// Dates of the events named `name`.
    fn dates(&self, name: &str) -> BTreeSet<String> {
        self.named(name).iter().map(|e| text(e, "date")).collect()
    }

    fn dump(&self) -> String {
        let lines: Vec<String> = self.events.iter().map(Value::to_string).collect();
        format!("after {:?}:\n{}", self.started.elapsed(), lines.join("\n"))
    }
}

fn text(event: &Value, field: &str) -> String {
    match event_field(event, field) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => panic!("event {event} has no field {field:?}"),
    }
}

/// A synchronous connection to Redis on `port`.
fn connect(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let con = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    con
}

/// The ledger's dates on Redis at `port`.
fn ledger_dates(port: u16) -> BTreeSet<String> {
    let entries: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(LEDGER)
        .query(&mut connect(port))
        .unwrap();
    entries.into_keys().collect()
}

fn watermark(port: u16) -> Option<String> {
    redis::cmd("GET")
        .arg(WATERMARK)
        .query(&mut connect(port))
        .unwrap()
}

/// The watermark the ledger implies: the newest date of the unbroken run of recorded days from
/// the oldest partition.
fn implied_watermark(recorded: &BTreeSet<String>) -> Option<String> {
    DATES
        .iter()
        .take_while(|date| recorded.contains(**date))
        .last()
        .map(|date| date.to_string())
}

/// Every key of the partitions at `indexes` holds its value, on Redis at `port`.
fn assert_keys_of(port: u16, indexes: &[usize]) {
    let mut con = connect(port);
    for &index in indexes {
        for id in ids(index) {
            let value: Option<String> = redis::cmd("GET")
                .arg(format!("ord:{id}"))
                .query(&mut con)
                .unwrap();
            assert_eq!(
                value,
                Some(orders_json(id, DATES[index])),
                "key ord:{id} of {}",
                DATES[index]
            );
        }
    }
}

fn all_dates() -> BTreeSet<String> {
    DATES.iter().map(|d| d.to_string()).collect()
}

/// Sends `CLIENT PAUSE <ms>` straight to Redis at `port` (another client than coldsync's).
fn client_pause(port: u16, ms: u64) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .query(&mut connect(port))
        .unwrap();
}

/// A `redis-server` on a given port (the port of one that was killed), killed when dropped.
fn redis_on_port(port: u16, dir: &Path) -> WatchedChild {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let server = WatchedChild::spawn("restarted redis-server", &mut cmd);
    wait_for(
        "the restarted redis-server",
        Duration::from_secs(10),
        || {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
            let mut con = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .ok()?;
            redis::cmd("PING").query::<String>(&mut con).ok()
        },
    );
    server
}

fn kill_9(pid: u32) {
    let mut kill = Command::new("kill");
    kill.args(["-KILL", &pid.to_string()]);
    let out = output_within(&mut kill, Stdio::null(), Duration::from_secs(10));
    assert!(out.status.success(), "kill -9 {pid}: {out:?}");
}

#[test]
fn a_redis_restart_mid_load_is_survived_and_what_it_lost_is_reloaded() {
    let redis = RedisServer::start();
    let port = redis.port;
    let ws = Workspace::new(
        &format!("redis://127.0.0.1:{port}/0"),
        "timeout_secs = 2\nreconnect_budget_secs = 15",
    );
    let mut run = ws.spawn_run();
    run.until_loaded(1);
    // Killed while the second partition loads; back, empty, on the same port a moment later.
    kill_9(redis.pid());
    std::thread::sleep(Duration::from_millis(300));
    let restart_dir = tempfile::tempdir().unwrap();
    let _restarted = redis_on_port(port, restart_dir.path());
    let code = run.finish();
    assert_eq!(code, 0, "{}", run.dump());
    assert!(run.named("partition_failed").is_empty(), "{}", run.dump());
    let restarted = run.named("redis_restarted");
    assert_eq!(restarted.len(), 1, "{}", run.dump());
    assert_eq!(text(restarted[0], "level"), "WARN");
    assert_ne!(
        text(restarted[0], "old_run_id"),
        text(restarted[0], "new_run_id")
    );
    // Every partition in the restarted server's ledger and every key there, the first partition
    // (loaded before the restart, lost with it) included.
    assert_eq!(ledger_dates(port), all_dates(), "{}", run.dump());
    assert_keys_of(port, &[0, 1, 2, 3]);
    assert_eq!(watermark(port).as_deref(), Some(DATES[3]));
    let finished = run.named("run_finished");
    assert_eq!(
        text(finished[0], "partitions_loaded"),
        "4",
        "{}",
        run.dump()
    );
    // The restarted Redis had lost the table's lease too: taken again there, released at the end.
    assert_eq!(run.named("lease_retaken").len(), 1, "{}", run.dump());
    assert!(run.named("lease_lost").is_empty(), "{}", run.dump());
    let lease: Option<String> = redis::cmd("GET")
        .arg("coldsync:{orders}:lease")
        .query(&mut connect(port))
        .unwrap();
    assert_eq!(lease, None, "released by its holder");
}

#[test]
fn client_pause_while_listing_and_while_loading_costs_nothing_with_a_long_timeout() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port);
    let real = redis.port;
    // The first time the ledger key passes, the run reads the ledger to plan the table; the
    // second time, it records the first partition: pause Redis for 3 s just before each.
    proxy.on_client_bytes(b"}:partitions", move |seen| {
        if seen <= 2 {
            client_pause(real, 3000);
        }
        Verdict::Forward
    });
    let ws = Workspace::new(
        &proxy.url(),
        "timeout_secs = 60\nreconnect_budget_secs = 10",
    );
    let mut run = ws.spawn_run();
    let code = run.finish();
    assert_eq!(code, 0, "{}", run.dump());
    assert!(
        run.started.elapsed() >= Duration::from_secs(6),
        "both pauses hit the run: {}",
        run.dump()
    );
    assert_eq!(run.dates("partition_loaded"), all_dates());
    assert_eq!(ledger_dates(real), all_dates());
    assert_keys_of(real, &[0, 1, 2, 3]);
}

#[test]
fn a_stall_shorter_than_the_budget_during_a_load_costs_no_failed_partition() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port);
    // The first write of the first partition stalls every connection for 6 s: past the reply
    // timeout and past what `retry_attempts` alone would wait, within the budget.
    proxy.on_client_bytes(b"PXAT", |seen| match seen {
        1 => Verdict::PauseFor(Duration::from_secs(6)),
        _ => Verdict::Forward,
    });
    let ws = Workspace::new(&proxy.url(), "timeout_secs = 1\nreconnect_budget_secs = 15");
    let mut run = ws.spawn_run();
    let code = run.finish();
    assert_eq!(code, 0, "{}", run.dump());
    assert!(run.named("partition_failed").is_empty(), "{}", run.dump());
    assert!(!run.named("partition_retry").is_empty(), "{}", run.dump());
    assert!(run.named("redis_restarted").is_empty(), "{}", run.dump());
    assert_eq!(ledger_dates(redis.port), all_dates());
    assert_keys_of(redis.port, &[0, 1, 2, 3]);
    assert_eq!(watermark(redis.port).as_deref(), Some(DATES[3]));
}

#[test]
fn a_stall_longer_than_the_budget_fails_clearly_and_the_ledger_agrees_with_the_report() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port);
    // The first partition's ledger write (the second time the ledger key passes) stalls every
    // connection for 6 s: longer than its timeout plus the 3 s budget. The write itself is held,
    // not lost: it reaches Redis when the stall ends, long after coldsync gave up on it.
    proxy.on_client_bytes(b"}:partitions", |seen| match seen {
        2 => Verdict::PauseFor(Duration::from_secs(6)),
        _ => Verdict::Forward,
    });
    let ws = Workspace::new(&proxy.url(), "timeout_secs = 1\nreconnect_budget_secs = 3");
    let mut run = ws.spawn_run();
    let code = run.finish();
    assert_eq!(code, 3, "{}", run.dump());
    let failed = run.named("partition_failed");
    assert_eq!(failed.len(), 1, "{}", run.dump());
    assert_eq!(text(failed[0], "date"), DATES[0]);
    assert_eq!(text(failed[0], "transient"), "true", "{}", run.dump());
    // Whatever arrives late lands now at the latest.
    std::thread::sleep(Duration::from_millis(500));
    let loaded = run.dates("partition_loaded");
    assert_eq!(loaded, all_dates().into_iter().skip(1).collect());
    assert_eq!(ledger_dates(redis.port), loaded, "{}", run.dump());
    assert_eq!(
        watermark(redis.port),
        None,
        "the oldest partition is missing"
    );
    let finished = run.named("run_finished");
    assert_eq!(text(finished[0], "partitions_failed"), "1");
    assert_eq!(text(finished[0], "partitions_loaded"), "3");
}

#[test]
fn a_ledger_write_given_up_on_does_nothing_when_it_arrives_late() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port);
    // The first partition's ledger write is lost in a cut (kept aside by the proxy), and with no
    // budget it is not retried: coldsync gives up on it, and settles it.
    proxy.on_client_bytes(b"}:partitions", |seen| match seen {
        2 => Verdict::Capture,
        _ => Verdict::Forward,
    });
    let ws = Workspace::new(
        &proxy.url(),
        "timeout_secs = 2
reconnect_budget_secs = 0",
    );
    let mut run = ws.spawn_run();
    let code = run.finish();
    assert_eq!(code, 3, "{}", run.dump());
    let failed = run.named("partition_failed");
    assert_eq!(failed.len(), 1, "{}", run.dump());
    assert_eq!(text(failed[0], "date"), DATES[0]);
    assert!(
        text(failed[0], "error").contains("no entry of it was left"),
        "{}",
        run.dump()
    );
    // Now the lost write arrives, late: it is fenced, and changes nothing.
    let captured = proxy.captured();
    assert_eq!(captured.len(), 1);
    let mut late = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(&mut late, &captured[0]).unwrap();
    let mut reply = [0u8; 64];
    let n = std::io::Read::read(&mut late, &mut reply).unwrap();
    assert_eq!(&reply[..n], b":0\r\n", "the late write was fenced");
    let loaded = run.dates("partition_loaded");
    assert_eq!(loaded, all_dates().into_iter().skip(1).collect());
    assert_eq!(ledger_dates(redis.port), loaded);
    assert_eq!(watermark(redis.port), None);
}

#[test]
fn a_cut_control_connection_is_reopened_and_the_run_completes() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port);
    // The first partition's ledger write is dropped and every connection cut under it.
    proxy.on_client_bytes(b"}:partitions", |seen| match seen {
        2 => Verdict::Cut,
        _ => Verdict::Forward,
    });
    let ws = Workspace::new(&proxy.url(), "timeout_secs = 2\nreconnect_budget_secs = 10");
    let mut run = ws.spawn_run();
    let code = run.finish();
    assert_eq!(code, 0, "{}", run.dump());
    assert!(run.named("partition_failed").is_empty(), "{}", run.dump());
    assert!(
        run.named("redis_restarted").is_empty(),
        "same server: {}",
        run.dump()
    );
    assert_eq!(ledger_dates(redis.port), all_dates());
    assert_keys_of(redis.port, &[0, 1, 2, 3]);
    assert!(proxy.accepted() > 2, "the control connection was reopened");
}

#[test]
fn after_kill_9_of_coldsync_the_watermark_matches_the_ledger() {
    let redis = RedisServer::start();
    let ws = Workspace::new(&redis.url(), "timeout_secs = 2");
    let mut run = ws.spawn_run();
    run.until_loaded(2);
    kill_9(run.child.id());
    let _ = run.finish();
    let recorded = ledger_dates(redis.port);
    assert!(recorded.len() >= 2, "{recorded:?}");
    assert!(recorded.len() < DATES.len(), "killed mid-run: {recorded:?}");
    assert_eq!(watermark(redis.port), implied_watermark(&recorded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_moves_the_watermark_and_withdrawing_it_moves_it_back() {
    use coldsync::ledger::{Ledger, LedgerEntry, Watermarks};
    let redis = RedisServer::start();
    let ws = Workspace::new(&redis.url(), "");
    let text = std::fs::read_to_string(ws.config_path()).unwrap();
    let config = coldsync::config::Config::parse(&text, &Default::default()).unwrap();
    let ledger = Ledger::connect(&config.redis, &config.ledger_prefix)
        .await
        .unwrap();
    let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let entry = LedgerEntry {
        fingerprint: "f".into(),
        counters: Default::default(),
        run_id: "r".into(),
        loaded_at: "2026-11-22T00:00:00.000Z".into(),
        expires_at_ms: 0,
        snapshot: None,
    };
    let first = Watermarks {
        with: Some(day(DATES[0])),
        without: None,
    };
    ledger
        .record("orders", day(DATES[0]), &entry, first)
        .await
        .unwrap();
    let second = Watermarks {
        with: Some(day(DATES[1])),
        without: Some(day(DATES[0])),
    };
    let recorded = ledger
        .record("orders", day(DATES[1]), &entry, second)
        .await
        .unwrap();
    assert_eq!(watermark(redis.port).as_deref(), Some(DATES[1]));
    assert_eq!(recorded.server, ledger.control().server().await.unwrap());
    assert!(ledger.withdraw("orders", &recorded).await.unwrap());
    assert_eq!(ledger_dates(redis.port), [DATES[0].to_string()].into());
    assert_eq!(watermark(redis.port).as_deref(), Some(DATES[0]));
    // Withdrawing again finds nothing, changes nothing.
    assert!(!ledger.withdraw("orders", &recorded).await.unwrap());
    assert_eq!(watermark(redis.port).as_deref(), Some(DATES[0]));
}
