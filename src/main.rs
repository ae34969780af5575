//! The `coldsync` command: parses the CLI, sets up logging, calls the library and maps the
//! outcome to a documented exit code.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use coldsync::config::Config;
use coldsync::logging::{self, LogFormat};
use coldsync::run::report::format_plan;
use coldsync::run::{Backfill, CommandOutcome, Engine, ExitCode, RunOptions, Shard};
use tokio_util::sync::CancellationToken;

/// Keeps a shared Redis cold KV filled with the cold partitions of Hive-partitioned Parquet tables.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (TOML).
    #[arg(
        long,
        short,
        global = true,
        env = "COLDSYNC_CONFIG",
        default_value = "config/coldsync.toml"
    )]
    config: PathBuf,
    /// Log format; JSON by default when stdout is not a terminal.
    #[arg(long, global = true, env = "COLDSYNC_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct TableSelection {
    /// Only these tables (repeatable; default: all), every layout of each.
    #[arg(long = "table", short = 't')]
    tables: Vec<String>,
    /// Only this layout of them (`default`: the entries without `layout`).
    #[arg(long)]
    layout: Option<String>,
    /// Take this date (YYYY-MM-DD) as today instead of the current business day.
    #[arg(long)]
    as_of: Option<NaiveDate>,
}

#[derive(Args)]
struct ShardSelection {
    /// Load only shard I of N (0-based): the dates whose day number (days since 1970-01-01)
    /// mod N is I. Shards of one range run in parallel, each under its own shard lease.
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    shard: Option<Shard>,
    /// Load one of N shards, its index I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).
    #[arg(long, value_name = "N")]
    shards: Option<u32>,
}

impl TableSelection {
    /// The tables for [`RunOptions::tables`]: as given, or with `--layout` one `name@layout`
    /// each.
    fn resolve(&self, config: &Config) -> Result<Vec<String>, ExitCode> {
        if self.layout.is_none() {
            return Ok(self.tables.clone());
        }
        match config.select_layouts(&self.tables, self.layout.as_deref()) {
            Ok(tables) => Ok(tables
                .iter()
                .map(|t| format!("{}@{}", t.name, t.layout_name()))
                .collect()),
            Err(err) => {
                eprintln!("error: {err}");
                Err(ExitCode::of(CommandOutcome::InvalidConfig))
            }
        }
    }
}

