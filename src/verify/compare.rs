//! The pure comparison of what a load writes for a key (its [`Expected`] value and expiry) with
//! what Redis holds ([`Found`]), into a [`Verdict`], and the shortened text of both for examples.
//!
//! Latest wins: a key whose expiry is later than the partition's was written by a newer
//! partition (expiries grow with the date), so it counts as [`Verdict::Superseded`], whatever
//! its value.

use std::collections::BTreeMap;

/// What a load writes for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A string value (`json`, `column`, `delimited`).
    Value(Vec<u8>),
    /// The fields of a hash; empty when every value column is null (the load deletes the key).
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
}

/// What Redis holds for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No such key.
    Missing,
    /// A key, with its absolute expiry in ms (`None`: it never expires).
    Present {
        /// The value.
        value: FoundValue,
        /// `PEXPIRETIME`, `None` for a key without expiry.
        expiry_ms: Option<i64>,
    },
}

/// The value of a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundValue {
    /// A string (`GET`).
    Value(Vec<u8>),
    /// A hash (`HGETALL`).
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    /// Another type than the layout writes: the error Redis answered.
    WrongType(String),
}

/// How a key compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Value and expiry as the load writes them (or, for an empty hash, no key).
    Matched,
    /// No key where the load writes one.
    Missing,
    /// Another value (or type) with an expiry no later than the partition's.
    Different,
    /// A later expiry: a newer partition owns the key (latest wins).
    Superseded,
    /// The value the load writes, but another expiry not explained by a newer partition.
    WrongExpiry,
}

impl Verdict {
    /// Every verdict, in report order.
    pub const ALL: [Verdict; 5] = [
        Verdict::Matched,
        Verdict::Missing,
        Verdict::Different,
        Verdict::Superseded,
        Verdict::WrongExpiry,
    ];

    /// The name in events and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Matched => "matched",
            Verdict::Missing => "missing",
            Verdict::Different => "different",
            Verdict::Superseded => "superseded",
            Verdict::WrongExpiry => "wrong_expiry",
        }
    }

    /// True for the verdicts that make a verify fail (exit 6).
    pub fn is_mismatch(self) -> bool {
        matches!(
            self,
            Verdict::Missing | Verdict::Different | Verdict::WrongExpiry
        )
    }
}

/// Compares what a load of the partition writes for a key (expiring at `expiry_ms`) with what
/// Redis holds.
pub fn classify(expected: &Expected, expiry_ms: i64, found: &Found) -> Verdict {
    let (value, found_expiry) = match found {
        Found::Missing => {
            return match expected {
                Expected::Hash(fields) if fields.is_empty() => Verdict::Matched,
                _ => Verdict::Missing,
            }
        }
        Found::Present { value, expiry_ms } => (value, *expiry_ms),
    };
    if found_expiry.is_some_and(|found| found > expiry_ms) {
        return Verdict::Superseded;
    }
    let same = match (expected, value) {
        (Expected::Value(want), FoundValue::Value(got)) => want == got,
        (Expected::Hash(want), FoundValue::Hash(got)) => !want.is_empty() && want == got,
        _ => false,
    };
    match (same, found_expiry == Some(expiry_ms)) {
        (true, true) => Verdict::Matched,
        (true, false) => Verdict::WrongExpiry,
        (false, _) => Verdict::Different,
    }
}

/// Longest text of a value in an example.
pub const EXAMPLE_CHARS: usize = 80;

/// `text` cut to [`EXAMPLE_CHARS`] characters, `...` marking the cut.
pub fn shorten(text: &str) -> String {
    if text.chars().count() <= EXAMPLE_CHARS {
        return text.to_string();
    }
    let cut: String = text.chars().take(EXAMPLE_CHARS - 3).collect();
    format!("{cut}...")
}

fn hash_text(fields: &BTreeMap<Vec<u8>, Vec<u8>>) -> String {
    let pairs: Vec<String> = fields
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(value)
            )
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// The expected value as an example shows it (shortened).
pub fn expected_text(expected: &Expected) -> String {
    shorten(&match expected {
        Expected::Value(value) => String::from_utf8_lossy(value).into_owned(),
        Expected::Hash(fields) if fields.is_empty() => "(no key: every value is null)".into(),
        Expected::Hash(fields) => hash_text(fields),
    })
}

