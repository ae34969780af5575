//! Shared integration-test harness for `coldsync`.
//!
//! Integration test files pull this in with `mod common;` and `use common::*;`. Each file of the
//! harness is one kind of helper:
//!
//! * `redis_server.rs`: [`RedisServer`], a throw-away `redis-server` on a free loopback port,
//!   one per call to [`RedisServer::start`], killed when dropped, plus synchronous inspection
//!   helpers (`get`, `hgetall`, `keys`, `pexpiretime`, `dbsize`, ...).
//! * `redis_cluster.rs`: [`RedisCluster`], 3 masters + 3 replicas on free loopback ports,
//!   created with `redis-cli --cluster create`, killed when dropped; kill/restart of one node.
//! * `s3_server.rs`: [`S3Server`] / [`s3`], one `moto_server` (S3 mock) per test binary, shared
//!   by all tests of that binary. Tests must use distinct bucket names
//!   (see [`S3Server::fresh_bucket`]).
//! * `parquet_files.rs`: Parquet bytes in memory ([`parquet_bytes`], [`read_parquet_bytes`]).
//! * `layouts.rs`: files on disk and Hive/Spark partition layouts ([`write_file`],
//!   [`write_success`], [`HiveTableFixture`] with the usual junk files, writable to a local dir
//!   or through an `opendal::Operator`).
//! * `orders.rs`: the orders tables: [`orders_batch`], a deterministic `RecordBatch` whose values
//!   tests can recompute, and the order-fact table the examples generate (shared with
//!   `examples/` through `#[path]`).
//! * `processes.rs`: every wait on a child process bounded ([`output_within`], [`WatchedChild`]):
//!   past the deadline the child is killed and the test fails with what it printed.
//! * `cli_runner.rs`: [`coldsync_bin`] / [`run_cli`], run the `coldsync` binary and collect its
//!   JSON log events.
//! * `http_fault_proxy.rs`: [`HttpFaultProxy`], an HTTP proxy in front of moto that answers 503
//!   or cuts response bodies as a test's fault script says.
//! * `scenario.rs`: the setup most tests repeat: a Redis, a temp warehouse, partitions, config,
//!   an `Engine`.
//! * `days.rs`: today, days ago, their ISO form, a key's expiry under `retention_days = 30`, and
//!   [`assert_contents`] of a table's keys.
//! * `tools.rs`: the Python tools' virtualenvs ([`tools_python`]).
//! * `workspace.rs`: [`CliWorkspace`], a warehouse and a config file to run the binary on.
//! * `hive_metastore.rs`: [`hive_metastore`], one real Hive Metastore (Hive 2.3 from PySpark's
//!   jars) per test binary, killed at exit; `create_table`/`add_partition` register tables and
//!   partitions in it.
//! * `tcp_proxy.rs`: [`TcpProxy`], a fault-injecting TCP proxy in front of a Redis (pause, cut,
//!   delay, and hooks on what the client sends).
//! * `iceberg.rs`: [`IcebergCatalog`], Iceberg tables written by pyiceberg (SQL catalog on
//!   sqlite, `file://` warehouse), and [`RestCatalogShim`], that catalog served over REST.
//! * `redis_monitor.rs`: [`RedisMonitor`], `redis-cli MONITOR`: the commands a run sent.
//! * `delta.rs`: [`DeltaTable`], Delta Lake tables written by PyPI `deltalake` (its virtualenv
//!   from `scripts/install-deps.sh`), and hand-written commits for what delta-rs does not write.
//!
//! This file holds the small bits they share ([`free_port`], [`wait_for`]).
//!
//! Every test binary compiles this whole tree but uses only part of it, hence the
//! `allow(dead_code)` below.
//!
//! External programs: `redis-server` and `moto_server` must be on `PATH`
//! (`scripts/install-deps.sh` installs them). Their locations can be overridden
//! with `COLDSYNC_TEST_REDIS_SERVER` and `COLDSYNC_TEST_MOTO_SERVER`.
#![allow(dead_code)]

mod certs;
mod cli_runner;
mod days;
mod hive_metastore;
mod http_fault_proxy;
mod layouts;
mod orders;
mod parquet_files;
mod processes;
mod redis_cluster;
mod redis_server;
mod s3_server;
mod scenario;
mod tcp_proxy;
mod tools;
mod workspace;
// Delta Lake tables written by PyPI deltalake (tests/delta.rs).
mod delta;

// One flat namespace for the tests (`use common::*`). A test binary that uses nothing of a helper
// file would warn about its re-export, hence the allow.
#[allow(unused_imports)]
pub use self::delta::*;
#[allow(unused_imports)]
pub use self::hive_metastore::*;
#[allow(unused_imports)]
pub use self::{
    certs::*, cli_runner::*, days::*, http_fault_proxy::*, layouts::*, orders::*, parquet_files::*,
    processes::*, redis_cluster::*, redis_server::*, s3_server::*, scenario::*, tcp_proxy::*,
    tools::*, workspace::*,
};

// The Iceberg fixtures and the command monitor (tests/iceberg.rs).
mod iceberg;
mod redis_monitor;
#[allow(unused_imports)]
pub use self::{iceberg::*, redis_monitor::*};

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// Returns a port that was free on 127.0.0.1 a moment ago (bind `127.0.0.1:0`,
/// read the port, drop the listener). Another process may grab it before the
/// caller binds it, so callers must be ready to retry.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Polls `f` every 20ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The program to run: `$env_var` if set and not empty, else `default` (looked up on `PATH`).
fn program(env_var: &str, default: &str) -> String {
    std::env::var(env_var)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// The file's contents as text (lossy), or `""` if it cannot be read.
fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
