//! The bulk writer: several Redis connections, each with several pipelined batches in flight,
//! every reply read and checked. A connection's commands are written and answered in order, and
//! rows are routed to connections by key, so the last write of a key in a partition wins. Guarded
//! writes refused natively are re-sent on their connection through the guard scripts as soon as
//! their batch is answered ([`super::follow_up`]).
//!
//! This speaks RESP directly over TCP (or TLS) instead of going through a generic client: the
//! commands are already bytes (see [`super::command`]) and replies are checked without allocating.

use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::error::RedisError;

use std::ops::Range;

use super::cluster::{parse_redirect, Redirect, Router};
use super::command::{Acknowledges, CommandBatch};
use super::connection::{Connection, Connector};
use super::follow_up::{follow_up, through_scripts};
use super::reply::{Reply, ReplyReader};
use super::script::ScriptShas;

/// Counts of what the replies said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteTotals {
    /// Keys whose commands were acknowledged (a multi-key call counts its keys): written, kept
    /// newer or deleted as empty.
    pub keys: u64,
    /// Guarded writes that kept a newer value (script replied 0).
    pub kept_newer: u64,
    /// Keys deleted because their hash is empty (every value null): Redis has no empty hash.
    pub deleted_empty_keys: u64,
}

impl WriteTotals {
    pub(super) fn add(&mut self, other: WriteTotals) {
        self.keys += other.keys;
        self.kept_newer += other.kept_newer;
        self.deleted_empty_keys += other.deleted_empty_keys;
    }
}

/// What a connection's writer wrote, for its reader to check.
enum Sent {
    /// A batch of the partition: its refused native writes (if any) follow up.
    Batch(CommandBatch),
    /// The guard-script calls of a batch's refused writes.
    FollowUp(CommandBatch),
}

/// What the reader says of an answered batch.
struct Answered {
    /// Its refused native writes through the guard scripts, if any were refused.
    follow_up: Option<CommandBatch>,
    /// Most of its native writes were refused: the keys are mostly there.
    mostly_refused: bool,
}

/// What a connection's follow-ups need: the scripts, and the `WAIT` each batch ends with.
#[derive(Debug, Clone)]
struct FollowUps {
    shas: ScriptShas,
    wait: Option<(usize, u64)>,
}

