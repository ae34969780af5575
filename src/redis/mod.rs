//! Everything that talks to Redis, in one layer.
//!
//! - [`acl`]: the loader's and the readers' ACL rules, and the `ACL DRYRUN` check of the user.
//! - [`command`]: the write commands (RESP bytes) built from encoded rows, batched per connection.
//! - [`script`]: the Lua scripts of guarded writes and hash replacement, and their digests.
//! - [`reply`]: reading replies off a connection.
//! - [`connection`]: the [`Connector`], built once per run: TCP, TLS and the `AUTH`/`SELECT`
//!   handshake, one way to report a failure to connect.
//! - [`resp`]: RESP encoding of commands, and reading a built command back.
//! - [`follow_up`]: guarded writes refused natively (the key exists), re-sent through the guard
//!   scripts.
//! - [`session`]: the bulk write session: pipelined batches over several connections, every reply
//!   checked.
//! - [`control`]: the control client of the ledger, `INFO` and the version check (the `redis`
//!   crate, over a connection opened and checked by the [`Connector`]).
//! - [`sentinel`]: where the master of a `redis+sentinel://` URL is (asked at every connect).
//! - [`capability`]: how hash tables are written on this server (`RESTORE` when the user may run
//!   it, within the server's listpack limits; else `HSET`), probed once per run.
//! - [`cluster`]: Redis Cluster topology (slot of a key, slot → master map, redirections) and
//!   the [`cluster::Router`] that spreads rows over the write queues.
//! - [`cluster_session`]: the bulk writer on a cluster (per master; redirections and failovers
//!   followed, unacknowledged batches resent).
//! - [`dump`]: the `RESTORE` payload of a hash (Redis's `DUMP` format: a listpack, its RDB
//!   version and CRC), and the listpack limits that send a hash the `HSET` way instead.

pub mod acl;
pub mod capability;
pub mod cluster;
mod cluster_session;
pub mod command;
pub mod connection;
pub mod control;
pub mod dump;
mod follow_up;
pub mod reply;
mod resp;
pub mod script;
pub mod sentinel;
pub mod session;

pub use cluster::{key_slot, NodeAddr, Router, Topology};
pub use command::{
    parse_command, route, Acknowledges, CommandBatch, Expiry, WriteStyle, GUARDED_KEYS_PER_CALL,
    HASH_KEYS_PER_CALL, MAX_BATCH_BYTES,
};
pub use connection::{ConnectStep, Connection, Connector, RedisStream};
pub use reply::{Reply, ReplyReader};
pub use script::{ScriptShas, DELETE_IF_OLDER_SCRIPT, GUARDED_SET_SCRIPT, HASH_REPLACE_SCRIPT};
pub use session::{SessionBroken, WriteSession, WriteTotals};
