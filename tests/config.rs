//! Config loading: the example file parses, every invalid option is rejected naming it, secrets
//! come only from the environment or files and are never printed.

use std::collections::HashMap;

use coldsync::config::{Completeness, Config, LoadMode};
use coldsync::encode::ValueFormat;

const BASE: &str = r#"
[source]
scheme = "fs"
root = "/data"

[redis]
url = "redis://127.0.0.1:6379/0"

[defaults]
retention_days = 30

[[tables]]
name = "orders"
path = "orders"
key = "cold:orders:{order_id}"
"#;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn error_of(text: &str) -> String {
    Config::parse(text, &HashMap::new())
        .expect_err("config must be rejected")
        .to_string()
}

#[test]
fn example_config_parses_with_documented_defaults() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/coldsync.example.toml"
    ))
    .unwrap();
    let config = Config::parse(&text, &HashMap::new()).unwrap();
    assert_eq!(config.tables.len(), 1);
    let orders = &config.tables[0];
    assert_eq!(orders.name, "orders");
    assert_eq!(orders.partition_column, "dt");
    assert_eq!(orders.partition_format, "%Y-%m-%d");
    assert_eq!(orders.timezone, chrono_tz::Asia::Shanghai);
    assert_eq!((orders.hot_days, orders.retention_days), (2, 30));
    assert_eq!(orders.mode, LoadMode::Incremental);
    assert_eq!(orders.completeness, Completeness::Marker);
    assert_eq!(orders.format, ValueFormat::Json);
    assert_eq!(config.redis.batch_size, 1000);
    assert_eq!(config.schedule.as_deref(), Some("0 30 2 * * *"));
}

#[test]
fn minimal_config_gets_defaults() {
    let config = Config::parse(BASE, &HashMap::new()).unwrap();
    let t = &config.tables[0];
    assert_eq!(t.hot_days, 2);
    assert_eq!(t.timezone, chrono_tz::UTC);
    assert_eq!(t.key_columns(), vec!["order_id".to_string()]);
    assert_eq!(config.redis.port, 6379);
    assert_eq!(config.redis.db, 0);
    assert_eq!(config.ledger_prefix, "coldsync");
}

#[test]
fn invalid_options_are_rejected_naming_the_option() {
    let cases: Vec<(String, &str)> = vec![
        (
            BASE.replace(
                "key = \"cold:orders:{order_id}\"",
                "key = \"cold:orders:{order_id\"",
            ),
            "tables[0] (orders).key",
        ),
        (
            BASE.replace("key = \"cold:orders:{order_id}\"", "key = \"cold:orders\""),
            "tables[0] (orders).key",
        ),
        (
            format!("{BASE}partition_format = \"%Y-%m\"\n"),
            "tables[0] (orders).partition_format",
        ),
        (
            format!("{BASE}timezone = \"Mars/Olympus\"\n"),
            "tables[0] (orders).timezone",
        ),
        (
            format!("{BASE}value_format = \"xml\"\n"),
            "tables[0] (orders).value_format",
        ),
        (
            format!("{BASE}value_format = \"column\"\n"),
            "tables[0] (orders).value_column",
        ),
        (
            format!("{BASE}mode = \"full\"\n"),
            "tables[0] (orders).mode",
        ),
        (
            format!("{BASE}completeness = \"maybe\"\n"),
            "tables[0] (orders).completeness",
        ),
        (
            format!("{BASE}delete_missing = true\n"),
            "tables[0] (orders).delete_missing",
        ),
        (
            format!("{BASE}hot_days = 40\n"),
            "tables[0] (orders).retention_days",
        ),
        (format!("{BASE}key_typo = 1\n"), "tables[0] (orders)"),
        (
            BASE.replace(
                "key = \"cold:orders:{order_id}\"",
                "key = \"cold:{dt}:{order_id}\"",
            ),
            "tables[0] (orders).key",
        ),
        (
            BASE.replace("retention_days = 30", ""),
            "tables[0] (orders).retention_days",
        ),
        (
            BASE.replace("scheme = \"fs\"", "scheme = \"ftp\""),
            "source.scheme",
        ),
        (BASE.replace("root = \"/data\"", ""), "source.root"),
        (BASE.replace("redis://", "http://"), "redis.url"),
        (
            format!("{BASE}[[tables]]\nname = \"orders\"\npath = \"o2\"\nkey = \"k:{{id}}\"\n"),
            "tables[1].name",
        ),
        (
            BASE.split("[[tables]]").next().unwrap().to_string(),
            "tables",
        ),
        (
            BASE.replace("[redis]", "[redis]\nbatch_size = 0"),
            "redis.batch_size",
        ),
    ];
    for (text, option) in cases {
        let message = error_of(&text);
        assert!(
            message.contains(option),
            "expected {option:?} in {message:?}"
        );
    }
}

