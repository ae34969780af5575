//! Loading a Redis Cluster (issue 8): a real cluster of 3 masters and 3 replicas on loopback
//! ([`RedisCluster`]), the `coldsync` binary run against it, every key read back through the
//! `redis` crate's cluster client.
//!
//! - json, hash and hash-tagged tables land exactly, spread over the masters (a hash tag puts a
//!   table on one master), recorded; a rerun loads nothing;
//! - slots migrating (`redis-cli --cluster reshard`) while a 200k-row partition loads;
//! - a master failing over (`CLUSTER FAILOVER` on its replica) while it loads;
//! - `wait_replicas = 1` with a master killed (`kill -9`) while it loads, restarted as a replica;
//! - a cluster whose nodes speak TLS to each other, loaded over mutual TLS.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use parquet::basic::Compression;
use redis::Commands;
use serde_json::Value;

const DATE: &str = "2026-11-20";
const AS_OF: &str = "2026-11-22";
const LEDGER: &str = "coldsync:{orders}:partitions";

/// A warehouse with table `orders` (partition [`DATE`], `rows` rows) and a config for `cluster`.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(cluster: &RedisCluster, rows: i64, tables: &str, redis_options: &str) -> Workspace {
        let dir = tempfile::Builder::new()
            .prefix("coldsync-cluster-ws-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("warehouse");
        let ids: Vec<i64> = (1..=rows).collect();
        let partition = format!("orders/dt={DATE}");
        for (part, chunk) in ids.chunks(100_000).enumerate() {
            let batch = orders_batch(chunk, DATE);
            write_file(
                &root,
                &format!("{partition}/part-{part:05}.parquet"),
                &parquet_bytes(&batch, 8192, Compression::UNCOMPRESSED),
            );
        }
        write_success(&root, &partition);
        let config = format!(
            "[source]\nscheme = \"fs\"\nroot = {root:?}\n\n[redis]\nurl = \"{url}\"\n\
             cluster = true\nconnections = 2\nbatch_size = 500\ntimeout_secs = 5\n\
             {redis_options}\n\n[defaults]\nretention_days = 30\n\n{tables}\n",
            root = root.display().to_string(),
            url = cluster.url(),
        );
        std::fs::write(dir.path().join("coldsync.toml"), config).unwrap();
        Workspace { dir }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("coldsync.toml")
    }

    /// `coldsync run --as-of AS_OF`, to the end.
    fn run(&self) -> CliOutput {
        let config = self.config_path().display().to_string();
        run_cli_with_timeout(
            &[
                "--config",
                &config,
                "--log-format",
                "json",
                "run",
                "--as-of",
                AS_OF,
            ],
            &[("RUST_LOG", "info")],
            Duration::from_secs(60),
        )
    }

    /// Starts `coldsync run --as-of AS_OF` with JSON logs on stderr.
    fn spawn_run(&self) -> WatchedChild {
        let mut cmd = Command::new(coldsync_bin());
        cmd.arg("--config")
            .arg(self.config_path())
            .args(["--log-format", "json", "run", "--as-of", AS_OF])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        WatchedChild::spawn("coldsync run", &mut cmd)
    }
}

/// The JSON events a spawned run logged until it exited, and its exit code.
fn finish(mut run: WatchedChild) -> (i32, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let lines = run.remaining_lines(deadline);
    let code = run.wait(deadline).code().unwrap_or(-1);
    let events = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect();
    (code, events)
}

fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| event_name(e) == Some(name))
        .collect()
}

const ORDERS: &str = "[[tables]]\nname = \"orders\"\npath = \"orders\"\nkey = \"ord:{order_id}\"\n";

/// Keys `ord:*` on all masters together.
fn loaded_keys(cluster: &RedisCluster) -> usize {
    cluster
        .masters()
        .iter()
        .filter_map(|m| cluster.try_cmd::<usize>(m.port, "DBSIZE", &[]))
        .sum()
}

/// Waits until at least `keys` keys are in the cluster (the load is under way).
fn wait_keys(cluster: &RedisCluster, keys: usize) {
    wait_for("the load to be under way", Duration::from_secs(60), || {
        (loaded_keys(cluster) >= keys).then_some(())
    });
}

