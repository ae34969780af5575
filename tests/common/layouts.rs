//! Files on disk and the Hive/Spark partition layouts tests build: part files, `_SUCCESS`
//! markers, `.crc` siblings and the junk of unfinished jobs, in memory first
//! ([`HiveTableFixture`]), then written to a local dir or through opendal.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use arrow_array::RecordBatch;
use parquet::basic::Compression;

use super::{orders_batch, parquet_bytes};

/// Writes `bytes` to `root/rel`, creating parent directories.
pub fn write_file(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Writes an empty `root/dir_rel/_SUCCESS` marker (`dir_rel` may be `""`).
pub fn write_success(root: &Path, dir_rel: &str) {
    write_file(root, &join_rel(dir_rel, "_SUCCESS"), b"");
}

/// Lists all regular files under `root` as sorted `/`-separated relative paths.
pub fn list_files(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap();
                let parts: Vec<_> = rel
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Joins two relative path fragments with `/`, ignoring empty ones.
pub fn join_rel(a: &str, b: &str) -> String {
    let a = a.trim_matches('/');
    let b = b.trim_matches('/');
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// Hive partition path: `partition_path("dt", "2026-11-20", &[("hour", "03")])`
/// == `"dt=2026-11-20/hour=03"`.
pub fn partition_path(col: &str, value: &str, sub: &[(&str, &str)]) -> String {
    let mut p = format!("{col}={value}");
    for (k, v) in sub {
        p.push_str(&format!("/{k}={v}"));
    }
    p
}

/// What a fixture file is, so tests can compute expectations
/// (only [`FileKind::Data`] files are valid Parquet that a loader should read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// A valid Parquet data file.
    Data,
    /// An empty `_SUCCESS` marker.
    Success,
    /// A Hadoop `.xxx.crc` checksum sibling (not Parquet).
    Checksum,
    /// Leftovers of failed / in-flight jobs (`_temporary/...`, `.hive-staging...`);
    /// NOT valid Parquet (some start with the `PAR1` magic to trap naive readers).
    Junk,
}

/// One file of a [`HiveTableFixture`].
#[derive(Clone, Debug)]
pub struct FixtureFile {
    pub kind: FileKind,
    pub bytes: Vec<u8>,
}

/// Where a Spark-style write puts its `_SUCCESS` marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuccessMarker {
    /// No marker (job still running or crashed).
    None,
    /// `<table>/<partition>/_SUCCESS` (job wrote straight into the partition dir).
    Partition,
    /// `<table>/_SUCCESS` (`df.write.partitionBy(..)` of the whole table).
    TableRoot,
}

/// Options of [`HiveTableFixture::spark_partition_with`].
#[derive(Clone, Debug)]
pub struct SparkOptions {
    /// Default [`SuccessMarker::Partition`].
    pub success: SuccessMarker,
    /// Write `.part-....crc` (and `._SUCCESS.crc`) siblings. Default true.
    pub crc: bool,
    /// Write `<partition>/_temporary/0/_temporary/attempt_.../part-00000.parquet` junk. Default true.
    pub temporary_junk: bool,
    /// Max rows per row group. Default 4.
    pub row_group_rows: usize,
}

impl Default for SparkOptions {
    fn default() -> Self {
        SparkOptions {
            success: SuccessMarker::Partition,
            crc: true,
            temporary_junk: true,
            row_group_rows: 4,
        }
    }
}

/// Options of [`HiveTableFixture::hive_partition_with`].
#[derive(Clone, Debug)]
pub struct HiveOptions {
    /// Write a `<partition>/.hive-staging_hive_.../-ext-10000/000000_0` garbage file. Default true.
    pub staging_junk: bool,
    /// Default `Compression::SNAPPY`.
    pub compression: Compression,
    /// Max rows per row group. Default 4.
    pub row_group_rows: usize,
}

impl Default for HiveOptions {
    fn default() -> Self {
        HiveOptions {
            staging_junk: true,
            compression: Compression::SNAPPY,
            row_group_rows: 4,
        }
    }
}

/// Default Spark job UUID used in part-file names.
pub const SPARK_JOB_UUID: &str = "5f0c6a8e-2b1d-4c3e-9a7f-0123456789ab";
/// Spark `_temporary` attempt dir name used for junk.
pub const SPARK_ATTEMPT: &str = "attempt_202611200301000000000_0000_m_000000_0";
/// Hive staging dir name used for junk.
pub const HIVE_STAGING_DIR: &str =
    ".hive-staging_hive_2026-11-20_03-15-42_123_4567890123456789012-1";
/// Contents of the `_temporary` junk file (starts with `PAR1` but has no footer).
pub const SPARK_TEMPORARY_JUNK: &[u8] =
    b"PAR1 truncated: leftover of a failed Spark task attempt\n";
/// Contents of the Hive staging junk file.
pub const HIVE_STAGING_JUNK: &[u8] = b"garbage from an unfinished hive INSERT OVERWRITE\n";

/// An in-memory Hive-partitioned table: a sorted map of
/// `relative path -> (kind, bytes)` that can be written to a local directory
/// ([`HiveTableFixture::write_local`]) or through an opendal operator
/// ([`HiveTableFixture::write_to`]).
///
/// All paths are relative to the fixture root and start with `table` (unless
/// `table` is empty). Adding a path twice replaces the earlier file.
///
/// Spark-style partition (`spark_partition`, defaults), for batch `i`:
/// ```text
/// <table>/<partition>/part-0000i-<job_uuid>-c000.snappy.parquet      Data (snappy)
/// <table>/<partition>/.part-0000i-<job_uuid>-c000.snappy.parquet.crc Checksum
/// <table>/<partition>/_SUCCESS                                       Success
/// <table>/<partition>/._SUCCESS.crc                                  Checksum
/// <table>/<partition>/_temporary/0/_temporary/<SPARK_ATTEMPT>/part-00000.parquet  Junk
/// ```
/// Hive-style partition (`hive_partition`, defaults), for batch `i`:
/// ```text
/// <table>/<partition>/00000i_0                                       Data
/// <table>/<partition>/<HIVE_STAGING_DIR>/-ext-10000/000000_0         Junk
/// ```
#[derive(Clone, Debug)]
pub struct HiveTableFixture {
    /// Table directory relative to the fixture root (e.g. `"warehouse/orders"`), may be `""`.
    pub table: String,
    /// UUID used in Spark part-file names (default [`SPARK_JOB_UUID`]).
    pub job_uuid: String,
    files: BTreeMap<String, FixtureFile>,
}

impl HiveTableFixture {
    /// Empty fixture for table directory `table` (may be `""`).
    pub fn new(table: &str) -> Self {
        HiveTableFixture {
            table: table.trim_matches('/').to_string(),
            job_uuid: SPARK_JOB_UUID.to_string(),
            files: BTreeMap::new(),
        }
    }

    /// `<table>/<rel>` (or `rel` if the table dir is empty).
    pub fn table_path(&self, rel: &str) -> String {
        join_rel(&self.table, rel)
    }

    /// Spark part-file name for batch index `i`.
    pub fn spark_file_name(&self, i: usize) -> String {
        format!("part-{i:05}-{}-c000.snappy.parquet", self.job_uuid)
    }

    /// Hive file name for batch index `i` (`000000_0`, `000001_0`, ...).
    pub fn hive_file_name(i: usize) -> String {
        format!("{i:06}_0")
    }

    /// Adds a file at `path` (relative to the fixture root, NOT table-prefixed).
    pub fn add_file(&mut self, path: &str, bytes: Vec<u8>, kind: FileKind) -> &mut Self {
        self.files.insert(
            path.trim_matches('/').to_string(),
            FixtureFile { kind, bytes },
        );
        self
    }

    /// Spark-style partition with [`SparkOptions::default`]: one part file per batch.
    /// `partition` is e.g. `"dt=2026-11-20"` or `"dt=20261120/hour=03"`
    /// (see [`partition_path`]). Empty `batches` = a partition with only markers.
    pub fn spark_partition(&mut self, partition: &str, batches: &[RecordBatch]) -> &mut Self {
        self.spark_partition_with(partition, batches, &SparkOptions::default())
    }

    /// Spark-style partition with explicit options.
    pub fn spark_partition_with(
        &mut self,
        partition: &str,
        batches: &[RecordBatch],
        opts: &SparkOptions,
    ) -> &mut Self {
        let pdir = self.table_path(partition);
        for (i, b) in batches.iter().enumerate() {
            let name = self.spark_file_name(i);
            let data = parquet_bytes(b, opts.row_group_rows, Compression::SNAPPY);
            if opts.crc {
                let crc = fake_crc(&data);
                self.add_file(
                    &join_rel(&pdir, &format!(".{name}.crc")),
                    crc,
                    FileKind::Checksum,
                );
            }
            self.add_file(&join_rel(&pdir, &name), data, FileKind::Data);
        }
        let success_dir = match opts.success {
            SuccessMarker::None => None,
            SuccessMarker::Partition => Some(pdir.clone()),
            SuccessMarker::TableRoot => Some(self.table.clone()),
        };
        if let Some(d) = success_dir {
            self.add_file(&join_rel(&d, "_SUCCESS"), Vec::new(), FileKind::Success);
            if opts.crc {
                self.add_file(
                    &join_rel(&d, "._SUCCESS.crc"),
                    fake_crc(&[]),
                    FileKind::Checksum,
                );
            }
        }
        if opts.temporary_junk {
            let junk = join_rel(
                &pdir,
                &format!("_temporary/0/_temporary/{SPARK_ATTEMPT}/part-00000.parquet"),
            );
            self.add_file(&junk, SPARK_TEMPORARY_JUNK.to_vec(), FileKind::Junk);
        }
        self
    }

    /// Hive-style partition with [`HiveOptions::default`]: files `000000_0`, `000001_0`, ...
    pub fn hive_partition(&mut self, partition: &str, batches: &[RecordBatch]) -> &mut Self {
        self.hive_partition_with(partition, batches, &HiveOptions::default())
    }

    /// Hive-style partition with explicit options.
    pub fn hive_partition_with(
        &mut self,
        partition: &str,
        batches: &[RecordBatch],
        opts: &HiveOptions,
    ) -> &mut Self {
        let pdir = self.table_path(partition);
        for (i, b) in batches.iter().enumerate() {
            let data = parquet_bytes(b, opts.row_group_rows, opts.compression);
            self.add_file(
                &join_rel(&pdir, &Self::hive_file_name(i)),
                data,
                FileKind::Data,
            );
        }
        if opts.staging_junk {
            let junk = join_rel(&pdir, &format!("{HIVE_STAGING_DIR}/-ext-10000/000000_0"));
            self.add_file(&junk, HIVE_STAGING_JUNK.to_vec(), FileKind::Junk);
        }
        self
    }

    /// Adds `<table>/_SUCCESS`.
    pub fn table_success(&mut self) -> &mut Self {
        let p = self.table_path("_SUCCESS");
        self.add_file(&p, Vec::new(), FileKind::Success)
    }

    /// All files, sorted by path.
    pub fn files(&self) -> &BTreeMap<String, FixtureFile> {
        &self.files
    }

    /// All paths, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// Sorted paths of files of `kind`.
    pub fn paths_of(&self, kind: FileKind) -> Vec<String> {
        self.files
            .iter()
            .filter(|(_, f)| f.kind == kind)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Sorted paths of the valid Parquet data files.
    pub fn data_files(&self) -> Vec<String> {
        self.paths_of(FileKind::Data)
    }

    /// Total bytes of the data files whose path starts with `prefix`.
    pub fn data_bytes_under(&self, prefix: &str) -> u64 {
        self.files
            .iter()
            .filter(|(p, f)| f.kind == FileKind::Data && p.starts_with(prefix))
            .map(|(_, f)| f.bytes.len() as u64)
            .sum()
    }

    /// Writes every file under `root`.
    pub fn write_local(&self, root: &Path) {
        for (p, f) in &self.files {
            write_file(root, p, &f.bytes);
        }
    }

    /// Writes every file through `op` (paths relative to the operator root).
    pub async fn write_to(&self, op: &opendal::Operator) {
        for (p, f) in &self.files {
            op.write(p, f.bytes.clone())
                .await
                .unwrap_or_else(|e| panic!("opendal write {p}: {e}"));
        }
    }
}

/// Bytes that look like a Hadoop `.crc` file (`crc\0` + chunk size + a checksum);
/// not a real CRC, just plausible non-Parquet content.
fn fake_crc(data: &[u8]) -> Vec<u8> {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    let mut out = b"crc\0".to_vec();
    out.extend_from_slice(&512u32.to_be_bytes());
    out.extend_from_slice(&h.to_be_bytes());
    out
}

/// Spark table `warehouse/orders`: 11-19 (2 files, ids 1..4 "a"), 11-20 (2 files, ids 5,6 and 4
/// "b"), 11-21 (id 7 "c"). All with _SUCCESS, .crc siblings and `_temporary` junk.
pub fn spark_orders_table() -> HiveTableFixture {
    let mut fx = HiveTableFixture::new("warehouse/orders");
    fx.spark_partition(
        "dt=2026-11-19",
        &[orders_batch(&[1, 2, 3], "a"), orders_batch(&[4], "a")],
    )
    .spark_partition(
        "dt=2026-11-20",
        &[orders_batch(&[5, 6], "b"), orders_batch(&[4], "b")],
    )
    .spark_partition("dt=2026-11-21", &[orders_batch(&[7], "c")]);
    fx
}

/// Hive table `warehouse/orders_hive` (`%Y%m%d`, hour sub-partitions, staging junk, no markers):
/// 20261119/hour=03 ids 100,101 "h"; 20261120/hour=03 id 102 "i"; 20261120/hour=04 ids 103,100 "j".
pub fn hive_hourly_orders_table() -> HiveTableFixture {
    let mut fx = HiveTableFixture::new("warehouse/orders_hive");
    fx.hive_partition(
        &partition_path("dt", "20261119", &[("hour", "03")]),
        &[orders_batch(&[100, 101], "h")],
    )
    .hive_partition(
        &partition_path("dt", "20261120", &[("hour", "03")]),
        &[orders_batch(&[102], "i")],
    )
    .hive_partition(
        &partition_path("dt", "20261120", &[("hour", "04")]),
        &[orders_batch(&[103, 100], "j")],
    );
    fx
}