#[test]
fn unknown_sections_and_fields_are_rejected_with_their_name() {
    let message = error_of(&BASE.replace("[redis]", "[redis]\nconections = 4"));
    assert!(message.contains("conections"), "{message}");
    let message = error_of(&format!("{BASE}\n[extra]\na = 1\n"));
    assert!(message.contains("extra"), "{message}");
}

#[test]
fn source_options_the_service_does_not_know_are_rejected_with_a_suggestion() {
    let cases = [
        (
            "read_concurency = 2",
            "option source.read_concurency: the fs service has no option \"read_concurency\" (did you mean \"read_concurrency\"?)",
        ),
        (
            "root_dir = \"/data\"",
            "option source.root_dir: the fs service has no option \"root_dir\" (did you mean \"root\"?)",
        ),
        (
            "bucket = \"b\"",
            "option source.bucket: the fs service has no option \"bucket\"; its options: root, atomic_write_dir",
        ),
    ];
    for (line, expected) in cases {
        let text = BASE.replace("root = \"/data\"", &format!("root = \"/data\"\n{line}"));
        assert_eq!(error_of(&text), expected, "{line}");
    }
    let s3 = BASE.replace(
        "scheme = \"fs\"\nroot = \"/data\"",
        "scheme = \"s3\"\nbucket = \"b\"\nregoin = \"eu-west-1\"",
    );
    assert_eq!(
        error_of(&s3),
        "option source.regoin: the s3 service has no option \"regoin\" (did you mean \"region\"?)"
    );
    // Known options, aliases and the `_env` forms pass.
    let s3 = BASE.replace(
        "scheme = \"fs\"\nroot = \"/data\"",
        "scheme = \"s3\"\nbucket = \"b\"\naws_region = \"eu-west-1\"\naccess_key_id_env = \"K\"",
    );
    Config::parse(&s3, &env(&[("K", "id")])).expect("known options pass");
}

