//! An Iceberg table's metadata file (`v3.metadata.json`, `00002-<uuid>.metadata.json`), format
//! versions 1 to 3, as far as coldsync needs it: the current snapshot, every snapshot's time,
//! the schemas and every partition spec.
//!
//! Version 1 files name one `schema` and one `partition-spec`; version 2 and 3 files list
//! `schemas` and `partition-specs` by id. A snapshot of a very old version 1 table may list its
//! `manifests` itself instead of a `manifest-list`. Fields coldsync does not use are ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The newest format version coldsync reads.
pub const MAX_FORMAT_VERSION: u32 = 3;

/// The table metadata as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TableMetadata {
    /// 1, 2 or 3.
    pub format_version: u32,
    /// The table's base location (`s3a://lake/warehouse/orders`).
    #[serde(default)]
    pub location: String,
    /// The schema in use (versions 2 and 3; optional in 1).
    #[serde(default)]
    pub current_schema_id: Option<i32>,
    /// Every schema (versions 2 and 3; optional in 1).
    #[serde(default)]
    pub schemas: Vec<Schema>,
    /// The one schema of a version 1 file.
    #[serde(default)]
    pub schema: Option<Schema>,
    /// Every partition spec (versions 2 and 3; optional in 1).
    #[serde(default)]
    pub partition_specs: Vec<PartitionSpec>,
    /// The one partition spec of a version 1 file (its fields).
    #[serde(default)]
    pub partition_spec: Option<Vec<PartitionField>>,
    /// The current snapshot; absent, null or -1 when the table has none.
    #[serde(default)]
    pub current_snapshot_id: Option<i64>,
    /// The snapshots kept (expired ones are gone).
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
}

/// One schema: its top-level columns.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Schema {
    /// The schema's id (0 when a version 1 file has none).
    #[serde(default)]
    pub schema_id: i32,
    /// The top-level columns.
    #[serde(default)]
    pub fields: Vec<SchemaField>,
}

/// One top-level column of a schema.
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaField {
    /// The field id partition specs refer to.
    pub id: i32,
    /// The column name.
    pub name: String,
    /// `date`, `timestamptz`, `string`, ... or an object for nested types.
    #[serde(rename = "type")]
    pub field_type: serde_json::Value,
    /// Version 3: the value of the column in files written before it was added.
    #[serde(default, rename = "initial-default")]
    pub initial_default: Option<serde_json::Value>,
}

impl SchemaField {
    /// The primitive type name (`date`, `timestamp`), or `struct`/`list`/`map`.
    pub fn type_name(&self) -> String {
        match &self.field_type {
            serde_json::Value::String(name) => name.clone(),
            serde_json::Value::Object(object) => object
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("nested")
                .to_string(),
            other => other.to_string(),
        }
    }
}

/// One partition spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PartitionSpec {
    /// The spec's id: each manifest says which spec its files were written with.
    pub spec_id: i32,
    /// The partition fields, in order.
    #[serde(default)]
    pub fields: Vec<PartitionField>,
}

/// One partition field: a transform of a source column.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PartitionField {
    /// The column transformed (absent in version 3 multi-argument transforms).
    #[serde(default)]
    pub source_id: Option<i32>,
    /// The columns of a version 3 multi-argument transform.
    #[serde(default)]
    pub source_ids: Vec<i32>,
    /// The partition field's id: the Avro `field-id` of the value in manifests.
    #[serde(default)]
    pub field_id: Option<i32>,
    /// The partition field's name (`dt`, `ts_day`).
    pub name: String,
    /// `identity`, `day`, `hour`, `month`, `year`, `bucket[16]`, `truncate[4]`, `void`.
    pub transform: String,
}

impl PartitionField {
    /// True when the field transforms column `id`.
    pub fn reads_column(&self, id: i32) -> bool {
        self.source_id == Some(id) || self.source_ids.contains(&id)
    }
}

/// One snapshot.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Snapshot {
    /// The snapshot's id.
    pub snapshot_id: i64,
    /// When it was committed, milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Its manifest list (every version 2 and 3 snapshot, most version 1 ones).
    #[serde(default)]
    pub manifest_list: Option<String>,
    /// The manifests of an old version 1 snapshot without a manifest list.
    #[serde(default)]
    pub manifests: Option<Vec<String>>,
}

/// What is wrong with a metadata file: not JSON of the format, or a version coldsync does not
/// read (`unsupported`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataProblem {
    /// What is wrong, and what to do.
    pub message: String,
    /// True when the file is valid but needs a feature coldsync does not read.
    pub unsupported: bool,
}

impl TableMetadata {
    /// Parses a metadata file's JSON.
    pub fn parse(bytes: &[u8]) -> Result<TableMetadata, MetadataProblem> {
        let metadata: TableMetadata =
            serde_json::from_slice(bytes).map_err(|err| MetadataProblem {
                message: format!("not Iceberg table metadata JSON: {err}"),
                unsupported: false,
            })?;
        metadata.check()?;
        Ok(metadata)
    }

