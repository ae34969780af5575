//! Object-store faults, through the built binary: an HTTP fault proxy (started here) sits
//! between coldsync and moto and answers `503 SlowDown` or cuts response bodies in the middle.
//!
//! - Light faults (a few 503s, cut bodies) are absorbed by the store's retries: the load is
//!   exact, and each retry is a `store_retry` event (no log line without an `event`).
//! - Heavy faults (every object read 503) fail the partition as a read failure with the status
//!   (never as "not readable as parquet"), retried at partition level (`partition_retry`), and
//!   nothing is recorded.
//! - A 503 in the middle of a file (the footer read, the pages not) surfaces under the Parquet
//!   decoder and is still a transient read failure, retried.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

const KEY_VAR: &str = "COLDSYNC_FAULT_TEST_KEY_ID";
const SECRET_VAR: &str = "COLDSYNC_FAULT_TEST_SECRET";

/// A bucket in the shared moto, a proxy in front of it, a Redis, and the config file.
struct Setup {
    proxy: HttpFaultProxy,
    redis: RedisServer,
    dir: tempfile::TempDir,
}

impl Setup {
    /// Writes `fixture` into a fresh bucket; the config points the s3 source at the proxy with
    /// `source_retries` store retries and `partition_attempts` attempts per partition.
    fn new(fixture: &HiveTableFixture, source_retries: usize, partition_attempts: usize) -> Setup {
        let server = s3();
        let bucket = server.fresh_bucket("cs-faults");
        let op = server.operator(&bucket);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(fixture.write_to(&op));
        let proxy = HttpFaultProxy::start(server.port);
        let redis = RedisServer::start();
        let dir = tempfile::Builder::new()
            .prefix("coldsync-faults-")
            .tempdir()
            .unwrap();
        let config = format!(
            r#"{source}
[redis]
url = "redis://127.0.0.1:{port}/0"
retry_attempts = {partition_attempts}

[defaults]
retention_days = 30

[[tables]]
name = "orders"
path = "warehouse/orders"
key = "ord:{{order_id}}"
"#,
            source = s3_source_section(
                &proxy.endpoint(),
                &bucket,
                (KEY_VAR, SECRET_VAR),
                source_retries,
                10
            ),
            port = redis.port,
        );
        std::fs::write(dir.path().join("coldsync.toml"), config).unwrap();
        Setup { proxy, redis, dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("coldsync.toml")
    }

    fn run(&self) -> CliOutput {
        let config = self.config();
        run_cli(
            &[
                "--config",
                config.to_str().unwrap(),
                "--log-format",
                "json",
                "run",
                "--as-of",
                "2026-11-22",
            ],
            &[
                (KEY_VAR, "test"),
                (SECRET_VAR, "test"),
                ("RUST_LOG", "info"),
            ],
        )
    }
}

/// Every WARN or ERROR line has an `event` name (opendal's own retry warnings had none).
fn assert_every_warning_has_an_event(out: &CliOutput) {
    for line in &out.events {
        let level = event_field(line, "level").and_then(Value::as_str);
        if matches!(level, Some("WARN") | Some("ERROR")) {
            assert!(
                event_name(line).is_some(),
                "no event: {line}\n{}",
                out.dump()
            );
        }
    }
}

/// 11-19: ids 1,2,3 and 4 (two files); 11-20: ids 5,6 (one file); 11-21 hot.
fn two_partitions() -> HiveTableFixture {
    let mut fx = HiveTableFixture::new("warehouse/orders");
    fx.spark_partition(
        "dt=2026-11-19",
        &[orders_batch(&[1, 2, 3], "a"), orders_batch(&[4], "a")],
    )
    .spark_partition("dt=2026-11-20", &[orders_batch(&[5, 6], "b")])
    .spark_partition("dt=2026-11-21", &[orders_batch(&[7], "c")]);
    fx
}

/// One cold partition of one file: 11-20, ids 5,6.
fn one_partition() -> HiveTableFixture {
    let mut fx = HiveTableFixture::new("warehouse/orders");
    fx.spark_partition("dt=2026-11-20", &[orders_batch(&[5, 6], "b")]);
    fx
}

fn data_keys(redis: &RedisServer) -> Vec<String> {
    redis
        .keys("*")
        .into_iter()
        .filter(|k| !k.starts_with("coldsync:"))
        .collect()
}

#[test]
fn light_faults_are_retried_by_the_store_and_the_load_is_exact() {
    let fixture = two_partitions();
    let setup = Setup::new(&fixture, 4, 1);
    setup.proxy.script(
        Requests::ObjectReads,
        &[
            (2, Fault::Unavailable),
            (1, Fault::CutBody),
            (1, Fault::None),
            (1, Fault::Unavailable),
            (1, Fault::CutBody),
        ],
        Fault::None,
    );
    let out = setup.run();
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert_eq!(
        setup.proxy.count(Fault::Unavailable),
        3,
        "{:#?}",
        setup.proxy.requests()
    );
    assert_eq!(
        setup.proxy.count(Fault::CutBody),
        2,
        "{:#?}",
        setup.proxy.requests()
    );

    let redis = &setup.redis;
    let mut expected: Vec<(String, String)> = [1, 2, 3, 4]
        .iter()
        .map(|&id| (format!("ord:{id}"), orders_json(id, "a")))
        .collect();
    expected.extend(
        [5, 6]
            .iter()
            .map(|&id| (format!("ord:{id}"), orders_json(id, "b"))),
    );
    for (key, value) in &expected {
        assert_eq!(redis.get(key).as_deref(), Some(value.as_str()), "{key}");
    }
    let mut keys: Vec<String> = expected.into_iter().map(|(k, _)| k).collect();
    keys.sort();
    assert_eq!(data_keys(redis), keys);
    let ledger = redis.hgetall("coldsync:{orders}:partitions");
    assert_eq!(
        ledger.keys().cloned().collect::<Vec<_>>(),
        vec!["2026-11-19".to_string(), "2026-11-20".to_string()]
    );

    let retries = out.events_named("store_retry");
    assert!(
        retries.len() >= 5,
        "one per fault: {retries:#?}\n{}",
        out.dump()
    );
    for retry in &retries {
        assert_eq!(text(retry, "level"), "WARN");
        assert_eq!(text(retry, "operation"), "read", "{retry}");
        assert!(
            text(retry, "path").starts_with("warehouse/orders/dt=2026-11-"),
            "{retry}"
        );
        assert!(field(retry, "attempt").as_u64().unwrap() >= 1, "{retry}");
        assert!(!text(retry, "error").is_empty());
    }
    assert!(
        retries
            .iter()
            .any(|r| event_field(r, "status").and_then(Value::as_u64) == Some(503)),
        "{retries:#?}"
    );
    assert!(out.event("partition_failed").is_none(), "{}", out.dump());
    assert!(out.event("partition_retry").is_none(), "{}", out.dump());
    assert_every_warning_has_an_event(&out);
}

#[test]
fn every_read_503_fails_the_partition_as_a_read_failure_retried_and_not_recorded() {
    let fixture = one_partition();
    let setup = Setup::new(&fixture, 1, 3);
    setup
        .proxy
        .script(Requests::ObjectReads, &[], Fault::Unavailable);
    let out = setup.run();
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let file = &fixture.data_files()[0];

    let retries = out.events_named("partition_retry");
    assert_eq!(
        retries.len(),
        2,
        "attempts 1 and 2 of 3 are retried\n{}",
        out.dump()
    );
    for (i, retry) in retries.iter().enumerate() {
        assert_eq!(
            field(retry, "attempt").as_u64(),
            Some(i as u64 + 1),
            "{retry}"
        );
        assert_eq!(text(retry, "date"), "2026-11-20");
    }
    let failed = out.events_named("partition_failed");
    assert_eq!(failed.len(), 1, "{}", out.dump());
    let failed = failed[0];
    assert_eq!(field(failed, "transient"), &Value::Bool(true), "{failed}");
    assert_eq!(text(failed, "file"), file, "{failed}");
    for error in retries
        .iter()
        .map(|r| text(r, "error"))
        .chain([text(failed, "error")])
    {
        assert!(
            error.starts_with(&format!(
                "file {file}: cannot read from the object store (HTTP status 503): "
            )),
            "{error}"
        );
        assert!(!error.contains("not readable as parquet"), "{error}");
    }
    assert!(!out.events_named("store_retry").is_empty());
    assert_every_warning_has_an_event(&out);

    // Nothing recorded, nothing written.
    let redis = &setup.redis;
    assert!(redis.hgetall("coldsync:{orders}:partitions").is_empty());
    assert!(data_keys(redis).is_empty(), "{:?}", redis.keys("*"));
    let summary = out.event("run_finished").expect("run_finished");
    assert_eq!(field(summary, "partitions_failed").as_u64(), Some(1));
    assert_eq!(field(summary, "partitions_loaded").as_u64(), Some(0));
}

#[test]
fn a_503_under_the_parquet_decoder_is_a_transient_read_failure() {
    let fixture = one_partition();
    let setup = Setup::new(&fixture, 1, 2);
    // The footer read passes; every read after it (the column chunks) gets 503.
    setup.proxy.script(
        Requests::ObjectReads,
        &[(1, Fault::None)],
        Fault::Unavailable,
    );
    let out = setup.run();
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let file = &fixture.data_files()[0];
    let requests = setup.proxy.requests();
    let reads: Vec<_> = requests
        .iter()
        .filter(|r| Requests::ObjectReads.matches_request(r))
        .collect();
    assert!(reads.len() >= 2, "{requests:#?}");
    assert_eq!(reads[0].fault, Fault::None);

    // The first attempt failed in the decoder, with the store's status, and was retried.
    let retry = out
        .event("partition_retry")
        .unwrap_or_else(|| panic!("{}", out.dump()));
    let error = text(retry, "error");
    assert!(
        error.starts_with(&format!(
            "file {file}: cannot read from the object store (HTTP status 503): "
        )),
        "{error}"
    );
    assert!(!error.contains("not readable as parquet"), "{error}");
    let failed = out.event("partition_failed").expect("partition_failed");
    assert_eq!(field(failed, "transient"), &Value::Bool(true), "{failed}");
    assert!(setup
        .redis
        .hgetall("coldsync:{orders}:partitions")
        .is_empty());
}
