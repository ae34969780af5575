//! Child processes a test waits on, with every wait bounded: past its deadline the child is
//! killed and the test fails with what the child printed so far, so a silent or hung child can
//! never block a test forever.
//!
//! * [`output_within`]: run a command to completion (like `Command::output`) within a timeout.
//! * [`WatchedChild`]: a long-running child (the daemon) whose stderr is read line by line, each
//!   read and the exit wait bounded by a deadline; killed on drop.
//!
//! The pipes are read by threads that hand over what they read as it comes, so a wait on a
//! channel can time out, and what the child printed is at hand when it does.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often a wait for a child's exit looks again.
const POLL: Duration = Duration::from_millis(10);

/// After a child has exited (or was killed), how long its pipes may stay open: a grandchild that
/// inherited them could keep them open for ever.
const PIPE_GRACE: Duration = Duration::from_secs(5);

/// A thread reading one of a child's pipes to its end; what it read so far is readable at any time.
struct PipeReader {
    bytes: Arc<Mutex<Vec<u8>>>,
    closed: Receiver<()>,
}

impl PipeReader {
    fn start(mut pipe: impl Read + Send + 'static) -> PipeReader {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let (closed_tx, closed) = mpsc::channel();
        let sink = Arc::clone(&bytes);
        thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
            let _ = closed_tx.send(());
        });
        PipeReader { bytes, closed }
    }

    /// Everything read once the pipe closes, or what was read by `deadline`.
    fn finish(self, deadline: Instant) -> Vec<u8> {
        let _ = self
            .closed
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let bytes = self.bytes.lock().unwrap();
        bytes.clone()
    }
}

/// Waits until `child` exits; past `deadline` kills it. `Err` carries the status of the killed child.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<ExitStatus, ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Err(child.wait().expect("wait for killed child"));
        }
        thread::sleep(POLL);
    }
}

/// Runs `cmd` to completion with `stdin`, stdout and stderr captured. Past `timeout` the child is
/// killed and this panics with what it printed so far.
pub fn output_within(cmd: &mut Command, stdin: Stdio, timeout: Duration) -> Output {
    match try_output_within(cmd, stdin, timeout) {
        Ok(output) => output,
        Err(output) => panic!(
            "{cmd:?} did not finish within {timeout:?}, killed it\n{}",
            output_dump(&output)
        ),
    }
}

/// [`output_within`] that returns, instead of panicking, when the child had to be killed:
/// `Err` holds its status and what it printed until then.
pub fn try_output_within(
    cmd: &mut Command,
    stdin: Stdio,
    timeout: Duration,
) -> Result<Output, Output> {
    let deadline = Instant::now() + timeout;
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    let stdout = PipeReader::start(child.stdout.take().expect("piped stdout"));
    let stderr = PipeReader::start(child.stderr.take().expect("piped stderr"));
    let exited = wait_until(&mut child, deadline);
    let pipes_deadline = Instant::now() + PIPE_GRACE;
    let output = |status| Output {
        status,
        stdout: stdout.finish(pipes_deadline),
        stderr: stderr.finish(pipes_deadline),
    };
    match exited {
        Ok(status) => Ok(output(status)),
        Err(status) => Err(output(status)),
    }
}

/// Exit status, stdout and stderr of `output` as text, for failure messages.
fn output_dump(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A running child whose stderr is read line by line, every wait bounded by a deadline.
///
/// Past a deadline the child is killed and the test panics with every line it printed so far.
/// Dropping it kills the child too (a failing test never leaves it running).
pub struct WatchedChild {
    /// Names the child in failure messages.
    what: String,
    child: Child,
    lines: Receiver<std::io::Result<String>>,
    /// Every line received so far, in order.
    printed: Vec<String>,
}

impl WatchedChild {
    /// Spawns `cmd` with stderr piped (stdin and stdout as the caller set them on `cmd`).
    pub fn spawn(what: &str, cmd: &mut Command) -> WatchedChild {
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {what} ({cmd:?}): {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        WatchedChild {
            what: what.to_string(),
            child,
            lines,
            printed: Vec::new(),
        }
    }

    /// OS process id of the child.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next line the child writes to stderr, or `None` once stderr is closed. Panics (after
    /// killing the child) if no line comes before `deadline`, or if reading fails.
    pub fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok(Ok(line)) => {
                self.printed.push(line.clone());
                Some(line)
            }
            Ok(Err(e)) => self.fail(&format!("reading its stderr failed: {e}")),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => self.fail("printed no line before the deadline"),
        }
    }

    /// Every line until stderr closes; panics (after killing the child) if it is still open at
    /// `deadline`.
    pub fn remaining_lines(&mut self, deadline: Instant) -> Vec<String> {
        let mut rest = Vec::new();
        while let Some(line) = self.next_line(deadline) {
            rest.push(line);
        }
        rest
    }

    /// Waits for the child to exit; panics (after killing it) if it still runs at `deadline`.
    pub fn wait(&mut self, deadline: Instant) -> ExitStatus {
        match wait_until(&mut self.child, deadline) {
            Ok(status) => status,
            Err(_) => self.fail("did not exit before the deadline"),
        }
    }

    /// Kills the child and panics with `why` and every line it printed.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Lines already sent but not yet received belong to what it printed, too.
        self.printed
            .extend(self.lines.try_iter().filter_map(Result::ok));
        panic!(
            "{} (pid {}) {why}, killed it; its stderr so far:\n{}",
            self.what,
            self.child.id(),
            self.printed.join("\n")
        );
    }
}

impl Drop for WatchedChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
