//! Hive directories registered in a Hive Metastore (`catalog = "hive_metastore"`,
//! `format = "hive"`): the metastore says which partitions exist and where each one's files
//! are; the store is listed only at those locations.
//!
//! One conversation per discovery, with the first of `metastore_uris` that answers (a URI that
//! cannot be reached, or fails mid-way, hands over to the next): `get_table` (the partition keys;
//! `partition_column` must be one of them), `get_partition_names` (values that are not dates in
//! the table's format become `invalid_values` and are not fetched), `get_partitions_by_names` in
//! batches. The partitions of one date (sub-partitions such as `hour`) form one
//! [`DiscoveredPartition`], `committed` (a registered partition is complete); each location is
//! mapped to a store path by [`StoreLocations`] (one the store cannot reach fails the table,
//! naming the partition and the location) and listed with
//! [`crate::listing::list_partition_directory`]. A partition's fingerprint adds the metastore's
//! `transient_lastDdlTime`, `numFiles` and `totalSize` of each sub-partition to the file list.
//!
//! The client ([`client`]) is generated from a trimmed IDL (`hive_metastore.thrift`) into
//! `thrift_gen.rs` by `scripts/gen-hms-thrift.sh`; [`load_table`] serves Iceberg and Delta
//! tables registered in a metastore too.

mod client;
mod names;
#[allow(
    clippy::all,
    clippy::pedantic,
    dead_code,
    unused_imports,
    unused_extern_crates,
    non_camel_case_types,
    non_snake_case
)]
#[rustfmt::skip]
mod thrift_gen;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use opendal::Operator;

use self::client::{CallError, Session};
use self::thrift_gen::{Partition, Table};
use super::location::StoreLocations;
use crate::config::{Catalog, TableConfig};
use crate::error::SourceError;
use crate::listing::{list_partition_directory, DiscoveredPartition, TableListing};

/// Partition directories listed at once.
const LISTING_CONCURRENCY: usize = 8;

/// The partition parameters that identify a partition's content in the metastore.
pub const FINGERPRINT_PARAMETERS: [&str; 3] = ["transient_lastDdlTime", "numFiles", "totalSize"];

/// A table as the metastore describes it (what Iceberg and Delta tables registered there need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetastoreTable {
    /// The table's location (`sd.location`), as the metastore names it (empty when it has none).
    pub location: String,
    /// The table's parameters (`metadata_location` and `table_type` for Iceberg tables).
    pub parameters: BTreeMap<String, String>,
    /// The partition keys, in order.
    pub partition_keys: Vec<String>,
}

/// The table `table.source.catalog` names (`catalog = "hive_metastore"`).
pub async fn load_table(table: &TableConfig) -> Result<MetastoreTable, SourceError> {
    let found = converse(table, |session, database, name| {
        session.table(database, name)
    })
    .await?;
    Ok(MetastoreTable {
        location: found.sd.and_then(|sd| sd.location).unwrap_or_default(),
        partition_keys: key_names(&found.partition_keys),
        parameters: found.parameters.unwrap_or_default(),
    })
}

/// The table's registered partitions, grouped by date, with the files at their locations.
pub async fn discover(
    operator: &Operator,
    table: &TableConfig,
) -> Result<TableListing, SourceError> {
    let config = table.clone();
    let registered = converse(table, move |session, database, name| {
        registered_partitions(session, database, name, &config)
    })
    .await?;
    let locations = StoreLocations::of(operator, table.source.location_prefix.as_deref());
    let mut listing = TableListing {
        invalid_values: registered.invalid_values,
        ..TableListing::default()
    };
    let mut located = Vec::with_capacity(registered.partitions.len());
    for partition in registered.partitions {
        let values = partition.values.clone().unwrap_or_default();
        let name = names::partition_name(&registered.keys, &values);
        let Some(value) = values.get(registered.date_key) else {
            listing.invalid_values.insert(name);
            continue;
        };
        let Some(date) = table.parse_partition_value(value) else {
            listing.invalid_values.insert(value.clone());
            continue;
        };
        let location = partition
            .sd
            .as_ref()
            .and_then(|sd| sd.location.clone())
            .unwrap_or_default();
        let dir = store_dir(table, &locations, &location, &name)?;
        located.push(Located {
            date,
            name,
            location,
            dir,
            parameters: partition.parameters.unwrap_or_default(),
        });
    }
    let listed: Vec<(Located, crate::listing::PartitionDirectory)> = futures::stream::iter(located)
        .map(|sub| async move {
            let found = list_partition_directory(operator, &sub.dir).await?;
            Ok::<_, SourceError>((sub, found))
        })
        .buffer_unordered(LISTING_CONCURRENCY)
        .try_collect()
        .await?;
    let mut by_date: BTreeMap<NaiveDate, Vec<_>> = BTreeMap::new();
    for (sub, found) in listed {
        by_date.entry(sub.date).or_default().push((sub, found));
    }
    for (date, mut subs) in by_date {
        subs.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        listing.ignored_objects += subs.iter().map(|(_, f)| f.ignored_objects).sum::<usize>();
        listing.partitions.insert(date, date_partition(date, subs));
    }
    Ok(listing)
}

