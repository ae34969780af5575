//! Redis Cluster topology for the bulk writer: the slot of a key, the slot → master map read
//! with `CLUSTER SLOTS` from a seed node, the queue of a key when loading a cluster, and the
//! redirections (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`) a node answers a write with.
//!
//! The control client (ledger, lease, watermark) uses the `redis` crate's cluster client, which
//! follows topology changes and redirections itself (see [`super::control`]). The bulk path is
//! ours because it writes pre-built RESP batches per node at `redis-cli --pipe` speed
//! (see [`super::cluster_session`]); this module gives it the topology through a connection
//! opened by the same [`Connector`] (same TLS, `AUTH` and timeouts).

use std::fmt;
use std::sync::Arc;

use crate::error::RedisError;

use super::command::{route, CommandBatch};
use super::connection::Connector;
use super::reply::Reply;

/// Slots of a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The CRC16 (XMODEM) Redis Cluster hashes keys with.
const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// The slot of `key`: CRC16 of its hash tag (the text between the first `{` and the next `}`,
/// when not empty) or of the whole key, modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    CRC16.checksum(hashed) % SLOTS as u16
}

/// A node's address as the cluster announces it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddr {
    /// Host or IP.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl NodeAddr {
    /// `host:port` (the last `:` splits, so an IPv6 host keeps its colons).
    pub fn parse(text: &str) -> Option<NodeAddr> {
        let (host, port) = text.rsplit_once(':')?;
        Some(NodeAddr {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: port.parse().ok()?,
        })
    }
}

/// Which master serves each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The masters, in the order of their first slot range.
    pub masters: Vec<NodeAddr>,
    /// Index into `masters` of each slot's master.
    owner: Vec<u16>,
}

impl Topology {
    /// Reads the reply of `CLUSTER SLOTS`: `[start, end, [host, port, id, ...], replicas...]` per
    /// range. Every slot must be served, or the cluster is not ready to load.
    pub fn from_cluster_slots(reply: &Reply) -> Result<Topology, String> {
        let Reply::Array(ranges) = reply else {
            return Err(format!("CLUSTER SLOTS answered {reply:?}"));
        };
        let mut masters: Vec<NodeAddr> = Vec::new();
        let mut owner = vec![u16::MAX; SLOTS];
        for range in ranges {
            let (start, end, master) = match range {
                Reply::Array(parts) => match &parts[..] {
                    [Reply::Integer(start), Reply::Integer(end), Reply::Array(node), ..] => {
                        (*start, *end, node)
                    }
                    _ => return Err(format!("bad CLUSTER SLOTS range {range:?}")),
                },
                _ => return Err(format!("bad CLUSTER SLOTS range {range:?}")),
            };
            let addr = match &master[..] {
                [Reply::Bulk(Some(host)), Reply::Integer(port), ..] => NodeAddr {
                    host: String::from_utf8_lossy(host).into_owned(),
                    port: u16::try_from(*port).map_err(|_| format!("bad port {port}"))?,
                },
                _ => return Err(format!("bad CLUSTER SLOTS node {master:?}")),
            };
            if !(0..SLOTS as i64).contains(&start) || !(start..SLOTS as i64).contains(&end) {
                return Err(format!("bad CLUSTER SLOTS range {start}-{end}"));
            }
            let index = match masters.iter().position(|m| *m == addr) {
                Some(index) => index,
                None => {
                    masters.push(addr);
                    masters.len() - 1
                }
            };
            for slot in start..=end {
                owner[slot as usize] = index as u16;
            }
        }
        if let Some(slot) = owner.iter().position(|&o| o == u16::MAX) {
            return Err(format!(
                "slot {slot} has no master (the cluster is not ready)"
            ));
        }
        Ok(Topology { masters, owner })
    }

    /// The index of the master of `slot`.
    pub fn master_of(&self, slot: u16) -> usize {
        usize::from(self.owner[usize::from(slot) % SLOTS])
    }

    /// Slots served by master `index`.
    pub fn slot_count(&self, index: usize) -> usize {
        self.owner
            .iter()
            .filter(|&&o| usize::from(o) == index)
            .count()
    }

