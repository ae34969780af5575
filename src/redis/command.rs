//! Redis commands in RESP, built straight from encoded rows into one reusable byte buffer.
//!
//! Plain writes are `SET key value PXAT ms`. Writes that must not overwrite newer data (loading a
//! partition older than the newest loaded one) go through the Lua scripts of
//! [`super::script`]; hash values are replaced whole, in a `MULTI` transaction or a script, so
//! each key is replaced atomically: readers never see a missing key or a half-written hash.

use crate::encode::EncodedRows;

use super::script::ScriptShas;

/// Keys per hash-replacement script call or `MULTI` transaction.
pub const HASH_KEYS_PER_CALL: usize = 32;

/// A batch is full once its bytes reach this, whatever its row count: big values do not make
/// batches (and the memory of the batches in flight) grow without bound.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// What the reply to one command acknowledges, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledges {
    /// `+OK`, or `:n` keys written of those the command covers (the rest kept a newer value).
    Written,
    /// `EXEC`: the replies of the queued commands; `empty` of its keys had an empty hash and
    /// were deleted.
    Exec {
        /// Keys deleted because their hash was empty.
        empty: u16,
    },
    /// The hash-replacement script: `[written, deleted]`; the other keys kept a newer value.
    WrittenAndDeleted,
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

/// A command covers at most [`HASH_KEYS_PER_CALL`] keys: the conversion cannot fail.
fn key_count(keys: usize) -> u16 {
    u16::try_from(keys).expect("a command covers at most HASH_KEYS_PER_CALL keys")
}

/// How the rows of a partition are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStyle {
    /// `SET key value PXAT ms`: the partition is the newest loaded, nothing newer to protect.
    Set,
    /// Guarded SET through [`super::script::GUARDED_SET_SCRIPT`].
    GuardedSet,
    /// Hash replacement: unguarded as `MULTI`, (`DEL`, `HSET`, `PEXPIREAT`) per key, `EXEC`
    /// (native commands, atomic per transaction); guarded through
    /// [`super::script::HASH_REPLACE_SCRIPT`].
    Hash {
        /// Keep keys that expire later (are newer).
        guarded: bool,
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
    /// A hash-replacement call still collecting keys.
    open: Option<OpenHashCall>,
    /// Keys in an open `MULTI` transaction (unguarded hash replacement).
    open_multi: usize,
    /// Keys of the open `MULTI` transaction whose hash is empty.
    open_multi_empty: usize,
    /// On a cluster: every hash transaction or script call covers one key (one slot).
    one_key_per_call: bool,
}

/// The parts of a multi-key hash-replacement call, written out by [`CommandBatch::seal`].
#[derive(Debug, Default)]
struct OpenHashCall {
    /// Script digest, expiry text, guard flag.
    header: [String; 3],
    /// RESP bulk strings of the keys.
    keys: Vec<u8>,
    nkeys: usize,
    /// RESP bulk strings of the per-key field counts and pairs.
    argv: Vec<u8>,
    nargv: usize,
}

fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_bulk(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'$');
    push_decimal(out, value.len() as u64);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

