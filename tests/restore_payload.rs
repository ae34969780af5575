//! The `RESTORE` payload encoder (`coldsync::redis::dump`) against a real `redis-server` 7.0:
//! - byte for byte against `DUMP` of the same hash (`rdbcompression no`), at every listpack and
//!   RDB encoding boundary;
//! - why the limits rule exists: `RESTORE` keeps a listpack `HSET` would convert;
//! - a property test: generated rows written as `RESTORE ... REPLACE ABSTTL` (or the `HSET` path
//!   when the encoder says so) on a `sanitize-dump-payload yes` server read back exactly like the
//!   same rows written with `DEL` + `HSET` + `PEXPIREAT`; and so does every non-empty row written
//!   as the hash-table form (`RDB_TYPE_HASH`, what guarded loads send beyond the limits).

mod common;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use coldsync::redis::dump::{
    push_hash_payload, push_hash_table_payload, HashListpackLimits, HashPayload, LimitExceeded,
    RDB_TYPE_HASH_LISTPACK, RDB_VERSION,
};
use common::RedisServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use redis::Value;

/// A hash row: (field, value) pairs in order, fields distinct.
type Row = Vec<(Vec<u8>, Vec<u8>)>;

/// The server's listpack limits, read the way the writer will (`CONFIG GET`).
fn server_limits(con: &mut redis::Connection) -> HashListpackLimits {
    let config_value = |con: &mut redis::Connection, option: &str| -> String {
        let reply: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(option)
            .query(con)
            .expect("CONFIG GET");
        reply[1].clone()
    };
    let entries = config_value(con, "hash-max-listpack-entries");
    let value = config_value(con, "hash-max-listpack-value");
    HashListpackLimits::from_config_values(&entries, &value).expect("limits parse")
}

fn encode(row: &Row, limits: &HashListpackLimits) -> (HashPayload, Vec<u8>) {
    let mut out = Vec::new();
    let pairs = row.iter().map(|(f, v)| (f.as_slice(), v.as_slice()));
    let outcome = push_hash_payload(pairs, limits, &mut out);
    (outcome, out)
}

fn hset(key: &str, row: &Row) -> redis::Cmd {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key);
    for (field, value) in row {
        cmd.arg(field.as_slice()).arg(value.as_slice());
    }
    cmd
}

fn text_row(pairs: &[(&str, &str)]) -> Row {
    pairs
        .iter()
        .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Field `f<i>` for each value, so any set of values makes a row with distinct fields.
fn row_of_values(values: impl IntoIterator<Item = Vec<u8>>) -> Row {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("f{i}").into_bytes(), v))
        .collect()
}

/// Integer-looking texts of every listpack integer width, their edges, and near misses.
const INTEGER_TEXTS: &[&str] = &[
    "0",
    "1",
    "127",
    "128",
    "-1",
    "-128",
    "4095",
    "4096",
    "-4096",
    "-4097",
    "32767",
    "32768",
    "-32768",
    "-32769",
    "8388607",
    "8388608",
    "-8388608",
    "-8388609",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "007",
    "+1",
    "1.0",
    " 1",
    "1 ",
    "-0",
    "00",
    "-",
    "0x10",
    "1e3",
    "12345678901234567890123",
];

/// The listpack length (the RDB string's length) of a payload, decoded from `rdbSaveLen`.
fn listpack_len(payload: &[u8]) -> usize {
    match payload[1] >> 6 {
        0 => usize::from(payload[1] & 0x3F),
        1 => usize::from(payload[1] & 0x3F) << 8 | usize::from(payload[2]),
        _ => u32::from_be_bytes(payload[2..6].try_into().unwrap()) as usize,
    }
}