    /// The first slot master `index` serves (how a queue finds its master again after a
    /// failover: the master that serves that slot now).
    pub fn first_slot(&self, index: usize) -> u16 {
        self.owner
            .iter()
            .position(|&o| usize::from(o) == index)
            .unwrap_or(0) as u16
    }
}

/// The seed nodes of `[redis]` (`url`, then `urls`); none for one server.
pub fn seeds(config: &crate::config::RedisConfig) -> Vec<NodeAddr> {
    config.cluster.as_ref().map_or_else(Vec::new, |cluster| {
        cluster
            .seeds
            .iter()
            .map(|(host, port)| NodeAddr {
                host: host.clone(),
                port: *port,
            })
            .collect()
    })
}

/// Reads the topology from the first seed that answers `CLUSTER SLOTS` with every slot served.
pub async fn discover(connector: &Connector, seeds: &[NodeAddr]) -> Result<Topology, RedisError> {
    let mut last = None;
    for seed in seeds {
        match discover_at(connector, seed).await {
            Ok(topology) => return Ok(topology),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| RedisError::Cluster {
        node: String::new(),
        slot: None,
        message: "no seed node configured".into(),
        transient: false,
    }))
}

async fn discover_at(connector: &Connector, seed: &NodeAddr) -> Result<Topology, RedisError> {
    let mut connection = connector.for_node(seed).open().await?;
    let mut ask = CommandBatch::default();
    ask.push_command(&[b"CLUSTER", b"SLOTS"]);
    let reply = connection.call(&ask).await?.pop();
    let reply = reply.unwrap_or(Reply::Simple);
    if let Reply::Error(message) = &reply {
        // `ERR This instance has cluster support disabled`: not a cluster at all.
        return Err(RedisError::Cluster {
            node: seed.to_string(),
            slot: None,
            message: format!("CLUSTER SLOTS refused: {message}"),
            transient: message.starts_with("CLUSTERDOWN") || message.starts_with("LOADING"),
        });
    }
    Topology::from_cluster_slots(&reply).map_err(|message| RedisError::Cluster {
        node: seed.to_string(),
        slot: None,
        message,
        // A slot without a master during a failover: the replica is promoted soon.
        transient: true,
    })
}

/// How rows are spread over the write session's queues.
#[derive(Debug, Clone)]
pub enum Router {
    /// One server: by key hash over its connections.
    Single {
        /// Connections.
        connections: usize,
    },
    /// A cluster: the master of the key's slot, then by key hash over that master's
    /// connections. Queue `m * per_master + c` is connection `c` of master `m`.
    Cluster {
        /// The topology when the partition started (a queue keeps its master's slots for the
        /// whole partition; redirections are followed by the queue's writer).
        topology: Arc<Topology>,
        /// Connections per master.
        per_master: usize,
    },
}

impl Router {
    /// Number of queues.
    pub fn queues(&self) -> usize {
        match self {
            Router::Single { connections } => *connections,
            Router::Cluster {
                topology,
                per_master,
            } => topology.masters.len() * per_master,
        }
    }

    /// The queue of `key`: every write of a key goes through one queue, in order.
    pub fn queue(&self, key: &[u8]) -> usize {
        match self {
            Router::Single { connections } => route(key, *connections),
            Router::Cluster {
                topology,
                per_master,
            } => topology.master_of(key_slot(key)) * per_master + route(key, *per_master),
        }
    }

    /// True on a cluster: a multi-key call (a hash transaction or script) must stay in one slot,
    /// so each covers one key.
    pub fn one_key_per_call(&self) -> bool {
        matches!(self, Router::Cluster { .. })
    }

    /// The write session re-sends refused native guarded writes through the guard scripts (one
    /// server; a cluster's writer does not, so guarded writes go straight through the scripts).
    pub fn follows_up(&self) -> bool {
        matches!(self, Router::Single { .. })
    }
}

