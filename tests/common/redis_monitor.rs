//! [`RedisMonitor`]: `redis-cli MONITOR` on a test's Redis, to see exactly which commands a run
//! sent (a no-op run must send none on a data key).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::RedisServer;

/// `redis-cli MONITOR` on `redis` while it lives: every command the server executes.
pub struct RedisMonitor {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl RedisMonitor {
    /// Starts monitoring `redis`; returns once the monitor is connected.
    pub fn start(redis: &RedisServer) -> RedisMonitor {
        let mut child = Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "monitor"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli monitor (run scripts/install-deps.sh)");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("redis-cli monitor answers");
        assert_eq!(first, "OK");
        RedisMonitor { child, lines }
    }

    /// The commands seen so far that name a key matching `prefix` (after a marker command, so
    /// that everything the run sent has arrived).
    pub fn commands_on(self, redis: &RedisServer, prefix: &str) -> Vec<String> {
        let marker = format!("monitor-marker-{}", std::process::id());
        let _: Option<String> = redis.cmd("GET", &[&marker]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the marker reaches the monitor");
            if line.contains(&marker) {
                break;
            }
            if line.contains(&format!("\"{prefix}")) {
                seen.push(line);
            }
        }
        seen
    }
}

impl Drop for RedisMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
