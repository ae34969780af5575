//! Iceberg tables: the data files of the current snapshot, read from the table's own metadata
//! (JSON metadata file, Avro manifest list and manifests) through the store, without the
//! `iceberg` crate (it brings a second arrow/parquet and its own opendal).
//!
//! Where the current metadata file comes from ([`current_metadata`]):
//! - `catalog = "none"` with `metadata_location`: that file (a store path or a URI mapped to the
//!   store);
//! - `catalog = "none"` with `path` only: a Hadoop table's `metadata/version-hint.text` names
//!   `v<N>.metadata.json`; without it the table is refused (the newest metadata file is never
//!   guessed: an uncommitted one may be there);
//! - `catalog = "rest"`: the REST catalog's `loadTable` ([`rest`]);
//! - `catalog = "hive_metastore"`: the metastore table's `metadata_location` parameter.
//!
//! Then [`snapshot`] turns the current snapshot's manifests into date partitions.

pub mod manifest;
pub mod metadata;
pub mod partition;
pub mod rest;
pub mod snapshot;

use opendal::{ErrorKind, Operator};

use self::metadata::{MetadataProblem, TableMetadata};
use crate::catalog::hive_metastore::{self, MetastoreTable};
use crate::catalog::location::StoreLocations;
use crate::catalog::location_error;
use crate::config::{Catalog, TableConfig};
use crate::error::SourceError;
use crate::listing::TableListing;

/// The table's partitions: the live data files of its current snapshot, by date.
pub async fn discover(
    operator: &Operator,
    table: &TableConfig,
) -> Result<TableListing, SourceError> {
    let locations = StoreLocations::of(operator, table.source.location_prefix.as_deref());
    let current = current_metadata(operator, table, &locations).await?;
    snapshot::listing(operator, table, &locations, &current).await
}

/// The table's current metadata and where it was read from (for messages).
#[derive(Debug, Clone)]
pub struct CurrentMetadata {
    /// The metadata file, as its pointer names it.
    pub location: String,
    /// Its content.
    pub metadata: TableMetadata,
}

/// Finds and reads the current metadata file the table's catalog (or config) points at.
pub async fn current_metadata(
    operator: &Operator,
    table: &TableConfig,
    locations: &StoreLocations,
) -> Result<CurrentMetadata, SourceError> {
    let location = match &table.source.catalog {
        Catalog::Rest {
            uri,
            namespace,
            table: name,
        } => {
            let loaded = rest::load_table(table, uri, namespace, name).await?;
            if let Some(json) = loaded.metadata {
                let location = loaded
                    .metadata_location
                    .unwrap_or_else(|| format!("{uri} loadTable {namespace}.{name}"));
                let metadata = TableMetadata::from_json(json)
                    .map_err(|problem| metadata_error(table, &location, problem))?;
                return Ok(CurrentMetadata { location, metadata });
            }
            loaded.metadata_location.ok_or_else(|| SourceError::Catalog {
                table: table.name.clone(),
                catalog: "rest",
                endpoint: uri.clone(),
                message: format!(
                    "loadTable of {namespace}.{name} returned neither metadata nor metadata-location"
                ),
                transient: false,
            })?
        }
        Catalog::HiveMetastore { .. } => {
            let metastore_table = hive_metastore::load_table(table).await?;
            metastore_metadata_location(table, &metastore_table)?
        }
        Catalog::None => match &table.source.metadata_location {
            Some(location) => location.clone(),
            None => hadoop_metadata_location(operator, table).await?,
        },
    };
    let path = store_path(table, locations, &location)?;
    let bytes = read_metadata_object(operator, table, &path, &location).await?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(SourceError::Unsupported {
            table: table.name.clone(),
            message: format!(
                "metadata file {location} is gzip-compressed (write.metadata.compression-codec = gzip): coldsync reads uncompressed metadata files only"
            ),
        });
    }
    let metadata = TableMetadata::parse(&bytes)
        .map_err(|problem| metadata_error(table, &location, problem))?;
    Ok(CurrentMetadata { location, metadata })
}

/// The `metadata_location` parameter of a table registered in a Hive Metastore.
pub fn metastore_metadata_location(
    table: &TableConfig,
    metastore_table: &MetastoreTable,
) -> Result<String, SourceError> {
    let parameter = |name: &str| {
        metastore_table
            .parameters
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let (endpoint, qualified) = match &table.source.catalog {
        Catalog::HiveMetastore {
            uris,
            database,
            table,
        } => (uris.join(","), format!("{database}.{table}")),
        _ => (String::new(), table.name.clone()),
    };
    if let Some(table_type) = parameter("table_type") {
        if !table_type.eq_ignore_ascii_case("iceberg") {
            return Err(SourceError::Unsupported {
                table: table.name.clone(),
                message: format!(
                    "the metastore table {qualified} has table_type {table_type}, not ICEBERG: set the table's format to what it is"
                ),
            });
        }
    }
    parameter("metadata_location")
        .map(str::to_string)
        .ok_or_else(|| SourceError::Catalog {
            table: table.name.clone(),
            catalog: "hive_metastore",
            endpoint,
            message: format!(
                "the metastore table {qualified} has no metadata_location parameter: it is not an Iceberg table registered by an Iceberg catalog (location {})",
                metastore_table.location
            ),
            transient: false,
        })
}

/// A Hadoop table's current metadata: `metadata/v<N>.metadata.json` as
/// `metadata/version-hint.text` says.
async fn hadoop_metadata_location(
    operator: &Operator,
    table: &TableConfig,
) -> Result<String, SourceError> {
    let hint = format!("{}/metadata/version-hint.text", table.path);
    let bytes = match operator.read(&hint).await {
        Ok(bytes) => bytes.to_vec(),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Err(SourceError::Metadata {
                table: table.name.clone(),
                path: hint,
                message: "no version hint, so the current metadata file is unknown: set metadata_location (the current *.metadata.json) or catalog = \"rest\" / \"hive_metastore\" (coldsync never guesses the newest metadata file: an uncommitted one may be there)".to_string(),
                transient: false,
            })
        }
        Err(err) => return Err(read_error(table, &hint, &err)),
    };
    let text = String::from_utf8_lossy(&bytes);
    let version: u64 = text.trim().parse().map_err(|_| SourceError::Metadata {
        table: table.name.clone(),
        path: hint.clone(),
        message: format!(
            "{:?} is not a version number: set metadata_location",
            text.trim()
        ),
        transient: false,
    })?;
    Ok(format!("{}/metadata/v{version}.metadata.json", table.path))
}

