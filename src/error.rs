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
    #[error("cannot list {path}: {source}")]
    List {
        /// The directory.
        path: String,
        /// opendal's error.
        #[source]
        source: opendal::Error,
    },
}

impl SourceError {
    /// True when retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Build { .. } => false,
            SourceError::List { source, .. } => source.is_temporary(),
        }
    }
}

/// One Parquet file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading bytes from the store failed.
    #[error("file {path}: cannot read: {source}")]
    Read {
        /// Path of the file in the store.
        path: String,
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
    /// The server sent something that is not a valid reply.
    #[error("redis protocol error: {0}")]
    Protocol(String),
    /// An error from the redis client used for control commands (ledger, INFO, scripts).
    #[error("redis command failed: {0}")]
    Client(#[from] ::redis::RedisError),
}

impl RedisError {
    /// True for failures worth a retry: I/O, timeouts, dropped connections, LOADING/TRYAGAIN/BUSY.
    /// OOM, WRONGTYPE, NOAUTH, NOPERM and protocol errors are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            RedisError::Connect { transient, .. } => *transient,
            RedisError::Io { .. } | RedisError::Timeout { .. } => true,
            RedisError::Reply { message, .. } => {
                ["LOADING", "TRYAGAIN", "BUSY", "MASTERDOWN", "CLUSTERDOWN"]
                    .iter()
                    .any(|prefix| message.starts_with(prefix))
            }
            RedisError::Protocol(_) => false,
            RedisError::Client(err) => {
                err.is_io_error()
                    || err.is_timeout()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
            }
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
            PartitionError::File(FileError::Read { source, .. }) => source.is_temporary(),
            PartitionError::File(_) => false,
            PartitionError::Source(err) => err.is_transient(),
            PartitionError::Redis(err) => err.is_transient(),
            PartitionError::Cancelled
            | PartitionError::LeaseLost { .. }
            | PartitionError::TaskDied { .. } => false,
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
