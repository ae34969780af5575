//! Writers for dates, times and timestamps (with their zones), in the
//! [`DateEncoding`] and [`TimestampEncoding`] the spec asks for.

use std::iter;

use arrow_array::cast::AsArray;
use arrow_array::types::ArrowPrimitiveType;
use arrow_array::{Array, PrimitiveArray};
use chrono::{Offset as _, TimeZone as _};

use super::scalar::write_int;
use super::writer::{downcast, quoted_text, BoxedWriter, Opts, Problem, Writer};
use super::{DateEncoding, TimestampEncoding};

pub(super) const MILLIS_PER_DAY: i64 = 86_400_000;
const SECS_PER_DAY: i64 = 86_400;

struct DateWriter<'a, T: ArrowPrimitiveType> {
    arr: &'a PrimitiveArray<T>,
    per_day: i64,
    enc: DateEncoding,
}

pub(super) fn date<T: ArrowPrimitiveType>(
    arr: &dyn Array,
    per_day: i64,
    o: Opts,
) -> Result<BoxedWriter<'_>, Problem>
where
    T::Native: Into<i64>,
{
    Ok(Box::new(DateWriter {
        arr: downcast(arr.as_primitive_opt::<T>())?,
        per_day,
        enc: o.date,
    }))
}

impl<T: ArrowPrimitiveType> Writer for DateWriter<'_, T>
where
    T::Native: Into<i64>,
{
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        match self.enc {
            DateEncoding::Iso8601 => quoted_text(self, i, out),
            DateEncoding::EpochDays => self.text(i, out),
        }
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        let days = self.arr.value(i).into().div_euclid(self.per_day);
        match self.enc {
            DateEncoding::Iso8601 => write_date(out, days),
            DateEncoding::EpochDays => write_int(out, days),
        }
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`), total over the inputs we produce.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn write_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut b = itoa::Buffer::new();
    let s = b.format(v).as_bytes();
    out.extend(iter::repeat_n(b'0', width.saturating_sub(s.len())));
    out.extend_from_slice(s);
}

fn write2(out: &mut Vec<u8>, v: u64) {
    write_padded(out, v, 2);
}

fn write_date(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        write_padded(out, y as u64, 4);
    } else {
        out.push(if y < 0 { b'-' } else { b'+' });
        write_padded(out, y.unsigned_abs(), 4);
    }
    out.push(b'-');
    write2(out, u64::from(m));
    out.push(b'-');
    write2(out, u64::from(d));
}

/// `HH:MM:SS` of a second-of-day (hours may exceed 23 for odd inputs).
fn write_hms(out: &mut Vec<u8>, secs: u64) {
    write2(out, secs / 3600);
    out.push(b':');
    write2(out, secs / 60 % 60);
    out.push(b':');
    write2(out, secs % 60);
}

fn write_frac(out: &mut Vec<u8>, frac: u64, digits: usize) {
    if digits > 0 {
        out.push(b'.');
        write_padded(out, frac, digits);
    }
}

struct TimeWriter<'a, T: ArrowPrimitiveType> {
    arr: &'a PrimitiveArray<T>,
    per_sec: u64,
    digits: usize,
}

pub(super) fn time<T: ArrowPrimitiveType>(
    arr: &dyn Array,
    per_sec: u64,
    digits: usize,
) -> Result<BoxedWriter<'_>, Problem>
where
    T::Native: Into<i64>,
{
    Ok(Box::new(TimeWriter {
        arr: downcast(arr.as_primitive_opt::<T>())?,
        per_sec,
        digits,
    }))
}

impl<T: ArrowPrimitiveType> Writer for TimeWriter<'_, T>
where
    T::Native: Into<i64>,
{
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        quoted_text(self, i, out);
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        let v: i64 = self.arr.value(i).into();
        if v < 0 {
            out.push(b'-');
        }
        let v = v.unsigned_abs();
        write_hms(out, v / self.per_sec);
        write_frac(out, v % self.per_sec, self.digits);
    }
}

/// How a timestamp column's zone is rendered.
#[derive(Clone, Copy)]
pub(super) enum TzMode {
    /// No zone, `UTC` or a zero offset: UTC with `Z`.
    Utc,
    /// Fixed offset in seconds east of UTC.
    Fixed(i32),
    /// IANA zone; offset looked up per instant.
    Named(chrono_tz::Tz),
}

pub(super) fn parse_tz(tz: Option<&str>) -> Result<TzMode, Problem> {
    let Some(s) = tz else {
        return Ok(TzMode::Utc);
    };
    if matches!(s, "UTC" | "utc" | "Z" | "z" | "Etc/UTC") {
        return Ok(TzMode::Utc);
    }
    if let Some(off) = parse_fixed_offset(s) {
        return Ok(if off == 0 {
            TzMode::Utc
        } else {
            TzMode::Fixed(off)
        });
    }
    s.parse::<chrono_tz::Tz>()
        .map(TzMode::Named)
        .map_err(|_| Problem::Timezone(s.to_string()))
}

/// Parses `+HH`, `+HHMM` or `+HH:MM` (or `-`) into seconds east of UTC.
fn parse_fixed_offset(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = match &b[1..] {
        [h1, h2] => ([*h1, *h2], [b'0', b'0']),
        [h1, h2, m1, m2] | [h1, h2, b':', m1, m2] => ([*h1, *h2], [*m1, *m2]),
        _ => return None,
    };
    let two = |d: [u8; 2]| -> Option<i32> {
        if d.iter().all(u8::is_ascii_digit) {
            Some(i32::from(d[0] - b'0') * 10 + i32::from(d[1] - b'0'))
        } else {
            None
        }
    };
    let (h, m) = (two(h)?, two(m)?);
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

fn write_offset(out: &mut Vec<u8>, off: i32) {
    out.push(if off < 0 { b'-' } else { b'+' });
    let a = u64::from(off.unsigned_abs());
    write2(out, a / 3600);
    out.push(b':');
    write2(out, a / 60 % 60);
    if a % 60 != 0 {
        // Historical local-mean-time offsets have seconds; keep them so the
        // instant stays exact.
        out.push(b':');
        write2(out, a % 60);
    }
}

struct TimestampWriter<'a, T: ArrowPrimitiveType> {
    arr: &'a PrimitiveArray<T>,
    per_sec: i64,
    digits: usize,
    tz: TzMode,
    enc: TimestampEncoding,
}

pub(super) fn ts<T: ArrowPrimitiveType>(
    arr: &dyn Array,
    per_sec: i64,
    digits: usize,
    tz: TzMode,
    o: Opts,
) -> Result<BoxedWriter<'_>, Problem>
where
    T::Native: Into<i64>,
{
    Ok(Box::new(TimestampWriter {
        arr: downcast(arr.as_primitive_opt::<T>())?,
        per_sec,
        digits,
        tz,
        enc: o.ts,
    }))
}

impl<T: ArrowPrimitiveType> Writer for TimestampWriter<'_, T>
where
    T::Native: Into<i64>,
{
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        match self.enc {
            TimestampEncoding::Iso8601 => quoted_text(self, i, out),
            TimestampEncoding::EpochMillis => self.text(i, out),
        }
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        let v: i64 = self.arr.value(i).into();
        match self.enc {
            TimestampEncoding::EpochMillis => {
                let millis = match self.per_sec {
                    1 => v.saturating_mul(1_000),
                    1_000 => v,
                    p => v.div_euclid(p / 1_000),
                };
                write_int(out, millis);
            }
            TimestampEncoding::Iso8601 => {
                let secs = v.div_euclid(self.per_sec);
                let frac = v.rem_euclid(self.per_sec) as u64;
                let offset = match self.tz {
                    TzMode::Utc => None,
                    TzMode::Fixed(o) => Some(o),
                    TzMode::Named(tz) => Some(
                        chrono::DateTime::from_timestamp(secs, 0)
                            .map(|dt| {
                                tz.offset_from_utc_datetime(&dt.naive_utc())
                                    .fix()
                                    .local_minus_utc()
                            })
                            .unwrap_or(0),
                    ),
                };
                let local = secs.saturating_add(i64::from(offset.unwrap_or(0)));
                write_date(out, local.div_euclid(SECS_PER_DAY));
                out.push(b'T');
                write_hms(out, local.rem_euclid(SECS_PER_DAY) as u64);
                write_frac(out, frac, self.digits);
                match offset {
                    None => out.push(b'Z'),
                    Some(o) => write_offset(out, o),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::*;
    use arrow_schema::DataType;

    use super::*;
    use crate::encode::test_support::*;

    #[test]
    fn timestamps_iso() {
        let ms = 1_795_162_530_123i64;
        let mk = |tz: Option<&str>| -> Vec<ArrayRef> {
            let arrays: Vec<ArrayRef> = vec![
                Arc::new(TimestampSecondArray::from(vec![ms / 1000])),
                Arc::new(TimestampMillisecondArray::from(vec![ms])),
                Arc::new(TimestampMicrosecondArray::from(vec![ms * 1000 + 456])),
                Arc::new(TimestampNanosecondArray::from(vec![
                    ms * 1_000_000 + 456_789,
                ])),
            ];
            match tz {
                None => arrays,
                Some(tz) => arrays
                    .into_iter()
                    .map(|a| {
                        let dt = match a.data_type() {
                            DataType::Timestamp(u, _) => DataType::Timestamp(*u, Some(tz.into())),
                            _ => unreachable!(),
                        };
                        arrow_array::make_array(
                            a.to_data().into_builder().data_type(dt).build().unwrap(),
                        )
                    })
                    .collect(),
            }
        };
        let utc = [
            "\"2026-11-20T08:15:30Z\"",
            "\"2026-11-20T08:15:30.123Z\"",
            "\"2026-11-20T08:15:30.123456Z\"",
            "\"2026-11-20T08:15:30.123456789Z\"",
        ];
        for tz in [None, Some("UTC"), Some("+00:00")] {
            let got: Vec<String> = mk(tz).into_iter().flat_map(json).collect();
            assert_eq!(got, strs(&utc), "tz {tz:?}");
        }
        let cn = [
            "\"2026-11-20T16:15:30+08:00\"",
            "\"2026-11-20T16:15:30.123+08:00\"",
            "\"2026-11-20T16:15:30.123456+08:00\"",
            "\"2026-11-20T16:15:30.123456789+08:00\"",
        ];
        for tz in ["Asia/Shanghai", "+08:00", "+0800"] {
            let got: Vec<String> = mk(Some(tz)).into_iter().flat_map(json).collect();
            assert_eq!(got, strs(&cn), "tz {tz}");
        }
        let got: Vec<String> = mk(Some("-05:30")).into_iter().flat_map(text).collect();
        assert_eq!(got[1], "2026-11-20T02:45:30.123-05:30");

        // IANA zones follow daylight saving time.
        let v: ArrayRef = Arc::new(
            TimestampSecondArray::from(vec![1_795_162_530, 1_782_907_200])
                .with_timezone("America/New_York"),
        );
        assert_eq!(
            text(v),
            strs(&["2026-11-20T03:15:30-05:00", "2026-07-01T08:00:00-04:00"])
        );
    }

    #[test]
    fn timestamps_negative_and_epoch_millis() {
        let v: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(-1),
            Some(0),
            None,
        ]));
        assert_eq!(
            json(v.clone()),
            strs(&[
                "\"1969-12-31T23:59:59.999Z\"",
                "\"1970-01-01T00:00:00.000Z\"",
                "null"
            ])
        );
        let millis =
            |v: ArrayRef| json_enc(v, TimestampEncoding::EpochMillis, DateEncoding::Iso8601);
        assert_eq!(millis(v.clone()), strs(&["-1", "0", "null"]));
        assert_eq!(
            text_enc(v, TimestampEncoding::EpochMillis, DateEncoding::Iso8601),
            strs(&["-1", "0", "NULL"])
        );
        let v: ArrayRef = Arc::new(TimestampSecondArray::from(vec![-86_401, 1]));
        assert_eq!(
            json(v.clone()),
            strs(&["\"1969-12-30T23:59:59Z\"", "\"1970-01-01T00:00:01Z\""])
        );
        assert_eq!(millis(v), strs(&["-86401000", "1000"]));
        let v: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![-1, -1001, 1999]));
        assert_eq!(
            json(v.clone()),
            strs(&[
                "\"1969-12-31T23:59:59.999999Z\"",
                "\"1969-12-31T23:59:59.998999Z\"",
                "\"1970-01-01T00:00:00.001999Z\""
            ])
        );
        assert_eq!(millis(v), strs(&["-1", "-2", "1"]));
        let v: ArrayRef = Arc::new(
            TimestampNanosecondArray::from(vec![-1, 1, 1_795_162_530_123_456_789])
                .with_timezone("Asia/Shanghai"),
        );
        assert_eq!(millis(v.clone()), strs(&["-1", "0", "1795162530123"]));
        assert_eq!(json(v)[0], "\"1970-01-01T07:59:59.999999999+08:00\"");
        // Pre-1900 dates and the Shanghai LMT offset with seconds.
        let v: ArrayRef = Arc::new(
            TimestampSecondArray::from(vec![-2_208_988_800]).with_timezone("Asia/Shanghai"),
        );
        assert_eq!(text(v), strs(&["1900-01-01T08:05:43+08:05:43"]));
    }

    #[test]
    fn dates_both_encodings() {
        let d32: ArrayRef = Arc::new(Date32Array::from(vec![
            Some(20_777),
            Some(0),
            Some(-1),
            Some(11_016),
            Some(-719_528),
            None,
        ]));
        assert_eq!(
            json(d32.clone()),
            strs(&[
                "\"2026-11-20\"",
                "\"1970-01-01\"",
                "\"1969-12-31\"",
                "\"2000-02-29\"",
                "\"0000-01-01\"",
                "null"
            ])
        );
        assert_eq!(text(d32.clone())[0], "2026-11-20");
        let days = |v: ArrayRef| json_enc(v, TimestampEncoding::Iso8601, DateEncoding::EpochDays);
        assert_eq!(
            days(d32.clone()),
            strs(&["20777", "0", "-1", "11016", "-719528", "null"])
        );
        assert_eq!(
            text_enc(d32, TimestampEncoding::Iso8601, DateEncoding::EpochDays)[2],
            "-1"
        );

        let d64: ArrayRef = Arc::new(Date64Array::from(vec![
            20_777 * MILLIS_PER_DAY,
            -1,
            1,
            MILLIS_PER_DAY,
        ]));
        assert_eq!(
            json(d64.clone()),
            strs(&[
                "\"2026-11-20\"",
                "\"1969-12-31\"",
                "\"1970-01-01\"",
                "\"1970-01-02\""
            ])
        );
        assert_eq!(days(d64), strs(&["20777", "-1", "0", "1"]));

        let far: ArrayRef = Arc::new(Date32Array::from(vec![2_932_897, -719_529]));
        assert_eq!(json(far), strs(&["\"+10000-01-01\"", "\"-0001-12-31\""]));
    }

    #[test]
    fn times_and_durations() {
        let v: ArrayRef = Arc::new(Time32SecondArray::from(vec![Some(0), Some(86_399), None]));
        assert_eq!(
            json(v.clone()),
            strs(&["\"00:00:00\"", "\"23:59:59\"", "null"])
        );
        assert_eq!(text(v), strs(&["00:00:00", "23:59:59", "NULL"]));
        let v: ArrayRef = Arc::new(Time32MillisecondArray::from(vec![45_296_007]));
        assert_eq!(json(v), strs(&["\"12:34:56.007\""]));
        let v: ArrayRef = Arc::new(Time64MicrosecondArray::from(vec![45_296_000_001]));
        assert_eq!(json(v), strs(&["\"12:34:56.000001\""]));
        let v: ArrayRef = Arc::new(Time64NanosecondArray::from(vec![45_296_123_456_789]));
        assert_eq!(json(v), strs(&["\"12:34:56.123456789\""]));

        let v: ArrayRef = Arc::new(DurationMillisecondArray::from(vec![Some(-1500), None]));
        assert_eq!(json(v.clone()), strs(&["-1500", "null"]));
        assert_eq!(text(v), strs(&["-1500", "NULL"]));
        let v: ArrayRef = Arc::new(DurationNanosecondArray::from(vec![i64::MAX]));
        assert_eq!(json(v), strs(&["9223372036854775807"]));
        let v: ArrayRef = Arc::new(DurationSecondArray::from(vec![3]));
        assert_eq!(json(v), strs(&["3"]));
        let v: ArrayRef = Arc::new(DurationMicrosecondArray::from(vec![4]));
        assert_eq!(json(v), strs(&["4"]));
    }

    #[test]
    fn civil_from_days_matches_chrono() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for days in (-800_000i64..800_000)
            .step_by(997)
            .chain([-1, 0, 59, 60, 365, 366, 11_016])
        {
            let d = epoch + chrono::Duration::days(days);
            let mut out = Vec::new();
            write_date(&mut out, days);
            assert_eq!(s(&out), d.format("%Y-%m-%d").to_string(), "days {days}");
        }
    }
}
