//! Redis commands in RESP, built straight from encoded rows into one reusable byte buffer.
//!
//! Plain writes are `SET key value PXAT ms`. A hash is replaced whole, so each key is replaced
//! atomically (readers never see a missing key or a half-written hash): by one
//! `RESTORE key ms payload REPLACE ABSTTL` when the server allows `RESTORE` and the hash fits
//! its listpack limits (the payload from [`super::dump`]), else in a `MULTI` transaction of
//! `DEL`, `HSET`, `PEXPIREAT`. Writes that must not overwrite newer data (loading a partition
//! older than the newest loaded one) are native first when the session re-sends refusals (one
//! server, see [`CommandBatch::follow_ups`]): `SET key value NX PXAT ms`, or
//! `RESTORE key ms payload ABSTTL` without `REPLACE`, which write a key that is not there at
//! Redis's own speed; a key that is there refuses them, and the session re-sends just those rows
//! through the guard scripts of [`super::script`] ([`super::follow_up`]), which keep a newer key.
//! Otherwise (a cluster, or no `RESTORE` for hashes) guarded writes go straight through the
//! multi-key scripts, [`GUARDED_KEYS_PER_CALL`] keys a call.

use crate::encode::EncodedRows;

use super::dump::{push_hash_payload, push_hash_table_payload, HashListpackLimits, HashPayload};
pub use super::resp::parse_command;
use super::resp::{push_bulk, push_decimal};
use super::script::ScriptShas;

/// Keys per `MULTI` transaction of the `HSET` way of replacing hashes.
pub const HASH_KEYS_PER_CALL: usize = 32;

/// Keys per guarded script call: enough to spread the call's fixed cost, few enough that one
/// call holds Redis for well under a millisecond.
pub const GUARDED_KEYS_PER_CALL: usize = 128;

/// A batch is full once its bytes reach this, whatever its row count: big values do not make
/// batches (and the memory of the batches in flight) grow without bound.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// What the reply to one command acknowledges, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledges {
    /// `+OK`, or `:n` keys written of those the command covers (the rest kept a newer value).
    Written,
    /// `SET ... NX` or `RESTORE` without `REPLACE`: `+OK` written; a null reply or `BUSYKEY` if
    /// the key exists: refused, to be re-sent through the guard script (a follow-up).
    WrittenUnlessExists,
    /// `EXEC`: the replies of the queued commands; `empty` of its keys had an empty hash and
    /// were deleted.
    Exec {
        /// Keys deleted because their hash was empty.
        empty: u16,
    },
    /// The hash-replacement script: `[written, deleted]`; the other keys kept a newer value.
    WrittenAndDeleted,
    /// `DEL` of a key whose hash is empty: `:0` or `:1`, the key is gone either way.
    DeletedEmpty,
    /// `WAIT`: at least `wanted` replicas must have acknowledged.
    Replicas {
        /// `[redis] wait_replicas`.
        wanted: u16,
    },
}

/// The keys a command covers and what its reply says about them.
#[derive(Debug, Clone, Copy)]
struct CommandKeys {
    keys: u16,
    acknowledges: Acknowledges,
}

/// A command covers at most [`GUARDED_KEYS_PER_CALL`] keys: the conversion cannot fail.
fn key_count(keys: usize) -> u16 {
    u16::try_from(keys).expect("a command covers at most GUARDED_KEYS_PER_CALL keys")
}

/// How the rows of a partition are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStyle {
    /// `SET key value PXAT ms`: the partition is the newest loaded, nothing newer to protect.
    Set,
    /// Guarded SET through [`super::script::GUARDED_SET_SCRIPT`], many keys a call.
    GuardedSet,
    /// Hash replacement. Unguarded: `RESTORE ... REPLACE ABSTTL` per key when `restore` gives
    /// the server's listpack limits and the hash is within them, else `MULTI`, (`DEL`, `HSET`,
    /// `PEXPIREAT`) per key, `EXEC`. Guarded: through [`super::script::HASH_REPLACE_SCRIPT`],
    /// which restores or `HSET`s each key the same way.
    Hash {
        /// Keep keys that expire later (are newer).
        guarded: bool,
        /// `RESTORE` is allowed: the server's listpack limits. `None`: always the `HSET` way.
        restore: Option<HashListpackLimits>,
    },
    /// `HSET` + `PEXPIREAT` as plain commands: exports for `redis-cli --pipe` into a KV without
    /// these keys (no stale-field removal, not atomic, so never used for loading a live KV).
    HashPlain,
}

