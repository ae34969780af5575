//! Least privilege: the ACL rules of the loader and of the streaming readers, and the check
//! (`ACL DRYRUN`, Redis 7.0+) that the configured user may send every command a load sends.
//!
//! The rules are built here, from the configured tables, and nowhere else: the README quotes
//! [`LOADER_COMMANDS`] and [`READER_COMMANDS`] word for word (a test checks it), and
//! `coldsync check --connect` dry-runs each command a table's load sends, with a sample key of
//! that table, as the configured user.
//!
//! Commands a Lua script calls are checked by Redis against the caller's ACL too, so the
//! loader's rule names them (`TIME`, the sorted-set commands of the shard leases, ...), and the
//! check dry-runs them one by one (`ACL DRYRUN` of an `EVALSHA` checks only the `EVALSHA`).

use ::redis::Value;

use crate::config::Config;
use crate::encode::ValueFormat;
use crate::error::{is_permission_error, RedisError};
use crate::template::TemplatePart;

use super::control::ControlClient;

/// The commands of the loader's rule: exactly what a run sends (directly and from its Lua
/// scripts), plus `acl|dryrun` for `check --connect` (optional: without it the check is skipped
/// with a warning). The `redis` crate's `CLIENT SETINFO` is not sent. With `redis+sentinel://`
/// add `+role` (the handshake checks the node is a master).
pub const LOADER_COMMANDS: &str = "-@all +ping +info +select +time +script|load +evalsha \
+multi +exec +get +set +del +pexpire +pexpireat +pexpiretime +hget +hset +hdel +hgetall +hlen \
+sadd +sismember +zadd +zrem +zrange +zscore +zremrangebyscore +exists +restore +unlink +wait \
+asking +cluster|slots +acl|dryrun";

/// The commands of a streaming reader's rule: reads only (with read-only `%R~` key patterns).
pub const READER_COMMANDS: &str = "-@all +ping +get +mget +hget +hmget +hgetall +exists +pttl \
+pexpiretime";

/// The key pattern of every key a table's template makes: each `{column}` becomes `*`, the
/// literal text has the glob characters escaped.
pub fn key_pattern(parts: &[TemplatePart]) -> String {
    let mut pattern = String::new();
    for part in parts {
        match part {
            TemplatePart::Column(_) => pattern.push('*'),
            TemplatePart::Literal(text) => {
                for c in text.chars() {
                    if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                        pattern.push('\\');
                    }
                    pattern.push(c);
                }
            }
        }
    }
    pattern
}

/// A key the template makes (each column `0`), for the dry runs.
fn sample_key(parts: &[TemplatePart]) -> String {
    parts
        .iter()
        .map(|part| match part {
            TemplatePart::Column(_) => "0",
            TemplatePart::Literal(text) => text.as_str(),
        })
        .collect()
}

/// The loader's rule for `config`'s tables (after `ACL SETUSER <user> on ><password>`):
/// `resetkeys`, its tables' key patterns, the ledger/lease keys, `resetchannels`, the commands.
pub fn loader_rule(config: &Config) -> String {
    let mut rule = String::from("resetkeys");
    for table in &config.tables {
        rule.push_str(&format!(" ~{}", key_pattern(table.key.parts())));
    }
    rule.push_str(&format!(
        " ~{}:* resetchannels {LOADER_COMMANDS}",
        config.ledger_prefix
    ));
    rule
}

/// A streaming reader's rule for `config`'s tables: their key patterns, read-only, no ledger.
pub fn reader_rule(config: &Config) -> String {
    let mut rule = String::from("resetkeys");
    for table in &config.tables {
        rule.push_str(&format!(" %R~{}", key_pattern(table.key.parts())));
    }
    rule.push_str(&format!(" resetchannels {READER_COMMANDS}"));
    rule
}

/// One command a run sends, with sample arguments: what `ACL DRYRUN` is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The table whose load sends it (empty: every run sends it).
    pub table: String,
    /// The command and its arguments; the key (if any) is the second word.
    pub args: Vec<String>,
}