/// Every case of the byte-for-byte test, named.
fn dump_cases(limits: &HashListpackLimits) -> Vec<(String, Row)> {
    let mut cases: Vec<(String, Row)> = Vec::new();
    cases.push((
        "empty strings".into(),
        text_row(&[("", ""), ("a", ""), ("b", "x")]),
    ));
    cases.push((
        "integers as values".into(),
        row_of_values(INTEGER_TEXTS.iter().map(|t| t.as_bytes().to_vec())),
    ));
    cases.push((
        "integers as fields".into(),
        INTEGER_TEXTS
            .iter()
            .map(|t| (t.as_bytes().to_vec(), b"v".to_vec()))
            .collect(),
    ));
    for text in INTEGER_TEXTS {
        cases.push((format!("integer {text:?}"), text_row(&[(text, text)])));
    }
    // String lengths around the listpack header widths (6-bit below 64, 12-bit below 4096) and
    // the backlen widths: an element of encoding + data = 127/128 bytes (2-byte header: data
    // 125/126), 16382/16383/16384 (5-byte header: data 16377..16379), 2097150..2097152.
    let lengths = [
        0usize, 1, 62, 63, 64, 65, 125, 126, 127, 4094, 4095, 4096, 4097, 16377, 16378, 16379,
        2097145, 2097146, 2097147,
    ];
    for len in lengths {
        cases.push((
            format!("value of {len} bytes"),
            vec![(b"f".to_vec(), vec![b'x'; len])],
        ));
    }
    for len in [63usize, 64, 4095, 4096, 16378] {
        cases.push((
            format!("field of {len} bytes"),
            vec![(vec![b'y'; len], b"v".to_vec())],
        ));
    }
    // The RDB length of the listpack itself: 1 byte below 64, 2 bytes below 16384, then 5.
    for (low, high, search) in [(60, 68, 40..80), (16380, 16388, 16_340..16_400)] {
        let mut hit = HashSet::new();
        for len in search {
            let row = vec![(b"f".to_vec(), vec![b'z'; len])];
            let (outcome, payload) = encode(&row, limits);
            assert_eq!(outcome, HashPayload::Restore);
            let total = listpack_len(&payload);
            if (low..=high).contains(&total) {
                hit.insert(total);
                cases.push((format!("listpack of {total} bytes"), row));
            }
        }
        let boundary = if low < 100 { 64 } else { 16384 };
        assert!(
            hit.contains(&(boundary - 1)) && hit.contains(&boundary),
            "{hit:?}"
        );
    }
    // Binary and non-UTF-8 bytes: all 256 in one value and one field, each alone, CR LF, NUL.
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    cases.push((
        "all bytes".into(),
        vec![
            (all_bytes.clone(), b"v".to_vec()),
            (b"f".to_vec(), all_bytes),
        ],
    ));
    cases.push((
        "each byte alone".into(),
        (0..=255u8)
            .map(|b| (vec![b], vec![b, 0xFF, 0x00]))
            .collect(),
    ));
    cases.push((
        "non-UTF-8 and protocol bytes".into(),
        vec![
            (b"\xff\xfe".to_vec(), b"\xc3\x28".to_vec()),
            (b"\r\n".to_vec(), b"\x00".to_vec()),
            (b"\x80".to_vec(), "grüße €".as_bytes().to_vec()),
        ],
    ));
    // Field counts up to 512 (past the u16 element count: `element_counts_past_u16_...`).
    for n in [
        1usize, 2, 3, 8, 31, 32, 63, 64, 100, 255, 256, 511, 512, 1000,
    ] {
        cases.push((format!("{n} fields"), wide_row(n)));
    }
    cases
}

/// `n` pairs `field:<i>` with integer, text and empty values in turn.
fn wide_row(n: usize) -> Row {
    (0..n)
        .map(|i| {
            let value = match i % 3 {
                0 => i.to_string().into_bytes(),
                1 => format!("value-{i}").into_bytes(),
                _ => Vec::new(),
            };
            (format!("field:{i}").into_bytes(), value)
        })
        .collect()
}

/// Where two byte strings first differ, for a readable failure.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let around = |s: &[u8]| s[at.saturating_sub(4)..(at + 8).min(s.len())].to_vec();
    format!(
        "lengths {} vs {}, first difference at byte {at}: {:?} vs {:?}",
        a.len(),
        b.len(),
        around(a),
        around(b)
    )
}

