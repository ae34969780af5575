//! Hash tables written by `RESTORE` (the `coldsync` binary end to end, on a real Redis):
//! - a forward load by `RESTORE` leaves every key as the `HSET` way does (`HGETALL`,
//!   `PEXPIRETIME`, `OBJECT ENCODING`), and only hashes within the server's listpack limits go
//!   by `RESTORE` (counted in `INFO commandstats`), at default limits and at lowered ones;
//! - a user without `+restore` gets the `HSET` way, with exactly one `restore_not_permitted`
//!   event for the whole run, the same contents, and `check --connect` saying so.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use common::*;
use parquet::basic::Compression;
use tempfile::TempDir;

const AS_OF: &str = "2026-11-22";
const DATES: [&str; 2] = ["2026-11-19", "2026-11-20"];

/// Ids of the rows of each partition.
const IDS: std::ops::RangeInclusive<i64> = 1..=60;

/// `status` of row `i`: text, empty, integer-looking (stored as listpack integers), or null.
fn status(i: i64) -> Option<String> {
    match i % 5 {
        0 => Some(format!("paid-{i}")),
        1 => Some(String::new()),
        2 => Some((i * 1000).to_string()),
        3 => Some((-i).to_string()),
        _ => None,
    }
}

/// `qty` of row `i`, null every 7th row.
fn qty(i: i64) -> Option<i64> {
    (i % 7 != 0).then_some(i * 1_000_003 - 5_000_000)
}

/// `note` of row `i`: every 4th is 100 bytes, beyond the default `hash-max-listpack-value`
/// (64); null when `i % 4 == 1`. Row 49 has every value null (an empty hash: deleted).
fn note(i: i64) -> Option<String> {
    match i % 4 {
        0 => Some(format!("{i:0>100}")),
        1 => None,
        _ => Some(format!("note {i}")),
    }
}

