//! Reading RESP replies off a connection, bounded: a server that is not Redis (or a hostile one)
//! gets a clear error, never an abort or unbounded memory.
//!
//! The replies read here are those to coldsync's own commands (writes, `EXEC`, the handshake,
//! `SCRIPT LOAD`, `PING`): small. So a reply line is at most [`MAX_LINE_BYTES`], a whole reply at
//! most [`MAX_REPLY_BYTES`], an array at most [`MAX_ARRAY_LEN`] elements nested at most
//! [`MAX_DEPTH`] deep, and no more than [`MAX_PREALLOCATED`] elements are allocated ahead of
//! the elements themselves, whatever count the server announced.
//!
//! A reply is parsed from the read buffer once it is complete there (a partial reply is parsed
//! again after the next read): no per-element task or allocation for the integers of an `EXEC`.
//!
//! Why not a crate: `examples/reply_parse_bench.rs` parses 1M load-path replies (`+OK`, `:1`/`:0`,
//! `MULTI`/`+QUEUED`/`EXEC` arrays of 3*32 integers, a few errors), async, 64 KiB reads, best of 9
//! rounds, three runs on the 2-core VM (`cargo build --release --example reply_parse_bench`, then
//! `target/release/examples/reply_parse_bench 9`): this reader 35-37 ns/reply, the hand-written
//! reader it replaced 62-63, `redis-protocol` 6.0 `decode_range` 46-48, the `redis` crate's
//! `ValueCodec` 200-207.
//! Neither crate bounds what it buffers either (an endless line or a huge announced length
//! waits for more bytes), so they would need these bounds around them all the same.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::RedisError;

/// Longest reply line (type byte up to CRLF) accepted.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Largest reply accepted, all its bulk strings and nested elements included.
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;
/// Most elements an array reply may announce.
pub const MAX_ARRAY_LEN: usize = 1024 * 1024;
/// Deepest nesting of arrays accepted (an `EXEC` reply is one level).
pub const MAX_DEPTH: usize = 8;
/// Most elements allocated for an array before they are read.
pub const MAX_PREALLOCATED: usize = 128;
/// Bytes of free buffer space offered to each read.
const READ_CHUNK: usize = 64 * 1024;

/// One parsed reply. Only handshake replies allocate (bulk strings and arrays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and other simple strings (content not kept).
    Simple,
    /// `:n`.
    Integer(i64),
    /// `-ERR ...`.
    Error(String),
    /// `$n` bulk string (`None` for the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*n` array.
    Array(Vec<Reply>),
}

/// Reads replies from a stream.
pub struct ReplyReader<R> {
    inner: R,
    buf: BytesMut,
}

/// Parsing a reply from the buffer: complete, or more bytes are needed.
enum Parsed {
    Complete(Reply, usize),
    Incomplete,
}

fn protocol(message: String) -> RedisError {
    RedisError::Protocol(message)
}

/// Up to 40 bytes of what the server sent, for messages.
fn shown(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(bytes.len())
        .min(40);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The end (the position of its `\r`) of the line starting at `start`, if it is complete.
fn line_end(buf: &[u8], start: usize) -> Result<Option<usize>, RedisError> {
    let window = &buf[start..buf.len().min(start + MAX_LINE_BYTES)];
    match window.iter().position(|b| *b == b'\n') {
        Some(0) => Err(protocol("reply line without its carriage return".into())),
        Some(lf) if window[lf - 1] == b'\r' => Ok(Some(start + lf - 1)),
        Some(_) => Err(protocol(format!(
            "reply line {:?} ends without its carriage return",
            shown(window)
        ))),
        None if window.len() == MAX_LINE_BYTES => Err(protocol(format!(
            "a reply line runs past {MAX_LINE_BYTES} bytes without its end: the server does not \
             speak the Redis protocol (it sent {:?})",
            shown(window)
        ))),
        None => Ok(None),
    }
}

fn number(line: &[u8]) -> Result<i64, RedisError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol(format!("bad number {:?}", shown(line))))
}

