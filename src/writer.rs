//! The bulk writer: several Redis connections, each with several pipelined batches in flight,
//! every reply read and checked. A connection's commands are written and answered in order, and
//! rows are routed to connections by key, so the last write of a key in a partition wins.
//!
//! This speaks RESP directly over TCP (or TLS) instead of going through a generic client: the
//! commands are already bytes (see [`crate::resp`]) and replies are checked without allocating.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::RedisConfig;
use crate::error::RedisError;
use crate::resp::{
    CommandBatch, ScriptShas, DELETE_IF_OLDER_SCRIPT, GUARDED_SET_SCRIPT, HASH_REPLACE_SCRIPT,
};

/// A byte stream to Redis, plain or TLS.
pub trait RedisStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> RedisStream for T {}

/// One parsed reply. Only handshake replies allocate (bulk strings and arrays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and other simple strings (content not kept).
    Simple,
    /// `:n`.
    Integer(i64),
    /// `-ERR ...`.
    Error(String),
    /// `$n` bulk string (`None` for the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*n` array.
    Array(Vec<Reply>),
}

/// Reads replies from a stream.
pub struct ReplyReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> ReplyReader<R> {
    /// Wraps the read half of a connection.
    pub fn new(inner: R) -> Self {
        ReplyReader {
            inner,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    async fn fill(&mut self) -> Result<(), RedisError> {
        let n = self
            .inner
            .read_buf(&mut self.buf)
            .await
            .map_err(|source| RedisError::Io { source })?;
        if n == 0 {
            return Err(RedisError::Io {
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "redis closed the connection",
                ),
            });
        }
        Ok(())
    }

    /// Reads one line (without `\r\n`), returning its length after the type byte was consumed.
    async fn line(&mut self) -> Result<BytesMut, RedisError> {
        let mut searched = 0;
        loop {
            if let Some(pos) = self.buf[searched..].windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(searched + pos);
                self.buf.advance(2);
                return Ok(line);
            }
            searched = self.buf.len().saturating_sub(1);
            self.fill().await?;
        }
    }

    fn number(line: &[u8]) -> Result<i64, RedisError> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                RedisError::Protocol(format!("bad number {:?}", String::from_utf8_lossy(line)))
            })
    }

    /// Reads the next reply.
    pub async fn next(&mut self) -> Result<Reply, RedisError> {
        let line = self.line().await?;
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| RedisError::Protocol("empty reply line".to_string()))?;
        match kind {
            b'+' => Ok(Reply::Simple),
            b':' => Ok(Reply::Integer(Self::number(rest)?)),
            b'-' => Ok(Reply::Error(String::from_utf8_lossy(rest).into_owned())),
            b'$' => {
                let len = Self::number(rest)?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let len = len as usize;
                while self.buf.len() < len + 2 {
                    self.fill().await?;
                }
                let data = self.buf.split_to(len).to_vec();
                self.buf.advance(2);
                Ok(Reply::Bulk(Some(data)))
            }
            b'*' => {
                let count = Self::number(rest)?;
                let mut items = Vec::with_capacity(count.max(0) as usize);
                for _ in 0..count.max(0) {
                    items.push(Box::pin(self.next()).await?);
                }
                Ok(Reply::Array(items))
            }
            other => Err(RedisError::Protocol(format!(
                "unexpected reply type byte {:?}",
                *other as char
            ))),
        }
    }
}

/// Counts of what the replies said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteTotals {
    /// Keys whose writes were acknowledged (a multi-key script call counts its keys).
    pub keys: u64,
    /// Guarded writes that kept a newer value (script replied 0).
    pub kept_newer: u64,
}

impl WriteTotals {
    fn add(&mut self, other: WriteTotals) {
        self.keys += other.keys;
        self.kept_newer += other.kept_newer;
    }
}

