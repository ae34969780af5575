//! A blocking Hive Metastore client: the Thrift binary protocol over a buffered TCP socket (what
//! a metastore serves by default, `hive.metastore.sasl.enabled = false`), with a connect timeout
//! and a read/write timeout on every call. No SASL/Kerberos, no framed transport, no TLS.
//!
//! Every failure is a [`CallError`] that says whether asking again later may help: the
//! connection (refused, reset, closed, timed out) and the metastore's `MetaException` (its own
//! back end failed) may; a `NoSuchObjectException`, an answer that is not Thrift and a Thrift
//! application error do not.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport};
use thrift::TransportErrorKind;

use super::thrift_gen::{
    MetaException, NoSuchObjectException, Partition, TThriftHiveMetastoreSyncClient, Table,
    ThriftHiveMetastoreSyncClient,
};

/// How long connecting to one address of a metastore may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the metastore may take to answer one call (a batch of partitions included).
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Partitions asked for per `get_partitions_by_names` call (Hive's own client asks for up to
/// `hive.metastore.batch.retrieve.max` = 300 at a time).
pub(super) const PARTITION_BATCH: usize = 100;

/// A failed connection or call, before it becomes a [`crate::error::SourceError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CallError {
    /// What happened, for the operator.
    pub message: String,
    /// True when asking again later may succeed.
    pub transient: bool,
    /// The metastore answered `NoSuchObjectException`.
    pub not_found: bool,
}

impl CallError {
    fn transient(message: String) -> CallError {
        CallError {
            message,
            transient: true,
            not_found: false,
        }
    }

    /// A permanent failure: asking again will not help.
    pub(super) fn refused(message: String) -> CallError {
        CallError {
            message,
            transient: false,
            not_found: false,
        }
    }
}

type Client = ThriftHiveMetastoreSyncClient<
    TBinaryInputProtocol<TBufferedReadTransport<TcpStream>>,
    TBinaryOutputProtocol<TBufferedWriteTransport<TcpStream>>,
>;

/// One open connection to a metastore.
pub(super) struct Session {
    client: Client,
}

impl Session {
    /// Connects to `uri` (`thrift://host:port`, checked by the config), trying each address the
    /// host resolves to.
    pub(super) fn connect(uri: &str) -> Result<Session, CallError> {
        let (host, port) = host_and_port(uri)
            .ok_or_else(|| CallError::refused(format!("{uri:?} is not thrift://host:port")))?;
        let addresses: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|err| CallError::transient(format!("cannot resolve {host}: {err}")))?
            .collect();
        let mut last = None;
        for address in &addresses {
            match TcpStream::connect_timeout(address, CONNECT_TIMEOUT) {
                Ok(stream) => return Session::over(stream),
                Err(err) => last = Some(err),
            }
        }
        Err(CallError::transient(match last {
            Some(err) if err.kind() == io::ErrorKind::TimedOut => format!(
                "cannot connect: no answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            ),
            Some(err) => format!("cannot connect: {err}"),
            None => format!("cannot connect: {host} resolves to no address"),
        }))
    }

    fn over(stream: TcpStream) -> Result<Session, CallError> {
        let setup =
            |err: io::Error| CallError::transient(format!("cannot set up the socket: {err}"));
        stream.set_read_timeout(Some(CALL_TIMEOUT)).map_err(setup)?;
        stream
            .set_write_timeout(Some(CALL_TIMEOUT))
            .map_err(setup)?;
        stream.set_nodelay(true).map_err(setup)?;
        let reader = stream.try_clone().map_err(setup)?;
        let input = TBinaryInputProtocol::new(TBufferedReadTransport::new(reader), true);
        let output = TBinaryOutputProtocol::new(TBufferedWriteTransport::new(stream), true);
        Ok(Session {
            client: ThriftHiveMetastoreSyncClient::new(input, output),
        })
    }

    /// `get_table(database, table)`.
    pub(super) fn table(&mut self, database: &str, table: &str) -> Result<Table, CallError> {
        self.client
            .get_table(database.to_string(), table.to_string())
            .map_err(|err| call_error("get_table", err))
    }

    /// `get_partition_names(database, table, -1)`: every partition's name (`dt=.../hour=...`).
    pub(super) fn partition_names(
        &mut self,
        database: &str,
        table: &str,
    ) -> Result<Vec<String>, CallError> {
        self.client
            .get_partition_names(database.to_string(), table.to_string(), -1)
            .map_err(|err| call_error("get_partition_names", err))
    }

