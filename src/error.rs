//! Typed errors of the library, each carrying the identity of what failed (option, file, table,
//! partition, key) and whether retrying can help.

use std::path::PathBuf;

use crate::encode::EncodeError;

/// The configuration file is missing, malformed or invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown options.
    #[error("config file {path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// What the parser said, with line and option.
        message: String,
    },
    /// An option has an invalid value.
    #[error("option {option}: {message}")]
    Invalid {
        /// Dotted path of the option, e.g. `tables[0] (orders).key`.
        option: String,
        /// What is wrong.
        message: String,
    },
}

/// The object store could not be built, listed or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The opendal operator could not be built from `[source]`.
    #[error("cannot set up the {scheme} source: {source}")]
    Build {
        /// opendal scheme.
        scheme: String,
        /// opendal's error.
        #[source]
        source: opendal::Error,
    },
    /// Listing a directory failed.
    #[error("cannot list {path}{}: {source}", status_note(*.status))]
    List {
        /// The directory.
        path: String,
        /// HTTP status of the store's response, when there was one.
        status: Option<u16>,
        /// opendal's error.
        #[source]
        source: opendal::Error,
    },
    /// The table root does not exist in the store: a configuration error of that table (an
    /// existing but empty root is fine: no partitions yet).
    #[error("the table root {path} does not exist in the {scheme} source (check the table's path and the source's root or bucket)")]
    TableRootMissing {
        /// The table.
        table: String,
        /// The table root, relative to the source root.
        path: String,
        /// opendal scheme.
        scheme: String,
    },
    /// The table's catalog (a Hive Metastore, an Iceberg REST catalog) failed or refused.
    #[error("table {table}: the {catalog} catalog at {endpoint}: {message}")]
    Catalog {
        /// The table.
        table: String,
        /// `hive_metastore` or `rest`.
        catalog: &'static str,
        /// The URI asked.
        endpoint: String,
        /// What happened.
        message: String,
        /// True when asking again later may succeed (connection refused, timeout, 5xx).
        transient: bool,
    },
    /// The table's own metadata (an Iceberg metadata file or manifest, a Delta log entry or
    /// checkpoint) is missing, unreadable or not what its format says.
    #[error("table {table}: {path}: {message}")]
    Metadata {
        /// The table.
        table: String,
        /// The metadata file, as named by the table.
        path: String,
        /// What is wrong.
        message: String,
        /// True when reading again later may succeed (a store failure, not a bad file).
        transient: bool,
    },
    /// A location the catalog or metadata names is not in the configured store.
    #[error(
        "table {table}: location {location} is not in the configured store ({store}): {reason}"
    )]
    Location {
        /// The table.
        table: String,
        /// The location as named.
        location: String,
        /// The store, described (`s3 bucket lake, root /`).
        store: String,
        /// Why it does not map.
        reason: String,
    },
    /// The table needs a feature coldsync does not read (a Delta reader feature, an Iceberg
    /// format version): nothing of it is loaded.
    #[error("table {table}: {message}")]
    Unsupported {
        /// The table.
        table: String,
        /// What is not supported, and what to do.
        message: String,
    },
}

impl SourceError {
    /// The error of listing `path`, classified once (see [`crate::source::is_transient`]).
    pub fn list(path: String, source: opendal::Error) -> SourceError {
        SourceError::List {
            path,
            status: crate::source::http_status(&source),
            source,
        }
    }

    /// True when retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Build { .. }
            | SourceError::TableRootMissing { .. }
            | SourceError::Location { .. }
            | SourceError::Unsupported { .. } => false,
            SourceError::Catalog { transient, .. } | SourceError::Metadata { transient, .. } => {
                *transient
            }
            SourceError::List { source, .. } => crate::source::is_transient(source),
        }
    }
}

