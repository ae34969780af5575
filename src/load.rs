//! Loads one partition: open every file and check its footer and schema first (a broken file
//! refuses the partition before any key is written), then stream the needed columns file by file,
//! encode rows, and send pipelined commands over the write session until every one is
//! acknowledged.

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use opendal::Operator;
use serde::Serialize;

use crate::config::TableConfig;
use crate::encode::{EncodeSpec, EncodedRows, RowEncoder, ValueFormat};
use crate::error::{FileError, PartitionError};
use crate::listing::DiscoveredPartition;
use crate::reader::{open_file, OpenedFile};
use crate::resp::{route, CommandBatch, Expiry, WriteStyle};
use crate::writer::WriteSession;

/// Record batches decoded ahead of the encoder, per file.
const READ_AHEAD_BATCHES: usize = 2;

/// What loading a partition did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartitionStats {
    /// Data files read.
    pub files: u64,
    /// Rows read.
    pub rows: u64,
    /// Keys written (commands acknowledged).
    pub keys: u64,
    /// Rows skipped because a key column was null or empty.
    pub skipped_null_keys: u64,
    /// Guarded writes that kept a newer value.
    pub kept_newer: u64,
    /// Bytes of the data files.
    pub bytes: u64,
    /// Bytes of keys and values sent.
    pub payload_bytes: u64,
}

/// A partition whose files are open and whose footers and schemas passed the checks.
pub struct PreparedPartition {
    files: Vec<(OpenedFile, RowEncoder, parquet::arrow::ProjectionMask)>,
    /// The value columns, resolved for this partition.
    pub spec: Arc<EncodeSpec>,
    /// Rows in the partition, from the footers.
    pub rows: u64,
    /// Bytes of the data files.
    pub bytes: u64,
}

impl PreparedPartition {
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
    })
}

/// What to send for each encoded row.
#[derive(Debug, Clone, Copy)]
pub enum RowCommand {
    /// Write the row's value.
    Write(WriteStyle),
    /// Delete the key unless it was rewritten with the given (newer) expiry.
    DeleteIfOlder,
}

/// Streams every row of a prepared partition into `session`, routing each key to its connection,
/// and waits for every acknowledgement.
pub async fn send_partition(
    prepared: PreparedPartition,
    session: WriteSession,
    command: RowCommand,
    expiry: &Expiry,
    batch_size: usize,
) -> Result<PartitionStats, PartitionError> {
    let started = Instant::now();
    let mut stats = PartitionStats {
        files: prepared.files.len() as u64,
        bytes: prepared.bytes,
        ..PartitionStats::default()
    };
    let shas = session.shas().clone();
    let connections = session.connections();
    let mut pending: Vec<CommandBatch> = (0..connections)
        .map(|_| CommandBatch::with_capacity(batch_size * 256, batch_size))
        .collect();
    let mut rows = EncodedRows::new();
    let mut broken = false;
    'files: for (file, encoder, mask) in prepared.files {
        let path = file.file.path.clone();
        let mut batches = file.stream(mask, READ_AHEAD_BATCHES);
        while let Some(batch) = batches.recv().await {
            let batch = match batch {
                Ok(batch) => batch,
                Err(err) => {
                    drop(session.finish().await);
                    return Err(err.into());
                }
            };
            stats.rows += batch.num_rows() as u64;
            rows.clear();
            if let Err(source) = encoder.encode_batch(&batch, &mut rows) {
                drop(session.finish().await);
                return Err(FileError::Schema { path, source }.into());
            }
            stats.skipped_null_keys += rows.skipped_null_keys();
            stats.payload_bytes += rows.byte_len() as u64;
            for row in 0..rows.len() {
                let target = route(rows.key(row), connections);
                let out = &mut pending[target];
                match command {
                    RowCommand::Write(style) => out.push_row(&rows, row, style, expiry, &shas),
                    RowCommand::DeleteIfOlder => {
                        out.push_delete_if_older(rows.key(row), expiry, &shas)
                    }
                }
                if out.len() >= batch_size {
                    let full = std::mem::replace(
                        out,
                        CommandBatch::with_capacity(batch_size * 256, batch_size),
                    );
                    if session.send(target, full).await.is_err() {
                        broken = true;
                        break 'files;
                    }
                }
            }
        }
    }
    if !broken {
        for (target, batch) in pending.into_iter().enumerate() {
            if session.send(target, batch).await.is_err() {
                break;
            }
        }
    }
    let totals = session.finish().await?;
    if broken {
        return Err(
            crate::error::RedisError::Protocol("a write connection stopped early".into()).into(),
        );
    }
    stats.keys = totals.commands - totals.kept_newer;
    stats.kept_newer = totals.kept_newer;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "partition sent"
    );
    Ok(stats)
}
