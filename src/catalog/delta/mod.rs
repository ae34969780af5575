//! Delta Lake tables: the data files of the current version, read from the table's log
//! (`_delta_log/`: JSON commits, `_last_checkpoint`, Parquet checkpoints of any kind) by
//! delta_kernel, through the store of `[source]` (its credentials, timeouts and retries).
//!
//! The table root is `path` (`catalog = "none"`) or the location a Hive Metastore names for the
//! table (`catalog = "hive_metastore"`), mapped to the store by [`StoreLocations`]. Every live
//! `add` file of the latest version belongs to the date of its partition value; its size and
//! `modificationTime` make the date's fingerprint, so a commit that touches one day reloads that
//! day only. Tables whose files coldsync cannot read correctly are refused ([`protocol`]); a day
//! with a deletion vector is refused alone ([`files`]).

pub mod files;
pub mod protocol;
pub mod store;

use std::sync::Arc;

use delta_kernel::object_store::DynObjectStore;
use delta_kernel::scan::state::ScanFile;
use delta_kernel::{KernelError, Snapshot, Version};
use delta_kernel_default_engine::DefaultEngine;
use opendal::Operator;

use self::files::LogFile;
use self::protocol::ReaderRequirements;
use crate::catalog::location::StoreLocations;
use crate::catalog::{hive_metastore, location_error};
use crate::config::{Catalog, TableConfig};
use crate::error::SourceError;
use crate::listing::TableListing;

/// The delta_kernel release the log is read with (Cargo.toml pins it exactly), for messages.
const KERNEL: &str = "delta_kernel 0.30.1";

/// The table's partitions in its latest version; `origin.snapshot` is the version.
pub async fn discover(
    operator: &Operator,
    table: &TableConfig,
) -> Result<TableListing, SourceError> {
    let locations = StoreLocations::of(operator, table.source.location_prefix.as_deref());
    let root = table_root(table, &locations).await?;
    let replay = {
        let operator = operator.clone();
        let name = table.name.clone();
        let column = table.partition_column.clone();
        let table_root = root.clone();
        // delta_kernel's API is blocking (its engine runs the store's futures on a thread of
        // its own): keep it off the runtime's workers.
        tokio::task::spawn_blocking(move || replay_log(operator, &name, &column, &table_root))
            .await
            .map_err(|err| SourceError::Metadata {
                table: table.name.clone(),
                path: log_dir(&root),
                message: format!("the Delta log reader stopped: {err}"),
                transient: false,
            })??
    };
    let mut listing = files::group_files(table, &root, &locations, replay.files)?;
    listing.origin.snapshot = Some(replay.version.to_string());
    Ok(listing)
}

/// The table root as a store path, without a trailing `/` (empty for the store's root).
async fn table_root(
    table: &TableConfig,
    locations: &StoreLocations,
) -> Result<String, SourceError> {
    match &table.source.catalog {
        Catalog::None => Ok(table.path.trim_matches('/').to_string()),
        Catalog::HiveMetastore { .. } => {
            let location = hive_metastore::load_table(table).await?.location;
            locations
                .to_store_path(&location)
                .map(|path| path.trim_matches('/').to_string())
                .map_err(|reason| location_error(table, locations, &location, reason))
        }
        Catalog::Rest { .. } => Err(SourceError::Unsupported {
            table: table.name.clone(),
            message: "catalog = \"rest\" is an Iceberg catalog; a Delta table has catalog = \"none\" or \"hive_metastore\"".to_string(),
        }),
    }
}

/// The latest version of the log and its live data files.
#[derive(Debug)]
struct Replay {
    version: Version,
    files: Vec<LogFile>,
}

/// Reads the log under `root` (blocking).
fn replay_log(
    operator: Operator,
    table: &str,
    partition_column: &str,
    root: &str,
) -> Result<Replay, SourceError> {
    let log = log_dir(root);
    let kernel = |err: KernelError| kernel_error(table, &log, err);
    let store: Arc<DynObjectStore> = Arc::new(store::LogStore::new(operator));
    let engine = DefaultEngine::builder(store).build();
    let snapshot = Snapshot::builder_for(table_url(root).as_str())
        .build(&engine)
        .map_err(kernel)?;
    let configuration = snapshot.table_configuration();
    let protocol = configuration.protocol();
    let requirements = ReaderRequirements {
        min_reader_version: protocol.min_reader_version(),
        reader_features: protocol
            .reader_features()
            .unwrap_or_default()
            .iter()
            .map(|feature| feature.to_string())
            .collect(),
        column_mapping: configuration.column_mapping_mode(),
    };
    protocol::check(&requirements).map_err(|message| SourceError::Unsupported {
        table: table.to_string(),
        message: format!(
            "the Delta table at {root} (version {}): {message}; nothing of the table is loaded",
            snapshot.version()
        ),
    })?;
    let partition_columns = configuration.metadata().partition_columns();
    if !partition_columns.iter().any(|c| c == partition_column) {
        return Err(SourceError::Unsupported {
            table: table.to_string(),
            message: format!(
                "the Delta table at {root} is partitioned by {partition_columns:?}, not by partition_column = {partition_column:?}: set partition_column to its date column"
            ),
        });
    }
    let scan = snapshot.clone().scan_builder().build().map_err(kernel)?;
    let mut visit = Visit {
        partition_column: partition_column.to_string(),
        files: Vec::new(),
        error: None,
    };
    for metadata in scan.scan_metadata(&engine).map_err(kernel)? {
        visit = metadata
            .map_err(kernel)?
            .visit_scan_files(visit, Visit::add)
            .map_err(kernel)?;
    }
    if let Some(err) = visit.error {
        return Err(kernel(err));
    }
    Ok(Replay {
        version: snapshot.version(),
        files: visit.files,
    })
}

