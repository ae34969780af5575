//! Shared integration-test harness for `coldsync`.
//!
//! Integration test files pull this in with `mod common;`. It provides:
//!
//! * [`RedisServer`]: a throw-away `redis-server` on a free loopback port, one per
//!   call to [`RedisServer::start`], killed when dropped, plus synchronous
//!   inspection helpers (`get`, `hgetall`, `keys`, `pexpiretime`, `dbsize`, ...).
//! * [`S3Server`] / [`s3`]: one `moto_server` (S3 mock) per test binary, shared by
//!   all tests of that binary. Tests must use distinct bucket names (see
//!   [`S3Server::fresh_bucket`]).
//! * Parquet fixture writers: [`parquet_bytes`], [`write_file`], [`write_success`],
//!   [`HiveTableFixture`] (Spark-style and Hive-style partition layouts, with the
//!   usual junk files, writable to a local dir or through an `opendal::Operator`).
//! * [`orders_batch`]: a deterministic `RecordBatch` whose values tests can recompute.
//! * [`coldsync_bin`] / [`run_cli`]: run the `coldsync` binary and collect its JSON
//!   log events.
//!
//! External programs: `redis-server` and `moto_server` must be on `PATH`
//! (`scripts/install-deps.sh` installs them). Their locations can be overridden
//! with `COLDSYNC_TEST_REDIS_SERVER` and `COLDSYNC_TEST_MOTO_SERVER`.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use arrow_array::{
    ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/// Returns a port that was free on 127.0.0.1 a moment ago (bind `127.0.0.1:0`,
/// read the port, drop the listener). Another process may grab it before the
/// caller binds it, so callers must be ready to retry.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Polls `f` every 20ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn program(env_var: &str, default: &str) -> String {
    std::env::var(env_var)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

/// A private `redis-server` listening on `127.0.0.1:port`.
///
/// Started with `--save "" --appendonly no` (no persistence) and
/// `--enable-debug-command local`, working directory and log file
/// (`redis.log`) inside a temp dir. The process is killed and reaped on `Drop`
/// (also when a test panics); the temp dir is removed afterwards.
pub struct RedisServer {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    child: Child,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a fresh server on a free port. Panics (with the server log) if it
    /// does not answer `PING` within ~10s. Port clashes are retried with a new port.
    pub fn start() -> RedisServer {
        Self::start_with_args(&[])
    }

