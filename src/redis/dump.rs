//! The `RESTORE` payload of a hash: a row's field/value pairs in Redis's own serialization (the
//! bytes `DUMP` returns), so a hash key is replaced whole by one
//! `RESTORE key <abs-ms> <payload> REPLACE ABSTTL` instead of `DEL` + `HSET` + `PEXPIREAT`.
//!
//! Pure and allocation-free per row: [`push_hash_payload`] appends to the caller's buffer, or
//! appends nothing and says why the row must go the `HSET` path instead ([`HashPayload`]).
//!
//! # The format (Redis 7.0)
//! A payload is `type | object | RDB version | CRC`, as `createDumpPayload` in `src/cluster.c`
//! writes it and `verifyDumpPayload` checks it:
//! - **type**: one byte, `RDB_TYPE_HASH_LISTPACK` = 16 (`rdbSaveObjectType`, `src/rdb.c`).
//! - **object**: the listpack as one RDB string (`rdbSaveRawString`): its length in the
//!   `rdbSaveLen` encoding (`00xxxxxx` below 64; `01xxxxxx xxxxxxxx` below 16384; `0x80` + u32
//!   big-endian; `0x81` + u64 big-endian), then the listpack bytes. `DUMP` would try an integer
//!   encoding (never applies: a listpack's first byte is its small total length, not a digit) and
//!   LZF for strings over 20 bytes unless the server runs `rdbcompression no`; we always write
//!   the plain form, which `RESTORE` accepts whatever the server's setting.
//! - **RDB version**: u16 little-endian, 10 for Redis 7.0 (`RDB_VERSION`). Redis refuses a payload
//!   whose version is newer than its own, so version 10 restores on 7.0 and later.
//! - **CRC**: u64 little-endian, CRC-64/REDIS (Jones polynomial, reflected, init 0, xorout 0; the
//!   `crc` crate's `CRC_64_REDIS`) over everything before it.
//!
//! The listpack (`src/listpack.c`): a 6-byte header (total bytes, u32 LE; element count, u16 LE,
//! 65535 when it does not fit), the elements, a terminator byte `0xFF`. A hash is its fields and
//! values alternating, in insertion order (the order `HSET` appends them). Each element is an
//! encoding with its data, then its *backlen* (the length of encoding + data, 7 bits per byte,
//! high bit set on all but the first byte written; `lpEncodeBacklen`). Encodings, as
//! `lpEncodeGetType` picks them:
//! - A string that is a canonical decimal i64 (`lpStringToInt64`: at most 20 bytes, an optional
//!   `-`, no leading zero, no `+`, no space; `"0"` but not `"-0"` or `"007"`) is stored as an
//!   integer, in the narrowest form: 7-bit unsigned `0xxxxxxx` (0..=127), 13-bit `110xxxxx` +
//!   1 byte (-4096..=4095), then `0xF1`/`0xF2`/`0xF3`/`0xF4` + 2/3/4/8 bytes little-endian
//!   (two's complement).
//! - Any other string: `10xxxxxx` + data below 64 bytes, `1110xxxx xxxxxxxx` + data below
//!   4096 bytes, else `0xF0` + u32 LE length + data.
//!
//! The tests (`tests/restore_payload.rs`) check every one of these byte for byte against `DUMP` of
//! the same hash on a real Redis started with `rdbcompression no`, and check the meaning (fields,
//! encoding, expiry) against the `HSET` path on a Redis started with `sanitize-dump-payload yes`.
//!
//! # The limits rule, and why
//! Redis keeps a small hash as a listpack only while it has at most `hash-max-listpack-entries`
//! pairs (512 by default) and every field and value is at most `hash-max-listpack-value` bytes
//! (64); `HSET` converts it to a hash table past either limit. `RESTORE` in Redis 7.0 converts a
//! listpack only by the entry count: a listpack with a long value is kept as it is, so a restored
//! key would then differ from an `HSET` one in encoding, memory and access cost. So
//! [`push_hash_payload`] emits a payload only for a hash within both limits, as the server reports
//! them ([`HashListpackLimits`]), and also only while `HSET` would keep it a listpack by size
//! (`lpSafeToAdd`: at most 1 GiB); anything else is [`HashPayload::BeyondLimits`] and goes the
//! `HSET` path, so every key has the same encoding whichever way it was written. An empty hash has
//! no payload (Redis refuses to restore one): [`HashPayload::Empty`], the key is deleted, as the
//! `HSET` path does.
//!
//! # What the caller guarantees
//! Field names are distinct within a row. A duplicate field would be restored as two entries by
//! a server with the default `sanitize-dump-payload no` and corrupt the key; coldsync's hash
//! fields are the table's value columns, which the config refuses to list twice. Debug builds
//! check it.

