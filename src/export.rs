//! `coldsync export`: the RESP command stream a load of one partition would send, for offline
//! mass insertion (`redis-cli --pipe`), for debugging, and as the benchmark's baseline input.
//! Reads only the object store: Redis is not contacted.

use chrono::NaiveDate;
use tokio::io::AsyncWrite;

use crate::config::{Config, TableConfig};
use crate::encode::ValueFormat;
use crate::error::PartitionError;
use crate::load::{export_partition, prepare, ExportError, Produced};
use crate::redis::WriteStyle;
use crate::run::partition_expiry;
use crate::source::build_operator;

/// Writes the commands for partition `date` of `table` to `out`: exactly what a load of it into
/// a KV without newer data sends. `SET key value PXAT ms` per row, or for hash tables
/// `MULTI`, then `DEL` + `HSET` + `PEXPIREAT` per key (only `DEL` for a row whose values are all
/// null), `EXEC` every 32 keys: piped into a Redis that holds older hashes of the same keys, no
/// stale field survives, as after a load.
pub async fn export<W: AsyncWrite + Unpin>(
    config: &Config,
    table: &TableConfig,
    date: NaiveDate,
    out: &mut W,
) -> Result<Produced, ExportError> {
    let operator = build_operator(&config.source).map_err(PartitionError::from)?;
    let listing = crate::catalog::discover(&operator, table)
        .await
        .map_err(PartitionError::from)?;
    let partition = listing.partitions.get(&date).ok_or_else(|| {
        let value = table.format_partition_value(date);
        ExportError::NoPartition {
            table: table.name.clone(),
            path: format!("{}/{}={value}/", table.path, table.partition_column),
            value,
        }
    })?;
    let prepared = prepare(
        &operator,
        table,
        partition,
        config.source.read_concurrency,
        false,
    )
    .await?;
    let style = match table.format {
        // The HSET way: an export reads no server, so it knows nothing of its ACL and limits.
        ValueFormat::Hash => WriteStyle::Hash {
            guarded: false,
            restore: None,
        },
        _ => WriteStyle::Set,
    };
    export_partition(prepared, style, &partition_expiry(table, date), out).await
}
