//! A small HTTP/1.1 proxy that injects object-store faults: started by a test on a free loopback
//! port in front of an HTTP server (moto), it forwards each request on a fresh upstream
//! connection, unless the test's fault script says to answer `503 SlowDown` instead, or to cut
//! the connection in the middle of the response body.
//!
//! ```ignore
//! let proxy = HttpFaultProxy::start(s3().port);
//! proxy.script(Requests::ObjectReads, &[(2, Fault::Unavailable), (1, Fault::CutBody)], Fault::None);
//! // ... point the S3 endpoint at proxy.endpoint() ...
//! assert_eq!(proxy.injected(), 3);
//! ```
//!
//! Every request is logged ([`HttpFaultProxy::requests`]) with the fault it got, so a test can
//! check that its faults really happened. Threads, not tokio: the proxy serves a child process
//! (the CLI) as well as the test's own runtime.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the proxy does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward it and relay the whole response.
    None,
    /// Answer `503 Service Unavailable` with S3's `SlowDown` error, without forwarding.
    Unavailable,
    /// Forward it, relay the response head and half of its body, then close the connection.
    CutBody,
}

/// Which requests a fault script applies to (the others are forwarded untouched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requests {
    /// `GET /bucket/key...`: reads of objects (footers, pages), not listings (`GET /bucket?...`).
    ObjectReads,
    /// Every request.
    All,
}

impl Requests {
    /// True when `request` is one of these.
    pub fn matches_request(self, request: &ProxiedRequest) -> bool {
        self.matches(&request.method, &request.target)
    }

    fn matches(self, method: &str, target: &str) -> bool {
        match self {
            Requests::All => true,
            Requests::ObjectReads => {
                let path = target.split('?').next().unwrap_or("");
                method == "GET" && path.trim_start_matches('/').contains('/')
            }
        }
    }
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct ProxiedRequest {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The request target, e.g. `/bucket/orders/dt=2026-11-20/part-0?x-id=GetObject`.
    pub target: String,
    /// What the proxy did with it.
    pub fault: Fault,
}

struct Script {
    requests: Requests,
    steps: VecDeque<(usize, Fault)>,
    then: Fault,
}

impl Script {
    fn next(&mut self, method: &str, target: &str) -> Fault {
        if !self.requests.matches(method, target) {
            return Fault::None;
        }
        while let Some((count, fault)) = self.steps.front_mut() {
            if *count > 0 {
                *count -= 1;
                return *fault;
            }
            self.steps.pop_front();
        }
        self.then
    }
}

struct State {
    upstream: u16,
    script: Mutex<Script>,
    log: Mutex<Vec<ProxiedRequest>>,
}

/// The proxy; its listener thread serves until the test process ends.
pub struct HttpFaultProxy {
    /// Port on 127.0.0.1.
    pub port: u16,
    state: Arc<State>,
}

impl HttpFaultProxy {
    /// Starts a proxy to `127.0.0.1:upstream` that forwards everything (no faults yet).
    pub fn start(upstream: u16) -> HttpFaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(State {
            upstream,
            script: Mutex::new(Script {
                requests: Requests::All,
                steps: VecDeque::new(),
                then: Fault::None,
            }),
            log: Mutex::new(Vec::new()),
        });
        let shared = Arc::clone(&state);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let state = Arc::clone(&shared);
                thread::spawn(move || {
                    let _ = serve(client, &state);
                });
            }
        });
        HttpFaultProxy { port, state }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on, the requests matching `requests` get the faults of `steps` in order (`(n,
    /// fault)`: the next `n` of them get `fault`), then `then` each.
    pub fn script(&self, requests: Requests, steps: &[(usize, Fault)], then: Fault) {
        *self.state.script.lock().unwrap() = Script {
            requests,
            steps: steps.iter().copied().collect(),
            then,
        };
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.state.log.lock().unwrap().clone()
    }

    /// Requests that got `fault`.
    pub fn count(&self, fault: Fault) -> usize {
        self.requests().iter().filter(|r| r.fault == fault).count()
    }

    /// Requests that got a fault (not forwarded whole).
    pub fn injected(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.fault != Fault::None)
            .count()
    }
}

/// Serves one client connection, request after request, until it closes (or a fault cuts it).
fn serve(mut client: TcpStream, state: &State) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut pending = Vec::new();
    loop {
        let Some((head, body)) = read_request(&mut client, &mut pending)? else {
            return Ok(());
        };
        let request_line = head.lines().next().unwrap_or("").to_string();
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let fault = state.script.lock().unwrap().next(&method, &target);
        state.log.lock().unwrap().push(ProxiedRequest {
            method: method.clone(),
            target,
            fault,
        });
        if fault == Fault::Unavailable {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                        <Message>Please reduce your request rate.</Message></Error>";
            let response = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            client.write_all(response.as_bytes())?;
            continue;
        }
        let response = forward(state.upstream, &head, &body)?;
        if fault == Fault::CutBody {
            let body_start = find(&response, b"\r\n\r\n").map_or(response.len(), |i| i + 4);
            let cut = body_start + (response.len() - body_start) / 2;
            client.write_all(&response[..cut])?;
            client.flush()?;
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        client.write_all(&response)?;
        if method == "HEAD" || response_closes(&response) {
            let _ = client.shutdown(Shutdown::Write);
            return Ok(());
        }
    }
}

/// Sends the request upstream with `Connection: close` and reads the whole response.
fn forward(upstream: u16, head: &str, body: &[u8]) -> io::Result<Vec<u8>> {
    let mut server = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream))?;
    server.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            request.push_str(line);
            request.push_str("\r\n");
        }
    }
    request.push_str("Connection: close\r\n\r\n");
    server.write_all(request.as_bytes())?;
    server.write_all(body)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    Ok(response)
}

/// True when the response tells the client the connection ends after it.
fn response_closes(response: &[u8]) -> bool {
    let head_end = find(response, b"\r\n\r\n").unwrap_or(response.len());
    String::from_utf8_lossy(&response[..head_end])
        .to_ascii_lowercase()
        .contains("\r\nconnection: close")
}

/// Reads one request (head and `Content-Length` body); `None` when the client closed first.
/// `pending` keeps bytes read past the request for the next one.
fn read_request(
    client: &mut TcpStream,
    pending: &mut Vec<u8>,
) -> io::Result<Option<(String, Vec<u8>)>> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(pending, b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        pending.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while pending.len() < head_end + length {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        pending.extend_from_slice(&chunk[..n]);
    }
    let body = pending[head_end..head_end + length].to_vec();
    pending.drain(..head_end + length);
    Ok(Some((head, body)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
