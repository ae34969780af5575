//! `url` pointing at a port that is not Redis (or a hostile one): the built binary must exit 1
//! within seconds with a clear error, never abort, hang or eat memory. Each "server" is a small
//! TCP listener on a free loopback port, started by the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a fake server does with each connection.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Answers like a web server.
    Http,
    /// Sends a header and then nothing.
    Sends(&'static [u8]),
    /// Sends a line that never ends.
    EndlessLine,
    /// Accepts and never answers.
    Silent,
}

/// Starts a listener on a free loopback port; every connection is served by `behaviour` on its
/// own thread until the client goes away.
fn fake_server(behaviour: Behaviour) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || serve(stream, behaviour));
        }
    });
    port
}

fn serve(mut stream: TcpStream, behaviour: Behaviour) {
    let drain = |mut stream: TcpStream| {
        let mut buf = [0u8; 4096];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    };
    match behaviour {
        Behaviour::Http => {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
        Behaviour::Sends(bytes) => {
            let _ = stream.write_all(bytes);
            drain(stream);
        }
        Behaviour::EndlessLine => {
            let _ = stream.write_all(b"+");
            let chunk = [b'a'; 64 * 1024];
            while stream.write_all(&chunk).is_ok() {}
        }
        Behaviour::Silent => drain(stream),
    }
}

/// Runs the binary; kills it (and fails the test) if it runs past 30 s.
fn coldsync(config: &Path, args: &[&str]) -> (i32, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_coldsync"))
        .arg("--config")
        .arg(config)
        .args(["--log-format", "json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("coldsync {args:?} still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    // A signal (an abort) has no exit code.
    (status.code().unwrap_or(-1), output, started.elapsed())
}

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let root = dir.join("warehouse");
    std::fs::create_dir_all(root.join("orders")).unwrap();
    let path = dir.join("coldsync.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nscheme = \"fs\"\nroot = {:?}\n\n[redis]\nurl = \"redis://127.0.0.1:{port}/0\"\n\
             timeout_secs = 2\nretry_attempts = 1\n\n[defaults]\nretention_days = 30\n\n\
             [[tables]]\nname = \"orders\"\npath = \"orders\"\nkey = \"ord:{{order_id}}\"\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_port_that_is_not_redis_fails_fast_and_clearly() {
    let cases: [(Behaviour, &str); 5] = [
        (Behaviour::Http, "does not speak the Redis protocol"),
        (Behaviour::Sends(b"*9999999999\r\n"), "9999999999 elements"),
        (Behaviour::Sends(b"$99999999999\r\n"), "99999999999 bytes"),
        (Behaviour::EndlessLine, "does not speak the Redis protocol"),
        (Behaviour::Silent, "did not reply within 2s"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (behaviour, expected) in cases {
        let port = fake_server(behaviour);
        let config = write_config(dir.path(), port);
        for args in [
            &["check", "--connect"][..],
            &["run", "--as-of", "2026-11-22"][..],
        ] {
            let (code, output, elapsed) = coldsync(&config, args);
            let context = format!("{behaviour:?} {args:?} after {elapsed:?}:\n{output}");
            assert_eq!(code, 1, "{context}");
            assert!(output.contains("startup_failed"), "{context}");
            assert!(
                output.contains(&format!(
                    "cannot connect to redis at redis://127.0.0.1:{port}/0"
                )),
                "{context}"
            );
            assert!(output.contains(expected), "{context}");
        }
    }
}