/// ` (HTTP status 503)` when the store answered with a status, else nothing.
fn status_note(status: Option<u16>) -> String {
    status.map_or_else(String::new, |status| format!(" (HTTP status {status})"))
}

/// One Parquet file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading bytes from the store failed (also in the middle of a file, under the decoder): a
    /// store failure, not a broken file.
    #[error("file {path}: cannot read from the object store{}: {source}", status_note(*.status))]
    Read {
        /// Path of the file in the store.
        path: String,
        /// HTTP status of the store's response, when there was one.
        status: Option<u16>,
        /// opendal's error.
        #[source]
        source: opendal::Error,
    },
    /// The file is not valid Parquet, or a page cannot be decoded.
    #[error("file {path}: not readable as parquet: {source}")]
    Parquet {
        /// Path of the file in the store.
        path: String,
        /// parquet's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// The decoder ended before the rows the footer announces (a reader task died).
    #[error("file {path}: decoded {decoded} rows but the footer has {expected}")]
    Truncated {
        /// Path of the file in the store.
        path: String,
        /// Rows decoded.
        decoded: u64,
        /// Rows in the footer.
        expected: u64,
    },
    /// A column is missing or of a type that cannot be encoded.
    #[error("file {path}: {source}")]
    Schema {
        /// Path of the file in the store.
        path: String,
        /// What is wrong with the column.
        #[source]
        source: EncodeError,
    },
}

impl FileError {
    /// A failed read of `path` from the store.
    pub fn read(path: impl Into<String>, source: opendal::Error) -> FileError {
        FileError::Read {
            path: path.into(),
            status: crate::source::http_status(&source),
            source,
        }
    }

    /// An error of the parquet reader for `path`: a store error it passed through (the footer or
    /// a page could not be fetched) is a [`FileError::Read`], anything else a
    /// [`FileError::Parquet`].
    pub fn from_parquet(
        path: impl Into<String>,
        source: parquet::errors::ParquetError,
    ) -> FileError {
        use parquet::errors::ParquetError;
        let path = path.into();
        match source {
            ParquetError::External(inner) => match inner.downcast::<opendal::Error>() {
                Ok(store) => FileError::read(path, *store),
                Err(inner) => FileError::Parquet {
                    path,
                    source: ParquetError::External(inner),
                },
            },
            source => FileError::Parquet { path, source },
        }
    }

    /// True when reading the file again may succeed (a transient store failure).
    pub fn is_transient(&self) -> bool {
        match self {
            FileError::Read { source, .. } => crate::source::is_transient(source),
            _ => false,
        }
    }
}

