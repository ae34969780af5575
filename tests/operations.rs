//! Running coldsync in production, end to end against a real `redis-server` and the built
//! binary: one run at a time per table (leases, exit code 5, a holder killed with -9, a stolen
//! lease), shards of a backfill in parallel, late partitions waited for, progress during long
//! loads, SIGTERM in the middle of a load (run and daemon), and the JSON shape of every event.
//!
//! Loads are made slow on purpose with a per-table `max_keys_per_sec`, so that a test can act
//! while one is in progress (it waits for a `load_progress` event of the partition first).

mod common;
#[path = "operations/shapes.rs"]
mod shapes;
#[path = "operations/support.rs"]
mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use coldsync::config::Config;
use coldsync::lease::{Acquired, Lease, LeaseHolder, LeaseKind, LeasedRecord};
use coldsync::ledger::Ledger;
use coldsync::run::{Engine, RunOptions, Shard};
use common::*;
use serde_json::Value;
use shapes::assert_shapes;
use support::*;
use tokio_util::sync::CancellationToken;

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// True for a `load_progress` event of `day` that has read rows.
fn progress_of(day: &'static str) -> impl Fn(&Value) -> bool {
    move |e: &Value| e["event"] == "load_progress" && e["date"] == day && number(e, "rows") > 0
}

fn loaded_dates(events: &[Value]) -> Vec<String> {
    named(events, "partition_loaded")
        .iter()
        .map(|e| text(e, "date").to_string())
        .collect()
}

#[test]
fn two_runs_at_once_one_loads_the_other_exits_5_naming_the_holder() {
    let redis = RedisServer::start();
    let ws = Workspace::new(&redis);
    ws.config(30, "max_keys_per_sec = 1500", "")
        .partition("2026-11-19", &orders_file(0, 1500, "a"), true)
        .partition("2026-11-20", &orders_file(1000, 1500, "b"), true);
    let args = ["run", "--as-of", AS_OF];
    let a = ws.spawn(&args, &[("POD_NAME", "pod-a")]);
    let b = ws.spawn(&args, &[("POD_NAME", "pod-b")]);
    let (status_a, events_a) = a.finish(Duration::from_secs(60));
    let (status_b, events_b) = b.finish(Duration::from_secs(60));
    assert_shapes(&events_a);
    assert_shapes(&events_b);
    let mut runs = [
        (status_a.code(), events_a, "pod-a"),
        (status_b.code(), events_b, "pod-b"),
    ];
    runs.sort_by_key(|(code, ..)| *code);
    let [(winner_code, winner, winner_pod), (loser_code, loser, _)] = runs;
    assert_eq!(
        (winner_code, loser_code),
        (Some(0), Some(5)),
        "{winner:#?}\n{loser:#?}"
    );
    assert_eq!(loaded_dates(&winner), ["2026-11-19", "2026-11-20"]);
    assert!(named(&loser, "partition_loaded").is_empty(), "{loser:#?}");

    let held = one(&loser, "lease_held");
    let winner_run = text(one(&winner, "run_started"), "run_id");
    assert_eq!(text(held, "table"), "orders");
    assert_eq!(text(held, "holder_run_id"), winner_run);
    assert_eq!(text(held, "holder_host"), winner_pod);
    chrono::DateTime::parse_from_rfc3339(text(held, "holder_since")).expect("since is RFC 3339");
    let finished = one(&loser, "table_finished");
    assert_eq!(finished["status"], "lease_held");
    assert!(text(finished, "error").contains(winner_run), "{finished}");
    assert_eq!(one(&loser, "run_finished")["exit_code"], 5);

    assert_values(
        &redis,
        &expected_values(&[
            ("2026-11-19", 0, 1500, "a"),
            ("2026-11-20", 1000, 1500, "b"),
        ]),
    );
    let ledger = ws.ledger();
    assert_eq!(ledger.len(), 2);
    assert!(
        ledger.values().all(|e| e["run_id"] == winner_run),
        "{ledger:?}"
    );
    assert_eq!(lease_value(&redis), None, "released by its holder");
}

