//! Delta Lake tables: the data files of the current version.

use opendal::Operator;

use crate::config::TableConfig;
use crate::error::SourceError;
use crate::listing::TableListing;

/// The table's partitions from its source.
pub async fn discover(
    _operator: &Operator,
    table: &TableConfig,
) -> Result<TableListing, SourceError> {
    Err(SourceError::Unsupported {
        table: table.name.clone(),
        message: "format/catalog not built yet".to_string(),
    })
}
