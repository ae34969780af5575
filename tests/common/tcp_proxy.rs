//! A small fault-injecting TCP proxy for Redis tests: it relays every connection to an upstream
//! port on 127.0.0.1 and can **pause** (hold every byte, both ways, until resumed), **cut** (close
//! every open connection at once) or **delay** (sleep before relaying each chunk) the traffic.
//!
//! Faults can also be triggered by what the client sends: [`TcpProxy::on_client_bytes`] calls a
//! hook each time a byte pattern (say `}:partitions`, the ledger key) passes from a client, on the
//! relay thread and *before* that chunk is forwarded, and the hook's [`Verdict`] decides the
//! chunk's fate. So a test can stall exactly the ledger write of the first partition, or issue
//! `CLIENT PAUSE` from another client just before the run's ledger read reaches Redis.
//!
//! Threads, no async: each connection has one relay thread per direction. A paused relay keeps
//! the chunk it holds and reads nothing more, so what a client sent during a pause waits in the
//! socket buffers and reaches Redis on resume, even from a client that gave up and closed its
//! socket meanwhile (a late write, as a busy or stalled Redis really delivers it).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// What becomes of the chunk in which a hook's pattern was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Relay it (after any pause the hook started ends).
    Forward,
    /// Pause the proxy, then relay it on resume.
    Pause,
    /// Pause the proxy for this long (another thread resumes it), then relay it.
    PauseFor(Duration),
    /// Drop it and cut every open connection.
    Cut,
    /// Keep it aside ([`TcpProxy::captured`]), then cut every open connection: a write lost in
    /// the network, which the test can deliver late itself.
    Capture,
}

/// A hook on client bytes: called with the 1-based occurrence number of its pattern.
type Hook = Box<dyn FnMut(usize) -> Verdict + Send>;

struct Watch {
    pattern: Vec<u8>,
    seen: usize,
    hook: Hook,
}

#[derive(Default)]
struct State {
    paused: bool,
    delay: Duration,
}

struct Shared {
    upstream: u16,
    state: Mutex<State>,
    resumed: Condvar,
    watches: Mutex<Vec<Watch>>,
    /// Both sockets of every connection, to cut them.
    open: Mutex<Vec<TcpStream>>,
    /// Chunks kept aside by [`Verdict::Capture`].
    captured: Mutex<Vec<Vec<u8>>>,
    accepted: AtomicUsize,
    stopping: AtomicBool,
}

impl Shared {
    /// Blocks while paused; then sleeps the configured delay.
    fn wait_until_flowing(&self) {
        let mut state = self.state.lock().unwrap();
        while state.paused {
            state = self.resumed.wait(state).unwrap();
        }
        let delay = state.delay;
        drop(state);
        if !delay.is_zero() {
            thread::sleep(delay);
        }
    }

    fn set_paused(&self, paused: bool) {
        self.state.lock().unwrap().paused = paused;
        self.resumed.notify_all();
    }