fn batch(date_index: i64) -> RecordBatch {
    // The later partition rewrites every row with other values: the newer one must win.
    let shift = |i: i64| i + 100 * date_index;
    let ids: Vec<i64> = IDS.collect();
    let status: Vec<Option<String>> = IDS.map(|i| status(shift(i))).collect();
    let qty: Vec<Option<i64>> = IDS.map(|i| qty(shift(i))).collect();
    let note: Vec<Option<String>> = IDS.map(|i| note(shift(i))).collect();
    RecordBatch::try_from_iter([
        ("order_id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("status", Arc::new(StringArray::from(status)) as ArrayRef),
        ("qty", Arc::new(Int64Array::from(qty)) as ArrayRef),
        ("note", Arc::new(StringArray::from(note)) as ArrayRef),
    ])
    .unwrap()
}

/// A warehouse with two partitions of two hash tables (`facts` keyed `f:`, `more` keyed `m:`)
/// and the config of a run on `redis` with the extra `[redis]` lines.
struct Workspace {
    dir: TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let ws = Workspace {
            dir: tempfile::Builder::new()
                .prefix("coldsync-restore-")
                .tempdir()
                .unwrap(),
        };
        for table in ["facts", "more"] {
            for (index, date) in DATES.iter().enumerate() {
                let dir = format!("{table}/dt={date}");
                let bytes = parquet_bytes(&batch(index as i64), 1000, Compression::UNCOMPRESSED);
                write_file(&ws.root(), &format!("{dir}/part-00000.parquet"), &bytes);
                write_success(&ws.root(), &dir);
            }
        }
        ws
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    fn cli(
        &self,
        redis: &RedisServer,
        redis_extra: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> CliOutput {
        let config = self.dir.path().join("coldsync.toml");
        let mut tables = String::new();
        for (table, prefix) in [("facts", "f"), ("more", "m")] {
            tables.push_str(&format!(
                "[[tables]]\nname = \"{table}\"\npath = \"{table}\"\nkey = \"{prefix}:{{order_id}}\"\n\
                 value_format = \"hash\"\n\n"
            ));
        }
        let text = format!(
            "[source]\nscheme = \"fs\"\nroot = \"{}\"\n\n[redis]\nurl = \"redis://127.0.0.1:{}/0\"\n\
             {redis_extra}\n\n[defaults]\nretention_days = 30\n\n{tables}",
            self.root().display(),
            redis.port
        );
        std::fs::write(&config, text).unwrap();
        let mut full = vec!["--config", config.to_str().unwrap(), "--log-format", "json"];
        full.extend_from_slice(args);
        let mut all_envs = vec![("RUST_LOG", "info")];
        all_envs.extend_from_slice(envs);
        run_cli(&full, &all_envs)
    }

    /// Runs both tables from a flushed Redis with zeroed command stats; returns what it wrote.
    fn load(
        &self,
        redis: &RedisServer,
        redis_extra: &str,
        envs: &[(&str, &str)],
    ) -> (Contents, CliOutput) {
        redis.flushall();
        let _: () = redis.cmd("CONFIG", &["RESETSTAT"]);
        let out = self.cli(redis, redis_extra, &["run", "--as-of", AS_OF], envs);
        out.assert_success();
        (contents(redis), out)
    }
}

/// Per key of both tables: its fields, its absolute expiry, its encoding.
type Contents = BTreeMap<String, (BTreeMap<String, String>, i64, String)>;

fn contents(redis: &RedisServer) -> Contents {
    let mut keys = redis.keys("f:*");
    keys.extend(redis.keys("m:*"));
    keys.into_iter()
        .map(|key| {
            let encoding: String = redis.cmd("OBJECT", &["ENCODING", &key]);
            let value = (redis.hgetall(&key), redis.pexpiretime(&key), encoding);
            (key, value)
        })
        .collect()
}

/// `calls - failed_calls` of `command` in `INFO commandstats` (0 when never called): the probe's
/// refused `RESTORE` is a failed call.
fn succeeded_calls(redis: &RedisServer, command: &str) -> u64 {
    let info: String = redis.cmd("INFO", &["commandstats"]);
    let Some(line) = info
        .lines()
        .find(|l| l.starts_with(&format!("cmdstat_{command}:")))
    else {
        return 0;
    };
    let field = |name: &str| -> u64 {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map_or(0, |v| v.parse().unwrap())
    };
    field("calls") - field("failed_calls")
}

/// The non-null values of row `i`.
fn row_values(i: i64) -> Vec<String> {
    [status(i), qty(i).map(|q| q.to_string()), note(i)]
        .into_iter()
        .flatten()
        .collect()
}

/// Rows of both partitions (two tables) that are within `limits` (entries, value bytes) and
/// not empty, and those beyond them.
fn restorable_and_beyond(max_entries: usize, max_value: usize) -> (u64, u64) {
    let (mut within, mut beyond) = (0, 0);
    for date_index in 0..DATES.len() as i64 {
        for i in IDS {
            let i = i + 100 * date_index;
            let values = row_values(i);
            if values.is_empty() {
                continue;
            }
            // The field names (`status`, `qty`, `note`) are short: only the values matter.
            let longest = values.iter().map(String::len).max().unwrap();
            if values.len() <= max_entries && longest <= max_value {
                within += 2;
            } else {
                beyond += 2;
            }
        }
    }
    (within, beyond)
}

/// Loads the same rows with `hash_write = "hset"`, checks every key equals its `restored` one,
/// and returns the `HSET` calls of that load.
fn assert_same_keys_as_hset(redis: &RedisServer, restored: &Contents) -> u64 {
    let (by_hset, _) = Workspace::new().load(redis, "hash_write = \"hset\"", &[]);
    assert_eq!(
        succeeded_calls(redis, "restore"),
        0,
        "hash_write = hset sent RESTORE"
    );
    // Two tables of 60 ids: the keys whose newer row has a value (row 49 of the older
    // partition has none: deleted, then written again by the newer one).
    let newer_rows = IDS.filter(|i| !row_values(i + 100).is_empty()).count();
    assert_eq!(by_hset.len(), 2 * newer_rows);
    assert_eq!(restored.len(), by_hset.len());
    for (key, expected) in &by_hset {
        assert_eq!(restored.get(key), Some(expected), "{key}");
    }
    succeeded_calls(redis, "hset")
}

#[test]
fn a_forward_hash_load_by_restore_leaves_the_keys_the_hset_way_does() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let (restored, out) = ws.load(&redis, "", &[]);
    let (within, beyond) = restorable_and_beyond(512, 64);
    assert!(within > 0 && beyond > 0, "{within} {beyond}");
    // Every row within the limits was one RESTORE, instead of an HSET (the ledger's own HSETs
    // are in both counts).
    assert_eq!(succeeded_calls(&redis, "restore"), within);
    let hsets = succeeded_calls(&redis, "hset");
    let method = out.events_named("hash_write_method");
    assert_eq!(method.len(), 1, "{}", out.dump());
    assert_eq!(event_field(method[0], "method").unwrap(), "restore");
    assert_eq!(event_field(method[0], "limits_from").unwrap(), "config");
    assert_eq!(event_field(method[0], "max_listpack_entries").unwrap(), 512);
    assert!(out.events_named("restore_not_permitted").is_empty());
    // The 100-byte notes made hash tables, the others listpacks, whichever way.
    let encodings: std::collections::BTreeSet<&str> =
        restored.values().map(|v| v.2.as_str()).collect();
    assert_eq!(encodings, ["hashtable", "listpack"].into_iter().collect());
    // The newer partition won: `f:1` holds the values of row 101.
    let (fields, expiry, _) = &restored["f:1"];
    assert_eq!(fields.get("qty").map(String::as_str), Some("96000303"));
    assert_eq!(fields.get("status"), Some(&String::new()));
    assert!(*expiry > 0);
    assert_eq!(assert_same_keys_as_hset(&redis, &restored) - hsets, within);
}

#[test]
fn hashes_beyond_lowered_listpack_limits_go_the_hset_way() {
    let redis = RedisServer::start_with_args(&["--hash-max-listpack-entries", "2"]);
    let ws = Workspace::new();
    let (restored, out) = ws.load(&redis, "", &[]);
    let (within, beyond) = restorable_and_beyond(2, 64);
    assert!(within > 0 && beyond > 0, "{within} {beyond}");
    assert_eq!(succeeded_calls(&redis, "restore"), within);
    let hsets = succeeded_calls(&redis, "hset");
    let method = &out.events_named("hash_write_method")[0];
    assert_eq!(event_field(method, "max_listpack_entries").unwrap(), 2);
    // Three fields: a hash table; at most two short ones: a listpack.
    for (key, (fields, _, encoding)) in &restored {
        let small = fields.len() <= 2 && fields.values().all(|v| v.len() <= 64);
        let expected = if small { "listpack" } else { "hashtable" };
        assert_eq!(encoding, expected, "{key} {fields:?}");
    }
    assert_eq!(assert_same_keys_as_hset(&redis, &restored) - hsets, within);
}

#[test]
fn a_user_without_restore_gets_the_hset_way_with_one_warning() {
    let redis = RedisServer::start();
    let _: () = redis.cmd(
        "ACL",
        &[
            "SETUSER",
            "loader",
            "on",
            ">secret-pw",
            "~*",
            "&*",
            "+@all",
            "-restore",
        ],
    );
    let ws = Workspace::new();
    let (by_default_user, _) = ws.load(&redis, "", &[]);
    let user = [
        ("COLDSYNC_REDIS_USERNAME", "loader"),
        ("COLDSYNC_REDIS_PASSWORD", "secret-pw"),
    ];
    let (restricted, out) = ws.load(&redis, "", &user);
    assert_eq!(restricted, by_default_user);
    assert_eq!(succeeded_calls(&redis, "restore"), 0);
    // Two tables of two partitions: one warning for the run.
    let warnings = out.events_named("restore_not_permitted");
    assert_eq!(warnings.len(), 1, "{}", out.dump());
    let error = event_field(warnings[0], "error").unwrap().as_str().unwrap();
    assert!(
        error.contains("no permissions to run the 'restore' command"),
        "{error}"
    );
    assert!(!out.dump().contains("secret-pw"));
    let method = &out.events_named("hash_write_method")[0];
    assert_eq!(event_field(method, "method").unwrap(), "hset");
    assert_eq!(out.events_named("table_finished").len(), 2);

    let check = ws.cli(&redis, "", &["check", "--connect"], &user);
    assert_eq!(check.status_code, 0, "{}", check.dump());
    assert!(
        check
            .stdout
            .contains("hash writes: HSET: RESTORE not permitted (NoPerm: this user has no permissions to run the 'restore' command)"),
        "{}",
        check.stdout
    );
    let check = ws.cli(&redis, "", &["check", "--connect"], &[]);
    assert!(
        check
            .stdout
            .contains("hash writes: RESTORE for hashes of at most 512 fields"),
        "{}",
        check.stdout
    );
}