    /// Like [`RedisServer::start`] but appends `extra` to the `redis-server`
    /// command line (e.g. `&["--maxmemory", "10mb"]`, `&["--requirepass", "pw"]`;
    /// with `requirepass` the readiness check accepts a `NOAUTH` reply, but the
    /// helpers below do not authenticate: build your own client/URL then).
    pub fn start_with_args(extra: &[&str]) -> RedisServer {
        let bin = program("COLDSYNC_TEST_REDIS_SERVER", "redis-server");
        let dir = tempfile::Builder::new()
            .prefix("coldsync-redis-")
            .tempdir()
            .expect("create redis temp dir");
        let log_path = dir.path().join("redis.log");
        let mut failures = Vec::new();
        for _attempt in 0..5 {
            let port = free_port();
            let log = fs::File::create(&log_path).expect("create redis.log");
            let log_err = log.try_clone().expect("clone log handle");
            let port_s = port.to_string();
            let mut child = Command::new(&bin)
                .args(["--port", &port_s, "--bind", "127.0.0.1", "--save", ""])
                .args(["--appendonly", "no", "--enable-debug-command", "local"])
                .arg("--dir")
                .arg(dir.path())
                .args(extra)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot spawn `{bin}` ({e}); run scripts/install-deps.sh")
                });
            match wait_redis_ready(&mut child, port, Duration::from_secs(10)) {
                Ok(()) => return RedisServer { port, child, dir },
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    failures.push(format!(
                        "port {port}: {why}\n--- redis.log ---\n{}",
                        read_lossy(&log_path)
                    ));
                }
            }
        }
        panic!("redis-server did not start:\n{}", failures.join("\n"));
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A `redis::Client` for [`RedisServer::url`].
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("redis client")
    }

    /// A fresh synchronous connection (5s connect/read/write timeouts).
    pub fn connection(&self) -> redis::Connection {
        let con = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("connect to test redis");
        con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        con.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        con
    }

    /// Runs an arbitrary prepared command, e.g.
    /// `srv.query::<i64>(redis::cmd("HLEN").arg("k"))`. Panics on error.
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut con = self.connection();
        cmd.query(&mut con)
            .unwrap_or_else(|e| panic!("redis command {:?} failed: {e}", cmd_name(cmd)))
    }

    /// Generic escape hatch: `srv.cmd::<String>("SET", &["k", "v"])`. Panics on error.
    pub fn cmd<T: redis::FromRedisValue>(&self, name: &str, args: &[&str]) -> T {
        let mut c = redis::cmd(name);
        for a in args {
            c.arg(*a);
        }
        let mut con = self.connection();
        c.query(&mut con)
            .unwrap_or_else(|e| panic!("redis {name} {args:?} failed: {e}"))
    }

    /// `SET key value`.
    pub fn set(&self, key: &str, value: &str) {
        let _: String = self.cmd("SET", &[key, value]);
    }

    /// `GET key` (`None` if missing). Panics if the key holds a non-string value.
    pub fn get(&self, key: &str) -> Option<String> {
        self.cmd("GET", &[key])
    }

    /// `GET key` as raw bytes.
    pub fn get_bytes(&self, key: &str) -> Option<Vec<u8>> {
        self.cmd("GET", &[key])
    }

    /// `HGETALL key` (empty map if missing).
    pub fn hgetall(&self, key: &str) -> BTreeMap<String, String> {
        self.cmd("HGETALL", &[key])
    }

    /// `KEYS pattern` as a sorted set (fine for the small data sets of tests).
    pub fn keys(&self, pattern: &str) -> BTreeSet<String> {
        self.cmd("KEYS", &[pattern])
    }

    /// `TYPE key` (`"string"`, `"hash"`, `"none"`, ...).
    pub fn key_type(&self, key: &str) -> String {
        self.cmd("TYPE", &[key])
    }

    /// `PEXPIRETIME key`: absolute Unix expiry in ms, `-1` = no expiry, `-2` = no key.
    pub fn pexpiretime(&self, key: &str) -> i64 {
        self.cmd("PEXPIRETIME", &[key])
    }

    /// `PTTL key`: remaining ms, `-1` = no expiry, `-2` = no key.
    pub fn pttl(&self, key: &str) -> i64 {
        self.cmd("PTTL", &[key])
    }

    /// `DBSIZE` of db 0.
    pub fn dbsize(&self) -> u64 {
        self.cmd("DBSIZE", &[])
    }

    /// `FLUSHALL`.
    pub fn flushall(&self) {
        let _: String = self.cmd("FLUSHALL", &[]);
    }

    /// Contents of the server log so far (useful in assertion messages).
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("redis.log"))
    }

    /// The server's working directory (temp dir, removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// OS process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cmd_name(cmd: &redis::Cmd) -> String {
    cmd.args_iter()
        .next()
        .map(|a| match a {
            redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Arg::Cursor => "<cursor>".to_string(),
            // `Arg` is non-exhaustive in some redis versions.
            #[allow(unreachable_patterns)]
            _ => "?".to_string(),
        })
        .unwrap_or_default()
}

/// Waits until *our* child answers PING on `port`. The `INFO server` process_id
/// check guards against talking to another server that grabbed the port first.
fn wait_redis_ready(child: &mut Child, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut last = String::from("not started");
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("redis-server exited early with {status}"));
        }
        match probe_redis(&addr) {
            Ok(None) => return Ok(()),
            Ok(Some(pid)) if pid == child.id() => return Ok(()),
            Ok(Some(pid)) => {
                return Err(format!(
                    "port clash: another redis-server (pid {pid}) answers on {port}"
                ))
            }
            Err(e) => last = e,
        }
        thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "no PING answer within {timeout:?} (last error: {last})"
    ))
}