impl CommandBatch {
    /// An empty batch with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize, commands: usize) -> Self {
        CommandBatch {
            bytes: Vec::with_capacity(bytes),
            starts: Vec::with_capacity(commands),
            keys: Vec::with_capacity(commands),
            pending_keys: 0,
            pending_empty_keys: 0,
            open: None,
            open_multi: 0,
            open_multi_empty: 0,
            one_key_per_call: false,
        }
    }

    /// Every hash transaction or script call of this batch covers one key (a cluster: the keys
    /// of one call must be in one slot).
    pub fn one_key_per_call(mut self, one: bool) -> Self {
        self.one_key_per_call = one;
        self
    }

    fn keys_per_call(&self) -> usize {
        if self.one_key_per_call {
            1
        } else {
            HASH_KEYS_PER_CALL
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

    /// Writes out the open hash-replacement call, if any. Done before a batch is sent.
    pub fn seal(&mut self) {
        if self.open_multi > 0 {
            let empty = key_count(self.open_multi_empty);
            self.begin_for_keys(1, self.open_multi, Acknowledges::Exec { empty });
            self.arg(b"EXEC");
            self.open_multi = 0;
            self.open_multi_empty = 0;
        }
        let Some(open) = self.open.take() else {
            return;
        };
        let args = 3 + open.nkeys + 2 + open.nargv;
        self.begin_for_keys(args, open.nkeys, Acknowledges::WrittenAndDeleted);
        self.arg(b"EVALSHA");
        self.arg(open.header[0].as_bytes());
        let mut count = itoa::Buffer::new();
        self.arg(count.format(open.nkeys).as_bytes());
        self.bytes.extend_from_slice(&open.keys);
        self.arg(open.header[1].as_bytes());
        self.arg(open.header[2].as_bytes());
        self.bytes.extend_from_slice(&open.argv);
    }

    /// Rows added (keys written or to be written), including those of an open hash call.
    pub fn pending_keys(&self) -> usize {
        self.pending_keys
    }

    /// Rows added, among [`CommandBatch::pending_keys`], whose hash is empty (every value null):
    /// their key is deleted, not written.
    pub fn empty_keys(&self) -> usize {
        self.pending_empty_keys
    }

    /// Bytes of the commands so far, those of an open hash call included.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
            + self
                .open
                .as_ref()
                .map_or(0, |open| open.keys.len() + open.argv.len())
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

    /// Keys covered by command `index` (several for a hash-replacement call).
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
            WriteStyle::GuardedSet => {
                self.begin(6);
                self.arg(b"EVALSHA");
                self.arg(shas.guarded_set.as_bytes());
                self.arg(b"1");
                self.arg(key);
                self.arg(rows.value(row));
                self.arg(expiry.text.as_bytes());
            }
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
            WriteStyle::Hash { guarded: false } => {
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
                if self.open_multi >= self.keys_per_call() {
                    self.seal();
                }
            }
            WriteStyle::Hash { guarded: true } => {
                let per_call = self.keys_per_call();
                let open = self.open.get_or_insert_with(|| OpenHashCall {
                    header: [
                        shas.hash_replace.clone(),
                        expiry.text.clone(),
                        "1".to_string(),
                    ],
                    ..OpenHashCall::default()
                });
                open.keys.push(b'$');
                push_decimal(&mut open.keys, key.len() as u64);
                open.keys.extend_from_slice(key);
                open.keys.extend_from_slice(b"\r\n");
                open.nkeys += 1;
                let fields = rows.fields(row).count();
                if fields == 0 {
                    self.pending_empty_keys += 1;
                }
                let mut count = itoa::Buffer::new();
                push_bulk(&mut open.argv, count.format(fields).as_bytes());
                for (name, value) in rows.fields(row) {
                    push_bulk(&mut open.argv, name);
                    push_bulk(&mut open.argv, value);
                }
                open.nargv += 1 + 2 * fields;
                if open.nkeys >= per_call {
                    self.seal();
                }
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

    /// The key (second argument, or fourth for EVALSHA) of command `index`, for error messages.
    pub fn key_of(&self, index: usize) -> String {
        let start = self.starts.get(index).copied().unwrap_or(0);
        let end = self
            .starts
            .get(index + 1)
            .copied()
            .unwrap_or(self.bytes.len());
        let args = parse_command(&self.bytes[start..end]);
        let key = match args.first().map(|a| a.as_slice()) {
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

/// Parses one RESP command (array of bulk strings) into its arguments; used for error messages
/// and tests only, never on the write path.
pub fn parse_command(bytes: &[u8]) -> Vec<Vec<u8>> {
    fn line(bytes: &[u8], pos: &mut usize) -> Option<usize> {
        let rest = bytes.get(*pos..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let n = std::str::from_utf8(&rest[1..end]).ok()?.parse().ok()?;
        *pos += end + 2;
        Some(n)
    }
    let mut pos = 0;
    let mut args = Vec::new();
    let Some(count) = line(bytes, &mut pos) else {
        return args;
    };
    for _ in 0..count {
        let Some(len) = line(bytes, &mut pos) else {
            break;
        };
        let Some(arg) = bytes.get(pos..pos + len) else {
            break;
        };
        args.push(arg.to_vec());
        pos += len + 2;
    }
    args
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
pub(super) mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        let mut batch = CommandBatch::default();
        batch.push_command(&[
            b"SET",
            b"cold:orders:1",
            b"{\"a\":1}",
            b"PXAT",
            b"1700000000000",
        ]);
        batch.push_command(&[b"EVALSHA", b"abc", b"1", b"k2", b"v", b"5"]);
        assert_eq!(
            &batch.bytes[..batch.starts[1]],
            b"*5\r\n$3\r\nSET\r\n$13\r\ncold:orders:1\r\n$7\r\n{\"a\":1}\r\n$4\r\nPXAT\r\n$13\r\n1700000000000\r\n"
        );
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.key_of(0), "cold:orders:1");
        assert_eq!(batch.key_of(1), "k2");
        assert_eq!(
            parse_command(&batch.bytes[batch.starts[1]..]),
            vec![
                b"EVALSHA".to_vec(),
                b"abc".to_vec(),
                b"1".to_vec(),
                b"k2".to_vec(),
                b"v".to_vec(),
                b"5".to_vec()
            ]
        );
    }

    /// Two hash rows: `k:1` with `city = Wien`, `k:2` with every value null (an empty hash).
    pub(in crate::redis) fn hash_rows() -> EncodedRows {
        use std::sync::Arc;

        use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};

        use crate::encode::{DateEncoding, EncodeSpec, RowEncoder, TimestampEncoding, ValueFormat};
        use crate::template::KeyTemplate;

        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            (
                "city",
                Arc::new(StringArray::from(vec![Some("Wien"), None])) as ArrayRef,
            ),
        ])
        .unwrap();
        let spec = Arc::new(EncodeSpec {
            key: KeyTemplate::parse("k:{id}").unwrap(),
            format: ValueFormat::Hash,
            columns: vec!["city".into()],
            timestamp: TimestampEncoding::Iso8601,
            date: DateEncoding::Iso8601,
        });
        let mut rows = EncodedRows::new();
        RowEncoder::new(spec, &batch.schema())
            .unwrap()
            .encode_batch(&batch, &mut rows)
            .unwrap();
        rows
    }

    #[test]
    fn hash_rows_share_one_script_call_until_sealed() {
        let rows = hash_rows();
        let shas = ScriptShas {
            hash_replace: "sha".into(),
            ..ScriptShas::default()
        };
        let expiry = Expiry::at(5);
        let mut batch = CommandBatch::default();
        batch.push_row(&rows, 0, WriteStyle::Hash { guarded: true }, &expiry, &shas);
        batch.push_row(&rows, 1, WriteStyle::Hash { guarded: true }, &expiry, &shas);
        assert_eq!((batch.len(), batch.pending_keys()), (0, 2));
        batch.seal();
        assert_eq!((batch.len(), batch.keys_of(0)), (1, 2));
        let args: Vec<String> = parse_command(&batch.bytes)
            .into_iter()
            .map(|a| String::from_utf8(a).unwrap())
            .collect();
        assert_eq!(
            args,
            ["EVALSHA", "sha", "2", "k:1", "k:2", "5", "1", "1", "city", "Wien", "0"]
        );
        assert_eq!(batch.key_of(0), "k:1");

        let mut multi = CommandBatch::default();
        multi.push_row(
            &rows,
            0,
            WriteStyle::Hash { guarded: false },
            &expiry,
            &shas,
        );
        multi.push_row(
            &rows,
            1,
            WriteStyle::Hash { guarded: false },
            &expiry,
            &shas,
        );
        multi.seal();
        let commands: Vec<Vec<String>> = (0..multi.len())
            .map(|i| {
                let end = multi.starts.get(i + 1).map_or(multi.bytes.len(), |e| *e);
                parse_command(&multi.bytes[multi.starts[i]..end])
                    .into_iter()
                    .map(|a| String::from_utf8(a).unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(
            commands,
            vec![
                vec!["MULTI"],
                vec!["DEL", "k:1"],
                vec!["HSET", "k:1", "city", "Wien"],
                vec!["PEXPIREAT", "k:1", "5"],
                vec!["DEL", "k:2"],
                vec!["EXEC"],
            ]
        );
        assert_eq!(
            (multi.keys_of(0), multi.keys_of(5), multi.pending_keys()),
            (0, 2, 2)
        );
        assert_eq!(multi.key_of(5), "k:1");
        assert_eq!(multi.queued_before(5), 4);

        let mut plain = CommandBatch::default();
        plain.push_row(&rows, 0, WriteStyle::HashPlain, &expiry, &shas);
        plain.push_row(&rows, 1, WriteStyle::HashPlain, &expiry, &shas);
        assert_eq!((plain.len(), plain.pending_keys()), (2, 2));
        assert_eq!(
            plain.bytes,
            b"*4\r\n$4\r\nHSET\r\n$3\r\nk:1\r\n$4\r\ncity\r\n$4\r\nWien\r\n*3\r\n$9\r\nPEXPIREAT\r\n$3\r\nk:1\r\n$1\r\n5\r\n"
        );
    }

    #[test]
    fn a_batch_is_full_at_its_byte_cap_whatever_its_row_count() {
        use std::sync::Arc;

        use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};

        use crate::encode::{DateEncoding, EncodeSpec, RowEncoder, TimestampEncoding, ValueFormat};
        use crate::template::KeyTemplate;

        // Three values of 6 MiB: the cap (16 MiB) is reached by the third row.
        let big = "x".repeat(6 << 20);
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "v",
                Arc::new(StringArray::from(vec![big.as_str(); 3])) as ArrayRef,
            ),
        ])
        .unwrap();
        let spec = Arc::new(EncodeSpec {
            key: KeyTemplate::parse("k:{id}").unwrap(),
            format: ValueFormat::Column("v".into()),
            columns: Vec::new(),
            timestamp: TimestampEncoding::Iso8601,
            date: DateEncoding::Iso8601,
        });
        let mut rows = EncodedRows::new();
        RowEncoder::new(spec, &batch.schema())
            .unwrap()
            .encode_batch(&batch, &mut rows)
            .unwrap();
        let (expiry, shas) = (Expiry::at(5), ScriptShas::default());
        for style in [WriteStyle::Set, WriteStyle::GuardedSet] {
            let mut out = CommandBatch::default();
            out.push_row(&rows, 0, style, &expiry, &shas);
            out.push_row(&rows, 1, style, &expiry, &shas);
            assert!(!out.is_full(1000), "{style:?}");
            out.push_row(&rows, 2, style, &expiry, &shas);
            assert!(out.is_full(1000), "{style:?}");
            assert!(out.byte_len() >= MAX_BATCH_BYTES);
            assert_eq!(out.key_of(2), "k:3");
            assert_eq!(out.starts[2], 2 * (out.bytes.len() / 3));
        }
        // The rows of an open hash-replacement call count too.
        let mut open = CommandBatch::default();
        assert!(!open.is_full(1));
        open.pending_keys = 1;
        assert!(open.is_full(1));
    }

    #[test]
    fn empty_hash_rows_are_counted_apart() {
        let rows = hash_rows();
        let shas = ScriptShas::default();
        let expiry = Expiry::at(5);
        for style in [
            WriteStyle::Hash { guarded: false },
            WriteStyle::Hash { guarded: true },
            WriteStyle::HashPlain,
        ] {
            let mut batch = CommandBatch::default();
            batch.push_row(&rows, 0, style, &expiry, &shas);
            batch.push_row(&rows, 1, style, &expiry, &shas);
            batch.seal();
            assert_eq!(
                (batch.pending_keys(), batch.empty_keys()),
                (2, 1),
                "{style:?}"
            );
            let last = batch.len() - 1;
            let expected = match style {
                WriteStyle::Hash { guarded: false } => Acknowledges::Exec { empty: 1 },
                WriteStyle::Hash { guarded: true } => Acknowledges::WrittenAndDeleted,
                _ => Acknowledges::Written,
            };
            assert_eq!(batch.acknowledges(last), expected, "{style:?}");
        }
    }

    #[test]
    fn on_a_cluster_each_hash_call_covers_one_key() {
        let rows = hash_rows();
        let (expiry, shas) = (Expiry::at(5), ScriptShas::default());
        let mut guarded = CommandBatch::default().one_key_per_call(true);
        guarded.push_row(&rows, 0, WriteStyle::Hash { guarded: true }, &expiry, &shas);
        guarded.push_row(&rows, 1, WriteStyle::Hash { guarded: true }, &expiry, &shas);
        guarded.seal();
        assert_eq!(guarded.len(), 2);
        assert_eq!((guarded.keys_of(0), guarded.keys_of(1)), (1, 1));
        assert_eq!(parse_command(guarded.command_bytes(0))[2], b"1");
        let mut multi = CommandBatch::default().one_key_per_call(true);
        multi.push_row(
            &rows,
            0,
            WriteStyle::Hash { guarded: false },
            &expiry,
            &shas,
        );
        multi.push_row(
            &rows,
            1,
            WriteStyle::Hash { guarded: false },
            &expiry,
            &shas,
        );
        multi.seal();
        let names: Vec<Vec<u8>> = (0..multi.len())
            .map(|i| parse_command(multi.command_bytes(i)).swap_remove(0))
            .collect();
        let expected: [&[u8]; 8] = [
            b"MULTI",
            b"DEL",
            b"HSET",
            b"PEXPIREAT",
            b"EXEC",
            b"MULTI",
            b"DEL",
            b"EXEC",
        ];
        assert_eq!(names, expected.map(<[u8]>::to_vec));
        assert!(multi.is_multi(5) && !multi.is_multi(4));
        // Copied commands keep what they acknowledge.
        let mut copy = CommandBatch::default();
        copy.push_asking();
        copy.append_commands(&multi, 5..8);
        assert_eq!(copy.len(), 4);
        assert_eq!(copy.acknowledges(3), Acknowledges::Exec { empty: 1 });
        assert_eq!(copy.keys_of(0), 0);
        assert_eq!(copy.key_of(2), "k:2");
    }

    #[test]
    fn routing_is_stable_and_in_range() {
        for n in 1..8 {
            for key in [&b"a"[..], b"cold:orders:42", b""] {
                let r = route(key, n);
                assert!(r < n);
                assert_eq!(r, route(key, n));
            }
        }
        assert_eq!(route(b"cold:orders:42", 1), 0);
    }
}
