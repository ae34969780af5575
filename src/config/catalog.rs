//! Where a table's partitions are registered (`catalog`) and how its files form a table
//! (`format`): plain Hive directories found by listing, a Hive Metastore, an Iceberg REST
//! catalog; Hive directories, Iceberg or Delta Lake tables. Validated into [`TableSource`].

use serde::Deserialize;

use super::invalid;
use crate::error::ConfigError;

/// `catalog`: who says which partitions exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum CatalogName {
    /// None: the table is found at `path` in the store.
    None,
    /// A Hive Metastore (Thrift).
    HiveMetastore,
    /// An Iceberg REST catalog.
    Rest,
}

/// `format`: how the table's files form a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    /// Hive-style partition directories (`dt=2026-11-20/`) of Parquet files.
    Hive,
    /// An Iceberg table: the files of the current snapshot.
    Iceberg,
    /// A Delta Lake table: the files of the current version.
    Delta,
}

impl TableFormat {
    /// The name as in the config, logs and `plan`/`status`.
    pub fn as_str(self) -> &'static str {
        match self {
            TableFormat::Hive => "hive",
            TableFormat::Iceberg => "iceberg",
            TableFormat::Delta => "delta",
        }
    }
}

/// Who says which partitions (or which snapshot) exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Catalog {
    /// Nothing: the table is read at its `path` in the store (Hive directories are listed, an
    /// Iceberg table's current metadata is `metadata_location` or found under `path`, a Delta
    /// table's log is under `path`).
    None,
    /// A Hive Metastore: partitions (Hive format) or the table's location / Iceberg
    /// `metadata_location` parameter.
    HiveMetastore {
        /// `metastore_uris`: `thrift://host:port`, tried in order.
        uris: Vec<String>,
        /// `database`.
        database: String,
        /// `table`.
        table: String,
    },
    /// An Iceberg REST catalog (`loadTable`).
    Rest {
        /// `catalog_uri`: the catalog's base URL (`http://host:8181`).
        uri: String,
        /// `database`: the namespace (`a.b` for a nested one).
        namespace: String,
        /// `table`.
        table: String,
    },
}

impl Catalog {
    /// The name as in the config, logs and `plan`/`status`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Catalog::None => "none",
            Catalog::HiveMetastore { .. } => "hive_metastore",
            Catalog::Rest { .. } => "rest",
        }
    }
}

/// Where a table comes from: its catalog, its format, and the table-level options of both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSource {
    /// `catalog`.
    pub catalog: Catalog,
    /// `format`.
    pub format: TableFormat,
    /// `metadata_location`: an Iceberg table's current metadata file (a store path or a URI),
    /// when no catalog points at it.
    pub metadata_location: Option<String>,
    /// `location_prefix`: the URI that corresponds to the store's root, for locations the
    /// catalog or table metadata name (`s3a://bucket/warehouse`); derived from `[source]` when
    /// absent.
    pub location_prefix: Option<String>,
}

impl Default for TableSource {
    fn default() -> Self {
        TableSource {
            catalog: Catalog::None,
            format: TableFormat::Hive,
            metadata_location: None,
            location_prefix: None,
        }
    }
}

impl TableSource {
    /// True when the partitions come from a directory listing of `path` (the original source).
    pub fn is_listed_directories(&self) -> bool {
        self.catalog == Catalog::None && self.format == TableFormat::Hive
    }

    /// True when `path` is where the table is (else the catalog says where).
    pub fn needs_path(&self) -> bool {
        match (&self.catalog, self.format) {
            (Catalog::None, TableFormat::Iceberg) => self.metadata_location.is_none(),
            (Catalog::None, _) => true,
            _ => false,
        }
    }
}

/// The raw catalog options of one table (own or `[defaults]`), as picked.
pub(super) struct RawSource {
    pub(super) catalog: Option<CatalogName>,
    pub(super) format: Option<TableFormat>,
    pub(super) metastore_uris: Option<Vec<String>>,
    pub(super) catalog_uri: Option<String>,
    pub(super) database: Option<String>,
    pub(super) table: Option<String>,
    pub(super) metadata_location: Option<String>,
    pub(super) location_prefix: Option<String>,
}