/// Writing to or reading from Redis failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Connecting, TLS or the handshake failed.
    #[error("cannot connect to redis at {addr}: {message}")]
    Connect {
        /// Masked address.
        addr: String,
        /// What failed.
        message: String,
        /// True when it may succeed later (refused, timeout).
        transient: bool,
    },
    /// The connection broke while writing or reading.
    #[error("redis connection failed: {source}")]
    Io {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No reply within the configured timeout.
    #[error("redis did not reply within {seconds}s")]
    Timeout {
        /// The timeout.
        seconds: u64,
    },
    /// Redis answered a command with an error.
    #[error("redis refused the write of key {key:?}: {message}")]
    Reply {
        /// The key of the refused command.
        key: String,
        /// The server's error line, e.g. `OOM command not allowed ...`.
        message: String,
    },
    /// The ACL user may not send `command` (on `key`): a permission to grant (see the README's
    /// loader rule), never worth a retry.
    #[error(
        "redis denied {command}{}: the ACL user lacks a permission ({message})",
        on_key(key)
    )]
    NoPermission {
        /// The command refused (`EVALSHA`: one its script called may be the one refused).
        command: String,
        /// Its key (empty for a command without one).
        key: String,
        /// The server's error line.
        message: String,
    },
    /// The server sent something that is not a valid reply.
    #[error("redis protocol error: {0}")]
    Protocol(String),
    /// A Redis Cluster node could not take a write (after following its redirections within the
    /// reconnect budget), or the topology could not be read.
    #[error(
        "redis cluster node {node}{}: {message}",
        slot.map(|s| format!(" (slot {s})")).unwrap_or_default()
    )]
    Cluster {
        /// The node (`host:port`).
        node: String,
        /// The slot of the write, when known.
        slot: Option<u16>,
        /// What went wrong.
        message: String,
        /// True when it may succeed later (a failover in progress, a node unreachable).
        transient: bool,
    },
    /// `WAIT` (`[redis] wait_replicas`): fewer replicas than asked acknowledged a batch in time.
    #[error(
        "only {acked} of {wanted} replicas acknowledged the writes in time (redis.wait_replicas)"
    )]
    NotReplicated {
        /// Replicas that acknowledged.
        acked: i64,
        /// `wait_replicas`.
        wanted: usize,
    },
    /// An error from the redis client used for control commands (ledger, INFO, scripts).
    #[error("redis command failed: {0}")]
    Client(#[from] ::redis::RedisError),
    /// Recording a partition in the ledger failed; the attempt was settled (no entry of it left,
    /// a late arrival of it fenced) unless `settled` is false.
    #[error(
        "recording {table} {date} in the ledger failed: {source}; {}",
        if *settled {
            "no entry of it was left"
        } else {
            "settling it failed too: the ledger may hold its entry"
        }
    )]
    Record {
        /// The table.
        table: String,
        /// The partition date.
        date: String,
        /// True when the attempt was settled.
        settled: bool,
        /// Why the record failed.
        #[source]
        source: Box<RedisError>,
    },
}

/// Server error codes that mean "not now": retrying later may succeed.
const TRANSIENT_SERVER_ERRORS: [&str; 5] =
    ["LOADING", "TRYAGAIN", "BUSY", "MASTERDOWN", "CLUSTERDOWN"];

/// True when a server error line (`LOADING Redis is loading ...`) is worth a retry.
pub fn is_transient_server_error(message: &str) -> bool {
    TRANSIENT_SERVER_ERRORS
        .iter()
        .any(|code| message.split(' ').next() == Some(code))
}

/// ` on key "k"`, or nothing for a command without a key.
fn on_key(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!(" on key {key:?}")
    }
}

/// True when a server error is an ACL refusal: `NOPERM ...` for a command sent directly, `ERR
/// The user executing the script can't ...` for one a Lua script called.
pub fn is_permission_error(message: &str) -> bool {
    message.contains("NOPERM")
        || message.contains("no permissions")
        || message.contains("The user executing the script can't")
}

impl RedisError {
    /// The error of a server error reply to `command` on `key`: [`RedisError::NoPermission`]
    /// for an ACL refusal, else [`RedisError::Reply`].
    pub fn refused(
        command: impl Into<String>,
        key: impl Into<String>,
        message: String,
    ) -> RedisError {
        if is_permission_error(&message) {
            RedisError::NoPermission {
                command: command.into(),
                key: key.into(),
                message,
            }
        } else {
            RedisError::Reply {
                key: key.into(),
                message,
            }
        }
    }

    /// True for failures worth a retry: I/O, timeouts, dropped connections, LOADING/TRYAGAIN/BUSY.
    /// OOM, WRONGTYPE, NOAUTH, NOPERM and protocol errors are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            RedisError::Connect { transient, .. } => *transient,
            RedisError::Io { .. } | RedisError::Timeout { .. } => true,
            RedisError::Reply { message, .. } => is_transient_server_error(message),
            RedisError::Protocol(_) | RedisError::NoPermission { .. } => false,
            RedisError::Cluster { transient, .. } => *transient,
            RedisError::NotReplicated { .. } => true,
            RedisError::Client(err) => {
                err.is_io_error()
                    || err.is_timeout()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.code().is_some_and(is_transient_server_error)
            }
            RedisError::Record { source, .. } => source.is_transient(),
        }
    }
}