impl Probe {
    fn new(table: &str, args: &[&str]) -> Probe {
        Probe {
            table: table.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// The command's name, upper case (`SCRIPT LOAD` for a subcommand).
    pub fn command(&self) -> String {
        match self.args.as_slice() {
            [name, sub, ..] if name == "SCRIPT" => format!("{name} {sub}"),
            [name, ..] => name.clone(),
            [] => String::new(),
        }
    }

    /// The key it touches, if any.
    pub fn key(&self) -> &str {
        let keyless = [
            "PING", "INFO", "SELECT", "TIME", "SCRIPT", "MULTI", "EXEC", "ROLE",
        ];
        match self.args.as_slice() {
            [name, ..] if keyless.contains(&name.as_str()) => "",
            [name, _, _, key, ..] if name == "EVALSHA" => key,
            [name, key, ..] if name != "EVALSHA" => key,
            _ => "",
        }
    }
}

/// A digest for the `EVALSHA` probes (never run: a dry run only checks the permission).
const SAMPLE_SHA: &str = "0000000000000000000000000000000000000000";

/// Every command the configured tables' runs send, per table with its sample data key and its
/// ledger and lease keys.
pub fn probes(config: &Config) -> Vec<Probe> {
    let db = config.redis.db.to_string();
    let mut out = vec![
        Probe::new("", &["PING"]),
        Probe::new("", &["INFO", "server"]),
        Probe::new("", &["SELECT", &db]),
        Probe::new("", &["SCRIPT", "LOAD", "return 1"]),
        Probe::new("", &["TIME"]),
    ];
    if config.redis.sentinel.is_some() {
        // The handshake checks that the node the sentinels named is a master.
        out.push(Probe::new("", &["ROLE"]));
    }
    let prefix = &config.ledger_prefix;
    for table in &config.tables {
        let name = table.name.as_str();
        let key = sample_key(table.key.parts());
        let key = key.as_str();
        let mut data = |args: &[&str]| out.push(Probe::new(name, args));
        data(&["EVALSHA", SAMPLE_SHA, "1", key]);
        data(&["PEXPIRETIME", key]);
        data(&["DEL", key]);
        if table.format == ValueFormat::Hash {
            data(&["MULTI"]);
            data(&["HSET", key, "f", "v"]);
            data(&["PEXPIREAT", key, "1"]);
            data(&["EXEC"]);
        } else {
            data(&["SET", key, "v", "PXAT", "1"]);
        }
        let partitions = format!("{prefix}:{{{name}}}:partitions");
        let watermark = format!("{prefix}:{{{name}}}:watermark");
        let fenced = format!("{prefix}:{{{name}}}:fenced");
        let lease = format!("{prefix}:{{{name}}}:lease");
        let shards = format!("{prefix}:{{{name}}}:lease:shards");
        let ledger: [&[&str]; 21] = [
            &["EVALSHA", SAMPLE_SHA, "1", &lease],
            &["HGETALL", &partitions],
            &["HGET", &partitions, "d"],
            &["HSET", &partitions, "d", "e"],
            &["HDEL", &partitions, "d"],
            &["HLEN", &partitions],
            &["GET", &watermark],
            &["SET", &watermark, "d"],
            &["DEL", &watermark],
            &["SADD", &fenced, "t"],
            &["SISMEMBER", &fenced, "t"],
            &["PEXPIRE", &fenced, "1"],
            &["SET", &lease, "h", "NX", "PX", "1"],
            &["GET", &lease],
            &["PEXPIRE", &lease, "1"],
            &["DEL", &lease],
            &["ZADD", &shards, "1", "h"],
            &["ZRANGE", &shards, "0", "-1", "WITHSCORES"],
            &["ZSCORE", &shards, "h"],
            &["ZREM", &shards, "h"],
            &["ZREMRANGEBYSCORE", &shards, "-inf", "1"],
        ];
        out.extend(ledger.into_iter().map(|args| Probe::new(name, args)));
        out.push(Probe::new(name, &["PEXPIREAT", &shards, "1"]));
    }
    out
}

/// A command the configured user may not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPermission {
    /// The probe that was refused.
    pub probe: Probe,
    /// What Redis said.
    pub reason: String,
}

/// What `check --connect` found out about the user's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclCheck {
    /// Every probe dry-ran; these were refused (none: the user may run every load).
    Checked {
        /// The user checked.
        user: String,
        /// The refused commands.
        missing: Vec<MissingPermission>,
    },
    /// The check could not run (the user may not run `ACL DRYRUN`, or the server is older than
    /// 7.0): the reason.
    Skipped(String),
}

