//! The orders tables, in one place for the tests and the examples.
//!
//! * The test table ([`orders_schema`], [`orders_batch`]): five columns whose every value is a
//!   function of the order id, so a test can recompute what coldsync must write
//!   ([`orders_json`]).
//! * The order-fact table ([`order_facts_schema`], [`OrderFact`], [`order_facts_batch`]): nine
//!   columns of realistic order data, what `examples/gen_sample.rs` (the demo) and
//!   `examples/gen_bench.rs` (the benchmark) write. `bench/run.sh` relies on its shape.
//!
//! The two differ on purpose (a test table small enough to recompute by hand, a fact table wide
//! enough to measure), and both live here so there is one place to read or change an orders table.
//! Tests reach this file through `mod common`; the examples include it with
//! `#[path = "../tests/common/orders.rs"] mod orders;` (hence the `allow(dead_code)`: each user
//! needs only part of it).
#![allow(dead_code)]

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// 2026-11-20T00:00:00Z in Unix milliseconds: base of `orders_batch().created_at`.
pub const ORDERS_BASE_TS_MS: i64 = 1_795_132_800_000;

/// Schema of [`orders_batch`]:
/// `order_id Int64 NOT NULL, user_id Int64, amount Decimal128(10,2), status Utf8,
/// created_at Timestamp(Millisecond, None)`.
pub fn orders_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, true),
        Field::new("amount", DataType::Decimal128(10, 2), true),
        Field::new("status", DataType::Utf8, true),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
    ]))
}

/// A batch with one row per id (in the given order), no nulls. For id `i`:
///
/// | column       | type                            | value                                      |
/// |--------------|---------------------------------|--------------------------------------------|
/// | `order_id`   | Int64, non-null                 | `i`                                        |
/// | `user_id`    | Int64                           | `10_000 + i.rem_euclid(100)` ([`orders_user_id`]) |
/// | `amount`     | Decimal128(10,2)                | unscaled `i * 100 + 99`, i.e. `"{i}.99"` for `i >= 0` ([`orders_amount_unscaled`]) |
/// | `status`     | Utf8                            | `format!("paid-{suffix}")`                 |
/// | `created_at` | Timestamp(Millisecond, no tz)   | `ORDERS_BASE_TS_MS + i * 1000` (2026-11-20T00:00:00 + i seconds) ([`orders_created_at_ms`]) |
pub fn orders_batch(ids: &[i64], suffix: &str) -> RecordBatch {
    let order_id = Int64Array::from(ids.to_vec());
    let user_id = Int64Array::from(ids.iter().map(|&i| orders_user_id(i)).collect::<Vec<_>>());
    let amount = Decimal128Array::from(
        ids.iter()
            .map(|&i| orders_amount_unscaled(i))
            .collect::<Vec<_>>(),
    )
    .with_precision_and_scale(10, 2)
    .expect("decimal(10,2)");
    let status = StringArray::from(vec![format!("paid-{suffix}"); ids.len()]);
    let created_at = TimestampMillisecondArray::from(
        ids.iter()
            .map(|&i| orders_created_at_ms(i))
            .collect::<Vec<_>>(),
    );
    let cols: Vec<ArrayRef> = vec![
        Arc::new(order_id),
        Arc::new(user_id),
        Arc::new(amount),
        Arc::new(status),
        Arc::new(created_at),
    ];
    RecordBatch::try_new(orders_schema(), cols).expect("orders batch")
}

/// `user_id` of [`orders_batch`] for id `i`: `10_000 + i.rem_euclid(100)`.
pub fn orders_user_id(i: i64) -> i64 {
    10_000 + i.rem_euclid(100)
}

/// Unscaled Decimal128(10,2) `amount` of [`orders_batch`] for id `i`: `i * 100 + 99`.
pub fn orders_amount_unscaled(i: i64) -> i128 {
    i128::from(i) * 100 + 99
}

/// `created_at` (ms) of [`orders_batch`] for id `i`: `ORDERS_BASE_TS_MS + i * 1000`.
pub fn orders_created_at_ms(i: i64) -> i64 {
    ORDERS_BASE_TS_MS + i * 1000
}

/// The JSON value coldsync writes for [`orders_batch`] row `id` with status suffix `suffix`
/// (all columns but the key, default encodings).
pub fn orders_json(id: i64, suffix: &str) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(orders_created_at_ms(id)).unwrap();
    format!(
        r#"{{"user_id":{},"amount":"{}.99","status":"paid-{suffix}","created_at":"{}"}}"#,
        orders_user_id(id),
        id,
        ts.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    )
}

// ---------------------------------------------------------------------------
// The order-fact table of the examples
// ---------------------------------------------------------------------------

/// Schema of the order-fact table:
/// `order_id Int64 NOT NULL, user_id Int64, shop_id Int64, amount Decimal128(12,2), status Utf8,
/// city Utf8, created_at Timestamp(Millisecond, "UTC"), remark Utf8, is_first_order Boolean`.
pub fn order_facts_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
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
    ]))
}

/// One row of the order-fact table (see [`order_facts_schema`]).
#[derive(Clone, Debug)]
pub struct OrderFact {
    pub order_id: i64,
    pub user_id: i64,
    pub shop_id: i64,
    /// `amount` unscaled: cents of Decimal128(12,2).
    pub amount_cents: i128,
    pub status: &'static str,
    pub city: &'static str,
    /// `created_at` in Unix milliseconds (UTC).
    pub created_at_ms: i64,
    /// `None` is a null `remark`.
    pub remark: Option<&'static str>,
    pub is_first_order: bool,
}

/// A batch of [`order_facts_schema`] holding `rows` in order. Only `remark` can be null.
pub fn order_facts_batch(rows: &[OrderFact]) -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.order_id),
        )),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.user_id))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.shop_id))),
        Arc::new(
            Decimal128Array::from_iter_values(rows.iter().map(|r| r.amount_cents))
                .with_precision_and_scale(12, 2)
                .expect("decimal(12,2)"),
        ),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.status))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.city))),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.created_at_ms))
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.remark))),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| Some(r.is_first_order)),
        )),
    ];
    RecordBatch::try_new(order_facts_schema(), cols).expect("order facts batch")
}
