//! Parquet files in memory: encode batches with chosen row groups and compression, decode them
//! back for assertions.

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Encodes `batch` as a Parquet file in memory with at most `row_group_rows`
/// rows per row group and the given compression (e.g. `Compression::SNAPPY`,
/// `Compression::UNCOMPRESSED`, `Compression::ZSTD(Default::default())`).
pub fn parquet_bytes(
    batch: &RecordBatch,
    row_group_rows: usize,
    compression: Compression,
) -> Vec<u8> {
    parquet_bytes_multi(std::slice::from_ref(batch), row_group_rows, compression)
}

/// Like [`parquet_bytes`] for several batches of the same schema (one file).
/// With an empty slice this panics (no schema); use an empty batch instead.
pub fn parquet_bytes_multi(
    batches: &[RecordBatch],
    row_group_rows: usize,
    compression: Compression,
) -> Vec<u8> {
    let schema = batches.first().expect("at least one batch").schema();
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .build();
    let mut w = ArrowWriter::try_new(Vec::new(), schema, Some(props)).expect("ArrowWriter");
    for b in batches {
        w.write(b).expect("write batch");
    }
    w.into_inner().expect("finish parquet")
}

/// Decodes a Parquet file (for assertions on what a test wrote or read back).
pub fn read_parquet_bytes(bytes: &[u8]) -> Vec<RecordBatch> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .expect("parquet footer")
        .build()
        .expect("parquet reader");
    reader.map(|b| b.expect("decode batch")).collect()
}