/// Runs the pipelined write loop of `connection` until `batches` closes: writes each batch as
/// soon as it arrives, keeps at most `in_flight` batches unacknowledged, checks every reply, and
/// writes each batch's follow-up (its refused guarded writes through the scripts) as soon as the
/// batch is answered, before the next batch. A barrier batch waits until every earlier batch is
/// answered and followed up. Once a batch's native writes were mostly refused, the later batches
/// go straight through the scripts (after the same wait, once).
async fn run_pipeline(
    connection: Connection,
    mut batches: mpsc::Receiver<CommandBatch>,
    in_flight: usize,
    follow_ups: FollowUps,
) -> Result<WriteTotals, RedisError> {
    let (read_half, mut write_half) = tokio::io::split(connection.stream);
    let (sent_tx, mut sent_rx) = mpsc::channel::<Sent>(in_flight.max(1));
    // One message per answered batch. Unbounded: the reader never waits on the writer (at most
    // `in_flight` answers are outstanding).
    let (answered_tx, mut answered_rx) = mpsc::unbounded_channel::<Answered>();
    let shas = follow_ups.shas.clone();
    let timeout = connection.timeout;
    let timed_out = move || RedisError::Timeout {
        seconds: timeout.as_secs(),
    };
    let writing = async move {
        // A write that cannot go out within the timeout means redis stopped reading.
        macro_rules! write_out {
            ($bytes:expr) => {
                tokio::time::timeout(timeout, write_half.write_all($bytes))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|source| RedisError::Io { source })?
            };
        }
        let (mut written, mut answered, mut open) = (0usize, 0usize, true);
        // Keys mostly there: later batches go straight through the scripts, once every batch
        // written so far is answered and followed up (`settled`).
        let (mut scripted, mut settled) = (false, false);
        // `Some` answer of a batch, `None` when the reader has stopped (its error is the
        // pipeline's result).
        macro_rules! on_answer {
            ($answer:expr) => {
                match $answer {
                    None => return Ok(()),
                    Some(Answered {
                        follow_up,
                        mostly_refused,
                    }) => {
                        answered += 1;
                        scripted |= mostly_refused;
                        if let Some(batch) = follow_up {
                            write_out!(&batch.bytes);
                            if sent_tx.send(Sent::FollowUp(batch)).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                }
            };
        }
        while open || answered < written {
            tokio::select! {
                biased;
                answer = answered_rx.recv() => on_answer!(answer),
                batch = batches.recv(), if open => {
                    let Some(batch) = batch else {
                        open = false;
                        continue;
                    };
                    while (batch.is_barrier() || (scripted && !settled)) && answered < written {
                        on_answer!(answered_rx.recv().await);
                    }
                    let batch = if scripted && batch.native_writes() > 0 {
                        settled = true;
                        through_scripts(&batch, &shas)?
                    } else {
                        batch
                    };
                    write_out!(&batch.bytes);
                    written += 1;
                    if sent_tx.send(Sent::Batch(batch)).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        tokio::time::timeout(timeout, write_half.flush())
            .await
            .map_err(|_| timed_out())?
            .map_err(|source| RedisError::Io { source })?;
        Ok::<_, RedisError>(())
    };
    let reading = async move {
        let mut reader = ReplyReader::new(read_half);
        let mut totals = WriteTotals::default();
        while let Some(sent) = sent_rx.recv().await {
            let batch = match &sent {
                Sent::Batch(batch) | Sent::FollowUp(batch) => batch,
            };
            let checked = tokio::time::timeout(timeout, check_batch(&mut reader, batch, false))
                .await
                .map_err(|_| timed_out())??;
            totals.add(checked.totals);
            if let Sent::FollowUp(batch) = &sent {
                if let Some(&index) = checked.refused.first() {
                    return Err(RedisError::Protocol(format!(
                        "the guard script's write of key {:?} was refused",
                        batch.key_of(index)
                    )));
                }
                continue;
            }
            let follow_up = if checked.refused.is_empty() {
                None
            } else {
                let mut next = follow_up(batch, &checked.refused, &follow_ups.shas)?;
                if let Some((replicas, timeout_ms)) = follow_ups.wait {
                    next.push_wait(replicas, timeout_ms);
                }
                Some(next)
            };
            let mostly_refused = 2 * checked.refused.len() > batch.native_writes();
            // The writer may have stopped on an error of its own: it is the result.
            let _ = answered_tx.send(Answered {
                follow_up,
                mostly_refused,
            });
        }
        Ok::<_, RedisError>(totals)
    };
    let ((), totals) = tokio::try_join!(writing, reading)?;
    Ok(totals)
}

/// What the replies of a batch said.
#[derive(Debug, Default)]
pub(super) struct Checked {
    /// Counts of the acknowledged commands.
    pub(super) totals: WriteTotals,
    /// Commands a cluster node redirected (a command, or a whole `MULTI`..`EXEC`), in order:
    /// not written, to be sent where the redirection says.
    pub(super) redirects: Vec<(Range<usize>, Redirect)>,
    /// Native guarded writes refused because the key exists, in order: not written, to follow
    /// up through the guard scripts (not counted in `totals` yet).
    pub(super) refused: Vec<usize>,
}

/// Reads and checks the replies of every command of `batch`. On a cluster (`cluster`), a
/// redirection (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`) is not an error: the command (or its
/// whole transaction) is returned to be sent again, and the rest of the batch still checked.
pub(super) async fn check_batch<R: AsyncRead + Unpin>(
    reader: &mut ReplyReader<R>,
    batch: &CommandBatch,
    cluster: bool,
) -> Result<Checked, RedisError> {
    let mut checked = Checked::default();
    let totals = &mut checked.totals;
    // The open transaction: where its MULTI is, and the redirection of its queued commands.
    let mut multi: Option<(usize, Option<Redirect>)> = None;
    for index in 0..batch.len() {
        let keys = batch.keys_of(index);
        let unexpected = |reply: &Reply| {
            RedisError::Protocol(format!(
                "unexpected reply {reply:?} to the write of key {:?}",
                batch.key_of(index)
            ))
        };
        let reply = reader.next().await?;
        let acknowledges = batch.acknowledges(index);
        if cluster {
            if batch.is_multi(index) {
                multi = Some((index, None));
            }
            let redirect = match &reply {
                Reply::Error(message) => parse_redirect(message),
                _ => None,
            };
            if let Some((start, transaction)) = &mut multi {
                if let Acknowledges::Exec { .. } = acknowledges {
                    let start = *start;
                    if let Some(redirect) = transaction.take() {
                        // The queued commands were refused: EXEC discarded the transaction.
                        checked.redirects.push((start..index + 1, redirect));
                        multi = None;
                        continue;
                    }
                    multi = None;
                } else if let Some(redirect) = redirect {
                    transaction.get_or_insert(redirect);
                    continue;
                }
            } else if let Some(redirect) = redirect {
                checked.redirects.push((index..index + 1, redirect));
                continue;
            }
        }
        match (reply, acknowledges) {
            // Native guarded writes are only sent where refusals follow up (one server).
            (Reply::Bulk(None), Acknowledges::WrittenUnlessExists) if !cluster => {
                checked.refused.push(index);
                continue;
            }
            (Reply::Error(message), Acknowledges::WrittenUnlessExists)
                if !cluster && message.starts_with("BUSYKEY") =>
            {
                checked.refused.push(index);
                continue;
            }
            // A master turned replica (a failover) refuses WAIT: find the new master.
            (Reply::Error(message), Acknowledges::Replicas { .. }) if cluster => {
                return Err(RedisError::Cluster {
                    node: String::new(),
                    slot: None,
                    message: format!("WAIT refused: {message}"),
                    transient: true,
                })
            }
            (Reply::Error(message), _) => {
                return Err(RedisError::refused(
                    batch.command_of(index),
                    batch.key_of(index),
                    message,
                ))
            }
            (Reply::Integer(acked), Acknowledges::Replicas { wanted }) => {
                if acked < i64::from(wanted) {
                    return Err(RedisError::NotReplicated {
                        acked,
                        wanted: wanted.into(),
                    });
                }
            }
            (Reply::Simple, _) => {}
            (Reply::Integer(0 | 1), Acknowledges::DeletedEmpty) => {
                totals.deleted_empty_keys += keys;
            }
            (Reply::Integer(written), _) if (0..=keys as i64).contains(&written) => {
                totals.kept_newer += keys - written as u64;
            }
            // EXEC: the replies of the queued commands.
            (Reply::Array(replies), Acknowledges::Exec { empty }) => {
                if let Some(Reply::Error(message)) =
                    replies.iter().find(|r| matches!(r, Reply::Error(_)))
                {
                    return Err(RedisError::refused(
                        "EXEC",
                        batch.key_of(index),
                        message.clone(),
                    ));
                }
                let queued = batch.queued_before(index);
                if replies.len() != queued {
                    return Err(RedisError::Protocol(format!(
                        "EXEC answered {} replies for {queued} queued commands (key {:?})",
                        replies.len(),
                        batch.key_of(index)
                    )));
                }
                totals.deleted_empty_keys += u64::from(empty);
            }
            (Reply::Array(counts), Acknowledges::WrittenAndDeleted) => match counts[..] {
                [Reply::Integer(written), Reply::Integer(deleted)]
                    if written >= 0 && deleted >= 0 && (written + deleted) as u64 <= keys =>
                {
                    totals.kept_newer += keys - (written + deleted) as u64;
                    totals.deleted_empty_keys += deleted as u64;
                }
                _ => return Err(unexpected(&Reply::Array(counts))),
            },
            (other, _) => return Err(unexpected(&other)),
        }
        totals.keys += keys;
    }
    Ok(checked)
}

/// Connections open for one partition load.
pub struct WriteSession {
    senders: Vec<mpsc::Sender<CommandBatch>>,
    tasks: JoinSet<Result<WriteTotals, RedisError>>,
    shas: ScriptShas,
    router: Router,
    /// `WAIT replicas timeout_ms` after each batch (`[redis] wait_replicas`).
    wait: Option<(usize, u64)>,
}

/// The session's connection tasks have stopped (an error is waiting in [`WriteSession::finish`]).
#[derive(Debug)]
pub struct SessionBroken;

impl WriteSession {
    /// Opens `redis.connections` connections and loads the write scripts; on a cluster,
    /// `redis.connections` per master (see [`super::cluster_session`]).
    pub async fn open(connector: &Connector) -> Result<WriteSession, RedisError> {
        let config = connector.config();
        let wait = (config.wait_replicas > 0)
            .then_some((config.wait_replicas, config.wait_timeout.as_millis() as u64));
        if config.cluster.is_some() {
            let (senders, tasks, shas, topology) = super::cluster_session::open(connector).await?;
            return Ok(WriteSession {
                senders,
                tasks,
                shas,
                router: Router::Cluster {
                    topology,
                    per_master: config.connections,
                },
                wait,
            });
        }
        let mut connections = Vec::with_capacity(config.connections);
        for _ in 0..config.connections {
            connections.push(connector.open().await?);
        }
        let shas = ScriptShas::load(&mut connections[0]).await?;
        let mut senders = Vec::with_capacity(connections.len());
        let mut tasks = JoinSet::new();
        for connection in connections {
            let (tx, rx) = mpsc::channel(config.pipelines_per_connection.max(1));
            senders.push(tx);
            tasks.spawn(run_pipeline(
                connection,
                rx,
                config.pipelines_per_connection,
                FollowUps {
                    shas: shas.clone(),
                    wait,
                },
            ));
        }
        Ok(WriteSession {
            senders,
            tasks,
            shas,
            router: Router::Single {
                connections: config.connections,
            },
            wait,
        })
    }

    /// How rows are spread over the queues ([`WriteSession::send`]'s `index`).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Digests of the loaded scripts.
    pub fn shas(&self) -> &ScriptShas {
        &self.shas
    }

    /// Number of connections.
    pub fn connections(&self) -> usize {
        self.senders.len()
    }

    /// Queues a batch on connection `index`, waiting while that connection is saturated.
    pub async fn send(&self, index: usize, mut batch: CommandBatch) -> Result<(), SessionBroken> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some((replicas, timeout_ms)) = self.wait {
            batch.push_wait(replicas, timeout_ms);
        }
        self.senders[index]
            .send(batch)
            .await
            .map_err(|_| SessionBroken)
    }

    /// Closes the queues and waits until every queued command is acknowledged. The first error of
    /// any connection is returned.
    pub async fn finish(mut self) -> Result<WriteTotals, RedisError> {
        self.senders.clear();
        let mut totals = WriteTotals::default();
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(counted)) => totals.add(counted),
                Ok(Err(err)) => {
                    first_error.get_or_insert(err);
                    self.tasks.abort_all();
                }
                Err(join) if join.is_cancelled() => {}
                Err(join) => {
                    first_error
                        .get_or_insert(RedisError::Protocol(format!("write task failed: {join}")));
                }
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(totals),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::{Expiry, ScriptShas, WriteStyle};

    /// Reads and checks the replies of every command of `batch`.
    async fn check_replies<R: AsyncRead + Unpin>(
        reader: &mut ReplyReader<R>,
        batch: &CommandBatch,
    ) -> Result<WriteTotals, RedisError> {
        Ok(check_batch(reader, batch, false).await?.totals)
    }

    /// A forward hash write without `RESTORE`.
    const HSET_WAY: WriteStyle = WriteStyle::Hash {
        guarded: false,
        restore: None,
    };

    #[tokio::test]
    async fn error_reply_names_the_key() {
        let mut batch = CommandBatch::default();
        batch.push_command(&[b"SET", b"k1", b"v", b"PXAT", b"1"]);
        batch.push_command(&[b"SET", b"k2", b"v", b"PXAT", b"1"]);
        let mut reader = ReplyReader::new(&b"+OK\r\n-WRONGTYPE Operation against a key\r\n"[..]);
        match check_replies(&mut reader, &batch).await {
            Err(RedisError::Reply { key, message }) => {
                assert_eq!(key, "k2");
                assert_eq!(message, "WRONGTYPE Operation against a key");
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut reader = ReplyReader::new(&b":1\r\n:0\r\n"[..]);
        assert_eq!(
            check_replies(&mut reader, &batch).await.unwrap(),
            WriteTotals {
                keys: 2,
                kept_newer: 1,
                deleted_empty_keys: 0,
            }
        );
    }

    #[tokio::test]
    async fn replies_count_written_kept_and_deleted_keys() {
        // EXEC of a transaction of two keys, the second one empty (deleted).
        let mut batch = CommandBatch::default();
        let rows = crate::redis::command::tests::hash_rows();
        let (expiry, shas) = (Expiry::at(5), ScriptShas::default());
        let style = HSET_WAY;
        batch.push_row(&rows, 0, style, &expiry, &shas);
        batch.push_row(&rows, 1, style, &expiry, &shas);
        batch.seal();
        let replies =
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*4\r\n:0\r\n:1\r\n:1\r\n:1\r\n";
        let totals = check_replies(&mut ReplyReader::new(&replies[..]), &batch).await;
        assert_eq!(
            totals.unwrap(),
            WriteTotals {
                keys: 2,
                kept_newer: 0,
                deleted_empty_keys: 1,
            }
        );

        // The guarded script: 128 keys, `[written, deleted]`, the rest kept newer.
        let mut batch = CommandBatch::default();
        let style = WriteStyle::Hash {
            guarded: true,
            restore: None,
        };
        for _ in 0..64 {
            batch.push_row(&rows, 0, style, &expiry, &shas);
            batch.push_row(&rows, 1, style, &expiry, &shas);
        }
        assert_eq!(batch.len(), 1);
        let mut reader = ReplyReader::new(&b"*2\r\n:10\r\n:64\r\n"[..]);
        assert_eq!(
            check_replies(&mut reader, &batch).await.unwrap(),
            WriteTotals {
                keys: 128,
                kept_newer: 54,
                deleted_empty_keys: 64,
            }
        );
        // More keys than the call covers is not a valid answer.
        let mut reader = ReplyReader::new(&b"*2\r\n:70\r\n:64\r\n"[..]);
        let totals = check_replies(&mut reader, &batch).await;
        assert!(matches!(totals, Err(RedisError::Protocol(_))), "{totals:?}");

        // RESTORE, then the DEL of an empty hash: `:0` (no key) is a deletion, not a kept key.
        let mut batch = CommandBatch::default();
        let style = WriteStyle::Hash {
            guarded: false,
            restore: Some(crate::redis::dump::HashListpackLimits::default()),
        };
        batch.push_row(&rows, 0, style, &expiry, &shas);
        batch.push_row(&rows, 1, style, &expiry, &shas);
        let mut reader = ReplyReader::new(&b"+OK\r\n:0\r\n"[..]);
        assert_eq!(
            check_replies(&mut reader, &batch).await.unwrap(),
            WriteTotals {
                keys: 2,
                kept_newer: 0,
                deleted_empty_keys: 1,
            }
        );
    }

    #[tokio::test]
    async fn cluster_redirections_return_whole_units_and_the_rest_is_counted() {
        let rows = crate::redis::command::tests::hash_rows();
        let (expiry, shas) = (Expiry::at(5), ScriptShas::default());
        let mut batch = CommandBatch::default().one_key_per_call(true);
        batch.push_command(&[b"SET", b"k1", b"v", b"PXAT", b"1"]);
        // Two one-key transactions: MULTI DEL HSET PEXPIREAT EXEC, MULTI DEL EXEC (empty hash).
        batch.push_row(&rows, 0, HSET_WAY, &expiry, &shas);
        batch.push_row(&rows, 1, HSET_WAY, &expiry, &shas);
        batch.seal();
        batch.push_command(&[b"SET", b"k2", b"v", b"PXAT", b"1"]);
        batch.push_wait(1, 100);
        assert_eq!(batch.len(), 11);
        let replies = b"-ASK 7 127.0.0.1:7001\r\n\
            +OK\r\n-MOVED 9 127.0.0.1:7002\r\n-MOVED 9 127.0.0.1:7002\r\n\
            -MOVED 9 127.0.0.1:7002\r\n-EXECABORT Transaction discarded\r\n\
            +OK\r\n+QUEUED\r\n*1\r\n:1\r\n+OK\r\n:1\r\n";
        let checked = check_batch(&mut ReplyReader::new(&replies[..]), &batch, true)
            .await
            .unwrap();
        let node = |port| crate::redis::NodeAddr {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(
            checked.redirects,
            vec![
                (
                    0..1,
                    Redirect::Ask {
                        slot: 7,
                        node: node(7001)
                    }
                ),
                (
                    1..6,
                    Redirect::Moved {
                        slot: 9,
                        node: node(7002)
                    }
                ),
            ]
        );
        // The empty-hash transaction and k2 were written; WAIT saw its replica.
        assert_eq!(
            checked.totals,
            WriteTotals {
                keys: 2,
                kept_newer: 0,
                deleted_empty_keys: 1,
            }
        );
        // One node only: a redirection is an error naming the key.
        let err = check_batch(&mut ReplyReader::new(&replies[..]), &batch, false).await;
        assert!(
            matches!(err, Err(RedisError::Reply { ref key, .. }) if key == "k1"),
            "{err:?}"
        );
        // Fewer replicas than asked: the batch fails, worth a retry.
        let mut waited = CommandBatch::default();
        waited.push_wait(2, 100);
        let err = check_batch(&mut ReplyReader::new(&b":1\r\n"[..]), &waited, true)
            .await
            .unwrap_err();
        assert!(err.is_transient());
        assert_eq!(
            err.to_string(),
            "only 1 of 2 replicas acknowledged the writes in time (redis.wait_replicas)"
        );
    }
}
