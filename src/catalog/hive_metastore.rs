//! Hive directories registered in a Hive Metastore.

use std::collections::BTreeMap;

use opendal::Operator;

use crate::config::TableConfig;
use crate::error::SourceError;
use crate::listing::TableListing;

/// A table as the metastore describes it (what Iceberg and Delta tables registered there need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetastoreTable {
    /// The table's location (`sd.location`), as the metastore names it.
    pub location: String,
    /// The table's parameters (`metadata_location` and `table_type` for Iceberg tables).
    pub parameters: BTreeMap<String, String>,
    /// The partition keys, in order.
    pub partition_keys: Vec<String>,
}

/// The table `table.source.catalog` names (`catalog = "hive_metastore"`).
pub async fn load_table(table: &TableConfig) -> Result<MetastoreTable, SourceError> {
    Err(SourceError::Unsupported {
        table: table.name.clone(),
        message: "the hive_metastore catalog is not built yet".to_string(),
    })
}

/// The table's partitions from its source.
pub async fn discover(
    _operator: &Operator,
    table: &TableConfig,
) -> Result<TableListing, SourceError> {
    load_table(table).await?;
    Ok(TableListing::default())
}
