//! Generates the benchmark's order-fact table, streaming (memory stays flat at any size).
//!
//! ```text
//! cargo run --release --example gen_bench -- --out DIR [--partitions 5] [--rows 1000000]
//!     [--files 1] [--end-date 2026-11-20] [--row-group-rows 131072] [--table orders]
//! ```
//!
//! Writes `DIR/<table>/dt=YYYY-MM-DD/part-0000N.zstd.parquet` plus `_SUCCESS` for `--partitions`
//! days ending at `--end-date`, `--rows` rows per partition split over `--files` files, zstd,
//! `--row-group-rows` rows per row group. Columns: the order-fact table of `tests/common/orders.rs`
//! (shared with `gen_sample` and the tests): `order_id` Int64 (unique across partitions),
//! `user_id`, `shop_id` Int64, `amount` Decimal128(12,2), `status`, `city` Utf8, `created_at`
//! Timestamp(ms, UTC), `remark` Utf8 (never null here), `is_first_order` Boolean: about 220 bytes
//! of JSON per row.
//! Deterministic (a simple LCG).

use std::fs;
use std::path::PathBuf;

use chrono::{Days, NaiveDate};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

#[path = "../tests/common/orders.rs"]
mod orders;
use orders::{order_facts_batch, order_facts_schema, OrderFact};

const STATUSES: &[&str] = &["created", "paid", "shipped", "delivered", "refunded"];
const CITIES: &[&str] = &[
    "Shanghai", "Beijing", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan", "Nanjing", "Xi'an",
];
const REMARKS: &[&str] = &[
    "please deliver between 9am and 6pm, call the front desk on arrival",
    "gift order: no invoice in the box, wrap it and add the greeting card",
    "customer asked for eco packaging and a single combined shipment",
    "leave the parcel in the locker downstairs if nobody opens the door",
];

struct Args {
    out: PathBuf,
    table: String,
    partitions: u64,
    rows: u64,
    files: u64,
    end_date: NaiveDate,
    row_group_rows: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        out: PathBuf::from("bench-data"),
        table: "orders".into(),
        partitions: 5,
        rows: 1_000_000,
        files: 1,
        end_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        row_group_rows: 131_072,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => args.out = PathBuf::from(value),
            "--table" => args.table = value,
            "--partitions" => args.partitions = value.parse().expect("--partitions"),
            "--rows" => args.rows = value.parse().expect("--rows"),
            "--files" => args.files = value.parse().expect("--files"),
            "--end-date" => args.end_date = value.parse().expect("--end-date YYYY-MM-DD"),
            "--row-group-rows" => args.row_group_rows = value.parse().expect("--row-group-rows"),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let schema = order_facts_schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
        .set_max_row_group_row_count(Some(args.row_group_rows))
        .build();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let chunk = 65_536u64;
    for p in 0..args.partitions {
        let date = args.end_date - Days::new(args.partitions - 1 - p);
        let dir = args.out.join(&args.table).join(format!("dt={date}"));
        fs::create_dir_all(&dir).unwrap();
        let day_ms = date
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        let per_file = args.rows.div_ceil(args.files.max(1));
        for f in 0..args.files {
            let first = f * per_file;
            let last = ((f + 1) * per_file).min(args.rows);
            let path = dir.join(format!("part-{f:05}.zstd.parquet"));
            let mut writer = ArrowWriter::try_new(
                fs::File::create(&path).unwrap(),
                schema.clone(),
                Some(props.clone()),
            )
            .unwrap();
            let mut start = first;
            while start < last {
                let end = (start + chunk).min(last);
                let rows: Vec<OrderFact> = (start..end)
                    .map(|i| {
                        let (d0, d1, d2) = (next(), next(), next());
                        OrderFact {
                            order_id: (p * args.rows + i + 1) as i64,
                            user_id: 1_000_000 + (d0 % 8_000_000) as i64,
                            shop_id: 10_000 + (d0 % 50_000) as i64,
                            amount_cents: (d1 % 10_000_000) as i128,
                            status: STATUSES[(d0 % 5) as usize],
                            city: CITIES[(d0 % 8) as usize],
                            created_at_ms: day_ms + (d2 % 86_400_000) as i64,
                            remark: Some(REMARKS[(d0 % 4) as usize]),
                            is_first_order: d0 % 7 == 0,
                        }
                    })
                    .collect();
                writer.write(&order_facts_batch(&rows)).unwrap();
                start = end;
            }
            writer.close().unwrap();
        }
        fs::write(dir.join("_SUCCESS"), b"").unwrap();
    }
    println!(
        "gen_bench: {} partitions x {} rows ({} files each) under {}",
        args.partitions,
        args.rows,
        args.files,
        args.out.join(&args.table).display()
    );
}
