//! rediss://: a real TLS redis-server (certificates made with openssl for the test), reached by
//! both the control connection (ledger) and the bulk writer.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use coldsync::config::Config;
use coldsync::run::{Engine, RunOptions};
use common::{
    event_field, free_port, make_certificates, orders_batch, run_cli, CliOutput, HiveTableFixture,
    RedisServer,
};
use tokio_util::sync::CancellationToken;

/// A TLS-only `--tls-port` (beside the helper's plain port, used to read back) with the test
/// CA's server certificate; `auth_clients`: `yes` demands a client certificate.
fn tls_redis(certs: &Path, tls_port: u16, auth_clients: &str) -> RedisServer {
    let file = |name: &str| certs.join(name).display().to_string();
    RedisServer::start_with_args(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &file("server.crt"),
        "--tls-key-file",
        &file("server.key"),
        "--tls-ca-cert-file",
        &file("ca.crt"),
        "--tls-auth-clients",
        auth_clients,
    ])
}

fn config(root: &Path, tls_port: u16, ca: Option<&Path>) -> Config {
    let ca_line = ca
        .map(|p| format!("tls_ca_file = {:?}", p.display().to_string()))
        .unwrap_or_default();
    let text = format!(
        "[source]\nscheme = \"fs\"\nroot = {root:?}\n\n[redis]\nurl = \"rediss://127.0.0.1:{tls_port}/0\"\n{ca_line}\n\
         timeout_secs = 5\nretry_attempts = 1\n\n[defaults]\nretention_days = 30\n\n\
         [[tables]]\nname = \"orders\"\npath = \"orders\"\nkey = \"tls:{{order_id}}\"\ncolumns = [\"status\"]\n",
        root = root.display().to_string()
    );
    Config::parse(&text, &HashMap::new()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_over_tls_and_refuses_an_unknown_certificate() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let tls_port = free_port();
    let redis = tls_redis(certs.path(), tls_port, "no");
    let warehouse = tempfile::tempdir().unwrap();
    let mut fixture = HiveTableFixture::new("orders");
    fixture.spark_partition("dt=2026-11-19", &[orders_batch(&[1, 2], "tls")]);
    fixture.spark_partition("dt=2026-11-20", &[orders_batch(&[3], "tls")]);
    fixture.write_local(warehouse.path());
    let as_of = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();

    // Without the test CA, the server's certificate is not trusted: refused at start.
    let untrusted = Engine::connect(config(warehouse.path(), tls_port, None)).await;
    let message = untrusted
        .err()
        .expect("untrusted certificate refused")
        .to_string();
    assert!(
        message.contains("certificate") || message.contains("Certificate"),
        "{message}"
    );
    assert_eq!(redis.dbsize(), 0);

    let ca = certs.path().join("ca.crt");
    let engine = Engine::connect(config(warehouse.path(), tls_port, Some(&ca)))
        .await
        .unwrap();
    let options = RunOptions {
        as_of: Some(as_of),
        ..RunOptions::default()
    };
    let summary = engine
        .run(&options, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (summary.exit_code, summary.partitions_loaded, summary.keys),
        (0, 2, 3)
    );
    // Read back over the plain port of the same server.
    for id in 1..=3 {
        assert_eq!(
            redis.get(&format!("tls:{id}")),
            Some(r#"{"status":"paid-tls"}"#.to_string())
        );
    }
    assert_eq!(engine.ledger().entries("orders").await.unwrap().len(), 2);
}

/// A config file for the CLI: `url`, the extra `[redis]` lines, the orders table.
fn write_config(dir: &Path, root: &Path, url: &str, redis_lines: &[String]) -> String {
    let text = format!(
        "[source]\nscheme = \"fs\"\nroot = {root:?}\n\n[redis]\nurl = \"{url}\"\n{}\n\
         timeout_secs = 5\nretry_attempts = 1\n\n[defaults]\nretention_days = 30\n\n\
         [[tables]]\nname = \"orders\"\npath = \"orders\"\nkey = \"mtls:{{order_id}}\"\ncolumns = [\"status\"]\n",
        redis_lines.join("\n"),
        root = root.display().to_string()
    );
    let path = dir.join(format!("coldsync-{}.toml", free_port()));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const AS_OF: &str = "2026-11-22";

fn cli(config: &str) -> CliOutput {
    run_cli(
        &[
            "--config",
            config,
            "--log-format",
            "json",
            "run",
            "--as-of",
            AS_OF,
        ],
        &[("RUST_LOG", "info")],
    )
}

#[test]
fn mutual_tls_loads_and_refuses_a_wrong_ca_a_missing_client_certificate_and_plaintext() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let tls_port = free_port();
    let redis = tls_redis(certs.path(), tls_port, "yes");
    let warehouse = tempfile::tempdir().unwrap();
    let mut fixture = HiveTableFixture::new("orders");
    fixture.spark_partition("dt=2026-11-19", &[orders_batch(&[1, 2], "mtls")]);
    fixture.spark_partition("dt=2026-11-20", &[orders_batch(&[3], "mtls")]);
    fixture.write_local(warehouse.path());
    let file = |name: &str| certs.path().join(name).display().to_string();
    let option = |name: &str, file_name: &str| format!("{name} = {:?}", file(file_name));
    let url = format!("rediss://127.0.0.1:{tls_port}/0");
    let client_cert = [
        option("tls_cert_file", "client.crt"),
        option("tls_key_file", "client.key"),
    ];
    let dir = certs.path();

    // A CA that did not sign the server's certificate: refused at start, naming the CA option.
    let mut wrong_ca = client_cert.to_vec();
    wrong_ca.push(option("tls_ca_file", "other-ca.crt"));
    let out = cli(&write_config(dir, warehouse.path(), &url, &wrong_ca));
    assert_eq!(out.status_code, 1, "{}", out.dump());
    assert!(
        out.stderr.contains("tls handshake failed"),
        "{}",
        out.dump()
    );
    assert!(out.stderr.contains("not trusted"), "{}", out.dump());
    assert!(out.stderr.contains("redis.tls_ca_file"), "{}", out.dump());
    assert_eq!(redis.dbsize(), 0);

    // The right CA but no client certificate: the server refuses the client, and says so.
    let no_client = [option("tls_ca_file", "ca.crt")];
    let out = cli(&write_config(dir, warehouse.path(), &url, &no_client));
    assert_eq!(out.status_code, 1, "{}", out.dump());
    assert!(out.stderr.contains("client certificate"), "{}", out.dump());
    assert!(out.stderr.contains("redis.tls_cert_file"), "{}", out.dump());
    assert_eq!(redis.dbsize(), 0);

    // Plaintext to the TLS-only port: fails fast (no waiting for the 5s reply timeout).
    let plain_url = format!("redis://127.0.0.1:{tls_port}/0");
    let started = Instant::now();
    let out = cli(&write_config(dir, warehouse.path(), &plain_url, &[]));
    let took = started.elapsed();
    assert_eq!(out.status_code, 1, "{}", out.dump());
    assert!(out.stderr.contains("use rediss://"), "{}", out.dump());
    assert!(
        took < Duration::from_secs(3),
        "took {took:?}: {}",
        out.dump()
    );
    assert_eq!(redis.dbsize(), 0);

    // Mutual TLS: the load reads back exact (over the plain port of the same server).
    let mut mutual = client_cert.to_vec();
    mutual.push(option("tls_ca_file", "ca.crt"));
    let out = cli(&write_config(dir, warehouse.path(), &url, &mutual));
    out.assert_success();
    assert!(out.event("tls_insecure").is_none(), "{}", out.dump());
    let summary = out.last_event("run_finished").expect("run_finished");
    assert_eq!(event_field(summary, "partitions_loaded"), Some(&2.into()));
    for id in 1..=3 {
        assert_eq!(
            redis.get(&format!("mtls:{id}")),
            Some(r#"{"status":"paid-mtls"}"#.to_string())
        );
    }
    assert_eq!(redis.hgetall("coldsync:{orders}:partitions").len(), 2);
    assert_eq!(redis.dbsize(), 3 + 2); // keys, partitions hash, watermark

    // tls_insecure: still loads (nothing left to load), with a WARN at the run's start.
    let mut insecure = client_cert.to_vec();
    insecure.push("tls_insecure = true".to_string());
    let out = cli(&write_config(dir, warehouse.path(), &url, &insecure));
    out.assert_success();
    let warning = out.event("tls_insecure").expect("tls_insecure event");
    assert_eq!(warning["level"], "WARN", "{warning}");
}