/// A batch of commands for one connection: their RESP bytes and where each command starts.
#[derive(Debug, Default)]
pub struct CommandBatch {
    /// RESP bytes of every command, back to back.
    pub bytes: Vec<u8>,
    /// Offset of each command in `bytes` (to name the key of a refused command).
    pub starts: Vec<usize>,
    /// Keys each command covers.
    keys: Vec<CommandKeys>,
    /// Rows added so far.
    pending_keys: usize,
    /// Rows added whose hash is empty (every value null): their key is deleted.
    pending_empty_keys: usize,
    /// A guarded script call still collecting keys.
    open: Option<OpenCall>,
    /// Keys in an open `MULTI` transaction (unguarded hash replacement).
    open_multi: usize,
    /// Keys of the open `MULTI` transaction whose hash is empty.
    open_multi_empty: usize,
    /// The `RESTORE` payload being built (reused from row to row).
    payload: Vec<u8>,
    /// On a cluster: every hash transaction or script call covers one key (one slot).
    one_key_per_call: bool,
    /// The session re-sends refused native guarded writes through the guard scripts: guarded
    /// rows are written natively first.
    follow_ups: bool,
    /// Every earlier batch of the connection must be answered, and its follow-ups sent, before
    /// this one is written (it starts with the guarded delete of an empty hash).
    barrier: bool,
    /// Native guarded writes (`SET ... NX`, `RESTORE` without `REPLACE`) among the commands.
    native_writes: usize,
}

/// A multi-key guarded script call, written out by [`CommandBatch::seal`] as
/// `EVALSHA sha 0 expiry args...`.
#[derive(Debug)]
struct OpenCall {
    sha: String,
    expiry: String,
    acknowledges: Acknowledges,
    /// RESP bulk strings of the arguments after the expiry.
    args: Vec<u8>,
    nargs: usize,
    nkeys: usize,
}

