//! Structured logs on stderr: JSON lines (the default when stdout is not a terminal, i.e. under a
//! scheduler or in a pipe) or text.
//! Every event has a stable `event` name and identity fields; see the README's "Log events".
//! The run's spans (`run`, `table`, `partition`) show in the text format only: JSON lines leave
//! spans out, so each event's line stays flat and the same whatever span it is logged in (the
//! events carry their identity fields themselves).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, event fields at the top level.
    Json,
    /// Human-readable text.
    Text,
}

impl LogFormat {
    /// JSON unless stdout is a terminal.
    pub fn detect() -> LogFormat {
        if std::io::stdout().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }
}

/// Installs the global subscriber. The level comes from `RUST_LOG` (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.with_target(false).init(),
    }
}