    /// From the JSON a REST catalog returned in `loadTable`'s `metadata`.
    pub fn from_json(value: serde_json::Value) -> Result<TableMetadata, MetadataProblem> {
        let metadata: TableMetadata =
            serde_json::from_value(value).map_err(|err| MetadataProblem {
                message: format!("not Iceberg table metadata: {err}"),
                unsupported: false,
            })?;
        metadata.check()?;
        Ok(metadata)
    }

    fn check(&self) -> Result<(), MetadataProblem> {
        if self.format_version == 0 || self.format_version > MAX_FORMAT_VERSION {
            return Err(MetadataProblem {
                message: format!(
                    "Iceberg format version {} is not supported (coldsync reads versions 1 to {MAX_FORMAT_VERSION})",
                    self.format_version
                ),
                unsupported: true,
            });
        }
        // Files written before such a column was added read as its default in Iceberg; coldsync
        // reads the Parquet file as it is and would write the column as missing.
        let defaulted = self
            .schemas
            .iter()
            .flat_map(|schema| &schema.fields)
            .find(|field| field.initial_default.as_ref().is_some_and(|v| !v.is_null()));
        if let Some(field) = defaulted {
            return Err(MetadataProblem {
                message: format!(
                    "column {} has an initial-default (a version 3 default value): files written before the column was added would be loaded without it",
                    field.name
                ),
                unsupported: true,
            });
        }
        Ok(())
    }

    /// The current snapshot, or `None` for a table without one (nothing committed yet).
    pub fn current_snapshot(&self) -> Result<Option<&Snapshot>, MetadataProblem> {
        let id = match self.current_snapshot_id {
            None | Some(-1) => return Ok(None),
            Some(id) => id,
        };
        self.snapshots
            .iter()
            .find(|s| s.snapshot_id == id)
            .map(Some)
            .ok_or_else(|| MetadataProblem {
                message: format!("current-snapshot-id {id} is not among the table's snapshots"),
                unsupported: false,
            })
    }

    /// When snapshot `id` was committed, if it is still kept.
    pub fn snapshot_time_ms(&self, id: i64) -> Option<i64> {
        self.snapshots
            .iter()
            .find(|s| s.snapshot_id == id)
            .map(|s| s.timestamp_ms)
    }

    /// The oldest snapshot kept: a file whose adding snapshot has expired is older than it.
    pub fn oldest_snapshot_ms(&self) -> Option<i64> {
        self.snapshots.iter().map(|s| s.timestamp_ms).min()
    }

    /// Every partition spec by id (a version 1 file's one spec is spec 0).
    pub fn specs(&self) -> BTreeMap<i32, PartitionSpec> {
        let mut specs: BTreeMap<i32, PartitionSpec> = self
            .partition_specs
            .iter()
            .map(|s| (s.spec_id, s.clone()))
            .collect();
        if let (true, Some(fields)) = (specs.is_empty(), &self.partition_spec) {
            specs.insert(
                0,
                PartitionSpec {
                    spec_id: 0,
                    fields: fields.clone(),
                },
            );
        }
        specs
    }

