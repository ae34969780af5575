//! Redis Sentinel: where the master is now. Every connection the [`super::Connector`] opens for
//! a `redis+sentinel://` URL asks the sentinels first (`SENTINEL GET-MASTER-ADDR-BY-NAME`, each
//! sentinel in turn until one answers), so a run started after a failover, and every reconnect
//! inside a run (the control client's, a partition's retry), goes to the master of the moment.
//! The handshake then checks with `ROLE` that the node is a master (a sentinel may still name a
//! demoted one for a moment), see `Connector::open`.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::SentinelConfig;

use super::command::CommandBatch;
use super::connection::Connection;
use super::reply::Reply;

/// The master's address: the first sentinel that knows it decides; the error names every
/// sentinel asked and what each said.
pub async fn resolve(
    sentinel: &SentinelConfig,
    timeout: Duration,
) -> Result<(String, u16), String> {
    let mut failures = Vec::new();
    for (host, port) in &sentinel.addrs {
        match ask(host, *port, &sentinel.master, timeout).await {
            Ok(addr) => return Ok(addr),
            Err(why) => failures.push(format!("sentinel {host}:{port}: {why}")),
        }
    }
    Err(format!(
        "no sentinel named the master {:?}: {}",
        sentinel.master,
        failures.join("; ")
    ))
}

/// Asks one sentinel for `master`'s address.
async fn ask(
    host: &str,
    port: u16,
    master: &str,
    timeout: Duration,
) -> Result<(String, u16), String> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| format!("timed out after {}s", timeout.as_secs()))?
        .map_err(|err| err.to_string())?;
    let mut connection = Connection::over(Box::new(tcp), timeout);
    let mut batch = CommandBatch::default();
    batch.push_command(&[b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", master.as_bytes()]);
    let reply = connection
        .call(&batch)
        .await
        .map_err(|err| err.to_string())?
        .pop();
    match reply {
        Some(Reply::Array(parts)) => match parts.as_slice() {
            [Reply::Bulk(Some(host)), Reply::Bulk(Some(port))] => {
                let host = String::from_utf8_lossy(host).into_owned();
                let port = String::from_utf8_lossy(port);
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("answered the port {port:?}"))?;
                Ok((host, port))
            }
            [] => Err(format!("does not know a master named {master:?}")),
            other => Err(format!("answered {other:?}")),
        },
        Some(Reply::Bulk(None)) => Err(format!("does not know a master named {master:?}")),
        Some(Reply::Error(message)) => Err(message),
        other => Err(format!("answered {other:?}")),
    }
}

/// True when a `ROLE` reply says master.
pub fn is_master(role: &Reply) -> bool {
    matches!(role, Reply::Array(parts) if matches!(parts.first(), Some(Reply::Bulk(Some(name))) if name == b"master"))
}
