//! Async Parquet reading through opendal: the footer of every file first (so a broken file refuses
//! the partition before anything is written), then a stream of record batches with only the
//! needed columns, one row group at a time, so memory stays flat whatever the file size.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use opendal::Operator;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    ColumnChunkMetaData, FileMetaData, ParquetMetaData, ParquetMetaDataBuilder,
    ParquetMetaDataReader,
};
use tokio::sync::mpsc;

use crate::error::FileError;
use crate::listing::DataFile;

/// Rows per decoded record batch.
pub const BATCH_ROWS: usize = 8192;

/// Bytes fetched from the end of a file in the first request (footer and usually the metadata).
const FOOTER_PREFETCH: usize = 64 * 1024;

/// parquet's [`AsyncFileReader`] over an opendal reader of one object of known size.
pub struct OpendalFileReader {
    reader: opendal::Reader,
    size: u64,
}

impl OpendalFileReader {
    /// Opens `path` (of `size` bytes, as listed) for ranged reads.
    pub async fn open(operator: &Operator, path: &str, size: u64) -> opendal::Result<Self> {
        let reader = operator.reader(path).await?;
        Ok(OpendalFileReader { reader, size })
    }
}

fn external(err: opendal::Error) -> ParquetError {
    ParquetError::External(Box::new(err))
}

impl AsyncFileReader for OpendalFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.reader
                .read(range)
                .await
                .map(|buf| buf.to_bytes())
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let buffers = self.reader.fetch(ranges).await.map_err(external)?;
            Ok(buffers.into_iter().map(|buf| buf.to_bytes()).collect())
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(FOOTER_PREFETCH))
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// A file whose footer has been read and checked.
pub struct OpenedFile {
    /// The listed file.
    pub file: DataFile,
    /// Its reader, positioned nowhere (ranged reads).
    reader: OpendalFileReader,
    /// Footer, schema.
    pub metadata: ArrowReaderMetadata,
}

impl OpenedFile {
    /// Rows in the file: the sum of its row groups' row counts, which is what the decoder reads.
    /// The footer's file-level `num_rows` is not used: some writers leave it 0 (parquet-testing's
    /// `repeated_no_annotation.parquet`), and trusting it would drop rows silently.
    pub fn num_rows(&self) -> u64 {
        row_group_rows(self.metadata.metadata())
    }

    /// The file's Arrow schema.
    pub fn schema(&self) -> &SchemaRef {
        self.metadata.schema()
    }

    /// The schema restricted to `columns` that exist in the file, and the projection selecting them.
    pub fn projection(&self, columns: &[String]) -> Result<(SchemaRef, ProjectionMask), FileError> {
        let schema = self.schema();
        let mut indices: Vec<usize> = columns
            .iter()
            .filter_map(|c| schema.index_of(c).ok())
            .collect();
        indices.sort_unstable();
        indices.dedup();
        let projected = schema.project(&indices).map_err(|err| FileError::Parquet {
            path: self.file.path.clone(),
            source: ParquetError::ArrowError(err.to_string()),
        })?;
        let mask = ProjectionMask::roots(
            self.metadata.metadata().file_metadata().schema_descr(),
            indices,
        );
        Ok((Arc::new(projected), mask))
    }

