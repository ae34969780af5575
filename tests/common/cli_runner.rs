//! Runs the `coldsync` binary built for this test run and collects its JSON log events.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::try_output_within;

/// Path of the `coldsync` binary built by cargo for this test run.
pub fn coldsync_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coldsync"))
}

/// Result of [`run_cli`].
#[derive(Clone, Debug)]
pub struct CliOutput {
    /// Exit code; `-1` if killed by a signal (or by the timeout).
    pub status_code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Every stdout line, then every stderr line, that parses as a JSON object.
    pub events: Vec<Value>,
}

/// Event name of a JSON log line: `v["event"]` or `v["fields"]["event"]` (string).
pub fn event_name(v: &Value) -> Option<&str> {
    event_field(v, "event").and_then(Value::as_str)
}

/// A field of a JSON log line, looked up at top level first, then under `fields`
/// (tracing-subscriber's JSON layout puts event fields under `"fields"`).
pub fn event_field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key)
        .or_else(|| v.get("fields").and_then(|f| f.get(key)))
}

/// A field of a JSON log line ([`event_field`]) that the event must have.
pub fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    event_field(v, key).unwrap_or_else(|| panic!("event {v} has no field {key:?}"))
}

/// A string field of a JSON log line that the event must have.
pub fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    field(v, key)
        .as_str()
        .unwrap_or_else(|| panic!("{key} of {v}"))
}

impl CliOutput {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.status_code == 0
    }

    /// First event named `name` (see [`event_name`]).
    pub fn event(&self, name: &str) -> Option<&Value> {
        self.events.iter().find(|v| event_name(v) == Some(name))
    }

    /// Last event named `name`.
    pub fn last_event(&self, name: &str) -> Option<&Value> {
        self.events
            .iter()
            .rev()
            .find(|v| event_name(v) == Some(name))
    }

    /// All events named `name`, in output order.
    pub fn events_named(&self, name: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|v| event_name(v) == Some(name))
            .collect()
    }

    /// Names of all events, in order (events without a name are skipped).
    pub fn event_names(&self) -> Vec<&str> {
        self.events.iter().filter_map(event_name).collect()
    }

    /// Human-readable dump for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status_code, self.stdout, self.stderr
        )
    }

    /// Panics with [`CliOutput::dump`] unless the exit code is 0.
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "coldsync failed:\n{}", self.dump());
        self
    }
}

/// Default timeout of [`run_cli`].
pub const CLI_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `coldsync ARGS` with extra environment `envs` (inherits the rest of the
/// environment), stdin `/dev/null`, and a [`CLI_TIMEOUT`] (killed -> panic).
pub fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> CliOutput {
    run_cli_with_timeout(args, envs, CLI_TIMEOUT)
}

/// [`run_cli`] with an explicit timeout; on timeout the process is killed and
/// this panics with the output collected so far.
pub fn run_cli_with_timeout(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> CliOutput {
    let mut cmd = Command::new(coldsync_bin());
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let (output, timed_out) = match try_output_within(&mut cmd, Stdio::null(), timeout) {
        Ok(output) => (output, false),
        Err(output) => (output, true),
    };
    let status = output.status;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let events = stdout
        .lines()
        .chain(stderr.lines())
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(Value::is_object)
        .collect();
    let out = CliOutput {
        status_code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        events,
    };
    if timed_out {
        panic!(
            "coldsync {args:?} timed out after {timeout:?}:\n{}",
            out.dump()
        );
    }
    out
}
