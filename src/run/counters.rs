//! The counters of a load: what was read and written, summed the same way for a partition (its
//! stats), a table ([`super::TableOutcome`]), a run ([`super::RunSummary`]) and a ledger entry
//! ([`crate::ledger::LedgerEntry`]).
//!
//! Each of those holds one [`Counters`] as `#[serde(flatten)]`, so their JSON stays flat
//! (`"rows": 4`, never `"counters": {...}`), and derefs to it, so `summary.rows` and
//! `entry.keys` read as fields. A new counter is added here once, with `#[serde(default)]` so the
//! ledger entries written before it still parse. Log events show the counters as fields through
//! one macro, [`counters_event!`](crate::counters_event), so no event lists them by hand and a
//! new counter reaches every event that carries the others.

use serde::{Deserialize, Serialize};

/// What loading read and wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Data files read.
    pub files: u64,
    /// Rows read.
    pub rows: u64,
    /// Keys written (commands acknowledged, guarded writes that kept a newer value excluded).
    pub keys: u64,
    /// Rows skipped because a key column was null or empty.
    pub skipped_null_keys: u64,
    /// Guarded writes that kept a newer value.
    #[serde(default)]
    pub kept_newer: u64,
    /// Keys deleted because the row's value columns were all null (a `hash` row: Redis has no
    /// empty hash), not counted in `keys`.
    #[serde(default)]
    pub deleted_empty_keys: u64,
    /// Bytes of the Parquet data files.
    pub bytes: u64,
    /// Bytes of keys and values sent.
    #[serde(default)]
    pub payload_bytes: u64,
}

impl Counters {
    /// Adds every counter of `other` to this one.
    pub fn add(&mut self, other: &Counters) {
        // Destructured so that a new counter cannot be forgotten here.
        let Counters {
            files,
            rows,
            keys,
            skipped_null_keys,
            kept_newer,
            deleted_empty_keys,
            bytes,
            payload_bytes,
        } = *other;
        self.files += files;
        self.rows += rows;
        self.keys += keys;
        self.skipped_null_keys += skipped_null_keys;
        self.kept_newer += kept_newer;
        self.deleted_empty_keys += deleted_empty_keys;
        self.bytes += bytes;
        self.payload_bytes += payload_bytes;
    }
}

/// Logs a tracing event with every counter of a [`Counters`] as a field, after the caller's
/// fields: `counters_event!(info, target: T, counters, "message", event = "x", table = %t)`. The
/// destructuring has no `..`, so a counter added to the struct must be added here, and then
/// reaches every event that carries the others.
#[macro_export]
macro_rules! counters_event {
    ($level:ident, target: $target:expr, $counters:expr, $message:literal, $($field:tt)+) => {{
        let $crate::run::Counters {
            files,
            rows,
            keys,
            skipped_null_keys,
            kept_newer,
            deleted_empty_keys,
            bytes,
            payload_bytes,
        } = $counters;
        ::tracing::$level!(
            target: $target,
            $($field)+,
            files,
            rows,
            keys,
            skipped_null_keys,
            kept_newer,
            deleted_empty_keys,
            bytes,
            payload_bytes,
            $message
        )
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(base: u64) -> Counters {
        Counters {
            files: base,
            rows: base + 1,
            keys: base + 2,
            skipped_null_keys: base + 3,
            kept_newer: base + 4,
            deleted_empty_keys: base + 7,
            bytes: base + 5,
            payload_bytes: base + 6,
        }
    }

    #[test]
    fn add_sums_every_counter() {
        let mut total = sample(10);
        total.add(&sample(100));
        total.add(&sample(1000));
        assert_eq!(
            total,
            Counters {
                files: 1110,
                rows: 1113,
                keys: 1116,
                skipped_null_keys: 1119,
                kept_newer: 1122,
                deleted_empty_keys: 1131,
                bytes: 1125,
                payload_bytes: 1128,
            }
        );
    }

    #[test]
    fn the_event_macro_logs_exactly_the_serialized_counters() {
        let log = crate::logging::CapturedLog::default();
        {
            let _guard = log.install();
            crate::counters_event!(info, target: "t", sample(0), "done", event = "x", table = "a");
        }
        let [line] = &log.events()[..] else {
            panic!("one JSON line: {:?}", log.events());
        };
        let serde_json::Value::Object(counters) = serde_json::to_value(sample(0)).unwrap() else {
            panic!("counters serialize to an object");
        };
        for (name, value) in &counters {
            assert_eq!(&line[name], value, "{name} in {line}");
        }
        let logged: std::collections::BTreeSet<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected: std::collections::BTreeSet<&str> =
            counters.keys().map(String::as_str).collect();
        expected.extend(["timestamp", "level", "target", "message", "event", "table"]);
        assert_eq!(logged, expected);
        assert_eq!(line["message"], "done");
    }

    #[test]
    fn json_is_flat_and_old_entries_without_the_newer_counters_parse() {
        let json = serde_json::to_value(sample(0)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "files": 0, "rows": 1, "keys": 2, "skipped_null_keys": 3,
                "kept_newer": 4, "deleted_empty_keys": 7, "bytes": 5, "payload_bytes": 6
            })
        );
        let old: Counters = serde_json::from_str(
            r#"{"files": 1, "rows": 2, "keys": 2, "skipped_null_keys": 0, "bytes": 9}"#,
        )
        .unwrap();
        assert_eq!(
            (old.kept_newer, old.deleted_empty_keys, old.payload_bytes),
            (0, 0, 0)
        );
        assert_eq!((old.files, old.rows, old.bytes), (1, 2, 9));
    }
}
