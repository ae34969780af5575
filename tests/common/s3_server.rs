//! One in-memory S3 server (`moto_server`) per test binary, shared by its tests, with an opendal
//! operator and the AWS environment pointing at it.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::{program, read_lossy};

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

/// The `[source]` section of a config reading `bucket` on the S3 server at `endpoint`, the
/// credentials in the environment variables `key_var` and `secret_var`, with opendal's
/// `retry_attempts` and `timeout_secs`.
pub fn s3_source_section(
    endpoint: &str,
    bucket: &str,
    (key_var, secret_var): (&str, &str),
    retry_attempts: usize,
    timeout_secs: u64,
) -> String {
    format!(
        r#"[source]
scheme = "s3"
bucket = "{bucket}"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id_env = "{key_var}"
secret_access_key_env = "{secret_var}"
disable_config_load = true
disable_ec2_metadata = true
retry_attempts = {retry_attempts}
timeout_secs = {timeout_secs}
"#
    )
}