impl ShardSelection {
    /// The shard asked for, if any (`--shards` reads the index from `env`).
    fn resolve(&self, env: &HashMap<String, String>) -> Result<Option<Shard>, ExitCode> {
        match (self.shard, self.shards) {
            (Some(shard), _) => Ok(Some(shard)),
            (None, Some(count)) => match Shard::from_job_index(count, env) {
                Ok(shard) => Ok(Some(shard)),
                Err(err) => {
                    tracing::error!(event = "config_invalid", error = %err, "invalid arguments");
                    eprintln!("error: {err}");
                    Err(ExitCode::of(CommandOutcome::InvalidConfig))
                }
            },
            (None, None) => Ok(None),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Load every cold partition that is pending or changed, then exit.
    Run {
        #[command(flatten)]
        selection: TableSelection,
        #[command(flatten)]
        shards: ShardSelection,
        /// Plan and log what would be loaded; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the run summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show every partition's state, rows from footers, estimated keys and Redis memory.
    Plan {
        #[command(flatten)]
        selection: TableSelection,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Load the partitions of a date range (pending or changed; with --force also loaded ones).
    Backfill {
        #[command(flatten)]
        selection: TableSelection,
        /// First date, inclusive (YYYY-MM-DD).
        #[arg(long)]
        from: NaiveDate,
        /// Last date, inclusive (YYYY-MM-DD).
        #[arg(long)]
        to: NaiveDate,
        /// Reload partitions already loaded.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        shards: ShardSelection,
        /// Print the run summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show the ledger and watermark of each table (layout), and whether it is ready.
    Status {
        /// Only these tables.
        #[arg(long = "table", short = 't')]
        tables: Vec<String>,
        /// Only this layout.
        #[arg(long)]
        layout: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config; with --connect also reach the store and Redis and check schemas.
    Check {
        /// Reach the object store and Redis, and check each table's newest partition.
        #[arg(long)]
        connect: bool,
    },
    /// Write the Redis commands a load of one partition sends (RESP, for `redis-cli --pipe`).
    Export {
        /// The table.
        #[arg(long = "table", short = 't')]
        table: String,
        /// The partition date (YYYY-MM-DD).
        #[arg(long)]
        date: NaiveDate,
        /// Output format (only `resp`).
        #[arg(long, default_value = "resp")]
        format: ExportFormat,
        /// Output file (default: stdout).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Compare Redis with what a load of each loaded partition writes (exit 6 on a mismatch).
    Verify {
        /// Only these tables (repeatable; default: all), every layout of each.
        #[arg(long = "table", short = 't')]
        tables: Vec<String>,
        /// Only this layout (`default`: the entries without `layout`).
        #[arg(long)]
        layout: Option<String>,
        /// Only this partition date (YYYY-MM-DD).
        #[arg(long, conflicts_with_all = ["from", "to"])]
        date: Option<NaiveDate>,
        /// First date, inclusive.
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Last date, inclusive.
        #[arg(long)]
        to: Option<NaiveDate>,
        /// Keys sampled per partition (default 1000).
        #[arg(long, conflicts_with = "full")]
        sample: Option<u64>,
        /// Every key of every partition.
        #[arg(long)]
        full: bool,
        /// Seed of the samples (default: one per table and date, the same on every run).
        #[arg(long)]
        seed: Option<u64>,
        /// Print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Delete the keys of an old layout, derived from its ledger, then its ledger (resumable).
    Retire {
        /// The table.
        #[arg(long = "table", short = 't')]
        table: String,
        /// The layout to retire (`default`: the entry without `layout`).
        #[arg(long)]
        layout: String,
        /// Delete (without it: only say what would be deleted).
        #[arg(long)]
        yes: bool,
        /// Retire the table's only layout too.
        #[arg(long)]
        force: bool,
        /// Print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run on the configured cron schedule until SIGTERM or Ctrl-C.
    Daemon {
        /// Also run once right away.
        #[arg(long)]
        run_now: bool,
    },
}

/// `export --format` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// Redis protocol, as `redis-cli --pipe` reads it.
    Resp,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format.unwrap_or_else(LogFormat::detect));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    let exit = runtime.block_on(execute(cli));
    // Tasks still running (a file read after a shutdown) must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    exit.into()
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializes")
    );
}

async fn execute(cli: Cli) -> ExitCode {
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = match Config::load(&cli.config, &env) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(event = "config_invalid", error = %err, "invalid configuration");
            eprintln!("error: {err}");
            return ExitCode::of(CommandOutcome::InvalidConfig);
        }
    };
    if let Command::Check { connect: false } = cli.command {
        println!("config ok: {} tables", config.tables.len());
        return ExitCode::of(CommandOutcome::Report { failed: false });
    }
    if let Command::Export { .. } = cli.command {
        return export(&config, cli.command).await;
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let engine = match Engine::connect(config).await {
        Ok(engine) => engine,
        Err(err) => {
            tracing::error!(event = "startup_failed", error = %err, "cannot start");
            eprintln!("error: {err}");
            return err.exit_code();
        }
    };
    match cli.command {
        Command::Export { .. } => unreachable!("handled before connecting"),
        Command::Run {
            selection,
            shards,
            dry_run,
            json,
        } => {
            let shard = match shards.resolve(&env) {
                Ok(shard) => shard,
                Err(exit) => return exit,
            };
            let tables = match selection.resolve(engine.config()) {
                Ok(tables) => tables,
                Err(exit) => return exit,
            };
            let options = RunOptions {
                tables,
                as_of: selection.as_of,
                dry_run,
                backfill: None,
                shard,
            };
            run(&engine, options, json, &shutdown).await
        }
        Command::Backfill {
            selection,
            from,
            to,
            force,
            shards,
            json,
        } => {
            let shard = match shards.resolve(&env) {
                Ok(shard) => shard,
                Err(exit) => return exit,
            };
            let tables = match selection.resolve(engine.config()) {
                Ok(tables) => tables,
                Err(exit) => return exit,
            };
            let options = RunOptions {
                tables,
                as_of: selection.as_of,
                dry_run: false,
                backfill: Some(Backfill { from, to, force }),
                shard,
            };
            run(&engine, options, json, &shutdown).await
        }
        Command::Plan { selection, json } => {
            let tables = match engine
                .config()
                .select_layouts(&selection.tables, selection.layout.as_deref())
            {
                Ok(tables) => tables,
                Err(err) => {
                    eprintln!("error: {err}");
                    return ExitCode::of(CommandOutcome::InvalidConfig);
                }
            };
            let report = engine.plan_report(&tables, selection.as_of).await;
            if json {
                print_json(&report);
            } else {
                print!("{}", format_plan(&report));
            }
            ExitCode::of(CommandOutcome::Report {
                failed: report.tables.iter().any(|t| t.error.is_some()),
            })
        }
        Command::Status {
            tables,
            layout,
            json,
        } => {
            let tables = match engine.config().select_layouts(&tables, layout.as_deref()) {
                Ok(tables) => tables,
                Err(err) => {
                    eprintln!("error: {err}");
                    return ExitCode::of(CommandOutcome::InvalidConfig);
                }
            };
            let status = engine.status(&tables).await;
            if json {
                print_json(&status);
            } else {
                for s in &status {
                    let d = |d: Option<NaiveDate>| d.map_or("-".to_string(), |d| d.to_string());
                    let verified = s.verified.as_ref().map_or("never".to_string(), |v| {
                        let result = if v.passed { "passed" } else { "FAILED" };
                        format!("{result} {}", v.verified_at)
                    });
                    println!(
                        "{} ({}): {} partitions loaded ({} .. {}), watermark {}, {} keys, last load {}, verify {verified}, {}{}",
                        s.table,
                        s.layout,
                        s.partitions_loaded,
                        d(s.oldest_loaded),
                        d(s.newest_loaded),
                        d(s.watermark),
                        s.keys,
                        s.last_loaded_at.as_deref().unwrap_or("-"),
                        if s.ready { "ready" } else if s.caught_up { "not verified" } else { "not caught up" },
                        s.error.as_ref().map(|e| format!(" ERROR {e}")).unwrap_or_default()
                    );
                }
            }
            ExitCode::of(CommandOutcome::Report {
                failed: status.iter().any(|s| s.error.is_some()),
            })
        }
        Command::Verify {
            tables,
            layout,
            date,
            from,
            to,
            sample,
            full,
            seed,
            json,
        } => {
            let tables = match engine.config().select_layouts(&tables, layout.as_deref()) {
                Ok(tables) => tables,
                Err(err) => {
                    eprintln!("error: {err}");
                    return ExitCode::of(CommandOutcome::InvalidConfig);
                }
            };
            let options = coldsync::verify::VerifyOptions {
                from: date.or(from),
                to: date.or(to),
                sample: (!full).then(|| sample.unwrap_or(coldsync::verify::DEFAULT_SAMPLE)),
                seed,
            };
            let summary = engine.verify(&tables, &options).await;
            if json {
                print_json(&summary);
            } else {
                print!("{}", summary.text());
            }
            ExitCode::of(CommandOutcome::Verify {
                mismatched: summary.counts.mismatched() > 0,
                failed: summary.partitions_failed > 0,
            })
        }
        Command::Retire {
            table,
            layout,
            yes,
            force,
            json,
        } => {
            let options = coldsync::retire::RetireOptions { yes, force };
            retire(&engine, &table, &layout, options, json, &shutdown).await
        }
        Command::Check { .. } => {
            let tables = engine.config().tables.clone();
            let mut failed = false;
            println!("redis ok: {}", engine.config().redis.masked_url());
            let acl =
                coldsync::redis::acl::check_and_log(engine.ledger().control(), engine.config());
            let permissions_missing = match acl.await {
                Ok((lines, missing)) => {
                    lines.iter().for_each(|line| println!("{line}"));
                    missing
                }
                Err(err) => {
                    println!("acl: FAILED: {err}");
                    failed = true;
                    false
                }
            };
            if tables
                .iter()
                .any(|t| matches!(t.format, coldsync::encode::ValueFormat::Hash))
            {
                match engine.hash_writes().await {
                    Ok(method) => println!("hash writes: {}", method.describe()),
                    Err(err) => {
                        println!("hash writes: FAILED: {err}");
                        failed = true;
                    }
                }
            }
            for (table, result) in engine.check_tables(&tables).await {
                match result {
                    Ok(text) => println!("table {table}: ok: {text}"),
                    Err(err) => {
                        println!("table {table}: FAILED: {err}");
                        failed = true;
                    }
                }
            }
            if permissions_missing {
                return ExitCode::of(CommandOutcome::InvalidConfig);
            }
            ExitCode::of(CommandOutcome::Report { failed })
        }
        Command::Daemon { run_now } => {
            match coldsync::daemon::run_daemon(engine, run_now, shutdown).await {
                Ok(()) => ExitCode::of(CommandOutcome::Daemon { failed: false }),
                Err(err) => {
                    tracing::error!(event = "daemon_failed", error = %err, "daemon failed");
                    eprintln!("error: {err}");
                    ExitCode::of(CommandOutcome::Daemon { failed: true })
                }
            }
        }
    }
}

/// `export`: reads only the object store, never Redis.
async fn export(config: &Config, command: Command) -> ExitCode {
    let Command::Export {
        table,
        date,
        format: ExportFormat::Resp,
        out,
    } = command
    else {
        unreachable!("called for export only")
    };
    let table = match config.select_tables(&[table]) {
        Ok(mut tables) => tables.remove(0),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::of(CommandOutcome::InvalidConfig);
        }
    };
    let result = match &out {
        Some(path) => match tokio::fs::File::create(path).await {
            Ok(file) => {
                let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
                coldsync::export::export(config, &table, date, &mut file).await
            }
            Err(err) => Err(coldsync::load::ExportError::Write(err)),
        },
        None => {
            let mut stdout = tokio::io::BufWriter::with_capacity(1 << 20, tokio::io::stdout());
            coldsync::export::export(config, &table, date, &mut stdout).await
        }
    };
    match result {
        Ok(produced) => {
            tracing::info!(
                event = "partition_exported",
                table = %table.name,
                date = %date,
                rows = produced.rows,
                keys = produced.keys,
                skipped_null_keys = produced.skipped_null_keys,
                deleted_empty_keys = produced.deleted_empty_keys,
                "partition exported"
            );
            ExitCode::of(CommandOutcome::Report { failed: false })
        }
        Err(err) => {
            tracing::error!(event = "export_failed", table = %table.name, date = %date, error = %err, "export failed");
            eprintln!("error: {err}");
            ExitCode::of(CommandOutcome::Report { failed: true })
        }
    }
}

async fn run(
    engine: &Engine,
    options: RunOptions,
    json: bool,
    shutdown: &CancellationToken,
) -> ExitCode {
    match engine.run(&options, shutdown).await {
        Ok(summary) => {
            if json {
                print_json(&summary);
            }
            summary.exit()
        }
        Err(err) => {
            tracing::error!(event = "run_failed", error = %err, "run could not start");
            eprintln!("error: {err}");
            err.exit_code()
        }
    }
}

/// `retire`: refused (exit 2), failed or stopped (exit 3; run it again to go on), done (0).
async fn retire(
    engine: &Engine,
    table: &str,
    layout: &str,
    options: coldsync::retire::RetireOptions,
    json: bool,
    shutdown: &CancellationToken,
) -> ExitCode {
    let table = match engine
        .config()
        .select_layouts(&[table.to_string()], Some(layout))
    {
        Ok(mut tables) => tables.remove(0),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::of(CommandOutcome::InvalidConfig);
        }
    };
    match engine.retire(&table, options, shutdown).await {
        Ok(summary) => {
            summary.log_finished();
            if json {
                print_json(&summary);
            } else {
                println!("{}", summary.text());
            }
            ExitCode::of(CommandOutcome::Report { failed: false })
        }
        Err(err) => {
            err.log(&table);
            eprintln!("error: {err}");
            err.exit_code()
        }
    }
}

async fn watch_signals(shutdown: CancellationToken) {
    let sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map(
        |mut term| async move {
            term.recv().await;
        },
    );
    wait_for_shutdown_signal(sigterm, tokio::signal::ctrl_c()).await;
    tracing::warn!(
        event = "shutdown_requested",
        "abandoning the partition in progress; it is not recorded and the next run reloads it"
    );
    shutdown.cancel();
}

/// Returns when SIGTERM or Ctrl-C (SIGINT) arrives. A handler that cannot be installed is logged
/// (`signal_handler_failed`) and the other signal is still watched; with neither, this never
/// returns (no signal can stop the process gracefully, but nothing stops it by mistake either).
async fn wait_for_shutdown_signal(
    sigterm: std::io::Result<impl Future<Output = ()>>,
    ctrl_c: impl Future<Output = std::io::Result<()>>,
) {
    let sigterm = async {
        match sigterm {
            Ok(term) => term.await,
            Err(err) => {
                signal_handler_failed("SIGTERM", &err);
                std::future::pending().await
            }
        }
    };
    let ctrl_c = async {
        if let Err(err) = ctrl_c.await {
            signal_handler_failed("SIGINT", &err);
            std::future::pending::<()>().await
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = sigterm => {},
    }
}

fn signal_handler_failed(signal: &str, err: &std::io::Error) {
    tracing::warn!(
        event = "signal_handler_failed",
        signal,
        error = %err,
        "cannot watch a shutdown signal: only the other one stops the process gracefully"
    );
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;

    use coldsync::logging::CapturedLog;

    use futures::FutureExt;
    use tokio::sync::oneshot;

    use super::*;

    /// A signal future that completes when the sender is used.
    fn signal() -> (oneshot::Sender<()>, impl Future<Output = ()>) {
        let (tx, rx) = oneshot::channel::<()>();
        (tx, rx.map(|_| ()))
    }

    fn failed_handler() -> std::io::Error {
        std::io::Error::other("no signal handler for you")
    }

    #[tokio::test]
    async fn ctrl_c_is_still_watched_when_the_sigterm_handler_cannot_be_installed() {
        let log = CapturedLog::default();
        let _guard = log.install();
        let (ctrl_c, ctrl_c_future) = signal();
        let mut wait = pin!(wait_for_shutdown_signal(
            Err::<std::future::Pending<()>, _>(failed_handler()),
            ctrl_c_future.map(Ok)
        ));
        assert!(
            (&mut wait).now_or_never().is_none(),
            "no signal arrived yet: keep waiting"
        );
        let events = log.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["event"], "signal_handler_failed");
        assert_eq!(events[0]["signal"], "SIGTERM");
        assert_eq!(events[0]["level"], "WARN");
        ctrl_c.send(()).unwrap();
        assert!(wait.now_or_never().is_some(), "Ctrl-C stops the wait");
    }

    #[tokio::test]
    async fn sigterm_is_still_watched_when_ctrl_c_cannot_be() {
        let log = CapturedLog::default();
        let _guard = log.install();
        let (sigterm, sigterm_future) = signal();
        let mut wait = pin!(wait_for_shutdown_signal(
            Ok(sigterm_future),
            std::future::ready(Err(failed_handler()))
        ));
        assert!((&mut wait).now_or_never().is_none());
        let events = log.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["event"], "signal_handler_failed");
        assert_eq!(events[0]["signal"], "SIGINT");
        sigterm.send(()).unwrap();
        assert!(wait.now_or_never().is_some(), "SIGTERM stops the wait");
    }

    #[tokio::test]
    async fn either_signal_ends_the_wait() {
        let (sigterm, sigterm_future) = signal();
        let (_ctrl_c, ctrl_c_future) = signal();
        let mut wait = pin!(wait_for_shutdown_signal(
            Ok(sigterm_future),
            ctrl_c_future.map(Ok)
        ));
        assert!((&mut wait).now_or_never().is_none());
        sigterm.send(()).unwrap();
        assert!(wait.now_or_never().is_some());

        let (_sigterm, sigterm_future) = signal();
        let (ctrl_c, ctrl_c_future) = signal();
        let mut wait = pin!(wait_for_shutdown_signal(
            Ok(sigterm_future),
            ctrl_c_future.map(Ok)
        ));
        assert!((&mut wait).now_or_never().is_none());
        ctrl_c.send(()).unwrap();
        assert!(wait.now_or_never().is_some());
    }
}