/// Parses the reply starting at `start` of `buf`; returns it with the position after it.
fn parse(buf: &[u8], start: usize, depth: usize) -> Result<Parsed, RedisError> {
    let Some(&kind) = buf.get(start) else {
        return Ok(Parsed::Incomplete);
    };
    if !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
        return Err(protocol(format!(
            "the server does not speak the Redis protocol (it sent {:?})",
            shown(&buf[start..])
        )));
    }
    let Some(end) = line_end(buf, start)? else {
        return Ok(Parsed::Incomplete);
    };
    let rest = &buf[start + 1..end];
    let after_line = end + 2;
    let reply = match kind {
        b'+' => Reply::Simple,
        b':' => Reply::Integer(number(rest)?),
        b'-' => Reply::Error(String::from_utf8_lossy(rest).into_owned()),
        b'$' => {
            let len = number(rest)?;
            if len < 0 {
                return Ok(Parsed::Complete(Reply::Bulk(None), after_line));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|len| *len <= MAX_REPLY_BYTES)
                .ok_or_else(|| {
                    protocol(format!(
                        "a bulk string of {len} bytes announced, over the {MAX_REPLY_BYTES} \
                         accepted"
                    ))
                })?;
            let data_end = after_line + len;
            if buf.len() < data_end + 2 {
                return Ok(Parsed::Incomplete);
            }
            if &buf[data_end..data_end + 2] != b"\r\n" {
                return Err(protocol(format!(
                    "a bulk string of {len} bytes is not followed by CRLF"
                )));
            }
            return Ok(Parsed::Complete(
                Reply::Bulk(Some(buf[after_line..data_end].to_vec())),
                data_end + 2,
            ));
        }
        _ => {
            let count = number(rest)?;
            if count < 0 {
                return Ok(Parsed::Complete(Reply::Array(Vec::new()), after_line));
            }
            let count = usize::try_from(count)
                .ok()
                .filter(|count| *count <= MAX_ARRAY_LEN)
                .ok_or_else(|| {
                    protocol(format!(
                        "an array of {count} elements announced, over the {MAX_ARRAY_LEN} \
                         accepted"
                    ))
                })?;
            if depth >= MAX_DEPTH {
                return Err(protocol(format!(
                    "arrays nested deeper than {MAX_DEPTH} levels"
                )));
            }
            let mut items = Vec::with_capacity(count.min(MAX_PREALLOCATED));
            let mut pos = after_line;
            for _ in 0..count {
                match parse(buf, pos, depth + 1)? {
                    Parsed::Complete(item, next) => {
                        items.push(item);
                        pos = next;
                    }
                    Parsed::Incomplete => return Ok(Parsed::Incomplete),
                }
            }
            return Ok(Parsed::Complete(Reply::Array(items), pos));
        }
    };
    Ok(Parsed::Complete(reply, after_line))
}

