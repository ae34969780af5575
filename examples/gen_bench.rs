//! Generates the benchmark's order-fact table, streaming (memory stays flat at any size).
//!
//! ```text
//! cargo run --release --example gen_bench -- --out DIR [--partitions 5] [--rows 1000000]
//!     [--files 1] [--end-date 2026-11-20] [--row-group-rows 131072] [--table orders]
//! ```
//!
//! Writes `DIR/<table>/dt=YYYY-MM-DD/part-0000N.zstd.parquet` plus `_SUCCESS` for `--partitions`
//! days ending at `--end-date`, `--rows` rows per partition split over `--files` files, zstd,
//! `--row-group-rows` rows per row group. Columns: `order_id` Int64 (unique across partitions),
//! `user_id`, `shop_id` Int64, `amount` Decimal128(12,2), `status`, `city` Utf8, `created_at`
//! Timestamp(ms, UTC), `remark` Utf8, `is_first_order` Boolean: about 220 bytes of JSON per row.
//! Deterministic (a simple LCG).

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{Days, NaiveDate};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

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
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, true),
        Field::new("shop_id", DataType::Int64, true),
        Field::new("amount", DataType::Decimal128(12, 2), true),
        Field::new("status", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, true),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("remark", DataType::Utf8, true),
        Field::new("is_first_order", DataType::Boolean, true),
    ]));
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
                let n = (end - start) as usize;
                let ids: Vec<i64> = (start..end)
                    .map(|i| (p * args.rows + i + 1) as i64)
                    .collect();
                let draws: Vec<(u64, u64, u64)> =
                    (0..n).map(|_| (next(), next(), next())).collect();
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(Int64Array::from_iter_values(
                        draws.iter().map(|d| 1_000_000 + (d.0 % 8_000_000) as i64),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        draws.iter().map(|d| 10_000 + (d.0 % 50_000) as i64),
                    )),
                    Arc::new(
                        Decimal128Array::from_iter_values(
                            draws.iter().map(|d| (d.1 % 10_000_000) as i128),
                        )
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                    ),
                    Arc::new(StringArray::from_iter_values(
                        draws.iter().map(|d| STATUSES[(d.0 % 5) as usize]),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        draws.iter().map(|d| CITIES[(d.0 % 8) as usize]),
                    )),
                    Arc::new(
                        TimestampMillisecondArray::from_iter_values(
                            draws.iter().map(|d| day_ms + (d.2 % 86_400_000) as i64),
                        )
                        .with_timezone("UTC"),
                    ),
                    Arc::new(StringArray::from_iter_values(
                        draws.iter().map(|d| REMARKS[(d.0 % 4) as usize]),
                    )),
                    Arc::new(BooleanArray::from(
                        draws.iter().map(|d| d.0 % 7 == 0).collect::<Vec<_>>(),
                    )),
                ];
                writer
                    .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
                    .unwrap();
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
