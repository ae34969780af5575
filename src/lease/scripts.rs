//! The Lua scripts of the leases, one per operation, each reading the server's clock (`TIME`)
//! where it needs the time; and [`LEASE_HELD`], the check the ledger's record script shares.

/// The server's clock in milliseconds, as every script reads it.
const NOW_MS: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// `KEYS: lease, shards; ARGV: holder, ttl_ms` -> `{1, ''}` taken (or already this holder's,
/// then renewed), `{0, holder}` refused.
const ACQUIRE_EXCLUSIVE: &str = "
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local shard = redis.call('ZRANGE', KEYS[2], 0, 0)
if #shard > 0 then return {0, shard[1]} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, ''} end
local current = redis.call('GET', KEYS[1]) or ''
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, ''}
end
return {0, current}";

/// `KEYS: lease, shards; ARGV: member, ttl_ms, shard` -> `{1, ''}` taken (or already this
/// member's, then renewed), `{0, holder}` refused. The set expires with its last member, so
/// shards killed with -9 leave nothing behind.
const ACQUIRE_SHARD: &str = "
local exclusive = redis.call('GET', KEYS[1])
if exclusive then return {0, exclusive} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local ok, holder = pcall(cjson.decode, member)
  if member ~= ARGV[1] and ok and type(holder) == 'table' and holder['shard'] == ARGV[3] then
    return {0, member}
  end
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], last[2])
return {1, ''}";

/// `KEYS: lease; ARGV: holder, ttl_ms` -> 1 renewed, 0 not the holder.
const RENEW_EXCLUSIVE: &str = "
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0";

/// `KEYS: shards; ARGV: member, ttl_ms` -> 1 renewed, 0 expired or not a member.
const RENEW_SHARD: &str = "
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1";

/// `KEYS: lease; ARGV: holder` -> 1 released, 0 not the holder (nothing touched).
const RELEASE_EXCLUSIVE: &str = "
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// `KEYS: shards; ARGV: member` -> 1 released, 0 not a member.
const RELEASE_SHARD: &str = "return redis.call('ZREM', KEYS[1], ARGV[1])";

/// A Lua function for the scripts that write only while a lease is held (the ledger's record,
/// [`SET_WATERMARK_IF_HELD`]): `lease_held(key, kind, holder)`, whether `holder` still holds
/// the lease at `key` (`kind`: `exclusive`, the lease's value; `shard`, a live member of the
/// shard set, by the server's clock).
pub(crate) const LEASE_HELD: &str = "
local function lease_held(key, kind, holder)
  if kind == 'exclusive' then return redis.call('GET', key) == holder end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local score = redis.call('ZSCORE', key, holder)
  return score ~= false and tonumber(score) > now
end
";

/// `KEYS: lease or shards, partitions, watermark; ARGV: kind, holder, entries, watermark ('' to
/// clear)` -> 1 set, 0 the lease is not held, -1 the ledger no longer has `entries` entries
/// (another shard recorded meanwhile: compute again). Nothing is written unless 1.
const SET_WATERMARK_IF_HELD: &str = "
if not lease_held(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
if redis.call('HLEN', KEYS[2]) ~= tonumber(ARGV[3]) then return -1 end
if ARGV[4] == '' then redis.call('DEL', KEYS[3]) else redis.call('SET', KEYS[3], ARGV[4]) end
return 1";

/// The scripts, compiled once (digests computed) per process.
pub(super) struct Scripts {
    pub(super) acquire_exclusive: ::redis::Script,
    pub(super) acquire_shard: ::redis::Script,
    pub(super) renew_exclusive: ::redis::Script,
    pub(super) renew_shard: ::redis::Script,
    pub(super) release_exclusive: ::redis::Script,
    pub(super) release_shard: ::redis::Script,
    pub(super) set_watermark_if_held: ::redis::Script,
}

/// The scripts, built once.
pub(super) fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let timed = |body: &str| ::redis::Script::new(&format!("{NOW_MS}{body}"));
        Scripts {
            acquire_exclusive: timed(ACQUIRE_EXCLUSIVE),
            acquire_shard: timed(ACQUIRE_SHARD),
            renew_exclusive: ::redis::Script::new(RENEW_EXCLUSIVE),
            renew_shard: timed(RENEW_SHARD),
            release_exclusive: ::redis::Script::new(RELEASE_EXCLUSIVE),
            release_shard: ::redis::Script::new(RELEASE_SHARD),
            set_watermark_if_held: ::redis::Script::new(&format!(
                "{LEASE_HELD}{SET_WATERMARK_IF_HELD}"
            )),
        }
    })
}
