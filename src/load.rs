//! Loads one partition: open every file and check its footer and schema first (a broken file
//! refuses the partition before any key is written), then stream the needed columns file by file,
//! encode rows, and send pipelined commands over the write session until every one is
//! acknowledged.

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use opendal::Operator;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::config::TableConfig;
use crate::encode::{EncodeSpec, EncodedRows, RowEncoder, ValueFormat};
use crate::error::{FileError, PartitionError, RedisError};
use crate::listing::DiscoveredPartition;
use crate::reader::{open_file, OpenedFile};
use crate::redis::{CommandBatch, Expiry, Router, ScriptShas, WriteSession, WriteStyle};
use crate::run::progress::LoadCounters;
use crate::run::Counters;
use crate::throttle::RateLimiter;

/// Record batches decoded ahead of the encoder, per file.
const READ_AHEAD_BATCHES: usize = 2;

/// What loading a partition did: the counters a run sums.
pub type PartitionStats = Counters;

/// A partition whose files are open and whose footers and schemas passed the checks.
pub struct PreparedPartition {
    files: Vec<(OpenedFile, RowEncoder, parquet::arrow::ProjectionMask)>,
    /// The value columns, resolved for this partition.
    pub spec: Arc<EncodeSpec>,
    /// Rows in the partition, from the footers.
    pub rows: u64,
    /// Bytes of the data files.
    pub bytes: u64,
    /// Rows and keys so far, while the partition is sent (for progress reports).
    progress: Arc<LoadCounters>,
}

impl PreparedPartition {
    /// The rows and keys sent so far, updated while the partition is sent.
    pub fn progress(&self) -> Arc<LoadCounters> {
        self.progress.clone()
    }

    /// Number of files.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Encodes the first record batch of the first file (for estimates): its row count and rows.
    pub async fn sample_rows(self) -> Result<Option<(usize, EncodedRows)>, PartitionError> {
        let Some((file, encoder, mask)) = self.files.into_iter().next() else {
            return Ok(None);
        };
        let path = file.file.path.clone();
        let mut batches = file.stream(mask, 1);
        let Some(batch) = batches.recv().await else {
            return Ok(None);
        };
        let batch = batch?;
        let mut rows = EncodedRows::new();
        encoder
            .encode_batch(&batch, &mut rows)
            .map_err(|source| FileError::Schema { path, source })?;
        Ok(Some((batch.num_rows(), rows)))
    }
}

/// The value columns of a partition when `columns` is not configured: every top-level column of
/// any of its files, in order of first appearance, but the key and partition columns.
fn resolve_columns(table: &TableConfig, files: &[OpenedFile]) -> Vec<String> {
    if let Some(columns) = &table.columns {
        return columns.clone();
    }
    let key_columns = table.key_columns();
    let mut columns: Vec<String> = Vec::new();
    for file in files {
        for field in file.schema().fields() {
            let name = field.name();
            if name != &table.partition_column
                && !key_columns.contains(name)
                && !columns.contains(name)
            {
                columns.push(name.clone());
            }
        }
    }
    columns
}

