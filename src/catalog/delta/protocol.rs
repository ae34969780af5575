//! Which Delta tables coldsync can load: the table's protocol (reader version and reader
//! features) and its column mapping mode, judged before any file is listed.
//!
//! coldsync reads each data file as it is, by its Parquet column names, and loads every row of
//! it. So a reader feature that changes what a file's rows or columns mean to a reader is refused
//! unless coldsync handles it:
//! - `deletionVectors`: handled per file (a date with a file that carries a deletion vector is
//!   refused, the others load): enabling the feature alone changes nothing.
//! - `columnMapping`: fine in mode `none`; in mode `name` or `id` the Parquet column names are
//!   physical names (`col-5f1c...`), not the table's: the table is refused.
//! - `timestampNtz`, `v2Checkpoint`, `vacuumProtocolCheck`: nothing changes for a reader of the
//!   files (the log is read by delta_kernel, checkpoints of any kind included).
//! - anything else (`typeWidening`, `variantType`, `catalogManaged`, a feature unknown here):
//!   refused, naming the feature.

use delta_kernel::table_features::ColumnMappingMode;

/// What the table's protocol and configuration ask of a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderRequirements {
    /// `minReaderVersion`.
    pub min_reader_version: i32,
    /// `readerFeatures` (only with reader version 3), as named in the log.
    pub reader_features: Vec<String>,
    /// `delta.columnMapping.mode`.
    pub column_mapping: ColumnMappingMode,
}

/// Reader features whose files coldsync reads as they are.
const READ_AS_IS: [&str; 4] = [
    "timestampNtz",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    // the name some writers used for timestampNtz (delta_kernel accepts it too)
    "timestampWithoutTimezone",
];

/// Ok when coldsync loads the table correctly, else what it cannot read and why (a sentence for
/// [`crate::error::SourceError::Unsupported`]).
pub fn check(requirements: &ReaderRequirements) -> Result<(), String> {
    let version = requirements.min_reader_version;
    if !(1..=3).contains(&version) {
        return Err(format!(
            "its protocol needs Delta reader version {version}; coldsync reads versions 1 to 3"
        ));
    }
    // Reader version 2 means column mapping; version 3 lists its features.
    let features: Vec<&str> = match version {
        1 => Vec::new(),
        2 => vec!["columnMapping"],
        _ => requirements
            .reader_features
            .iter()
            .map(String::as_str)
            .collect(),
    };
    for feature in features {
        match feature {
            "deletionVectors" => {}
            "columnMapping" => check_column_mapping(requirements.column_mapping)?,
            known if READ_AS_IS.contains(&known) => {}
            "typeWidening" | "typeWidening-preview" => {
                return Err(unsupported_feature(
                    feature,
                    "files written before a column's type was widened hold the old type",
                ))
            }
            other => {
                return Err(unsupported_feature(
                    other,
                    "coldsync does not read tables that need it",
                ))
            }
        }
    }
    // A column mapping mode without the feature is not a valid table; refuse it all the same.
    check_column_mapping(requirements.column_mapping)
}

fn check_column_mapping(mode: ColumnMappingMode) -> Result<(), String> {
    match mode {
        ColumnMappingMode::None => Ok(()),
        ColumnMappingMode::Name | ColumnMappingMode::Id => Err(format!(
            "it uses column mapping (delta.columnMapping.mode = {}): its Parquet files name their \
             columns by physical names, which coldsync does not map to the table's column names",
            mode_name(mode)
        )),
    }
}

fn mode_name(mode: ColumnMappingMode) -> &'static str {
    match mode {
        ColumnMappingMode::None => "none",
        ColumnMappingMode::Name => "name",
        ColumnMappingMode::Id => "id",
    }
}

fn unsupported_feature(feature: &str, why: &str) -> String {
    format!("its protocol needs the Delta reader feature {feature:?}: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requirements(
        version: i32,
        features: &[&str],
        mode: ColumnMappingMode,
    ) -> ReaderRequirements {
        ReaderRequirements {
            min_reader_version: version,
            reader_features: features.iter().map(|f| f.to_string()).collect(),
            column_mapping: mode,
        }
    }

    #[test]
    fn plain_tables_and_features_read_as_is_load() {
        for table in [
            requirements(1, &[], ColumnMappingMode::None),
            requirements(2, &[], ColumnMappingMode::None),
            requirements(
                3,
                &[
                    "deletionVectors",
                    "timestampNtz",
                    "v2Checkpoint",
                    "vacuumProtocolCheck",
                ],
                ColumnMappingMode::None,
            ),
            requirements(3, &["columnMapping"], ColumnMappingMode::None),
        ] {
            assert_eq!(check(&table), Ok(()), "{table:?}");
        }
    }

    #[test]
    fn column_mapping_by_name_or_id_is_refused() {
        for (version, features) in [(2, vec![]), (3, vec!["columnMapping"])] {
            for mode in [ColumnMappingMode::Name, ColumnMappingMode::Id] {
                let err = check(&requirements(version, &features, mode)).unwrap_err();
                assert!(err.contains("column mapping"), "{err}");
                assert!(err.contains(mode_name(mode)), "{err}");
            }
        }
    }

    #[test]
    fn other_features_and_versions_are_refused_by_name() {
        for feature in [
            "typeWidening",
            "variantType",
            "catalogManaged",
            "fancyNewThing",
        ] {
            let err = check(&requirements(
                3,
                &["timestampNtz", feature],
                ColumnMappingMode::None,
            ))
            .unwrap_err();
            assert!(err.contains(&format!("{feature:?}")), "{err}");
        }
        let err = check(&requirements(4, &[], ColumnMappingMode::None)).unwrap_err();
        assert!(err.contains("reader version 4"), "{err}");
    }
}
