// The part of the Hive Metastore Thrift API that coldsync calls, trimmed from Hive 2.3's
// metastore/if/hive_metastore.thrift (Apache License 2.0; the field ids and types are
// Hive's and must stay so). Only the fields coldsync reads are declared: a reader skips every
// other field by its id, so a metastore of any version since 0.13 (1.x, 2.x, 3.x, 4.x) answers
// these calls in a way this client reads.
//
// Regenerate `thrift_gen.rs` with scripts/gen-hms-thrift.sh (Debian's thrift-compiler 0.17,
// matching the `thrift` crate's version in Cargo.toml).

namespace rs hive_metastore

struct FieldSchema {
  1: string name,
  2: string type,
  3: string comment
}

struct StorageDescriptor {
  2: string location
}

struct Table {
  1: string tableName,
  2: string dbName,
  7: StorageDescriptor sd,
  8: list<FieldSchema> partitionKeys,
  9: map<string, string> parameters,
  12: string tableType
}

struct Partition {
  1: list<string> values,
  6: StorageDescriptor sd,
  7: map<string, string> parameters
}

exception MetaException {
  1: string message
}

exception NoSuchObjectException {
  1: string message
}

service ThriftHiveMetastore {
  Table get_table(1: string dbname, 2: string tbl_name)
    throws (1: MetaException o1, 2: NoSuchObjectException o2)

  list<string> get_partition_names(1: string db_name, 2: string tbl_name, 3: i16 max_parts = -1)
    throws (1: MetaException o2)

  list<Partition> get_partitions_by_names(1: string db_name, 2: string tbl_name, 3: list<string> names)
    throws (1: MetaException o1, 2: NoSuchObjectException o2)
}