/// Opens every file of the partition and checks footers and schemas against the encoding.
/// `key_only`: only the key columns are needed (deleting the keys of an old snapshot).
pub async fn prepare(
    operator: &Operator,
    table: &TableConfig,
    partition: &DiscoveredPartition,
    concurrency: usize,
    key_only: bool,
) -> Result<PreparedPartition, PartitionError> {
    if let Some(reason) = &partition.refusal {
        return Err(PartitionError::Refused {
            reason: reason.clone(),
        });
    }
    let opened: Vec<OpenedFile> = futures::stream::iter(partition.files.clone())
        .map(|file| {
            let operator = operator.clone();
            async move { open_file(&operator, &file).await }
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    let spec = if key_only {
        Arc::new(EncodeSpec {
            key: table.key.clone(),
            format: ValueFormat::Json,
            columns: Vec::new(),
            timestamp: table.timestamp,
            date: table.date,
        })
    } else {
        table.encode_spec(resolve_columns(table, &opened))
    };
    let mut needed = table.key_columns();
    needed.extend(spec.columns.iter().cloned());
    if let ValueFormat::Column(column) = &spec.format {
        needed.push(column.clone());
    }
    let mut rows = 0;
    let mut files = Vec::with_capacity(opened.len());
    for file in opened {
        let (schema, mask) = file.projection(&needed)?;
        let encoder =
            RowEncoder::new(spec.clone(), &schema).map_err(|source| FileError::Schema {
                path: file.file.path.clone(),
                source,
            })?;
        rows += file.num_rows();
        files.push((file, encoder, mask));
    }
    Ok(PreparedPartition {
        files,
        spec,
        rows,
        bytes: partition.bytes(),
        progress: Arc::default(),
    })
}

/// Checks the rows a partition skipped for a null or empty key against the table's
/// `max_skipped_ratio`: above it the partition fails ([`PartitionError::TooManySkippedKeys`]).
/// Needs every row read, so it runs once the partition is written, before it is recorded (and
/// before a snapshot's `delete_missing` deletes anything).
pub fn check_skipped_keys(table: &TableConfig, stats: &Counters) -> Result<(), PartitionError> {
    let (rows, skipped) = (stats.rows, stats.skipped_null_keys);
    if rows == 0 || skipped as f64 <= table.max_skipped_ratio * rows as f64 {
        return Ok(());
    }
    Err(PartitionError::TooManySkippedKeys {
        rows,
        skipped_null_keys: skipped,
        max_skipped_ratio: table.max_skipped_ratio,
    })
}

/// Every row of a prepared partition in file order, one encoded record batch at a time, encoded
/// exactly as a load encodes them (verify and retire read partitions this way, awaiting between
/// batches).
pub struct RowStream {
    files: std::vec::IntoIter<(OpenedFile, RowEncoder, parquet::arrow::ProjectionMask)>,
    current: Option<FileRows>,
    rows: EncodedRows,
    read: u64,
}

/// The file a [`RowStream`] is in.
struct FileRows {
    path: String,
    expected: u64,
    decoded: u64,
    encoder: RowEncoder,
    batches: mpsc::Receiver<Result<arrow_array::RecordBatch, FileError>>,
}

impl RowStream {
    /// The rows of `prepared`.
    pub fn new(prepared: PreparedPartition) -> RowStream {
        RowStream {
            files: prepared.files.into_iter(),
            current: None,
            rows: EncodedRows::new(),
            read: 0,
        }
    }

    /// Rows read so far.
    pub fn rows_read(&self) -> u64 {
        self.read
    }

    /// The next record batch's encoded rows; `None` once every file is read (each checked to
    /// have as many rows as its footer says).
    pub async fn next(&mut self) -> Result<Option<&EncodedRows>, PartitionError> {
        loop {
            let Some(file) = &mut self.current else {
                let Some((opened, encoder, mask)) = self.files.next() else {
                    return Ok(None);
                };
                self.current = Some(FileRows {
                    path: opened.file.path.clone(),
                    expected: opened.num_rows(),
                    decoded: 0,
                    encoder,
                    batches: opened.stream(mask, READ_AHEAD_BATCHES),
                });
                continue;
            };
            let Some(batch) = file.batches.recv().await else {
                if file.decoded != file.expected {
                    return Err(FileError::Truncated {
                        path: file.path.clone(),
                        decoded: file.decoded,
                        expected: file.expected,
                    }
                    .into());
                }
                self.current = None;
                continue;
            };
            let batch = batch?;
            file.decoded += batch.num_rows() as u64;
            self.read += batch.num_rows() as u64;
            self.rows.clear();
            file.encoder
                .encode_batch(&batch, &mut self.rows)
                .map_err(|source| FileError::Schema {
                    path: file.path.clone(),
                    source,
                })?;
            return Ok(Some(&self.rows));
        }
    }
}

/// What to send for each encoded row.
#[derive(Debug, Clone, Copy)]
pub enum RowCommand {
    /// Write the row's value.
    Write(WriteStyle),
    /// Delete the key unless it was rewritten with the given (newer) expiry.
    DeleteIfOlder,
}

/// What producing the commands of a partition read and built.
#[derive(Debug, Clone, Default)]
pub struct Produced {
    /// Rows read.
    pub rows: u64,
    /// Rows skipped because a key column was null or empty.
    pub skipped_null_keys: u64,
    /// Bytes of keys and values encoded.
    pub payload_bytes: u64,
    /// Keys (rows with a key) for which writes were built.
    pub keys: u64,
    /// Keys of rows whose hash is empty (every value null): deleted, not written.
    pub deleted_empty_keys: u64,
}

/// Reads every row of a prepared partition, builds one command per row, routes each key to one of
/// `router`'s queues (so all writes of a key go through one connection, in file order; on a
/// cluster, a connection of the master of the key's slot) and hands each
/// batch of `batch_size` commands to `sink` as `(queue, batch)`. Stops early, without error,
/// when the sink is closed (the consumer already has the reason).
pub async fn produce_commands(
    prepared: PreparedPartition,
    command: RowCommand,
    expiry: Expiry,
    shas: ScriptShas,
    router: Router,
    batch_size: usize,
    sink: mpsc::Sender<(usize, CommandBatch)>,
) -> Result<Produced, PartitionError> {
    let mut produced = Produced::default();
    let queues = router.queues();
    let (one_key_per_call, follow_ups) = (router.one_key_per_call(), router.follows_up());
    let new_batch = || {
        CommandBatch::with_capacity(batch_size * 128, batch_size)
            .one_key_per_call(one_key_per_call)
            .follow_ups(follow_ups)
    };
    let mut pending: Vec<CommandBatch> = (0..queues).map(|_| new_batch()).collect();
    let progress = prepared.progress();
    let mut stream = RowStream::new(prepared);
    loop {
        let read_before = stream.rows_read();
        let Some(rows) = stream.next().await? else {
            break;
        };
        let skipped_null_keys = rows.skipped_null_keys();
        produced.skipped_null_keys += skipped_null_keys;
        produced.payload_bytes += rows.byte_len() as u64;
        for row in 0..rows.len() {
            let target = router.queue(rows.key(row));
            let mut out = &mut pending[target];
            if let RowCommand::Write(style) = command {
                if out.needs_barrier(rows, row, style) {
                    // A guarded delete: after every earlier write of the connection is settled.
                    if out.pending_keys() > 0 {
                        out.seal();
                        let full = std::mem::replace(out, new_batch());
                        if !send_batch(&sink, target, full, &mut produced).await {
                            return Ok(produced);
                        }
                        out = &mut pending[target];
                    }
                    out.set_barrier();
                }
            }
            match command {
                RowCommand::Write(style) => out.push_row(rows, row, style, &expiry, &shas),
                RowCommand::DeleteIfOlder => {
                    out.push_delete_if_older(rows.key(row), &expiry, &shas)
                }
            }
            if out.is_full(batch_size) {
                out.seal();
                let full = std::mem::replace(out, new_batch());
                if !send_batch(&sink, target, full, &mut produced).await {
                    return Ok(produced);
                }
            }
        }
        let read = stream.rows_read() - read_before;
        produced.rows += read;
        progress.add_rows(read, skipped_null_keys);
    }
    for (target, mut batch) in pending.into_iter().enumerate() {
        batch.seal();
        if !batch.is_empty() && !send_batch(&sink, target, batch, &mut produced).await {
            break;
        }
    }
    Ok(produced)
}

/// Counts the keys of the sealed `batch` in `produced` and hands it to `sink` for queue
/// `target`; false when the sink is closed.
async fn send_batch(
    sink: &mpsc::Sender<(usize, CommandBatch)>,
    target: usize,
    batch: CommandBatch,
    produced: &mut Produced,
) -> bool {
    produced.keys += (batch.pending_keys() - batch.empty_keys()) as u64;
    produced.deleted_empty_keys += batch.empty_keys() as u64;
    sink.send((target, batch)).await.is_ok()
}

/// Streams every row of a prepared partition into `session` (at most `limiter`'s rate), and waits
/// for every acknowledgement. Reading and encoding run in their own task, beside the writes.
pub async fn send_partition(
    prepared: PreparedPartition,
    session: WriteSession,
    command: RowCommand,
    expiry: &Expiry,
    batch_size: usize,
    limiter: &RateLimiter,
) -> Result<PartitionStats, PartitionError> {
    let started = Instant::now();
    let (files, bytes) = (prepared.files.len() as u64, prepared.bytes);
    let progress = prepared.progress();
    let router = session.router().clone();
    let (tx, mut rx) = mpsc::channel(router.queues() * 2);
    let producer = tokio::spawn(
        produce_commands(
            prepared,
            command,
            expiry.clone(),
            session.shas().clone(),
            router,
            batch_size,
            tx,
        )
        .in_current_span(),
    );
    let mut broken = false;
    while let Some((target, batch)) = rx.recv().await {
        let keys = batch.pending_keys() as u64;
        limiter.acquire(batch.pending_keys()).await;
        if session.send(target, batch).await.is_err() {
            broken = true;
            break;
        }
        progress.add_keys(keys);
    }
    drop(rx);
    let produced = reader_task_result(producer.await);
    let totals = session.finish().await;
    let produced = produced?;
    let totals = totals?;
    let sent = produced.keys + produced.deleted_empty_keys;
    if broken || totals.keys != sent {
        return Err(RedisError::Protocol(format!(
            "{sent} keys sent but {} acknowledged",
            totals.keys
        ))
        .into());
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "partition sent"
    );
    Ok(Counters {
        files,
        rows: produced.rows,
        keys: totals.keys - totals.kept_newer - totals.deleted_empty_keys,
        skipped_null_keys: produced.skipped_null_keys,
        kept_newer: totals.kept_newer,
        deleted_empty_keys: totals.deleted_empty_keys,
        bytes,
        payload_bytes: produced.payload_bytes,
    })
}

/// What the producer task does, as its errors name it.
const READER_TASK: &str = "reading and encoding the partition's rows";

/// The result of the task that reads and encodes a partition's rows, once joined: a panic there is
/// reported as one, never as a Redis error.
fn reader_task_result(
    joined: Result<Result<Produced, PartitionError>, tokio::task::JoinError>,
) -> Result<Produced, PartitionError> {
    joined.map_err(|err| PartitionError::task_died(READER_TASK, err))?
}

/// Writes the commands of a partition as a RESP stream (for `redis-cli --pipe`, or to inspect
/// what a load sends) in `style` (no scripts: an export uses no guarded style).
pub async fn export_partition<W: AsyncWrite + Unpin>(
    prepared: PreparedPartition,
    style: WriteStyle,
    expiry: &Expiry,
    out: &mut W,
) -> Result<Produced, ExportError> {
    let (tx, mut rx) = mpsc::channel(4);
    let producer = tokio::spawn(produce_commands(
        prepared,
        RowCommand::Write(style),
        expiry.clone(),
        ScriptShas::default(),
        Router::Single { connections: 1 },
        1000,
        tx,
    ));
    let mut written = Ok(());
    while let Some((_, batch)) = rx.recv().await {
        if let Err(err) = out.write_all(&batch.bytes).await {
            written = Err(err);
            break;
        }
    }
    drop(rx);
    let produced = reader_task_result(producer.await)?;
    written.map_err(ExportError::Write)?;
    out.flush().await.map_err(ExportError::Write)?;
    Ok(produced)
}

/// Exporting a partition failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The table has no partition for the date.
    #[error("table {table} has no partition {value} at {path}")]
    NoPartition {
        /// The table.
        table: String,
        /// The partition value asked for, in the table's `partition_format`.
        value: String,
        /// The directory the partition would be in.
        path: String,
    },
    /// Reading the partition failed.
    #[error(transparent)]
    Partition(#[from] PartitionError),
    /// Writing the output failed.
    #[error("cannot write the export: {0}")]
    Write(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_reader_task_is_reported_as_a_panic_not_a_redis_error() {
        let task = tokio::spawn(async { panic!("decoder exploded") });
        let joined = task.await.map(|()| Ok(Produced::default()));
        let err = reader_task_result(joined).unwrap_err();
        assert!(
            !matches!(err, PartitionError::Redis(_)),
            "a panic is not a redis error: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the task reading and encoding the partition's rows panicked: decoder exploded"
        );
        assert!(!err.is_transient());
        assert!(matches!(err, PartitionError::TaskDied { .. }), "{err:?}");
    }
}
