//! Iceberg manifest lists and manifests (Avro files, read with `apache-avro`): the manifests of a
//! snapshot, and the data and delete files each manifest tracks with their partition values.
//!
//! Fields are read by name, as every writer names them (the spec's `manifest_file` and
//! `manifest_entry` schemas); fields a version does not have take the spec's defaults (version 1
//! has no `content`: everything is data). Partition values are matched to the partition spec's
//! fields by the Avro `field-id` attribute, else by name.

use std::collections::BTreeMap;

use apache_avro::schema::RecordField;
use apache_avro::types::Value;
use apache_avro::{Reader, Schema};

/// One manifest of a snapshot, from its manifest list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Where the manifest is.
    pub path: String,
    /// The partition spec its files were written with.
    pub spec_id: i32,
    /// 0: data files, 1: delete files.
    pub content: i32,
    /// The snapshot that wrote it (the snapshot of its entries whose own id is null).
    pub added_snapshot_id: Option<i64>,
}

/// `status` of a manifest entry: the file was deleted by the manifest's snapshot.
pub const STATUS_DELETED: i32 = 2;

/// One entry of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestEntry {
    /// 0: existing, 1: added, 2: deleted.
    pub status: i32,
    /// The snapshot that added (or deleted) the file; null inherits the manifest's.
    pub snapshot_id: Option<i64>,
    /// 0: data, 1: position deletes (or a version 3 deletion vector), 2: equality deletes.
    pub content: i32,
    /// The file's location, as written.
    pub file_path: String,
    /// `PARQUET`, `AVRO`, `ORC`, `PUFFIN`.
    pub file_format: String,
    /// Rows in the file.
    pub record_count: i64,
    /// Bytes of the file.
    pub file_size_in_bytes: i64,
    /// The data file a version 3 deletion vector applies to.
    pub referenced_data_file: Option<String>,
    /// Partition values by partition field id (fields whose Avro schema has no `field-id` are
    /// keyed by name in [`ManifestEntry::partition_by_name`]).
    pub partition_by_id: BTreeMap<i32, Value>,
    /// Partition values by Avro field name.
    pub partition_by_name: BTreeMap<String, Value>,
}

impl ManifestEntry {
    /// The value of partition field `field_id` (named `name` in the spec), unwrapped from its
    /// `["null", T]` union; `None` when the manifest has no such field.
    pub fn partition_value(&self, field_id: Option<i32>, name: &str) -> Option<&Value> {
        field_id
            .and_then(|id| self.partition_by_id.get(&id))
            .or_else(|| self.partition_by_name.get(name))
            .map(unwrap_union)
    }
}

/// What an Avro file could not give.
pub type AvroProblem = String;

/// The manifests listed by a manifest list.
pub fn read_manifest_list(bytes: &[u8]) -> Result<Vec<ManifestFile>, AvroProblem> {
    let reader = Reader::new(bytes).map_err(|err| format!("not an Avro file: {err}"))?;
    let mut manifests = Vec::new();
    for (i, value) in reader.enumerate() {
        let value = value.map_err(|err| format!("record {i}: {err}"))?;
        let record = as_record(&value).ok_or_else(|| format!("record {i} is not a record"))?;
        let path = string_field(record, "manifest_path")
            .ok_or_else(|| format!("record {i} has no manifest_path"))?;
        manifests.push(ManifestFile {
            spec_id: int_field(record, "partition_spec_id").unwrap_or(0) as i32,
            content: int_field(record, "content").unwrap_or(0) as i32,
            added_snapshot_id: int_field(record, "added_snapshot_id"),
            path,
        });
    }
    Ok(manifests)
}

/// The metadata a manifest carries in its Avro header that coldsync uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestHeader {
    /// `partition-spec-id`, when written (version 1 manifests listed by a snapshot directly).
    pub spec_id: Option<i32>,
    /// `content`: `data` or `deletes`.
    pub content: Option<String>,
}