/// Raw RESP `PING` + `INFO server`. Returns the server's `process_id`, or
/// `None` if it answered `-NOAUTH` (password set: the pid cannot be checked).
fn probe_redis(addr: &SocketAddr) -> Result<Option<u32>, String> {
    let mut s =
        TcpStream::connect_timeout(addr, Duration::from_millis(200)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "connection closed after {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if text.starts_with("-NOAUTH") {
            return Ok(None);
        }
        if text.starts_with('-') {
            // e.g. -LOADING: up but not ready yet.
            return Err(text.lines().next().unwrap_or_default().to_string());
        }
        let Some(rest) = text.strip_prefix("+PONG\r\n") else {
            if text.len() >= 7 {
                return Err(format!("unexpected reply {text:?}"));
            }
            continue;
        };
        // Bulk string: $LEN\r\n<LEN bytes>\r\n
        let Some((len_line, body)) = rest.split_once("\r\n") else {
            continue;
        };
        let len: usize = len_line
            .strip_prefix('$')
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| format!("unexpected INFO reply {rest:?}"))?;
        if body.len() < len {
            continue;
        }
        let line = body
            .lines()
            .find(|l| l.starts_with("process_id:"))
            .ok_or("INFO server without process_id")?;
        let pid = line["process_id:".len()..].trim();
        return pid
            .parse::<u32>()
            .map(Some)
            .map_err(|e| format!("bad process_id {pid:?}: {e}"));
    }
}

// ---------------------------------------------------------------------------
// S3 (moto)
// ---------------------------------------------------------------------------

/// One `moto_server` (in-memory S3 mock) per test binary, see [`s3`].
///
/// Started as `moto_server -H 127.0.0.1 -p 0`: Werkzeug binds an OS-chosen free
/// port and logs ` * Running on http://127.0.0.1:PORT`, which we parse from the
/// log file, so there is no port race. Readiness = `GET /` answers 200.
///
/// Lifetime: statics are never dropped, so cleanup is done by a tiny watchdog
/// (`sh -c 'read; kill moto; rm -rf logdir'`) whose stdin is a pipe held open
/// by this process. When the test binary exits for any reason (even SIGKILL) the
/// kernel closes the pipe, `read` returns, and the watchdog kills moto and
/// removes its temp dir. No `atexit`, no extra crates.
pub struct S3Server {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// moto's process id.
    pub pid: u32,
    /// Directory holding `moto.log` (removed by the watchdog at exit).
    pub dir: PathBuf,
    moto: Mutex<Child>,
    watchdog: Mutex<Child>,
}

static S3: OnceLock<S3Server> = OnceLock::new();
static BUCKET_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The shared S3 mock of this test binary, started on first use (~2s).
pub fn s3() -> &'static S3Server {
    S3.get_or_init(S3Server::start)
}

impl S3Server {
    fn start() -> S3Server {
        let bin = program("COLDSYNC_TEST_MOTO_SERVER", "moto_server");
        let dir = tempfile::Builder::new()
            .prefix("coldsync-moto-")
            .tempdir()
            .expect("create moto temp dir")
            .keep();
        let log_path = dir.join("moto.log");
        let log = fs::File::create(&log_path).expect("create moto.log");
        let log_err = log.try_clone().expect("clone log handle");
        let mut moto = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn `{bin}` ({e}); run scripts/install-deps.sh"));
        let pid = moto.id();
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                "trap '' INT HUP TERM; read -r _ignored; \
                 kill -TERM \"$1\" 2>/dev/null; sleep 1; kill -KILL \"$1\" 2>/dev/null; \
                 rm -rf \"$2\"",
            )
            .arg("coldsync-moto-watchdog")
            .arg(pid.to_string())
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto watchdog (sh)");

        let fail = |moto: &mut Child, why: String| -> ! {
            let _ = moto.kill();
            let _ = moto.wait();
            panic!(
                "moto_server did not start: {why}\n--- moto.log ---\n{}",
                read_lossy(&log_path)
            );
        };