/// Every `ord:<id>` of 1..=rows holds its exact JSON value (read through the cluster client):
/// counted on every master, and read back one by one for every `step`-th id.
fn assert_every_key(cluster: &RedisCluster, rows: i64, step: usize) {
    let per_master = cluster.keys_per_master("ord:*");
    assert_eq!(
        per_master.values().sum::<usize>(),
        rows as usize,
        "keys per master: {per_master:?}"
    );
    let mut con = cluster.client();
    for id in (1..=rows).step_by(step) {
        let value: Option<String> = con.get(format!("ord:{id}")).unwrap();
        assert_eq!(
            value.as_deref(),
            Some(orders_json(id, DATE).as_str()),
            "ord:{id}"
        );
    }
}

/// `coldsync run` succeeds and loads exactly `partitions` partitions.
fn assert_loads(ws: &Workspace, partitions: usize) {
    let out = ws.run();
    out.assert_success();
    assert_eq!(
        out.events_named("partition_loaded").len(),
        partitions,
        "{}",
        out.dump()
    );
}

fn ledger(cluster: &RedisCluster, key: &str) -> BTreeMap<String, String> {
    cluster.client().hgetall(key).unwrap()
}

#[test]
fn json_hash_and_hash_tagged_tables_load_exactly_on_the_masters_and_a_rerun_is_a_no_op() {
    let cluster = RedisCluster::start();
    let rows = 3000;
    let tables = format!(
        "{ORDERS}\n[[tables]]\nname = \"orders_h\"\npath = \"orders\"\nkey = \"ordh:{{order_id}}\"\n\
         value_format = \"hash\"\n\n[[tables]]\nname = \"tagged\"\npath = \"orders\"\n\
         key = \"tag:{{{{orders}}}}:{{order_id}}\"\n"
    );
    let ws = Workspace::new(&cluster, rows, &tables, "");
    assert_loads(&ws, 3);

    assert_every_key(&cluster, rows, 1);
    // The keys of the untagged tables are spread over all 3 masters.
    let spread = cluster.keys_per_master("ordh:*");
    assert_eq!(spread.len(), 3);
    assert!(spread.values().all(|&n| n > 500), "{spread:?}");
    // A hash tag puts the whole table in one slot, on one master.
    let tagged = cluster.keys_per_master("tag:*");
    let mut counts: Vec<usize> = tagged.values().copied().collect();
    counts.sort();
    assert_eq!(counts, vec![0, 0, rows as usize], "{tagged:?}");

    let mut con = cluster.client();
    for id in 1..=rows {
        let hash: BTreeMap<String, String> = con.hgetall(format!("ordh:{id}")).unwrap();
        let ts = chrono::DateTime::from_timestamp_millis(orders_created_at_ms(id)).unwrap();
        let expected = BTreeMap::from([
            ("user_id".to_string(), orders_user_id(id).to_string()),
            ("amount".to_string(), format!("{id}.99")),
            ("status".to_string(), format!("paid-{DATE}")),
            (
                "created_at".to_string(),
                ts.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            ),
        ]);
        assert_eq!(hash, expected, "ordh:{id}");
        let tagged: Option<String> = con.get(format!("tag:{{orders}}:{id}")).unwrap();
        assert_eq!(tagged.as_deref(), Some(orders_json(id, DATE).as_str()));
    }
    for table in ["orders", "orders_h", "tagged"] {
        let entries = ledger(&cluster, &format!("coldsync:{{{table}}}:partitions"));
        assert_eq!(entries.keys().collect::<Vec<_>>(), vec![DATE], "{table}");
    }

    assert_loads(&ws, 0);
    assert_every_key(&cluster, rows, 97);
}

/// Rows of the partitions a fault lands in.
const BIG: i64 = 200_000;