#[test]
fn a_holder_killed_with_kill_9_loses_its_lease_at_expiry_and_the_next_run_proceeds() {
    let redis = RedisServer::start();
    let ws = Workspace::new(&redis);
    let slow = "max_keys_per_sec = 1000";
    ws.config(4, slow, "")
        .partition("2026-11-20", &orders_file(0, 4000, "a"), true);
    let mut holder = ws.spawn(&["run", "--as-of", AS_OF], &[("POD_NAME", "pod-a")]);
    let started = holder.until(Duration::from_secs(30), |e| e["event"] == "run_started");
    holder.until(Duration::from_secs(30), progress_of("2026-11-20"));
    holder.signal("-KILL");
    let (status, _) = holder.finish(Duration::from_secs(10));
    assert_eq!(status.code(), None, "killed by the signal");
    assert!(ws.ledger().is_empty(), "nothing recorded by the killed run");

    // Its lease is still live: a run that does not wait exits 5 and names it.
    let out = ws.cli(&["run", "--as-of", AS_OF], &[("POD_NAME", "pod-b")]);
    assert_eq!(out.status_code, 5, "{}", out.dump());
    assert_shapes(&out.events);
    let held = out.event("lease_held").expect("lease_held");
    assert_eq!(held["holder_run_id"], started["run_id"]);
    assert_eq!(held["holder_host"], "pod-a");

    // A run that waits gets it once the 4 s expiry runs out, and loads everything.
    ws.config(4, &format!("{slow}\nlease_wait = \"20s\""), "");
    let out = ws.cli(&["run", "--as-of", AS_OF], &[("POD_NAME", "pod-c")]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert_shapes(&out.events);
    let finished = out.event("table_finished").unwrap();
    assert!(number(finished, "lease_wait_ms") > 0, "{finished}");
    assert_eq!(finished["status"], "ok");
    assert_values(&redis, &expected_values(&[("2026-11-20", 0, 4000, "a")]));
    assert_eq!(ws.ledger().len(), 1);
}

#[test]
fn a_run_whose_lease_is_stolen_stops_without_recording() {
    let redis = RedisServer::start();
    let ws = Workspace::new(&redis);
    ws.config(3, "max_keys_per_sec = 1000", "")
        .partition("2026-11-18", &orders_file(0, 100, "a"), true)
        .partition("2026-11-19", &orders_file(100, 4000, "b"), true)
        .partition("2026-11-20", &orders_file(5000, 100, "c"), true);
    let mut run = ws.spawn(&["run", "--as-of", AS_OF], &[]);
    run.until(Duration::from_secs(30), progress_of("2026-11-19"));
    redis.cmd::<String>("SET", &["coldsync:{orders}:lease", "thief", "PX", "60000"]);
    let (status, events) = run.finish(Duration::from_secs(30));
    assert_shapes(&events);
    assert_eq!(status.code(), Some(3), "{events:#?}");
    let lost = one(&events, "lease_lost");
    assert_eq!(lost["table"], "orders");
    assert_eq!(loaded_dates(&events), ["2026-11-18"]);
    let failed = one(&events, "partition_failed");
    assert_eq!(failed["date"], "2026-11-19");
    assert!(text(failed, "error").contains("lease"), "{failed}");
    let finished = one(&events, "table_finished");
    assert_eq!(finished["status"], "failed");
    assert!(text(finished, "error").contains("lease lost"), "{finished}");
    assert_eq!(
        ws.ledger().keys().cloned().collect::<Vec<_>>(),
        ["2026-11-18"],
        "the partition in progress and the ones after it are not recorded"
    );
    // The watermark moves with each record (issue 9): the partition recorded while the lease
    // was held moved it, nothing after the loss did (was `None` when it was written at the end).
    assert_eq!(
        redis.get("coldsync:{orders}:watermark").as_deref(),
        Some("2026-11-18"),
        "no watermark written after the lease was lost"
    );
    assert_eq!(
        lease_value(&redis).as_deref(),
        Some("thief"),
        "not released: not its own"
    );
}

/// A config for the library tests: `orders` with `lease_wait`, Redis at `redis`.
fn engine_config(ws: &Workspace, lease_wait: &str) -> Config {
    ws.config(3, &format!("lease_wait = \"{lease_wait}\""), "");
    let env = HashMap::from([("POD_NAME".to_string(), "test-pod".to_string())]);
    Config::load(&ws.config_path(), &env).unwrap()
}

async fn take(ledger: &Ledger, kind: LeaseKind, run: &str) -> Acquired {
    let holder = LeaseHolder::new(run, "test-pod");
    let (ttl, wait) = (Duration::from_secs(30), Duration::ZERO);
    Lease::acquire(
        ledger,
        "orders",
        kind,
        &holder,
        ttl,
        wait,
        &CancellationToken::new(),
    )
    .await
    .unwrap()
}

fn held(acquired: Acquired) -> Lease {
    match acquired {
        Acquired::Held(lease, _) => lease,
        Acquired::Busy(holder, _) => panic!("busy: held by {holder:?}"),
        Acquired::Cancelled => panic!("cancelled"),
    }
}

fn busy(acquired: Acquired) -> LeaseHolder {
    match acquired {
        Acquired::Busy(holder, _) => holder,
        Acquired::Held(lease, _) => panic!("taken: {:?}", lease.holder()),
        Acquired::Cancelled => panic!("cancelled"),
    }
}

#[tokio::test]
async fn shards_share_a_table_a_whole_table_run_waits_for_them_and_records_need_the_lease() {
    let redis = RedisServer::start();
    let ws = Workspace::new(&redis);
    ws.partition("2026-11-20", &orders_file(0, 10, "a"), true);
    let config = engine_config(&ws, "0s");
    let ledger = Ledger::connect(&config.redis, "coldsync").await.unwrap();
    let shard = |i| LeaseKind::Shard(Shard::new("test", i, 2).unwrap());

    let zero = held(take(&ledger, shard(0), "backfill-0").await);
    let one_of_two = held(take(&ledger, shard(1), "backfill-1").await);
    let again = busy(take(&ledger, shard(0), "backfill-0-retry").await);
    assert_eq!(again.run_id, "backfill-0", "the same shard is held once");
    let nightly = busy(take(&ledger, LeaseKind::Exclusive, "nightly").await);
    assert!(nightly.run_id.starts_with("backfill-"), "{nightly:?}");

    // The nightly run skips the table (exit code 5) while a shard lease is live.
    let engine = Engine::connect(config.clone()).await.unwrap();
    let options = RunOptions {
        as_of: Some(date(AS_OF)),
        ..RunOptions::default()
    };
    let summary = engine
        .run(&options, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.exit_code, 5);
    assert_eq!(summary.tables[0].status, "lease_held");
    assert_eq!(redis.dbsize(), 1, "only the shard set: nothing loaded");

    // A lost shard lease records nothing: the record is conditional, in one script.
    redis.cmd::<i64>("DEL", &["coldsync:{orders}:lease:shards"]);
    let entry = coldsync::ledger::LedgerEntry {
        fingerprint: "f".into(),
        counters: Default::default(),
        run_id: "backfill-0".into(),
        loaded_at: "now".into(),
        expires_at_ms: 1,
        snapshot: None,
    };
    let lost = |recorded: LeasedRecord| matches!(recorded, LeasedRecord::LeaseLost);
    let (day_20, day_19) = (date("2026-11-20"), date("2026-11-19"));
    let recorded = zero.record(&ledger, day_20, &entry, None).await.unwrap();
    assert!(lost(recorded));
    let recorded = one_of_two
        .record(&ledger, day_19, &entry, None)
        .await
        .unwrap();
    assert!(lost(recorded));
    assert!(ws.ledger().is_empty());
    assert!(zero.is_lost());

    // The exclusive lease keeps shards out, records while held, and only its holder releases it.
    let exclusive = held(take(&ledger, LeaseKind::Exclusive, "nightly").await);
    assert_eq!(
        busy(take(&ledger, shard(1), "backfill").await).run_id,
        "nightly"
    );
    let recorded = exclusive
        .record(&ledger, day_20, &entry, None)
        .await
        .unwrap();
    assert!(matches!(recorded, LeasedRecord::Recorded(_)));
    assert_eq!(ws.ledger().len(), 1);
    redis.set("coldsync:{orders}:lease", "someone else");
    assert!(
        !exclusive.release().await.unwrap(),
        "not its lease any more"
    );
    assert_eq!(lease_value(&redis).as_deref(), Some("someone else"));
    redis.cmd::<i64>("DEL", &["coldsync:{orders}:lease"]);
    let exclusive = held(take(&ledger, LeaseKind::Exclusive, "nightly-2").await);
    assert!(exclusive.release().await.unwrap());
    assert_eq!(lease_value(&redis), None);
}

#[test]
fn shards_in_parallel_load_disjoint_dates_and_equal_a_single_process() {
    // Six days whose ids overlap with the next day's: the newest day must win every shared key.
    let days: Vec<(String, i64)> = (15..=20)
        .map(|day| (format!("2026-11-{day}"), i64::from(day - 15) * 200))
        .collect();
    let parts: Vec<(&str, i64, i64, &str)> = days
        .iter()
        .map(|(day, first)| (day.as_str(), *first, 400, &day[8..]))
        .collect();
    let write = |ws: &Workspace| {
        ws.config(30, "max_keys_per_sec = 2000", "");
        for (day, first, rows, suffix) in &parts {
            ws.partition(day, &orders_file(*first, *rows, suffix), true);
        }
    };
    let range = [
        "backfill",
        "--table",
        "orders",
        "--from",
        "2026-11-15",
        "--to",
        "2026-11-20",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        range
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .chain(["--as-of", AS_OF])
            .collect()
    };

    let sharded = RedisServer::start();
    let ws = Workspace::new(&sharded);
    write(&ws);
    let running = [
        ws.spawn(&with(&["--shard", "0/3"]), &[]),
        ws.spawn(&with(&["--shard", "1/3"]), &[]),
        ws.spawn(&with(&["--shards", "3"]), &[("JOB_COMPLETION_INDEX", "2")]),
    ];
    let mut union = BTreeSet::new();
    for (index, run) in running.into_iter().enumerate() {
        let (status, events) = run.finish(Duration::from_secs(60));
        assert_shapes(&events);
        assert_eq!(status.code(), Some(0), "shard {index}: {events:#?}");
        assert_eq!(one(&events, "run_started")["shard"], format!("{index}/3"));
        let dates = loaded_dates(&events);
        assert_eq!(dates.len(), 2, "shard {index}: {dates:?}");
        let shard = Shard::new("test", index as u32, 3).unwrap();
        for day in dates {
            assert!(
                shard.includes(date(&day)),
                "{day} is not in shard {index}/3"
            );
            assert!(union.insert(day.clone()), "{day} loaded twice");
        }
    }
    let all: BTreeSet<String> = days.iter().map(|(day, _)| day.clone()).collect();
    assert_eq!(union, all, "the shards' union is the range");

    let single = RedisServer::start();
    let ws_single = Workspace::new(&single);
    write(&ws_single);
    let out = ws_single.cli(&with(&[]), &[]);
    assert_eq!(out.status_code, 0, "{}", out.dump());

    assert_values(&sharded, &expected_values(&parts));
    assert_eq!(
        contents(&sharded),
        contents(&single),
        "keys, values and expiries"
    );
    let ledger_dates = |ws: &Workspace| ws.ledger().keys().cloned().collect::<Vec<_>>();
    assert_eq!(ledger_dates(&ws), ledger_dates(&ws_single));
    assert_eq!(
        sharded.get("coldsync:{orders}:watermark"),
        single.get("coldsync:{orders}:watermark"),
        "the last shard to finish sets the watermark of them all"
    );
    assert_eq!(
        sharded.get("coldsync:{orders}:watermark").as_deref(),
        Some("2026-11-20")
    );
    assert_eq!(sharded.keys("coldsync:{orders}:lease*"), BTreeSet::new());
}

#[test]
fn a_late_partition_that_arrives_during_the_wait_is_loaded_and_the_run_exits_0() {
    let redis = RedisServer::start();
    let ws = Workspace::new(&redis);
    let wait = "wait_for_partition = \"60s\"\nwait_poll_interval = \"300ms\"";
    ws.config(30, wait, "")
        .partition("2026-11-19", &orders_file(0, 100, "a"), true)
        .partition("2026-11-20", &orders_file(50, 100, "b"), false);
    let mut run = ws.spawn(&["run", "--as-of", AS_OF], &[]);
    let waiting = run.until(Duration::from_secs(30), |e| {
        e["event"] == "partition_waiting"
    });
    assert_eq!(waiting["date"], "2026-11-20");
    assert_eq!(waiting["wait_for_partition_secs"], 60);
    ws.complete("2026-11-20");
    let (status, events) = run.finish(Duration::from_secs(30));
    assert_shapes(&events);
    assert_eq!(status.code(), Some(0), "{events:#?}");
    assert_eq!(loaded_dates(&events), ["2026-11-19", "2026-11-20"]);
    assert!(named(&events, "partition_late").is_empty());
    let finished = one(&events, "table_finished");
    assert_eq!(finished["status"], "ok");
    assert_eq!(finished["watermark"], "2026-11-20");
    assert_eq!(finished["watermark_lag_days"], 0);
    assert!(finished.get("late").is_none(), "{finished}");
    assert_values(
        &redis,
        &expected_values(&[("2026-11-19", 0, 100, "a"), ("2026-11-20", 50, 100, "b")]),
    );
}

#[test]
fn a_late_partition_that_never_arrives_is_reported_after_the_wait_with_exit_4() {
    let redis = RedisServer::start();
    let ws = Workspace::new(&redis);
    let wait = "wait_for_partition = \"1s\"\nwait_poll_interval = \"300ms\"";
    ws.config(30, wait, "")
        .partition("2026-11-19", &orders_file(0, 100, "a"), true)
        .partition("2026-11-20", &orders_file(50, 100, "b"), false);
    let started = Instant::now();
    let out = ws.cli(&["run", "--as-of", AS_OF], &[]);
    assert_eq!(out.status_code, 4, "{}", out.dump());
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_shapes(&out.events);
    let names = out.event_names();
    let first_wait = names
        .iter()
        .position(|n| *n == "partition_waiting")
        .unwrap();
    let loaded = names.iter().position(|n| *n == "partition_loaded").unwrap();
    assert!(
        loaded < first_wait,
        "everything else is loaded first: {names:?}"
    );
    let waits = out.events_named("partition_waiting");
    assert!(waits.len() >= 3, "one per poll: {waits:#?}");
    assert!(waits
        .iter()
        .all(|w| w["reason"] == "no _SUCCESS marker in the partition"));
    let late = out.event("partition_late").unwrap();
    assert_eq!(late["date"], "2026-11-20");
    assert_eq!(late["waited_secs"], 1);
    let finished = out.event("table_finished").unwrap();
    assert_eq!(
        (&finished["status"], &finished["late"]),
        (&"late".into(), &"2026-11-20".into())
    );
    assert_eq!(finished["watermark"], "2026-11-19");
    assert_eq!(
        finished["watermark_lag_days"], 1,
        "one day behind today - hot_days"
    );
    assert_eq!(
        redis.get("ord:120"),
        None,
        "the incomplete partition is not loaded"
    );
}

/// SIGTERM while the second of two partitions loads (`today - 3` and `today - 2`, `today` as
/// the process takes it): the process exits with `exit_code` within 10 s, the partition in
/// progress is not recorded, the lease is released; the next run finishes the job exactly.
fn sigterm_in_the_middle_of_a_load(today: NaiveDate, args: &[&str], exit_code: i32) {
    let day = |back: u64| (today - chrono::Days::new(back)).to_string();
    let (first, second) = (day(3), day(2));
    let redis = RedisServer::start();
    let ws = Workspace::new(&redis);
    let daemon = "[daemon]\nschedule = \"0 0 0 1 1 *\"";
    ws.config(30, "max_keys_per_sec = 1000", daemon)
        .partition(&first, &orders_file(0, 200, "a"), true)
        .partition(&second, &orders_file(100, 5000, "b"), true);
    let mut process = ws.spawn(args, &[]);
    let progress = process.until(Duration::from_secs(30), |e| {
        e["event"] == "load_progress" && e["date"] == second.as_str() && number(e, "rows") > 0
    });
    assert_eq!(progress["rows_total"], 5000);
    assert!(lease_value(&redis).is_some(), "held while loading");
    process.signal("-TERM");
    let signalled = Instant::now();
    let (status, events) = process.finish(Duration::from_secs(30));
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "{:?}",
        signalled.elapsed()
    );
    assert_shapes(&events);
    assert_eq!(status.code(), Some(exit_code), "{events:#?}");
    let shutdown = one(&events, "shutdown_requested");
    assert_eq!(
        shutdown["message"],
        "abandoning the partition in progress; it is not recorded and the next run reloads it"
    );
    assert_eq!(loaded_dates(&events), [first.as_str()]);
    let failed = one(&events, "partition_failed");
    assert_eq!(failed["date"], second.as_str());
    assert_eq!(one(&events, "run_finished")["exit_code"], 3);
    if args[0] == "daemon" {
        let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
        assert_eq!(names.last(), Some(&"daemon_stopped"), "{names:?}");
        assert!(names.contains(&"daemon_stopping"), "{names:?}");
    }
    assert_eq!(
        ws.ledger().keys().cloned().collect::<Vec<_>>(),
        [first.as_str()]
    );
    assert_eq!(lease_value(&redis), None, "released on the way out");

    ws.config(30, "", "");
    let out = ws.cli(&["run", "--as-of", &today.to_string()], &[]);
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert_eq!(loaded_dates(&out.events), [second.as_str()]);
    assert_values(
        &redis,
        &expected_values(&[(&first, 0, 200, "a"), (&second, 100, 5000, "b")]),
    );
    let ledger = ws.ledger();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[&second]["keys"], 5000);
}

