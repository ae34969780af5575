//! The current snapshot's manifests turned into date partitions: the live (`EXISTING`, `ADDED`)
//! data files of every manifest, placed on a date by their spec's date field
//! ([`super::partition`]); `DELETED` entries skipped; delete files (position or equality deletes,
//! version 3 deletion vectors) refuse the dates they apply to.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use opendal::Operator;

use super::manifest::{self, ManifestEntry, ManifestFile, STATUS_DELETED};
use super::metadata::TableMetadata;
use super::partition::{spec_dates, value_date, SpecDate};
use super::{read_metadata_object, store_path, CurrentMetadata};
use crate::catalog::location::StoreLocations;
use crate::config::TableConfig;
use crate::error::SourceError;
use crate::listing::{DataFile, DiscoveredPartition, TableListing};

/// Manifests read at once.
const MANIFEST_READS: usize = 8;

/// The live files of the current snapshot of `current`, by date.
pub async fn listing(
    operator: &Operator,
    table: &TableConfig,
    locations: &StoreLocations,
    current: &CurrentMetadata,
) -> Result<TableListing, SourceError> {
    let metadata = &current.metadata;
    let problem = |path: &str, message: String| SourceError::Metadata {
        table: table.name.clone(),
        path: path.to_string(),
        message,
        transient: false,
    };
    let snapshot = metadata
        .current_snapshot()
        .map_err(|p| problem(&current.location, p.message))?;
    let Some(snapshot) = snapshot else {
        return Ok(TableListing::default());
    };
    let dates = spec_dates(metadata, &table.partition_column)
        .map_err(|message| problem(&current.location, message))?;
    let manifests = match (&snapshot.manifest_list, &snapshot.manifests) {
        (Some(list), _) => {
            let path = store_path(table, locations, list)?;
            let bytes = read_metadata_object(operator, table, &path, list).await?;
            manifest::read_manifest_list(&bytes).map_err(|message| problem(list, message))?
        }
        (None, Some(paths)) => paths
            .iter()
            .map(|path| ManifestFile {
                path: path.clone(),
                spec_id: -1,
                content: 0,
                added_snapshot_id: Some(snapshot.snapshot_id),
            })
            .collect(),
        (None, None) => {
            return Err(problem(
                &current.location,
                format!(
                    "snapshot {} has neither a manifest-list nor manifests",
                    snapshot.snapshot_id
                ),
            ))
        }
    };
    let read: Vec<(ManifestFile, Vec<ManifestEntry>)> = futures::stream::iter(manifests)
        .map(|mut file| async move {
            let path = store_path(table, locations, &file.path)?;
            let bytes = read_metadata_object(operator, table, &path, &file.path).await?;
            let (header, entries) =
                manifest::read_manifest(&bytes).map_err(|message| SourceError::Metadata {
                    table: table.name.clone(),
                    path: file.path.clone(),
                    message,
                    transient: false,
                })?;
            if file.spec_id < 0 {
                file.spec_id = header.spec_id.unwrap_or(0);
            }
            if header.content.as_deref() == Some("deletes") {
                file.content = 1;
            }
            Ok::<_, SourceError>((file, entries))
        })
        .buffered(MANIFEST_READS)
        .try_collect()
        .await?;
    let mut builder = Builder::new(table, locations, metadata, &dates);
    for (file, entries) in &read {
        for entry in entries {
            builder.add(file, entry)?;
        }
    }
    let mut listing = builder.finish();
    listing.origin.snapshot = Some(snapshot.snapshot_id.to_string());
    Ok(listing)
}

/// Collects the files of the snapshot into partitions.
struct Builder<'a> {
    table: &'a TableConfig,
    locations: &'a StoreLocations,
    metadata: &'a TableMetadata,
    dates: &'a BTreeMap<i32, SpecDate>,
    partitions: BTreeMap<NaiveDate, DiscoveredPartition>,
    /// Delete files by the date they apply to (`None`: every date).
    deletes: BTreeMap<Option<NaiveDate>, BTreeSet<String>>,
    /// Data files that are not Parquet, by date.
    not_parquet: BTreeMap<NaiveDate, BTreeSet<String>>,
    invalid_values: BTreeSet<String>,
    seen: BTreeSet<String>,
}

