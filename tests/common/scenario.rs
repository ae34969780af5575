//! The setup most engine tests repeat, so that a test says only what differs: a temp warehouse
//! (the fs source root) over the test's Redis, partitions written into it, the config text and an
//! `Engine` on both.
//!
//! ```ignore
//! let redis = RedisServer::start();
//! let scenario = Scenario::new(&redis);
//! scenario.spark("warehouse/orders", "dt=2026-11-20", &[orders_batch(&[1, 2], "a")]);
//! let engine = scenario.engine(&table_toml("orders", "warehouse/orders", "ord", "")).await;
//! ```
//!
//! The test starts (and owns) its Redis, so it can start it with arguments
//! ([`RedisServer::start_with_args`]) and inspect it directly.

use std::collections::HashMap;
use std::path::Path;

use arrow_array::RecordBatch;
use coldsync::config::Config;
use coldsync::run::Engine;
use tempfile::TempDir;

use super::{
    write_file, write_success, HiveTableFixture, RedisServer, SparkOptions, SuccessMarker,
};

/// An empty temp warehouse (removed when it drops) over the test's Redis.
pub struct Scenario<'r> {
    redis: &'r RedisServer,
    warehouse: TempDir,
}

impl<'r> Scenario<'r> {
    /// An empty warehouse whose config and engine use `redis`.
    pub fn new(redis: &'r RedisServer) -> Scenario<'r> {
        let warehouse = tempfile::Builder::new()
            .prefix("coldsync-warehouse-")
            .tempdir()
            .expect("create warehouse temp dir");
        Scenario { redis, warehouse }
    }

    /// The warehouse directory: the root of the fs source.
    pub fn root(&self) -> &Path {
        self.warehouse.path()
    }

    /// Writes `files` as `<table>/dt=<date>/part-00000.parquet`, `part-00001.parquet`, ... (in
    /// order, bytes as given: Parquet or not), then the partition's `_SUCCESS`.
    pub fn partition(&self, table: &str, date: &str, files: &[Vec<u8>]) -> &Self {
        let dir = format!("{table}/dt={date}");
        for (i, bytes) in files.iter().enumerate() {
            write_file(self.root(), &format!("{dir}/part-{i:05}.parquet"), bytes);
        }
        write_success(self.root(), &dir);
        self
    }

    /// Writes a Spark-style partition of `table` (see [`HiveTableFixture::spark_partition`]: one
    /// `part-*.snappy.parquet` per batch, `.crc` siblings, `_SUCCESS`, `_temporary` junk).
    /// `partition` is e.g. `"dt=2026-11-20"` or `"dt=2026-11-20/hour=03"`.
    pub fn spark(&self, table: &str, partition: &str, batches: &[RecordBatch]) -> &Self {
        self.spark_with(table, partition, batches, &SparkOptions::default())
    }

    /// [`Scenario::spark`] without any `_SUCCESS` marker (a job still writing, or crashed).
    pub fn spark_unmarked(&self, table: &str, partition: &str, batches: &[RecordBatch]) -> &Self {
        let opts = SparkOptions {
            success: SuccessMarker::None,
            ..SparkOptions::default()
        };
        self.spark_with(table, partition, batches, &opts)
    }

    fn spark_with(
        &self,
        table: &str,
        partition: &str,
        batches: &[RecordBatch],
        opts: &SparkOptions,
    ) -> &Self {
        HiveTableFixture::new(table)
            .spark_partition_with(partition, batches, opts)
            .write_local(self.root());
        self
    }

    /// The config text of [`fs_config_text`] for this warehouse and Redis.
    pub fn config_text(&self, tables: &str) -> String {
        fs_config_text(self.root(), self.redis, tables)
    }

    /// An engine on [`Scenario::config_text`]; panics with the text when the config is invalid.
    pub async fn engine(&self, tables: &str) -> Engine {
        fs_engine(self.root(), self.redis, tables).await
    }
}

/// Config text: an fs source at `root`, the test Redis, `retention_days = 30`, then `tables`.
pub fn fs_config_text(root: &Path, redis: &RedisServer, tables: &str) -> String {
    format!(
        "[source]\nscheme = \"fs\"\nroot = \"{}\"\n\n[redis]\nurl = \"redis://127.0.0.1:{}/0\"\n\n[defaults]\nretention_days = 30\n\n{tables}",
        root.display(),
        redis.port
    )
}

/// An engine on [`fs_config_text`]; panics with the text when the config is invalid.
pub async fn fs_engine(root: &Path, redis: &RedisServer, tables: &str) -> Engine {
    let text = fs_config_text(root, redis, tables);
    let config = Config::parse(&text, &HashMap::new())
        .unwrap_or_else(|e| panic!("config invalid: {e}\n{text}"));
    match Engine::connect(config).await {
        Ok(engine) => engine,
        Err(e) => panic!("engine connect failed: {e}"),
    }
}

/// `[[tables]]` block for table `name` at `path` with key `<prefix>:{order_id}`, then the `extra`
/// lines (e.g. `"value_format = \"hash\""`).
pub fn table_toml(name: &str, path: &str, prefix: &str, extra: &str) -> String {
    format!(
        "[[tables]]\nname = \"{name}\"\npath = \"{path}\"\nkey = \"{prefix}:{{order_id}}\"\n{extra}\n"
    )
}
