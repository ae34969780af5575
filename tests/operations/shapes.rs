//! The JSON shape of every log event a run can emit, as the README's "Log events" documents it:
//! each field's name and JSON type, required or optional. [`assert_shapes`] checks events against
//! it: an unknown event, an unknown field, a field of the wrong type (a date that is not
//! `YYYY-MM-DD`, a number sent as a string, JSON inside a string) or a missing required field
//! fails the test.

use serde_json::Value;

/// The JSON type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any string (but not JSON inside a string).
    Str,
    /// A `YYYY-MM-DD` string.
    Date,
    /// A non-negative integer.
    Count,
    /// An integer that may be negative.
    Int,
    /// Any number (a float).
    Number,
    /// `true` / `false`.
    Bool,
}

use Kind::*;

/// Fields of every line.
const COMMON: &[(&str, Kind)] = &[
    ("timestamp", Str),
    ("level", Str),
    ("message", Str),
    ("target", Str),
    ("event", Str),
];

/// The counters, in `partition_loaded`, `table_finished` and `run_finished`.
const COUNTERS: &[(&str, Kind)] = &[
    ("files", Count),
    ("rows", Count),
    ("keys", Count),
    ("skipped_null_keys", Count),
    ("kept_newer", Count),
    ("deleted_empty_keys", Count),
    ("bytes", Count),
    ("payload_bytes", Count),
];

/// Fields and their kinds.
type Fields = &'static [(&'static str, Kind)];