        // 1. Learn the port from the log.
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Some(p) = parse_werkzeug_port(&read_lossy(&log_path)) {
                break p;
            }
            if let Ok(Some(status)) = moto.try_wait() {
                fail(&mut moto, format!("exited early with {status}"));
            }
            if Instant::now() >= deadline {
                fail(
                    &mut moto,
                    "no 'Running on http://127.0.0.1:PORT' line within 60s".into(),
                );
            }
            thread::sleep(Duration::from_millis(50));
        };
        // 2. Wait until it serves HTTP.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match http_request(port, "GET", "/", &[]) {
                Ok((200, _)) => break,
                Ok((code, body)) => fail(&mut moto, format!("GET / returned {code}: {body}")),
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Err(e) => fail(&mut moto, format!("GET / failed: {e}")),
            }
        }
        S3Server {
            port,
            pid,
            dir,
            moto: Mutex::new(moto),
            watchdog: Mutex::new(watchdog),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Raw unsigned HTTP/1.1 request to moto, returns (status, body).
    pub fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        http_request(self.port, method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path} to moto failed: {e}"))
    }

    /// Creates bucket `name` (`PUT /name`), asserting HTTP 200.
    pub fn create_bucket(&self, name: &str) {
        let (code, body) = self.http("PUT", &format!("/{name}"), &[]);
        assert_eq!(code, 200, "create bucket {name}: HTTP {code}: {body}");
    }

    /// Creates and returns a bucket name unique within this process:
    /// `{prefix}-{pid}-{n}` (lower-cased; keep `prefix` short and DNS-safe).
    pub fn fresh_bucket(&self, prefix: &str) -> String {
        let n = BUCKET_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{}-{n}", prefix.to_ascii_lowercase(), std::process::id());
        self.create_bucket(&name);
        name
    }

    /// An opendal S3 operator for `bucket` (root `/`), path-style addressing,
    /// static credentials `test`/`test`, region `us-east-1`, no env/profile/IMDS lookup.
    pub fn operator(&self, bucket: &str) -> opendal::Operator {
        opendal::init_default_registry();
        opendal::Operator::via_iter("s3", self.opendal_config(bucket))
            .expect("build opendal s3 operator")
    }

    /// The key/values used by [`S3Server::operator`] (handy to build CLI configs).
    pub fn opendal_config(&self, bucket: &str) -> Vec<(String, String)> {
        [
            ("bucket", bucket.to_string()),
            ("endpoint", self.endpoint()),
            ("region", "us-east-1".to_string()),
            ("access_key_id", "test".to_string()),
            ("secret_access_key", "test".to_string()),
            ("disable_config_load", "true".to_string()),
            ("disable_ec2_metadata", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Standard AWS environment variables pointing at this mock (for `run_cli`).
    pub fn aws_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }

    /// moto's log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("moto.log"))
    }

    /// True if the moto process is still running.
    pub fn is_alive(&self) -> bool {
        matches!(self.moto.lock().unwrap().try_wait(), Ok(None))
    }

    /// Process id of the watchdog shell.
    pub fn watchdog_pid(&self) -> u32 {
        self.watchdog.lock().unwrap().id()
    }
}

fn parse_werkzeug_port(log: &str) -> Option<u16> {
    const NEEDLE: &str = "Running on http://127.0.0.1:";
    let start = log.find(NEEDLE)? + NEEDLE.len();
    let digits: String = log[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok().filter(|p| *p != 0)
}

/// Minimal HTTP/1.1 client (`Connection: close`), returns (status, body-as-text).
fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

// ---------------------------------------------------------------------------
// Parquet fixtures
// ---------------------------------------------------------------------------

/// Encodes `batch` as a Parquet file in memory with at most `row_group_rows`
/// rows per row group and the given compression (e.g. `Compression::SNAPPY`,
/// `Compression::UNCOMPRESSED`, `Compression::ZSTD(Default::default())`).
pub fn parquet_bytes(
    batch: &RecordBatch,
    row_group_rows: usize,
    compression: Compression,
) -> Vec<u8> {
    parquet_bytes_multi(std::slice::from_ref(batch), row_group_rows, compression)
}

/// Like [`parquet_bytes`] for several batches of the same schema (one file).
/// With an empty slice this panics (no schema); use an empty batch instead.
pub fn parquet_bytes_multi(
    batches: &[RecordBatch],
    row_group_rows: usize,
    compression: Compression,
) -> Vec<u8> {
    let schema = batches.first().expect("at least one batch").schema();
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .build();
    let mut w = ArrowWriter::try_new(Vec::new(), schema, Some(props)).expect("ArrowWriter");
    for b in batches {
        w.write(b).expect("write batch");
    }
    w.into_inner().expect("finish parquet")
}

/// Decodes a Parquet file (for assertions on what a test wrote or read back).
pub fn read_parquet_bytes(bytes: &[u8]) -> Vec<RecordBatch> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .expect("parquet footer")
        .build()
        .expect("parquet reader");
    reader.map(|b| b.expect("decode batch")).collect()
}

