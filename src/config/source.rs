//! `[source]`: the object store (an opendal service and its options), validated into a
//! [`SourceConfig`] with every credential read from the environment or a file.
//!
//! opendal ignores options its service does not know, so a typo (`read_concurency`,
//! `root_dir`) would pass silently: every option is checked against the names (and aliases) of
//! the service's own opendal config struct (`FsConfig`, `S3Config`, ...), read from the struct's
//! `Deserialize` implementation, so the list follows opendal with no copy of it here.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserialize, Visitor};

use super::invalid;
use super::raw::RawSource;
use super::secret::{self, is_secret_option, OptionValue};
use crate::error::ConfigError;

/// The opendal services coldsync is built with.
const SCHEMES: &[&str] = &["fs", "s3", "gcs", "azblob", "oss"];

/// The options of `[source]` that coldsync reads itself (not passed to opendal).
const OWN_OPTIONS: &[&str] = &[
    "scheme",
    "retry_attempts",
    "timeout_secs",
    "read_concurrency",
];

/// Where the cold data comes from: an opendal service and its options.
#[derive(Clone)]
pub struct SourceConfig {
    /// opendal scheme (`fs`, `s3`, `gcs`, `azblob`, `oss`, ...).
    pub scheme: String,
    /// Options passed to the opendal service, secrets already resolved.
    pub options: BTreeMap<String, OptionValue>,
    /// Attempts for transient object-store errors (opendal `RetryLayer`).
    pub retry_attempts: usize,
    /// Timeout of one object-store operation.
    pub timeout: Duration,
    /// Footers and files read at once.
    pub read_concurrency: usize,
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("scheme", &self.scheme)
            .field("options", &self.options)
            .finish()
    }
}

impl SourceConfig {
    /// Validates `[source]`, reading `<option>_env` / `<option>_file` secrets from `env` / files.
    pub(super) fn build(
        raw: RawSource,
        env: &HashMap<String, String>,
    ) -> Result<SourceConfig, ConfigError> {
        if !SCHEMES.contains(&raw.scheme.as_str()) {
            return Err(invalid(
                "source.scheme",
                format!(
                    "{:?} is not a supported opendal service (supported: {})",
                    raw.scheme,
                    SCHEMES.join(", ")
                ),
            ));
        }
        if raw.retry_attempts == 0 {
            return Err(invalid("source.retry_attempts", "must be at least 1"));
        }
        if raw.timeout_secs == 0 {
            return Err(invalid("source.timeout_secs", "must be at least 1"));
        }
        if raw.read_concurrency == 0 {
            return Err(invalid("source.read_concurrency", "must be at least 1"));
        }
        let known = service_options(&raw.scheme);
        let mut options = BTreeMap::new();
        for (name, value) in raw.options {
            let option = format!("source.{name}");
            check_known_option(&raw.scheme, known, &name)?;
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => return Err(invalid(option, "must be a string, integer or boolean")),
            };
            if let Some(target) = name.strip_suffix("_env") {
                let value = secret::from_env(&option, &text, env)?;
                options.insert(
                    target.to_string(),
                    OptionValue::Secret(secret::Secret::new(value.clone())),
                );
            } else if let Some(target) = name.strip_suffix("_file") {
                let value = secret::from_file(&option, Path::new(&text))?;
                options.insert(target.to_string(), OptionValue::Secret(value));
            } else if is_secret_option(&name) {
                return Err(invalid(
                    option,
                    format!("credentials must not be written in the config file: use {name}_env = \"VAR\" or {name}_file = \"/path\""),
                ));
            } else {
                options.insert(name, OptionValue::Plain(text));
            }
        }
        if raw.scheme == "fs" && !options.contains_key("root") {
            return Err(invalid(
                "source.root",
                "the fs service needs a root directory",
            ));
        }
        if raw.scheme == "azblob" && !options.contains_key("container") {
            return Err(invalid(
                "source.container",
                "the azblob service needs a container",
            ));
        }
        if matches!(raw.scheme.as_str(), "s3" | "gcs" | "oss") && !options.contains_key("bucket") {
            return Err(invalid(
                "source.bucket",
                format!("the {} service needs a bucket", raw.scheme),
            ));
        }
        Ok(SourceConfig {
            scheme: raw.scheme,
            options,
            retry_attempts: raw.retry_attempts,
            timeout: Duration::from_secs(raw.timeout_secs),
            read_concurrency: raw.read_concurrency,
        })
    }
}

/// The option names (with their aliases) that opendal's config struct of `scheme` accepts.
fn service_options(scheme: &str) -> &'static [&'static str] {
    use opendal::services::{AzblobConfig, FsConfig, GcsConfig, OssConfig, S3Config};
    let names = match scheme {
        "fs" => struct_fields::<FsConfig>(),
        "s3" => struct_fields::<S3Config>(),
        "gcs" => struct_fields::<GcsConfig>(),
        "azblob" => struct_fields::<AzblobConfig>(),
        "oss" => struct_fields::<OssConfig>(),
        _ => None,
    };
    // A struct whose names cannot be read (none today: a unit test checks every service) is not
    // checked rather than refusing every option.
    names.unwrap_or(&[])
}