/// The store directory (ending in `/`) of the partition `name` registered at `location`, or
/// the error that fails the table: a location the store cannot reach, none, or the store's root.
fn store_dir(
    table: &TableConfig,
    locations: &StoreLocations,
    location: &str,
    name: &str,
) -> Result<String, SourceError> {
    let refuse = |reason: String| super::location_error(table, locations, location, reason);
    match locations.to_store_path(location) {
        Ok(path) if !path.is_empty() => Ok(format!("{}/", path.trim_end_matches('/'))),
        Ok(_) => Err(refuse(format!(
            "it is the store's root, not a partition directory (partition {name})"
        ))),
        Err(_) if location.is_empty() => Err(refuse(format!(
            "the metastore gives partition {name} no location"
        ))),
        Err(reason) => Err(refuse(format!("{reason} (partition {name})"))),
    }
}

/// One registered partition (a date, or a sub-partition of one) and its store directory.
struct Located {
    date: NaiveDate,
    /// `dt=2026-11-20/hour=01`, from the keys and the values.
    name: String,
    /// As the metastore names it.
    location: String,
    /// Store path, ending in `/`.
    dir: String,
    parameters: BTreeMap<String, String>,
}

/// The partitions of one date, sorted by name, as one partition.
fn date_partition(
    date: NaiveDate,
    subs: Vec<(Located, crate::listing::PartitionDirectory)>,
) -> DiscoveredPartition {
    let mut files = BTreeMap::new();
    let mut marker_dirs = BTreeSet::new();
    let mut empty_files = 0;
    let mut fingerprint = String::new();
    let mut dir: Option<String> = None;
    for (sub, found) in subs {
        // Two partitions registered at one location share its files: each file counts once.
        for file in found.files {
            files.entry(file.path.clone()).or_insert(file);
        }
        marker_dirs.extend(found.marker_dirs);
        empty_files += found.empty_files;
        fingerprint.push_str(&names::fingerprint_line(
            &sub.name,
            &sub.location,
            &sub.parameters,
        ));
        dir = Some(match dir {
            None => sub.dir,
            Some(dir) => names::common_dir(&dir, &sub.dir).to_string(),
        });
    }
    DiscoveredPartition {
        date,
        dir: dir.unwrap_or_default(),
        files: files.into_values().collect(),
        marker_dirs,
        empty_files,
        committed: true,
        refusal: None,
        catalog_fingerprint: Some(fingerprint),
    }
}

/// What the metastore registers for a table.
struct Registered {
    /// Partition key names, in order.
    keys: Vec<String>,
    /// Index of `partition_column` in `keys`.
    date_key: usize,
    /// The partitions whose date value is valid.
    partitions: Vec<Partition>,
    /// Date values that are not dates in the table's format.
    invalid_values: BTreeSet<String>,
}

