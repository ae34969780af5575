//! coldsync keeps a shared Redis "cold KV" filled with the cold partitions (T+2 and older) of
//! Hive-partitioned Parquet tables in object storage, so streaming lookups that miss their state
//! find history there.
//!
//! # Layout
//! In the order the data flows (the README's "Layout" says the same with each file):
//! - [`config`]: the TOML file, validated into typed options (secrets from the environment):
//!   `raw` structs, `secret`, `source`, `redis`, `tables`.
//! - [`source`]: the opendal operator for the object store.
//! - [`catalog`]: where a table's partitions come from (listed Hive directories, a Hive
//!   Metastore, Iceberg, Delta Lake): one `discover` for every command; locations mapped to the
//!   store.
//! - [`listing`]: lists a table root into date partitions, their data files and markers.
//! - [`plan`]: classifies partitions (loaded, pending, changed, incomplete, hot, expired, ...).
//! - [`reader`]: async Parquet reading over opendal, footers first, only the needed columns.
//! - [`template`]: key templates such as `cold:orders:{order_id}`.
//! - [`encode`]: Arrow rows to key and value bytes in the reader layouts (json, hash, column,
//!   delimited): the row encoder and the per-type writers (`scalar`, `temporal`, `nested`).
//! - [`redis`]: everything that talks to Redis: write commands, scripts, the bounded reply reader,
//!   connections (`Connector`), the pipelined bulk write session, the control client.
//! - [`ledger`]: what was loaded (fingerprints, counts, watermark), kept in Redis itself.
//! - [`lease`]: one run at a time per table (or shard), across pods, in Redis beside the ledger.
//! - [`load`]: loads one partition end to end.
//! - [`export`]: the RESP stream of a partition, for `redis-cli --pipe`.
//! - [`run`]: a whole run: plan every table, load, record, summarize (typed outcomes, counters,
//!   calendar, watermark, retries); also the read-only reports `plan`, `status`, `check`.
//! - [`verify`]: `verify` and `verify_sample`: partitions re-read, encoded as a load does, and
//!   compared with what Redis holds.
//! - [`retire`]: `retire`: the keys of an old layout deleted, derived from its ledger.
//! - [`signals`]: SIGTERM and Ctrl-C cancel the run (the partition in progress is not recorded).
//! - [`throttle`]: write-rate limits and the adaptive back-off that keeps readers fast.
//! - [`daemon`]: the cron-scheduled daemon.
//! - [`logging`]: structured log setup.
//! - [`error`]: typed errors.

pub mod catalog;
pub mod config;
pub mod daemon;
pub mod encode;
pub mod error;
pub mod export;
pub mod lease;
pub mod ledger;
pub mod listing;
pub mod load;
pub mod logging;
pub mod plan;
pub mod reader;
pub mod redis;
pub mod retire;
pub mod run;
pub mod signals;
pub mod source;
pub mod template;
pub mod throttle;
pub mod verify;