    /// The partitions named `names`, [`PARTITION_BATCH`] per call. A name dropped meanwhile is
    /// simply absent from the answer.
    pub(super) fn partitions(
        &mut self,
        database: &str,
        table: &str,
        names: &[String],
    ) -> Result<Vec<Partition>, CallError> {
        let mut partitions = Vec::with_capacity(names.len());
        for batch in names.chunks(PARTITION_BATCH) {
            let answer = self
                .client
                .get_partitions_by_names(database.to_string(), table.to_string(), batch.to_vec())
                .map_err(|err| call_error("get_partitions_by_names", err))?;
            partitions.extend(answer);
        }
        Ok(partitions)
    }
}

/// `(host, port)` of `thrift://host:port` (`[::1]` without its brackets).
pub(super) fn host_and_port(uri: &str) -> Option<(&str, u16)> {
    let (host, port) = uri.strip_prefix("thrift://")?.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.trim_end_matches('/').parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

/// Classifies a failed call.
fn call_error(call: &str, err: thrift::Error) -> CallError {
    match err {
        thrift::Error::User(user) => {
            if let Some(missing) = user.downcast_ref::<NoSuchObjectException>() {
                return CallError {
                    message: format!(
                        "{call}: NoSuchObjectException: {}",
                        missing.message.as_deref().unwrap_or("")
                    ),
                    transient: false,
                    not_found: true,
                };
            }
            if let Some(meta) = user.downcast_ref::<MetaException>() {
                // The metastore's catch-all for its own failures (its database, its file system).
                return CallError::transient(format!(
                    "{call}: MetaException: {}",
                    meta.message.as_deref().unwrap_or("")
                ));
            }
            CallError::refused(format!("{call}: {user}"))
        }
        thrift::Error::Transport(transport) => {
            let message = match transport.kind {
                TransportErrorKind::TimedOut => format!(
                    "{call}: no answer within {}s",
                    CALL_TIMEOUT.as_secs()
                ),
                TransportErrorKind::EndOfFile => format!(
                    "{call}: the metastore closed the connection (one that requires SASL/Kerberos does so: coldsync does not speak SASL)"
                ),
                _ if is_timeout_text(&transport.message) => format!(
                    "{call}: no answer within {}s",
                    CALL_TIMEOUT.as_secs()
                ),
                _ => format!("{call}: {}", transport.message),
            };
            CallError::transient(message)
        }
        thrift::Error::Protocol(protocol) => CallError::refused(format!(
            "{call}: the answer is not the Thrift binary protocol ({protocol}): is this a Hive Metastore with a buffered (not framed) transport?"
        )),
        thrift::Error::Application(application) => {
            CallError::refused(format!("{call}: {application}"))
        }
    }
}

/// A read timeout surfaces as `WouldBlock` ("Resource temporarily unavailable") on Linux.
fn is_timeout_text(message: &str) -> bool {
    message.contains("temporarily unavailable") || message.contains("timed out")
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    #[test]
    fn uris_split_into_host_and_port() {
        assert_eq!(
            host_and_port("thrift://hms.internal:9083"),
            Some(("hms.internal", 9083))
        );
        assert_eq!(host_and_port("thrift://[::1]:9083"), Some(("::1", 9083)));
        assert_eq!(host_and_port("thrift://:9083"), None);
        assert_eq!(host_and_port("http://h:9083"), None);
        assert_eq!(host_and_port("thrift://h:x"), None);
    }

    #[test]
    fn a_refused_connection_is_transient() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let err = Session::connect(&format!("thrift://127.0.0.1:{port}"))
            .err()
            .expect("nothing listens");
        assert!(err.transient, "{err:?}");
        assert!(err.message.starts_with("cannot connect"), "{err:?}");
    }

    /// A server that reads the call, then answers `reply` and closes.
    fn one_answer(reply: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut call = [0u8; 256];
            let _ = socket.read(&mut call);
            let _ = socket.write_all(reply);
        });
        format!("thrift://127.0.0.1:{port}")
    }

    #[test]
    fn a_closed_connection_is_transient_and_mentions_sasl() {
        let uri = one_answer(b"");
        let err = Session::connect(&uri)
            .unwrap()
            .table("db", "t")
            .unwrap_err();
        assert!(err.transient, "{err:?}");
        assert!(err.message.contains("SASL"), "{err:?}");
    }

    #[test]
    fn an_answer_that_is_not_thrift_is_permanent() {
        let uri = one_answer(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        let err = Session::connect(&uri)
            .unwrap()
            .table("db", "t")
            .unwrap_err();
        assert!(!err.transient, "{err:?}");
        assert!(
            err.message.contains("not the Thrift binary protocol"),
            "{err:?}"
        );
    }
}
