//! Follow-ups: the guarded writes a server refused natively, re-sent through the guard scripts.
//!
//! A guarded load (a partition older than the newest loaded one) first writes each row natively,
//! `SET key value NX PXAT ms` or `RESTORE key ms payload ABSTTL` without `REPLACE`
//! ([`super::command`]). Those write a key that is not there at the speed of a forward load, and
//! refuse one that is (a null reply, `BUSYKEY`): only then can a newer value be at stake, so only
//! those rows go through the guard scripts, which keep a key that expires later (is newer) and
//! replace one that does not. The connection's writer sends a batch's follow-up as soon as the
//! batch is answered, ahead of any batch not yet written. Once most native writes of a batch are
//! refused (the keys are mostly there: a partition reloaded, or a backfill under newer
//! partitions), the connection sends its later batches straight through the scripts
//! ([`through_scripts`]), after every follow-up so far, instead of sending most rows twice.
//!
//! Why the last row of a key still wins: rows of a key go through one connection, in file order.
//! A native write succeeds only while the key is absent; once a row of the key is written or
//! refused, the key exists, so every later row of it is refused too and follows up, and
//! follow-ups run in row order. Nothing deletes a key in between: the one guarded delete (an
//! empty hash) starts a barrier batch, written only once every earlier follow-up is sent.

use crate::error::RedisError;

use super::command::{Acknowledges, CommandBatch, Expiry};
use super::resp::parse_command;
use super::script::ScriptShas;

/// The guard-script calls that replace the refused commands `refused` of `batch` (indices, in
/// order), sealed, for the same connection.
pub(super) fn follow_up(
    batch: &CommandBatch,
    refused: &[usize],
    shas: &ScriptShas,
) -> Result<CommandBatch, RedisError> {
    let mut out = CommandBatch::default();
    for &index in refused {
        push_through_script(&mut out, batch, index, shas)?;
    }
    out.seal();
    Ok(out)
}

/// `batch` with every native guarded write replaced by the guard script's (the other commands as
/// they are, in order): for a connection whose keys are mostly there, where native writes would
/// mostly be refused and sent twice.
pub(super) fn through_scripts(
    batch: &CommandBatch,
    shas: &ScriptShas,
) -> Result<CommandBatch, RedisError> {
    let mut out = CommandBatch::default();
    for index in 0..batch.len() {
        if batch.acknowledges(index) == Acknowledges::WrittenUnlessExists {
            push_through_script(&mut out, batch, index, shas)?;
        } else {
            out.seal();
            out.append_commands(batch, index..index + 1);
        }
    }
    out.seal();
    Ok(out)
}

/// Adds native guarded write `index` of `batch` to `out`'s open guard-script call.
fn push_through_script(
    out: &mut CommandBatch,
    batch: &CommandBatch,
    index: usize,
    shas: &ScriptShas,
) -> Result<(), RedisError> {
    let args = parse_command(batch.command_bytes(index));
    let expiry = |at: &[u8]| {
        std::str::from_utf8(at)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .map(Expiry::at)
    };
    let unexpected = || {
        RedisError::Protocol(format!(
            "no guard-script form for the {} of key {:?}",
            batch.command_of(index),
            batch.key_of(index)
        ))
    };
    match args.as_slice() {
        // SET key value NX PXAT ms
        [name, key, value, _, _, at] if name == b"SET" => {
            let expiry = expiry(at).ok_or_else(unexpected)?;
            out.push_guarded_set(key, value, &expiry, shas);
        }
        // RESTORE key ms payload ABSTTL
        [name, key, at, payload, _] if name == b"RESTORE" => {
            let expiry = expiry(at).ok_or_else(unexpected)?;
            out.push_guarded_restore(key, payload, &expiry, shas);
        }
        _ => return Err(unexpected()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::command::tests::hash_rows;
    use crate::redis::dump::HashListpackLimits;
    use crate::redis::WriteStyle;

    fn shas() -> ScriptShas {
        ScriptShas {
            guarded_set: "set-sha".into(),
            hash_replace: "hash-sha".into(),
            delete_if_older: "del-sha".into(),
        }
    }

    #[test]
    fn refused_native_writes_become_guard_script_calls_in_order() {
        let (expiry, shas) = (Expiry::at(77), shas());
        let mut batch = CommandBatch::default().follow_ups(true);
        batch.push_command(&[b"SET", b"k1", b"v1", b"NX", b"PXAT", b"77"]);
        batch.push_command(&[b"SET", b"k2", b"v2", b"NX", b"PXAT", b"77"]);
        batch.push_command(&[b"SET", b"k3", b"v3", b"NX", b"PXAT", b"77"]);
        let out = follow_up(&batch, &[0, 2], &shas).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            parse_command(out.command_bytes(0)),
            [
                &b"EVALSHA"[..],
                b"set-sha",
                b"0",
                b"77",
                b"k1",
                b"v1",
                b"k3",
                b"v3"
            ]
        );
        assert_eq!(out.keys_of(0), 2);
        assert_eq!(out.acknowledges(0), Acknowledges::Written);

        // A guarded native hash load: RESTORE ... ABSTTL, followed up with its payload.
        let rows = hash_rows();
        let style = WriteStyle::Hash {
            guarded: true,
            restore: Some(HashListpackLimits::default()),
        };
        let mut batch = CommandBatch::default().follow_ups(true);
        batch.push_row(&rows, 0, style, &expiry, &shas);
        let restore = parse_command(batch.command_bytes(0));
        assert_eq!(restore[0], b"RESTORE");
        assert_eq!(restore[4], b"ABSTTL");
        assert_eq!(batch.acknowledges(0), Acknowledges::WrittenUnlessExists);
        let out = follow_up(&batch, &[0], &shas).unwrap();
        assert_eq!(
            parse_command(out.command_bytes(0)),
            [
                &b"EVALSHA"[..],
                b"hash-sha",
                b"0",
                b"77",
                &restore[1],
                b"-1",
                &restore[3]
            ]
        );
        assert_eq!(out.acknowledges(0), Acknowledges::WrittenAndDeleted);

        // Straight through the scripts: native writes become calls, the rest stays in order.
        let mut batch = CommandBatch::default().follow_ups(true);
        batch.push_row(&rows, 0, WriteStyle::GuardedSet, &expiry, &shas);
        batch.push_command(&[b"EVALSHA", b"hash-sha", b"0", b"77", b"k2", b"0"]);
        batch.push_row(&rows, 0, style, &expiry, &shas);
        batch.push_wait(1, 100);
        let out = through_scripts(&batch, &shas).unwrap();
        let names: Vec<Vec<u8>> = (0..out.len())
            .map(|i| parse_command(out.command_bytes(i)).swap_remove(0))
            .collect();
        assert_eq!(names, [&b"EVALSHA"[..], b"EVALSHA", b"EVALSHA", b"WAIT"]);
        assert_eq!(parse_command(out.command_bytes(0))[1], b"set-sha");
        assert_eq!(parse_command(out.command_bytes(1))[4], b"k2");
        assert_eq!(parse_command(out.command_bytes(2))[1], b"hash-sha");
        assert_eq!(out.acknowledges(3), Acknowledges::Replicas { wanted: 1 });

        // Anything else has no follow-up: an error naming the key.
        let mut batch = CommandBatch::default();
        batch.push_command(&[b"DEL", b"k9"]);
        let err = follow_up(&batch, &[0], &shas).unwrap_err();
        assert!(err.to_string().contains("k9"), "{err}");
    }
}
