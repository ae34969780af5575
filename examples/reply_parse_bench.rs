//! Reply parsing on the load path, measured: coldsync's bounded reader against the hand-written
//! reader it replaced and two well-kept crates (the `redis` crate's own codec, `redis-protocol`).
//!
//! The stream is what the bulk writer reads: 1M replies, mostly `+OK` (SET), `:1`/`:0` (guarded
//! writes), `MULTI`/`+QUEUED`/`EXEC` blocks whose `EXEC` is an array of 3*32 integers (hash
//! replacement), and a few errors. Every reader is async, reading 64 KiB at a time from memory
//! (as from a socket) on a current-thread runtime, and does the same little work per reply.
//!
//! cargo build --release --example reply_parse_bench
//! target/release/examples/reply_parse_bench [rounds]

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use coldsync::redis::{Reply, ReplyReader};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio_util::codec::Decoder;

const REPLIES: usize = 1_000_000;
const READ_CHUNK: usize = 64 * 1024;

/// What the replies said; every reader must agree.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    simple: u64,
    integers: i64,
    arrays: u64,
    errors: u64,
}

/// The reply stream, its number of replies and its expected tally.
fn stream() -> (Vec<u8>, usize, Tally) {
    let mut out = Vec::new();
    let mut tally = Tally::default();
    let mut replies = 0;
    let mut i = 0u64;
    while replies < REPLIES {
        i += 1;
        match i % 100 {
            // A hash-replacement transaction: MULTI, 96 QUEUED, EXEC with 96 integers.
            0..=1 => {
                out.extend_from_slice(b"+OK\r\n");
                for _ in 0..96 {
                    out.extend_from_slice(b"+QUEUED\r\n");
                }
                out.extend_from_slice(b"*96\r\n");
                for k in 0..32 {
                    out.extend_from_slice(format!(":{}\r\n:3\r\n:1\r\n", k % 2).as_bytes());
                    tally.integers += k % 2 + 4;
                }
                tally.simple += 97;
                tally.arrays += 1;
                replies += 98;
            }
            // Guarded writes.
            2..=29 => {
                out.extend_from_slice(if i.is_multiple_of(3) {
                    b":0\r\n"
                } else {
                    b":1\r\n"
                });
                tally.integers += i64::from(!i.is_multiple_of(3));
                replies += 1;
            }
            _ if i.is_multiple_of(9973) => {
                out.extend_from_slice(
                    b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
                );
                tally.errors += 1;
                replies += 1;
            }
            _ => {
                out.extend_from_slice(b"+OK\r\n");
                tally.simple += 1;
                replies += 1;
            }
        }
    }
    (out, replies, tally)
}

/// Hands out `bytes` at most [`READ_CHUNK`] per read, like a socket.
struct Chunked<'a>(&'a [u8]);

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.0.len().min(READ_CHUNK).min(buf.remaining());
        let (head, rest) = self.0.split_at(n);
        buf.put_slice(head);
        self.0 = rest;
        Poll::Ready(Ok(()))
    }
}

fn tally_reply(tally: &mut Tally, reply: &Reply) {
    match reply {
        Reply::Simple => tally.simple += 1,
        Reply::Integer(n) => tally.integers += n,
        Reply::Error(_) => tally.errors += 1,
        Reply::Bulk(_) => {}
        Reply::Array(items) => {
            tally.arrays += 1;
            for item in items {
                tally_reply(tally, item);
            }
        }
    }
}

async fn coldsync_reader(bytes: &[u8], replies: usize) -> Tally {
    let mut reader = ReplyReader::new(Chunked(bytes));
    let mut tally = Tally::default();
    for _ in 0..replies {
        tally_reply(&mut tally, &reader.next().await.unwrap());
    }
    tally
}

async fn before_reader(bytes: &[u8], replies: usize) -> Tally {
    let mut reader = before::ReplyReader::new(Chunked(bytes));
    let mut tally = Tally::default();
    for _ in 0..replies {
        tally_reply(&mut tally, &reader.next().await.unwrap());
    }
    tally
}

/// Reads into `buf` until `decode` yields a reply; the loop a `FramedRead` runs.
async fn decoded<T, R: AsyncRead + Unpin>(
    inner: &mut R,
    buf: &mut BytesMut,
    mut decode: impl FnMut(&mut BytesMut) -> Option<T>,
) -> T {
    loop {
        if let Some(reply) = decode(buf) {
            return reply;
        }
        buf.reserve(READ_CHUNK);
        let n = inner.read_buf(buf).await.unwrap();
        assert!(n > 0, "stream ended");
    }
}

fn tally_redis_value(tally: &mut Tally, value: &redis::Value) {
    match value {
        redis::Value::Okay | redis::Value::SimpleString(_) => tally.simple += 1,
        redis::Value::Int(n) => tally.integers += n,
        redis::Value::ServerError(_) => tally.errors += 1,
        redis::Value::Array(items) => {
            tally.arrays += 1;
            for item in items {
                tally_redis_value(tally, item);
            }
        }
        _ => {}
    }
}