/// What the scan's callback collects.
struct Visit {
    partition_column: String,
    files: Vec<LogFile>,
    /// The first bad deletion vector descriptor (the callback cannot return an error).
    error: Option<KernelError>,
}

impl Visit {
    fn add(&mut self, file: ScanFile) {
        let deleted_rows = match file.dv_info.cardinality() {
            Ok(deleted) => deleted,
            Err(err) => {
                self.error.get_or_insert(err);
                return;
            }
        };
        self.files.push(LogFile {
            partition_value: file.partition_values.get(&self.partition_column).cloned(),
            path: file.path,
            size: file.size,
            modification_time_ms: file.modification_time,
            deleted_rows,
        });
    }
}

/// `root/_delta_log/`, for messages.
fn log_dir(root: &str) -> String {
    if root.is_empty() {
        "_delta_log/".to_string()
    } else {
        format!("{root}/_delta_log/")
    }
}

/// The URL delta_kernel knows the table by. Its engine hands the URL's path to the store
/// ([`store::LogStore`] over `[source]`'s operator), so the path is the store path; the scheme
/// and host name nothing real (a `file:` URL would make the kernel look at the local disk).
fn table_url(root: &str) -> url::Url {
    let mut url = url::Url::parse("coldsync://source/").expect("a valid URL");
    if !root.is_empty() {
        url.set_path(&format!("/{root}/"));
    }
    url
}

/// A delta_kernel error as the table's error: unsupported tables are [`SourceError::Unsupported`],
/// the rest [`SourceError::Metadata`] of the log, transient when the store's error is.
fn kernel_error(table: &str, log: &str, err: KernelError) -> SourceError {
    match err {
        KernelError::Unsupported(message) => SourceError::Unsupported {
            table: table.to_string(),
            message: format!(
                "the Delta table at {log}: {message} (by {KERNEL}); nothing of the table is loaded"
            ),
        },
        KernelError::ObjectStore(store) => SourceError::Metadata {
            table: table.to_string(),
            path: log.to_string(),
            transient: store_error_is_transient(&store),
            message: format!("cannot read the Delta log: {store}"),
        },
        other => {
            let hint = match &other {
                KernelError::EmptyLog
                | KernelError::FileNotFound(_)
                | KernelError::MissingVersion(_) => {
                    " (is this the table's root? a Delta table has its commits in _delta_log/)"
                }
                _ => "",
            };
            SourceError::Metadata {
                table: table.to_string(),
                path: log.to_string(),
                transient: false,
                message: format!("cannot read the Delta log: {other}{hint}"),
            }
        }
    }
}

/// True when the opendal error under an object_store error is worth retrying.
fn store_error_is_transient(err: &delta_kernel::object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = source {
        if let Some(opendal) = err.downcast_ref::<opendal::Error>() {
            return crate::source::is_transient(opendal);
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_url_path_is_the_store_path() {
        assert_eq!(
            table_url("w/orders").as_str(),
            "coldsync://source/w/orders/"
        );
        assert_eq!(table_url("w/my table").path(), "/w/my%20table/");
        assert_eq!(table_url("").as_str(), "coldsync://source/");
    }

    #[test]
    fn unsupported_kernel_errors_stay_unsupported() {
        let err = kernel_error(
            "orders",
            "w/orders/_delta_log/",
            KernelError::Unsupported("Feature 'x' is not supported".into()),
        );
        assert!(matches!(err, SourceError::Unsupported { .. }), "{err}");
        assert!(!err.is_transient());
        let err = kernel_error("orders", "w/orders/_delta_log/", KernelError::EmptyLog);
        assert!(err.to_string().contains("_delta_log/"), "{err}");
    }
}