async fn tls_wrap(
    config: &RedisConfig,
    tcp: TcpStream,
) -> Result<Box<dyn RedisStream>, RedisError> {
    use tokio_rustls::rustls;
    let fail = |message: String, transient: bool| RedisError::Connect {
        addr: config.masked_url(),
        message,
        transient,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| fail(err.to_string(), false))?;
    let client = if config.tls_insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::NoVerify))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &config.tls_ca_file {
            let pem = std::fs::read(path)
                .map_err(|err| fail(format!("cannot read {}: {err}", path.display()), false))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|err| {
                    fail(
                        format!("bad certificate in {}: {err}", path.display()),
                        false,
                    )
                })?;
                roots
                    .add(cert)
                    .map_err(|err| fail(err.to_string(), false))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let name = rustls::pki_types::ServerName::try_from(config.host.clone())
        .map_err(|err| fail(format!("bad TLS server name: {err}"), false))?;
    let handshake = tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp);
    let stream = tokio::time::timeout(config.timeout, handshake)
        .await
        .map_err(|_| fail("TLS handshake timed out".to_string(), true))?
        .map_err(|err| fail(format!("TLS handshake failed: {err}"), true))?;
    Ok(Box::new(stream))
}

mod insecure {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::client::danger::{
        HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
    };
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    /// Accepts any certificate: only with `redis.tls_insecure = true`.
    #[derive(Debug)]
    pub struct NoVerify;

    impl ServerCertVerifier for NoVerify {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}

/// An authenticated connection with the database selected.
pub struct Connection {
    stream: Box<dyn RedisStream>,
    timeout: Duration,
}

impl Connection {
    /// Connects, negotiates TLS when configured, authenticates and selects the database.
    pub async fn open(config: &RedisConfig) -> Result<Connection, RedisError> {
        let addr = (config.host.as_str(), config.port);
        let tcp = tokio::time::timeout(config.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| RedisError::Connect {
                addr: config.masked_url(),
                message: format!("timed out after {}s", config.timeout.as_secs()),
                transient: true,
            })?
            .map_err(|err| RedisError::Connect {
                addr: config.masked_url(),
                message: err.to_string(),
                transient: true,
            })?;
        tcp.set_nodelay(true)
            .map_err(|source| RedisError::Io { source })?;
        let stream: Box<dyn RedisStream> = if config.tls {
            tls_wrap(config, tcp).await?
        } else {
            Box::new(tcp)
        };
        let mut connection = Connection {
            stream,
            timeout: config.timeout,
        };
        let mut handshake = CommandBatch::default();
        if let Some(password) = &config.password {
            match &config.username {
                Some(user) => handshake.push_command(&[
                    b"AUTH",
                    user.as_bytes(),
                    password.expose().as_bytes(),
                ]),
                None => handshake.push_command(&[b"AUTH", password.expose().as_bytes()]),
            }
        }
        handshake.push_command(&[b"SELECT", config.db.to_string().as_bytes()]);
        for reply in connection.call(&handshake).await? {
            if let Reply::Error(message) = reply {
                return Err(RedisError::Connect {
                    addr: config.masked_url(),
                    message,
                    transient: false,
                });
            }
        }
        Ok(connection)
    }

    /// Sends a small batch and returns its replies (handshake and script loading only).
    pub async fn call(&mut self, batch: &CommandBatch) -> Result<Vec<Reply>, RedisError> {
        let seconds = self.timeout.as_secs();
        tokio::time::timeout(self.timeout, async {
            self.stream
                .write_all(&batch.bytes)
                .await
                .map_err(|source| RedisError::Io { source })?;
            let mut reader = ReplyReader::new(&mut self.stream);
            let mut replies = Vec::with_capacity(batch.len());
            for _ in 0..batch.len() {
                replies.push(reader.next().await?);
            }
            Ok(replies)
        })
        .await
        .map_err(|_| RedisError::Timeout { seconds })?
    }

