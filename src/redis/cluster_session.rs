//! The bulk writer on a Redis Cluster: `[redis] connections` connections per master, each with
//! `pipelines_per_connection` batches in flight and every reply checked, as on one server
//! ([`super::session`]), plus what a cluster changing under a load needs:
//!
//! - **Redirections** (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`) of some commands of a batch: the
//!   rest of the batch is checked, then the redirected commands (a hash transaction as a whole)
//!   are sent where the redirection says (`ASKING` first for `ASK`; after a pause for
//!   `TRYAGAIN`/`CLUSTERDOWN`), grouped per node, before the next batch of the queue is checked.
//!   A queue keeps its keys for the whole partition, so a key's writes stay in file order: the
//!   last row of a key in a partition wins.
//! - **A dropped connection or a failover**: the batches not fully acknowledged are kept; the
//!   writer reads the topology again (from the seeds), connects to the master that serves its
//!   first slot now (the promoted replica) and sends them again, in order, then goes on. Every
//!   write is idempotent (absolute expiries, whole-key replacement, version guards), so a batch
//!   Redis had already applied is simply applied again.
//! - Back-off from 100 ms doubling to 2 s, within `[redis] reconnect_budget_secs` of the first
//!   failure; past it the queue fails with [`RedisError::Cluster`] naming the node and slot, and
//!   the partition is not recorded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::error::RedisError;

use super::cluster::{discover, NodeAddr, Redirect, Topology};
use super::command::CommandBatch;
use super::connection::{Connection, Connector};
use super::reply::ReplyReader;
use super::script::ScriptShas;
use super::session::{check_batch, Checked, WriteTotals};

/// The log target of the cluster writer's events.
const LOG_TARGET: &str = "coldsync::redis";
/// First back-off after a failure; it doubles up to [`MAX_DELAY`].
const INITIAL_DELAY: Duration = Duration::from_millis(100);
/// Longest back-off.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// What [`open`] returns: the queues' senders (queue `m * connections + c`), their tasks, the
/// script digests and the topology the queues were built from.
pub(super) type OpenedCluster = (
    Vec<mpsc::Sender<CommandBatch>>,
    JoinSet<Result<WriteTotals, RedisError>>,
    ScriptShas,
    Arc<Topology>,
);

/// Reads the topology from the seeds and opens `connections` connections to every master (the
/// write scripts loaded on each master).
pub(super) async fn open(connector: &Connector) -> Result<OpenedCluster, RedisError> {
    let config = connector.config();
    let seeds = super::cluster::seeds(config);
    let topology = Arc::new(discover(connector, &seeds).await?);
    let wait = (config.wait_replicas > 0)
        .then_some((config.wait_replicas, config.wait_timeout.as_millis() as u64));
    let mut shas = None;
    let mut senders = Vec::new();
    let mut tasks = JoinSet::new();
    for (index, master) in topology.masters.iter().enumerate() {
        let node = connector.for_node(master);
        for _ in 0..config.connections {
            let mut connection = node.open().await?;
            if senders.len() % config.connections == 0 {
                let loaded = ScriptShas::load(&mut connection).await?;
                shas.get_or_insert(loaded);
            }
            let (tx, rx) = mpsc::channel(config.pipelines_per_connection.max(1));
            senders.push(tx);
            let writer = NodeWriter {
                connector: connector.clone(),
                seeds: seeds.clone(),
                node: master.clone(),
                home_slot: topology.first_slot(index),
                in_flight: config.pipelines_per_connection.max(1),
                budget: config.reconnect_budget,
                wait,
                side: HashMap::new(),
                redirected: [0; 3],
            };
            tasks.spawn(writer.run(connection, rx));
        }
    }
    let shas = shas.unwrap_or_default();
    Ok((senders, tasks, shas, topology))
}

/// One queue of a cluster load: its connection to the master of its slots, and connections to
/// the nodes its redirected commands went to.
struct NodeWriter {
    connector: Connector,
    seeds: Vec<NodeAddr>,
    /// The master this queue writes to now.
    node: NodeAddr,
    /// A slot of this queue's master when the partition started: after a failover, the master
    /// serving it is the queue's new master.
    home_slot: u16,
    in_flight: usize,
    budget: Duration,
    wait: Option<(usize, u64)>,
    /// Connections to the nodes redirected commands were sent to.
    side: HashMap<NodeAddr, Connection>,
    /// Writes (a command, or a one-key transaction) redirected so far, by kind: `MOVED`, `ASK`,
    /// `TRYAGAIN`/`CLUSTERDOWN`.
    redirected: [u64; 3],
}

/// Batches written (or about to be) and not yet fully acknowledged, oldest first.
type Unacked = Mutex<VecDeque<Arc<CommandBatch>>>;

