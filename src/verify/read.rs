//! Reads keys back from Redis for a verify: pipelined `GET` (or `HGETALL` for hash layouts) and
//! `PEXPIRETIME` per key, one round trip per batch, over a connection the
//! [`Connector`](crate::redis::Connector) opened. Only reads.

use std::collections::BTreeMap;

use super::compare::{Found, FoundValue};
use crate::error::RedisError;
use crate::redis::{CommandBatch, Connection, Reply};

/// Reads `keys` (as strings, or as hashes when `hash`) with their expiries, in one pipeline.
pub async fn read_keys(
    connection: &mut Connection,
    keys: &[&[u8]],
    hash: bool,
) -> Result<Vec<Found>, RedisError> {
    let mut batch = CommandBatch::with_capacity(keys.len() * 64, keys.len() * 2);
    let read: &[u8] = if hash { b"HGETALL" } else { b"GET" };
    for key in keys {
        batch.push_command(&[read, key]);
        batch.push_command(&[b"PEXPIRETIME", key]);
    }
    let replies = connection.call(&batch).await?;
    replies
        .chunks(2)
        .zip(keys)
        .map(|(pair, key)| found(&pair[0], &pair[1], hash, key))
        .collect()
}

fn unexpected(what: &str, key: &[u8], reply: &Reply) -> RedisError {
    RedisError::Protocol(format!(
        "unexpected reply to {what} {}: {reply:?}",
        String::from_utf8_lossy(key)
    ))
}

/// What the replies to the read and `PEXPIRETIME` of `key` say.
fn found(value: &Reply, expiry: &Reply, hash: bool, key: &[u8]) -> Result<Found, RedisError> {
    let expiry_ms = match expiry {
        Reply::Integer(-2) => return Ok(Found::Missing),
        Reply::Integer(-1) => None,
        Reply::Integer(ms) => Some(*ms),
        Reply::Error(error) => return Err(RedisError::Protocol(format!("PEXPIRETIME: {error}"))),
        other => return Err(unexpected("PEXPIRETIME", key, other)),
    };
    let value = match value {
        Reply::Error(error) if error.starts_with("WRONGTYPE") => {
            FoundValue::WrongType(error.clone())
        }
        Reply::Bulk(None) => return Ok(Found::Missing),
        Reply::Bulk(Some(bytes)) if !hash => FoundValue::Value(bytes.clone()),
        Reply::Array(items) if hash => {
            if items.is_empty() {
                return Ok(Found::Missing);
            }
            let mut fields = BTreeMap::new();
            for pair in items.chunks(2) {
                match pair {
                    [Reply::Bulk(Some(name)), Reply::Bulk(Some(value))] => {
                        fields.insert(name.clone(), value.clone());
                    }
                    _ => return Err(unexpected("HGETALL", key, &Reply::Array(pair.to_vec()))),
                }
            }
            FoundValue::Hash(fields)
        }
        other => return Err(unexpected(if hash { "HGETALL" } else { "GET" }, key, other)),
    };
    Ok(Found::Present { value, expiry_ms })
}