#[test]
fn payloads_are_byte_identical_to_dump() {
    // Limits raised so every case stays a listpack when HSET writes it (the encoder gets the same).
    let server = RedisServer::start_with_args(&[
        "--rdbcompression",
        "no",
        "--hash-max-listpack-entries",
        "50000",
        "--hash-max-listpack-value",
        "3000000",
    ]);
    let mut con = server.connection();
    let limits = server_limits(&mut con);
    assert_eq!(limits.max_entries, 50000);
    let cases = dump_cases(&limits);

    // One pipeline per case: a single one of them all would fill both socket buffers with
    // multi-megabyte DUMP replies before the client starts reading.
    let replies: Vec<(String, Vec<u8>)> = cases
        .iter()
        .enumerate()
        .map(|(i, (name, row))| {
            let key = format!("k{i}");
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(&key).ignore();
            pipe.add_command(hset(&key, row)).ignore();
            pipe.cmd("OBJECT").arg("ENCODING").arg(&key);
            pipe.cmd("DUMP").arg(&key);
            pipe.cmd("DEL").arg(&key).ignore();
            let reply: (String, Vec<u8>) = pipe
                .query(&mut con)
                .unwrap_or_else(|e| panic!("{name}: HSET and DUMP: {e}"));
            reply
        })
        .collect();

    let mut failures = Vec::new();
    for ((name, row), (encoding, dumped)) in cases.iter().zip(&replies) {
        assert_eq!(encoding, "listpack", "{name}: HSET did not give a listpack");
        assert_eq!(dumped[0], RDB_TYPE_HASH_LISTPACK, "{name}");
        let (outcome, built) = encode(row, &limits);
        assert_eq!(outcome, HashPayload::Restore, "{name}");
        if &built != dumped {
            failures.push(format!("{name}: {}", first_difference(&built, dumped)));
        }
    }
    assert!(
        failures.is_empty(),
        "payloads differ from DUMP:\n{}",
        failures.join("\n")
    );
    assert!(cases.len() > 80, "{} cases", cases.len());
}

/// The listpack header's element count is a u16: 65535 means "count unknown" (Redis's own
/// listpack says 65535 once it holds that many, as `DUMP` of a 32768-field hash shows). `HSET`
/// of that many fields takes seconds (a listpack lookup per field), so this checks the encoder's
/// header against a sanitizing `RESTORE`, which compares a known count with the elements.
#[test]
fn element_counts_past_u16_restore_under_sanitization() {
    let server = RedisServer::start_with_args(&[
        "--sanitize-dump-payload",
        "yes",
        "--hash-max-listpack-entries",
        "50000",
    ]);
    let mut con = server.connection();
    let limits = server_limits(&mut con);
    let count_in_header = |payload: &[u8]| u16::from_le_bytes([payload[6 + 4], payload[6 + 5]]);
    for (n, header) in [(32767usize, 65534u16), (32768, 65535), (40000, 65535)] {
        let row = wide_row(n);
        let (outcome, payload) = encode(&row, &limits);
        assert_eq!(outcome, HashPayload::Restore);
        assert_eq!(payload[1], 0x80, "a 5-byte RDB length");
        assert_eq!(count_in_header(&payload), header, "{n} pairs");
        let (encoding, flat): (String, Vec<Vec<u8>>) = redis::pipe()
            .cmd("RESTORE")
            .arg("wide")
            .arg(0)
            .arg(&payload)
            .arg("REPLACE")
            .ignore()
            .cmd("OBJECT")
            .arg("ENCODING")
            .arg("wide")
            .cmd("HGETALL")
            .arg("wide")
            .query(&mut con)
            .unwrap_or_else(|e| panic!("{n} pairs: {e}"));
        assert_eq!(encoding, "listpack");
        let pairs: Row = flat
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        assert!(pairs == row, "{n} pairs read back differently");
    }

    // The check can fail: a known count that is off by one is refused.
    let (_, mut payload) = encode(&wide_row(32767), &limits);
    payload[10..12].copy_from_slice(&65533u16.to_le_bytes());
    let body = payload.len() - 8;
    let crc = crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&payload[..body]);
    payload[body..].copy_from_slice(&crc.to_le_bytes());
    let refused = redis::cmd("RESTORE")
        .arg("wrong_count")
        .arg(0)
        .arg(&payload)
        .query::<()>(&mut con)
        .expect_err("RESTORE of a wrong element count");
    assert!(refused.to_string().contains("Bad data format"), "{refused}");
}

