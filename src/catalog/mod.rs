//! Where a table's partitions come from: the one entry point, [`discover`], that every command
//! uses to turn a table into a [`TableListing`] (dates, their data files, a fingerprint each),
//! whatever the table's `catalog` and `format`:
//! - Hive directories without a catalog: the store is listed ([`crate::listing`]).
//! - Hive directories in a Hive Metastore: the registered partitions and their locations
//!   ([`hive_metastore`]).
//! - Iceberg: the files of the current snapshot, from the metadata a catalog points at
//!   ([`iceberg`]).
//! - Delta Lake: the files of the current version, from the log ([`delta`]).
//!
//! Everything after discovery (plan, load, ledger, verify) is the same for every source.
//! Locations the catalogs name are mapped to store paths by [`location`].

pub mod delta;
pub mod hive_metastore;
pub mod iceberg;
pub mod location;

use opendal::Operator;

use crate::config::{Catalog, TableConfig, TableFormat};
use crate::error::SourceError;
use crate::listing::{list_table, ListingOrigin, TableListing};

/// The partitions of `table` as its source says, with their data files (paths in the store).
pub async fn discover(
    operator: &Operator,
    table: &TableConfig,
) -> Result<TableListing, SourceError> {
    let source = &table.source;
    let mut listing = match (&source.catalog, source.format) {
        (Catalog::None, TableFormat::Hive) => list_table(operator, table).await?,
        (_, TableFormat::Hive) => hive_metastore::discover(operator, table).await?,
        (_, TableFormat::Iceberg) => iceberg::discover(operator, table).await?,
        (_, TableFormat::Delta) => delta::discover(operator, table).await?,
    };
    listing.origin = ListingOrigin {
        catalog: source.catalog.as_str(),
        format: source.format.as_str(),
        snapshot: listing.origin.snapshot.take(),
    };
    Ok(listing)
}

/// The error of a location that is not in the store `locations` describes.
pub fn location_error(
    table: &TableConfig,
    locations: &location::StoreLocations,
    location: &str,
    reason: String,
) -> SourceError {
    SourceError::Location {
        table: table.name.clone(),
        location: location.to_string(),
        store: locations.describe(),
        reason,
    }
}
