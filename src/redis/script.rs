//! The Lua scripts of the guarded writes and hash replacement, and their digests.
//!
//! The version guard uses the key's absolute expiry as its version: every key of a partition
//! expires at `partition date + retention_days`, so a later expiry means a newer partition.

/// `EVALSHA sha 1 key value expiry_ms`: SET with PXAT unless the key expires later (is newer).
/// Returns 1 when written, 0 when a newer value was kept.
pub const GUARDED_SET_SCRIPT: &str = r#"local at = tonumber(ARGV[2])
if redis.call('PEXPIRETIME', KEYS[1]) > at then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1"#;

/// `EVALSHA sha N key1..keyN expiry_ms guard n1 field value ... n2 field value ...`: replaces
/// each key's whole hash (`ni` field/value pairs; none: the key is deleted) and sets its expiry,
/// each key atomically. With guard `1`, a key that expires later (is newer) is kept. Several keys
/// per call spread the script's fixed cost. Returns `[written, deleted]`: keys written, and keys
/// deleted because their hash is empty (Redis has no empty hash); the others kept a newer value.
pub const HASH_REPLACE_SCRIPT: &str = r#"local at = tonumber(ARGV[1])
local guard = ARGV[2] == '1'
local pos = 3
local written = 0
local deleted = 0
for i = 1, #KEYS do
  local n = tonumber(ARGV[pos])
  local key = KEYS[i]
  if not (guard and redis.call('PEXPIRETIME', key) > at) then
    redis.call('DEL', key)
    if n > 0 then
      redis.call('HSET', key, unpack(ARGV, pos + 1, pos + 2 * n))
      redis.call('PEXPIREAT', key, ARGV[1])
      written = written + 1
    else
      deleted = deleted + 1
    end
  end
  pos = pos + 1 + 2 * n
end
return {written, deleted}"#;

/// `EVALSHA sha 1 key expiry_ms`: deletes the key if it expires before `expiry_ms`, i.e. it was
/// not rewritten by the snapshot that expires then. Returns 1 when deleted.
pub const DELETE_IF_OLDER_SCRIPT: &str = r#"local t = redis.call('PEXPIRETIME', KEYS[1])
if t >= 0 and t < tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0"#;

use crate::error::RedisError;

use super::command::CommandBatch;
use super::connection::Connection;
use super::reply::Reply;

/// SHA1 digests of the scripts, as returned by `SCRIPT LOAD` on the write connections.
#[derive(Debug, Clone, Default)]
pub struct ScriptShas {
    /// [`GUARDED_SET_SCRIPT`].
    pub guarded_set: String,
    /// [`HASH_REPLACE_SCRIPT`].
    pub hash_replace: String,
    /// [`DELETE_IF_OLDER_SCRIPT`].
    pub delete_if_older: String,
}

impl ScriptShas {
    /// Loads the write scripts over `connection` and returns their digests.
    pub async fn load(connection: &mut Connection) -> Result<ScriptShas, RedisError> {
        let mut batch = CommandBatch::default();
        for script in [
            GUARDED_SET_SCRIPT,
            HASH_REPLACE_SCRIPT,
            DELETE_IF_OLDER_SCRIPT,
        ] {
            batch.push_command(&[b"SCRIPT", b"LOAD", script.as_bytes()]);
        }
        let replies = connection.call(&batch).await?;
        let mut shas = replies.into_iter().map(|reply| match reply {
            Reply::Bulk(Some(sha)) => Ok(String::from_utf8_lossy(&sha).into_owned()),
            Reply::Error(message) => Err(RedisError::refused("SCRIPT|LOAD", "", message)),
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
}