/// Writes `bytes` to `root/rel`, creating parent directories.
pub fn write_file(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Writes an empty `root/dir_rel/_SUCCESS` marker (`dir_rel` may be `""`).
pub fn write_success(root: &Path, dir_rel: &str) {
    write_file(root, &join_rel(dir_rel, "_SUCCESS"), b"");
}

/// Lists all regular files under `root` as sorted `/`-separated relative paths.
pub fn list_files(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap();
                let parts: Vec<_> = rel
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Joins two relative path fragments with `/`, ignoring empty ones.
pub fn join_rel(a: &str, b: &str) -> String {
    let a = a.trim_matches('/');
    let b = b.trim_matches('/');
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// Hive partition path: `partition_path("dt", "2026-11-20", &[("hour", "03")])`
/// == `"dt=2026-11-20/hour=03"`.
pub fn partition_path(col: &str, value: &str, sub: &[(&str, &str)]) -> String {
    let mut p = format!("{col}={value}");
    for (k, v) in sub {
        p.push_str(&format!("/{k}={v}"));
    }
    p
}

/// What a fixture file is, so tests can compute expectations
/// (only [`FileKind::Data`] files are valid Parquet that a loader should read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// A valid Parquet data file.
    Data,
    /// An empty `_SUCCESS` marker.
    Success,
    /// A Hadoop `.xxx.crc` checksum sibling (not Parquet).
    Checksum,
    /// Leftovers of failed / in-flight jobs (`_temporary/...`, `.hive-staging...`);
    /// NOT valid Parquet (some start with the `PAR1` magic to trap naive readers).
    Junk,
}

/// One file of a [`HiveTableFixture`].
#[derive(Clone, Debug)]
pub struct FixtureFile {
    pub kind: FileKind,
    pub bytes: Vec<u8>,
}

/// Where a Spark-style write puts its `_SUCCESS` marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuccessMarker {
    /// No marker (job still running or crashed).
    None,
    /// `<table>/<partition>/_SUCCESS` (job wrote straight into the partition dir).
    Partition,
    /// `<table>/_SUCCESS` (`df.write.partitionBy(..)` of the whole table).
    TableRoot,
}

/// Options of [`HiveTableFixture::spark_partition_with`].
#[derive(Clone, Debug)]
pub struct SparkOptions {
    /// Default [`SuccessMarker::Partition`].
    pub success: SuccessMarker,
    /// Write `.part-....crc` (and `._SUCCESS.crc`) siblings. Default true.
    pub crc: bool,
    /// Write `<partition>/_temporary/0/_temporary/attempt_.../part-00000.parquet` junk. Default true.
    pub temporary_junk: bool,
    /// Max rows per row group. Default 4.
    pub row_group_rows: usize,
}

impl Default for SparkOptions {
    fn default() -> Self {
        SparkOptions {
            success: SuccessMarker::Partition,
            crc: true,
            temporary_junk: true,
            row_group_rows: 4,
        }
    }
}

/// Options of [`HiveTableFixture::hive_partition_with`].
#[derive(Clone, Debug)]
pub struct HiveOptions {
    /// Write a `<partition>/.hive-staging_hive_.../-ext-10000/000000_0` garbage file. Default true.
    pub staging_junk: bool,
    /// Default `Compression::SNAPPY`.
    pub compression: Compression,
    /// Max rows per row group. Default 4.
    pub row_group_rows: usize,
}

impl Default for HiveOptions {
    fn default() -> Self {
        HiveOptions {
            staging_junk: true,
            compression: Compression::SNAPPY,
            row_group_rows: 4,
        }
    }
}

/// Default Spark job UUID used in part-file names.
pub const SPARK_JOB_UUID: &str = "5f0c6a8e-2b1d-4c3e-9a7f-0123456789ab";
/// Spark `_temporary` attempt dir name used for junk.
pub const SPARK_ATTEMPT: &str = "attempt_202611200301000000000_0000_m_000000_0";
/// Hive staging dir name used for junk.
pub const HIVE_STAGING_DIR: &str =
    ".hive-staging_hive_2026-11-20_03-15-42_123_4567890123456789012-1";
/// Contents of the `_temporary` junk file (starts with `PAR1` but has no footer).
pub const SPARK_TEMPORARY_JUNK: &[u8] =
    b"PAR1 truncated: leftover of a failed Spark task attempt\n";
/// Contents of the Hive staging junk file.
pub const HIVE_STAGING_JUNK: &[u8] = b"garbage from an unfinished hive INSERT OVERWRITE\n";

/// An in-memory Hive-partitioned table: a sorted map of
/// `relative path -> (kind, bytes)` that can be written to a local directory
/// ([`HiveTableFixture::write_local`]) or through an opendal operator
/// ([`HiveTableFixture::write_to`]).
///
/// All paths are relative to the fixture root and start with `table` (unless
/// `table` is empty). Adding a path twice replaces the earlier file.
///
/// Spark-style partition (`spark_partition`, defaults), for batch `i`:
/// ```text
/// <table>/<partition>/part-0000i-<job_uuid>-c000.snappy.parquet      Data (snappy)
/// <table>/<partition>/.part-0000i-<job_uuid>-c000.snappy.parquet.crc Checksum
/// <table>/<partition>/_SUCCESS                                       Success
/// <table>/<partition>/._SUCCESS.crc                                  Checksum
/// <table>/<partition>/_temporary/0/_temporary/<SPARK_ATTEMPT>/part-00000.parquet  Junk
/// ```
/// Hive-style partition (`hive_partition`, defaults), for batch `i`:
/// ```text
/// <table>/<partition>/00000i_0                                       Data
/// <table>/<partition>/<HIVE_STAGING_DIR>/-ext-10000/000000_0         Junk
/// ```
#[derive(Clone, Debug)]
pub struct HiveTableFixture {
    /// Table directory relative to the fixture root (e.g. `"warehouse/orders"`), may be `""`.
    pub table: String,
    /// UUID used in Spark part-file names (default [`SPARK_JOB_UUID`]).
    pub job_uuid: String,
    files: BTreeMap<String, FixtureFile>,
}

impl HiveTableFixture {
    /// Empty fixture for table directory `table` (may be `""`).
    pub fn new(table: &str) -> Self {
        HiveTableFixture {
            table: table.trim_matches('/').to_string(),
            job_uuid: SPARK_JOB_UUID.to_string(),
            files: BTreeMap::new(),
        }
    }

    /// `<table>/<rel>` (or `rel` if the table dir is empty).
    pub fn table_path(&self, rel: &str) -> String {
        join_rel(&self.table, rel)
    }

    /// Spark part-file name for batch index `i`.
    pub fn spark_file_name(&self, i: usize) -> String {
        format!("part-{i:05}-{}-c000.snappy.parquet", self.job_uuid)
    }

    /// Hive file name for batch index `i` (`000000_0`, `000001_0`, ...).
    pub fn hive_file_name(i: usize) -> String {
        format!("{i:06}_0")
    }

    /// Adds a file at `path` (relative to the fixture root, NOT table-prefixed).
    pub fn add_file(&mut self, path: &str, bytes: Vec<u8>, kind: FileKind) -> &mut Self {
        self.files.insert(
            path.trim_matches('/').to_string(),
            FixtureFile { kind, bytes },
        );
        self
    }

    /// Spark-style partition with [`SparkOptions::default`]: one part file per batch.
    /// `partition` is e.g. `"dt=2026-11-20"` or `"dt=20261120/hour=03"`
    /// (see [`partition_path`]). Empty `batches` = a partition with only markers.
    pub fn spark_partition(&mut self, partition: &str, batches: &[RecordBatch]) -> &mut Self {
        self.spark_partition_with(partition, batches, &SparkOptions::default())
    }

    /// Spark-style partition with explicit options.
    pub fn spark_partition_with(
        &mut self,
        partition: &str,
        batches: &[RecordBatch],
        opts: &SparkOptions,
    ) -> &mut Self {
        let pdir = self.table_path(partition);
        for (i, b) in batches.iter().enumerate() {
            let name = self.spark_file_name(i);
            let data = parquet_bytes(b, opts.row_group_rows, Compression::SNAPPY);
            if opts.crc {
                let crc = fake_crc(&data);
                self.add_file(
                    &join_rel(&pdir, &format!(".{name}.crc")),
                    crc,
                    FileKind::Checksum,
                );
            }
            self.add_file(&join_rel(&pdir, &name), data, FileKind::Data);
        }
        let success_dir = match opts.success {
            SuccessMarker::None => None,
            SuccessMarker::Partition => Some(pdir.clone()),
            SuccessMarker::TableRoot => Some(self.table.clone()),
        };
        if let Some(d) = success_dir {
            self.add_file(&join_rel(&d, "_SUCCESS"), Vec::new(), FileKind::Success);
            if opts.crc {
                self.add_file(
                    &join_rel(&d, "._SUCCESS.crc"),
                    fake_crc(&[]),
                    FileKind::Checksum,
                );
            }
        }
        if opts.temporary_junk {
            let junk = join_rel(
                &pdir,
                &format!("_temporary/0/_temporary/{SPARK_ATTEMPT}/part-00000.parquet"),
            );
            self.add_file(&junk, SPARK_TEMPORARY_JUNK.to_vec(), FileKind::Junk);
        }
        self
    }

    /// Hive-style partition with [`HiveOptions::default`]: files `000000_0`, `000001_0`, ...
    pub fn hive_partition(&mut self, partition: &str, batches: &[RecordBatch]) -> &mut Self {
        self.hive_partition_with(partition, batches, &HiveOptions::default())
    }

    /// Hive-style partition with explicit options.
    pub fn hive_partition_with(
        &mut self,
        partition: &str,
        batches: &[RecordBatch],
        opts: &HiveOptions,
    ) -> &mut Self {
        let pdir = self.table_path(partition);
        for (i, b) in batches.iter().enumerate() {
            let data = parquet_bytes(b, opts.row_group_rows, opts.compression);
            self.add_file(
                &join_rel(&pdir, &Self::hive_file_name(i)),
                data,
                FileKind::Data,
            );
        }
        if opts.staging_junk {
            let junk = join_rel(&pdir, &format!("{HIVE_STAGING_DIR}/-ext-10000/000000_0"));
            self.add_file(&junk, HIVE_STAGING_JUNK.to_vec(), FileKind::Junk);
        }
        self
    }

    /// Adds `<table>/_SUCCESS`.
    pub fn table_success(&mut self) -> &mut Self {
        let p = self.table_path("_SUCCESS");
        self.add_file(&p, Vec::new(), FileKind::Success)
    }

    /// All files, sorted by path.
    pub fn files(&self) -> &BTreeMap<String, FixtureFile> {
        &self.files
    }

    /// All paths, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// Sorted paths of files of `kind`.
    pub fn paths_of(&self, kind: FileKind) -> Vec<String> {
        self.files
            .iter()
            .filter(|(_, f)| f.kind == kind)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Sorted paths of the valid Parquet data files.
    pub fn data_files(&self) -> Vec<String> {
        self.paths_of(FileKind::Data)
    }

    /// Total bytes of the data files whose path starts with `prefix`.
    pub fn data_bytes_under(&self, prefix: &str) -> u64 {
        self.files
            .iter()
            .filter(|(p, f)| f.kind == FileKind::Data && p.starts_with(prefix))
            .map(|(_, f)| f.bytes.len() as u64)
            .sum()
    }

    /// Writes every file under `root`.
    pub fn write_local(&self, root: &Path) {
        for (p, f) in &self.files {
            write_file(root, p, &f.bytes);
        }
    }

    /// Writes every file through `op` (paths relative to the operator root).
    pub async fn write_to(&self, op: &opendal::Operator) {
        for (p, f) in &self.files {
            op.write(p, f.bytes.clone())
                .await
                .unwrap_or_else(|e| panic!("opendal write {p}: {e}"));
        }
    }
}

/// Bytes that look like a Hadoop `.crc` file (`crc\0` + chunk size + a checksum);
/// not a real CRC, just plausible non-Parquet content.
fn fake_crc(data: &[u8]) -> Vec<u8> {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    let mut out = b"crc\0".to_vec();
    out.extend_from_slice(&512u32.to_be_bytes());
    out.extend_from_slice(&h.to_be_bytes());
    out
}

// ---------------------------------------------------------------------------
// orders_batch
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

/// Path of the `coldsync` binary built by cargo for this test run.
pub fn coldsync_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coldsync"))
}

/// Result of [`run_cli`].
#[derive(Clone, Debug)]
pub struct CliOutput {
    /// Exit code; `-1` if killed by a signal (or by the timeout).
    pub status_code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Every stdout line, then every stderr line, that parses as a JSON object.
    pub events: Vec<Value>,
}

/// Event name of a JSON log line: `v["event"]` or `v["fields"]["event"]` (string).
pub fn event_name(v: &Value) -> Option<&str> {
    event_field(v, "event").and_then(Value::as_str)
}

/// A field of a JSON log line, looked up at top level first, then under `fields`
/// (tracing-subscriber's JSON layout puts event fields under `"fields"`).
pub fn event_field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key)
        .or_else(|| v.get("fields").and_then(|f| f.get(key)))
}