/// The store path of a location the table or its catalog names: a URI or absolute path mapped
/// to the store, or a path already relative to the store's root.
pub fn store_path(
    table: &TableConfig,
    locations: &StoreLocations,
    location: &str,
) -> Result<String, SourceError> {
    let is_uri = location.contains("://") || location.starts_with("file:");
    if is_uri || location.starts_with('/') {
        locations
            .to_store_path(location)
            .map_err(|reason| location_error(table, locations, location, reason))
    } else {
        Ok(location.to_string())
    }
}

/// Reads a metadata object (metadata file, manifest list, manifest), named `named` in messages.
pub(super) async fn read_metadata_object(
    operator: &Operator,
    table: &TableConfig,
    path: &str,
    named: &str,
) -> Result<Vec<u8>, SourceError> {
    match operator.read(path).await {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(err) if err.kind() == ErrorKind::NotFound => Err(SourceError::Metadata {
            table: table.name.clone(),
            path: named.to_string(),
            message: format!("does not exist in the store (read at {path})"),
            transient: false,
        }),
        Err(err) => Err(read_error(table, named, &err)),
    }
}

fn read_error(table: &TableConfig, named: &str, err: &opendal::Error) -> SourceError {
    SourceError::Metadata {
        table: table.name.clone(),
        path: named.to_string(),
        message: format!("cannot read from the store: {err}"),
        transient: crate::source::is_transient(err),
    }
}

fn metadata_error(table: &TableConfig, location: &str, problem: MetadataProblem) -> SourceError {
    if problem.unsupported {
        SourceError::Unsupported {
            table: table.name.clone(),
            message: format!("{location}: {}", problem.message),
        }
    } else {
        SourceError::Metadata {
            table: table.name.clone(),
            path: location.to_string(),
            message: problem.message,
            transient: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::config::Config;

    fn metastore_config() -> TableConfig {
        let text =
            "[source]\nscheme = \"fs\"\nroot = \"/w\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n\
             [defaults]\nretention_days = 10\n\
             [[tables]]\nname = \"orders\"\nkey = \"k:{id}\"\nformat = \"iceberg\"\n\
             catalog = \"hive_metastore\"\nmetastore_uris = [\"thrift://127.0.0.1:9083\"]\n\
             database = \"sales\"\ntable = \"orders\"\n";
        Config::parse(text, &HashMap::new())
            .unwrap()
            .tables
            .remove(0)
    }

    fn metastore_table(parameters: &[(&str, &str)]) -> MetastoreTable {
        MetastoreTable {
            location: "s3a://lake/warehouse/sales.db/orders".into(),
            parameters: parameters
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            partition_keys: Vec::new(),
        }
    }

    #[test]
    fn a_metastore_table_points_at_its_metadata_file() {
        let table = metastore_config();
        let location = "s3a://lake/warehouse/sales.db/orders/metadata/00003-a.metadata.json";
        let found = metastore_metadata_location(
            &table,
            &metastore_table(&[("table_type", "ICEBERG"), ("metadata_location", location)]),
        )
        .unwrap();
        assert_eq!(found, location);
        // Spark and Trino spell the type in lower case sometimes; the key too.
        let found = metastore_metadata_location(
            &table,
            &metastore_table(&[("TABLE_TYPE", "iceberg"), ("METADATA_LOCATION", location)]),
        )
        .unwrap();
        assert_eq!(found, location);
    }

    #[test]
    fn a_metastore_table_that_is_not_iceberg_is_refused_naming_it() {
        let table = metastore_config();
        let hive = metastore_metadata_location(&table, &metastore_table(&[])).unwrap_err();
        let text = hive.to_string();
        assert!(
            text.contains("sales.orders has no metadata_location"),
            "{text}"
        );
        assert!(text.contains("thrift://127.0.0.1:9083"), "{text}");
        assert!(!hive.is_transient());
        let delta = metastore_metadata_location(
            &table,
            &metastore_table(&[("table_type", "DELTA"), ("metadata_location", "x")]),
        )
        .unwrap_err();
        assert!(delta.to_string().contains("table_type DELTA"), "{delta}");
    }

    #[test]
    fn locations_are_uris_or_store_paths() {
        let table = metastore_config();
        let store = StoreLocations::new("fs", "", "/w", None);
        assert_eq!(
            store_path(&table, &store, "file:///w/orders/metadata/v1.metadata.json").unwrap(),
            "orders/metadata/v1.metadata.json"
        );
        assert_eq!(
            store_path(&table, &store, "orders/metadata/v1.metadata.json").unwrap(),
            "orders/metadata/v1.metadata.json"
        );
        let outside = store_path(&table, &store, "/tmp/x.json").unwrap_err();
        assert!(matches!(outside, SourceError::Location { .. }), "{outside}");
    }
}