/// Loading one partition failed; nothing of it was recorded as loaded.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// A file of the partition is unusable.
    #[error(transparent)]
    File(#[from] FileError),
    /// The object store failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// Too many rows had a null or empty key column: the partition is not recorded (an upstream
    /// schema change that empties the key would otherwise remove a day from every reader).
    #[error("{skipped_null_keys} of {rows} rows have a null or empty key column, more than max_skipped_ratio = {max_skipped_ratio} allows: not recorded (keys already written stay)")]
    TooManySkippedKeys {
        /// Rows read.
        rows: u64,
        /// Rows skipped for their key.
        skipped_null_keys: u64,
        /// The table's `max_skipped_ratio`.
        max_skipped_ratio: f64,
    },
    /// `verify_sample`: rows read back from Redis right after the load did not match what the
    /// load wrote, so the partition is not recorded (the next run loads it again).
    #[error("verify_sample: {mismatched} of {sampled} sampled keys do not match after the load (first: {example}): not recorded")]
    VerifyFailed {
        /// Keys sampled.
        sampled: u64,
        /// Keys missing, different or with a wrong expiry.
        mismatched: u64,
        /// The first mismatch: kind, key, expected and found (shortened).
        example: String,
    },
    /// The table's format marks the partition as one coldsync cannot read correctly (an
    /// Iceberg delete file, a Delta deletion vector): refused before writing anything.
    #[error("refused: {reason}")]
    Refused {
        /// Why, naming the file or feature.
        reason: String,
    },
    /// The load was cancelled (shutdown).
    #[error("cancelled before the partition was fully written")]
    Cancelled,
    /// The run lost the table's lease while loading it: it stopped, nothing more was recorded.
    #[error("the lease on table {table} was lost: stopped before writing more, not recorded")]
    LeaseLost {
        /// The table.
        table: String,
    },
    /// A task doing part of the partition's work panicked or was aborted: a bug, not worth a retry.
    #[error("the task {work} {ending}")]
    TaskDied {
        /// What the task was doing, e.g. `reading and encoding the partition's rows`.
        work: &'static str,
        /// How it ended: `panicked: <the panic message>` or `was cancelled`.
        ending: String,
    },
}

impl PartitionError {
    /// True when the same load may succeed if retried.
    pub fn is_transient(&self) -> bool {
        match self {
            PartitionError::File(err) => err.is_transient(),
            PartitionError::Source(err) => err.is_transient(),
            PartitionError::Redis(err) => err.is_transient(),
            PartitionError::Cancelled
            | PartitionError::Refused { .. }
            | PartitionError::LeaseLost { .. }
            | PartitionError::TaskDied { .. }
            | PartitionError::TooManySkippedKeys { .. }
            | PartitionError::VerifyFailed { .. } => false,
        }
    }

    /// The error of a task doing `work` for the partition that ended without a result.
    pub fn task_died(work: &'static str, err: tokio::task::JoinError) -> PartitionError {
        let ending = match err.try_into_panic() {
            Ok(panic) => match panic.downcast::<String>() {
                Ok(message) => format!("panicked: {message}"),
                Err(panic) => match panic.downcast_ref::<&'static str>() {
                    Some(message) => format!("panicked: {message}"),
                    None => "panicked".to_string(),
                },
            },
            Err(_) => "was cancelled".to_string(),
        };
        PartitionError::TaskDied { work, ending }
    }

    /// The file at fault, when there is one.
    pub fn file(&self) -> Option<&str> {
        match self {
            PartitionError::File(FileError::Read { path, .. })
            | PartitionError::File(FileError::Parquet { path, .. })
            | PartitionError::File(FileError::Truncated { path, .. })
            | PartitionError::File(FileError::Schema { path, .. }) => Some(path),
            _ => None,
        }
    }
}
