//! Least privilege on a real Redis: the loader's and the readers' ACL rules exactly as the README
//! gives them (built by `coldsync::redis::acl`, which the README quotes), a loader missing one
//! permission, and `check --connect`'s `ACL DRYRUN` of every command a load sends.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use chrono::NaiveDate;
use coldsync::config::Config;
use coldsync::redis::acl::{self, AclCheck};
use coldsync::run::{Backfill, Engine, RunOptions, RunSummary, Shard};
use common::{
    event_field, fs_config_text, orders_batch, run_cli, table_toml, CliOutput, RedisServer,
    Scenario,
};
use tokio_util::sync::CancellationToken;

const AS_OF: &str = "2026-11-22";

/// A JSON table and a hash table over the same files.
fn tables() -> String {
    table_toml("orders", "orders", "acl:json", "columns = [\"status\"]")
        + &table_toml(
            "orders_h",
            "orders",
            "acl:hash",
            "columns = [\"status\"]\nvalue_format = \"hash\"",
        )
}

/// Two cold partitions of `orders`: ids 1, 2 on the 19th, 3 on the 20th.
fn warehouse(redis: &RedisServer) -> Scenario<'_> {
    let scenario = Scenario::new(redis);
    scenario.spark("orders", "dt=2026-11-19", &[orders_batch(&[1, 2], "acl")]);
    scenario.spark("orders", "dt=2026-11-20", &[orders_batch(&[3], "acl")]);
    scenario
}

fn env(user: &str) -> HashMap<String, String> {
    HashMap::from([
        ("COLDSYNC_REDIS_USERNAME".to_string(), user.to_string()),
        ("COLDSYNC_REDIS_PASSWORD".to_string(), format!("{user}-pw")),
    ])
}

fn config_as(root: &Path, redis: &RedisServer, user: &str) -> Config {
    Config::parse(&fs_config_text(root, redis, &tables()), &env(user)).unwrap()
}

/// `ACL SETUSER <user> reset on ><user>-pw <rule>`, as the default (admin) user.
fn create_user(redis: &RedisServer, user: &str, rule: &str) {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg("on")
        .arg(format!(">{user}-pw"));
    for word in rule.split_whitespace() {
        cmd.arg(word);
    }
    let _: () = redis.query(&cmd);
}