impl CommandBatch {
    /// An empty batch with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize, commands: usize) -> Self {
        CommandBatch {
            bytes: Vec::with_capacity(bytes),
            starts: Vec::with_capacity(commands),
            keys: Vec::with_capacity(commands),
            ..CommandBatch::default()
        }
    }

    /// Every hash transaction or script call of this batch covers one key (a cluster: the keys
    /// of one call must be in one slot).
    pub fn one_key_per_call(mut self, one: bool) -> Self {
        self.one_key_per_call = one;
        self
    }

    /// Guarded rows are written natively first (`SET ... NX`, `RESTORE` without `REPLACE`): the
    /// session re-sends the refused ones through the guard scripts (one server, not a cluster).
    pub fn follow_ups(mut self, on: bool) -> Self {
        self.follow_ups = on;
        self
    }

    /// True when every earlier batch of the connection must be answered, and its follow-ups
    /// sent, before this one is written.
    pub fn is_barrier(&self) -> bool {
        self.barrier
    }

    /// True when row `row` must start a barrier batch ([`CommandBatch::is_barrier`]): the guarded
    /// delete of an empty hash, written natively first. A delete would let a later row of the
    /// key be written natively while an earlier one still waits for its follow-up, which would
    /// then overwrite it; after a barrier, no follow-up of an earlier row is pending.
    pub fn needs_barrier(&self, rows: &EncodedRows, row: usize, style: WriteStyle) -> bool {
        let native_hash = matches!(
            style,
            WriteStyle::Hash {
                guarded: true,
                restore: Some(_),
            }
        );
        self.follow_ups && native_hash && rows.fields(row).next().is_none()
    }

    /// Native guarded writes among the commands (the rows a refusal would follow up).
    pub fn native_writes(&self) -> usize {
        self.native_writes
    }

    /// Makes this (empty) batch a barrier batch.
    pub fn set_barrier(&mut self) {
        self.barrier = true;
    }

    /// Keys of one call at most: `limit`, or one on a cluster.
    fn keys_per_call(&self, limit: usize) -> usize {
        if self.one_key_per_call {
            1
        } else {
            limit
        }
    }

    /// Appends `WAIT replicas timeout_ms`: its reply must count at least `replicas`.
    pub fn push_wait(&mut self, replicas: usize, timeout_ms: u64) {
        let wanted = u16::try_from(replicas).unwrap_or(u16::MAX);
        self.begin_for_keys(3, 0, Acknowledges::Replicas { wanted });
        self.arg(b"WAIT");
        let mut text = itoa::Buffer::new();
        self.arg(text.format(replicas).as_bytes());
        self.arg(text.format(timeout_ms).as_bytes());
    }

    /// Appends `ASKING` (covers no key): the next command is for a slot being imported.
    pub fn push_asking(&mut self) {
        self.begin_for_keys(1, 0, Acknowledges::Written);
        self.arg(b"ASKING");
    }

    /// True when command `index` is `MULTI`.
    pub fn is_multi(&self, index: usize) -> bool {
        const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
        self.command_bytes(index).starts_with(MULTI)
    }

    /// The RESP bytes of command `index`.
    pub fn command_bytes(&self, index: usize) -> &[u8] {
        let start = self.starts.get(index).copied().unwrap_or(self.bytes.len());
        let end = self
            .starts
            .get(index + 1)
            .copied()
            .unwrap_or(self.bytes.len());
        &self.bytes[start..end]
    }

    /// Appends commands `range` of `from` (sealed), with what they acknowledge: resending
    /// redirected commands to another node.
    pub fn append_commands(&mut self, from: &CommandBatch, range: std::ops::Range<usize>) {
        for index in range {
            if from.keys[index].acknowledges == Acknowledges::WrittenUnlessExists {
                self.native_writes += 1;
            }
            self.starts.push(self.bytes.len());
            self.keys.push(from.keys[index]);
            self.bytes.extend_from_slice(from.command_bytes(index));
        }
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True when there is no command.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    fn begin(&mut self, args: usize) {
        self.begin_for_keys(args, 1, Acknowledges::Written);
    }

    fn begin_for_keys(&mut self, args: usize, keys: usize, acknowledges: Acknowledges) {
        if acknowledges == Acknowledges::WrittenUnlessExists {
            self.native_writes += 1;
        }
        self.starts.push(self.bytes.len());
        self.keys.push(CommandKeys {
            keys: key_count(keys),
            acknowledges,
        });
        self.bytes.push(b'*');
        self.push_number(args as u64);
    }

    fn push_number(&mut self, n: u64) {
        push_decimal(&mut self.bytes, n);
    }

    fn arg(&mut self, value: &[u8]) {
        push_bulk(&mut self.bytes, value);
    }

    /// Writes out the open `MULTI` transaction and script call, if any. Done before a batch is
    /// sent.
    pub fn seal(&mut self) {
        self.seal_multi();
        let Some(open) = self.open.take() else {
            return;
        };
        self.begin_for_keys(4 + open.nargs, open.nkeys, open.acknowledges);
        self.arg(b"EVALSHA");
        self.arg(open.sha.as_bytes());
        self.arg(b"0");
        self.arg(open.expiry.as_bytes());
        self.bytes.extend_from_slice(&open.args);
    }

    /// Ends the open `MULTI` transaction with its `EXEC`, if there is one.
    fn seal_multi(&mut self) {
        if self.open_multi > 0 {
            let empty = key_count(self.open_multi_empty);
            self.begin_for_keys(1, self.open_multi, Acknowledges::Exec { empty });
            self.arg(b"EXEC");
            self.open_multi = 0;
            self.open_multi_empty = 0;
        }
    }

    /// Rows added (keys written or to be written), including those of an open script call.
    pub fn pending_keys(&self) -> usize {
        self.pending_keys
    }

    /// Rows added, among [`CommandBatch::pending_keys`], whose hash is empty (every value null):
    /// their key is deleted, not written.
    pub fn empty_keys(&self) -> usize {
        self.pending_empty_keys
    }

    /// Bytes of the commands so far, those of an open script call included.
    pub fn byte_len(&self) -> usize {
        self.bytes.len() + self.open.as_ref().map_or(0, |open| open.args.len())
    }

    /// True when the batch should be sent: `max_keys` rows, or [`MAX_BATCH_BYTES`] bytes.
    pub fn is_full(&self, max_keys: usize) -> bool {
        self.pending_keys >= max_keys || self.byte_len() >= MAX_BATCH_BYTES
    }

    /// Commands queued between the `MULTI` before command `index` (an `EXEC`) and it.
    pub fn queued_before(&self, index: usize) -> usize {
        const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
        (0..index)
            .rev()
            .find(|&i| self.bytes[self.starts[i]..].starts_with(MULTI))
            .map_or(0, |multi| index - multi - 1)
    }

    /// Keys covered by command `index` (several for a transaction or a script call).
    pub fn keys_of(&self, index: usize) -> u64 {
        self.keys
            .get(index)
            .map_or(1, |command| command.keys.into())
    }

    /// What the reply to command `index` acknowledges.
    pub fn acknowledges(&self, index: usize) -> Acknowledges {
        self.keys
            .get(index)
            .map_or(Acknowledges::Written, |command| command.acknowledges)
    }

    /// Appends any command given as its arguments.
    pub fn push_command(&mut self, args: &[&[u8]]) {
        self.begin(args.len());
        for arg in args {
            self.arg(arg);
        }
    }

    /// Appends the write of row `row` of `rows` with the given style and absolute expiry.
    pub fn push_row(
        &mut self,
        rows: &EncodedRows,
        row: usize,
        style: WriteStyle,
        expiry: &Expiry,
        shas: &ScriptShas,
    ) {
        let key = rows.key(row);
        self.pending_keys += 1;
        match style {
            WriteStyle::Set => {
                self.begin(5);
                self.arg(b"SET");
                self.arg(key);
                self.arg(rows.value(row));
                self.arg(b"PXAT");
                self.arg(expiry.text.as_bytes());
            }
            WriteStyle::GuardedSet if self.follow_ups => {
                self.begin_for_keys(6, 1, Acknowledges::WrittenUnlessExists);
                self.arg(b"SET");
                self.arg(key);
                self.arg(rows.value(row));
                self.arg(b"NX");
                self.arg(b"PXAT");
                self.arg(expiry.text.as_bytes());
            }
            WriteStyle::GuardedSet => self.push_guarded_set(key, rows.value(row), expiry, shas),
            WriteStyle::HashPlain => {
                let fields = rows.fields(row).count();
                if fields == 0 {
                    self.pending_empty_keys += 1;
                } else {
                    self.begin(2 + 2 * fields);
                    self.arg(b"HSET");
                    self.arg(key);
                    for (name, value) in rows.fields(row) {
                        self.arg(name);
                        self.arg(value);
                    }
                    self.push_command(&[b"PEXPIREAT", key, expiry.text.as_bytes()]);
                }
            }
            WriteStyle::Hash {
                guarded: false,
                restore,
            } => match self.restore_payload(rows, row, restore) {
                Some(HashPayload::Restore) => {
                    self.seal_multi();
                    self.begin(6);
                    self.arg(b"RESTORE");
                    self.arg(key);
                    self.arg(expiry.text.as_bytes());
                    push_bulk(&mut self.bytes, &self.payload);
                    self.arg(b"REPLACE");
                    self.arg(b"ABSTTL");
                }
                Some(HashPayload::Empty) => {
                    self.seal_multi();
                    self.pending_empty_keys += 1;
                    self.begin_for_keys(2, 1, Acknowledges::DeletedEmpty);
                    self.arg(b"DEL");
                    self.arg(key);
                }
                _ => self.push_hash_in_multi(rows, row, expiry),
            },
            WriteStyle::Hash {
                guarded: true,
                restore: Some(limits),
            } if self.follow_ups => self.push_hash_if_absent(rows, row, limits, expiry, shas),
            WriteStyle::Hash {
                guarded: true,
                restore,
            } => {
                if self.restore_payload(rows, row, restore) == Some(HashPayload::Restore) {
                    let payload = std::mem::take(&mut self.payload);
                    self.push_guarded_restore(key, &payload, expiry, shas);
                    self.payload = payload;
                } else {
                    self.push_guarded_hash_fields(rows, row, expiry, shas);
                }
            }
        }
    }

    /// Hash row `row`, guarded, native first: `RESTORE key ms payload ABSTTL` (no `REPLACE`: a
    /// key that exists refuses it), with the listpack payload within the server's limits and
    /// the hash-table one beyond them (both load as `HSET` would have written the key). An empty
    /// hash is the guard script's delete, a call of its own (in a barrier batch, see
    /// [`CommandBatch::needs_barrier`]).
    fn push_hash_if_absent(
        &mut self,
        rows: &EncodedRows,
        row: usize,
        limits: HashListpackLimits,
        expiry: &Expiry,
        shas: &ScriptShas,
    ) {
        let key = rows.key(row);
        self.payload.clear();
        let payload = match push_hash_payload(rows.fields(row), &limits, &mut self.payload) {
            HashPayload::Restore => true,
            HashPayload::Empty => false,
            HashPayload::BeyondLimits(_) => {
                push_hash_table_payload(rows.fields(row), &limits, &mut self.payload)
            }
        };
        if !payload {
            // Empty (or a string of 4 GiB): through the script, sealed at once so that it runs
            // before the commands that follow it.
            self.seal();
            self.push_guarded_hash_fields(rows, row, expiry, shas);
            self.seal();
            return;
        }
        self.begin_for_keys(5, 1, Acknowledges::WrittenUnlessExists);
        self.arg(b"RESTORE");
        self.arg(key);
        self.arg(expiry.text.as_bytes());
        push_bulk(&mut self.bytes, &self.payload);
        self.arg(b"ABSTTL");
    }

    /// Adds `key value` to the open guarded-SET script call (opening one).
    pub(super) fn push_guarded_set(
        &mut self,
        key: &[u8],
        value: &[u8],
        expiry: &Expiry,
        shas: &ScriptShas,
    ) {
        let open = self.call_for(&shas.guarded_set, expiry, Acknowledges::Written);
        push_bulk(&mut open.args, key);
        push_bulk(&mut open.args, value);
        open.nargs += 2;
        self.count_call_key();
    }

    /// Adds `key -1 payload` (a `RESTORE` payload) to the open hash-replacement script call.
    pub(super) fn push_guarded_restore(
        &mut self,
        key: &[u8],
        payload: &[u8],
        expiry: &Expiry,
        shas: &ScriptShas,
    ) {
        let open = self.call_for(&shas.hash_replace, expiry, Acknowledges::WrittenAndDeleted);
        push_bulk(&mut open.args, key);
        push_bulk(&mut open.args, b"-1");
        push_bulk(&mut open.args, payload);
        open.nargs += 3;
        self.count_call_key();
    }

    /// Adds hash row `row` as `key n field value ...` (the `HSET` way; `n` = 0 deletes the key)
    /// to the open hash-replacement script call.
    fn push_guarded_hash_fields(
        &mut self,
        rows: &EncodedRows,
        row: usize,
        expiry: &Expiry,
        shas: &ScriptShas,
    ) {
        let (key, count) = (rows.key(row), rows.fields(row).count());
        if count == 0 {
            self.pending_empty_keys += 1;
        }
        let open = self.call_for(&shas.hash_replace, expiry, Acknowledges::WrittenAndDeleted);
        push_bulk(&mut open.args, key);
        let mut text = itoa::Buffer::new();
        push_bulk(&mut open.args, text.format(count).as_bytes());
        for (name, value) in rows.fields(row) {
            push_bulk(&mut open.args, name);
            push_bulk(&mut open.args, value);
        }
        open.nargs += 2 + 2 * count;
        self.count_call_key();
    }

    /// The open script call, opened with `sha` if there is none, or if the open one runs
    /// another script or has another expiry (then written out first).
    fn call_for(
        &mut self,
        sha: &str,
        expiry: &Expiry,
        acknowledges: Acknowledges,
    ) -> &mut OpenCall {
        if self
            .open
            .as_ref()
            .is_some_and(|open| open.sha != sha || open.expiry != expiry.text)
        {
            self.seal();
        }
        self.open.get_or_insert_with(|| OpenCall {
            sha: sha.to_string(),
            expiry: expiry.text.clone(),
            acknowledges,
            args: Vec::new(),
            nargs: 0,
            nkeys: 0,
        })
    }

    /// Builds the `RESTORE` payload of hash row `row` into `self.payload` and says what was
    /// built; `None` when `RESTORE` is not allowed (`restore` is `None`).
    fn restore_payload(
        &mut self,
        rows: &EncodedRows,
        row: usize,
        restore: Option<HashListpackLimits>,
    ) -> Option<HashPayload> {
        let limits = restore?;
        self.payload.clear();
        Some(push_hash_payload(
            rows.fields(row),
            &limits,
            &mut self.payload,
        ))
    }

    /// Adds hash row `row` to the open `MULTI` transaction (opening one): `DEL`, and unless the
    /// hash is empty `HSET` and `PEXPIREAT`.
    fn push_hash_in_multi(&mut self, rows: &EncodedRows, row: usize, expiry: &Expiry) {
        let key = rows.key(row);
        if self.open_multi == 0 {
            self.begin_for_keys(1, 0, Acknowledges::Written);
            self.arg(b"MULTI");
        }
        self.begin_for_keys(2, 0, Acknowledges::Written);
        self.arg(b"DEL");
        self.arg(key);
        let fields = rows.fields(row).count();
        if fields == 0 {
            self.pending_empty_keys += 1;
            self.open_multi_empty += 1;
        } else {
            self.begin_for_keys(2 + 2 * fields, 0, Acknowledges::Written);
            self.arg(b"HSET");
            self.arg(key);
            for (name, value) in rows.fields(row) {
                self.arg(name);
                self.arg(value);
            }
            self.begin_for_keys(3, 0, Acknowledges::Written);
            self.arg(b"PEXPIREAT");
            self.arg(key);
            self.arg(expiry.text.as_bytes());
        }
        self.open_multi += 1;
        if self.open_multi >= self.keys_per_call(HASH_KEYS_PER_CALL) {
            self.seal_multi();
        }
    }

    /// Counts a key added to the open script call, and writes the call out once it is full.
    fn count_call_key(&mut self) {
        let per_call = self.keys_per_call(GUARDED_KEYS_PER_CALL);
        if let Some(open) = self.open.as_mut() {
            open.nkeys += 1;
            if open.nkeys >= per_call {
                self.seal();
            }
        }
    }

    /// Appends `EVALSHA delete_if_older 1 key expiry`.
    pub fn push_delete_if_older(&mut self, key: &[u8], expiry: &Expiry, shas: &ScriptShas) {
        self.pending_keys += 1;
        self.begin(5);
        self.arg(b"EVALSHA");
        self.arg(shas.delete_if_older.as_bytes());
        self.arg(b"1");
        self.arg(key);
        self.arg(expiry.text.as_bytes());
    }

    /// The name of command `index` (upper case), for error messages.
    pub fn command_of(&self, index: usize) -> String {
        let args = parse_command(self.command_bytes(index));
        args.first()
            .map(|name| String::from_utf8_lossy(name).to_uppercase())
            .unwrap_or_default()
    }

    /// The key of command `index` (its second argument; the first key of a script call or a
    /// transaction), for error messages.
    pub fn key_of(&self, index: usize) -> String {
        let args = parse_command(self.command_bytes(index));
        let key = match args.first().map(|a| a.as_slice()) {
            // `EVALSHA sha 0 expiry key ...` or `EVALSHA sha 1 key ...`.
            Some(b"EVALSHA") if args.get(2).is_some_and(|n| n == b"0") => args.get(4),
            Some(b"EVALSHA") => args.get(3),
            // A transaction: name its first key (the first queued command).
            Some(b"EXEC") => {
                let queued = self.queued_before(index);
                return if queued == 0 {
                    String::new()
                } else {
                    self.key_of(index - queued)
                };
            }
            _ => args.get(1),
        };
        key.map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default()
    }
}

/// An absolute expiry, milliseconds since the epoch, with its decimal text ready for commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// Milliseconds since the epoch.
    pub millis: i64,
    text: String,
}

impl Expiry {
    /// An expiry at `millis`.
    pub fn at(millis: i64) -> Self {
        Expiry {
            millis,
            text: millis.to_string(),
        }
    }
}

/// A cheap, stable hash of a key, to route every write of one key to the same connection (so
/// that, within a partition, the last row of a key wins, in file order).
pub fn route(key: &[u8], connections: usize) -> usize {
    // FNV-1a: stable across runs and platforms, fast on short keys.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % connections.max(1) as u64) as usize
}

#[cfg(test)]
#[path = "command_tests.rs"]
pub(super) mod tests;