use crc::{Crc, Table, CRC_64_REDIS};

/// The RDB object type of a hash encoded as a listpack (`RDB_TYPE_HASH_LISTPACK`).
pub const RDB_TYPE_HASH_LISTPACK: u8 = 16;

/// The RDB object type of a hash as its field/value strings (`RDB_TYPE_HASH`).
pub const RDB_TYPE_HASH: u8 = 4;

/// The RDB version written after the object: 10 is Redis 7.0's (`RDB_VERSION`).
pub const RDB_VERSION: u16 = 10;

/// The largest listpack `HSET` keeps (`LISTPACK_MAX_SAFETY_SIZE`, 1 GiB).
const LISTPACK_MAX_SAFETY_SIZE: usize = 1 << 30;

/// Bytes of an empty listpack: the header and the terminator (`lpNew`).
const EMPTY_LISTPACK_BYTES: usize = LISTPACK_HEADER_BYTES + 1;

/// Bytes of a listpack header: total bytes (u32) and element count (u16).
const LISTPACK_HEADER_BYTES: usize = 6;

/// The element count a listpack header holds when the count does not fit (`LP_HDR_NUMELE_UNKNOWN`).
const LISTPACK_COUNT_UNKNOWN: u16 = u16::MAX;

/// The widest `rdbSaveLen` form this encoder writes: `0x80` + u32 (a listpack is below 4 GiB).
const RDB_LEN_MAX_BYTES: usize = 5;

/// The checksum of a payload: CRC-64/REDIS, slice-by-16 tables.
static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// The server's limits for keeping a hash as a listpack (`hash-max-listpack-entries`,
/// `hash-max-listpack-value`). Read them with `CONFIG GET`; [`HashListpackLimits::default`] is
/// Redis's defaults, for when `CONFIG` is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashListpackLimits {
    /// `hash-max-listpack-entries`: the most field/value pairs of a listpack hash.
    pub max_entries: usize,
    /// `hash-max-listpack-value`: the longest field or value, in bytes, of a listpack hash.
    pub max_value_bytes: usize,
}

impl Default for HashListpackLimits {
    /// Redis's defaults: 512 entries, 64 bytes.
    fn default() -> Self {
        HashListpackLimits {
            max_entries: 512,
            max_value_bytes: 64,
        }
    }
}

impl HashListpackLimits {
    /// The limits from the values `CONFIG GET hash-max-listpack-entries` and
    /// `CONFIG GET hash-max-listpack-value` return (decimal text).
    pub fn from_config_values(entries: &str, value: &str) -> Result<Self, InvalidLimit> {
        let parse = |option: &'static str, text: &str| {
            text.trim().parse::<usize>().map_err(|_| InvalidLimit {
                option,
                value: text.to_string(),
            })
        };
        Ok(HashListpackLimits {
            max_entries: parse("hash-max-listpack-entries", entries)?,
            max_value_bytes: parse("hash-max-listpack-value", value)?,
        })
    }
}

/// A listpack limit the server reported is not a non-negative integer. Permanent: retrying reads
/// the same setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redis option {option} is {value:?}, not a non-negative integer")]
pub struct InvalidLimit {
    /// The Redis option, e.g. `hash-max-listpack-value`.
    pub option: &'static str,
    /// What `CONFIG GET` returned.
    pub value: String,
}

/// What [`push_hash_payload`] did with a row.
#[must_use = "only `Restore` appended a payload; the others need the HSET path or a DEL"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPayload {
    /// The payload was appended to the buffer: `RESTORE key <abs-ms> <payload> REPLACE ABSTTL`.
    Restore,
    /// The row has no fields: nothing was appended. There is no empty hash in Redis: delete the
    /// key, as the `HSET` path does.
    Empty,
    /// The hash is beyond the server's listpack limits: nothing was appended. Write it with
    /// `HSET`, so it gets the hash-table encoding an `HSET` gives it.
    BeyondLimits(LimitExceeded),
}