/// The loader's rule without `word`.
fn without(rule: &str, word: &str) -> String {
    assert!(
        rule.split_whitespace().any(|w| w == word),
        "{word} in {rule}"
    );
    let words: Vec<&str> = rule.split_whitespace().filter(|w| *w != word).collect();
    words.join(" ")
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

async fn run(engine: &Engine, backfill: Option<Backfill>, shard: Option<Shard>) -> RunSummary {
    let options = RunOptions {
        as_of: Some(day(AS_OF)),
        backfill,
        shard,
        ..RunOptions::default()
    };
    engine
        .run(&options, &CancellationToken::new())
        .await
        .unwrap()
}

/// A connection as `user`.
fn connect_as(redis: &RedisServer, user: &str) -> redis::Connection {
    let url = format!("redis://{user}:{user}-pw@127.0.0.1:{}/", redis.port);
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

fn ledger_dates(redis: &RedisServer, table: &str) -> BTreeSet<String> {
    redis
        .hgetall(&format!("coldsync:{{{table}}}:partitions"))
        .into_keys()
        .collect()
}

#[test]
fn the_readme_quotes_both_rules_word_for_word() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(acl::LOADER_COMMANDS),
        "README lacks the loader's commands"
    );
    assert!(
        readme.contains(acl::READER_COMMANDS),
        "README lacks the readers' commands"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_loads_everything_with_exactly_its_rule_and_a_reader_only_reads() {
    let redis = RedisServer::start();
    let scenario = warehouse(&redis);
    let config = config_as(scenario.root(), &redis, "loader");
    assert_eq!(
        acl::loader_rule(&config),
        format!(
            "resetkeys ~acl:json:* ~acl:hash:* ~coldsync:* resetchannels {}",
            acl::LOADER_COMMANDS
        )
    );
    assert_eq!(
        acl::reader_rule(&config),
        format!(
            "resetkeys %R~acl:json:* %R~acl:hash:* resetchannels {}",
            acl::READER_COMMANDS
        )
    );
    create_user(&redis, "loader", &acl::loader_rule(&config));
    create_user(&redis, "reader", &acl::reader_rule(&config));
    let engine = Engine::connect(config.clone()).await.unwrap();

    // check --connect's dry run: nothing missing.
    match acl::check(engine.ledger().control(), &config)
        .await
        .unwrap()
    {
        AclCheck::Checked { user, missing } => {
            assert_eq!(user, "loader");
            assert_eq!(missing, vec![]);
        }
        other => panic!("{other:?}"),
    }

    // Forward (unguarded SET, MULTI/DEL/HSET/PEXPIREAT/EXEC, exclusive lease, ledger,
    // watermark), then a forced backfill as shard 0/1 (guarded scripts, the shard lease).
    let forward = run(&engine, None, None).await;
    assert_eq!((forward.exit_code, forward.partitions_loaded), (0, 4));
    let backfill = Backfill {
        from: day("2026-11-19"),
        to: day("2026-11-20"),
        force: true,
    };
    let shard = Shard::new("--shard", 0, 1).unwrap();
    let again = run(&engine, Some(backfill), Some(shard)).await;
    assert_eq!((again.exit_code, again.partitions_loaded), (0, 4));
    for id in 1..=3 {
        assert_eq!(
            redis.get(&format!("acl:json:{id}")),
            Some(r#"{"status":"paid-acl"}"#.to_string())
        );
        assert_eq!(
            redis.hgetall(&format!("acl:hash:{id}")),
            BTreeMap::from([("status".to_string(), "paid-acl".to_string())])
        );
    }
    let dates = BTreeSet::from(["2026-11-19".to_string(), "2026-11-20".to_string()]);
    assert_eq!(ledger_dates(&redis, "orders"), dates);
    assert_eq!(ledger_dates(&redis, "orders_h"), dates);

    // The reader reads the data, and nothing else.
    let mut reader = connect_as(&redis, "reader");
    let value: Option<String> = redis::cmd("GET")
        .arg("acl:json:1")
        .query(&mut reader)
        .unwrap();
    assert_eq!(value.as_deref(), Some(r#"{"status":"paid-acl"}"#));
    let hash: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg("acl:hash:2")
        .query(&mut reader)
        .unwrap();
    assert_eq!(hash["status"], "paid-acl");
    let denied = |cmd: &redis::Cmd, reader: &mut redis::Connection| {
        let err = cmd.query::<redis::Value>(reader).unwrap_err().to_string();
        assert!(err.contains("no permissions"), "{err}");
    };
    denied(redis::cmd("SET").arg("acl:json:1").arg("x"), &mut reader);
    denied(redis::cmd("DEL").arg("acl:hash:1"), &mut reader);
    denied(
        redis::cmd("HGETALL").arg("coldsync:{orders}:partitions"),
        &mut reader,
    );
    denied(
        redis::cmd("GET").arg("coldsync:{orders}:watermark"),
        &mut reader,
    );
    assert_eq!(
        redis.get("acl:json:1"),
        Some(r#"{"status":"paid-acl"}"#.to_string())
    );

    // A loader that may not run ACL DRYRUN: the check is skipped, and says why.
    create_user(
        &redis,
        "nodryrun",
        &without(&acl::loader_rule(&config), "+acl|dryrun"),
    );
    let config = config_as(scenario.root(), &redis, "nodryrun");
    let engine = Engine::connect(config.clone()).await.unwrap();
    match acl::check(engine.ledger().control(), &config)
        .await
        .unwrap()
    {
        AclCheck::Skipped(reason) => assert!(reason.contains("+acl|dryrun"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_without_evalsha_fails_naming_the_command_and_key_and_records_nothing() {
    let redis = RedisServer::start();
    let scenario = warehouse(&redis);
    let config = config_as(scenario.root(), &redis, "loader");
    create_user(
        &redis,
        "loader",
        &without(&acl::loader_rule(&config), "+evalsha"),
    );
    let engine = Engine::connect(config.clone()).await.unwrap();
    let summary = run(&engine, None, None).await;
    assert_eq!((summary.exit_code, summary.partitions_loaded), (3, 0));
    for (table, outcome) in ["orders", "orders_h"].iter().zip(&summary.tables) {
        let error = outcome.error.clone().unwrap_or_default();
        let lease = format!("EVALSHA on key \"coldsync:{{{table}}}:lease\"");
        assert!(error.contains(&lease), "{error}");
        assert!(error.contains("lacks a permission"), "{error}");
    }
    assert_eq!(redis.dbsize(), 0, "nothing written, nothing recorded");

    // The dry run names exactly the EVALSHA calls: on a data key and on the lease, per table.
    let AclCheck::Checked { missing, .. } = acl::check(engine.ledger().control(), &config)
        .await
        .unwrap()
    else {
        panic!("checked");
    };
    let named: Vec<(String, String, String)> = missing
        .iter()
        .map(|m| {
            (
                m.probe.table.clone(),
                m.probe.command(),
                m.probe.key().to_string(),
            )
        })
        .collect();
    let expected = |table: &str, key: &str| (table.into(), "EVALSHA".into(), key.into());
    assert_eq!(
        named,
        vec![
            expected("orders", "acl:json:0"),
            expected("orders", "coldsync:{orders}:lease"),
            expected("orders_h", "acl:hash:0"),
            expected("orders_h", "coldsync:{orders_h}:lease"),
        ]
    );
    assert!(
        missing[0].reason.contains("'evalsha' command"),
        "{:?}",
        missing[0]
    );
}

#[test]
fn a_loader_without_hset_fails_each_partition_at_its_record_naming_the_command_and_key_never_retried(
) {
    let redis = RedisServer::start();
    let scenario = warehouse(&redis);
    let config = config_as(scenario.root(), &redis, "loader");
    create_user(
        &redis,
        "loader",
        &without(&acl::loader_rule(&config), "+hset"),
    );
    let out = cli_as(&scenario, &redis, "loader", &["run", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let failed = out.events_named("partition_failed");
    assert_eq!(failed.len(), 4, "{}", out.dump());
    for event in failed {
        let (table, error) = (text(event, "table"), text(event, "error"));
        // Both tables write their keys (JSON by SET, hash by RESTORE: neither needs HSET),
        // then the record script's HSET on the ledger is refused: nothing recorded.
        let named = format!("redis denied EVALSHA on key \"coldsync:{{{table}}}:partitions\"");
        assert!(error.contains(&named), "{event}");
        assert_eq!(
            event_field(event, "transient"),
            Some(&false.into()),
            "{event}"
        );
    }
    assert!(
        out.events_named("partition_retry").is_empty(),
        "{}",
        out.dump()
    );
    assert_eq!(ledger_dates(&redis, "orders_h"), BTreeSet::new());
    assert_eq!(ledger_dates(&redis, "orders"), BTreeSet::new());
}

/// A string field of a JSON log event (empty when missing).
fn text(event: &serde_json::Value, field: &str) -> String {
    event_field(event, field)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// `coldsync ARGS` on the scenario's config, as `user`.
fn cli_as(scenario: &Scenario<'_>, redis: &RedisServer, user: &str, args: &[&str]) -> CliOutput {
    let path = scenario.root().join("coldsync.toml");
    std::fs::write(&path, fs_config_text(scenario.root(), redis, &tables())).unwrap();
    let password = format!("{user}-pw");
    let envs = [
        ("COLDSYNC_REDIS_USERNAME", user),
        ("COLDSYNC_REDIS_PASSWORD", password.as_str()),
        ("RUST_LOG", "info"),
    ];
    let path = path.display().to_string();
    let mut full = vec!["--config", path.as_str(), "--log-format", "json"];
    full.extend_from_slice(args);
    run_cli(&full, &envs)
}

#[test]
fn check_connect_names_each_missing_ledger_permission_and_exits_2() {
    let redis = RedisServer::start();
    let scenario = warehouse(&redis);
    let config = config_as(scenario.root(), &redis, "loader");
    create_user(
        &redis,
        "loader",
        &without(&acl::loader_rule(&config), "~coldsync:*"),
    );
    let cli = |args: &[&str]| cli_as(&scenario, &redis, "loader", args);
    let out = cli(&["check", "--connect"]);
    assert_eq!(out.status_code, 2, "{}", out.dump());
    let missing = out.events_named("acl_missing_permission");
    // Every ledger and lease key of both tables (22 each), nothing else.
    assert_eq!(missing.len(), 44, "{}", out.dump());
    for event in &missing {
        let key = text(event, "key");
        let table = text(event, "table");
        assert!(
            key.starts_with(&format!("coldsync:{{{table}}}:")),
            "{event}"
        );
        assert!(
            text(event, "reason").contains(&format!("'{key}' key")),
            "{event}"
        );
        assert_eq!(text(event, "user"), "loader");
    }
    assert!(missing.iter().any(
        |e| text(e, "command") == "HGETALL" && text(e, "key") == "coldsync:{orders}:partitions"
    ));
    assert!(
        out.stdout
            .contains("acl: MISSING: user loader may not run ZADD"),
        "{}",
        out.dump()
    );

    // The run fails at the table's start (its lease), naming the command and key, records nothing.
    let out = cli(&["run", "--as-of", AS_OF]);
    assert_eq!(out.status_code, 3, "{}", out.dump());
    assert!(
        out.stderr.contains("coldsync:{orders}:lease")
            || out.stdout.contains("coldsync:{orders}:lease"),
        "{}",
        out.dump()
    );
    assert_eq!(redis.dbsize(), 0);
}
