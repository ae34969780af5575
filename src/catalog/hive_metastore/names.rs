//! Partition names as the metastore spells them (`dt=2026-11-20/hour=01`, values escaped the way
//! Hive escapes path names: `%3A` for `:`), and the text a date's fingerprint adds from the
//! metastore. Pure functions.

use std::collections::BTreeMap;

use super::FINGERPRINT_PARAMETERS;

/// The value of `key` in the partition name `name` (`k1=v1/k2=v2`), unescaped; keys compare
/// case-insensitively (Hive keeps them lower-case).
pub(super) fn value_of(name: &str, key: &str) -> Option<String> {
    name.split('/').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        unescape(k).eq_ignore_ascii_case(key).then(|| unescape(v))
    })
}

/// `k1=v1/k2=v2` of `keys` and `values` (as they are, for messages and the fingerprint).
pub(super) fn partition_name(keys: &[String], values: &[String]) -> String {
    keys.iter()
        .zip(values)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("/")
}

/// Undoes Hive's path-name escaping (`%XX`, two hex digits, for the characters it escapes).
pub(super) fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(code) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                out.push(char::from(code));
                i += 3;
                continue;
            }
        }
        let ch = text[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// What one registered partition adds to its date's fingerprint: its name, its location and
/// the parameters that change when it is rewritten (`-` for one it does not have).
pub(super) fn fingerprint_line(
    name: &str,
    location: &str,
    parameters: &BTreeMap<String, String>,
) -> String {
    let mut line = format!("{name}\0{location}");
    for key in FINGERPRINT_PARAMETERS {
        line.push('\0');
        line.push_str(parameters.get(key).map_or("-", String::as_str));
    }
    line.push('\n');
    line
}

/// The longest common directory (ending in `/`, possibly empty) of two directories ending in `/`.
pub(super) fn common_dir<'a>(a: &'a str, b: &str) -> &'a str {
    let mut end = 0;
    for ((i, x), y) in a.char_indices().zip(b.chars()) {
        if x != y {
            break;
        }
        if x == '/' {
            end = i + 1;
        }
    }
    &a[..end]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn values_are_found_by_key_and_unescaped() {
        let name = "region=eu%2Fwest/dt=2026-11-20/ts=2026-11-20 01%3A00";
        assert_eq!(value_of(name, "dt").as_deref(), Some("2026-11-20"));
        assert_eq!(value_of(name, "DT").as_deref(), Some("2026-11-20"));
        assert_eq!(value_of(name, "region").as_deref(), Some("eu/west"));
        assert_eq!(value_of(name, "ts").as_deref(), Some("2026-11-20 01:00"));
        assert_eq!(value_of(name, "hour"), None);
        assert_eq!(
            value_of("dt=__HIVE_DEFAULT_PARTITION__", "dt").as_deref(),
            Some("__HIVE_DEFAULT_PARTITION__")
        );
    }

    #[test]
    fn unescape_leaves_what_is_not_an_escape() {
        assert_eq!(unescape("100%"), "100%");
        assert_eq!(unescape("%zz%4"), "%zz%4");
        assert_eq!(unescape("été%3D1"), "été=1");
    }

    #[test]
    fn common_dirs() {
        assert_eq!(
            common_dir("t/dt=2026-11-20/hour=01/", "t/dt=2026-11-20/hour=02/"),
            "t/dt=2026-11-20/"
        );
        assert_eq!(common_dir("t/dt=1/", "t/dt=1/"), "t/dt=1/");
        assert_eq!(common_dir("t/dt=1/", "elsewhere/x/"), "");
        assert_eq!(common_dir("t/dt=10/", "t/dt=11/"), "t/");
    }

    #[test]
    fn fingerprint_lines_change_with_every_parameter() {
        let params = |ddl: &str, files: &str, size: &str| {
            BTreeMap::from([
                ("transient_lastDdlTime".to_string(), ddl.to_string()),
                ("numFiles".to_string(), files.to_string()),
                ("totalSize".to_string(), size.to_string()),
                ("other".to_string(), "x".to_string()),
            ])
        };
        let base = fingerprint_line("dt=1", "file:/a", &params("1", "2", "3"));
        for changed in [
            fingerprint_line("dt=1", "file:/a", &params("9", "2", "3")),
            fingerprint_line("dt=1", "file:/a", &params("1", "9", "3")),
            fingerprint_line("dt=1", "file:/a", &params("1", "2", "9")),
            fingerprint_line("dt=1", "file:/b", &params("1", "2", "3")),
            fingerprint_line("dt=2", "file:/a", &params("1", "2", "3")),
            fingerprint_line("dt=1", "file:/a", &BTreeMap::new()),
        ] {
            assert_ne!(base, changed);
        }
        let mut other = params("1", "2", "3");
        other.insert("other".to_string(), "y".to_string());
        assert_eq!(base, fingerprint_line("dt=1", "file:/a", &other));
    }

    /// Hive's `FileUtils.escapePathName`, for the round trip.
    fn hive_escape(text: &str) -> String {
        text.chars()
            .map(|c| {
                if (c as u32) < 0x20 || "\"#%'*/:=?\\\u{7f}{[]^".contains(c) {
                    format!("%{:02X}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn hive_escaped_values_round_trip(value in any::<String>()) {
            prop_assert_eq!(unescape(&hive_escape(&value)), value.clone());
            let name = format!("dt={}/hour=01", hive_escape(&value));
            prop_assert_eq!(value_of(&name, "dt"), Some(value));
        }
    }
}