impl NodeWriter {
    /// Writes every batch of `batches` and checks its replies, following redirections and
    /// reconnecting (resending what was not acknowledged) within the reconnect budget.
    async fn run(
        mut self,
        connection: Connection,
        mut batches: mpsc::Receiver<CommandBatch>,
    ) -> Result<WriteTotals, RedisError> {
        let mut totals = WriteTotals::default();
        let unacked = Unacked::default();
        let mut connection = Some(connection);
        let mut failed_since: Option<(Instant, u64)> = None;
        let mut delay = INITIAL_DELAY;
        let mut attempt = 0u32;
        loop {
            let result = match connection.take() {
                Some(open) => Ok(open),
                None => self.reconnect().await,
            };
            let result = match result {
                Ok(open) => {
                    self.pipeline(open, &mut batches, &unacked, &mut totals)
                        .await
                }
                Err(err) => Err(err),
            };
            let err = match result {
                Ok(()) => {
                    self.log_redirects();
                    return Ok(totals);
                }
                Err(err) => self.failed(err),
            };
            // Progress since the last failure starts the budget again.
            let since = match failed_since {
                Some((since, keys)) if keys == totals.keys => since,
                _ => {
                    delay = INITIAL_DELAY;
                    Instant::now()
                }
            };
            failed_since = Some((since, totals.keys));
            if !err.is_transient() || since.elapsed() >= self.budget {
                return Err(err);
            }
            attempt += 1;
            tracing::warn!(
                target: LOG_TARGET,
                event = "cluster_node_retry",
                node = %self.node,
                slot = self.home_slot,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %err,
                "redis cluster node failed: reading the topology again and resending what was not acknowledged"
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    /// Logs `cluster_redirects` once the queue is done, if any command was redirected.
    fn log_redirects(&self) {
        let [moved, ask, retry] = self.redirected;
        if moved + ask + retry > 0 {
            tracing::info!(
                target: LOG_TARGET,
                event = "cluster_redirects",
                node = %self.node,
                slot = self.home_slot,
                moved,
                ask,
                retry,
                "commands of this write queue were redirected and sent again where the cluster said"
            );
        }
    }

    /// The error the queue fails with: naming the node and slot.
    fn failed(&self, err: RedisError) -> RedisError {
        match err {
            RedisError::Cluster {
                node,
                slot,
                message,
                transient,
            } if node.is_empty() => RedisError::Cluster {
                node: self.node.to_string(),
                slot: slot.or(Some(self.home_slot)),
                message,
                transient,
            },
            RedisError::Cluster { .. } | RedisError::Reply { .. } => err,
            other => RedisError::Cluster {
                node: self.node.to_string(),
                slot: Some(self.home_slot),
                transient: other.is_transient(),
                message: other.to_string(),
            },
        }
    }

    /// Reads the topology again and connects to the master serving the queue's slot now.
    async fn reconnect(&mut self) -> Result<Connection, RedisError> {
        let mut seeds = self.seeds.clone();
        if !seeds.contains(&self.node) {
            seeds.push(self.node.clone());
        }
        let topology = discover(&self.connector, &seeds).await?;
        let node = topology.masters[topology.master_of(self.home_slot)].clone();
        let mut connection = self.connector.for_node(&node).open().await?;
        ScriptShas::load(&mut connection).await?;
        if node != self.node {
            tracing::info!(
                target: LOG_TARGET,
                event = "cluster_topology_changed",
                old_node = %self.node,
                new_node = %node,
                slot = self.home_slot,
                "the slot of this write queue has a new master: writing there"
            );
            self.node = node;
        }
        Ok(connection)
    }

    /// Writes the unacknowledged batches again, then every new batch, over `connection`; checks
    /// every reply (following redirections). Returns once `batches` is closed and every batch
    /// acknowledged, or at the first failure (the unacknowledged batches stay in `unacked`).
    async fn pipeline(
        &mut self,
        connection: Connection,
        batches: &mut mpsc::Receiver<CommandBatch>,
        unacked: &Unacked,
        totals: &mut WriteTotals,
    ) -> Result<(), RedisError> {
        let timeout = connection.timeout;
        let timed_out = move || RedisError::Timeout {
            seconds: timeout.as_secs(),
        };
        let (read_half, mut write_half) = tokio::io::split(connection.stream);
        let (sent_tx, mut sent_rx) = mpsc::channel::<Arc<CommandBatch>>(self.in_flight);
        let resend: Vec<Arc<CommandBatch>> = unacked.lock().unwrap().iter().cloned().collect();
        let writing = async move {
            let mut write = async |batch: &CommandBatch| {
                tokio::time::timeout(timeout, write_half.write_all(&batch.bytes))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|source| RedisError::Io { source })
            };
            for batch in resend {
                if sent_tx.send(batch.clone()).await.is_err() {
                    return Ok(());
                }
                write(&batch).await?;
            }
            while let Some(batch) = batches.recv().await {
                let batch = Arc::new(batch);
                unacked.lock().unwrap().push_back(batch.clone());
                if sent_tx.send(batch.clone()).await.is_err() {
                    return Ok(());
                }
                write(&batch).await?;
            }
            tokio::time::timeout(timeout, write_half.flush())
                .await
                .map_err(|_| timed_out())?
                .map_err(|source| RedisError::Io { source })?;
            Ok::<_, RedisError>(())
        };
        let reading = async {
            let mut reader = ReplyReader::new(read_half);
            while let Some(batch) = sent_rx.recv().await {
                let checked = tokio::time::timeout(timeout, check_batch(&mut reader, &batch, true))
                    .await
                    .map_err(|_| timed_out())??;
                let mut counted = checked.totals;
                // Every write of the batch moved elsewhere: this node serves none of the queue's
                // slots any more (a failover made it a replica).
                let all_moved = counted.keys == 0
                    && !checked.redirects.is_empty()
                    && checked
                        .redirects
                        .iter()
                        .all(|(_, r)| matches!(r, Redirect::Moved { .. }));
                if !checked.redirects.is_empty() {
                    counted.add(self.follow(&batch, checked.redirects).await?);
                }
                totals.add(counted);
                unacked.lock().unwrap().pop_front();
                if all_moved {
                    return Err(RedisError::Cluster {
                        node: String::new(),
                        slot: None,
                        message: "every write of a batch was moved: following the queue's slots to their master".into(),
                        transient: true,
                    });
                }
            }
            Ok::<_, RedisError>(())
        };
        tokio::try_join!(writing, reading)?;
        Ok(())
    }

    /// Sends the redirected commands of `batch` where their redirections say, grouped per node,
    /// until every one is acknowledged (or the budget is spent).
    async fn follow(
        &mut self,
        batch: &CommandBatch,
        redirects: Vec<(Range<usize>, Redirect)>,
    ) -> Result<WriteTotals, RedisError> {
        let mut totals = WriteTotals::default();
        let unit = |from: &CommandBatch, range: Range<usize>| {
            let mut unit = CommandBatch::default();
            unit.append_commands(from, range);
            unit
        };
        let mut pending: Vec<(CommandBatch, Redirect, NodeAddr)> = redirects
            .into_iter()
            .map(|(range, redirect)| (unit(batch, range), redirect, self.node.clone()))
            .collect();
        let started = Instant::now();
        let mut delay = INITIAL_DELAY;
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            let mut pause = rounds > 3;
            let mut slot = None;
            // Different nodes serve different slots, so different keys: the order between
            // nodes does not matter, the order within one node is kept.
            let mut by_node: BTreeMap<NodeAddr, CommandBatch> = BTreeMap::new();
            for (commands, redirect, answered) in pending.drain(..) {
                let kind = match redirect {
                    Redirect::Moved { .. } => 0,
                    Redirect::Ask { .. } => 1,
                    Redirect::Retry => 2,
                };
                self.redirected[kind] += 1;
                let (target, asking) = match redirect {
                    Redirect::Moved { node, slot: s } => {
                        slot = Some(s);
                        (node, false)
                    }
                    Redirect::Ask { node, slot: s } => {
                        slot = Some(s);
                        (node, true)
                    }
                    Redirect::Retry => {
                        pause = true;
                        (answered, false)
                    }
                };
                let out = by_node.entry(target).or_default();
                if asking {
                    out.push_asking();
                }
                out.append_commands(&commands, 0..commands.len());
            }
            if started.elapsed() >= self.budget && rounds > 1 {
                let node = by_node.keys().next().map(ToString::to_string);
                return Err(RedisError::Cluster {
                    node: node.unwrap_or_default(),
                    slot,
                    message: format!(
                        "writes still redirected after {rounds} rounds and {:?} (redis.reconnect_budget_secs)",
                        started.elapsed()
                    ),
                    transient: true,
                });
            }
            if pause {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
            for (node, mut out) in by_node {
                if let Some((replicas, timeout_ms)) = self.wait {
                    out.push_wait(replicas, timeout_ms);
                }
                let checked = self.send_to(&node, &out).await?;
                totals.add(checked.totals);
                for (range, redirect) in checked.redirects {
                    pending.push((unit(&out, range), redirect, node.clone()));
                }
            }
        }
        Ok(totals)
    }

    /// Sends `batch` to `node` over its side connection (opened, scripts loaded, if needed) and
    /// checks the replies.
    async fn send_to(
        &mut self,
        node: &NodeAddr,
        batch: &CommandBatch,
    ) -> Result<Checked, RedisError> {
        let mut connection = match self.side.remove(node) {
            Some(open) => open,
            None => {
                let mut open = self.connector.for_node(node).open().await?;
                ScriptShas::load(&mut open).await?;
                open
            }
        };
        let timeout = connection.timeout;
        let checked = tokio::time::timeout(timeout, async {
            connection
                .stream
                .write_all(&batch.bytes)
                .await
                .map_err(|source| RedisError::Io { source })?;
            check_batch(&mut ReplyReader::new(&mut connection.stream), batch, true).await
        })
        .await
        .map_err(|_| RedisError::Timeout {
            seconds: timeout.as_secs(),
        })??;
        self.side.insert(node.clone(), connection);
        Ok(checked)
    }
}
