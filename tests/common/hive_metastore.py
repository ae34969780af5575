"""Registers databases, tables and partitions in a Hive Metastore, the way a producer's DDL does.

Used by tests/common/hive_metastore.rs: `python hive_metastore.py PORT OPERATIONS_JSON`, where
OPERATIONS_JSON is a list of {"op": ..., ...}. The Thrift client is pymetastore's generated one
(the Hive Metastore IDL), over a buffered socket with the binary protocol, as Hive's own client.
"""

import json
import sys

from pymetastore.hive_metastore import ThriftHiveMetastore
from pymetastore.hive_metastore.ttypes import (
    AlreadyExistsException,
    Database,
    FieldSchema,
    Partition,
    SerDeInfo,
    StorageDescriptor,
    Table,
)
from thrift.protocol import TBinaryProtocol
from thrift.transport import TSocket, TTransport

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


def storage(location, columns):
    return StorageDescriptor(
        cols=[FieldSchema(name, kind, "") for name, kind in columns],
        location=location,
        inputFormat=PARQUET_INPUT,
        outputFormat=PARQUET_OUTPUT,
        compressed=False,
        numBuckets=-1,
        serdeInfo=SerDeInfo(name="", serializationLib=PARQUET_SERDE, parameters={}),
        bucketCols=[],
        sortCols=[],
        parameters={},
    )


def apply(client, op):
    kind = op["op"]
    if kind == "create_database":
        try:
            client.create_database(
                Database(name=op["db"], description="", locationUri=op["location"], parameters={})
            )
        except AlreadyExistsException:
            pass
    elif kind == "create_table":
        client.create_table(
            Table(
                tableName=op["table"],
                dbName=op["db"],
                owner="coldsync-test",
                createTime=0,
                lastAccessTime=0,
                retention=0,
                sd=storage(op["location"], op.get("columns", [])),
                partitionKeys=[FieldSchema(key, "string", "") for key in op["partition_keys"]],
                parameters=dict(op.get("parameters", {}), EXTERNAL="TRUE"),
                tableType="EXTERNAL_TABLE",
            )
        )
    elif kind == "add_partition":
        client.add_partition(
            Partition(
                values=op["values"],
                dbName=op["db"],
                tableName=op["table"],
                createTime=0,
                lastAccessTime=0,
                sd=storage(op["location"], []),
                parameters=op.get("parameters", {}),
            )
        )
    elif kind == "alter_partition":
        partition = client.get_partition(op["db"], op["table"], op["values"])
        partition.parameters.update(op["parameters"])
        client.alter_partition(op["db"], op["table"], partition)
    elif kind == "alter_table":
        # What an Iceberg commit through Hive's catalog does: the table's parameters move on.
        table = client.get_table(op["db"], op["table"])
        table.parameters.update(op["parameters"])
        client.alter_table(op["db"], op["table"], table)
    elif kind == "drop_partition":
        client.drop_partition(op["db"], op["table"], op["values"], False)
    else:
        raise SystemExit(f"unknown operation {kind!r}")


def main():
    port = int(sys.argv[1])
    operations = json.loads(sys.argv[2])
    socket = TSocket.TSocket("127.0.0.1", port)
    socket.setTimeout(120_000)
    transport = TTransport.TBufferedTransport(socket)
    client = ThriftHiveMetastore.Client(TBinaryProtocol.TBinaryProtocol(transport))
    transport.open()
    try:
        for op in operations:
            apply(client, op)
    finally:
        transport.close()


if __name__ == "__main__":
    main()