/// Refuses an option of `[source]` that the service does not know, naming the option and the
/// service, with the closest known name when one is close. `<name>_env` and `<name>_file` are
/// judged by `<name>`. Names are compared in lower case, as opendal reads them.
fn check_known_option(
    scheme: &str,
    known: &'static [&'static str],
    name: &str,
) -> Result<(), ConfigError> {
    if known.is_empty() {
        return Ok(());
    }
    let lower = name.to_ascii_lowercase();
    let (target, suffix) = match (lower.strip_suffix("_env"), lower.strip_suffix("_file")) {
        (Some(target), _) => (target, "_env"),
        (_, Some(target)) => (target, "_file"),
        _ => (lower.as_str(), ""),
    };
    if known.contains(&target) {
        return Ok(());
    }
    let candidates = known.iter().map(|known| format!("{known}{suffix}")).chain(
        suffix
            .is_empty()
            .then(|| OWN_OPTIONS.iter().map(|o| o.to_string()))
            .into_iter()
            .flatten(),
    );
    let hint = match closest(&lower, candidates) {
        Some(close) => format!(" (did you mean {close:?}?)"),
        None => format!("; its options: {}", known.join(", ")),
    };
    Err(invalid(
        format!("source.{name}"),
        format!("the {scheme} service has no option {target:?}{hint}"),
    ))
}

/// The candidate closest to `name` if it is close: at most 2 edits away (for names longer than
/// 4 letters), or one of the two starting with the other (`root_dir` -> `root`).
fn closest(name: &str, candidates: impl Iterator<Item = String>) -> Option<String> {
    candidates
        .filter_map(|candidate| {
            let distance = strsim::levenshtein(name, &candidate);
            let prefix = candidate.len() >= 4
                && name.len() >= 4
                && (name.starts_with(candidate.as_str()) || candidate.starts_with(name));
            let close = (distance <= 2 && name.len() > 4) || prefix;
            close.then_some((distance, candidate))
        })
        .min()
        .map(|(_, candidate)| candidate)
}

/// The field names (aliases included) of a struct with a derived `Deserialize`: serde hands them
/// to `deserialize_struct`, where [`FieldNames`] keeps them and stops. `None` when the type does
/// not deserialize as a plain struct (e.g. one with a flattened field).
fn struct_fields<'de, T: Deserialize<'de>>() -> Option<&'static [&'static str]> {
    let mut names = FieldNames(None);
    let _ = T::deserialize(&mut names);
    names.0
}

/// A deserializer that only records the field names of the struct asked of it.
struct FieldNames(Option<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for &mut FieldNames {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = Some(fields);
        Err(de::Error::custom("field names recorded"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use opendal::services::{AzblobConfig, FsConfig, GcsConfig, OssConfig, S3Config};
    use opendal::Configurator;

    use super::*;

    /// True when opendal's own config deserialization reads option `name` of `C`: some value
    /// among a few makes the config differ from the default, or is refused (a map-valued option
    /// such as `assume_role_session_tags` takes no text; an ignored option is never refused).
    /// `base`: options the struct requires (azblob's has no serde defaults).
    fn opendal_uses<C: Configurator + PartialEq>(base: &[(&str, &str)], name: &str) -> bool {
        let with = |extra: Option<(&str, &str)>| {
            C::from_iter(
                base.iter()
                    .copied()
                    .filter(|(key, _)| *key != name)
                    .chain(extra)
                    .map(|(key, value)| (key.to_string(), value.to_string())),
            )
        };
        let without = C::from_iter(base.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap_or_else(|err| panic!("base options: {err:?}"));
        ["true", "7", "some-value"]
            .iter()
            .any(|value| with(Some((name, value))).map_or(true, |config| config != without))
    }

    fn all_used<C: Configurator + PartialEq>(scheme: &str) -> usize {
        let base: &[(&str, &str)] = match scheme {
            "azblob" => &[("container", "c"), ("skip_signature", "false")],
            _ => &[],
        };
        let opendal_uses = |name: &str| opendal_uses::<C>(base, name);
        let names = service_options(scheme);
        for name in names {
            assert!(opendal_uses(name), "{scheme}: opendal ignores {name:?}");
        }
        assert!(!opendal_uses("no_such_option"), "{scheme}");
        names.len()
    }

    #[test]
    fn every_derived_option_name_is_one_opendal_uses() {
        assert!(all_used::<FsConfig>("fs") >= 2);
        assert!(all_used::<S3Config>("s3") >= 20);
        assert!(all_used::<GcsConfig>("gcs") >= 10);
        assert!(all_used::<AzblobConfig>("azblob") >= 5);
        assert!(all_used::<OssConfig>("oss") >= 5);
        for (scheme, name) in [
            ("fs", "root"),
            ("s3", "bucket"),
            ("s3", "aws_region"),
            ("s3", "disable_config_load"),
            ("gcs", "credential_path"),
            ("azblob", "container"),
            ("azblob", "account_name"),
            ("oss", "access_key_secret"),
        ] {
            assert!(service_options(scheme).contains(&name), "{scheme} {name}");
        }
        assert!(service_options("memory").is_empty());
    }

    fn message(scheme: &str, name: &str) -> String {
        check_known_option(scheme, service_options(scheme), name)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_options_are_refused_with_the_closest_name() {
        assert_eq!(
            message("s3", "read_concurency"),
            "option source.read_concurency: the s3 service has no option \"read_concurency\" (did you mean \"read_concurrency\"?)"
        );
        assert_eq!(
            message("fs", "root_dir"),
            "option source.root_dir: the fs service has no option \"root_dir\" (did you mean \"root\"?)"
        );
        assert!(message("s3", "secret_acces_key_env")
            .ends_with("(did you mean \"secret_access_key_env\"?)"));
        assert!(message("azblob", "bucket").contains("the azblob service has no option \"bucket\""));
        let far = message("gcs", "zzz");
        assert!(far.contains("its options: root, bucket"), "{far}");
        for ok in [
            "root",
            "ROOT",
            "bucket",
            "access_key_id_env",
            "secret_access_key_file",
        ] {
            let scheme = if ok.eq_ignore_ascii_case("root") {
                "fs"
            } else {
                "s3"
            };
            assert!(
                check_known_option(scheme, service_options(scheme), ok).is_ok(),
                "{ok}"
            );
        }
    }
}