#[test]
fn secrets_only_from_environment_or_files_and_redacted() {
    // An s3 source: fs has no secret_access_key option (unknown options are refused).
    let s3_base = BASE.replace(
        "scheme = \"fs\"\nroot = \"/data\"",
        "scheme = \"s3\"\nbucket = \"b\"",
    );
    let literal = s3_base.replace(
        "bucket = \"b\"",
        "bucket = \"b\"\nsecret_access_key = \"abc\"",
    );
    let message = error_of(&literal);
    assert!(message.contains("source.secret_access_key"), "{message}");
    assert!(!message.contains("abc"), "{message}");

    let from_env = s3_base.replace(
        "bucket = \"b\"",
        "bucket = \"b\"\nsecret_access_key_env = \"MY_SECRET\"",
    );
    let missing = Config::parse(&from_env, &HashMap::new())
        .unwrap_err()
        .to_string();
    assert!(missing.contains("MY_SECRET"), "{missing}");
    let config = Config::parse(&from_env, &env(&[("MY_SECRET", "s3cr3t-value")])).unwrap();
    assert_eq!(
        config.source.options["secret_access_key"].expose(),
        "s3cr3t-value"
    );
    assert!(!format!("{:?}", config.source).contains("s3cr3t-value"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "file-pass\n").unwrap();
    let with_file = BASE.replace(
        "[redis]",
        &format!("[redis]\npassword_file = {:?}", file.display().to_string()),
    );
    let config = Config::parse(&with_file, &HashMap::new()).unwrap();
    assert_eq!(
        config.redis.password.as_ref().unwrap().expose(),
        "file-pass"
    );
    assert_eq!(config.redis.masked_url(), "redis://:****@127.0.0.1:6379/0");
    assert!(!format!("{:?}", config.redis).contains("file-pass"));

    let config = Config::parse(
        BASE,
        &env(&[
            ("COLDSYNC_REDIS_PASSWORD", "envpass"),
            ("COLDSYNC_REDIS_USERNAME", "loader"),
        ]),
    )
    .unwrap();
    assert_eq!(config.redis.password.as_ref().unwrap().expose(), "envpass");
    assert_eq!(
        config.redis.masked_url(),
        "redis://loader:****@127.0.0.1:6379/0"
    );

    let in_url = BASE.replace("redis://127.0.0.1", "rediss://u:hunter2@127.0.0.1");
    let config = Config::parse(&in_url, &HashMap::new()).unwrap();
    assert!(config.redis.tls);
    assert_eq!(
        config.redis.masked_url(),
        "rediss://u:****@127.0.0.1:6379/0"
    );
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn partition_values_parse_only_in_canonical_form() {
    let compact = Config::parse(
        &format!("{BASE}partition_format = \"%Y%m%d\"\n"),
        &HashMap::new(),
    )
    .unwrap();
    let t = &compact.tables[0];
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    assert_eq!(t.parse_partition_value("20261120"), Some(date));
    assert_eq!(t.parse_partition_value("2026-11-20"), None);
    assert_eq!(t.parse_partition_value("__HIVE_DEFAULT_PARTITION__"), None);
    let dashed = Config::parse(BASE, &HashMap::new()).unwrap();
    assert_eq!(
        dashed.tables[0].parse_partition_value("2026-11-20"),
        Some(date)
    );
    assert_eq!(dashed.tables[0].parse_partition_value("2026-11-2"), None);
}

/// Runs the built binary's offline `check` with JSON logs on `text`: (exit code, stdout, stderr).
fn check_with_cli(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coldsync.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coldsync"))
        .arg("--log-format")
        .arg("json")
        .arg("--config")
        .arg(&path)
        .arg("check")
        .env_remove("COLDSYNC_CONFIG")
        .env_remove("COLDSYNC_LOG_FORMAT")
        .output()
        .expect("coldsync runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts an offline `check` of `text` exits 2 with only JSON log lines and the plain
/// `error: ` line on stderr, both naming `option`.
fn assert_check_refuses(text: &str, option: &str) {
    let (code, stdout, stderr) = check_with_cli(text);
    let dump = format!("exit code {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert_eq!(code, Some(2), "{dump}");
    assert!(
        !stderr.contains("panicked"),
        "a panic reached the log:\n{dump}"
    );
    let mut invalid_events = 0;
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(message) = line.strip_prefix("error: ") {
            assert!(message.contains(option), "{dump}");
            continue;
        }
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("non-JSON log line {line:?} ({err}):\n{dump}"));
        if event["event"] == "config_invalid" {
            invalid_events += 1;
            let error = event["error"].as_str().unwrap_or_default();
            assert!(error.contains(option), "{dump}");
        }
    }
    assert_eq!(invalid_events, 1, "{dump}");
}

#[test]
fn bad_partition_format_is_refused_without_a_panic_in_the_json_log() {
    for format in ["%Y-%m-%d %Q", "%", "%Y-%m-%d %H", "%Y-%m", "%Y/%m/%d"] {
        let text = format!("{BASE}partition_format = {format:?}\n");
        let message = error_of(&text);
        assert!(
            message.contains("tables[0] (orders).partition_format") && message.contains(format),
            "{format}: {message}"
        );
        assert_check_refuses(&text, "tables[0] (orders).partition_format");
    }
}

#[test]
fn partition_values_format_and_parse_with_the_table_format() {
    let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    for (format, value) in [
        ("%Y-%m-%d", "2026-01-05"),
        ("%Y%m%d", "20260105"),
        ("%d.%m.%Y", "05.01.2026"),
    ] {
        let config = Config::parse(
            &format!("{BASE}partition_format = {format:?}\n"),
            &HashMap::new(),
        )
        .unwrap();
        let table = &config.tables[0];
        assert_eq!(table.partition_format, format);
        assert_eq!(table.format_partition_value(date), value);
        assert_eq!(table.parse_partition_value(value), Some(date), "{format}");
    }
}

fn with_schedule(schedule: &str) -> String {
    format!("[daemon]\nschedule = {schedule:?}\n{BASE}")
}

/// Whether the daemon's scheduler accepts `schedule` (the call `daemon::run_daemon` makes).
fn daemon_accepts(schedule: &str) -> bool {
    tokio_cron_scheduler::Job::new_async_tz(schedule, chrono_tz::UTC, |_id, _scheduler| {
        Box::pin(async {})
    })
    .is_ok()
}

#[test]
fn cron_schedule_is_parsed_at_load_like_the_daemon_parses_it() {
    for schedule in [
        "0 61 2 * * *",
        "0 30 2 * * * * *",
        "bogus",
        "0 30 2 * * foo",
        "60 * * * * *",
    ] {
        assert!(!daemon_accepts(schedule), "{schedule}");
        let message = error_of(&with_schedule(schedule));
        assert!(
            message.contains("daemon.schedule") && message.contains(schedule),
            "{schedule}: {message}"
        );
    }
    for schedule in [
        "0 30 2 * * *",
        "*/1 * * * * *",
        "0 0 3 * * Mon-Fri",
        "0 30 2 1 * * 2030",
    ] {
        assert!(daemon_accepts(schedule), "{schedule}");
        let config = Config::parse(&with_schedule(schedule), &HashMap::new())
            .unwrap_or_else(|err| panic!("{schedule}: {err}"));
        assert_eq!(config.schedule.as_deref(), Some(schedule));
    }
}

#[test]
fn check_refuses_a_cron_the_daemon_would_refuse() {
    assert_check_refuses(&with_schedule("0 61 2 * * *"), "daemon.schedule");
    let (code, stdout, stderr) = check_with_cli(&with_schedule("0 30 2 * * *"));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
}

#[test]
fn enum_options_name_the_option_and_list_the_accepted_values() {
    for (line, option, accepted) in [
        (
            "mode = \"full\"",
            "tables[0] (orders).mode",
            vec!["incremental", "snapshot"],
        ),
        ("mode = 1", "tables[0] (orders).mode", vec![]),
        (
            "completeness = \"maybe\"",
            "tables[0] (orders).completeness",
            vec!["marker", "table_marker", "none"],
        ),
        (
            "value_format = \"xml\"",
            "tables[0] (orders).value_format",
            vec!["json", "hash", "column", "delimited"],
        ),
        (
            "timestamp_encoding = \"unix\"",
            "tables[0] (orders).timestamp_encoding",
            vec!["iso8601", "epoch_millis"],
        ),
        ("hot_days = \"two\"", "tables[0] (orders).hot_days", vec![]),
    ] {
        let message = error_of(&format!("{BASE}{line}\n"));
        assert!(message.contains(option), "{line}: {message}");
        for value in accepted {
            assert!(
                message.contains(value),
                "{line}: {value} not listed in {message}"
            );
        }
    }
    // The same names are accepted (under [[tables]] and under [defaults]).
    let config = Config::parse(
        &format!(
            "{}mode = \"snapshot\"\ncompleteness = \"table_marker\"\nvalue_format = \"delimited\"\nseparator = \"|\"\n",
            BASE.replace("[defaults]", "[defaults]\ncompleteness = \"none\"\nvalue_format = \"hash\"")
        ),
        &HashMap::new(),
    )
    .unwrap();
    let t = &config.tables[0];
    assert_eq!(t.mode, LoadMode::Snapshot);
    assert_eq!(t.completeness, Completeness::TableMarker);
    assert_eq!(
        t.format,
        ValueFormat::Delimited {
            separator: "|".to_string(),
            null_string: String::new()
        }
    );
    let config = Config::parse(
        &BASE.replace(
            "[defaults]",
            "[defaults]\ncompleteness = \"none\"\nvalue_format = \"hash\"\nmode = \"snapshot\"",
        ),
        &HashMap::new(),
    )
    .unwrap();
    let t = &config.tables[0];
    assert_eq!(t.mode, LoadMode::Snapshot);
    assert_eq!(t.completeness, Completeness::None);
    assert_eq!(t.format, ValueFormat::Hash);
    // A bad value under [defaults] is refused at parse, pointing at its line.
    let message = error_of(&BASE.replace("[defaults]", "[defaults]\nmode = \"full\""));
    assert!(message.contains("mode = \"full\""), "{message}");
    assert!(message.contains("incremental"), "{message}");
}

#[test]
fn cluster_seeds_wait_replicas_and_their_validation() {
    let cluster = BASE.replace(
        "[redis]",
        "[redis]\ncluster = true\nurls = [\"redis://10.0.0.2:7001\", \"redis://127.0.0.1:6379\"]\n\
         wait_replicas = 1\nwait_timeout = \"500ms\"",
    );
    let config = Config::parse(&cluster, &HashMap::new()).unwrap();
    let seeds = &config.redis.cluster.as_ref().unwrap().seeds;
    // The URL's node first, duplicates once.
    assert_eq!(
        seeds,
        &vec![
            ("127.0.0.1".to_string(), 6379),
            ("10.0.0.2".to_string(), 7001)
        ]
    );
    assert_eq!(config.redis.wait_replicas, 1);
    assert_eq!(
        config.redis.wait_timeout,
        std::time::Duration::from_millis(500)
    );

    // Defaults: one server, no WAIT, a 2 s timeout; WAIT works on one server too.
    let single = Config::parse(BASE, &HashMap::new()).unwrap();
    assert!(single.redis.cluster.is_none());
    assert_eq!(single.redis.wait_replicas, 0);
    assert_eq!(single.redis.wait_timeout, std::time::Duration::from_secs(2));
    let waiting = BASE.replace("[redis]", "[redis]\nwait_replicas = 2");
    assert_eq!(
        Config::parse(&waiting, &HashMap::new())
            .unwrap()
            .redis
            .wait_replicas,
        2
    );

    for (options, option, says) in [
        (
            "urls = [\"redis://h:1\"]",
            "redis.urls",
            "redis.cluster = true",
        ),
        (
            "cluster = true\nurls = [\"nope\"]",
            "redis.urls",
            "not a URL",
        ),
        (
            "cluster = true\nurls = [\"rediss://h:1\"]",
            "redis.urls",
            "scheme of redis.url",
        ),
        ("cluster = true\ndb = 3", "redis.db", "only database 0"),
        (
            "wait_timeout = \"soon\"",
            "redis.wait_timeout",
            "not a duration",
        ),
        ("wait_timeout = \"0s\"", "redis.wait_timeout", ""),
    ] {
        let text = BASE.replace("[redis]", &format!("[redis]\n{options}"));
        let message = error_of(&text);
        assert!(message.contains(option), "{options}: {message}");
        assert!(message.contains(says), "{options}: {message}");
    }
    // A cluster over TLS: every seed rediss://.
    let tls = BASE.replace("redis://", "rediss://").replace(
        "[redis]",
        "[redis]\ncluster = true\nurls = [\"rediss://h2:7000\"]",
    );
    let config = Config::parse(&tls, &HashMap::new()).expect("a cluster over TLS");
    assert!(config.redis.tls);
    assert_eq!(
        config.redis.cluster.unwrap().seeds.last(),
        Some(&("h2".to_string(), 7000))
    );
}

/// Every `[[tables]]` example of the README (quick start, Sources) is a valid config: completed
/// with a `[source]`, a `[redis]` and `retention_days` where it has none.
#[test]
fn every_table_example_in_the_readme_parses() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .filter(|block| block.contains("[[tables]]"))
        .collect();
    assert!(
        blocks.len() >= 4,
        "README's table examples: {}",
        blocks.len()
    );
    for block in blocks {
        let mut text = block.to_string();
        let has = |header: &str| block.lines().any(|line| line.trim() == header);
        if !has("[source]") {
            text.push_str("\n[source]\nscheme = \"fs\"\nroot = \"/data\"\n");
        }
        if !has("[redis]") {
            text.push_str("\n[redis]\nurl = \"redis://127.0.0.1:6379/0\"\n");
        }
        if !text.contains("retention_days") {
            text.push_str("\n[defaults]\nretention_days = 30\n");
        }
        let config = Config::parse(&text, &HashMap::new())
            .unwrap_or_else(|err| panic!("README example does not parse: {err}\n{block}"));
        assert!(!config.tables.is_empty(), "{block}");
    }
}
