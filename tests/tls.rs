//! rediss://: a real TLS redis-server (certificates made with openssl for the test), reached by
//! both the control connection (ledger) and the bulk writer.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::NaiveDate;
use coldsync::config::Config;
use coldsync::run::{Engine, RunOptions};
use common::{free_port, orders_batch, output_within, HiveTableFixture, RedisServer};
use tokio_util::sync::CancellationToken;

/// A CA and a server certificate for 127.0.0.1, written into `dir`.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let mut openssl = Command::new("openssl");
        openssl.args(args).current_dir(dir);
        let out = output_within(&mut openssl, Stdio::null(), Duration::from_secs(60));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=coldsync-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
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
    let file = |name: &str| certs.path().join(name).display().to_string();
    let redis = RedisServer::start_with_args(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &file("server.crt"),
        "--tls-key-file",
        &file("server.key"),
        "--tls-ca-cert-file",
        &file("ca.crt"),
        "--tls-auth-clients",
        "no",
    ]);
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