/// Dry-runs every [`probes`] command as the configured user (`default` without a user name).
pub async fn check(control: &ControlClient, config: &Config) -> Result<AclCheck, RedisError> {
    let user = config
        .redis
        .username
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let mut missing = Vec::new();
    for probe in probes(config) {
        let mut cmd = ::redis::cmd("ACL");
        cmd.arg("DRYRUN").arg(&user);
        for arg in &probe.args {
            cmd.arg(arg);
        }
        match control.query::<Value>(&cmd).await {
            Ok(Value::Okay) => {}
            Ok(Value::SimpleString(text)) if text == "OK" => {}
            Ok(Value::BulkString(bytes)) if bytes == b"OK" => {}
            Ok(Value::BulkString(bytes)) => missing.push(MissingPermission {
                probe,
                reason: String::from_utf8_lossy(&bytes).into_owned(),
            }),
            Ok(Value::SimpleString(text)) => missing.push(MissingPermission {
                probe,
                reason: text,
            }),
            Ok(other) => {
                return Err(RedisError::Protocol(format!(
                    "ACL DRYRUN answered {other:?}"
                )))
            }
            Err(err) if is_permission_error(&err.to_string()) => {
                return Ok(AclCheck::Skipped(format!(
                    "user {user:?} may not run ACL DRYRUN (grant +acl|dryrun to check): {err}"
                )))
            }
            Err(err) if err.to_string().contains("unknown subcommand") => {
                return Ok(AclCheck::Skipped(format!(
                    "the server has no ACL DRYRUN (Redis 7.0+): {err}"
                )))
            }
            Err(err) => return Err(err),
        }
    }
    Ok(AclCheck::Checked { user, missing })
}

/// `check --connect`: [`check`], each missing permission logged (`acl_missing_permission`), a
/// skipped check too (`acl_check_skipped`). Returns the lines to print and whether a permission
/// is missing.
pub async fn check_and_log(
    control: &ControlClient,
    config: &Config,
) -> Result<(Vec<String>, bool), RedisError> {
    match check(control, config).await? {
        AclCheck::Skipped(reason) => {
            tracing::warn!(event = "acl_check_skipped", reason = %reason, "permissions not checked");
            Ok((vec![format!("acl: not checked: {reason}")], false))
        }
        AclCheck::Checked { user, missing } => {
            let mut lines = Vec::new();
            for gap in &missing {
                let (table, command, key) =
                    (&gap.probe.table, gap.probe.command(), gap.probe.key());
                tracing::error!(
                    event = "acl_missing_permission",
                    user = %user,
                    table = %table,
                    command = %command,
                    key = %key,
                    reason = %gap.reason,
                    "the redis user may not send a command a load sends"
                );
                lines.push(format!(
                    "acl: MISSING: user {user} may not run {command} on key {key:?} (table {table:?}): {}",
                    gap.reason
                ));
            }
            if missing.is_empty() {
                lines.push(format!(
                    "acl ok: user {user} may send every command of a load"
                ));
            }
            Ok((lines, !missing.is_empty()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::KeyTemplate;

    #[test]
    fn a_key_pattern_stars_each_column_and_escapes_glob_characters() {
        let template = KeyTemplate::parse("cold:{{orders}}:{order_id}:*?[x]").unwrap();
        assert_eq!(key_pattern(template.parts()), r"cold:{orders}:*:\*\?\[x\]");
        assert_eq!(sample_key(template.parts()), "cold:{orders}:0:*?[x]");
    }

    #[test]
    fn probes_name_their_command_and_key() {
        let probe = Probe::new("t", &["SCRIPT", "LOAD", "return 1"]);
        assert_eq!((probe.command(), probe.key()), ("SCRIPT LOAD".into(), ""));
        let probe = Probe::new("t", &["HSET", "k", "f", "v"]);
        assert_eq!((probe.command(), probe.key()), ("HSET".into(), "k"));
        let probe = Probe::new("t", &["EVALSHA", SAMPLE_SHA, "1", "k"]);
        assert_eq!((probe.command(), probe.key()), ("EVALSHA".into(), "k"));
        let probe = Probe::new("t", &["GET", "k"]);
        assert_eq!((probe.command(), probe.key()), ("GET".into(), "k"));
    }

    #[test]
    fn a_refusal_names_its_command_and_key_and_is_permanent() {
        let noperm = "NOPERM this user has no permissions to run the 'info' command";
        let err = RedisError::refused("INFO", "", noperm.to_string());
        assert_eq!(
            err.to_string(),
            format!("redis denied INFO: the ACL user lacks a permission ({noperm})")
        );
        assert!(!err.is_transient());
        let script = "ERR The user executing the script can't run this command or subcommand";
        let err = RedisError::refused("EVALSHA", "k", script.to_string());
        assert!(
            err.to_string()
                .starts_with("redis denied EVALSHA on key \"k\": "),
            "{err}"
        );
        let err = RedisError::refused("SET", "k", "OOM command not allowed".to_string());
        assert!(matches!(err, RedisError::Reply { .. }), "{err:?}");
    }
}
