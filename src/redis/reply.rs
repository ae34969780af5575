//! Reading RESP replies off a connection: only the handshake replies allocate (bulk strings and
//! arrays); the replies to writes are read and checked without copying.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::RedisError;

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

impl<R: AsyncRead + Unpin> ReplyReader<R> {
    /// Wraps the read half of a connection.
    pub fn new(inner: R) -> Self {
        ReplyReader {
            inner,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    async fn fill(&mut self) -> Result<(), RedisError> {
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

    /// Reads one line (without `\r\n`), returning its length after the type byte was consumed.
    async fn line(&mut self) -> Result<BytesMut, RedisError> {
        let mut searched = 0;
        loop {
            if let Some(pos) = self.buf[searched..].windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(searched + pos);
                self.buf.advance(2);
                return Ok(line);
            }
            searched = self.buf.len().saturating_sub(1);
            self.fill().await?;
        }
    }

    fn number(line: &[u8]) -> Result<i64, RedisError> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                RedisError::Protocol(format!("bad number {:?}", String::from_utf8_lossy(line)))
            })
    }

    /// Reads the next reply.
    pub async fn next(&mut self) -> Result<Reply, RedisError> {
        let line = self.line().await?;
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| RedisError::Protocol("empty reply line".to_string()))?;
        match kind {
            b'+' => Ok(Reply::Simple),
            b':' => Ok(Reply::Integer(Self::number(rest)?)),
            b'-' => Ok(Reply::Error(String::from_utf8_lossy(rest).into_owned())),
            b'$' => {
                let len = Self::number(rest)?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let len = len as usize;
                while self.buf.len() < len + 2 {
                    self.fill().await?;
                }
                let data = self.buf.split_to(len).to_vec();
                self.buf.advance(2);
                Ok(Reply::Bulk(Some(data)))
            }
            b'*' => {
                let count = Self::number(rest)?;
                let mut items = Vec::with_capacity(count.max(0) as usize);
                for _ in 0..count.max(0) {
                    items.push(Box::pin(self.next()).await?);
                }
                Ok(Reply::Array(items))
            }
            other => Err(RedisError::Protocol(format!(
                "unexpected reply type byte {:?}",
                *other as char
            ))),
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
}