#[test]
fn sigterm_in_the_middle_of_a_run_exits_fast_records_nothing_half_written() {
    sigterm_in_the_middle_of_a_load(date(AS_OF), &["run", "--as-of", AS_OF], 3);
}

#[test]
fn sigterm_in_the_middle_of_a_daemon_run_exits_fast_records_nothing_half_written() {
    // The daemon's runs take the real business day (UTC) as today.
    let today = chrono::Utc::now().date_naive();
    sigterm_in_the_middle_of_a_load(today, &["daemon", "--run-now"], 0);
}

#[test]
fn every_event_of_a_run_has_its_documented_shape() {
    let redis = RedisServer::start();
    let ws = Workspace::new(&redis);
    let wait =
        "max_keys_per_sec = 2000\nwait_for_partition = \"1s\"\nwait_poll_interval = \"500ms\"";
    ws.config(30, wait, "")
        .partition("2026-11-16", &orders_file(0, 1500, "a"), true)
        .partition("2026-11-17", &orders_file(0, 10, "b"), true)
        .partition("2026-11-18", b"not parquet", true)
        .partition("2026-11-19", &orders_file(0, 10, "c"), false);
    write_file(
        &ws.root(),
        "orders/dt=__HIVE_DEFAULT_PARTITION__/part-0.parquet",
        b"x",
    );
    let out = ws.cli(&["run", "--as-of", AS_OF], &[]);
    assert_eq!(out.status_code, 3, "{}", out.dump());
    let seen = assert_shapes(&out.events);
    let expected = [
        "run_started",
        "partition_skipped",
        "partition_incomplete",
        "partition_failed",
        "partition_loaded",
        "load_progress",
        "partition_waiting",
        "partition_late",
        "table_finished",
        "run_finished",
    ];
    for name in expected {
        assert!(seen.contains(name), "{name} not emitted: {seen:?}");
    }
    assert_eq!(out.event("run_started").unwrap()["as_of"], "2026-11-22");
    let run_finished = out.event("run_finished").unwrap();
    assert!(
        run_finished.get("tables").is_none(),
        "no per-table JSON string: {run_finished}"
    );
    let finished = out.event("table_finished").unwrap();
    assert_eq!(finished["status"], "failed");
    assert_eq!(finished["partitions_failed"], 1);
    assert_eq!(finished["partitions_loaded"], 2);
    assert_eq!(finished["rows"], 1510);
    assert_eq!(finished["late"], "2026-11-20");
    assert_eq!(
        finished["watermark"], "2026-11-17",
        "stopped by the failed 18th"
    );
    assert_eq!(
        finished["watermark_lag_days"], 3,
        "behind 2026-11-20 (today - hot_days)"
    );

    // Without --as-of, run_started has no as_of at all (never "None"); a dry run plans.
    let out = ws.cli(&["run", "--dry-run", "--table", "orders"], &[]);
    assert_shapes(&out.events);
    let started = out.event("run_started").unwrap();
    assert!(started.get("as_of").is_none(), "{started}");
    let out = ws.cli(&["run", "--dry-run", "--as-of", AS_OF], &[]);
    assert!(assert_shapes(&out.events).contains("partition_planned"));
}