    fn cut(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Runs the hooks on a client chunk (`window` holds the tail of the previous chunk, so a
    /// pattern split across two reads is still seen); the strongest verdict wins.
    fn inspect(&self, window: &mut Vec<u8>, chunk: &[u8]) -> Verdict {
        let mut watches = self.watches.lock().unwrap();
        if watches.is_empty() {
            return Verdict::Forward;
        }
        let carried = window.len();
        window.extend_from_slice(chunk);
        let mut verdict = Verdict::Forward;
        for watch in watches.iter_mut() {
            let pattern = &watch.pattern;
            if pattern.is_empty() || window.len() < pattern.len() {
                continue;
            }
            // Occurrences that end inside the new chunk (those ending in the carried tail were
            // counted with the previous chunk).
            for end in pattern.len()..=window.len() {
                if end > carried && &window[end - pattern.len()..end] == pattern.as_slice() {
                    watch.seen += 1;
                    let said = (watch.hook)(watch.seen);
                    verdict = match (said, verdict) {
                        (Verdict::Capture, _) | (_, Verdict::Capture) => Verdict::Capture,
                        (Verdict::Cut, _) | (_, Verdict::Cut) => Verdict::Cut,
                        (Verdict::Forward, held) => held,
                        (pause, _) => pause,
                    };
                }
            }
        }
        let keep = watches.iter().map(|w| w.pattern.len()).max().unwrap_or(1) - 1;
        let drop_front = window.len().saturating_sub(keep);
        window.drain(..drop_front);
        verdict
    }
}

/// A proxy on a free loopback port in front of `127.0.0.1:<upstream>`; stops (and cuts every
/// connection) when dropped.
pub struct TcpProxy {
    /// The proxy's port on 127.0.0.1.
    pub port: u16,
    shared: Arc<Shared>,
}

impl TcpProxy {
    /// Starts relaying connections on a free port to `127.0.0.1:<upstream>`.
    pub fn start(upstream: u16) -> TcpProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind proxy port");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream,
            state: Mutex::new(State::default()),
            resumed: Condvar::new(),
            watches: Mutex::new(Vec::new()),
            open: Mutex::new(Vec::new()),
            captured: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                accepting.accepted.fetch_add(1, Ordering::SeqCst);
                relay_connection(&accepting, client);
            }
        });
        TcpProxy { port, shared }
    }

    /// `redis://127.0.0.1:<proxy port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Holds every byte, both ways, until [`TcpProxy::resume`]. New connections are accepted
    /// (and connected upstream) but relay nothing either.
    pub fn pause(&self) {
        self.shared.set_paused(true);
    }

    /// Relays again, first what was held.
    pub fn resume(&self) {
        self.shared.set_paused(false);
    }

    /// Resumes after `after`, from another thread.
    pub fn resume_after(&self, after: Duration) {
        let shared = self.shared.clone();
        thread::spawn(move || {
            thread::sleep(after);
            shared.set_paused(false);
        });
    }

    /// Closes every open connection (both sides) at once; new connections are relayed as usual.
    pub fn cut(&self) {
        self.shared.cut();
    }

    /// Sleeps `delay` before relaying each chunk, both ways (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.state.lock().unwrap().delay = delay;
    }

    /// Calls `hook` with the occurrence number (1-based) each time `pattern` passes from a
    /// client, before the chunk holding it is relayed; the hook's [`Verdict`] decides the chunk's
    /// fate. The hook runs on a relay thread: it may block briefly (say, to send `CLIENT PAUSE`
    /// straight to Redis) but must not call this proxy's `pause`/`cut` itself (return a verdict).
    pub fn on_client_bytes(
        &self,
        pattern: &[u8],
        hook: impl FnMut(usize) -> Verdict + Send + 'static,
    ) {
        self.shared.watches.lock().unwrap().push(Watch {
            pattern: pattern.to_vec(),
            seen: 0,
            hook: Box::new(hook),
        });
    }

    /// The chunks kept aside by [`Verdict::Capture`], in order.
    pub fn captured(&self) -> Vec<Vec<u8>> {
        self.shared.captured.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.set_paused(false);
        self.shared.cut();
        // Wakes the accept loop so that it sees `stopping`.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

/// Connects `client` upstream and starts its two relay threads (a failed upstream connect just
/// closes the client, as a restarting Redis would refuse it).
fn relay_connection(shared: &Arc<Shared>, client: TcpStream) {
    let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, shared.upstream)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    {
        let mut open = shared.open.lock().unwrap();
        open.push(client.try_clone().expect("clone client socket"));
        open.push(server.try_clone().expect("clone server socket"));
    }
    for (from, to, from_client) in [
        (
            client.try_clone().unwrap(),
            server.try_clone().unwrap(),
            true,
        ),
        (server, client, false),
    ] {
        let shared = shared.clone();
        thread::spawn(move || relay(&shared, from, to, from_client));
    }
}

/// Relays `from` to `to` chunk by chunk until either side closes (or is cut); then closes both.
fn relay(shared: &Arc<Shared>, mut from: TcpStream, mut to: TcpStream, from_client: bool) {
    let mut chunk = [0u8; 16 * 1024];
    let mut window = Vec::new();
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if from_client {
            match shared.inspect(&mut window, &chunk[..n]) {
                Verdict::Forward => {}
                Verdict::Pause => shared.set_paused(true),
                Verdict::PauseFor(pause) => {
                    shared.set_paused(true);
                    let resumer = shared.clone();
                    thread::spawn(move || {
                        thread::sleep(pause);
                        resumer.set_paused(false);
                    });
                }
                Verdict::Cut => {
                    shared.cut();
                    break;
                }
                Verdict::Capture => {
                    shared.captured.lock().unwrap().push(chunk[..n].to_vec());
                    shared.cut();
                    break;
                }
            }
        }
        shared.wait_until_flowing();
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    // Half-close: what the other direction still carries (replies to what was relayed) goes on.
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
