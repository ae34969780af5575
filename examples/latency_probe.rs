//! A live reader for the benchmark: GETs of existing keys at a fixed rate on one connection,
//! reporting the latency percentiles a streaming job's lookups would see.
//!
//! ```text
//! latency_probe --port P --prefix cold:orders: --min-id 1 --max-id 5000000 --seconds 10 [--rate 2000]
//! ```
//! Prints one JSON line: `{"samples":..,"p50_us":..,"p99_us":..,"max_us":..,"misses":..}`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let mut port = 6379u16;
    let mut prefix = String::from("cold:orders:");
    let (mut min_id, mut max_id, mut seconds, mut rate) = (1u64, 1_000_000u64, 10u64, 2000u64);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().expect("flag value");
        match flag.as_str() {
            "--port" => port = value.parse().unwrap(),
            "--prefix" => prefix = value,
            "--min-id" => min_id = value.parse().unwrap(),
            "--max-id" => max_id = value.parse().unwrap(),
            "--seconds" => seconds = value.parse().unwrap(),
            "--rate" => rate = value.parse().unwrap(),
            other => panic!("unknown flag {other}"),
        }
    }
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut next_at = Instant::now();
    let mut state = 88_172_645_463_325_252u64;
    let mut samples = Vec::new();
    let mut misses = 0u64;
    let mut line = String::new();
    while Instant::now() < deadline {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let id = min_id + state % (max_id - min_id + 1);
        let key = format!("{prefix}{id}");
        let cmd = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
        let sent = Instant::now();
        writer.write_all(cmd.as_bytes()).unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.starts_with("$-1") {
            misses += 1;
        } else if let Some(len) = line.strip_prefix('$') {
            let len: usize = len.trim().parse().unwrap();
            let mut body = vec![0u8; len + 2];
            std::io::Read::read_exact(&mut reader, &mut body).unwrap();
        }
        samples.push(sent.elapsed().as_micros() as u64);
        next_at += interval;
        if let Some(wait) = next_at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    samples.sort_unstable();
    let pct = |p: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"samples\":{},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},\"misses\":{}}}",
        samples.len(),
        pct(0.50),
        pct(0.99),
        samples.last().copied().unwrap_or(0),
        misses
    );
}
