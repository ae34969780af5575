//! Generates a small, deterministic Hive-partitioned `orders` table for demos and
//! manual testing of `coldsync`.
//!
//! ```text
//! cargo run --example gen_sample -- --out DIR [--days 7] [--rows-per-day 1000] [--end-date YYYY-MM-DD]
//! ```
//!
//! Layout (Spark-like, 2 snappy Parquet files per day, `_SUCCESS` per partition):
//!
//! ```text
//! DIR/orders/dt=YYYY-MM-DD/part-00000-<uuid>-c000.snappy.parquet
//! DIR/orders/dt=YYYY-MM-DD/part-00001-<uuid>-c000.snappy.parquet
//! DIR/orders/dt=YYYY-MM-DD/_SUCCESS
//! ```
//!
//! Days run from `end-date - (days-1)` to `end-date` inclusive; the last two
//! (`end-date` and the day before) are the "hot" days. `--end-date` defaults to
//! today (UTC). Existing `dt=` directories for the generated days are replaced.
//!
//! Columns (the order-fact table of `tests/common/orders.rs`, shared with `gen_bench` and the
//! tests): `order_id Int64` (non-null; unique across days except that ~10% of each
//! day's rows, from day 2 on, repeat an order of the previous day with an advanced
//! `status` -- updates), `user_id Int64`, `shop_id Int64`, `amount Decimal128(12,2)`,
//! `status Utf8`, `city Utf8`, `created_at Timestamp(ms, "UTC")` (within the day the
//! order was first created), `remark Utf8` (nullable, ~30% nulls),
//! `is_first_order Boolean`. Same arguments => byte-identical output (a simple LCG,
//! no `rand`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use arrow_array::RecordBatch;
use chrono::{Days, NaiveDate};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

#[path = "../tests/common/orders.rs"]
mod orders;
use orders::{order_facts_batch, OrderFact};

const CITIES: &[&str] = &[
    "Amsterdam",
    "Berlin",
    "Lisbon",
    "Madrid",
    "Milano",
    "Paris",
    "Praha",
    "Warszawa",
    "Wien",
    "Zürich",
];
const REMARKS: &[&str] = &[
    "",
    "leave at the door",
    "gift wrap please",
    "call before delivery",
    "fragile",
    "no plastic bags",
];
const NEW_STATUSES: &[&str] = &["created", "paid", "paid", "paid", "shipped"];

/// Knuth's MMIX LCG; the high bits are good enough for sample data.
struct Lcg(u64);

impl Lcg {
    fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    fn below(&mut self, n: u64) -> u64 {
        u64::from(self.next_u32()) % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// A UUID-shaped (v4-looking) deterministic string.
    fn uuid(&mut self) -> String {
        let a = self.next_u32();
        let b = self.next_u32();
        let c = self.next_u32();
        let d = self.next_u32();
        format!(
            "{a:08x}-{:04x}-4{:03x}-{:04x}-{:04x}{d:08x}",
            b >> 16,
            b & 0x0fff,
            0x8000 | (c >> 16 & 0x3fff),
            c & 0xffff
        )
    }
}

fn next_status(s: &str) -> &'static str {
    match s {
        "created" => "paid",
        "paid" => "shipped",
        "shipped" => "delivered",
        "delivered" => "returned",
        _ => "refunded",
    }
}

struct Args {
    out: PathBuf,
    days: u32,
    rows_per_day: usize,
    end_date: NaiveDate,
}

const USAGE: &str = "usage: cargo run --example gen_sample -- --out DIR [--days 7] \
                     [--rows-per-day 1000] [--end-date YYYY-MM-DD]";

fn parse_args() -> Result<Args, String> {
    let mut out = None;
    let mut days = 7u32;
    let mut rows_per_day = 1000usize;
    let mut end_date = chrono::Utc::now().date_naive();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        // Accept both `--flag value` and `--flag=value`.
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match name.as_str() {
            "--out" => out = Some(PathBuf::from(value()?)),
            "--days" => {
                days = value()?.parse().map_err(|e| format!("--days: {e}"))?;
            }
            "--rows-per-day" => {
                rows_per_day = value()?
                    .parse()
                    .map_err(|e| format!("--rows-per-day: {e}"))?;
            }
            "--end-date" => {
                let v = value()?;
                end_date = NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                    .map_err(|e| format!("--end-date {v:?}: {e} (want YYYY-MM-DD)"))?;
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let out = out.ok_or_else(|| format!("--out is required\n{USAGE}"))?;
    if days == 0 {
        return Err("--days must be >= 1".to_string());
    }
    Ok(Args {
        out,
        days,
        rows_per_day,
        end_date,
    })
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<u64, String> {
    let file = fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(10_000))
        .build();
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props))
        .map_err(|e| format!("parquet writer: {e}"))?;
    w.write(batch)
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    w.close()
        .map_err(|e| format!("close {}: {e}", path.display()))?;
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| e.to_string())
}

