//! The days a test talks about: today (fixed when the test binary starts, so a test crossing
//! midnight stays consistent), days ago, their `YYYY-MM-DD` form, and the expiry of a key loaded
//! from a day under the workspace's `retention_days = 30` (UTC); and the check of a table's keys,
//! values and expiries that the lake-source tests share.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate, Utc};

use super::RedisServer;

/// The UTC day when the test binary started.
pub fn today() -> NaiveDate {
    static TODAY: std::sync::OnceLock<NaiveDate> = std::sync::OnceLock::new();
    *TODAY.get_or_init(|| Utc::now().date_naive())
}

/// `today() - days`.
pub fn ago(days: u64) -> NaiveDate {
    today() - Days::new(days)
}

/// `YYYY-MM-DD`.
pub fn iso(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// PEXPIRETIME of a key last written from `date` with `retention_days = 30` (UTC): midnight of
/// `date + 31`.
pub fn expiry_30(date: NaiveDate) -> i64 {
    (date + Days::new(31))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// Asserts the keys matching `pattern` are exactly `expected` (key -> value, date it was last
/// written from: its expiry under `retention_days = 30`).
pub fn assert_contents(
    redis: &RedisServer,
    pattern: &str,
    expected: &BTreeMap<String, (String, NaiveDate)>,
) {
    assert_eq!(
        redis.keys(pattern),
        expected.keys().cloned().collect::<BTreeSet<_>>(),
        "keys {pattern}"
    );
    for (key, (value, date)) in expected {
        assert_eq!(redis.get(key).as_deref(), Some(value.as_str()), "{key}");
        assert_eq!(redis.pexpiretime(key), expiry_30(*date), "expiry of {key}");
    }
}
