//! Every object store coldsync is built with, end to end (the contract of `tests/s3.rs`: load,
//! exact Redis contents and ledger, a no-op second run), on local emulators started and stopped
//! here on free loopback ports:
//!
//! - Azure Blob (`azblob`) on Azurite (npm `azurite`, its `azurite-blob` server, in memory),
//!   shared-key authentication with the emulator's well-known account;
//! - Google Cloud Storage (`gcs`) on `gcp-storage-emulator` (PyPI), in memory, anonymous.
//!
//! (`fs` and `s3` are tested by the other test files; `oss` speaks S3's protocol but is not run.)
//! `scripts/install-deps.sh` installs both emulators; `COLDSYNC_TEST_AZURITE` and
//! `COLDSYNC_TEST_GCS_EMULATOR` override where they are.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::NaiveDate;
use coldsync::config::Config;
use coldsync::run::{exit_code, partition_expiry, Engine, RunOptions, RunSummary};
use common::*;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// Azurite's well-known development account (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const KEY_VAR: &str = "COLDSYNC_AZURITE_TEST_KEY";

fn program(env_var: &str, default: &str) -> String {
    std::env::var(env_var)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// An emulator process, killed (and reaped) when dropped; its output goes to a log file.
struct Emulator {
    name: &'static str,
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Emulator {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }

    /// Waits until the port takes connections; panics with the log after `timeout`.
    fn wait_listening(mut self, timeout: Duration) -> Emulator {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return self;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.log());
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} not listening after {timeout:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn spawn(name: &'static str, program: &str, args: &[String], port: u16) -> Emulator {
        let dir = tempfile::Builder::new()
            .prefix("coldsync-emulator-")
            .tempdir()
            .unwrap();
        let log = std::fs::File::create(dir.path().join("emulator.log")).unwrap();
        let child = Command::new(program)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot spawn `{program}` ({e}); run scripts/install-deps.sh")
            });
        Emulator {
            name,
            child,
            port,
            dir,
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Azurite's blob service on an OS-chosen port (it prints the port it got).
fn start_azurite() -> Emulator {
    let bin = program("COLDSYNC_TEST_AZURITE", "azurite-blob");
    let args: Vec<String> = [
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        "0",
        "--inMemoryPersistence",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
    ]
    .map(String::from)
    .to_vec();
    let mut emulator = Emulator::spawn("azurite", &bin, &args, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    const NEEDLE: &str = "successfully listens on http://127.0.0.1:";
    emulator.port = loop {
        let log = emulator.log();
        if let Some(at) = log.find(NEEDLE) {
            let digits: String = log[at + NEEDLE.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            break digits.parse().unwrap();
        }
        if let Ok(Some(status)) = emulator.child.try_wait() {
            panic!("azurite exited with {status}:\n{log}");
        }
        assert!(Instant::now() < deadline, "azurite did not start:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    emulator.wait_listening(Duration::from_secs(10))
}

/// `gcp-storage-emulator` in memory with bucket `bucket` (it cannot pick its own port: a free
/// one is chosen, and another tried if it was taken meanwhile).
fn start_gcs(bucket: &str) -> Emulator {
    let bin = program("COLDSYNC_TEST_GCS_EMULATOR", "gcp-storage-emulator");
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let args: Vec<String> = [
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--in-memory",
            "--default-bucket",
            bucket,
        ]
        .map(String::from)
        .to_vec();
        let mut emulator = Emulator::spawn("gcp-storage-emulator", &bin, &args, port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if emulator.log().contains("All services started")
                && TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
            {
                return emulator;
            }
            if let Ok(Some(_)) = emulator.child.try_wait() {
                last = emulator.log();
                break;
            }
            assert!(
                Instant::now() < deadline,
                "gcs emulator did not start:\n{}",
                emulator.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("gcs emulator did not start:\n{last}");
}

/// HMAC-SHA256 (RFC 2104) of `message` with `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Creates blob container `name` in Azurite (opendal has no call for it): a `PUT
/// ?restype=container` signed with the account's shared key.
fn create_container(azurite: &Emulator, name: &str) {
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let string_to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
         /{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}\nrestype:container"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(AZURITE_KEY)
        .unwrap();
    let signature = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    let request = format!(
        "PUT /{AZURITE_ACCOUNT}/{name}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         x-ms-date: {date}\r\nx-ms-version: {version}\r\n\
         Authorization: SharedKey {AZURITE_ACCOUNT}:{signature}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n",
        port = azurite.port
    );
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, azurite.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "create container {name}: {response}\n{}",
        azurite.log()
    );
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

const TABLES: &str = r#"
[redis]
url = "redis://127.0.0.1:REDIS_PORT/0"
retry_attempts = 1

[defaults]
retention_days = 30

[[tables]]
name = "orders"
path = "warehouse/orders"
key = "ord:{order_id}"

[[tables]]
name = "orders_hive"
path = "warehouse/orders_hive"
key = "hive:{order_id}"
partition_format = "%Y%m%d"
completeness = "none"
"#;

async fn run(engine: &Engine) -> RunSummary {
    let options = RunOptions {
        as_of: Some(d("2026-11-22")),
        ..RunOptions::default()
    };
    engine
        .run(&options, &CancellationToken::new())
        .await
        .expect("run starts")
}

/// Writes the fixtures through `op`, then loads them with `source` and checks the contract.
async fn load_exactly_then_noop(
    op: &opendal::Operator,
    source: &str,
    env: HashMap<String, String>,
) {
    let [spark, hive] = [spark_orders_table(), hive_hourly_orders_table()];
    // With a content type: the GCS emulator answers an upload without one with a null
    // `contentType`, which opendal refuses.
    for (path, file) in spark.files().iter().chain(hive.files()) {
        op.write_with(path, file.bytes.clone())
            .content_type("application/octet-stream")
            .await
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
    let redis = RedisServer::start();
    let text = format!(
        "{source}\n{}",
        TABLES.replace("REDIS_PORT", &redis.port.to_string())
    );
    let config = Config::parse(&text, &env).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let table = config.tables[0].clone();
    let engine = Engine::connect(config).await.expect("connect");

    let summary = run(&engine).await;
    assert_eq!(summary.exit_code, exit_code::OK, "{summary:?}");
    assert_eq!(summary.partitions_loaded, 4, "{summary:?}");
    assert_eq!((summary.rows, summary.keys), (12, 12), "{summary:?}");
    let bytes: u64 = [
        spark.data_bytes_under("warehouse/orders/dt=2026-11-19/"),
        spark.data_bytes_under("warehouse/orders/dt=2026-11-20/"),
        hive.data_bytes_under("warehouse/orders_hive/dt=20261119/"),
        hive.data_bytes_under("warehouse/orders_hive/dt=20261120/"),
    ]
    .iter()
    .sum();
    assert_eq!(summary.bytes, bytes);

    let exp19 = partition_expiry(&table, d("2026-11-19")).millis;
    let exp20 = partition_expiry(&table, d("2026-11-20")).millis;
    let expected = [
        ("ord:1", orders_json(1, "a"), exp19),
        ("ord:2", orders_json(2, "a"), exp19),
        ("ord:3", orders_json(3, "a"), exp19),
        ("ord:4", orders_json(4, "b"), exp20),
        ("ord:5", orders_json(5, "b"), exp20),
        ("ord:6", orders_json(6, "b"), exp20),
        ("hive:100", orders_json(100, "j"), exp20),
        ("hive:101", orders_json(101, "h"), exp19),
        ("hive:102", orders_json(102, "i"), exp20),
        ("hive:103", orders_json(103, "j"), exp20),
    ];
    let check_contents = || {
        for (key, value, expiry) in &expected {
            assert_eq!(redis.get(key).as_deref(), Some(value.as_str()), "{key}");
            assert_eq!(redis.pexpiretime(key), *expiry, "expiry of {key}");
        }
        let mut keys: BTreeSet<String> = expected.iter().map(|(k, _, _)| k.to_string()).collect();
        for table in ["orders", "orders_hive"] {
            keys.insert(format!("coldsync:{{{table}}}:partitions"));
            keys.insert(format!("coldsync:{{{table}}}:watermark"));
        }
        assert_eq!(redis.keys("*"), keys, "hot and junk rows are not loaded");
    };
    check_contents();
    let ledger = engine.ledger();
    let mut entries = Vec::new();
    for table in ["orders", "orders_hive"] {
        let loaded = ledger.entries(table).await.unwrap();
        assert_eq!(
            loaded.keys().copied().collect::<Vec<_>>(),
            [d("2026-11-19"), d("2026-11-20")],
            "{table}"
        );
        assert_eq!(
            ledger.watermark(table).await.unwrap(),
            Some(d("2026-11-20"))
        );
        entries.push(loaded);
    }
    assert_eq!(
        (
            entries[0][&d("2026-11-19")].rows,
            entries[0][&d("2026-11-20")].keys
        ),
        (4, 3)
    );

    // Second run: nothing to do, nothing changes (fingerprints from this store's listing).
    let second = run(&engine).await;
    assert_eq!(second.exit_code, exit_code::OK, "{second:?}");
    assert_eq!(
        (second.partitions_loaded, second.rows, second.bytes),
        (0, 0, 0)
    );
    for (table, before) in ["orders", "orders_hive"].iter().zip(&entries) {
        assert_eq!(&ledger.entries(table).await.unwrap(), before, "{table}");
    }
    check_contents();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_blob_on_azurite_loads_exactly_then_noop() {
    let azurite = start_azurite();
    create_container(&azurite, "lake");
    let endpoint = format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", azurite.port);
    opendal::init_default_registry();
    let op = opendal::Operator::via_iter(
        "azblob",
        [
            ("container", "lake"),
            ("endpoint", &endpoint),
            ("account_name", AZURITE_ACCOUNT),
            ("account_key", AZURITE_KEY),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    let source = format!(
        "[source]\nscheme = \"azblob\"\ncontainer = \"lake\"\nendpoint = \"{endpoint}\"\n\
         account_name = \"{AZURITE_ACCOUNT}\"\naccount_key_env = \"{KEY_VAR}\"\n\
         retry_attempts = 1\ntimeout_secs = 20\n"
    );
    let env = HashMap::from([(KEY_VAR.to_string(), AZURITE_KEY.to_string())]);
    load_exactly_then_noop(&op, &source, env).await;
    drop(azurite);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_cloud_storage_on_its_emulator_loads_exactly_then_noop() {
    let gcs = start_gcs("lake");
    let endpoint = format!("http://127.0.0.1:{}", gcs.port);
    let options = [
        ("bucket", "lake"),
        ("endpoint", endpoint.as_str()),
        ("allow_anonymous", "true"),
        ("disable_vm_metadata", "true"),
        ("disable_config_load", "true"),
    ];
    opendal::init_default_registry();
    let op =
        opendal::Operator::via_iter("gcs", options.map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap();
    let source: String = options
        .iter()
        .map(|(k, v)| format!("{k} = {v:?}\n"))
        .collect();
    let source =
        format!("[source]\nscheme = \"gcs\"\n{source}retry_attempts = 1\ntimeout_secs = 20\n");
    load_exactly_then_noop(&op, &source, HashMap::new()).await;
    drop(gcs);
}
