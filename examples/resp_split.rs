//! Splits a RESP command stream (`coldsync export --format resp`) by Redis Cluster master, for
//! the cluster benchmark's ideal (bench/run.sh, section `cluster`): each master's own commands fed
//! to its own `redis-cli --pipe` at once.
//!
//! Usage: `resp_split --seed PORT --in FILE --out-prefix PREFIX` writes `PREFIX.<port>.resp` per
//! master (the topology read with `CLUSTER SLOTS` from 127.0.0.1:PORT). A command goes to the
//! master of its key's slot; a `MULTI` .. `EXEC` transaction is cut into one transaction per key
//! (the keys of one transaction must share a slot on a cluster), as coldsync writes hashes there.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};

use coldsync::redis::key_slot;

fn arg(name: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name);
    at.and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| panic!("missing {name}"))
}

/// One command: its bytes and its arguments' ranges.
struct Command<'a> {
    bytes: &'a [u8],
    args: Vec<&'a [u8]>,
}

/// Reads the next command of `data` at `pos`.
fn next_command<'a>(data: &'a [u8], pos: &mut usize) -> Option<Command<'a>> {
    fn line(data: &[u8], pos: &mut usize) -> usize {
        let end = *pos + data[*pos..].windows(2).position(|w| w == b"\r\n").unwrap();
        let n = std::str::from_utf8(&data[*pos + 1..end])
            .unwrap()
            .parse()
            .unwrap();
        *pos = end + 2;
        n
    }
    if *pos >= data.len() {
        return None;
    }
    let start = *pos;
    let count = line(data, pos);
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let len = line(data, pos);
        args.push(&data[*pos..*pos + len]);
        *pos += len + 2;
    }
    Some(Command {
        bytes: &data[start..*pos],
        args,
    })
}

fn main() {
    let seed: u16 = arg("--seed").parse().unwrap();
    let mut data = Vec::new();
    File::open(arg("--in"))
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    let prefix = arg("--out-prefix");

    let client = redis::Client::open(format!("redis://127.0.0.1:{seed}/")).unwrap();
    let mut con = client.get_connection().unwrap();
    let slots: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut con).unwrap();
    let mut owner = vec![0u16; 16384];
    for range in slots {
        let redis::Value::Array(parts) = range else {
            panic!("bad CLUSTER SLOTS")
        };
        let (redis::Value::Int(start), redis::Value::Int(end), redis::Value::Array(node)) =
            (&parts[0], &parts[1], &parts[2])
        else {
            panic!("bad CLUSTER SLOTS range")
        };
        let redis::Value::Int(port) = node[1] else {
            panic!("bad CLUSTER SLOTS node")
        };
        for slot in *start..=*end {
            owner[slot as usize] = port as u16;
        }
    }
    let mut outs: BTreeMap<u16, BufWriter<File>> = BTreeMap::new();
    let mut out = |port: u16, bytes: &[u8]| {
        let file = outs.entry(port).or_insert_with(|| {
            BufWriter::new(File::create(format!("{prefix}.{port}.resp")).unwrap())
        });
        file.write_all(bytes).unwrap();
    };
    const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
    const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";
    let mut pos = 0;
    // The open transaction: the key of its current group and the group's commands.
    let mut transaction: Option<(Vec<u8>, Vec<u8>)> = None;
    let flush = |group: (Vec<u8>, Vec<u8>), out: &mut dyn FnMut(u16, &[u8])| {
        let port = owner[usize::from(key_slot(&group.0))];
        out(port, MULTI);
        out(port, &group.1);
        out(port, EXEC);
    };
    let mut commands = 0u64;
    while let Some(command) = next_command(&data, &mut pos) {
        commands += 1;
        match command.args[0] {
            b"MULTI" => transaction = Some((Vec::new(), Vec::new())),
            b"EXEC" => {
                if let Some(group) = transaction.take().filter(|g| !g.1.is_empty()) {
                    flush(group, &mut out);
                }
            }
            _ => {
                let key = command.args[1];
                match &mut transaction {
                    Some(group) if group.1.is_empty() || group.0 == key => {
                        group.0 = key.to_vec();
                        group.1.extend_from_slice(command.bytes);
                    }
                    Some(group) => {
                        let done = std::mem::replace(group, (key.to_vec(), command.bytes.to_vec()));
                        flush(done, &mut out);
                    }
                    None => out(owner[usize::from(key_slot(key))], command.bytes),
                }
            }
        }
    }
    for file in outs.values_mut() {
        file.flush().unwrap();
    }
    let ports: Vec<String> = outs.keys().map(ToString::to_string).collect();
    eprintln!("{commands} commands split over masters {}", ports.join(" "));
}