/// The entries of a manifest and its header.
pub fn read_manifest(bytes: &[u8]) -> Result<(ManifestHeader, Vec<ManifestEntry>), AvroProblem> {
    let reader = Reader::new(bytes).map_err(|err| format!("not an Avro file: {err}"))?;
    let meta = |key: &str| {
        reader
            .user_metadata()
            .get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let header = ManifestHeader {
        spec_id: meta("partition-spec-id").and_then(|v| v.parse().ok()),
        content: meta("content"),
    };
    let partition_ids = partition_field_ids(reader.writer_schema());
    let mut entries = Vec::new();
    for (i, value) in reader.enumerate() {
        let value = value.map_err(|err| format!("entry {i}: {err}"))?;
        entries.push(entry(&value, &partition_ids).map_err(|err| format!("entry {i}: {err}"))?);
    }
    Ok((header, entries))
}

fn entry(value: &Value, partition_ids: &BTreeMap<String, i32>) -> Result<ManifestEntry, String> {
    let record = as_record(value).ok_or("not a record")?;
    let status = int_field(record, "status").ok_or("no status")? as i32;
    let data_file = field(record, "data_file")
        .and_then(as_record)
        .ok_or("no data_file record")?;
    let mut partition_by_id = BTreeMap::new();
    let mut partition_by_name = BTreeMap::new();
    if let Some(partition) = field(data_file, "partition").and_then(as_record) {
        for (name, value) in partition {
            if let Some(id) = partition_ids.get(name) {
                partition_by_id.insert(*id, value.clone());
            }
            partition_by_name.insert(name.clone(), value.clone());
        }
    }
    Ok(ManifestEntry {
        status,
        snapshot_id: int_field(record, "snapshot_id"),
        content: int_field(data_file, "content").unwrap_or(0) as i32,
        file_path: string_field(data_file, "file_path").ok_or("data_file has no file_path")?,
        file_format: string_field(data_file, "file_format").unwrap_or_default(),
        record_count: int_field(data_file, "record_count").unwrap_or(-1),
        file_size_in_bytes: int_field(data_file, "file_size_in_bytes")
            .ok_or("data_file has no file_size_in_bytes")?,
        referenced_data_file: string_field(data_file, "referenced_data_file"),
        partition_by_id,
        partition_by_name,
    })
}

/// Avro field name -> `field-id` of the partition record's fields, from the writer schema.
fn partition_field_ids(schema: &Schema) -> BTreeMap<String, i32> {
    let fields = record_fields(schema)
        .and_then(|fields| fields.iter().find(|f| f.name == "data_file"))
        .and_then(|data_file| record_fields(&data_file.schema))
        .and_then(|fields| fields.iter().find(|f| f.name == "partition"))
        .and_then(|partition| record_fields(&partition.schema));
    fields
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let id = f.custom_attributes.get("field-id")?;
            let id = id
                .as_i64()
                .or_else(|| id.as_str().and_then(|s| s.parse().ok()))?;
            Some((f.name.clone(), i32::try_from(id).ok()?))
        })
        .collect()
}

fn record_fields(schema: &Schema) -> Option<&[RecordField]> {
    match schema {
        Schema::Record(record) => Some(&record.fields),
        Schema::Union(union) => union.variants().iter().find_map(record_fields),
        _ => None,
    }
}

fn unwrap_union(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => unwrap_union(inner),
        other => other,
    }
}

fn as_record(value: &Value) -> Option<&[(String, Value)]> {
    match unwrap_union(value) {
        Value::Record(fields) => Some(fields),
        _ => None,
    }
}

fn field<'a>(record: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    record
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| unwrap_union(v))
}

fn int_field(record: &[(String, Value)], name: &str) -> Option<i64> {
    match field(record, name)? {
        Value::Int(v) => Some(i64::from(*v)),
        Value::Long(v) => Some(*v),
        _ => None,
    }
}

