//! RESP encoding of commands: the bulk strings and lengths every command is made of, and the
//! parser that reads a built command back (for error messages, tests and the rare re-send of a
//! refused write, never on the write path).

/// Appends `n` in decimal and CRLF (a RESP length or count).
pub(super) fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `value` as a RESP bulk string.
pub(super) fn push_bulk(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'$');
    push_decimal(out, value.len() as u64);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parses one RESP command (array of bulk strings) into its arguments; used for error messages,
/// tests and re-sending refused writes, never on the write path.
pub fn parse_command(bytes: &[u8]) -> Vec<Vec<u8>> {
    fn line(bytes: &[u8], pos: &mut usize) -> Option<usize> {
        let rest = bytes.get(*pos..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let n = std::str::from_utf8(&rest[1..end]).ok()?.parse().ok()?;
        *pos += end + 2;
        Some(n)
    }
    let mut pos = 0;
    let mut args = Vec::new();
    let Some(count) = line(bytes, &mut pos) else {
        return args;
    };
    for _ in 0..count {
        let Some(len) = line(bytes, &mut pos) else {
            break;
        };
        let Some(arg) = bytes.get(pos..pos + len) else {
            break;
        };
        args.push(arg.to_vec());
        pos += len + 2;
    }
    args
}