#[test]
fn slots_migrating_during_a_load_are_followed_and_every_key_lands() {
    let cluster = RedisCluster::start();
    let ws = Workspace::new(&cluster, BIG, ORDERS, "");
    let run = ws.spawn_run();
    wait_keys(&cluster, 20_000);
    let masters = cluster.masters();
    let (from, to) = (&masters[0], &masters[1]);
    let before = loaded_keys(&cluster);
    let reshard = Command::new("redis-cli")
        .args(["--cluster", "reshard", &format!("127.0.0.1:{}", from.port)])
        .args(["--cluster-from", &from.id, "--cluster-to", &to.id])
        .args(["--cluster-slots", "400", "--cluster-yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .expect("redis-cli --cluster reshard");
    assert!(reshard.status.success(), "{reshard:?}");
    let (code, events) = finish(run);
    assert_eq!(code, 0, "{events:#?}");
    // The migration ran while the load did.
    assert!(
        before < BIG as usize,
        "the load was over before the reshard"
    );
    assert_eq!(named(&events, "partition_loaded").len(), 1);
    let slots: String = cluster.cmd(to.port, "CLUSTER", &["NODES"]);
    assert!(slots.contains(&to.id), "{slots}");
    assert_every_key(&cluster, BIG, 101);
    assert_eq!(
        ledger(&cluster, LEDGER).keys().collect::<Vec<_>>(),
        vec![DATE]
    );
}

#[test]
fn a_master_failing_over_during_a_load_loses_no_key() {
    let cluster = RedisCluster::start();
    let ws = Workspace::new(&cluster, BIG, ORDERS, "");
    let run = ws.spawn_run();
    wait_keys(&cluster, 20_000);
    let victim = cluster.masters()[0].clone();
    let replica = cluster.replica_of(&victim.id);
    let _: String = cluster.cmd(replica.port, "CLUSTER", &["FAILOVER"]);
    wait_for("the replica to take over", Duration::from_secs(20), || {
        cluster
            .masters()
            .iter()
            .any(|m| m.port == replica.port)
            .then_some(())
    });
    let (code, events) = finish(run);
    assert_eq!(code, 0, "{events:#?}");
    assert_eq!(named(&events, "partition_loaded").len(), 1);
    assert!(cluster.masters().iter().all(|m| m.port != victim.port));
    // The writes went to the new master: the old one, now a replica, answered MOVED, or the
    // writer reconnected to the new master.
    let new_node = format!("127.0.0.1:{}", replica.port);
    let followed = named(&events, "cluster_redirects")
        .iter()
        .any(|e| event_field(e, "moved").and_then(Value::as_u64) > Some(0))
        || named(&events, "cluster_topology_changed")
            .iter()
            .any(|e| event_field(e, "new_node").and_then(Value::as_str) == Some(&new_node));
    assert!(followed, "{events:#?}");
    assert_every_key(&cluster, BIG, 101);
    assert_eq!(
        ledger(&cluster, LEDGER).keys().collect::<Vec<_>>(),
        vec![DATE]
    );
}

#[test]
fn with_wait_replicas_a_master_killed_during_a_load_loses_no_recorded_key() {
    let mut cluster = RedisCluster::start();
    let ws = Workspace::new(
        &cluster,
        BIG,
        ORDERS,
        "wait_replicas = 1\nwait_timeout = \"1s\"\n",
    );
    let run = ws.spawn_run();
    wait_keys(&cluster, 20_000);
    let victim = cluster.masters()[0].clone();
    let replica = cluster.replica_of(&victim.id);
    cluster.kill(victim.port);
    wait_for(
        "the replica to be promoted",
        Duration::from_secs(30),
        || {
            cluster
                .masters()
                .iter()
                .any(|m| m.port == replica.port)
                .then_some(())
        },
    );
    // Back as the new master's replica: WAIT 1 can be answered again.
    cluster.restart(victim.port);
    let (code, events) = finish(run);
    assert_eq!(code, 0, "{events:#?}");
    assert_eq!(named(&events, "partition_loaded").len(), 1);
    let moved = named(&events, "cluster_topology_changed");
    assert!(
        moved
            .iter()
            .any(|e| event_field(e, "new_node").and_then(Value::as_str)
                == Some(format!("127.0.0.1:{}", replica.port).as_str())),
        "{events:#?}"
    );
    assert_every_key(&cluster, BIG, 101);
    assert_eq!(
        ledger(&cluster, LEDGER).keys().collect::<Vec<_>>(),
        vec![DATE]
    );
}

#[test]
fn plan_estimates_memory_per_master_and_the_fullest_one_warns() {
    let cluster = RedisCluster::start();
    let rows = 20_000;
    let tables = format!(
        "{ORDERS}\n[[tables]]\nname = \"tagged\"\npath = \"orders\"\n\
         key = \"tag:{{{{orders}}}}:{{order_id}}\"\n"
    );
    let ws = Workspace::new(&cluster, rows, &tables, "");
    // The master of the tagged table's slot has room for a little of it only.
    let tagged_master = {
        let slot: u16 = cluster.cmd(cluster.ports[0], "CLUSTER", &["KEYSLOT", "orders"]);
        let shards: Vec<redis::Value> = cluster.cmd(cluster.ports[0], "CLUSTER", &["SLOTS"]);
        let owner = shards.iter().find_map(|range| {
            let redis::Value::Array(parts) = range else {
                return None;
            };
            let (redis::Value::Int(start), redis::Value::Int(end), redis::Value::Array(node)) =
                (&parts[0], &parts[1], &parts[2])
            else {
                return None;
            };
            let redis::Value::Int(port) = node[1] else {
                return None;
            };
            (*start..=*end)
                .contains(&i64::from(slot))
                .then_some(port as u16)
        });
        owner.unwrap()
    };
    let info: String = cluster.cmd(tagged_master, "INFO", &["memory"]);
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let max = (used + 1_000_000).to_string();
    let _: String = cluster.cmd(tagged_master, "CONFIG", &["SET", "maxmemory", &max]);

    let config = ws.config_path().display().to_string();
    let out = run_cli_with_timeout(
        &[
            "--config",
            &config,
            "--log-format",
            "json",
            "plan",
            "--json",
            "--as-of",
            AS_OF,
        ],
        &[("RUST_LOG", "info")],
        Duration::from_secs(60),
    );
    assert_eq!(out.status_code, 0, "{}", out.dump());
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    let masters = plan["masters"].as_array().expect("masters in the plan");
    assert_eq!(masters.len(), 3, "{plan:#}");
    let est = |m: &Value| m["est_memory_bytes"].as_u64().unwrap();
    let total = plan["est_memory_bytes"].as_u64().unwrap();
    let sum: u64 = masters.iter().map(est).sum();
    assert!(sum.abs_diff(total) <= 3, "{sum} vs {total}");
    // The tagged table (half the estimate) all on its master, the other spread over the three.
    let node = format!("127.0.0.1:{tagged_master}");
    let fullest = masters.iter().max_by_key(|m| est(m)).unwrap();
    assert_eq!(fullest["node"], node.as_str(), "{plan:#}");
    assert!(est(fullest) > total / 2, "{plan:#}");
    let free = fullest["redis_free_bytes"]
        .as_u64()
        .expect("its free memory");
    assert_eq!(plan["redis_free_bytes"].as_u64(), Some(free));
    let warnings = out.events_named("memory_warning");
    assert_eq!(warnings.len(), 1, "{}", out.dump());
    assert_eq!(
        event_field(warnings[0], "node").and_then(Value::as_str),
        Some(node.as_str())
    );
    assert_eq!(
        event_field(warnings[0], "est_memory_bytes").and_then(Value::as_u64),
        Some(est(fullest))
    );
}

#[test]
fn a_cluster_over_mutual_tls_loads_exactly_and_a_rerun_is_a_no_op() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let cluster = RedisCluster::start_tls(certs.path());
    let file = |name: &str| certs.path().join(name).display().to_string();
    let options = format!(
        "tls_ca_file = {:?}\ntls_cert_file = {:?}\ntls_key_file = {:?}",
        file("ca.crt"),
        file("client.crt"),
        file("client.key")
    );
    let rows = 3000;
    let ws = Workspace::new(&cluster, rows, ORDERS, &options);
    let text = std::fs::read_to_string(ws.config_path())
        .unwrap()
        .replace(&cluster.url(), &cluster.tls_url());
    std::fs::write(ws.config_path(), text).unwrap();
    assert_loads(&ws, 1);
    // Read back over the nodes' plain ports: every key on its master, exact.
    assert_every_key(&cluster, rows, 1);
    assert_eq!(
        ledger(&cluster, LEDGER).keys().collect::<Vec<_>>(),
        vec![DATE]
    );
    assert_loads(&ws, 0);
    // The wrong CA is refused clearly, before anything is written.
    let text = std::fs::read_to_string(ws.config_path())
        .unwrap()
        .replace(&file("ca.crt"), &file("other-ca.crt"));
    std::fs::write(ws.config_path(), text).unwrap();
    let refused = ws.run();
    assert_eq!(refused.status_code, 1, "{}", refused.dump());
    assert!(refused.stderr.contains("not trusted"), "{}", refused.dump());
}