    /// Decodes the projected columns in a background task, sending batches through a bounded
    /// channel (read-ahead of `ahead` batches while the caller encodes and writes).
    pub fn stream(
        self,
        mask: ProjectionMask,
        ahead: usize,
    ) -> mpsc::Receiver<Result<RecordBatch, FileError>> {
        let (tx, rx) = mpsc::channel(ahead.max(1));
        let path = self.file.path.clone();
        tokio::spawn(async move {
            let built =
                ParquetRecordBatchStreamBuilder::new_with_metadata(self.reader, self.metadata)
                    .with_projection(mask)
                    .with_batch_size(BATCH_ROWS)
                    .build();
            let mut stream = match built {
                Ok(stream) => stream,
                Err(source) => {
                    let _ = tx.send(Err(FileError::from_parquet(path, source))).await;
                    return;
                }
            };
            while let Some(item) = stream.next().await {
                // A store error under the decoder (a page that could not be fetched) is a read
                // failure, not a broken file.
                let item = item.map_err(|source| FileError::from_parquet(path.as_str(), source));
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        rx
    }
}

/// Opens a file and reads its footer. A file that is not Parquet fails here, naming it.
pub async fn open_file(operator: &Operator, file: &DataFile) -> Result<OpenedFile, FileError> {
    let mut reader = OpendalFileReader::open(operator, &file.path, file.size)
        .await
        .map_err(|source| FileError::read(file.path.as_str(), source))?;
    let options = ArrowReaderOptions::new();
    let metadata = ArrowReaderMetadata::load_async(&mut reader, options.clone())
        .await
        .map_err(|source| FileError::from_parquet(file.path.as_str(), source))?;
    let metadata = match repaired_footer(metadata.metadata()) {
        Some(repaired) => ArrowReaderMetadata::try_new(Arc::new(repaired), options)
            .map_err(|source| FileError::from_parquet(file.path.as_str(), source))?,
        None => metadata,
    };
    Ok(OpenedFile {
        file: file.clone(),
        reader,
        metadata,
    })
}

/// The rows of every row group of a file.
pub fn row_group_rows(metadata: &ParquetMetaData) -> u64 {
    metadata
        .row_groups()
        .iter()
        .map(|group| group.num_rows().max(0) as u64)
        .sum()
}

/// The footer repaired where the parquet crate would misread it, or `None` when it is sound:
///
/// - The file-level `num_rows` disagrees with the sum of the row groups' (parquet-testing's
///   `repeated_no_annotation.parquet` says 0 for a row group of 6): the parquet crate caps its
///   batch size at the file-level count, so with 0 it decodes no row at all. The row groups are
///   what is read: their sum replaces it.
/// - A `dictionary_page_offset` that cannot point at a dictionary page. parquet-mr before 1.11
///   wrote 0 for column chunks without one (parquet-testing's `dict-page-offset-zero.parquet`);
///   the parquet crate takes it at its word and starts reading the chunk at byte 0 (the `PAR1`
///   magic), which fails with a thrift error such as "Expected list element type of I64 but got
///   I16". parquet-mr, and parquet-cpp since PARQUET-1402 (so pyarrow), use the offset only when
///   it lies between the magic and the first data page, and otherwise read the chunk from its
///   first data page (a dictionary page found there is still read first): the same is done here.
fn repaired_footer(metadata: &ParquetMetaData) -> Option<ParquetMetaData> {
    let bogus = |column: &ColumnChunkMetaData| {
        column
            .dictionary_page_offset()
            .is_some_and(|offset| offset < 4 || offset >= column.data_page_offset())
    };
    let rows = row_group_rows(metadata);
    let file = metadata.file_metadata();
    let wrong_rows = u64::try_from(file.num_rows()).ok() != Some(rows);
    let any_bogus = metadata
        .row_groups()
        .iter()
        .any(|group| group.columns().iter().any(bogus));
    if !wrong_rows && !any_bogus {
        return None;
    }
    let mut old = metadata.clone().into_builder();
    let mut row_groups = old.take_row_groups();
    for group in &mut row_groups {
        for column in group.columns_mut() {
            if bogus(column) {
                // Building cannot fail: only the dictionary offset changes.
                if let Ok(repaired) = column
                    .clone()
                    .into_builder()
                    .set_dictionary_page_offset(None)
                    .build()
                {
                    *column = repaired;
                }
            }
        }
    }
    let file = FileMetaData::new(
        file.version(),
        i64::try_from(rows).unwrap_or(i64::MAX),
        file.created_by().map(str::to_string),
        file.key_value_metadata().cloned(),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    Some(
        ParquetMetaDataBuilder::new(file)
            .set_row_groups(row_groups)
            .set_page_index(old.take_page_index())
            .build(),
    )
}
