//! Calendar maths of a run: the business day in a table's time zone, the first instant of a day
//! (time zones whose DST change skips midnight included), and the absolute expiry of a partition's
//! keys.

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::config::{LoadMode, TableConfig};
use crate::redis::Expiry;

/// The business day in `tz` now.
pub fn today_in(tz: Tz) -> NaiveDate {
    day_at(Utc::now(), tz)
}

/// The business day in `tz` at the instant `at`.
pub fn day_at(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// Milliseconds since the epoch of the start of `date` in `tz`: its midnight, the earlier one when
/// midnight happens twice (DST ends at 01:00), 01:00 when a DST change skips midnight.
pub fn start_of_day_ms(date: NaiveDate, tz: Tz) -> i64 {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    match tz.from_local_datetime(&midnight).earliest() {
        Some(at) => at.timestamp_millis(),
        // A DST gap at midnight: the day starts an hour later.
        None => tz
            .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
            .earliest()
            .map(|at| at.timestamp_millis())
            .unwrap_or_else(|| midnight.and_utc().timestamp_millis()),
    }
}

/// Absolute expiry of the keys of a partition: incremental tables keep a date for
/// `retention_days` (the key expires when the date leaves the window, at the start of
/// `date + retention_days + 1`); snapshot keys live until the next snapshot is due
/// (`date + hot_days + 1`) plus `snapshot_grace_days`.
pub fn partition_expiry(table: &TableConfig, date: NaiveDate) -> Expiry {
    let days = match table.mode {
        LoadMode::Incremental => u64::from(table.retention_days) + 1,
        LoadMode::Snapshot => u64::from(table.hot_days) + 1 + u64::from(table.snapshot_grace_days),
    };
    Expiry::at(start_of_day_ms(date + Days::new(days), table.timezone))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Config;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// Milliseconds of a UTC instant written as `2024-09-08T04:00:00Z`.
    fn utc_ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn table(extra: &str) -> TableConfig {
        let text = format!(
            "[source]\nscheme = \"fs\"\nroot = \"/w\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n\
             [[tables]]\nname = \"t\"\npath = \"t\"\nkey = \"k:{{id}}\"\n{extra}\n"
        );
        Config::parse(&text, &HashMap::new())
            .unwrap()
            .tables
            .remove(0)
    }

    #[test]
    fn the_business_day_is_the_date_in_the_zone() {
        let at = DateTime::parse_from_rfc3339("2026-11-20T23:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(day_at(at, chrono_tz::UTC), d(2026, 11, 20));
        assert_eq!(day_at(at, chrono_tz::Asia::Shanghai), d(2026, 11, 21));
        assert_eq!(day_at(at, chrono_tz::America::Los_Angeles), d(2026, 11, 20));
    }

    #[test]
    fn a_day_starts_at_its_midnight() {
        assert_eq!(
            start_of_day_ms(d(2026, 11, 20), chrono_tz::UTC),
            utc_ms("2026-11-20T00:00:00Z")
        );
        assert_eq!(
            start_of_day_ms(d(2026, 11, 20), chrono_tz::Asia::Shanghai),
            utc_ms("2026-11-19T16:00:00Z")
        );
    }

    #[test]
    fn a_dst_change_that_skips_midnight_starts_the_day_at_one() {
        // Chile: on 2024-09-08 the clocks jump from 00:00 (-04) to 01:00 (-03).
        let santiago = chrono_tz::America::Santiago;
        assert!(santiago
            .from_local_datetime(&d(2024, 9, 8).and_hms_opt(0, 0, 0).unwrap())
            .earliest()
            .is_none());
        assert_eq!(
            start_of_day_ms(d(2024, 9, 8), santiago),
            utc_ms("2024-09-08T01:00:00-03:00")
        );
        assert_eq!(
            start_of_day_ms(d(2024, 9, 7), santiago),
            utc_ms("2024-09-07T00:00:00-04:00")
        );
        // The day before the jump is a whole 24 hours, the day of it 23.
        assert_eq!(
            start_of_day_ms(d(2024, 9, 8), santiago) - start_of_day_ms(d(2024, 9, 7), santiago),
            24 * 3_600_000
        );
        assert_eq!(
            start_of_day_ms(d(2024, 9, 9), santiago) - start_of_day_ms(d(2024, 9, 8), santiago),
            23 * 3_600_000
        );
        // Cuba: on 2024-03-10 the clocks jump from 00:00 (-05) to 01:00 (-04).
        assert_eq!(
            start_of_day_ms(d(2024, 3, 10), chrono_tz::America::Havana),
            utc_ms("2024-03-10T01:00:00-04:00")
        );
    }

    #[test]
    fn a_midnight_that_happens_twice_starts_the_day_at_the_first() {
        // Cuba: on 2024-11-03 the clocks go back from 01:00 (-04) to 00:00 (-05).
        let havana = chrono_tz::America::Havana;
        let midnight = d(2024, 11, 3).and_hms_opt(0, 0, 0).unwrap();
        assert!(havana.from_local_datetime(&midnight).latest().is_some());
        assert_ne!(
            havana.from_local_datetime(&midnight).earliest(),
            havana.from_local_datetime(&midnight).latest()
        );
        assert_eq!(
            start_of_day_ms(d(2024, 11, 3), havana),
            utc_ms("2024-11-03T00:00:00-04:00")
        );
        // Chile: the clocks go back at 00:00 (-03) to 23:00 (-04) of the day before, so the
        // repeated hour is the previous evening and midnight happens once, at -04.
        assert_eq!(
            start_of_day_ms(d(2024, 4, 7), chrono_tz::America::Santiago),
            utc_ms("2024-04-07T00:00:00-04:00")
        );
    }

    #[test]
    fn incremental_keys_expire_when_the_date_leaves_the_window() {
        let t = table("retention_days = 30\ntimezone = \"Asia/Shanghai\"");
        assert_eq!(
            partition_expiry(&t, d(2026, 11, 20)).millis,
            utc_ms("2026-12-21T00:00:00+08:00")
        );
    }

    #[test]
    fn snapshot_keys_live_until_the_next_snapshot_is_due_plus_the_grace() {
        let t = table(
            "mode = \"snapshot\"\nhot_days = 2\nsnapshot_grace_days = 3\nretention_days = 30",
        );
        assert_eq!(
            partition_expiry(&t, d(2026, 11, 20)).millis,
            start_of_day_ms(d(2026, 11, 26), t.timezone)
        );
    }
}
