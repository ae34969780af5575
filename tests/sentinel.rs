//! `redis+sentinel://`: one master, one replica and one sentinel on loopback ports. A run loads
//! through the master the sentinel names; after `SENTINEL FAILOVER` the same engine (as the
//! daemon keeps it between runs) loads the next partition into the new master, where the
//! replicated ledger and keys are, exactly.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::NaiveDate;
use coldsync::config::Config;
use coldsync::run::{Engine, RunOptions};
use common::{free_port, orders_batch, wait_for, HiveTableFixture, RedisServer};
use tokio_util::sync::CancellationToken;

/// A `redis-server --sentinel` on a free port, killed on drop.
struct Sentinel {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    /// Monitors `m` at `127.0.0.1:master_port`, quorum 1, quick to decide.
    fn start(master_port: u16) -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor m 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds m 1000\nsentinel failover-timeout m 5000\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("sentinel.log")).unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn redis-server --sentinel");
        let sentinel = Sentinel {
            port,
            child,
            _dir: dir,
        };
        wait_for("the sentinel to answer", Duration::from_secs(10), || {
            sentinel.master_port().ok()
        });
        sentinel
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let url = format!("redis://127.0.0.1:{}/", self.port);
        redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// The port of the master the sentinel names now.
    fn master_port(&self) -> redis::RedisResult<u16> {
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg("m")
            .query(&mut self.connection()?)?;
        Ok(port)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(root: &Path, sentinel: &Sentinel) -> Config {
    // The first sentinel address is dead: the next one is asked.
    let text = format!(
        "[source]\nscheme = \"fs\"\nroot = {root:?}\n\n[redis]\n\
         url = \"redis+sentinel://127.0.0.1:{dead},127.0.0.1:{port}/m/0\"\n\
         timeout_secs = 5\nretry_attempts = 3\nreconnect_budget_secs = 20\n\n\
         [defaults]\nretention_days = 30\n\n[[tables]]\nname = \"orders\"\npath = \"orders\"\n\
         key = \"sen:{{order_id}}\"\ncolumns = [\"status\"]\n",
        root = root.display().to_string(),
        dead = free_port(),
        port = sentinel.port,
    );
    Config::parse(&text, &HashMap::new()).unwrap()
}

/// The server's `ROLE`, or `None` while it cannot answer: a server changing role closes its
/// clients' connections, so a poll during the failover may see a reset connection.
fn role(redis: &RedisServer) -> Option<String> {
    let mut connection = redis.client().get_connection().ok()?;
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut connection).ok()?;
    match role.first()? {
        redis::Value::BulkString(name) => Some(String::from_utf8_lossy(name).into_owned()),
        other => Some(format!("{other:?}")),
    }
}

fn options(as_of: &str) -> RunOptions {
    RunOptions {
        as_of: Some(as_of.parse::<NaiveDate>().unwrap()),
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_through_the_sentinel_and_follows_a_failover_between_runs() {
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_test_writer()
        .try_init();
    let master = RedisServer::start();
    let replica =
        RedisServer::start_with_args(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    wait_for("the replica to sync", Duration::from_secs(20), || {
        let info: String = replica.cmd("INFO", &["replication"]);
        info.contains("master_link_status:up").then_some(())
    });
    let sentinel = Sentinel::start(master.port);
    assert_eq!(sentinel.master_port().unwrap(), master.port);

    let warehouse = tempfile::tempdir().unwrap();
    let mut fixture = HiveTableFixture::new("orders");
    fixture.spark_partition("dt=2026-11-19", &[orders_batch(&[1, 2], "a")]);
    fixture.write_local(warehouse.path());
    let engine = Engine::connect(config(warehouse.path(), &sentinel))
        .await
        .unwrap();
    let first = engine
        .run(&options("2026-11-21"), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!((first.exit_code, first.partitions_loaded), (0, 1));
    assert_eq!(
        master.get("sen:1"),
        Some(r#"{"status":"paid-a"}"#.to_string())
    );

    // Fail over (retried until the sentinel has discovered the replica), and wait until the
    // sentinel names the replica and the replica is a master.
    wait_for(
        "SENTINEL FAILOVER to start",
        Duration::from_secs(30),
        || {
            let mut connection = sentinel.connection().ok()?;
            redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg("m")
                .query::<()>(&mut connection)
                .ok()
        },
    );
    wait_for(
        "the sentinel to name the new master",
        Duration::from_secs(30),
        || {
            let promoted = role(&replica)? == "master" && role(&master)? == "slave";
            (sentinel.master_port().ok()? == replica.port && promoted).then_some(())
        },
    );
    assert_eq!(engine.ledger().control().restarts(), 0);

    // The next run (same engine) loads into the new master; the ledger came along.
    let mut newer = HiveTableFixture::new("orders");
    newer.spark_partition("dt=2026-11-20", &[orders_batch(&[3], "b")]);
    newer.write_local(warehouse.path());
    let second = engine
        .run(&options("2026-11-22"), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (second.exit_code, second.partitions_loaded),
        (0, 1),
        "{second:#?}"
    );
    // The control client's connection to the demoted master was closed by the failover: it
    // reconnected through the sentinel, to another server (`redis_restarted`).
    assert_eq!(engine.ledger().control().restarts(), 1);
    assert_eq!(
        replica.get("sen:1"),
        Some(r#"{"status":"paid-a"}"#.to_string())
    );
    assert_eq!(
        replica.get("sen:2"),
        Some(r#"{"status":"paid-a"}"#.to_string())
    );
    assert_eq!(
        replica.get("sen:3"),
        Some(r#"{"status":"paid-b"}"#.to_string())
    );
    let ledger: Vec<String> = replica
        .hgetall("coldsync:{orders}:partitions")
        .into_keys()
        .collect();
    assert_eq!(ledger, vec!["2026-11-19", "2026-11-20"]);
    assert_eq!(
        replica.get("coldsync:{orders}:watermark"),
        Some("2026-11-20".to_string())
    );
    // The old master is a replica now, and has the 20th by replication.
    assert_eq!(role(&master).as_deref(), Some("slave"));
    wait_for(
        "the old master to replicate the 20th",
        Duration::from_secs(10),
        || {
            // Fallible: the demoted master may still be resyncing (LOADING) or closing clients.
            let mut connection = master.client().get_connection().ok()?;
            let value: Option<String> =
                redis::cmd("GET").arg("sen:3").query(&mut connection).ok()?;
            value.map(|_| ())
        },
    );
}
