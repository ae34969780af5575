//! Connections to Redis: TCP, TLS when configured, then `AUTH` and `SELECT`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::RedisConfig;
use crate::error::RedisError;

use super::command::CommandBatch;
use super::reply::{Reply, ReplyReader};

/// A byte stream to Redis, plain or TLS.
pub trait RedisStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> RedisStream for T {}

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
    pub(super) stream: Box<dyn RedisStream>,
    pub(super) timeout: Duration,
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
}