impl CliOutput {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.status_code == 0
    }

    /// First event named `name` (see [`event_name`]).
    pub fn event(&self, name: &str) -> Option<&Value> {
        self.events.iter().find(|v| event_name(v) == Some(name))
    }

    /// Last event named `name`.
    pub fn last_event(&self, name: &str) -> Option<&Value> {
        self.events
            .iter()
            .rev()
            .find(|v| event_name(v) == Some(name))
    }

    /// All events named `name`, in output order.
    pub fn events_named(&self, name: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|v| event_name(v) == Some(name))
            .collect()
    }

    /// Names of all events, in order (events without a name are skipped).
    pub fn event_names(&self) -> Vec<&str> {
        self.events.iter().filter_map(event_name).collect()
    }

    /// Human-readable dump for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status_code, self.stdout, self.stderr
        )
    }

    /// Panics with [`CliOutput::dump`] unless the exit code is 0.
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "coldsync failed:\n{}", self.dump());
        self
    }
}

/// Default timeout of [`run_cli`].
pub const CLI_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `coldsync ARGS` with extra environment `envs` (inherits the rest of the
/// environment), stdin `/dev/null`, and a [`CLI_TIMEOUT`] (killed -> panic).
pub fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> CliOutput {
    run_cli_with_timeout(args, envs, CLI_TIMEOUT)
}

/// [`run_cli`] with an explicit timeout; on timeout the process is killed and
/// this panics with the output collected so far.
pub fn run_cli_with_timeout(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> CliOutput {
    let mut cmd = Command::new(coldsync_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn coldsync binary");
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err_t = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait coldsync") {
            break s;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait killed coldsync");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
    let events = stdout
        .lines()
        .chain(stderr.lines())
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(Value::is_object)
        .collect();
    let out = CliOutput {
        status_code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        events,
    };
    if timed_out {
        panic!(
            "coldsync {args:?} timed out after {timeout:?}:\n{}",
            out.dump()
        );
    }
    out
}

/// Config text: an fs source at `root`, the test Redis, `retention_days = 30`, then `tables`.
pub fn fs_config_text(root: &Path, redis: &RedisServer, tables: &str) -> String {
    format!(
        "[source]\nscheme = \"fs\"\nroot = \"{}\"\n\n[redis]\nurl = \"redis://127.0.0.1:{}/0\"\n\n[defaults]\nretention_days = 30\n\n{tables}",
        root.display(),
        redis.port
    )
}

/// An engine on [`fs_config_text`]; panics with the text when the config is invalid.
pub async fn fs_engine(root: &Path, redis: &RedisServer, tables: &str) -> coldsync::run::Engine {
    let text = fs_config_text(root, redis, tables);
    let config = coldsync::config::Config::parse(&text, &std::collections::HashMap::new())
        .unwrap_or_else(|e| panic!("config invalid: {e}\n{text}"));
    match coldsync::run::Engine::connect(config).await {
        Ok(engine) => engine,
        Err(e) => panic!("engine connect failed: {e}"),
    }
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
