//! The add actions of a Delta table's current version grouped into date partitions: paths made
//! store paths, partition values parsed as the table's dates, deletion vectors turned into a
//! refusal of their date. Pure: [`super::discover`] feeds it what delta_kernel replayed.

use percent_encoding::percent_decode_str;

use crate::catalog::location::StoreLocations;
use crate::catalog::location_error;
use crate::config::TableConfig;
use crate::error::SourceError;
use crate::listing::{DataFile, DiscoveredPartition, TableListing};

/// One live data file of the version (an `add` action not removed since).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// `add.path`: relative to the table root and percent-encoded, or an absolute URI.
    pub path: String,
    /// `add.size`.
    pub size: i64,
    /// `add.modificationTime`, milliseconds since the epoch.
    pub modification_time_ms: i64,
    /// `add.partitionValues[partition_column]`; `None` for a null value.
    pub partition_value: Option<String>,
    /// Rows the file's deletion vector deletes, when it has one (`None`: no deletion vector).
    pub deleted_rows: Option<u64>,
}

/// The value a null partition value is listed as among the invalid values (Hive's name).
const NULL_PARTITION_VALUE: &str = "__HIVE_DEFAULT_PARTITION__";

/// Groups `files` by the date of their partition value. `root` is the table root as a store
/// path (no trailing `/`, empty for the store's root); absolute file URIs are mapped with
/// `locations`.
pub fn group_files(
    table: &TableConfig,
    root: &str,
    locations: &StoreLocations,
    files: Vec<LogFile>,
) -> Result<TableListing, SourceError> {
    let mut listing = TableListing::default();
    let mut deletion_vectors: std::collections::BTreeMap<_, Vec<(String, u64)>> =
        Default::default();
    for file in files {
        let value = file
            .partition_value
            .unwrap_or_else(|| NULL_PARTITION_VALUE.to_string());
        let Some(date) = table.parse_partition_value(&value) else {
            listing.invalid_values.insert(value);
            continue;
        };
        let path = store_path(table, root, locations, &file.path)?;
        let partition = listing.partitions.entry(date).or_insert_with(|| {
            DiscoveredPartition::committed(
                date,
                join(root, &format!("{}={value}/", table.partition_column)),
            )
        });
        if let Some(deleted) = file.deleted_rows {
            deletion_vectors
                .entry(date)
                .or_default()
                .push((path.clone(), deleted));
        }
        if file.size <= 0 {
            partition.empty_files += 1;
            continue;
        }
        partition.files.push(DataFile {
            path,
            size: file.size as u64,
            etag: None,
            last_modified_ms: Some(file.modification_time_ms),
        });
    }
    for (date, mut files) in deletion_vectors {
        files.sort();
        let (first, deleted) = &files[0];
        let others = match files.len() {
            1 => String::new(),
            n => format!(" (and {} more files with one)", n - 1),
        };
        if let Some(partition) = listing.partitions.get_mut(&date) {
            partition.refusal = Some(format!(
                "the Delta file {first} has a deletion vector ({deleted} rows deleted){others}: \
                 coldsync reads files whole and would load deleted rows; purge the deletion \
                 vectors of this day (REORG TABLE ... APPLY (PURGE)) or disable \
                 delta.enableDeletionVectors and rewrite it"
            ));
        }
    }
    for partition in listing.partitions.values_mut() {
        partition.files.sort_by(|a, b| a.path.cmp(&b.path));
    }
    Ok(listing)
}

/// The store path of an `add.path`.
fn store_path(
    table: &TableConfig,
    root: &str,
    locations: &StoreLocations,
    path: &str,
) -> Result<String, SourceError> {
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|err| SourceError::Metadata {
            table: table.name.clone(),
            path: join(root, "_delta_log/"),
            message: format!("the add action's path {path:?} is not UTF-8 once decoded: {err}"),
            transient: false,
        })?;
    if url::Url::parse(path).is_ok() {
        return locations
            .to_store_path(&decoded)
            .map_err(|reason| location_error(table, locations, &decoded, reason));
    }
    if decoded.starts_with('/') || decoded.split('/').any(|part| part == "..") {
        return Err(SourceError::Metadata {
            table: table.name.clone(),
            path: join(root, "_delta_log/"),
            message: format!(
                "the add action's path {path:?} is neither relative to the table root nor a URI"
            ),
            transient: false,
        });
    }
    Ok(join(root, &decoded))
}