#[test]
fn text_logs_in_a_pipe_have_no_colour_codes() {
    let redis = RedisServer::start();
    let ws = Workspace::new(&redis);
    ws.config(30, "", "")
        .partition("2026-11-20", &orders_file(0, 10, "a"), true);
    let config = ws.config_path().display().to_string();
    let out = run_cli(
        &[
            "--config",
            &config,
            "--log-format",
            "text",
            "run",
            "--as-of",
            AS_OF,
        ],
        &[("RUST_LOG", "info")],
    );
    assert_eq!(out.status_code, 0, "{}", out.dump());
    assert!(out.stderr.contains("run finished"), "{}", out.stderr);
    assert!(
        !out.stderr.contains('\u{1b}'),
        "ANSI codes in a pipe: {:?}",
        out.stderr
    );
}

#[test]
fn shard_arguments_are_checked_with_exit_code_2() {
    let redis = RedisServer::start();
    let ws = Workspace::new(&redis);
    ws.config(30, "", "");
    let out = ws.cli(&["run", "--shards", "3"], &[]);
    assert_eq!(out.status_code, 2, "{}", out.dump());
    assert!(
        out.stderr.contains("JOB_COMPLETION_INDEX is not set"),
        "{}",
        out.dump()
    );
    let out = ws.cli(&["run", "--shards", "3"], &[("JOB_COMPLETION_INDEX", "3")]);
    assert_eq!(out.status_code, 2, "{}", out.dump());
    let out = ws.cli(&["run", "--shard", "3/3"], &[]);
    assert_eq!(out.status_code, 2, "{}", out.dump());
    let out = ws.cli(&["run", "--shard", "0/2", "--shards", "2"], &[]);
    assert_eq!(out.status_code, 2, "both: {}", out.dump());
}