/// Which listpack limit a hash is beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitExceeded {
    /// More field/value pairs than `hash-max-listpack-entries`.
    Entries {
        /// The limit.
        max: usize,
    },
    /// A field or value longer than `hash-max-listpack-value`.
    ValueBytes {
        /// The length of the first field or value found too long.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Fields and values of more than 1 GiB in all: `HSET` would not keep such a listpack.
    ListpackBytes,
}

/// Appends the `DUMP`/`RESTORE` payload of the hash `fields` (field, value pairs in order, field
/// names distinct) to `out` and returns [`HashPayload::Restore`]; or, for an empty hash or one
/// beyond `limits`, leaves `out` as it was and says so.
///
/// `out` may already hold bytes (a command being built): they are kept and not checksummed. One
/// pass over `fields`; the only allocation is `out` growing.
pub fn push_hash_payload<'a, I>(
    fields: I,
    limits: &HashListpackLimits,
    out: &mut Vec<u8>,
) -> HashPayload
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let start = out.len();
    out.push(RDB_TYPE_HASH_LISTPACK);
    // The RDB length of the listpack goes here once it is known: room for the widest form, the
    // listpack moved down afterwards if a narrower one fits (a memmove of one small hash).
    let length_at = out.len();
    out.extend_from_slice(&[0; RDB_LEN_MAX_BYTES]);
    let listpack_at = out.len();
    out.extend_from_slice(&[0; LISTPACK_HEADER_BYTES]);

    let mut pairs = 0usize;
    // What `lpSafeToAdd` adds up when one HSET creates the hash: the raw bytes of every argument.
    let mut raw_bytes = EMPTY_LISTPACK_BYTES;
    for (field, value) in fields {
        pairs += 1;
        if pairs > limits.max_entries {
            out.truncate(start);
            return HashPayload::BeyondLimits(LimitExceeded::Entries {
                max: limits.max_entries,
            });
        }
        for element in [field, value] {
            if element.len() > limits.max_value_bytes {
                out.truncate(start);
                return HashPayload::BeyondLimits(LimitExceeded::ValueBytes {
                    len: element.len(),
                    max: limits.max_value_bytes,
                });
            }
            raw_bytes += element.len();
            if raw_bytes > LISTPACK_MAX_SAFETY_SIZE {
                out.truncate(start);
                return HashPayload::BeyondLimits(LimitExceeded::ListpackBytes);
            }
            push_listpack_element(element, out);
        }
    }
    if pairs == 0 {
        out.truncate(start);
        return HashPayload::Empty;
    }
    debug_assert!(
        fields_are_distinct(&out[listpack_at + LISTPACK_HEADER_BYTES..]),
        "push_hash_payload: a field name appears twice in one row"
    );
    out.push(0xFF);

    let listpack_bytes = out.len() - listpack_at;
    // Below 1 GiB of raw bytes plus a few bytes of overhead per element: fits a u32 as long as
    // the entry limit is sane (Redis's own listpack is bounded the same way).
    let Ok(total) = u32::try_from(listpack_bytes) else {
        out.truncate(start);
        return HashPayload::BeyondLimits(LimitExceeded::ListpackBytes);
    };
    let count = u16::try_from(2 * pairs).unwrap_or(LISTPACK_COUNT_UNKNOWN);
    out[listpack_at..listpack_at + 4].copy_from_slice(&total.to_le_bytes());
    out[listpack_at + 4..listpack_at + 6].copy_from_slice(&count.to_le_bytes());

    finish_payload(out, start, length_at, total);
    HashPayload::Restore
}