fn string_field(record: &[(String, Value)], name: &str) -> Option<String> {
    match field(record, name)? {
        Value::String(s) => Some(s.clone()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::Writer;

    use super::*;

    const MANIFEST_LIST_V2: &str = r#"{"type": "record", "name": "manifest_file", "fields": [
      {"name": "manifest_path", "type": "string", "field-id": 500},
      {"name": "manifest_length", "type": "long", "field-id": 501},
      {"name": "partition_spec_id", "type": "int", "field-id": 502},
      {"name": "content", "type": "int", "field-id": 517},
      {"name": "added_snapshot_id", "type": "long", "field-id": 503}]}"#;

    const MANIFEST_V2: &str = r#"{"type": "record", "name": "manifest_entry", "fields": [
      {"name": "status", "type": "int", "field-id": 0},
      {"name": "snapshot_id", "type": ["null", "long"], "default": null, "field-id": 1},
      {"name": "data_file", "field-id": 2, "type": {"type": "record", "name": "r2", "fields": [
        {"name": "content", "type": "int", "field-id": 134},
        {"name": "file_path", "type": "string", "field-id": 100},
        {"name": "file_format", "type": "string", "field-id": 101},
        {"name": "partition", "field-id": 102, "type": {"type": "record", "name": "r102", "fields": [
          {"name": "dt", "type": ["null", {"type": "int", "logicalType": "date"}], "default": null, "field-id": 1000},
          {"name": "region_x2D", "type": ["null", "string"], "default": null}]}},
        {"name": "record_count", "type": "long", "field-id": 103},
        {"name": "file_size_in_bytes", "type": "long", "field-id": 104}]}}]}"#;

    fn avro(schema: &str, records: Vec<Value>, metadata: &[(&str, &str)]) -> Vec<u8> {
        let schema = Schema::parse_str(schema).unwrap();
        let mut writer = Writer::new(&schema, Vec::new()).unwrap();
        for (k, v) in metadata {
            writer.add_user_metadata(k.to_string(), v).unwrap();
        }
        for record in records {
            writer.append_value(record).unwrap();
        }
        writer.into_inner().unwrap()
    }

    fn rec(fields: Vec<(&str, Value)>) -> Value {
        Value::Record(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    #[test]
    fn a_manifest_list_names_each_manifest_with_its_spec_and_content() {
        let bytes = avro(
            MANIFEST_LIST_V2,
            vec![
                rec(vec![
                    ("manifest_path", Value::String("file:/w/m1.avro".into())),
                    ("manifest_length", Value::Long(100)),
                    ("partition_spec_id", Value::Int(0)),
                    ("content", Value::Int(0)),
                    ("added_snapshot_id", Value::Long(7)),
                ]),
                rec(vec![
                    ("manifest_path", Value::String("file:/w/m2.avro".into())),
                    ("manifest_length", Value::Long(100)),
                    ("partition_spec_id", Value::Int(1)),
                    ("content", Value::Int(1)),
                    ("added_snapshot_id", Value::Long(8)),
                ]),
            ],
            &[],
        );
        let manifests = read_manifest_list(&bytes).unwrap();
        assert_eq!(
            manifests,
            vec![
                ManifestFile {
                    path: "file:/w/m1.avro".into(),
                    spec_id: 0,
                    content: 0,
                    added_snapshot_id: Some(7)
                },
                ManifestFile {
                    path: "file:/w/m2.avro".into(),
                    spec_id: 1,
                    content: 1,
                    added_snapshot_id: Some(8)
                },
            ]
        );
    }

    #[test]
    fn manifest_entries_carry_partition_values_by_field_id_and_name() {
        let partition = |dt: Option<i32>| {
            rec(vec![
                (
                    "dt",
                    match dt {
                        Some(d) => Value::Union(1, Box::new(Value::Date(d))),
                        None => Value::Union(0, Box::new(Value::Null)),
                    },
                ),
                (
                    "region_x2D",
                    Value::Union(1, Box::new(Value::String("eu".into()))),
                ),
            ])
        };
        let entry = |status: i32, snapshot: Option<i64>, path: &str, dt: Option<i32>| {
            rec(vec![
                ("status", Value::Int(status)),
                (
                    "snapshot_id",
                    match snapshot {
                        Some(s) => Value::Union(1, Box::new(Value::Long(s))),
                        None => Value::Union(0, Box::new(Value::Null)),
                    },
                ),
                (
                    "data_file",
                    rec(vec![
                        ("content", Value::Int(0)),
                        ("file_path", Value::String(path.into())),
                        ("file_format", Value::String("PARQUET".into())),
                        ("partition", partition(dt)),
                        ("record_count", Value::Long(3)),
                        ("file_size_in_bytes", Value::Long(1234)),
                    ]),
                ),
            ])
        };
        let bytes = avro(
            MANIFEST_V2,
            vec![
                entry(1, None, "file:/w/a.parquet", Some(20_412)),
                entry(2, Some(5), "file:/w/b.parquet", None),
            ],
            &[("partition-spec-id", "3"), ("content", "data")],
        );
        let (header, entries) = read_manifest(&bytes).unwrap();
        assert_eq!(header.spec_id, Some(3));
        assert_eq!(header.content.as_deref(), Some("data"));
        assert_eq!(entries.len(), 2);
        let a = &entries[0];
        assert_eq!((a.status, a.snapshot_id, a.content), (1, None, 0));
        assert_eq!(a.file_path, "file:/w/a.parquet");
        assert_eq!((a.record_count, a.file_size_in_bytes), (3, 1234));
        assert_eq!(
            a.partition_value(Some(1000), "ignored"),
            Some(&Value::Date(20_412))
        );
        // No field-id in the schema: found by its (sanitized) Avro name.
        assert_eq!(
            a.partition_value(Some(1001), "region_x2D"),
            Some(&Value::String("eu".into()))
        );
        let b = &entries[1];
        assert_eq!((b.status, b.snapshot_id), (STATUS_DELETED, Some(5)));
        assert_eq!(b.partition_value(Some(1000), "dt"), Some(&Value::Null));
    }

    #[test]
    fn garbage_is_not_a_manifest() {
        assert!(read_manifest(b"not avro at all").is_err());
        assert!(read_manifest_list(b"Obj\x01").is_err());
    }
}