/// Validates the catalog options; `at` names an option of this table.
pub(super) fn build(
    raw: RawSource,
    at: &dyn Fn(&str) -> String,
) -> Result<TableSource, ConfigError> {
    let format = raw.format.unwrap_or(TableFormat::Hive);
    let required = |value: Option<String>, option: &str, catalog: &str| {
        value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            invalid(
                at(option),
                format!("missing: catalog = {catalog:?} needs {option}"),
            )
        })
    };
    let catalog = match raw.catalog.unwrap_or(CatalogName::None) {
        CatalogName::None => {
            for (option, set) in [
                ("metastore_uris", raw.metastore_uris.is_some()),
                ("catalog_uri", raw.catalog_uri.is_some()),
                ("database", raw.database.is_some()),
                ("table", raw.table.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        at(option),
                        "only applies with catalog = \"hive_metastore\" or \"rest\"",
                    ));
                }
            }
            Catalog::None
        }
        CatalogName::HiveMetastore => {
            let uris = raw.metastore_uris.unwrap_or_default();
            if uris.is_empty() {
                return Err(invalid(
                    at("metastore_uris"),
                    "missing: catalog = \"hive_metastore\" needs metastore_uris = [\"thrift://host:9083\"]",
                ));
            }
            for uri in &uris {
                let ok = uri
                    .strip_prefix("thrift://")
                    .and_then(|rest| rest.rsplit_once(':'))
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !ok {
                    return Err(invalid(
                        at("metastore_uris"),
                        format!("{uri:?} is not thrift://host:port"),
                    ));
                }
            }
            if raw.catalog_uri.is_some() {
                return Err(invalid(
                    at("catalog_uri"),
                    "only applies with catalog = \"rest\"",
                ));
            }
            Catalog::HiveMetastore {
                uris,
                database: required(raw.database, "database", "hive_metastore")?,
                table: required(raw.table, "table", "hive_metastore")?,
            }
        }
        CatalogName::Rest => {
            if format != TableFormat::Iceberg {
                return Err(invalid(
                    at("catalog"),
                    "catalog = \"rest\" is an Iceberg REST catalog: it needs format = \"iceberg\"",
                ));
            }
            if raw.metastore_uris.is_some() {
                return Err(invalid(
                    at("metastore_uris"),
                    "only applies with catalog = \"hive_metastore\"",
                ));
            }
            let uri = required(raw.catalog_uri, "catalog_uri", "rest")?;
            if !(uri.starts_with("http://") || uri.starts_with("https://")) {
                return Err(invalid(
                    at("catalog_uri"),
                    format!("{uri:?} is not an http:// or https:// URL"),
                ));
            }
            Catalog::Rest {
                uri: uri.trim_end_matches('/').to_string(),
                namespace: required(raw.database, "database", "rest")?,
                table: required(raw.table, "table", "rest")?,
            }
        }
    };
    if raw.metadata_location.is_some()
        && !(format == TableFormat::Iceberg && catalog == Catalog::None)
    {
        return Err(invalid(
            at("metadata_location"),
            "only applies to format = \"iceberg\" without a catalog",
        ));
    }
    Ok(TableSource {
        catalog,
        format,
        metadata_location: raw.metadata_location,
        location_prefix: raw
            .location_prefix
            .map(|p| p.trim_end_matches('/').to_string()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{Completeness, Config};

    fn parse(defaults: &str, table: &str) -> Result<Config, String> {
        let text = format!(
            "[source]\nscheme = \"fs\"\nroot = \"/w\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n\
             [defaults]\nretention_days = 10\n{defaults}\n\
             [[tables]]\nname = \"t\"\nkey = \"k:{{id}}\"\n{table}\n"
        );
        Config::parse(&text, &HashMap::new()).map_err(|err| err.to_string())
    }

    #[test]
    fn a_metastore_table_needs_no_path_and_defaults_to_no_marker() {
        let config = parse(
            "catalog = \"hive_metastore\"\nmetastore_uris = [\"thrift://127.0.0.1:9083\"]",
            "database = \"sales\"\ntable = \"orders\"",
        )
        .unwrap();
        let table = &config.tables[0];
        assert_eq!(
            table.source.catalog,
            Catalog::HiveMetastore {
                uris: vec!["thrift://127.0.0.1:9083".into()],
                database: "sales".into(),
                table: "orders".into(),
            }
        );
        assert_eq!(table.source.format, TableFormat::Hive);
        assert_eq!(table.completeness, Completeness::None);
        assert_eq!(table.path, "");
    }

    #[test]
    fn listed_directories_keep_their_defaults() {
        let config = parse("", "path = \"t\"").unwrap();
        assert!(config.tables[0].source.is_listed_directories());
        assert_eq!(config.tables[0].completeness, Completeness::Marker);
        let err = parse("", "").unwrap_err();
        assert!(err.contains("tables[0] (t).path"), "{err}");
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn bad_catalog_options_are_refused_naming_the_option() {
        for (defaults, table, option, says) in [
            (
                "catalog = \"hive_metastore\"",
                "database = \"d\"\ntable = \"t\"",
                "metastore_uris",
                "missing",
            ),
            (
                "catalog = \"hive_metastore\"\nmetastore_uris = [\"http://h:1\"]",
                "database = \"d\"\ntable = \"t\"",
                "metastore_uris",
                "thrift://host:port",
            ),
            (
                "catalog = \"hive_metastore\"\nmetastore_uris = [\"thrift://h:9083\"]",
                "table = \"t\"",
                "database",
                "missing",
            ),
            (
                "catalog = \"rest\"\ncatalog_uri = \"http://h:8181\"",
                "database = \"d\"\ntable = \"t\"",
                "catalog",
                "format = \"iceberg\"",
            ),
            (
                "format = \"iceberg\"\ncatalog = \"rest\"\ncatalog_uri = \"h:8181\"",
                "database = \"d\"\ntable = \"t\"",
                "catalog_uri",
                "http://",
            ),
            (
                "",
                "path = \"t\"\ndatabase = \"d\"",
                "database",
                "only applies",
            ),
            (
                "",
                "path = \"t\"\nmetadata_location = \"m.json\"",
                "metadata_location",
                "only applies",
            ),
            (
                "format = \"delta\"",
                "path = \"t\"\ncompleteness = \"marker\"",
                "completeness",
                "only \"none\"",
            ),
            (
                "",
                "path = \"t\"\nformat = \"parquet\"",
                "format",
                "parquet",
            ),
        ] {
            let err = parse(defaults, table).unwrap_err();
            assert!(
                err.contains(&format!("tables[0] (t).{option}")),
                "{option}: {err}"
            );
            assert!(err.contains(says), "{option}: {err}");
        }
    }

    #[test]
    fn an_iceberg_table_is_found_by_its_metadata_file_or_its_path() {
        let config = parse(
            "format = \"iceberg\"",
            "metadata_location = \"warehouse/orders/metadata/00001-x.metadata.json\"",
        )
        .unwrap();
        assert_eq!(config.tables[0].source.format, TableFormat::Iceberg);
        assert!(!config.tables[0].source.needs_path());
        parse("format = \"iceberg\"", "path = \"warehouse/orders\"").unwrap();
        assert!(parse("format = \"iceberg\"", "").is_err());
    }
}
