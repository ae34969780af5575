//! Lists a table root into date partitions, the data files of each and the `_SUCCESS` markers.
//!
//! One recursive listing per table (a handful of requests on S3 even for a year of partitions).
//! Like Hive and Spark, every path with a component starting with `_` or `.` (`_temporary/`,
//! `.hive-staging_*`, `_tmp.*`, `.crc` files) is never treated as data; `_SUCCESS` files are only
//! read as completeness markers. Data files need no extension (Hive writes `000000_0`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use opendal::{EntryMode, ErrorKind, Operator};
use sha2::{Digest, Sha256};

use crate::config::TableConfig;
use crate::error::SourceError;

/// The completeness marker file name written by Hadoop output committers.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// One data file of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Path in the store, relative to the source root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag, when the store has one.
    pub etag: Option<String>,
    /// Last modification, milliseconds since the epoch.
    pub last_modified_ms: Option<i64>,
}

/// One date partition as found in the store (all sub-partitions of the date together).
#[derive(Debug, Clone)]
pub struct DiscoveredPartition {
    /// The partition date.
    pub date: NaiveDate,
    /// Directory of the partition, e.g. `orders/dt=2026-11-20/`.
    pub dir: String,
    /// Data files, sorted by path.
    pub files: Vec<DataFile>,
    /// Directories (under this partition) holding a `_SUCCESS` marker.
    pub marker_dirs: BTreeSet<String>,
    /// Zero-byte files skipped (they hold no rows).
    pub empty_files: usize,
}

impl DiscoveredPartition {
    /// True when the partition directory itself, or every directory holding data files, has a marker.
    pub fn has_marker(&self) -> bool {
        if self.marker_dirs.contains(&self.dir) {
            return true;
        }
        let data_dirs: BTreeSet<&str> = self.files.iter().map(|f| parent_dir(&f.path)).collect();
        !data_dirs.is_empty() && data_dirs.iter().all(|dir| self.marker_dirs.contains(*dir))
    }

    /// Newest modification time of any data file.
    pub fn newest_file_ms(&self) -> Option<i64> {
        self.files.iter().filter_map(|f| f.last_modified_ms).max()
    }

    /// Total bytes of the data files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// A digest of the file list (paths, sizes, etags or modification times): it changes when the
    /// producer rewrites the partition.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for file in &self.files {
            hasher.update(file.path.as_bytes());
            hasher.update([0]);
            hasher.update(file.size.to_le_bytes());
            match (&file.etag, file.last_modified_ms) {
                (Some(etag), _) => hasher.update(etag.trim_matches('"').as_bytes()),
                (None, Some(ms)) => hasher.update(ms.to_le_bytes()),
                (None, None) => {}
            }
            hasher.update([0xff]);
        }
        let digest = hasher.finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Everything found under a table root.
#[derive(Debug, Clone, Default)]
pub struct TableListing {
    /// Date partitions by date.
    pub partitions: BTreeMap<NaiveDate, DiscoveredPartition>,
    /// Partition values that are not dates in the table's format (`__HIVE_DEFAULT_PARTITION__`).
    pub invalid_values: BTreeSet<String>,
    /// Modification time of the table root's `_SUCCESS`, if there is one.
    pub table_marker_ms: Option<i64>,
    /// Objects ignored because of a `_`/`.` component or an unexpected layout.
    pub ignored_objects: usize,
}

fn parent_dir(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    }
}

fn is_hidden(component: &str) -> bool {
    component.starts_with('_') || component.starts_with('.')
}

/// Lists the table root recursively and groups what it finds by partition date.
pub async fn list_table(
    operator: &Operator,
    table: &TableConfig,
) -> Result<TableListing, SourceError> {
    let root = format!("{}/", table.path);
    let entries = match operator.list_with(&root).recursive(true).await {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(SourceError::List { path: root, source }),
    };
    let mut listing = TableListing::default();
    let column_prefix = format!("{}=", table.partition_column);
    for entry in entries {
        let meta = entry.metadata();
        if meta.mode() == EntryMode::DIR || entry.path().ends_with('/') {
            continue;
        }
        let Some(relative) = entry.path().strip_prefix(&root) else {
            listing.ignored_objects += 1;
            continue;
        };
        let components: Vec<&str> = relative.split('/').collect();
        let (file_name, dirs) = components.split_last().expect("split yields one item");
        let last_modified_ms = meta
            .last_modified()
            .map(|ts| ts.into_inner().as_millisecond());
        if dirs.iter().any(|dir| is_hidden(dir)) {
            listing.ignored_objects += 1;
            continue;
        }
        if dirs.is_empty() {
            if *file_name == SUCCESS_MARKER {
                listing.table_marker_ms = last_modified_ms;
            } else {
                listing.ignored_objects += 1;
            }
            continue;
        }
        let Some(value) = dirs[0].strip_prefix(&column_prefix) else {
            listing.ignored_objects += 1;
            continue;
        };
        if !dirs[1..].iter().all(|dir| dir.contains('=')) {
            listing.ignored_objects += 1;
            continue;
        }
        let Some(date) = table.parse_partition_value(value) else {
            listing.invalid_values.insert(value.to_string());
            continue;
        };
        let partition = listing
            .partitions
            .entry(date)
            .or_insert_with(|| DiscoveredPartition {
                date,
                dir: format!("{root}{}/", dirs[0]),
                files: Vec::new(),
                marker_dirs: BTreeSet::new(),
                empty_files: 0,
            });
        if *file_name == SUCCESS_MARKER {
            partition
                .marker_dirs
                .insert(parent_dir(entry.path()).to_string());
        } else if is_hidden(file_name) {
            listing.ignored_objects += 1;
        } else if meta.content_length() == 0 {
            partition.empty_files += 1;
        } else {
            partition.files.push(DataFile {
                path: entry.path().to_string(),
                size: meta.content_length(),
                etag: meta.etag().map(str::to_string),
                last_modified_ms,
            });
        }
    }
    for partition in listing.partitions.values_mut() {
        partition.files.sort_by(|a, b| a.path.cmp(&b.path));
    }
    Ok(listing)
}
