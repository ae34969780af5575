//! Connections to Redis: TCP, TLS when configured, then `AUTH` and `SELECT`.
//!
//! A [`Connector`] is built once per run from [`RedisConfig`]: it reads the CA file and builds
//! the TLS client configuration once, and every connection of the run (the bulk writer's, the
//! adaptive probe's, the control client's) is opened through it. Every failure to connect is
//! reported the same way, by [`Connector::connect_error`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::config::RedisConfig;
use crate::error::{is_transient_server_error, RedisError};

use super::command::CommandBatch;
use super::reply::{Reply, ReplyReader};

/// A byte stream to Redis, plain or TLS.
pub trait RedisStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> RedisStream for T {}

/// The step of connecting that failed, named in the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStep {
    /// Reading the CA file and building the TLS client configuration.
    TlsSetup,
    /// Asking the sentinels where the master is (`redis+sentinel://`).
    Sentinel,
    /// Opening the TCP connection.
    Tcp,
    /// The TLS handshake.
    TlsHandshake,
    /// `AUTH`, `SELECT` and, for the control client, `PING`.
    Handshake,
}

impl fmt::Display for ConnectStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectStep::TlsSetup => "tls setup",
            ConnectStep::Sentinel => "sentinel lookup",
            ConnectStep::Tcp => "tcp connect",
            ConnectStep::TlsHandshake => "tls handshake",
            ConnectStep::Handshake => "handshake",
        })
    }
}

/// The TLS side of a [`Connector`], built once.
#[derive(Clone)]
struct TlsSetup {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

/// Opens connections to the configured Redis. Built once per run (the CA file is read and the
/// TLS configuration built here, not per connection) and shared by every connection.
#[derive(Clone)]
pub struct Connector {
    config: RedisConfig,
    masked_addr: String,
    tls: Option<TlsSetup>,
}

impl Connector {
    /// Reads the CA file (if any) and builds the TLS client configuration (if `rediss://`).
    pub fn new(config: &RedisConfig) -> Result<Connector, RedisError> {
        let mut connector = Connector {
            config: config.clone(),
            masked_addr: config.masked_url(),
            tls: None,
        };
        if config.tls {
            let tls = connector
                .tls_setup()
                .map_err(|detail| connector.connect_error(ConnectStep::TlsSetup, detail, false))?;
            connector.tls = Some(tls);
        }
        Ok(connector)
    }

    /// The same connector for another node of a Redis Cluster (same TLS client, credentials
    /// and timeouts; the TLS server name is the node's host).
    pub fn for_node(&self, node: &super::cluster::NodeAddr) -> Connector {
        let mut connector = self.clone();
        connector.config.host = node.host.clone();
        connector.config.port = node.port;
        connector.masked_addr = connector.config.masked_url();
        if let Some(tls) = &mut connector.tls {
            if let Ok(name) = ServerName::try_from(node.host.clone()) {
                tls.server_name = name;
            }
        }
        connector
    }

    /// The options the connections are opened with.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The address with the password masked, as named in errors and logs.
    pub fn masked_addr(&self) -> &str {
        &self.masked_addr
    }

    /// The one way a failure to connect is reported: the masked address, the step that failed
    /// and what went wrong, and whether trying again later may help.
    pub fn connect_error(
        &self,
        step: ConnectStep,
        detail: impl fmt::Display,
        transient: bool,
    ) -> RedisError {
        RedisError::Connect {
            addr: self.masked_addr.clone(),
            message: format!("{step} failed: {detail}"),
            transient,
        }
    }

