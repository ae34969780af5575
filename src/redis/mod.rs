//! Everything that talks to Redis, in one layer.
//!
//! - [`command`]: the write commands (RESP bytes) built from encoded rows, batched per connection.
//! - [`script`]: the Lua scripts of guarded writes and hash replacement, and their digests.
//! - [`reply`]: reading replies off a connection.
//! - [`connection`]: TCP, TLS and the `AUTH`/`SELECT` handshake.
//! - [`session`]: the bulk write session: pipelined batches over several connections, every reply
//!   checked.
//!
//! The ledger ([`crate::ledger`]) uses the `redis` crate for its few control commands.

pub mod command;
pub mod connection;
pub mod reply;
pub mod script;
pub mod session;

pub use command::{parse_command, route, CommandBatch, Expiry, WriteStyle, HASH_KEYS_PER_CALL};
pub use connection::{Connection, RedisStream};
pub use reply::{Reply, ReplyReader};
pub use script::{ScriptShas, DELETE_IF_OLDER_SCRIPT, GUARDED_SET_SCRIPT, HASH_REPLACE_SCRIPT};
pub use session::{SessionBroken, WriteSession, WriteTotals};