impl<'a> Builder<'a> {
    fn new(
        table: &'a TableConfig,
        locations: &'a StoreLocations,
        metadata: &'a TableMetadata,
        dates: &'a BTreeMap<i32, SpecDate>,
    ) -> Builder<'a> {
        Builder {
            table,
            locations,
            metadata,
            dates,
            partitions: BTreeMap::new(),
            deletes: BTreeMap::new(),
            not_parquet: BTreeMap::new(),
            invalid_values: BTreeSet::new(),
            seen: BTreeSet::new(),
        }
    }

    /// The date of `entry` of a manifest of spec `spec_id`: `Ok(None)` for a value that is not
    /// a date (recorded), `Err(reason)` when the spec has no date field.
    fn date_of(
        &mut self,
        spec_id: i32,
        entry: &ManifestEntry,
    ) -> Result<Option<NaiveDate>, String> {
        let dates = self.dates;
        let (field_id, name, kind) = match dates.get(&spec_id) {
            Some(SpecDate::Field {
                field_id,
                name,
                kind,
            }) => (*field_id, name, *kind),
            Some(SpecDate::None(reason)) => return Err(reason.clone()),
            None => {
                return Err(format!(
                    "partition spec {spec_id} is not in the table metadata"
                ))
            }
        };
        let Some(value) = entry.partition_value(field_id, name) else {
            return Err(format!(
                "the manifest entry has no value for partition field {name} of spec {spec_id}"
            ));
        };
        let table = self.table;
        match value_date(kind, value, &|text| table.parse_partition_value(text)) {
            Ok(date) => Ok(Some(date)),
            Err(text) => {
                self.invalid_values.insert(text);
                Ok(None)
            }
        }
    }

    /// Places one manifest entry: a live data file on its date, a delete file on the dates it
    /// refuses; a `DELETED` entry (removed by the snapshot that wrote the manifest) nowhere.
    fn add(&mut self, manifest: &ManifestFile, entry: &ManifestEntry) -> Result<(), SourceError> {
        if entry.status == STATUS_DELETED {
            return Ok(());
        }
        let is_delete = entry.content != 0 || manifest.content != 0;
        let date = match self.date_of(manifest.spec_id, entry) {
            Ok(date) => date,
            // A delete file of a spec without the date (an unpartitioned equality delete)
            // may apply to any date.
            Err(_) if is_delete => {
                self.deletes
                    .entry(None)
                    .or_default()
                    .insert(describe_delete(entry));
                return Ok(());
            }
            Err(reason) => {
                return Err(SourceError::Unsupported {
                    table: self.table.name.clone(),
                    message: format!(
                        "data file {} of the current snapshot cannot be placed on a date: {reason} (coldsync loads Iceberg tables whose live files are all partitioned by day on partition_column)",
                        entry.file_path
                    ),
                })
            }
        };
        // A file whose date is not a date (null) holds rows no date partition loads; a delete
        // file of it applies to those rows only.
        let Some(date) = date else {
            return Ok(());
        };
        if is_delete {
            self.deletes
                .entry(Some(date))
                .or_default()
                .insert(describe_delete(entry));
            return Ok(());
        }
        let path = store_path(self.table, self.locations, &entry.file_path)?;
        if !self.seen.insert(path.clone()) {
            return Ok(());
        }
        let adding_snapshot = entry.snapshot_id.or(manifest.added_snapshot_id);
        let partition = self
            .partitions
            .entry(date)
            .or_insert_with(|| DiscoveredPartition::committed(date, String::new()));
        if !entry.file_format.eq_ignore_ascii_case("parquet") {
            self.not_parquet
                .entry(date)
                .or_default()
                .insert(format!("{} ({})", entry.file_path, entry.file_format));
        }
        if entry.file_size_in_bytes == 0 || entry.record_count == 0 {
            partition.empty_files += 1;
            return Ok(());
        }
        partition.files.push(DataFile {
            path,
            size: u64::try_from(entry.file_size_in_bytes).unwrap_or(0),
            // Iceberg files are never rewritten in place: the snapshot that added the file is
            // its version (stable when that snapshot expires, unlike its time).
            etag: adding_snapshot.map(|id| format!("iceberg-snapshot-{id}")),
            last_modified_ms: adding_snapshot
                .and_then(|id| self.metadata.snapshot_time_ms(id))
                .or_else(|| self.metadata.oldest_snapshot_ms()),
        });
        Ok(())
    }

    fn finish(mut self) -> TableListing {
        let global = self.deletes.get(&None).cloned().unwrap_or_default();
        for (date, partition) in &mut self.partitions {
            partition.files.sort_by(|a, b| a.path.cmp(&b.path));
            partition.dir = common_dir(&partition.files);
            let mut reasons = Vec::new();
            let deletes: Vec<&String> = self
                .deletes
                .get(&Some(*date))
                .into_iter()
                .flatten()
                .chain(global.iter())
                .collect();
            if let Some(first) = deletes.first() {
                let more = match deletes.len() {
                    1 => String::new(),
                    n => format!(" and {} more", n - 1),
                };
                reasons.push(format!(
                    "the current snapshot has delete files for this partition ({first}{more}): merge-on-read deletes are out of scope for coldsync, which would load the deleted rows; rewrite the partition's data files (copy-on-write, or rewrite_data_files with the deletes applied) to load it"
                ));
            }
            if let Some(files) = self.not_parquet.get(date) {
                let first = files.iter().next().expect("not empty");
                reasons.push(format!(
                    "data file {first} is not Parquet: coldsync reads Parquet data files only"
                ));
            }
            if !reasons.is_empty() {
                partition.refusal = Some(reasons.join("; "));
            }
        }
        TableListing {
            partitions: self.partitions,
            invalid_values: self.invalid_values,
            ..TableListing::default()
        }
    }
}