    fn tls_setup(&self) -> Result<TlsSetup, String> {
        let config = &self.config;
        // ring, chosen explicitly: both rustls providers are linked (through different
        // dependencies), so rustls cannot pick one by itself.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // The `redis` crate's cluster connections (src/redis/control.rs) build their TLS
        // config from the process default: make it ring too (once; later calls change nothing).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| err.to_string())?;
        let verified = if config.tls_insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(insecure::NoVerify))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(path) = &config.tls_ca_file {
                for cert in read_certs("redis.tls_ca_file", path)? {
                    roots.add(cert).map_err(|err| err.to_string())?;
                }
            }
            builder.with_root_certificates(roots)
        };
        let client = match &config.tls_client_cert {
            None => verified.with_no_client_auth(),
            Some((cert_file, key_file)) => {
                let certs = read_certs("redis.tls_cert_file", cert_file)?;
                let pem = read_pem("redis.tls_key_file", key_file)?;
                let key = rustls_pemfile::private_key(&mut pem.as_slice())
                    .map_err(|err| format!("redis.tls_key_file {}: {err}", key_file.display()))?
                    .ok_or_else(|| {
                        format!("redis.tls_key_file {}: no private key", key_file.display())
                    })?;
                verified
                    .with_client_auth_cert(certs, key)
                    .map_err(|err| format!("redis.tls_cert_file/tls_key_file: {err}"))?
            }
        };
        let server_name = ServerName::try_from(config.host.clone())
            .map_err(|err| format!("bad TLS server name: {err}"))?;
        Ok(TlsSetup {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            server_name,
        })
    }

    /// Opens the byte stream: TCP, then TLS when configured.
    async fn stream(&self) -> Result<Box<dyn RedisStream>, RedisError> {
        let config = &self.config;
        let seconds = config.timeout.as_secs();
        let (host, port) = match &config.sentinel {
            None => (config.host.clone(), config.port),
            Some(sentinel) => super::sentinel::resolve(sentinel, config.timeout)
                .await
                .map_err(|detail| self.connect_error(ConnectStep::Sentinel, detail, true))?,
        };
        let tcp = tokio::time::timeout(config.timeout, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| {
                self.connect_error(
                    ConnectStep::Tcp,
                    format!("timed out after {seconds}s"),
                    true,
                )
            })?
            .map_err(|err| self.connect_error(ConnectStep::Tcp, err, true))?;
        tcp.set_nodelay(true)
            .map_err(|source| RedisError::Io { source })?;
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let handshake = tls.connector.connect(tls.server_name.clone(), tcp);
        let stream = tokio::time::timeout(config.timeout, handshake)
            .await
            .map_err(|_| {
                let detail = format!("timed out after {seconds}s");
                self.connect_error(ConnectStep::TlsHandshake, detail, true)
            })?
            .map_err(|err| {
                // A certificate the run does not trust (or one the server refuses) stays so:
                // not worth a retry. A handshake cut short may be a restart.
                let hint = tls_handshake_hint(&err);
                let transient = err.kind() != std::io::ErrorKind::InvalidData;
                self.connect_error(
                    ConnectStep::TlsHandshake,
                    format!("{err} ({hint})"),
                    transient,
                )
            })?;
        Ok(Box::new(stream))
    }

    /// Connects, negotiates TLS when configured, authenticates and selects the database; with
    /// `ping`, also checks that the server answers `PING`.
    async fn open_checked(&self, ping: bool) -> Result<Connection, RedisError> {
        let config = &self.config;
        let mut connection = Connection {
            stream: self.stream().await?,
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
        if ping {
            handshake.push_command(&[b"PING"]);
        }
        if config.sentinel.is_some() {
            handshake.push_command(&[b"ROLE"]);
        }
        let replies = connection
            .call(&handshake)
            .await
            .map_err(|err| self.handshake_failed(&err))?;
        for reply in replies {
            match reply {
                Reply::Simple => {}
                // `ROLE` (sentinel): a demoted master may be named for a moment after a failover.
                role @ Reply::Array(_) if config.sentinel.is_some() => {
                    if !super::sentinel::is_master(&role) {
                        let detail = "the node the sentinels named is not a master \
                                      (a failover in progress?)";
                        return Err(self.connect_error(ConnectStep::Handshake, detail, true));
                    }
                }
                Reply::Error(message) => {
                    // `LOADING` (a restarted Redis reading its data) is worth waiting for;
                    // `WRONGPASS`, `NOAUTH` and the like are not.
                    let transient = is_transient_server_error(&message);
                    return Err(self.connect_error(ConnectStep::Handshake, message, transient));
                }
                other => {
                    let detail = format!("unexpected reply {other:?}");
                    return Err(self.connect_error(ConnectStep::Handshake, detail, false));
                }
            }
        }
        Ok(connection)
    }

    /// The handshake's I/O failed: with TLS 1.3 a server that refuses the client (no client
    /// certificate, or one it does not trust) says so here, in an alert on the first read; without
    /// TLS a TLS-only port closes the connection.
    fn handshake_failed(&self, err: &RedisError) -> RedisError {
        let text = err.to_string();
        if self.tls.is_some() && text.contains("alert") {
            let detail = format!("{text} ({CLIENT_REFUSED})");
            return self.connect_error(ConnectStep::Handshake, detail, false);
        }
        let detail = match err {
            RedisError::Io { .. } | RedisError::Protocol(_) if self.tls.is_none() => {
                format!("{text} (a TLS-only port? use rediss://)")
            }
            _ => text,
        };
        self.connect_error(ConnectStep::Handshake, detail, err.is_transient())
    }

    /// Opens a connection for writes (or the adaptive probe): TCP, TLS, `AUTH`, `SELECT`.
    pub async fn open(&self) -> Result<Connection, RedisError> {
        self.open_checked(false).await
    }

    /// Opens a connection and checks that the server answers `PING`, all through the bounded
    /// reply reader, so that a server that does not speak the Redis protocol is refused here.
    pub async fn open_pinged(&self) -> Result<Connection, RedisError> {
        self.open_checked(true).await
    }
}

/// The whole PEM file behind `option`.
fn read_pem(option: &str, path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| format!("{option}: cannot read {}: {err}", path.display()))
}

/// The certificates of the PEM file behind `option` (at least one).
fn read_certs(
    option: &str,
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let pem = read_pem(option, path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{option}: bad certificate in {}: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{option}: no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// What a TLS alert from the server during or right after the handshake most likely means.
const CLIENT_REFUSED: &str = "the server refused this client: does it require a client \
certificate (redis.tls_cert_file, redis.tls_key_file) signed by a CA it trusts?";

/// What a failed TLS handshake most likely means, added to rustls's own words.
fn tls_handshake_hint(err: &std::io::Error) -> &'static str {
    tls_error_hint(&err.to_string())
}

/// What a TLS error's text most likely means (also for the `redis` crate's cluster
/// connections, whose errors arrive as text).
pub(crate) fn tls_error_hint(text: &str) -> &'static str {
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        "the server's certificate is not trusted: is its CA in redis.tls_ca_file (or the system roots)?"
    } else if text.contains("NotValidForName") {
        "the server's certificate does not name the host of redis.url"
    } else if text.contains("alert") {
        CLIENT_REFUSED
    } else {
        "is the port a TLS port?"
    }
}

/// An authenticated connection with the database selected.
pub struct Connection {
    pub(super) stream: Box<dyn RedisStream>,
    pub(super) timeout: Duration,
}

impl Connection {
    /// A connection over `stream`, as it is (no handshake): the sentinel lookup's.
    pub(super) fn over(stream: Box<dyn RedisStream>, timeout: Duration) -> Connection {
        Connection { stream, timeout }
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

    /// The byte stream, for a client that takes over the connection (the control client).
    pub fn into_stream(self) -> Box<dyn RedisStream> {
        self.stream
    }
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
