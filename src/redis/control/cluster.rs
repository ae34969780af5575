//! The control client's connection kinds, and its connection to a Redis Cluster: the `redis`
//! crate's cluster client (it follows `MOVED`, `ASK` and failovers itself), over TLS with the
//! `[redis]` CA and client certificate when the seeds are `rediss://`.

use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, Value};
use futures::future::BoxFuture;

use crate::error::RedisError;
use crate::redis::connection::{ConnectStep, Connector};

use super::ServerRunId;

/// The connection behind the control client.
#[derive(Clone)]
pub(super) enum ControlConnection {
    /// One server, multiplexed.
    Single(MultiplexedConnection),
    /// A Redis Cluster: the crate's cluster client routes each command to the master of its
    /// key's slot (a table's ledger, lease and watermark keys share the slot of its hash tag)
    /// and follows `MOVED`, `ASK` and failovers itself.
    Cluster(ClusterConnection),
}

impl ConnectionLike for ControlConnection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a Cmd,
    ) -> BoxFuture<'a, ::redis::RedisResult<Value>> {
        match self {
            ControlConnection::Single(connection) => connection.req_packed_command(cmd),
            ControlConnection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a ::redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> BoxFuture<'a, ::redis::RedisResult<Vec<Value>>> {
        match self {
            ControlConnection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            ControlConnection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            ControlConnection::Single(connection) => connection.get_db(),
            ControlConnection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The CA and client certificate of `[redis]` (PEM) for the crate's cluster connections over
/// TLS (the bulk writer's connections get them from the [`Connector`]).
fn cluster_certificates(connector: &Connector) -> Result<::redis::TlsCertificates, RedisError> {
    let config = connector.config();
    let read = |option: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|err| {
            connector.connect_error(
                ConnectStep::TlsSetup,
                format!("{option}: cannot read {}: {err}", path.display()),
                false,
            )
        })
    };
    let root_cert = match &config.tls_ca_file {
        Some(path) => Some(read("redis.tls_ca_file", path)?),
        None => None,
    };
    let client_tls = match &config.tls_client_cert {
        Some((cert, key)) => Some(::redis::ClientTlsConfig {
            client_cert: read("redis.tls_cert_file", cert)?,
            client_key: read("redis.tls_key_file", key)?,
        }),
        None => None,
    };
    Ok(::redis::TlsCertificates {
        client_tls,
        root_cert,
    })
}

/// Opens the crate's cluster connection from the seeds (the scripts loaded on every master).
///
/// Its server is the cluster as a whole, named by its seeds: a failover promotes a replica that
/// holds the data (the crate follows it), so it is not a restart; restarts of cluster nodes are
/// not detected by `run_id` (see README, "Redis Cluster").
pub(super) async fn open_cluster(
    connector: &Connector,
    timeout: Duration,
    scripts: &[String],
) -> Result<(ControlConnection, ServerRunId), RedisError> {
    let config = connector.config();
    let seeds = config
        .cluster
        .as_ref()
        .map(|c| c.seeds.clone())
        .unwrap_or_default();
    let nodes: Vec<(String, u16)> = seeds.clone();
    let mut builder = ::redis::cluster::ClusterClientBuilder::new(nodes)
        .connection_timeout(timeout)
        .response_timeout(timeout);
    if let Some(user) = &config.username {
        builder = builder.username(user);
    }
    if let Some(password) = &config.password {
        builder = builder.password(password.expose());
    }
    if config.tls {
        builder = builder
            .tls(if config.tls_insecure {
                ::redis::TlsMode::Insecure
            } else {
                ::redis::TlsMode::Secure
            })
            .certs(cluster_certificates(connector)?);
    }
    let unreachable = |err: ::redis::RedisError| {
        let transient = err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err
                .code()
                .is_some_and(crate::error::is_transient_server_error);
        let text = err.to_string();
        if config.tls && (text.contains("certificate") || text.contains("alert")) {
            let hint = crate::redis::connection::tls_error_hint(&text);
            return connector.connect_error(
                ConnectStep::TlsHandshake,
                format!("{text}: {hint}"),
                false,
            );
        }
        connector.connect_error(ConnectStep::Handshake, err, transient)
    };
    let client = builder.build().map_err(unreachable)?;
    let seconds = timeout.as_secs();
    let mut connection = tokio::time::timeout(timeout, client.get_async_connection())
        .await
        .map_err(|_| {
            connector.connect_error(
                ConnectStep::Tcp,
                format!("timed out after {seconds}s"),
                true,
            )
        })?
        .map(ControlConnection::Cluster)
        .map_err(unreachable)?;
    for script in scripts {
        let mut load = ::redis::cmd("SCRIPT");
        load.arg("LOAD").arg(script);
        tokio::time::timeout(timeout, load.query_async::<String>(&mut connection))
            .await
            .map_err(|_| RedisError::Timeout { seconds })??;
    }
    let name: Vec<String> = seeds.iter().map(|(h, p)| format!("{h}:{p}")).collect();
    let server = ServerRunId(format!("cluster {}", name.join(",")).into());
    Ok((connection, server))
}
