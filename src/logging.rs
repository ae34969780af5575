//! Structured logs on stderr: JSON lines (the default when stdout is not a terminal, i.e. under a
//! scheduler or in a pipe) or text.
//! Every event has a stable `event` name and identity fields; see the README's "Log events".
//! The run's spans (`run`, `table`, `partition`) show in the text format only: JSON lines leave
//! spans out, so each event's line stays flat and the same whatever span it is logged in (the
//! events carry their identity fields themselves).
//!
//! Text has ANSI colours only when stderr is a terminal (never in a file or a pipe). Text on a
//! terminal also shows long loads as progress bars instead of `load_progress` events: log lines
//! are then written with the bars hidden for a moment, so the two never mix on screen.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressDrawTarget};
use tracing_subscriber::fmt::MakeWriter;
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

/// The progress bars of this process, set up by [`init`] when the logs are text on a terminal.
static PROGRESS_BARS: OnceLock<MultiProgress> = OnceLock::new();

/// The progress bars, when loads show progress as bars instead of `load_progress` events.
pub fn progress_bars() -> Option<&'static MultiProgress> {
    PROGRESS_BARS.get()
}

/// The log filter without `RUST_LOG`: coldsync's events, not the scheduler's own chatter
/// (lines without an `event` name), nor delta_kernel's (its failures come back as the table's
/// typed error, logged once by coldsync).
pub const DEFAULT_FILTER: &str =
    "info,tokio_cron_scheduler=warn,delta_kernel=off,delta_kernel_default_engine=off";

/// Installs the global subscriber. The level comes from `RUST_LOG` (default [`DEFAULT_FILTER`]).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Text if terminal => {
            let bars = PROGRESS_BARS
                .get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
            builder
                .with_writer(AroundBars(bars))
                .with_target(false)
                .with_ansi(true)
                .init()
        }
        LogFormat::Text => builder
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(false)
            .init(),
    }
}

/// Writes each log line to stderr with the progress bars hidden meanwhile.
struct AroundBars(&'static MultiProgress);

impl<'a> MakeWriter<'a> for AroundBars {
    type Writer = LineAroundBars;

    fn make_writer(&'a self) -> LineAroundBars {
        LineAroundBars {
            bars: self.0,
            line: Vec::new(),
        }
    }
}

/// One log line, buffered, written to stderr (bars hidden) when dropped.
struct LineAroundBars {
    bars: &'static MultiProgress,
    line: Vec<u8>,
}

impl Write for LineAroundBars {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineAroundBars {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.line);
        self.bars.suspend(|| {
            let _ = std::io::stderr().write_all(&line);
        });
    }
}

/// Log lines captured in memory as the JSON format writes them (flat events): for tests of what
/// an operation logs. [`CapturedLog::install`] makes it the thread's subscriber while the guard lives.
#[derive(Clone, Default)]
pub struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// Sends this thread's events here, as JSON lines, until the guard is dropped.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let log = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || log.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Every line captured so far, parsed.
    pub fn events(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .expect("log lines are UTF-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON log line"))
            .collect()
    }
}