/// The value found as an example shows it (shortened).
pub fn found_text(found: &Found) -> String {
    shorten(&match found {
        Found::Missing => "(no key)".to_string(),
        Found::Present { value, .. } => match value {
            FoundValue::Value(value) => String::from_utf8_lossy(value).into_owned(),
            FoundValue::Hash(fields) => hash_text(fields),
            FoundValue::WrongType(error) => format!("(wrong type: {error})"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPIRY: i64 = 1_800_000_000_000;

    fn value(text: &str, expiry_ms: Option<i64>) -> Found {
        Found::Present {
            value: FoundValue::Value(text.as_bytes().to_vec()),
            expiry_ms,
        }
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn hash(pairs: &[(&str, &str)], expiry_ms: Option<i64>) -> Found {
        Found::Present {
            value: FoundValue::Hash(fields(pairs)),
            expiry_ms,
        }
    }

    #[test]
    fn the_same_value_and_expiry_match() {
        let want = Expected::Value(b"{\"a\":1}".to_vec());
        assert_eq!(
            classify(&want, EXPIRY, &value("{\"a\":1}", Some(EXPIRY))),
            Verdict::Matched
        );
        let want = Expected::Hash(fields(&[("a", "1"), ("b", "x")]));
        let found = hash(&[("b", "x"), ("a", "1")], Some(EXPIRY));
        assert_eq!(classify(&want, EXPIRY, &found), Verdict::Matched);
    }

    #[test]
    fn a_missing_key_is_missing_unless_the_load_deletes_it() {
        let want = Expected::Value(b"v".to_vec());
        assert_eq!(classify(&want, EXPIRY, &Found::Missing), Verdict::Missing);
        let empty = Expected::Hash(BTreeMap::new());
        assert_eq!(classify(&empty, EXPIRY, &Found::Missing), Verdict::Matched);
        // An empty hash deletes the key: one still there (not newer) is different.
        assert_eq!(
            classify(&empty, EXPIRY, &hash(&[("a", "1")], Some(EXPIRY))),
            Verdict::Different
        );
    }

    #[test]
    fn another_value_is_different_and_a_later_expiry_is_superseded() {
        let want = Expected::Value(b"v1".to_vec());
        assert_eq!(
            classify(&want, EXPIRY, &value("v2", Some(EXPIRY))),
            Verdict::Different
        );
        assert_eq!(
            classify(&want, EXPIRY, &value("v2", Some(EXPIRY - 1))),
            Verdict::Different
        );
        assert_eq!(
            classify(&want, EXPIRY, &value("v2", Some(EXPIRY + 86_400_000))),
            Verdict::Superseded
        );
        assert_eq!(
            classify(&want, EXPIRY, &value("v2", None)),
            Verdict::Different
        );
        let want = Expected::Hash(fields(&[("a", "1")]));
        assert_eq!(
            classify(
                &want,
                EXPIRY,
                &hash(&[("a", "1"), ("b", "2")], Some(EXPIRY))
            ),
            Verdict::Different,
            "a stale extra field is a difference"
        );
    }

    #[test]
    fn the_right_value_with_another_expiry_is_wrong_expiry() {
        let want = Expected::Value(b"v".to_vec());
        assert_eq!(
            classify(&want, EXPIRY, &value("v", Some(EXPIRY - 1000))),
            Verdict::WrongExpiry
        );
        assert_eq!(
            classify(&want, EXPIRY, &value("v", None)),
            Verdict::WrongExpiry
        );
    }

    #[test]
    fn another_type_is_different() {
        let want = Expected::Value(b"v".to_vec());
        let found = Found::Present {
            value: FoundValue::WrongType("WRONGTYPE".into()),
            expiry_ms: Some(EXPIRY),
        };
        assert_eq!(classify(&want, EXPIRY, &found), Verdict::Different);
        assert_eq!(
            classify(&want, EXPIRY, &hash(&[("v", "")], Some(EXPIRY))),
            Verdict::Different
        );
        assert_eq!(found_text(&found), "(wrong type: WRONGTYPE)");
    }

    #[test]
    fn examples_are_shortened_to_80_characters() {
        let long = "x".repeat(200);
        let text = expected_text(&Expected::Value(long.into_bytes()));
        assert_eq!(text.chars().count(), EXAMPLE_CHARS);
        assert!(text.ends_with("..."));
        assert_eq!(
            expected_text(&Expected::Hash(fields(&[("a", "1"), ("b", "2")]))),
            "{a=1,b=2}"
        );
        assert_eq!(found_text(&Found::Missing), "(no key)");
        assert_eq!(shorten("short"), "short");
    }

    #[test]
    fn only_missing_different_and_wrong_expiry_fail_a_verify() {
        let failing: Vec<&str> = Verdict::ALL
            .iter()
            .filter(|v| v.is_mismatch())
            .map(|v| v.as_str())
            .collect();
        assert_eq!(failing, ["missing", "different", "wrong_expiry"]);
    }
}