/// `position delete file <path>`, `equality delete file <path>`, `deletion vector <path> of
/// <data file>`.
fn describe_delete(entry: &ManifestEntry) -> String {
    match (entry.content, &entry.referenced_data_file) {
        (1, Some(data)) if entry.file_format.eq_ignore_ascii_case("puffin") => {
            format!("deletion vector {} of {data}", entry.file_path)
        }
        (2, _) => format!("equality delete file {}", entry.file_path),
        _ => format!("position delete file {}", entry.file_path),
    }
}

/// The deepest directory holding every file (`orders/data/dt=2026-11-20/`).
fn common_dir(files: &[DataFile]) -> String {
    let Some(first) = files.first() else {
        return String::new();
    };
    let mut dir = match first.path.rfind('/') {
        Some(i) => first.path[..=i].to_string(),
        None => String::new(),
    };
    for file in &files[1..] {
        while !file.path.starts_with(&dir) {
            dir.pop();
            dir = match dir.rfind('/') {
                Some(i) => dir[..=i].to_string(),
                None => String::new(),
            };
        }
    }
    dir
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use apache_avro::types::Value;

    use super::*;
    use crate::config::Config;

    fn table() -> TableConfig {
        let text =
            "[source]\nscheme = \"fs\"\nroot = \"/w\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n\
             [defaults]\nretention_days = 10\n\
             [[tables]]\nname = \"orders\"\nkey = \"k:{id}\"\nformat = \"iceberg\"\n\
             path = \"orders\"\n";
        Config::parse(text, &HashMap::new())
            .unwrap()
            .tables
            .remove(0)
    }

    fn metadata() -> TableMetadata {
        TableMetadata::parse(
            br#"{"format-version": 2, "current-schema-id": 0,
              "schemas": [{"schema-id": 0, "fields": [{"id": 1, "name": "dt", "type": "date"}]}],
              "partition-specs": [
                {"spec-id": 0, "fields": []},
                {"spec-id": 1, "fields": [{"name": "dt", "transform": "identity", "source-id": 1, "field-id": 1000}]}],
              "current-snapshot-id": 9,
              "snapshots": [{"snapshot-id": 8, "timestamp-ms": 1000, "manifest-list": "m8"},
                            {"snapshot-id": 9, "timestamp-ms": 2000, "manifest-list": "m9"}]}"#,
        )
        .unwrap()
    }

    fn manifest(spec_id: i32, content: i32) -> ManifestFile {
        ManifestFile {
            path: "file:/w/orders/metadata/m.avro".into(),
            spec_id,
            content,
            added_snapshot_id: Some(9),
        }
    }

    fn entry(status: i32, content: i32, name: &str, day: Option<i32>) -> ManifestEntry {
        let mut partition_by_id = BTreeMap::new();
        if let Some(day) = day {
            partition_by_id.insert(1000, Value::Date(day));
        }
        ManifestEntry {
            status,
            snapshot_id: (status == 0).then_some(8),
            content,
            file_path: format!("file:/w/orders/data/{name}"),
            file_format: "PARQUET".into(),
            record_count: 5,
            file_size_in_bytes: 100,
            referenced_data_file: None,
            partition_by_id,
            partition_by_name: BTreeMap::new(),
        }
    }

    const NOV_20: i32 = 20_412;

    fn date(day: i32) -> NaiveDate {
        NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(i64::from(day))
    }

    #[test]
    fn live_files_go_on_their_dates_deleted_entries_nowhere_and_delete_files_refuse_their_date() {
        let (table, metadata) = (table(), metadata());
        let store = StoreLocations::new("fs", "", "/w", None);
        let dates = spec_dates(&metadata, "dt").unwrap();
        let mut builder = Builder::new(&table, &store, &metadata, &dates);
        let data = manifest(1, 0);
        builder
            .add(&data, &entry(0, 0, "a.parquet", Some(NOV_20)))
            .unwrap();
        builder
            .add(&data, &entry(1, 0, "b.parquet", Some(NOV_20)))
            .unwrap();
        builder
            .add(&data, &entry(2, 0, "gone.parquet", Some(NOV_20)))
            .unwrap();
        builder
            .add(&data, &entry(1, 0, "c.parquet", Some(NOV_20 + 1)))
            .unwrap();
        builder
            .add(&data, &entry(1, 0, "null.parquet", None))
            .unwrap_err();
        let deletes = manifest(1, 1);
        builder
            .add(&deletes, &entry(1, 1, "del.parquet", Some(NOV_20 + 1)))
            .unwrap();
        builder
            .add(&deletes, &entry(2, 1, "old-del.parquet", Some(NOV_20)))
            .unwrap();
        let listing = builder.finish();
        assert_eq!(listing.partitions.len(), 2);
        let first = &listing.partitions[&date(NOV_20)];
        let paths: Vec<&str> = first.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["orders/data/a.parquet", "orders/data/b.parquet"]);
        assert!(first.committed);
        assert_eq!(first.refusal, None);
        assert_eq!(first.dir, "orders/data/");
        // The existing file was added by snapshot 8, the new one by the manifest's snapshot 9.
        assert_eq!(first.files[0].last_modified_ms, Some(1000));
        assert_eq!(first.files[0].etag.as_deref(), Some("iceberg-snapshot-8"));
        assert_eq!(first.files[1].last_modified_ms, Some(2000));
        let second = &listing.partitions[&date(NOV_20 + 1)];
        let refusal = second.refusal.as_deref().unwrap();
        assert!(
            refusal.contains("position delete file file:/w/orders/data/del.parquet"),
            "{refusal}"
        );
    }

    #[test]
    fn a_delete_file_without_a_date_refuses_every_date_and_a_data_file_without_one_the_table() {
        let (table, metadata) = (table(), metadata());
        let store = StoreLocations::new("fs", "", "/w", None);
        let dates = spec_dates(&metadata, "dt").unwrap();
        let mut builder = Builder::new(&table, &store, &metadata, &dates);
        builder
            .add(&manifest(1, 0), &entry(1, 0, "a.parquet", Some(NOV_20)))
            .unwrap();
        builder
            .add(&manifest(1, 0), &entry(1, 0, "b.parquet", Some(NOV_20 + 1)))
            .unwrap();
        let mut equality = entry(1, 2, "eq.parquet", None);
        equality.partition_by_id.clear();
        builder.add(&manifest(0, 1), &equality).unwrap();
        let err = builder
            .add(&manifest(0, 0), &entry(1, 0, "flat.parquet", None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("flat.parquet"), "{err}");
        assert!(err.contains("partition spec 0 (unpartitioned)"), "{err}");
        let listing = builder.finish();
        for partition in listing.partitions.values() {
            let refusal = partition.refusal.as_deref().unwrap();
            assert!(
                refusal.contains("equality delete file file:/w/orders/data/eq.parquet"),
                "{refusal}"
            );
        }
    }

    fn file(path: &str) -> DataFile {
        DataFile {
            path: path.into(),
            size: 1,
            etag: None,
            last_modified_ms: None,
        }
    }

    #[test]
    fn the_common_dir_of_a_dates_files() {
        assert_eq!(
            common_dir(&[
                file("t/data/dt=2026-11-20/a.parquet"),
                file("t/data/dt=2026-11-20/b.parquet")
            ]),
            "t/data/dt=2026-11-20/"
        );
        assert_eq!(
            common_dir(&[
                file("t/data/dt=2026-11-20/a.parquet"),
                file("t/data/dt=2026-11-20/id_bucket=1/b.parquet"),
                file("t/data/ts_day=2026-11-20/c.parquet"),
            ]),
            "t/data/"
        );
        assert_eq!(common_dir(&[file("a.parquet"), file("x/b.parquet")]), "");
        assert_eq!(common_dir(&[]), "");
    }
}