    /// The column named `name`: in the current schema, else in an older one (a column since
    /// dropped that old specs still partition by).
    pub fn column(&self, name: &str) -> Option<&SchemaField> {
        let current = self
            .current_schema_id
            .and_then(|id| self.schemas.iter().find(|s| s.schema_id == id));
        fn in_schema<'s>(schema: &'s Schema, name: &str) -> Option<&'s SchemaField> {
            schema.fields.iter().find(|f| f.name == name)
        }
        let mut found = current.and_then(|s| in_schema(s, name));
        if found.is_none() {
            found = self.schema.as_ref().and_then(|s| in_schema(s, name));
        }
        if found.is_none() {
            found = self.schemas.iter().rev().find_map(|s| in_schema(s, name));
        }
        found
    }

    /// The top-level column names of the current schema, for messages.
    pub fn column_names(&self) -> Vec<String> {
        let current = self
            .current_schema_id
            .and_then(|id| self.schemas.iter().find(|s| s.schema_id == id))
            .or(self.schema.as_ref())
            .or(self.schemas.last());
        current
            .map(|s| s.fields.iter().map(|f| f.name.clone()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = r#"{
      "format-version": 2, "table-uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1",
      "location": "s3a://lake/warehouse/orders", "last-sequence-number": 2,
      "last-updated-ms": 1764633600000, "last-column-id": 3, "current-schema-id": 1,
      "schemas": [
        {"type": "struct", "schema-id": 0, "fields": [
          {"id": 1, "name": "id", "required": true, "type": "long"},
          {"id": 2, "name": "day", "required": false, "type": "date"}]},
        {"type": "struct", "schema-id": 1, "fields": [
          {"id": 1, "name": "id", "required": true, "type": "long"},
          {"id": 2, "name": "dt", "required": false, "type": "date"},
          {"id": 3, "name": "tags", "required": false,
           "type": {"type": "list", "element-id": 4, "element": "string", "element-required": false}}]}
      ],
      "default-spec-id": 1,
      "partition-specs": [
        {"spec-id": 0, "fields": [{"name": "dt", "transform": "identity", "source-id": 2, "field-id": 1000}]},
        {"spec-id": 1, "fields": [
          {"name": "dt", "transform": "identity", "source-id": 2, "field-id": 1000},
          {"name": "id_bucket", "transform": "bucket[4]", "source-id": 1, "field-id": 1001}]}
      ],
      "last-partition-id": 1001, "properties": {},
      "current-snapshot-id": 22,
      "snapshots": [
        {"snapshot-id": 11, "timestamp-ms": 1764547200000, "manifest-list": "s3a://lake/warehouse/orders/metadata/snap-11.avro", "summary": {"operation": "append"}, "schema-id": 0},
        {"snapshot-id": 22, "parent-snapshot-id": 11, "sequence-number": 2, "timestamp-ms": 1764633600000, "manifest-list": "s3a://lake/warehouse/orders/metadata/snap-22.avro", "summary": {"operation": "append"}, "schema-id": 1}
      ],
      "refs": {"main": {"snapshot-id": 22, "type": "branch"}}
    }"#;

    #[test]
    fn a_v2_file_gives_its_current_snapshot_specs_and_columns_by_current_name() {
        let metadata = TableMetadata::parse(V2.as_bytes()).unwrap();
        let current = metadata.current_snapshot().unwrap().unwrap();
        assert_eq!(current.snapshot_id, 22);
        assert_eq!(
            current.manifest_list.as_deref(),
            Some("s3a://lake/warehouse/orders/metadata/snap-22.avro")
        );
        assert_eq!(metadata.snapshot_time_ms(11), Some(1764547200000));
        assert_eq!(metadata.oldest_snapshot_ms(), Some(1764547200000));
        let specs = metadata.specs();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[&1].fields[1].transform, "bucket[4]");
        // Renamed from `day` to `dt`: the current schema's name counts, the id stays.
        let dt = metadata.column("dt").unwrap();
        assert_eq!((dt.id, dt.type_name().as_str()), (2, "date"));
        assert_eq!(metadata.column("tags").unwrap().type_name(), "list");
        assert_eq!(metadata.column_names(), ["id", "dt", "tags"]);
    }

    #[test]
    fn a_v1_file_has_one_schema_and_one_spec() {
        let v1 = r#"{"format-version": 1, "location": "file:/w/t", "last-updated-ms": 1,
          "last-column-id": 2,
          "schema": {"type": "struct", "fields": [{"id": 1, "name": "ts", "required": false, "type": "timestamptz"}]},
          "partition-spec": [{"name": "ts_day", "transform": "day", "source-id": 1, "field-id": 1000}],
          "current-snapshot-id": -1, "snapshots": []}"#;
        let metadata = TableMetadata::parse(v1.as_bytes()).unwrap();
        assert!(metadata.current_snapshot().unwrap().is_none());
        assert_eq!(metadata.specs()[&0].fields[0].name, "ts_day");
        assert_eq!(metadata.column("ts").unwrap().type_name(), "timestamptz");
    }

    #[test]
    fn a_v3_column_with_a_default_value_is_refused() {
        let v3 = |default: &str| {
            format!(
                r#"{{"format-version": 3, "current-schema-id": 0, "schemas": [{{"schema-id": 0, "fields": [
                  {{"id": 1, "name": "dt", "type": "date"}},
                  {{"id": 2, "name": "channel", "type": "string", "initial-default": {default}}}]}}]}}"#
            )
        };
        TableMetadata::parse(v3("null").as_bytes()).unwrap();
        let problem = TableMetadata::parse(v3("\"web\"").as_bytes()).unwrap_err();
        assert!(problem.unsupported);
        assert!(
            problem
                .message
                .contains("column channel has an initial-default"),
            "{problem:?}"
        );
    }

    #[test]
    fn unknown_versions_and_broken_files_are_refused() {
        let v4 = r#"{"format-version": 4, "location": "x"}"#;
        let problem = TableMetadata::parse(v4.as_bytes()).unwrap_err();
        assert!(problem.unsupported);
        assert!(problem.message.contains("format version 4"), "{problem:?}");
        let broken = TableMetadata::parse(b"{\"format-version\": 2, \"snap").unwrap_err();
        assert!(!broken.unsupported);
        let dangling = r#"{"format-version": 2, "current-snapshot-id": 5, "snapshots": []}"#;
        let problem = TableMetadata::parse(dangling.as_bytes())
            .unwrap()
            .current_snapshot()
            .unwrap_err();
        assert!(problem.message.contains("5"), "{problem:?}");
    }
}
