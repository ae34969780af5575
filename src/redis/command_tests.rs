//! Tests of the RESP commands built from rows.
use super::*;

#[test]
fn commands_are_resp_arrays_of_bulk_strings() {
    let mut batch = CommandBatch::default();
    batch.push_command(&[
        b"SET",
        b"cold:orders:1",
        b"{\"a\":1}",
        b"PXAT",
        b"1700000000000",
    ]);
    batch.push_command(&[b"EVALSHA", b"abc", b"1", b"k2", b"v", b"5"]);
    assert_eq!(
        &batch.bytes[..batch.starts[1]],
        b"*5\r\n$3\r\nSET\r\n$13\r\ncold:orders:1\r\n$7\r\n{\"a\":1}\r\n$4\r\nPXAT\r\n$13\r\n1700000000000\r\n"
    );
    assert_eq!(batch.len(), 2);
    assert_eq!(batch.key_of(0), "cold:orders:1");
    assert_eq!(batch.key_of(1), "k2");
    assert_eq!(
        parse_command(&batch.bytes[batch.starts[1]..]),
        vec![
            b"EVALSHA".to_vec(),
            b"abc".to_vec(),
            b"1".to_vec(),
            b"k2".to_vec(),
            b"v".to_vec(),
            b"5".to_vec()
        ]
    );
}

/// Two hash rows: `k:1` with `city = Wien`, `k:2` with every value null (an empty hash).
pub(in crate::redis) fn hash_rows() -> EncodedRows {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};

    use crate::encode::{DateEncoding, EncodeSpec, RowEncoder, TimestampEncoding, ValueFormat};
    use crate::template::KeyTemplate;

    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        (
            "city",
            Arc::new(StringArray::from(vec![Some("Wien"), None])) as ArrayRef,
        ),
    ])
    .unwrap();
    let spec = Arc::new(EncodeSpec {
        key: KeyTemplate::parse("k:{id}").unwrap(),
        format: ValueFormat::Hash,
        columns: vec!["city".into()],
        timestamp: TimestampEncoding::Iso8601,
        date: DateEncoding::Iso8601,
    });
    let mut rows = EncodedRows::new();
    RowEncoder::new(spec, &batch.schema())
        .unwrap()
        .encode_batch(&batch, &mut rows)
        .unwrap();
    rows
}

/// Every command of `batch`, its arguments as text (binary bytes replaced).
fn commands(batch: &CommandBatch) -> Vec<Vec<String>> {
    (0..batch.len())
        .map(|i| {
            let end = batch.starts.get(i + 1).map_or(batch.bytes.len(), |e| *e);
            parse_command(&batch.bytes[batch.starts[i]..end])
                .into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect()
        })
        .collect()
}

/// The `RESTORE` payload of `k:1` of [`hash_rows`], as text.
fn wien_payload() -> String {
    let mut payload = Vec::new();
    let fields: [(&[u8], &[u8]); 1] = [(b"city", b"Wien")];
    let built = push_hash_payload(fields, &HashListpackLimits::default(), &mut payload);
    assert_eq!(built, HashPayload::Restore);
    String::from_utf8_lossy(&payload).into_owned()
}

fn hash(guarded: bool, restore: Option<HashListpackLimits>) -> WriteStyle {
    WriteStyle::Hash { guarded, restore }
}

fn both_rows(style: WriteStyle, shas: &ScriptShas) -> CommandBatch {
    let rows = hash_rows();
    let expiry = Expiry::at(5);
    let mut batch = CommandBatch::default();
    batch.push_row(&rows, 0, style, &expiry, shas);
    batch.push_row(&rows, 1, style, &expiry, shas);
    batch
}

#[test]
fn guarded_rows_share_one_script_call_until_sealed() {
    let shas = ScriptShas {
        hash_replace: "sha".into(),
        guarded_set: "gs".into(),
        ..ScriptShas::default()
    };
    let mut batch = both_rows(hash(true, None), &shas);
    assert_eq!((batch.len(), batch.pending_keys()), (0, 2));
    batch.seal();
    assert_eq!((batch.len(), batch.keys_of(0)), (1, 2));
    assert_eq!(
        commands(&batch),
        [["EVALSHA", "sha", "0", "5", "k:1", "1", "city", "Wien", "k:2", "0"]]
    );
    assert_eq!(batch.key_of(0), "k:1");

    // RESTORE allowed: the payload goes in the call, flagged -1.
    let limits = Some(HashListpackLimits::default());
    let mut batch = both_rows(hash(true, limits), &shas);
    batch.seal();
    let payload = wien_payload();
    assert_eq!(
        commands(&batch),
        [["EVALSHA", "sha", "0", "5", "k:1", "-1", &payload, "k:2", "0"]]
    );
    assert_eq!(batch.acknowledges(0), Acknowledges::WrittenAndDeleted);

    // Guarded SET: key/value pairs after the expiry.
    let mut batch = both_rows(WriteStyle::GuardedSet, &shas);
    batch.seal();
    assert_eq!(
        commands(&batch),
        [["EVALSHA", "gs", "0", "5", "k:1", "", "k:2", ""]]
    );
    assert_eq!((batch.keys_of(0), batch.key_of(0)), (2, "k:1".to_string()));
    assert_eq!(batch.acknowledges(0), Acknowledges::Written);
}