/// `get_table`, `get_partition_names`, then the partitions with a valid date.
fn registered_partitions(
    session: &mut Session,
    database: &str,
    name: &str,
    config: &TableConfig,
) -> Result<Registered, CallError> {
    let table = session.table(database, name)?;
    check_hive_table(&table, database, name).map_err(CallError::refused)?;
    let keys = key_names(&table.partition_keys);
    let date_key = keys
        .iter()
        .position(|key| key.eq_ignore_ascii_case(&config.partition_column))
        .ok_or_else(|| {
            CallError::refused(if keys.is_empty() {
                format!(
                    "{database}.{name} has no partition keys: coldsync loads date partitions (partition_column = {:?})",
                    config.partition_column
                )
            } else {
                format!(
                    "partition_column {:?} is not a partition key of {database}.{name} (its keys: {}): set partition_column to its date key",
                    config.partition_column,
                    keys.join(", ")
                )
            })
        })?;
    let mut wanted = Vec::new();
    let mut invalid_values = BTreeSet::new();
    for partition_name in session.partition_names(database, name)? {
        match names::value_of(&partition_name, &keys[date_key]) {
            Some(value) if config.parse_partition_value(&value).is_some() => {
                wanted.push(partition_name)
            }
            Some(value) => {
                invalid_values.insert(value);
            }
            None => {
                invalid_values.insert(partition_name);
            }
        }
    }
    let partitions = session.partitions(database, name, &wanted)?;
    Ok(Registered {
        keys,
        date_key,
        partitions,
        invalid_values,
    })
}

/// Refuses a table the metastore registers as something other than Hive directories.
fn check_hive_table(table: &Table, database: &str, name: &str) -> Result<(), String> {
    let parameters = table.parameters.clone().unwrap_or_default();
    let parameter = |key: &str| {
        parameters
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    };
    let table_type = table.table_type.as_deref().unwrap_or("");
    if table_type.ends_with("VIEW") {
        return Err(format!(
            "{database}.{name} is a {table_type}: a view has no files to load"
        ));
    }
    if parameter("table_type").is_some_and(|t| t.eq_ignore_ascii_case("iceberg")) {
        return Err(format!(
            "{database}.{name} is an Iceberg table: set format = \"iceberg\""
        ));
    }
    if parameter("spark.sql.sources.provider").is_some_and(|p| p.eq_ignore_ascii_case("delta")) {
        return Err(format!(
            "{database}.{name} is a Delta Lake table: set format = \"delta\""
        ));
    }
    Ok(())
}

fn key_names(keys: &Option<Vec<thrift_gen::FieldSchema>>) -> Vec<String> {
    keys.iter()
        .flatten()
        .map(|key| key.name.clone().unwrap_or_default())
        .collect()
}

/// Runs `conversation` with the first of the table's `metastore_uris` that answers, on a
/// blocking thread (the Thrift client is synchronous). A transient failure hands over to the
/// next URI; the error of the last one tried is returned.
async fn converse<T: Send + 'static>(
    table: &TableConfig,
    conversation: impl Fn(&mut Session, &str, &str) -> Result<T, CallError> + Send + 'static,
) -> Result<T, SourceError> {
    let Catalog::HiveMetastore {
        uris,
        database,
        table: name,
    } = table.source.catalog.clone()
    else {
        return Err(SourceError::Unsupported {
            table: table.name.clone(),
            message: "the table has no hive_metastore catalog".to_string(),
        });
    };
    let table_name = table.name.clone();
    let failure = |endpoint: &str, err: CallError| SourceError::Catalog {
        table: table_name.clone(),
        catalog: "hive_metastore",
        endpoint: endpoint.to_string(),
        message: if err.not_found {
            format!(
                "{database}.{name} not found in the metastore ({})",
                err.message
            )
        } else {
            err.message
        },
        transient: err.transient,
    };
    let asked = tokio::task::spawn_blocking({
        let (uris, database, name) = (uris.clone(), database.clone(), name.clone());
        move || {
            let mut failed = Vec::new();
            for uri in &uris {
                let answer =
                    Session::connect(uri).and_then(|mut s| conversation(&mut s, &database, &name));
                match answer {
                    Ok(found) => return Ok(found),
                    Err(err) if err.transient => failed.push((uri.clone(), err)),
                    Err(err) => return Err((uri.clone(), err, failed)),
                }
            }
            let (uri, err) = failed.pop().expect("at least one metastore URI");
            Err((uri, err, failed))
        }
    })
    .await
    .map_err(|join| SourceError::Catalog {
        table: table.name.clone(),
        catalog: "hive_metastore",
        endpoint: uris.join(", "),
        message: format!("the metastore client failed: {join}"),
        transient: false,
    })?;
    asked.map_err(|(uri, mut err, failed)| {
        for (other, other_err) in failed {
            err.message
                .push_str(&format!("; {other} also failed: {}", other_err.message));
        }
        failure(&uri, err)
    })
}

#[cfg(test)]
mod tests;