/// Appends the `RESTORE` payload of the hash `fields` in the plain hash form (`RDB_TYPE_HASH`:
/// the pair count, then each field and value as an RDB string, then the RDB version and CRC) and
/// returns true; appends nothing and returns false for an empty hash or a string of 4 GiB or more.
///
/// For a hash beyond the listpack limits (a listpack payload is cheaper to load when it is
/// within them). `RESTORE` of this form builds what `HSET` builds: Redis's `rdbLoadObject` starts
/// a listpack when the pair count is within `hash-max-listpack-entries` and converts it to a hash
/// table as soon as a field or value is longer than `hash-max-listpack-value` (or the listpack
/// would pass `lpSafeToAdd`), so the key gets the encoding and memory an `HSET` gives it. The
/// first pair with an element longer than `limits.max_value_bytes` is written first, so Redis
/// converts at once instead of building a listpack to throw away (a hash table has no order:
/// `HGETALL` is the same). Measured with `redis-cli --pipe`, 100,000 8-field hashes with one
/// 66-byte value: 6.16 us of `RESTORE` per key in column order, 5.55 us long value first.
pub fn push_hash_table_payload<'a, I>(
    fields: I,
    limits: &HashListpackLimits,
    out: &mut Vec<u8>,
) -> bool
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    I::IntoIter: Clone,
{
    let fields = fields.into_iter();
    let long = fields.clone().position(|(field, value)| {
        field.len() > limits.max_value_bytes || value.len() > limits.max_value_bytes
    });
    let first = long.and_then(|at| fields.clone().nth(at));
    let rest = fields
        .enumerate()
        .filter(move |(at, _)| Some(*at) != long)
        .map(|(_, pair)| pair);
    let fields = first.into_iter().chain(rest);
    let start = out.len();
    out.push(RDB_TYPE_HASH);
    // The pair count goes here once it is known (as for the listpack's length).
    let count_at = out.len();
    out.extend_from_slice(&[0; RDB_LEN_MAX_BYTES]);
    let mut pairs = 0u32;
    let mut length = [0u8; RDB_LEN_MAX_BYTES];
    for (field, value) in fields {
        pairs += 1;
        for element in [field, value] {
            let Ok(len) = u32::try_from(element.len()) else {
                out.truncate(start);
                return false;
            };
            let used = rdb_length(len, &mut length);
            out.extend_from_slice(&length[..used]);
            out.extend_from_slice(element);
        }
    }
    if pairs == 0 {
        out.truncate(start);
        return false;
    }
    finish_payload(out, start, count_at, pairs);
    true
}

