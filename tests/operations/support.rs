//! What the operations tests share: a workspace (warehouse + config file) over a test Redis,
//! orders partitions that take a known time to load (a per-table write-rate limit), the binary
//! run to completion or watched while it runs, and the Redis contents to compare.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use parquet::basic::Compression;
use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;

/// The business day the tests take as today: cold up to 2026-11-20 (`hot_days = 2`).
pub const AS_OF: &str = "2026-11-22";

/// Rows of each partition: `first..first + rows`, one file, 500-row row groups.
pub fn orders_file(first: i64, rows: i64, suffix: &str) -> Vec<u8> {
    let ids: Vec<i64> = (first..first + rows).collect();
    parquet_bytes(&orders_batch(&ids, suffix), 500, Compression::UNCOMPRESSED)
}

/// A temp dir with `warehouse/` (the fs source root) and `coldsync.toml`, over `redis`.
pub struct Workspace<'r> {
    pub redis: &'r RedisServer,
    dir: TempDir,
}

impl<'r> Workspace<'r> {
    pub fn new(redis: &'r RedisServer) -> Workspace<'r> {
        let dir = tempfile::Builder::new()
            .prefix("coldsync-ops-")
            .tempdir()
            .unwrap();
        Workspace { redis, dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("coldsync.toml")
    }

    /// Writes the config: `[lease] ttl_secs`, progress every 200 ms, batches of 100 commands,
    /// one `orders` table (key `ord:{order_id}`) with the `table` lines added, then `extra`.
    pub fn config(&self, ttl_secs: u64, table: &str, extra: &str) -> &Self {
        let text = format!(
            r#"[source]
scheme = "fs"
root = "{root}"

[redis]
url = "redis://127.0.0.1:{port}/0"
batch_size = 100
timeout_secs = 5
retry_attempts = 1

[lease]
ttl_secs = {ttl_secs}

[logging]
progress_interval = "200ms"

[defaults]
retention_days = 30

[[tables]]
name = "orders"
path = "orders"
key = "ord:{{order_id}}"
{table}

{extra}
"#,
            root = self.root().display(),
            port = self.redis.port
        );
        std::fs::write(self.config_path(), text).unwrap();
        self
    }

    /// Writes `orders/dt=<date>/part-00000.parquet`, with `_SUCCESS` when `complete`.
    pub fn partition(&self, date: &str, file: &[u8], complete: bool) -> &Self {
        let dir = format!("orders/dt={date}");
        write_file(&self.root(), &format!("{dir}/part-00000.parquet"), file);
        if complete {
            write_success(&self.root(), &dir);
        }
        self
    }

    /// Marks a partition complete.
    pub fn complete(&self, date: &str) {
        write_success(&self.root(), &format!("orders/dt={date}"));
    }

    fn args<'a>(&'a self, config: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut full = vec!["--config", config, "--log-format", "json"];
        full.extend_from_slice(args);
        full
    }

    /// Runs `coldsync ARGS` to completion (JSON logs), with `envs` added.
    pub fn cli(&self, args: &[&str], envs: &[(&str, &str)]) -> CliOutput {
        let config = self.config_path().display().to_string();
        let full = self.args(&config, args);
        let mut envs = envs.to_vec();
        envs.push(("RUST_LOG", "info"));
        run_cli_with_timeout(&full, &envs, Duration::from_secs(90))
    }

    /// Starts `coldsync ARGS` (JSON logs on stderr), with `envs` added.
    pub fn spawn(&self, args: &[&str], envs: &[(&str, &str)]) -> Running {
        let config = self.config_path().display().to_string();
        let mut cmd = Command::new(coldsync_bin());
        cmd.args(self.args(&config, args))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (key, value) in envs {
            cmd.env(key, value);
        }
        Running {
            child: WatchedChild::spawn(&format!("coldsync {args:?}"), &mut cmd),
            events: Vec::new(),
        }
    }

    /// The ledger of `orders`: date -> entry.
    pub fn ledger(&self) -> BTreeMap<String, Value> {
        self.redis
            .hgetall("coldsync:{orders}:partitions")
            .into_iter()
            .map(|(date, entry)| (date, serde_json::from_str(&entry).unwrap()))
            .collect()
    }
}

/// A `coldsync` process whose JSON log lines are read as they come, every wait bounded.
pub struct Running {
    child: WatchedChild,
    /// Every event read so far.
    pub events: Vec<Value>,
}

impl Running {
    /// OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads events until one matches `wanted` (returned); panics past `within`.
    pub fn until(&mut self, within: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let line = self
                .child
                .next_line(deadline)
                .unwrap_or_else(|| panic!("stderr closed before the event: {:#?}", self.events));
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                panic!("not a JSON log line: {line}");
            };
            self.events.push(event.clone());
            if wanted(&event) {
                return event;
            }
        }
    }

    /// Sends `signal` (`-TERM`, `-KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        let mut kill = Command::new("kill");
        kill.args([signal, &self.pid().to_string()]);
        let status = output_within(&mut kill, Stdio::null(), Duration::from_secs(10)).status;
        assert!(status.success(), "kill {signal} failed");
    }

    /// Reads the remaining events and waits for the exit, all within `within`.
    pub fn finish(mut self, within: Duration) -> (ExitStatus, Vec<Value>) {
        let deadline = Instant::now() + within;
        for line in self.child.remaining_lines(deadline) {
            let event = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            self.events.push(event);
        }
        let status = self.child.wait(deadline);
        (status, std::mem::take(&mut self.events))
    }
}

/// The events named `name`.
pub fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// The single event named `name`.
pub fn one<'a>(events: &'a [Value], name: &str) -> &'a Value {
    let found = named(events, name);
    assert_eq!(found.len(), 1, "one {name} event expected in {events:#?}");
    found[0]
}

/// Every `ord:*` key with its value and absolute expiry.
pub fn contents(redis: &RedisServer) -> BTreeMap<String, (Option<String>, i64)> {
    redis
        .keys("ord:*")
        .into_iter()
        .map(|key| {
            let value = (redis.get(&key), redis.pexpiretime(&key));
            (key, value)
        })
        .collect()
}

/// `contents` expected after loading `partitions` (date, first id, rows, suffix) in any order:
/// each key holds the value of the newest partition that has it.
pub fn expected_values(partitions: &[(&str, i64, i64, &str)]) -> BTreeMap<String, String> {
    let mut sorted = partitions.to_vec();
    sorted.sort_by_key(|(date, ..)| *date);
    let mut values = BTreeMap::new();
    for (_, first, rows, suffix) in sorted {
        for id in first..first + rows {
            values.insert(format!("ord:{id}"), orders_json(id, suffix));
        }
    }
    values
}

/// Asserts the `ord:*` values are exactly `expected` (and every key has an expiry).
pub fn assert_values(redis: &RedisServer, expected: &BTreeMap<String, String>) {
    let actual = contents(redis);
    let keys: Vec<&String> = actual.keys().collect();
    let wanted: Vec<&String> = expected.keys().collect();
    assert_eq!(keys.len(), wanted.len(), "key count");
    assert!(keys == wanted, "key sets differ");
    for (key, (value, expiry)) in &actual {
        assert_eq!(value.as_ref(), expected.get(key), "{key}");
        assert!(*expiry > 0, "{key} has no expiry");
    }
}

/// A lease key's value, if the key exists.
pub fn lease_value(redis: &RedisServer) -> Option<String> {
    redis.get("coldsync:{orders}:lease")
}

/// The event's field as an unsigned number.
pub fn number(event: &Value, field: &str) -> u64 {
    event[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} of {event} is not an unsigned number"))
}
