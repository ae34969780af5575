//! Secrets: the [`Secret`] newtype that never prints its value, [`OptionValue`] for opendal
//! options, and reading credentials from the environment (`<option>_env`) or files
//! (`<option>_file`), the only places they may come from.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::invalid;
use crate::error::ConfigError;

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// An opendal option value: plain, or a secret that never reaches a log line.
#[derive(Clone, Debug)]
pub enum OptionValue {
    /// A value from the config file.
    Plain(String),
    /// A value read from the environment or a file.
    Secret(Secret),
}

impl OptionValue {
    /// The value to hand to opendal.
    pub fn expose(&self) -> &str {
        match self {
            OptionValue::Plain(v) => v,
            OptionValue::Secret(s) => s.expose(),
        }
    }
}

/// Option names that hold credentials: they must come from the environment or a file.
pub(super) fn is_secret_option(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "credential",
        "sas",
        "account_key",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// The value of environment variable `var` from `env`, which `option` names.
pub(super) fn from_env<'a>(
    option: &str,
    var: &str,
    env: &'a HashMap<String, String>,
) -> Result<&'a String, ConfigError> {
    env.get(var)
        .ok_or_else(|| invalid(option, format!("environment variable {var} is not set")))
}

/// A secret read from the file at `path`, which `option` names; trailing whitespace (the
/// newline editors add) is not part of it.
pub(super) fn from_file(option: &str, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| invalid(option, format!("cannot read {}: {err}", path.display())))?;
    Ok(Secret::new(text.trim_end()))
}