    /// Loads the write scripts and returns their digests.
    pub async fn load_scripts(&mut self) -> Result<ScriptShas, RedisError> {
        let mut batch = CommandBatch::default();
        for script in [
            GUARDED_SET_SCRIPT,
            HASH_REPLACE_SCRIPT,
            DELETE_IF_OLDER_SCRIPT,
        ] {
            batch.push_command(&[b"SCRIPT", b"LOAD", script.as_bytes()]);
        }
        let replies = self.call(&batch).await?;
        let mut shas = replies.into_iter().map(|reply| match reply {
            Reply::Bulk(Some(sha)) => Ok(String::from_utf8_lossy(&sha).into_owned()),
            Reply::Error(message) => Err(RedisError::Reply {
                key: String::new(),
                message,
            }),
            other => Err(RedisError::Protocol(format!(
                "SCRIPT LOAD replied {other:?}"
            ))),
        });
        let mut next = || {
            shas.next()
                .unwrap_or_else(|| Err(RedisError::Protocol("missing reply".into())))
        };
        Ok(ScriptShas {
            guarded_set: next()?,
            hash_replace: next()?,
            delete_if_older: next()?,
        })
    }

    /// Runs the pipelined write loop until `batches` closes: writes each batch as soon as it
    /// arrives, keeps at most `in_flight` batches unacknowledged, and checks every reply.
    async fn run(
        self,
        mut batches: mpsc::Receiver<CommandBatch>,
        in_flight: usize,
    ) -> Result<WriteTotals, RedisError> {
        let (read_half, mut write_half) = tokio::io::split(self.stream);
        let (sent_tx, mut sent_rx) = mpsc::channel::<CommandBatch>(in_flight.max(1));
        let timeout = self.timeout;
        let writing = async move {
            let timed_out = || RedisError::Timeout {
                seconds: timeout.as_secs(),
            };
            // A write that cannot go out within the timeout means redis stopped reading.
            while let Some(batch) = batches.recv().await {
                tokio::time::timeout(timeout, write_half.write_all(&batch.bytes))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|source| RedisError::Io { source })?;
                if sent_tx.send(batch).await.is_err() {
                    break;
                }
            }
            tokio::time::timeout(timeout, write_half.flush())
                .await
                .map_err(|_| timed_out())?
                .map_err(|source| RedisError::Io { source })?;
            Ok::<_, RedisError>(())
        };
        let reading = async move {
            let mut reader = ReplyReader::new(read_half);
            let mut totals = WriteTotals::default();
            while let Some(batch) = sent_rx.recv().await {
                let checked =
                    tokio::time::timeout(timeout, check_replies(&mut reader, &batch)).await;
                let counted = checked.map_err(|_| RedisError::Timeout {
                    seconds: timeout.as_secs(),
                })??;
                totals.add(counted);
            }
            Ok::<_, RedisError>(totals)
        };
        let ((), totals) = tokio::try_join!(writing, reading)?;
        Ok(totals)
    }
}

/// Reads and checks the replies of every command of `batch`.
async fn check_replies<R: AsyncRead + Unpin>(
    reader: &mut ReplyReader<R>,
    batch: &CommandBatch,
) -> Result<WriteTotals, RedisError> {
    let mut totals = WriteTotals::default();
    for index in 0..batch.len() {
        let keys = batch.keys_of(index);
        match reader.next().await? {
            Reply::Simple => {}
            Reply::Integer(written) if (0..=keys as i64).contains(&written) => {
                totals.kept_newer += keys - written as u64;
            }
            // EXEC: the replies of the queued commands.
            Reply::Array(replies) => {
                if let Some(Reply::Error(message)) =
                    replies.iter().find(|r| matches!(r, Reply::Error(_)))
                {
                    return Err(RedisError::Reply {
                        key: batch.key_of(index),
                        message: message.clone(),
                    });
                }
                let queued = batch.queued_before(index);
                if replies.len() != queued {
                    return Err(RedisError::Protocol(format!(
                        "EXEC answered {} replies for {queued} queued commands (key {:?})",
                        replies.len(),
                        batch.key_of(index)
                    )));
                }
            }
            Reply::Error(message) => {
                return Err(RedisError::Reply {
                    key: batch.key_of(index),
                    message,
                })
            }
            other => {
                return Err(RedisError::Protocol(format!(
                    "unexpected reply {other:?} to the write of key {:?}",
                    batch.key_of(index)
                )))
            }
        }
        totals.keys += keys;
    }
    Ok(totals)
}

/// Connections open for one partition load.
pub struct WriteSession {
    senders: Vec<mpsc::Sender<CommandBatch>>,
    tasks: JoinSet<Result<WriteTotals, RedisError>>,
    shas: ScriptShas,
}