#[test]
fn restore_keeps_a_listpack_that_hset_would_convert_so_the_encoder_refuses_it() {
    let server = RedisServer::start_with_args(&["--sanitize-dump-payload", "yes"]);
    let mut con = server.connection();
    let limits = server_limits(&mut con);
    assert_eq!(limits, HashListpackLimits::default());
    let unlimited = HashListpackLimits {
        max_entries: usize::MAX,
        max_value_bytes: usize::MAX,
    };

    // A value of 65 bytes: RESTORE keeps the listpack, HSET converts it.
    let long_value = vec![(b"f".to_vec(), vec![b'x'; 65])];
    let (_, payload) = encode(&long_value, &unlimited);
    let _: () = redis::cmd("RESTORE")
        .arg("restored")
        .arg(0)
        .arg(&payload)
        .query(&mut con)
        .expect("RESTORE");
    let _: () = hset("written", &long_value).query(&mut con).unwrap();
    let encoding = |con: &mut redis::Connection, key: &str| -> String {
        redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(key)
            .query(con)
            .unwrap()
    };
    assert_eq!(encoding(&mut con, "restored"), "listpack");
    assert_eq!(encoding(&mut con, "written"), "hashtable");
    assert_eq!(
        encode(&long_value, &limits).0,
        HashPayload::BeyondLimits(LimitExceeded::ValueBytes { len: 65, max: 64 })
    );

    // 513 pairs: RESTORE converts by the entry count, as HSET does; the encoder sends it to HSET.
    let wide = row_of_values((0..513).map(|i| i.to_string().into_bytes()));
    let (_, payload) = encode(&wide, &unlimited);
    let _: () = redis::cmd("RESTORE")
        .arg("wide")
        .arg(0)
        .arg(&payload)
        .query(&mut con)
        .expect("RESTORE");
    assert_eq!(encoding(&mut con, "wide"), "hashtable");
    assert_eq!(
        encode(&wide, &limits).0,
        HashPayload::BeyondLimits(LimitExceeded::Entries { max: 512 })
    );
    let wide_512 = row_of_values((0..512).map(|i| i.to_string().into_bytes()));
    assert_eq!(encode(&wide_512, &limits).0, HashPayload::Restore);
}

#[test]
fn redis_refuses_an_empty_hash_payload_so_the_encoder_has_none() {
    let server = RedisServer::start_with_args(&["--sanitize-dump-payload", "yes"]);
    let mut con = server.connection();
    // What an empty hash would be: an empty listpack (7 bytes) as an RDB string.
    let mut payload = vec![RDB_TYPE_HASH_LISTPACK, 7, 7, 0, 0, 0, 0, 0, 0xFF];
    payload.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    let refused = redis::cmd("RESTORE")
        .arg("empty")
        .arg(0)
        .arg(&payload)
        .query::<()>(&mut con)
        .expect_err("RESTORE of an empty hash");
    assert!(refused.to_string().contains("Bad data format"), "{refused}");

    let none: Row = Vec::new();
    assert_eq!(
        encode(&none, &HashListpackLimits::default()),
        (HashPayload::Empty, Vec::new())
    );
}

/// Texts that look almost like integers, and the empty string, as elements.
fn near_integers() -> impl Strategy<Value = Vec<u8>> {
    let mut texts: Vec<Vec<u8>> = INTEGER_TEXTS
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect();
    texts.push(Vec::new());
    proptest::sample::select(texts)
}