/// What an event looks like.
struct Shape {
    level: &'static str,
    required: Vec<(&'static str, Kind)>,
    optional: Vec<(&'static str, Kind)>,
}

/// The shape of an event (`None`: not a documented event).
fn shape(event: &str) -> Option<Shape> {
    let (level, required, optional, counters): (&'static str, Fields, Fields, bool) = match event {
        "run_started" => (
            "INFO",
            &[
                ("run_id", Str),
                ("tables", Count),
                ("dry_run", Bool),
                ("backfill", Bool),
                ("redis", Str),
                ("source", Str),
            ],
            &[("as_of", Date), ("shard", Str)],
            false,
        ),
        "partition_loaded" => (
            "INFO",
            &[
                ("table", Str),
                ("date", Date),
                ("state", Str),
                ("guarded", Bool),
                ("duration_ms", Count),
            ],
            &[],
            true,
        ),
        "partition_planned" => (
            "INFO",
            &[
                ("table", Str),
                ("date", Date),
                ("state", Str),
                ("files", Count),
                ("bytes", Count),
            ],
            &[],
            false,
        ),
        "partition_incomplete" => (
            "INFO",
            &[("table", Str), ("date", Date), ("reason", Str)],
            &[],
            false,
        ),
        "partition_skipped" => (
            "WARN",
            &[("table", Str), ("value", Str), ("reason", Str)],
            &[],
            false,
        ),
        "partition_retry" => (
            "WARN",
            &[
                ("table", Str),
                ("date", Date),
                ("attempt", Count),
                ("error", Str),
            ],
            &[],
            false,
        ),
        "partition_failed" => (
            "ERROR",
            &[
                ("table", Str),
                ("date", Date),
                ("file", Str),
                ("transient", Bool),
                ("error", Str),
            ],
            &[
                ("rows", Count),
                ("skipped_null_keys", Count),
                ("max_skipped_ratio", Number),
            ],
            false,
        ),
        "keys_skipped" => (
            "WARN",
            &[
                ("table", Str),
                ("date", Date),
                ("rows", Count),
                ("skipped_null_keys", Count),
                ("max_skipped_ratio", Number),
            ],
            &[],
            false,
        ),
        "redis_restarted" => (
            "WARN",
            &[("redis", Str), ("old_run_id", Str), ("new_run_id", Str)],
            &[],
            false,
        ),
        "table_replanned" => (
            "INFO",
            &[("table", Str), ("pass", Count), ("recorded", Count)],
            &[],
            false,
        ),
        "partition_withdrawn" => (
            "WARN",
            &[
                ("table", Str),
                ("date", Date),
                ("data_run_id", Str),
                ("ledger_run_id", Str),
            ],
            &[],
            false,
        ),
        "control_retry" => (
            "WARN",
            &[
                ("command", Str),
                ("attempt", Count),
                ("delay_ms", Count),
                ("error", Str),
            ],
            &[],
            false,
        ),
        "control_reconnected" => ("INFO", &[("redis", Str)], &[], false),
        "store_retry" => (
            "WARN",
            &[
                ("operation", Str),
                ("path", Str),
                ("attempt", Count),
                ("retry_after_ms", Count),
                ("error", Str),
            ],
            &[("status", Count)],
            false,
        ),
        "partition_waiting" => (
            "INFO",
            &[
                ("table", Str),
                ("date", Date),
                ("reason", Str),
                ("waited_secs", Count),
                ("wait_for_partition_secs", Count),
            ],
            &[],
            false,
        ),
        "partition_late" => (
            "ERROR",
            &[
                ("table", Str),
                ("date", Date),
                ("today", Date),
                ("partition", Str),
                ("reason", Str),
                ("waited_secs", Count),
            ],
            &[],
            false,
        ),
        "load_progress" => (
            "INFO",
            &[
                ("table", Str),
                ("date", Date),
                ("rows", Count),
                ("rows_total", Count),
                ("keys", Count),
                ("rows_per_sec", Count),
                ("elapsed_secs", Count),
            ],
            &[("eta_secs", Count)],
            false,
        ),
        "table_failed" => ("ERROR", &[("table", Str), ("error", Str)], &[], false),
        "table_finished" => (
            "INFO",
            &[
                ("run_id", Str),
                ("table", Str),
                ("status", Str),
                ("partitions_loaded", Count),
                ("partitions_failed", Count),
                ("lease_wait_ms", Count),
            ],
            &[
                ("shard", Str),
                ("late", Date),
                ("watermark", Date),
                ("watermark_lag_days", Int),
                ("error", Str),
            ],
            true,
        ),
        "lease_held" => (
            "ERROR",
            &[
                ("table", Str),
                ("holder_run_id", Str),
                ("holder_host", Str),
                ("holder_since", Str),
                ("waited_ms", Count),
            ],
            &[("holder_shard", Str)],
            false,
        ),
        "lease_lost" => ("ERROR", &[("table", Str), ("reason", Str)], &[], false),
        "lease_retaken" => ("INFO", &[("table", Str), ("redis_run_id", Str)], &[], false),
        "lease_renewal_failed" => ("WARN", &[("table", Str), ("error", Str)], &[], false),
        "lease_release_failed" => ("WARN", &[("table", Str), ("error", Str)], &[], false),
        "snapshot_keys_deleted" => (
            "INFO",
            &[
                ("table", Str),
                ("date", Date),
                ("previous", Date),
                ("deleted", Count),
            ],
            &[],
            false,
        ),
        "snapshot_previous_missing" => (
            "WARN",
            &[("table", Str), ("date", Date), ("previous", Date)],
            &[],
            false,
        ),
        "run_finished" => (
            "INFO",
            &[
                ("run_id", Str),
                ("exit_code", Count),
                ("duration_ms", Count),
                ("partitions_loaded", Count),
                ("partitions_failed", Count),
                ("partitions_late", Count),
                ("dry_run", Bool),
            ],
            &[("shard", Str)],
            true,
        ),
        "write_rate_adapted" => (
            "INFO",
            &[("keys_per_sec", Count), ("probe_ms", Number)],
            &[],
            false,
        ),
        "adaptive_probe_failed" => ("WARN", &[("error", Str)], &[], false),
        "shutdown_requested" => ("WARN", &[], &[], false),
        "daemon_started" => ("INFO", &[("schedule", Str), ("timezone", Str)], &[], false),
        "daemon_stopping" | "daemon_stopped" => ("INFO", &[], &[], false),
        "run_skipped" => ("WARN", &[("reason", Str)], &[], false),
        "config_invalid" | "startup_failed" | "run_failed" | "daemon_failed" => {
            ("ERROR", &[("error", Str)], &[], false)
        }
        _ => return None,
    };
    let mut required: Vec<_> = COMMON.iter().chain(required).copied().collect();
    if counters {
        required.extend_from_slice(COUNTERS);
    }
    let mut optional = optional.to_vec();
    // An event that names a table names its layout too (`default` without one).
    if required
        .iter()
        .chain(&optional)
        .any(|(name, _)| *name == "table")
    {
        optional.push(("layout", Str));
    }
    Some(Shape {
        level,
        required,
        optional,
    })
}

fn is_date(text: &str) -> bool {
    text.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

fn matches(kind: Kind, value: &Value) -> bool {
    match kind {
        Str => value.as_str().is_some_and(|s| {
            serde_json::from_str::<Value>(s).map_or(true, |v| !v.is_object() && !v.is_array())
        }),
        Date => value.as_str().is_some_and(is_date),
        Count => value.is_u64(),
        Int => value.is_i64() || value.is_u64(),
        Number => value.is_number(),
        Bool => value.is_boolean(),
    }
}

/// Checks every event of coldsync (target `coldsync...`; libraries' own lines, such as the
/// scheduler's when `RUST_LOG=info`, are not events) against its documented shape; returns the
/// names seen.
pub fn assert_shapes(events: &[Value]) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    let ours = |e: &&Value| {
        e["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("coldsync"))
    };
    for event in events.iter().filter(ours) {
        let object = event
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {event}"));
        let name = event["event"]
            .as_str()
            .unwrap_or_else(|| panic!("no event name: {event}"));
        let Shape {
            level,
            required,
            optional,
        } = shape(name).unwrap_or_else(|| panic!("undocumented event {name}: {event}"));
        assert_eq!(event["level"], level, "level of {event}");
        for (field, kind) in &required {
            let value = object
                .get(*field)
                .unwrap_or_else(|| panic!("{name} lacks {field}: {event}"));
            assert!(
                matches(*kind, value),
                "{name}.{field} is not {kind:?}: {event}"
            );
        }
        for (field, value) in object {
            if required.iter().any(|(f, _)| f == field) {
                continue;
            }
            let (_, kind) = optional
                .iter()
                .find(|(f, _)| f == field)
                .unwrap_or_else(|| panic!("{name} has an undocumented field {field}: {event}"));
            assert!(
                matches(*kind, value),
                "{name}.{field} is not {kind:?}: {event}"
            );
        }
        seen.insert(name.to_string());
    }
    seen
}
