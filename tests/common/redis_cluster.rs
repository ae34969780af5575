//! A private Redis Cluster per test: 3 masters and 3 replicas (`redis-server --cluster-enabled
//! yes` on free loopback ports <= 55535, the bus on port + 10000), created with `redis-cli
//! --cluster create ... --cluster-replicas 1 --cluster-yes`, ready once every node says
//! `cluster_state:ok` and every master has its replica; every node killed on drop.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{free_port, program, read_lossy, wait_for};

/// Nodes of a test cluster.
const NODES: usize = 6;

/// A node as `CLUSTER NODES` lists it.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// Node id.
    pub id: String,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// True for a master.
    pub master: bool,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
}

/// A running cluster of 3 masters and 3 replicas on 127.0.0.1.
pub struct RedisCluster {
    /// Ports of the 6 nodes.
    pub ports: Vec<u16>,
    /// With [`RedisCluster::start_tls`]: the TLS port of each node (the cluster bus and the
    /// replication run over TLS; [`RedisCluster::ports`] stay plain for the test's own reads).
    pub tls_ports: Vec<u16>,
    /// The certificates directory of a TLS cluster (see [`make_certificates`]).
    tls: Option<PathBuf>,
    children: Vec<Option<Child>>,
    dir: TempDir,
}

/// A free port whose bus port (+10000) is free too, at most 55535.
fn free_cluster_port(taken: &[u16]) -> u16 {
    loop {
        let port = free_port();
        if port > 55_535 || taken.contains(&port) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    /// Starts the 6 nodes, creates the cluster and waits until it is ready (~5 s).
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(None)
    }

    /// A cluster whose nodes also listen for TLS (the certificates of [`make_certificates`] in
    /// `certs`), talk to each other over TLS (`tls-cluster`, `tls-replication`) and answer
    /// `CLUSTER SLOTS` over TLS with their TLS ports; client certificates are not required.
    pub fn start_tls(certs: &Path) -> RedisCluster {
        RedisCluster::start_with(Some(certs.to_path_buf()))
    }

    fn start_with(tls: Option<PathBuf>) -> RedisCluster {
        let dir = tempfile::Builder::new()
            .prefix("coldsync-cluster-")
            .tempdir()
            .expect("cluster temp dir");
        let mut ports = Vec::new();
        for _ in 0..NODES {
            ports.push(free_cluster_port(&ports));
        }
        let mut tls_ports = Vec::new();
        if tls.is_some() {
            for _ in 0..NODES {
                let taken: Vec<u16> = ports.iter().chain(&tls_ports).copied().collect();
                tls_ports.push(free_cluster_port(&taken));
            }
        }
        let mut cluster = RedisCluster {
            children: Vec::new(),
            ports: ports.clone(),
            tls_ports: tls_ports.clone(),
            tls,
            dir,
        };
        for index in 0..NODES {
            let child = cluster.spawn_node(index);
            cluster.children.push(Some(child));
        }
        for &port in &ports {
            wait_for(
                "a cluster node to answer PING",
                Duration::from_secs(10),
                || {
                    let pong: Option<String> = cluster.try_cmd(port, "PING", &[]);
                    pong.filter(|p| p == "PONG")
                },
            );
        }
        let cli = program("COLDSYNC_TEST_REDIS_CLI", "redis-cli");
        let mut create = Command::new(&cli);
        let addrs: Vec<String> = match &cluster.tls {
            Some(certs) => {
                create
                    .arg("--tls")
                    .arg("--cacert")
                    .arg(certs.join("ca.crt"));
                create.arg("--cert").arg(certs.join("server.crt"));
                create.arg("--key").arg(certs.join("server.key"));
                tls_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
            }
            None => ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
        };
        let out = create
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_ready();
        cluster
    }

    fn node_dir(&self, index: usize) -> PathBuf {
        self.dir.path().join(format!("node-{index}"))
    }

    /// Starts node `index` (again: same port, same `nodes.conf`, so it rejoins the cluster).
    fn spawn_node(&self, index: usize) -> Child {
        let bin = program("COLDSYNC_TEST_REDIS_SERVER", "redis-server");
        let dir = self.node_dir(index);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("redis.log"))
            .unwrap();
        let port = self.ports[index].to_string();
        let mut node = Command::new(&bin);
        if let Some(certs) = &self.tls {
            let file = |name: &str| certs.join(name).display().to_string();
            node.args(["--tls-port", &self.tls_ports[index].to_string()])
                .args(["--tls-cert-file", &file("server.crt")])
                .args(["--tls-key-file", &file("server.key")])
                .args(["--tls-ca-cert-file", &file("ca.crt")])
                .args(["--tls-cluster", "yes", "--tls-replication", "yes"])
                .args(["--tls-auth-clients", "optional"]);
        }
        node.args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", "2000"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn `{bin}` ({e})"))
    }

    /// Waits until every live node says `cluster_state:ok` with all slots served and every
    /// master has a connected replica.
    pub fn wait_ready(&self) {
        wait_for("the cluster to be ready", Duration::from_secs(30), || {
            let live: Vec<u16> = self.live_ports();
            let ok = live.iter().all(|&port| {
                let info: Option<String> = self.try_cmd(port, "CLUSTER", &["INFO"]);
                info.is_some_and(|i| {
                    i.contains("cluster_state:ok") && i.contains("cluster_slots_ok:16384")
                })
            });
            let masters = self.masters();
            let replicated = masters.len() == 3
                && masters.iter().all(|m| {
                    let info: Option<String> = self.try_cmd(m.port, "INFO", &["replication"]);
                    info.is_some_and(|i| i.contains("connected_slaves:1"))
                });
            (ok && replicated).then_some(())
        });
    }

    /// Ports of the nodes not killed.
    pub fn live_ports(&self) -> Vec<u16> {
        self.ports
            .iter()
            .zip(&self.children)
            .filter(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// `redis://127.0.0.1:<first port>/`: a seed.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.ports[0])
    }

    /// `rediss://127.0.0.1:<first TLS port>/`: a TLS seed of a [`RedisCluster::start_tls`] cluster.
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.tls_ports[0])
    }

    /// A cluster client over every live node.
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        let nodes: Vec<String> = self
            .live_ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect();
        redis::cluster::ClusterClient::new(nodes)
            .expect("cluster client")
            .get_connection()
            .expect("cluster connection")
    }

    /// A plain connection to one node.
    pub fn node(&self, port: u16) -> Option<redis::Connection> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
        let con = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()?;
        con.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        Some(con)
    }

    /// A command on one node, `None` if it fails.
    pub fn try_cmd<T: redis::FromRedisValue>(
        &self,
        port: u16,
        name: &str,
        args: &[&str],
    ) -> Option<T> {
        let mut con = self.node(port)?;
        let mut cmd = redis::cmd(name);
        for arg in args {
            cmd.arg(*arg);
        }
        cmd.query(&mut con).ok()
    }

    /// A command on one node; panics on failure.
    pub fn cmd<T: redis::FromRedisValue>(&self, port: u16, name: &str, args: &[&str]) -> T {
        self.try_cmd(port, name, args)
            .unwrap_or_else(|| panic!("{name} {args:?} on port {port} failed"))
    }

    /// The nodes as a live node's `CLUSTER NODES` lists them (failed ones left out).
    pub fn nodes(&self) -> Vec<ClusterNode> {
        let Some(&port) = self.live_ports().first() else {
            return Vec::new();
        };
        let text: String = self
            .try_cmd(port, "CLUSTER", &["NODES"])
            .unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                if fields.len() < 8 || fields[2].contains("fail") {
                    return None;
                }
                let port = fields[1].split(['@', ':']).nth(1)?.parse().ok()?;
                Some(ClusterNode {
                    id: fields[0].to_string(),
                    port,
                    master: fields[2].contains("master"),
                    master_id: (fields[3] != "-").then(|| fields[3].to_string()),
                })
            })
            .collect()
    }

    /// The live masters.
    pub fn masters(&self) -> Vec<ClusterNode> {
        self.nodes().into_iter().filter(|n| n.master).collect()
    }

    /// The replica of the master `master_id`.
    pub fn replica_of(&self, master_id: &str) -> ClusterNode {
        self.nodes()
            .into_iter()
            .find(|n| n.master_id.as_deref() == Some(master_id))
            .expect("the master has a replica")
    }

    /// Keys matching `pattern` on each live master, by port.
    pub fn keys_per_master(&self, pattern: &str) -> BTreeMap<u16, usize> {
        self.masters()
            .iter()
            .map(|m| {
                let keys: Vec<String> = self.cmd(m.port, "KEYS", &[pattern]);
                (m.port, keys.len())
            })
            .collect()
    }

    /// `kill -9` of the node on `port`.
    pub fn kill(&mut self, port: u16) {
        let index = self.ports.iter().position(|&p| p == port).unwrap();
        if let Some(mut child) = self.children[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the killed node on `port` again (it rejoins, as a replica once failed over).
    pub fn restart(&mut self, port: u16) {
        let index = self.ports.iter().position(|&p| p == port).unwrap();
        assert!(self.children[index].is_none(), "node {port} is running");
        let child = self.spawn_node(index);
        self.children[index] = Some(child);
    }

    /// The log of the node on `port`, for failure messages.
    pub fn log(&self, port: u16) -> String {
        let index = self.ports.iter().position(|&p| p == port).unwrap();
        read_lossy(&self.node_dir(index).join("redis.log"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