#[test]
fn a_guarded_call_covers_at_most_guarded_keys_per_call() {
    let rows = hash_rows();
    let (expiry, shas) = (Expiry::at(5), ScriptShas::default());
    for style in [WriteStyle::GuardedSet, hash(true, None)] {
        let mut batch = CommandBatch::default();
        for _ in 0..GUARDED_KEYS_PER_CALL + 1 {
            batch.push_row(&rows, 0, style, &expiry, &shas);
        }
        assert_eq!(batch.len(), 1, "{style:?}");
        batch.seal();
        assert_eq!(batch.len(), 2, "{style:?}");
        assert_eq!(
            (batch.keys_of(0), batch.keys_of(1)),
            (GUARDED_KEYS_PER_CALL as u64, 1),
            "{style:?}"
        );
    }
}

#[test]
fn forward_hash_rows_are_restored_within_the_limits_else_replaced_in_multi() {
    let shas = ScriptShas::default();
    let mut batch = both_rows(hash(false, Some(HashListpackLimits::default())), &shas);
    batch.seal();
    let payload = wien_payload();
    assert_eq!(
        commands(&batch),
        vec![
            vec!["RESTORE", "k:1", "5", &payload, "REPLACE", "ABSTTL"],
            vec!["DEL", "k:2"],
        ]
    );
    assert_eq!(
        (batch.keys_of(0), batch.keys_of(1), batch.empty_keys()),
        (1, 1, 1)
    );
    assert_eq!(batch.acknowledges(1), Acknowledges::DeletedEmpty);
    assert_eq!(batch.key_of(0), "k:1");

    // "Wien" is longer than a 2-byte limit: k:1 goes the HSET way; k:2 (empty) closes the
    // transaction and is deleted on its own.
    let tight = HashListpackLimits {
        max_entries: 512,
        max_value_bytes: 2,
    };
    let mut batch = both_rows(hash(false, Some(tight)), &shas);
    batch.seal();
    assert_eq!(
        commands(&batch),
        vec![
            vec!["MULTI"],
            vec!["DEL", "k:1"],
            vec!["HSET", "k:1", "city", "Wien"],
            vec!["PEXPIREAT", "k:1", "5"],
            vec!["EXEC"],
            vec!["DEL", "k:2"],
        ]
    );
    assert_eq!((batch.keys_of(4), batch.keys_of(5)), (1, 1));
    assert_eq!(batch.acknowledges(4), Acknowledges::Exec { empty: 0 });
    assert_eq!(batch.acknowledges(5), Acknowledges::DeletedEmpty);
}

#[test]
fn hash_rows_without_restore_are_replaced_in_multi() {
    let shas = ScriptShas::default();
    let mut multi = both_rows(hash(false, None), &shas);
    multi.seal();
    assert_eq!(
        commands(&multi),
        vec![
            vec!["MULTI"],
            vec!["DEL", "k:1"],
            vec!["HSET", "k:1", "city", "Wien"],
            vec!["PEXPIREAT", "k:1", "5"],
            vec!["DEL", "k:2"],
            vec!["EXEC"],
        ]
    );
    assert_eq!(
        (multi.keys_of(0), multi.keys_of(5), multi.pending_keys()),
        (0, 2, 2)
    );
    assert_eq!(multi.key_of(5), "k:1");
    assert_eq!(multi.queued_before(5), 4);

    let plain = both_rows(WriteStyle::HashPlain, &shas);
    assert_eq!((plain.len(), plain.pending_keys()), (2, 2));
    assert_eq!(
        plain.bytes,
        b"*4\r\n$4\r\nHSET\r\n$3\r\nk:1\r\n$4\r\ncity\r\n$4\r\nWien\r\n*3\r\n$9\r\nPEXPIREAT\r\n$3\r\nk:1\r\n$1\r\n5\r\n"
    );
}