async fn redis_crate(bytes: &[u8], replies: usize) -> Tally {
    let mut codec = redis::ValueCodec::default();
    let mut inner = Chunked(bytes);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut tally = Tally::default();
    for _ in 0..replies {
        let value = decoded(&mut inner, &mut buf, |buf| codec.decode(buf).unwrap()).await;
        tally_redis_value(&mut tally, &value);
    }
    tally
}

fn tally_range_frame(tally: &mut Tally, frame: &redis_protocol::resp2::types::RangeFrame) {
    use redis_protocol::resp2::types::RangeFrame;
    match frame {
        RangeFrame::SimpleString(_) => tally.simple += 1,
        RangeFrame::Integer(n) => tally.integers += n,
        RangeFrame::Error(_) => tally.errors += 1,
        RangeFrame::Array(items) => {
            tally.arrays += 1;
            for item in items {
                tally_range_frame(tally, item);
            }
        }
        RangeFrame::BulkString(_) | RangeFrame::Null => {}
    }
}

async fn redis_protocol_crate(bytes: &[u8], replies: usize) -> Tally {
    let mut inner = Chunked(bytes);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut tally = Tally::default();
    for _ in 0..replies {
        let frame = decoded(&mut inner, &mut buf, |buf| {
            let (frame, len) = redis_protocol::resp2::decode::decode_range(buf).unwrap()?;
            buf.advance(len);
            Some(frame)
        })
        .await;
        tally_range_frame(&mut tally, &frame);
    }
    tally
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let (bytes, replies, expected) = stream();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    println!(
        "{replies} replies, {} bytes, best of {rounds} rounds",
        bytes.len()
    );
    type Run =
        for<'a> fn(&'a [u8], usize) -> Pin<Box<dyn std::future::Future<Output = Tally> + 'a>>;
    let readers: [(&str, Run); 4] = [
        ("coldsync ReplyReader (bounded)", |b, n| {
            Box::pin(coldsync_reader(b, n))
        }),
        ("hand-written reader before", |b, n| {
            Box::pin(before_reader(b, n))
        }),
        ("redis crate ValueCodec", |b, n| Box::pin(redis_crate(b, n))),
        ("redis-protocol decode_range", |b, n| {
            Box::pin(redis_protocol_crate(b, n))
        }),
    ];
    for (name, run) in readers {
        let mut best = f64::MAX;
        for _ in 0..rounds {
            let started = Instant::now();
            let tally = runtime.block_on(run(&bytes, replies));
            let elapsed = started.elapsed().as_secs_f64();
            assert_eq!(tally, expected, "{name} read the stream differently");
            best = best.min(elapsed);
        }
        println!("{name:32} {:7.1} ns/reply", best * 1e9 / replies as f64);
    }
}

/// The hand-written reader as it was before the bounds (copied, for comparison only).
mod before {
    use bytes::{Buf, BytesMut};
    use coldsync::redis::Reply;
    use tokio::io::{AsyncRead, AsyncReadExt};

    pub struct ReplyReader<R> {
        inner: R,
        buf: BytesMut,
    }

    impl<R: AsyncRead + Unpin> ReplyReader<R> {
        pub fn new(inner: R) -> Self {
            ReplyReader {
                inner,
                buf: BytesMut::with_capacity(64 * 1024),
            }
        }

        async fn fill(&mut self) {
            let n = self.inner.read_buf(&mut self.buf).await.unwrap();
            assert!(n > 0, "stream ended");
        }

        async fn line(&mut self) -> BytesMut {
            let mut searched = 0;
            loop {
                if let Some(pos) = self.buf[searched..].windows(2).position(|w| w == b"\r\n") {
                    let line = self.buf.split_to(searched + pos);
                    self.buf.advance(2);
                    return line;
                }
                searched = self.buf.len().saturating_sub(1);
                self.fill().await;
            }
        }

        fn number(line: &[u8]) -> i64 {
            std::str::from_utf8(line).unwrap().parse().unwrap()
        }

        pub async fn next(&mut self) -> Result<Reply, String> {
            let line = self.line().await;
            let (kind, rest) = line.split_first().unwrap();
            match kind {
                b'+' => Ok(Reply::Simple),
                b':' => Ok(Reply::Integer(Self::number(rest))),
                b'-' => Ok(Reply::Error(String::from_utf8_lossy(rest).into_owned())),
                b'$' => {
                    let len = Self::number(rest);
                    if len < 0 {
                        return Ok(Reply::Bulk(None));
                    }
                    let len = len as usize;
                    while self.buf.len() < len + 2 {
                        self.fill().await;
                    }
                    let data = self.buf.split_to(len).to_vec();
                    self.buf.advance(2);
                    Ok(Reply::Bulk(Some(data)))
                }
                b'*' => {
                    let count = Self::number(rest);
                    let mut items = Vec::with_capacity(count.max(0) as usize);
                    for _ in 0..count.max(0) {
                        items.push(Box::pin(self.next()).await?);
                    }
                    Ok(Reply::Array(items))
                }
                other => Err(format!("unexpected reply type byte {:?}", *other as char)),
            }
        }
    }
}