/// A value of a generated row: binary (non-UTF-8 mostly), integers of every width, near
/// integers, empty strings, text. `long` allows up to 5,000 bytes (past the 64-byte limit).
fn value(long: bool) -> BoxedStrategy<Vec<u8>> {
    let short = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..=64),
        2 => any::<i64>().prop_map(|v| v.to_string().into_bytes()),
        2 => (-5000i64..5000).prop_map(|v| v.to_string().into_bytes()),
        2 => near_integers(),
        2 => "[a-z0-9 ]{0,64}".prop_map(String::into_bytes),
    ];
    if long {
        prop_oneof![
            8 => short,
            1 => proptest::collection::vec(any::<u8>(), 65..=5000),
        ]
        .boxed()
    } else {
        short.boxed()
    }
}

/// A field name of a generated row: the same kinds as values, weighted so that few repeat
/// (a repeated field is dropped from the row).
fn field(long: bool) -> BoxedStrategy<Vec<u8>> {
    let short = prop_oneof![
        12 => proptest::collection::vec(any::<u8>(), 1..=64),
        4 => "[a-z_]{4,64}".prop_map(String::into_bytes),
        4 => any::<i64>().prop_map(|v| v.to_string().into_bytes()),
        1 => near_integers(),
    ];
    if long {
        prop_oneof![
            20 => short,
            1 => proptest::collection::vec(any::<u8>(), 65..=5000),
        ]
        .boxed()
    } else {
        short.boxed()
    }
}

/// A generated row with distinct fields (a repeated field is dropped, the first kept).
fn row(fields: std::ops::RangeInclusive<usize>, long: bool) -> BoxedStrategy<Row> {
    proptest::collection::vec((field(long), value(long)), fields)
        .prop_map(|pairs| {
            let mut seen = HashSet::new();
            pairs
                .into_iter()
                .filter(|(field, _)| seen.insert(field.clone()))
                .collect()
        })
        .boxed()
}