#[test]
fn a_batch_is_full_at_its_byte_cap_whatever_its_row_count() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};

    use crate::encode::{DateEncoding, EncodeSpec, RowEncoder, TimestampEncoding, ValueFormat};
    use crate::template::KeyTemplate;

    // Three values of 6 MiB: the cap (16 MiB) is reached by the third row.
    let big = "x".repeat(6 << 20);
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
        (
            "v",
            Arc::new(StringArray::from(vec![big.as_str(); 3])) as ArrayRef,
        ),
    ])
    .unwrap();
    let spec = Arc::new(EncodeSpec {
        key: KeyTemplate::parse("k:{id}").unwrap(),
        format: ValueFormat::Column("v".into()),
        columns: Vec::new(),
        timestamp: TimestampEncoding::Iso8601,
        date: DateEncoding::Iso8601,
    });
    let mut rows = EncodedRows::new();
    RowEncoder::new(spec, &batch.schema())
        .unwrap()
        .encode_batch(&batch, &mut rows)
        .unwrap();
    let (expiry, shas) = (Expiry::at(5), ScriptShas::default());
    for style in [WriteStyle::Set, WriteStyle::GuardedSet] {
        let mut out = CommandBatch::default();
        out.push_row(&rows, 0, style, &expiry, &shas);
        out.push_row(&rows, 1, style, &expiry, &shas);
        assert!(!out.is_full(1000), "{style:?}");
        out.push_row(&rows, 2, style, &expiry, &shas);
        assert!(out.is_full(1000), "{style:?}");
        assert!(out.byte_len() >= MAX_BATCH_BYTES);
        if style == WriteStyle::Set {
            assert_eq!(out.key_of(2), "k:3");
            assert_eq!(out.starts[2], 2 * (out.bytes.len() / 3));
        } else {
            // The rows of the open script call count: nothing is written out yet.
            assert!(out.is_empty());
            out.seal();
            assert_eq!((out.len(), out.keys_of(0)), (1, 3));
            assert_eq!(out.key_of(0), "k:1");
        }
    }
    // The rows of an open hash-replacement call count too.
    let mut open = CommandBatch::default();
    assert!(!open.is_full(1));
    open.pending_keys = 1;
    assert!(open.is_full(1));
}

#[test]
fn empty_hash_rows_are_counted_apart() {
    let rows = hash_rows();
    let shas = ScriptShas::default();
    let expiry = Expiry::at(5);
    let limits = Some(HashListpackLimits::default());
    for style in [
        hash(false, None),
        hash(true, None),
        hash(false, limits),
        hash(true, limits),
        WriteStyle::HashPlain,
    ] {
        let mut batch = CommandBatch::default();
        batch.push_row(&rows, 0, style, &expiry, &shas);
        batch.push_row(&rows, 1, style, &expiry, &shas);
        batch.seal();
        assert_eq!(
            (batch.pending_keys(), batch.empty_keys()),
            (2, 1),
            "{style:?}"
        );
        let last = batch.len() - 1;
        let expected = match style {
            WriteStyle::Hash {
                guarded: false,
                restore: None,
            } => Acknowledges::Exec { empty: 1 },
            WriteStyle::Hash {
                guarded: false,
                restore: Some(_),
            } => Acknowledges::DeletedEmpty,
            WriteStyle::Hash { guarded: true, .. } => Acknowledges::WrittenAndDeleted,
            _ => Acknowledges::Written,
        };
        assert_eq!(batch.acknowledges(last), expected, "{style:?}");
    }
}

#[test]
fn routing_is_stable_and_in_range() {
    for n in 1..8 {
        for key in [&b"a"[..], b"cold:orders:42", b""] {
            let r = route(key, n);
            assert!(r < n);
            assert_eq!(r, route(key, n));
        }
    }
    assert_eq!(route(b"cold:orders:42", 1), 0);
}

#[test]
fn on_a_cluster_each_hash_call_covers_one_key() {
    let rows = hash_rows();
    let (expiry, shas) = (Expiry::at(5), ScriptShas::default());
    let guarded_style = WriteStyle::Hash {
        guarded: true,
        restore: None,
    };
    let mut guarded = CommandBatch::default().one_key_per_call(true);
    guarded.push_row(&rows, 0, guarded_style, &expiry, &shas);
    guarded.push_row(&rows, 1, guarded_style, &expiry, &shas);
    guarded.seal();
    assert_eq!(guarded.len(), 2);
    assert_eq!((guarded.keys_of(0), guarded.keys_of(1)), (1, 1));
    let plain_style = WriteStyle::Hash {
        guarded: false,
        restore: None,
    };
    let mut multi = CommandBatch::default().one_key_per_call(true);
    multi.push_row(&rows, 0, plain_style, &expiry, &shas);
    multi.push_row(&rows, 1, plain_style, &expiry, &shas);
    multi.seal();
    let names: Vec<Vec<u8>> = (0..multi.len())
        .map(|i| parse_command(multi.command_bytes(i)).swap_remove(0))
        .collect();
    let expected: [&[u8]; 8] = [
        b"MULTI",
        b"DEL",
        b"HSET",
        b"PEXPIREAT",
        b"EXEC",
        b"MULTI",
        b"DEL",
        b"EXEC",
    ];
    assert_eq!(names, expected.map(<[u8]>::to_vec));
    assert!(multi.is_multi(5) && !multi.is_multi(4));
    // Copied commands keep what they acknowledge.
    let mut copy = CommandBatch::default();
    copy.push_asking();
    copy.append_commands(&multi, 5..8);
    assert_eq!(copy.len(), 4);
    assert_eq!(copy.acknowledges(3), Acknowledges::Exec { empty: 1 });
    assert_eq!(copy.keys_of(0), 0);
    assert_eq!(copy.key_of(2), "k:2");
}