impl<R: AsyncRead + Unpin> ReplyReader<R> {
    /// Wraps the read half of a connection.
    pub fn new(inner: R) -> Self {
        ReplyReader {
            inner,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    async fn fill(&mut self) -> Result<(), RedisError> {
        // Room for a full read (consumed bytes at the front are reclaimed, not copied around).
        self.buf.reserve(READ_CHUNK);
        let n = self
            .inner
            .read_buf(&mut self.buf)
            .await
            .map_err(|source| RedisError::Io { source })?;
        if n == 0 {
            return Err(RedisError::Io {
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "redis closed the connection",
                ),
            });
        }
        Ok(())
    }

    /// Reads the next reply.
    pub async fn next(&mut self) -> Result<Reply, RedisError> {
        loop {
            if let Parsed::Complete(reply, len) = parse(&self.buf, 0, 0)? {
                self.buf.advance(len);
                return Ok(reply);
            }
            if self.buf.len() > MAX_REPLY_BYTES {
                return Err(protocol(format!(
                    "a reply runs past {MAX_REPLY_BYTES} bytes"
                )));
            }
            self.fill().await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse_all(bytes: &[u8], n: usize) -> Vec<Reply> {
        let mut reader = ReplyReader::new(bytes);
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(reader.next().await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn parses_every_reply_type() {
        let replies = parse_all(b"+OK\r\n:0\r\n:-12\r\n-OOM command not allowed\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n$0\r\n\r\n", 7).await;
        assert_eq!(
            replies,
            vec![
                Reply::Simple,
                Reply::Integer(0),
                Reply::Integer(-12),
                Reply::Error("OOM command not allowed".into()),
                Reply::Bulk(Some(b"abc".to_vec())),
                Reply::Bulk(None),
                Reply::Array(vec![Reply::Integer(1), Reply::Bulk(Some(Vec::new()))]),
            ]
        );
    }

    #[tokio::test]
    async fn truncated_reply_is_an_io_error() {
        let mut reader = ReplyReader::new(&b"$10\r\nabc"[..]);
        assert!(matches!(reader.next().await, Err(RedisError::Io { .. })));
    }

    fn protocol_error(result: Result<Reply, RedisError>) -> String {
        match result {
            Err(RedisError::Protocol(message)) => message,
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn refuses_a_server_that_is_not_redis() {
        let http = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        let message = protocol_error(ReplyReader::new(&http[..]).next().await);
        assert!(
            message.contains("does not speak the Redis protocol") && message.contains("HTTP/1.1"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn refuses_an_array_count_over_the_limit_without_allocating_it() {
        let message = protocol_error(ReplyReader::new(&b"*9999999999\r\n"[..]).next().await);
        assert!(message.contains("9999999999"), "{message}");
        // Under the limit, a count is not allocated ahead of its elements: the reply is
        // incomplete (EOF) long before a million elements arrive.
        let mut reader = ReplyReader::new(&b"*1048576\r\n:1\r\n"[..]);
        assert!(matches!(reader.next().await, Err(RedisError::Io { .. })));
    }

    #[tokio::test]
    async fn refuses_a_bulk_length_over_the_limit() {
        let message = protocol_error(ReplyReader::new(&b"$99999999999\r\n"[..]).next().await);
        assert!(message.contains("99999999999"), "{message}");
    }

    #[tokio::test]
    async fn refuses_a_line_without_end_before_the_stream_ends() {
        // 2 MiB without CRLF, then EOF: the reader gives up at its line limit, not at EOF.
        let mut endless = b"+".to_vec();
        endless.resize(2 * 1024 * 1024, b'a');
        let message = protocol_error(ReplyReader::new(&endless[..]).next().await);
        assert!(
            message.contains("does not speak the Redis protocol"),
            "{message}"
        );
        // And on a stream that never ends.
        let stream = tokio::io::AsyncReadExt::chain(&b"+"[..], tokio::io::repeat(b'a'));
        let message = protocol_error(ReplyReader::new(stream).next().await);
        assert!(
            message.contains("does not speak the Redis protocol"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn refuses_arrays_nested_too_deep() {
        let nested = b"*1\r\n".repeat(100);
        let message = protocol_error(ReplyReader::new(&nested[..]).next().await);
        assert!(message.contains("nested"), "{message}");
    }

    #[tokio::test]
    async fn reads_replies_split_across_reads() {
        // One byte per read: every reply is parsed again until complete.
        struct OneByte<'a>(&'a [u8]);
        impl tokio::io::AsyncRead for OneByte<'_> {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                if let Some((first, rest)) = self.0.split_first() {
                    buf.put_slice(&[*first]);
                    self.0 = rest;
                }
                std::task::Poll::Ready(Ok(()))
            }
        }
        let bytes = b"*3\r\n:1\r\n+QUEUED\r\n$2\r\nab\r\n-ERR x\r\n";
        let mut reader = ReplyReader::new(OneByte(bytes));
        assert_eq!(
            reader.next().await.unwrap(),
            Reply::Array(vec![
                Reply::Integer(1),
                Reply::Simple,
                Reply::Bulk(Some(b"ab".to_vec()))
            ])
        );
        assert_eq!(reader.next().await.unwrap(), Reply::Error("ERR x".into()));
    }
}
