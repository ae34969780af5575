//! The `coldsync` command: parses the CLI, sets up logging, calls the library and maps the
//! outcome to a documented exit code.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use coldsync::config::Config;
use coldsync::config::TableConfig;
use coldsync::logging::{self, LogFormat};
use coldsync::run::report::{format_plan, format_status};
use coldsync::run::{Backfill, CommandOutcome, Engine, ExitCode, RunOptions, Shard};
use coldsync::signals::watch_signals;
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
        Ok(
            selected_layouts(config, &self.tables, self.layout.as_deref())?
                .iter()
                .map(|t| format!("{}@{}", t.name, t.layout_name()))
                .collect(),
        )
    }

    /// The options of `run` (`backfill: None`) or `backfill`.
    fn run_options(
        &self,
        shards: &ShardSelection,
        env: &HashMap<String, String>,
        config: &Config,
        dry_run: bool,
        backfill: Option<Backfill>,
    ) -> Result<RunOptions, ExitCode> {
        Ok(RunOptions {
            shard: shards.resolve(env)?,
            tables: self.resolve(config)?,
            as_of: self.as_of,
            dry_run,
            backfill,
        })
    }
}

/// The entries of `tables` (all when empty) with `layout` (all layouts when `None`); an unknown
/// table or layout is a configuration error, printed.
fn selected_layouts(
    config: &Config,
    tables: &[String],
    layout: Option<&str>,
) -> Result<Vec<TableConfig>, ExitCode> {
    config.select_layouts(tables, layout).map_err(|err| {
        eprintln!("error: {err}");
        ExitCode::of(CommandOutcome::InvalidConfig)
    })
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
        } => match selection.run_options(&shards, &env, engine.config(), dry_run, None) {
            Ok(options) => run(&engine, options, json, &shutdown).await,
            Err(exit) => exit,
        },
        Command::Backfill {
            selection,
            from,
            to,
            force,
            shards,
            json,
        } => {
            let backfill = Some(Backfill { from, to, force });
            match selection.run_options(&shards, &env, engine.config(), false, backfill) {
                Ok(options) => run(&engine, options, json, &shutdown).await,
                Err(exit) => exit,
            }
        }
        Command::Plan { selection, json } => {
            let layout = selection.layout.as_deref();
            let tables = match selected_layouts(engine.config(), &selection.tables, layout) {
                Ok(tables) => tables,
                Err(exit) => return exit,
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
            let tables = match selected_layouts(engine.config(), &tables, layout.as_deref()) {
                Ok(tables) => tables,
                Err(exit) => return exit,
            };
            let status = engine.status(&tables).await;
            if json {
                print_json(&status);
            } else {
                print!("{}", format_status(&status));
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
            let tables = match selected_layouts(engine.config(), &tables, layout.as_deref()) {
                Ok(tables) => tables,
                Err(exit) => return exit,
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