/// A node's answer that a command belongs elsewhere or must wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// `MOVED slot host:port`: the slot is served there now.
    Moved {
        /// The slot.
        slot: u16,
        /// Its master.
        node: NodeAddr,
    },
    /// `ASK slot host:port`: the slot is migrating; this key is there (send `ASKING` first).
    Ask {
        /// The slot.
        slot: u16,
        /// The importing node.
        node: NodeAddr,
    },
    /// `TRYAGAIN` (a multi-key command mid-migration) or `CLUSTERDOWN` (the cluster cannot
    /// serve the slot now, e.g. during a failover): send again after a pause.
    Retry,
}

/// The redirection an error reply is, if any.
pub fn parse_redirect(message: &str) -> Option<Redirect> {
    let mut words = message.split(' ');
    let code = words.next()?;
    match code {
        "MOVED" | "ASK" => {
            let slot = words.next()?.parse().ok()?;
            let node = NodeAddr::parse(words.next()?)?;
            Some(if code == "MOVED" {
                Redirect::Moved { slot, node }
            } else {
                Redirect::Ask { slot, node }
            })
        }
        "TRYAGAIN" | "CLUSTERDOWN" => Some(Redirect::Retry),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_redis_and_hash_tags() {
        // `CLUSTER KEYSLOT` of Redis 7.0.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"cold:{orders}:1"), key_slot(b"orders"));
        assert_eq!(key_slot(b"{orders}"), key_slot(b"orders"));
        // An empty tag hashes the whole key; only the first tag counts.
        assert_eq!(key_slot(b"a{}b"), CRC16.checksum(b"a{}b") % 16384);
        assert_eq!(key_slot(b"x{a}{b}"), key_slot(b"a"));
    }

    #[test]
    fn redirections_are_parsed() {
        let node = NodeAddr::parse("127.0.0.1:7001").unwrap();
        assert_eq!(
            parse_redirect("MOVED 3999 127.0.0.1:7001"),
            Some(Redirect::Moved {
                slot: 3999,
                node: node.clone()
            })
        );
        assert_eq!(
            parse_redirect("ASK 12 127.0.0.1:7001"),
            Some(Redirect::Ask { slot: 12, node })
        );
        assert_eq!(
            parse_redirect("CLUSTERDOWN The cluster is down"),
            Some(Redirect::Retry)
        );
        assert_eq!(
            parse_redirect("TRYAGAIN Multiple keys"),
            Some(Redirect::Retry)
        );
        assert_eq!(parse_redirect("OOM command not allowed"), None);
        assert_eq!(parse_redirect("MOVED x y"), None);
    }

    #[test]
    fn cluster_slots_become_a_slot_map() {
        let node = |port| {
            Reply::Array(vec![
                Reply::Bulk(Some(b"127.0.0.1".to_vec())),
                Reply::Integer(port),
                Reply::Bulk(Some(b"id".to_vec())),
            ])
        };
        let range = |start, end, port| {
            Reply::Array(vec![
                Reply::Integer(start),
                Reply::Integer(end),
                node(port),
                node(port + 3),
            ])
        };
        let reply = Reply::Array(vec![
            range(0, 5460, 7000),
            range(10923, 16383, 7002),
            range(5461, 10922, 7001),
        ]);
        let topology = Topology::from_cluster_slots(&reply).unwrap();
        assert_eq!(topology.masters.len(), 3);
        assert_eq!(topology.masters[topology.master_of(0)].port, 7000);
        assert_eq!(topology.masters[topology.master_of(16383)].port, 7002);
        assert_eq!(topology.masters[topology.master_of(5461)].port, 7001);
        assert_eq!(topology.slot_count(0), 5461);
        assert_eq!(topology.first_slot(1), 10923);
        let router = Router::Cluster {
            topology: Arc::new(topology.clone()),
            per_master: 2,
        };
        assert_eq!(router.queues(), 6);
        assert!(router.queue(b"foo") / 2 == topology.master_of(12182));
        // A slot without a master: not ready.
        let partial = Reply::Array(vec![range(0, 5460, 7000)]);
        let err = Topology::from_cluster_slots(&partial).unwrap_err();
        assert!(err.contains("slot 5461 has no master"), "{err}");
    }
}