/// The session's connection tasks have stopped (an error is waiting in [`WriteSession::finish`]).
#[derive(Debug)]
pub struct SessionBroken;

impl WriteSession {
    /// Opens `redis.connections` connections and loads the write scripts.
    pub async fn open(config: &RedisConfig) -> Result<WriteSession, RedisError> {
        let mut connections = Vec::with_capacity(config.connections);
        for _ in 0..config.connections {
            connections.push(Connection::open(config).await?);
        }
        let shas = connections[0].load_scripts().await?;
        let mut senders = Vec::with_capacity(connections.len());
        let mut tasks = JoinSet::new();
        for connection in connections {
            let (tx, rx) = mpsc::channel(config.pipelines_per_connection.max(1));
            senders.push(tx);
            tasks.spawn(connection.run(rx, config.pipelines_per_connection));
        }
        Ok(WriteSession {
            senders,
            tasks,
            shas,
        })
    }

    /// Digests of the loaded scripts.
    pub fn shas(&self) -> &ScriptShas {
        &self.shas
    }

    /// Number of connections.
    pub fn connections(&self) -> usize {
        self.senders.len()
    }

    /// Queues a batch on connection `index`, waiting while that connection is saturated.
    pub async fn send(&self, index: usize, batch: CommandBatch) -> Result<(), SessionBroken> {
        if batch.is_empty() {
            return Ok(());
        }
        self.senders[index]
            .send(batch)
            .await
            .map_err(|_| SessionBroken)
    }

    /// Closes the queues and waits until every queued command is acknowledged. The first error of
    /// any connection is returned.
    pub async fn finish(mut self) -> Result<WriteTotals, RedisError> {
        self.senders.clear();
        let mut totals = WriteTotals::default();
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(counted)) => totals.add(counted),
                Ok(Err(err)) => {
                    first_error.get_or_insert(err);
                    self.tasks.abort_all();
                }
                Err(join) if join.is_cancelled() => {}
                Err(join) => {
                    first_error
                        .get_or_insert(RedisError::Protocol(format!("write task failed: {join}")));
                }
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(totals),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse_all(bytes: &[u8], n: usize) -> Vec<Reply> {
        let mut reader = ReplyReader::new(bytes);
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(reader.next().await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn parses_every_reply_type() {
        let replies = parse_all(b"+OK\r\n:0\r\n:-12\r\n-OOM command not allowed\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n$0\r\n\r\n", 7).await;
        assert_eq!(
            replies,
            vec![
                Reply::Simple,
                Reply::Integer(0),
                Reply::Integer(-12),
                Reply::Error("OOM command not allowed".into()),
                Reply::Bulk(Some(b"abc".to_vec())),
                Reply::Bulk(None),
                Reply::Array(vec![Reply::Integer(1), Reply::Bulk(Some(Vec::new()))]),
            ]
        );
    }

    #[tokio::test]
    async fn truncated_reply_is_an_io_error() {
        let mut reader = ReplyReader::new(&b"$10\r\nabc"[..]);
        assert!(matches!(reader.next().await, Err(RedisError::Io { .. })));
    }

    #[tokio::test]
    async fn error_reply_names_the_key() {
        let mut batch = CommandBatch::default();
        batch.push_command(&[b"SET", b"k1", b"v", b"PXAT", b"1"]);
        batch.push_command(&[b"SET", b"k2", b"v", b"PXAT", b"1"]);
        let mut reader = ReplyReader::new(&b"+OK\r\n-WRONGTYPE Operation against a key\r\n"[..]);
        match check_replies(&mut reader, &batch).await {
            Err(RedisError::Reply { key, message }) => {
                assert_eq!(key, "k2");
                assert_eq!(message, "WRONGTYPE Operation against a key");
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut reader = ReplyReader::new(&b":1\r\n:0\r\n"[..]);
        assert_eq!(
            check_replies(&mut reader, &batch).await.unwrap(),
            WriteTotals {
                keys: 2,
                kept_newer: 1
            }
        );
    }
}