/// What a reader sees of a key.
#[derive(Debug, PartialEq)]
struct Observed {
    exists: bool,
    encoding: Option<String>,
    pexpiretime: i64,
    /// HGETALL in the server's order for a listpack (insertion order), sorted for a hashtable.
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn observe(replies: &mut impl Iterator<Item = Value>) -> Observed {
    let mut next = || replies.next().expect("a reply per read");
    let exists: bool = redis::from_redis_value(next()).unwrap();
    let encoding: Option<String> = redis::from_redis_value(next()).unwrap();
    let pexpiretime: i64 = redis::from_redis_value(next()).unwrap();
    let flat: Vec<Vec<u8>> = redis::from_redis_value(next()).unwrap();
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = flat
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    if encoding.as_deref() != Some("listpack") {
        pairs.sort();
    }
    Observed {
        exists,
        encoding,
        pexpiretime,
        pairs,
    }
}

fn push_reads(pipe: &mut redis::Pipeline, key: &str) {
    pipe.cmd("EXISTS").arg(key);
    pipe.cmd("OBJECT").arg("ENCODING").arg(key);
    pipe.cmd("PEXPIRETIME").arg(key);
    pipe.cmd("HGETALL").arg(key);
}

/// How many rows took each path of the encoder.
#[derive(Default)]
struct Paths {
    restored: Cell<u32>,
    empty: Cell<u32>,
    beyond_limits: Cell<u32>,
}

/// Writes `row` both ways (the HSET path into `by_hset`, the encoder's path into `by_restore`)
/// in one pipeline with the reads, and compares what a reader sees.
fn check_row(
    con: &mut redis::Connection,
    limits: &HashListpackLimits,
    paths: &Paths,
    row: &Row,
    expire_at: i64,
) -> Result<(), TestCaseError> {
    let mut pipe = redis::pipe();
    // The HSET path, as the unguarded hash writer does it (an empty row deletes the key).
    pipe.cmd("DEL").arg("by_hset").ignore();
    if !row.is_empty() {
        pipe.add_command(hset("by_hset", row)).ignore();
        pipe.cmd("PEXPIREAT").arg("by_hset").arg(expire_at).ignore();
    }
    // The RESTORE path, over whatever the previous row left in the key.
    let (outcome, payload) = encode(row, limits);
    let count = match outcome {
        HashPayload::Restore => {
            pipe.cmd("RESTORE")
                .arg("by_restore")
                .arg(expire_at)
                .arg(&payload)
                .arg("REPLACE")
                .arg("ABSTTL")
                .ignore();
            &paths.restored
        }
        HashPayload::Empty => {
            pipe.cmd("DEL").arg("by_restore").ignore();
            &paths.empty
        }
        HashPayload::BeyondLimits(_) => {
            pipe.cmd("DEL").arg("by_restore").ignore();
            pipe.add_command(hset("by_restore", row)).ignore();
            pipe.cmd("PEXPIREAT")
                .arg("by_restore")
                .arg(expire_at)
                .ignore();
            &paths.beyond_limits
        }
    };
    count.set(count.get() + 1);
    // The hash-table form, whatever the limits: Redis loads it as HSET would have built it.
    let mut table_payload = Vec::new();
    let pairs = row.iter().map(|(f, v)| (f.as_slice(), v.as_slice()));
    let table_form = push_hash_table_payload(pairs, limits, &mut table_payload);
    prop_assert_eq!(table_form, !row.is_empty());
    pipe.cmd("DEL").arg("by_table").ignore();
    if table_form {
        pipe.cmd("RESTORE")
            .arg("by_table")
            .arg(expire_at)
            .arg(&table_payload)
            .arg("ABSTTL")
            .ignore();
    }
    push_reads(&mut pipe, "by_hset");
    push_reads(&mut pipe, "by_restore");
    push_reads(&mut pipe, "by_table");
    let replies: Vec<Value> = pipe
        .query(con)
        .map_err(|e| TestCaseError::fail(format!("{outcome:?}: {e}")))?;
    let mut replies = replies.into_iter();
    let by_hset = observe(&mut replies);
    let by_restore = observe(&mut replies);
    let by_table = observe(&mut replies);
    prop_assert_eq!(&by_restore, &by_hset, "{:?}", outcome);
    prop_assert_eq!(&by_table, &by_hset, "hash-table form");
    prop_assert_eq!(by_hset.exists, !row.is_empty());
    if by_hset.exists {
        prop_assert_eq!(by_hset.pexpiretime, expire_at);
    }
    if by_hset.encoding.as_deref() == Some("listpack") {
        prop_assert_eq!(&by_hset.pairs, row);
    }
    Ok(())
}

#[test]
fn restored_rows_read_back_like_hset_rows() {
    let server = RedisServer::start_with_args(&["--sanitize-dump-payload", "yes"]);
    let con = RefCell::new(server.connection());
    let limits = server_limits(&mut con.borrow_mut());
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let in_an_hour = now_ms + 3_600_000;
    let paths = Paths::default();

    // Each path once for certain, then generated rows.
    let fixed = [
        text_row(&[("f", "v")]),
        Vec::new(),
        row_of_values((0..513).map(|i| i.to_string().into_bytes())),
        vec![(b"f".to_vec(), vec![b'x'; 65])],
    ];
    for row in &fixed {
        check_row(&mut con.borrow_mut(), &limits, &paths, row, in_an_hour)
            .unwrap_or_else(|failure| panic!("{failure}"));
    }
    let rows = prop_oneof![
        4 => row(0..=16, false),
        2 => row(0..=600, false),
        2 => row(505..=530, false),
        2 => row(0..=600, true),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(rows, 0i64..86_400_000), |(row, offset_ms)| {
            check_row(
                &mut con.borrow_mut(),
                &limits,
                &paths,
                &row,
                in_an_hour + offset_ms,
            )
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    let (restored, empty, beyond) = (
        paths.restored.get(),
        paths.empty.get(),
        paths.beyond_limits.get(),
    );
    // Every path was taken, so the test can fail on each.
    assert!(
        restored > 10 && empty > 0 && beyond > 5,
        "restored {restored}, empty {empty}, beyond limits {beyond}"
    );
}