/// Ends the payload that starts at `start`: writes `len` in the `rdbSaveLen` form into the
/// [`RDB_LEN_MAX_BYTES`] reserved at `len_at` (moving what follows down when a narrower form
/// fits), then appends the RDB version and the CRC.
fn finish_payload(out: &mut Vec<u8>, start: usize, len_at: usize, len: u32) {
    let mut length = [0u8; RDB_LEN_MAX_BYTES];
    let used = rdb_length(len, &mut length);
    out[len_at..len_at + used].copy_from_slice(&length[..used]);
    if used < RDB_LEN_MAX_BYTES {
        out.copy_within(len_at + RDB_LEN_MAX_BYTES.., len_at + used);
        out.truncate(out.len() - (RDB_LEN_MAX_BYTES - used));
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = CRC64.checksum(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// `rdbSaveLen` of a length below 4 GiB into `buf`; returns how many bytes it used.
fn rdb_length(len: u32, buf: &mut [u8; RDB_LEN_MAX_BYTES]) -> usize {
    if len < 1 << 6 {
        buf[0] = len as u8;
        1
    } else if len < 1 << 14 {
        buf[0] = 0x40 | (len >> 8) as u8;
        buf[1] = len as u8;
        2
    } else {
        buf[0] = 0x80;
        buf[1..5].copy_from_slice(&len.to_be_bytes());
        5
    }
}

/// Appends one listpack element: its encoding and data (an integer when the bytes are a canonical
/// i64, as Redis stores them), then its backlen.
fn push_listpack_element(element: &[u8], out: &mut Vec<u8>) {
    let begin = out.len();
    match listpack_integer(element) {
        Some(v) => push_listpack_integer(v, out),
        None => push_listpack_string(element, out),
    }
    push_backlen(out.len() - begin, out);
}

/// `lpStringToInt64`: the value of `s` when it is the canonical decimal text of an i64 (what
/// Redis stores as an integer element), else `None`.
fn listpack_integer(s: &[u8]) -> Option<i64> {
    // LONG_STR_SIZE (21): "-9223372036854775808" is the longest, 20 bytes.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        // -(2^63) is the one magnitude past i64::MAX that is allowed.
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Appends an integer element's encoding and data in the narrowest form (`lpEncodeIntegerGetType`).
fn push_listpack_integer(v: i64, out: &mut Vec<u8>) {
    let bytes = v.to_le_bytes();
    if (0..=127).contains(&v) {
        out.push(v as u8);
    } else if (-4096..=4095).contains(&v) {
        // 13-bit two's complement behind the 110 tag.
        let u = (v as u16) & 0x1FFF;
        out.extend_from_slice(&[0xC0 | (u >> 8) as u8, u as u8]);
    } else if i16::try_from(v).is_ok() {
        out.push(0xF1);
        out.extend_from_slice(&bytes[..2]);
    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
        out.push(0xF2);
        out.extend_from_slice(&bytes[..3]);
    } else if i32::try_from(v).is_ok() {
        out.push(0xF3);
        out.extend_from_slice(&bytes[..4]);
    } else {
        out.push(0xF4);
        out.extend_from_slice(&bytes);
    }
}

/// Appends a string element's encoding and data (`lpEncodeString`).
fn push_listpack_string(s: &[u8], out: &mut Vec<u8>) {
    let len = s.len();
    if len < 1 << 6 {
        out.push(0x80 | len as u8);
    } else if len < 1 << 12 {
        out.extend_from_slice(&[0xE0 | (len >> 8) as u8, len as u8]);
    } else {
        // Below 1 GiB: checked by the caller against LISTPACK_MAX_SAFETY_SIZE.
        out.push(0xF0);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    }
    out.extend_from_slice(s);
}

/// Appends the backlen of an element whose encoding and data took `len` bytes
/// (`lpEncodeBacklen`: 7 bits a byte, most significant first, the high bit set on all bytes but
/// the first).
fn push_backlen(len: usize, out: &mut Vec<u8>) {
    let width = backlen_width(len);
    out.push((len >> (7 * (width - 1))) as u8);
    for shift in (0..width - 1).rev() {
        out.push(((len >> (7 * shift)) & 127) as u8 | 128);
    }
}

/// How many bytes the backlen of an element of `len` bytes takes. The thresholds are Redis's
/// own, including its `< 16383` where 16383 would fit two bytes: a payload must match Redis byte
/// for byte.
fn backlen_width(len: usize) -> usize {
    if len <= 127 {
        1
    } else if len < 16383 {
        2
    } else if len < 2097151 {
        3
    } else if len < 268435455 {
        4
    } else {
        5
    }
}

/// Debug check of the caller's promise: no field name twice among the listpack `elements`
/// (fields and values alternating, no header, no terminator).
fn fields_are_distinct(elements: &[u8]) -> bool {
    let mut fields = Vec::new();
    let mut rest = elements;
    let mut is_field = true;
    while !rest.is_empty() {
        let (element, backlen_at) = element_bytes(rest);
        let total = backlen_at + backlen_width(backlen_at);
        if is_field {
            fields.push(element);
        }
        is_field = !is_field;
        rest = &rest[total..];
    }
    fields.sort_unstable();
    fields.windows(2).all(|pair| pair[0] != pair[1])
}

/// The encoding and data of the first element of `elements`, and where its backlen starts.
fn element_bytes(elements: &[u8]) -> (&[u8], usize) {
    let tag = elements[0];
    let len = match tag {
        0x00..=0x7F => 1,
        0x80..=0xBF => 1 + usize::from(tag & 0x3F),
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 2 + (usize::from(tag & 0x0F) << 8 | usize::from(elements[1])),
        0xF0 => {
            let n = u32::from_le_bytes(elements[1..5].try_into().expect("4 bytes"));
            5 + n as usize
        }
        0xF1 => 3,
        0xF2 => 4,
        0xF3 => 5,
        _ => 9,
    };
    (&elements[..len], len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let outcome = push_hash_payload(
            fields.iter().copied(),
            &HashListpackLimits::default(),
            &mut out,
        );
        assert_eq!(outcome, HashPayload::Restore);
        out
    }

    #[test]
    fn small_hash_matches_a_dump_taken_from_redis_7_0_15() {
        // DUMP of `HSET k a 1 b hello c -5000 d 007` on redis-server 7.0.15, rdbcompression no.
        let dumped = b"\x10%%\x00\x00\x00\x08\x00\x81a\x02\x01\x01\x81b\x02\x85hello\x06\x81c\x02\
            \xf1x\xec\x03\x81d\x02\x83007\x04\xff\n\x00\x1fi\xfa\xdf\x8d\xb5\xc6\xc9";
        let built = payload(&[
            (b"a", b"1"),
            (b"b", b"hello"),
            (b"c", b"-5000"),
            (b"d", b"007"),
        ]);
        assert_eq!(built, dumped.to_vec());
    }

    #[test]
    fn hash_table_form_matches_a_dump_taken_from_redis_7_0_15() {
        // DUMP of `HSET k name vvv...` (65 bytes: a hash table) on redis-server 7.0.15,
        // rdbcompression no.
        let mut dumped = b"\x04\x01\x04name\x40\x41".to_vec();
        dumped.extend_from_slice(&[b'v'; 65]);
        dumped.extend_from_slice(b"\n\x00\x30\xed\x3f\xe3\x13\xd9\x4b\x75");
        let value = [b'v'; 65];
        let mut out = b"kept".to_vec();
        let limits = HashListpackLimits::default();
        assert!(push_hash_table_payload(
            [(&b"name"[..], &value[..])],
            &limits,
            &mut out
        ));
        assert_eq!(&out[..4], b"kept");
        assert_eq!(out[4..], dumped[..]);
        // Nothing for an empty hash.
        assert!(!push_hash_table_payload([], &limits, &mut out));
        assert_eq!(out.len(), 4 + dumped.len());
        // The first pair beyond the value limit goes first, the others keep their order.
        let mut out = Vec::new();
        let pairs = [(&b"a"[..], &b"1"[..]), (b"name", &value[..]), (b"b", b"2")];
        assert!(push_hash_table_payload(pairs, &limits, &mut out));
        let mut expected = b"\x04\x03\x04name\x40\x41".to_vec();
        expected.extend_from_slice(&[b'v'; 65]);
        expected.extend_from_slice(b"\x01a\x011\x01b\x012\n\x00");
        assert_eq!(out[..out.len() - 8], expected[..]);
    }

    #[test]
    fn integers_follow_lp_string_to_int64() {
        for (text, value) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("18446744073709551616", None),
            ("-0", None),
            ("007", None),
            ("+1", None),
            ("1.0", None),
            (" 1", None),
            ("1 ", None),
            ("-", None),
            ("", None),
            ("00000000000000000000001", None),
        ] {
            assert_eq!(listpack_integer(text.as_bytes()), value, "{text:?}");
        }
    }

    #[test]
    fn backlen_widths_at_redis_thresholds() {
        for (len, width) in [
            (1, 1),
            (127, 1),
            (128, 2),
            (16382, 2),
            (16383, 3),
            (2097150, 3),
            (2097151, 4),
            (268435454, 4),
            (268435455, 5),
        ] {
            assert_eq!(backlen_width(len), width, "{len}");
        }
    }

    #[test]
    fn nothing_is_appended_for_empty_or_oversized_hashes() {
        let limits = HashListpackLimits {
            max_entries: 2,
            max_value_bytes: 4,
        };
        let mut out = b"keep".to_vec();
        let none: [(&[u8], &[u8]); 0] = [];
        assert_eq!(
            push_hash_payload(none, &limits, &mut out),
            HashPayload::Empty
        );
        let three: [(&[u8], &[u8]); 3] = [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")];
        assert_eq!(
            push_hash_payload(three, &limits, &mut out),
            HashPayload::BeyondLimits(LimitExceeded::Entries { max: 2 })
        );
        let long: [(&[u8], &[u8]); 1] = [(b"a", b"12345")];
        assert_eq!(
            push_hash_payload(long, &limits, &mut out),
            HashPayload::BeyondLimits(LimitExceeded::ValueBytes { len: 5, max: 4 })
        );
        assert_eq!(out, b"keep");
    }

    #[test]
    fn existing_bytes_are_kept_and_not_checksummed() {
        let fields: [(&[u8], &[u8]); 1] = [(b"f", b"v")];
        let alone = payload(&fields);
        let mut out = b"prefix".to_vec();
        let outcome = push_hash_payload(fields, &HashListpackLimits::default(), &mut out);
        assert_eq!(outcome, HashPayload::Restore);
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(&out[6..], alone.as_slice());
    }

    #[test]
    fn limits_parse_config_get_values() {
        assert_eq!(
            HashListpackLimits::from_config_values("512", "64"),
            Ok(HashListpackLimits::default())
        );
        let err = HashListpackLimits::from_config_values("512", "-1").unwrap_err();
        assert_eq!(err.option, "hash-max-listpack-value");
    }
}