fn run(args: &Args) -> Result<(), String> {
    let table_dir = args.out.join("orders");
    let first = args
        .end_date
        .checked_sub_days(Days::new(u64::from(args.days - 1)))
        .ok_or("date out of range")?;
    let hot_from = args.end_date.pred_opt().ok_or("date out of range")?;
    let mut rng = Lcg(0x00c0_1d5e_ed00_2026);
    let mut next_id: i64 = 1_000_001;
    let mut prev_day: Vec<OrderFact> = Vec::new();
    let (mut total_rows, mut total_updates, mut total_files) = (0usize, 0usize, 0usize);

    println!(
        "gen_sample: table {} days {}..={} ({} rows/day, hot days: {} and {})",
        table_dir.display(),
        first,
        args.end_date,
        args.rows_per_day,
        hot_from,
        args.end_date
    );
    for d in 0..args.days {
        let date = first + Days::new(u64::from(d));
        let day_start_ms = date
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_millis();

        // ~10% updates of the previous day's orders (every 10th of them).
        let n_updates = if prev_day.is_empty() {
            0
        } else {
            (args.rows_per_day / 10).min(prev_day.len().div_ceil(10))
        };
        let mut rows: Vec<OrderFact> = prev_day
            .iter()
            .step_by(10)
            .take(n_updates)
            .map(|o| OrderFact {
                status: next_status(o.status),
                ..o.clone()
            })
            .collect();
        while rows.len() < args.rows_per_day {
            let order_id = next_id;
            next_id += 1;
            let remark = if rng.below(10) < 3 {
                None
            } else {
                Some(rng.pick(REMARKS))
            };
            rows.push(OrderFact {
                order_id,
                user_id: 1 + rng.below(50_000) as i64,
                shop_id: 1 + rng.below(500) as i64,
                amount_cents: 100 + i128::from(rng.below(99_900)),
                status: rng.pick(NEW_STATUSES),
                city: rng.pick(CITIES),
                created_at_ms: day_start_ms + rng.below(86_400_000) as i64,
                remark,
                is_first_order: rng.below(7) == 0,
            });
        }

        let part_dir = table_dir.join(format!("dt={}", date.format("%Y-%m-%d")));
        if part_dir.exists() {
            fs::remove_dir_all(&part_dir)
                .map_err(|e| format!("remove {}: {e}", part_dir.display()))?;
        }
        fs::create_dir_all(&part_dir).map_err(|e| format!("mkdir {}: {e}", part_dir.display()))?;
        let job = rng.uuid();
        let half = rows.len().div_ceil(2);
        let hot = if date >= hot_from { " (hot)" } else { "" };
        for (i, chunk) in [&rows[..half], &rows[half..]].into_iter().enumerate() {
            let path = part_dir.join(format!("part-{i:05}-{job}-c000.snappy.parquet"));
            let size = write_parquet(&path, &order_facts_batch(chunk))?;
            println!(
                "  wrote {} ({} rows, {size} bytes){hot}",
                path.display(),
                chunk.len()
            );
            total_files += 1;
        }
        let success = part_dir.join("_SUCCESS");
        fs::write(&success, b"").map_err(|e| format!("write {}: {e}", success.display()))?;
        if n_updates == 0 {
            println!("  wrote {} ({} new orders)", success.display(), rows.len());
        } else {
            println!(
                "  wrote {} ({} rows, {n_updates} of them status updates of orders from {})",
                success.display(),
                rows.len(),
                date.pred_opt().expect("date")
            );
        }
        total_rows += rows.len();
        total_updates += n_updates;
        prev_day = rows;
    }
    println!(
        "gen_sample: done: {} partitions, {total_files} parquet files, {total_rows} rows \
         ({total_updates} updates), order_id 1000001..={}",
        args.days,
        next_id - 1
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_sample: error: {e}");
            ExitCode::FAILURE
        }
    }
}
