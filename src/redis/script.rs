//! The Lua scripts of the guarded writes and hash replacement, and their digests.
//!
//! The version guard uses the key's absolute expiry as its version: every key of a partition
//! expires at `partition date + retention_days`, so a later expiry means a newer partition.
//!
//! On one server a guarded row is first written natively (`SET ... NX`, `RESTORE` without
//! `REPLACE`); these scripts then take only the rows refused because their key exists (see
//! [`super::follow_up`]). On a cluster, or for hashes without `RESTORE`, every guarded row goes
//! through them.
//!
//! The two write scripts cover many keys per call (up to
//! [`super::command::GUARDED_KEYS_PER_CALL`]), which spreads a script call's fixed cost. Their keys are arguments (`ARGV`, no
//! `KEYS`) and they carry `#!lua flags=allow-cross-slot-keys`: one call may touch keys of many
//! slots, which Redis Cluster allows as long as every key of the call is served by the node
//! that runs it (the writer sends each key to its node). The version check and the write of
//! each key run inside one script, so each key is still written atomically against a newer one.
//! A call first asks `EXISTS` of all its keys at once: when none exists (a backfill of keys no
//! newer partition has), nothing newer can be overwritten and the per-key `PEXPIRETIME` is
//! skipped.

/// `EVALSHA sha 0 expiry_ms key1 value1 key2 value2 ...`: for each key, `SET key value PXAT
/// expiry_ms` unless the key expires later (is newer). Returns how many keys were written; the
/// others kept a newer value.
pub const GUARDED_SET_SCRIPT: &str = r#"#!lua flags=allow-cross-slot-keys
local call = redis.call
local at = ARGV[1]
local version = tonumber(at)
local keys = {}
for i = 2, #ARGV, 2 do keys[#keys + 1] = ARGV[i] end
local guard = call('EXISTS', unpack(keys)) > 0
local written = 0
for i = 2, #ARGV, 2 do
  local key = ARGV[i]
  if not guard or call('PEXPIRETIME', key) <= version then
    call('SET', key, ARGV[i + 1], 'PXAT', at)
    written = written + 1
  end
end
return written"#;

/// `EVALSHA sha 0 expiry_ms key1 n1 ... key2 n2 ...`: replaces each key's whole hash and sets
/// its expiry, each key atomically, unless the key expires later (is newer). Per key, `n` says
/// what follows it:
/// - `-1`: one `RESTORE` payload (see [`super::dump`]): `RESTORE key expiry_ms payload REPLACE
///   ABSTTL`;
/// - `0`: nothing, the hash is empty: the key is deleted (Redis has no empty hash);
/// - `n > 0`: `n` field/value pairs: `DEL`, `HSET`, `PEXPIREAT`.
///
/// Returns `[written, deleted]`: keys written, and keys deleted because their hash is empty; the
/// others kept a newer value.
pub const HASH_REPLACE_SCRIPT: &str = r#"#!lua flags=allow-cross-slot-keys
local call = redis.call
local at = ARGV[1]
local version = tonumber(at)
local keys = {}
local pos = 2
while pos <= #ARGV do
  keys[#keys + 1] = ARGV[pos]
  local n = tonumber(ARGV[pos + 1])
  if n < 0 then pos = pos + 3 else pos = pos + 2 + 2 * n end
end
local guard = call('EXISTS', unpack(keys)) > 0
pos = 2
local written = 0
local deleted = 0
while pos <= #ARGV do
  local key = ARGV[pos]
  local n = tonumber(ARGV[pos + 1])
  local last = pos + 1 + 2 * n
  if n < 0 then last = pos + 2 end
  if not guard or call('PEXPIRETIME', key) <= version then
    if n < 0 then
      call('RESTORE', key, at, ARGV[pos + 2], 'REPLACE', 'ABSTTL')
      written = written + 1
    elseif n == 0 then
      call('DEL', key)
      deleted = deleted + 1
    else
      call('DEL', key)
      call('HSET', key, unpack(ARGV, pos + 2, last))
      call('PEXPIREAT', key, at)
      written = written + 1
    end
  end
  pos = last + 1
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
