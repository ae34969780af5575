//! A private `redis-server` per test: started on a free loopback port, killed on drop, with
//! synchronous helpers to inspect what a test wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{free_port, program, read_lossy};

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