fn join(root: &str, relative: &str) -> String {
    if root.is_empty() {
        relative.to_string()
    } else {
        format!("{root}/{relative}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::NaiveDate;

    use super::*;
    use crate::config::Config;
    use std::collections::BTreeSet;

    fn table() -> TableConfig {
        let text = "[source]\nscheme = \"fs\"\nroot = \"/lake\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n\
             [[tables]]\nname = \"orders\"\nkey = \"o:{id}\"\nformat = \"delta\"\npath = \"w/orders\"\nretention_days = 30\n";
        Config::parse(text, &HashMap::new())
            .unwrap()
            .tables
            .remove(0)
    }

    fn file(path: &str, value: Option<&str>, deleted_rows: Option<u64>) -> LogFile {
        LogFile {
            path: path.to_string(),
            size: 100,
            modification_time_ms: 1_700_000_000_000,
            partition_value: value.map(str::to_string),
            deleted_rows,
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn files_are_grouped_by_date_with_decoded_store_paths() {
        let locations = StoreLocations::new("fs", "", "/lake", None);
        let listing = group_files(
            &table(),
            "w/orders",
            &locations,
            vec![
                file(
                    "dt=2026-11-20/region=eu/b%20c.parquet",
                    Some("2026-11-20"),
                    None,
                ),
                file("dt=2026-11-20/a.parquet", Some("2026-11-20"), None),
                file(
                    "file:///lake/w/orders/dt=2026-11-21/x.parquet",
                    Some("2026-11-21"),
                    None,
                ),
                file("dt=__HIVE_DEFAULT_PARTITION__/n.parquet", None, None),
                file("dt=20261122/bad.parquet", Some("20261122"), None),
            ],
        )
        .unwrap();
        let paths: Vec<&str> = listing.partitions[&day(20)]
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "w/orders/dt=2026-11-20/a.parquet",
                "w/orders/dt=2026-11-20/region=eu/b c.parquet"
            ]
        );
        assert!(listing.partitions[&day(20)].committed);
        assert_eq!(listing.partitions[&day(20)].dir, "w/orders/dt=2026-11-20/");
        assert_eq!(
            listing.partitions[&day(21)].files[0].path,
            "w/orders/dt=2026-11-21/x.parquet"
        );
        assert_eq!(
            listing.invalid_values,
            BTreeSet::from(["20261122".to_string(), NULL_PARTITION_VALUE.to_string()])
        );
    }

    #[test]
    fn a_deletion_vector_refuses_its_date_only() {
        let locations = StoreLocations::new("fs", "", "/lake", None);
        let listing = group_files(
            &table(),
            "w/orders",
            &locations,
            vec![
                file("dt=2026-11-20/a.parquet", Some("2026-11-20"), Some(2)),
                file("dt=2026-11-20/b.parquet", Some("2026-11-20"), None),
                file("dt=2026-11-21/c.parquet", Some("2026-11-21"), None),
            ],
        )
        .unwrap();
        let refusal = listing.partitions[&day(20)].refusal.clone().unwrap();
        assert!(
            refusal.contains("w/orders/dt=2026-11-20/a.parquet"),
            "{refusal}"
        );
        assert!(refusal.contains("2 rows deleted"), "{refusal}");
        assert_eq!(listing.partitions[&day(21)].refusal, None);
    }

    #[test]
    fn files_outside_the_store_or_the_root_are_errors() {
        let locations = StoreLocations::new("fs", "", "/lake", None);
        let err = group_files(
            &table(),
            "w/orders",
            &locations,
            vec![file("s3://other/x.parquet", Some("2026-11-20"), None)],
        )
        .unwrap_err();
        assert!(matches!(err, SourceError::Location { .. }), "{err}");
        let err = group_files(
            &table(),
            "w/orders",
            &locations,
            vec![file("../escape.parquet", Some("2026-11-20"), None)],
        )
        .unwrap_err();
        assert!(err.to_string().contains("neither relative"), "{err}");
    }
}
