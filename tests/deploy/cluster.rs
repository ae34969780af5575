//! The servers a rendered pod runs against: a `redis-server` with the example Secret's password,
//! a bucket on the S3 test server holding the config's table, and the run of the built binary
//! with the pod's args and env only.

use std::collections::BTreeMap;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{Days, NaiveDate};
use serde_json::Value;

use super::manifests::{mounted_config, only, pod_process};
use crate::common::*;

/// The rendered config with only what points at the cluster replaced by the test's servers:
/// the Redis URL, the S3 endpoint and bucket (each must be there, so it is replaced, not added).
pub fn config_for_test(text: &str, redis_port: u16, endpoint: &str, bucket: &str) -> String {
    let mut config: toml::Table = text.parse().expect("the rendered config is TOML");
    let mut replace = |section: &str, key: &str, value: String| {
        let slot = config[section].as_table_mut().unwrap().get_mut(key);
        *slot.unwrap_or_else(|| panic!("[{section}] {key} missing in the rendered config")) =
            value.into();
    };
    replace("redis", "url", format!("redis://127.0.0.1:{redis_port}/0"));
    replace("source", "endpoint", endpoint.to_string());
    replace("source", "bucket", bucket.to_string());
    assert_eq!(
        config["source"]["scheme"].as_str(),
        Some("s3"),
        "the test serves S3 only"
    );
    toml::to_string(&config).unwrap()
}

/// A Redis, an S3 bucket with the config's table, and the rendered pod to run against them.
pub struct Cluster {
    redis: RedisServer,
    password: String,
    bucket: String,
    pub table: String,
    key_prefix: String,
    table_root: String,
    zone: chrono_tz::Tz,
    today: NaiveDate,
    hot_days: u64,
}

impl Cluster {
    /// Servers for the pods of `objects` (the Secret's Redis password, the config's table).
    pub fn start(objects: &[Value]) -> Cluster {
        let workload = only(objects, "CronJob");
        let (_, env) = pod_process(workload, objects);
        let (_, text) = mounted_config(workload, objects, &env);
        let config: toml::Table = text.parse().expect("the rendered config is TOML");
        // The password is where the config says, in the pod's env (from the example Secret).
        let password_env = config["redis"]
            .get("password_env")
            .and_then(toml::Value::as_str)
            .unwrap_or("COLDSYNC_REDIS_PASSWORD");
        let password = env
            .iter()
            .find(|(k, _)| k == password_env)
            .unwrap_or_else(|| panic!("the pod has no {password_env} ([redis] password_env)"))
            .1
            .clone();
        let redis = RedisServer::start_with_args(&["--requirepass", &password]);
        let tables = config["tables"].as_array().expect("[[tables]]");
        assert_eq!(tables.len(), 1, "the test fills one table");
        let key = tables[0]["key"].as_str().unwrap();
        let key_prefix = key
            .strip_suffix("{order_id}")
            .expect("the test knows the orders key")
            .to_string();
        let root = config["source"]["root"]
            .as_str()
            .unwrap_or("")
            .trim_matches('/');
        let defaults = &config["defaults"];
        let zone: chrono_tz::Tz = defaults["timezone"].as_str().unwrap().parse().unwrap();
        Cluster {
            redis,
            password,
            bucket: s3().fresh_bucket("deploy"),
            table: tables[0]["name"].as_str().unwrap().to_string(),
            key_prefix,
            table_root: join_rel(root, tables[0]["path"].as_str().unwrap()),
            zone,
            today: chrono::Utc::now().with_timezone(&zone).date_naive(),
            hot_days: defaults
                .get("hot_days")
                .and_then(toml::Value::as_integer)
                .unwrap_or(2) as u64,
        }
    }

    /// Today in the tables' time zone.
    pub fn business_day(&self) -> NaiveDate {
        chrono::Utc::now().with_timezone(&self.zone).date_naive()
    }

    /// The date `n` days before the newest cold one.
    pub fn cold(&self, n: u64) -> NaiveDate {
        self.today - Days::new(self.hot_days + n)
    }

    /// Writes partition `date` with `ids`, status `paid-<suffix>`, Spark layout, `_SUCCESS`.
    pub fn partition(&self, date: NaiveDate, ids: &[i64], suffix: &str) {
        let mut fixture = HiveTableFixture::new(&self.table_root);
        fixture.spark_partition(&format!("dt={date}"), &[orders_batch(ids, suffix)]);
        let op = s3().operator(&self.bucket);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(fixture.write_to(&op));
    }

    /// Runs `workload`'s container as rendered: its args, only its env (the config path moved
    /// to a temp dir holding the config under the mounted file name), an empty working dir.
    pub fn run(&self, workload: &Value, objects: &[Value]) -> CliOutput {
        self.run_with(workload, objects, &[])
    }

    /// [`Cluster::run`] with what Kubernetes adds to the env itself (`JOB_COMPLETION_INDEX`).
    pub fn run_with(
        &self,
        workload: &Value,
        objects: &[Value],
        added: &[(&str, &str)],
    ) -> CliOutput {
        let (args, mut env) = pod_process(workload, objects);
        env.extend(added.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (file, text) = mounted_config(workload, objects, &env);
        let text = config_for_test(&text, self.redis.port, &s3().endpoint(), &self.bucket);
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("etc").join(&file);
        fs::create_dir_all(config_path.parent().unwrap()).unwrap();
        fs::write(&config_path, text).unwrap();
        let workdir = dir.path().join("work");
        fs::create_dir(&workdir).unwrap();
        for (k, v) in env.iter_mut() {
            if k == "COLDSYNC_CONFIG" {
                *v = config_path.display().to_string();
            }
        }
        let mut cmd = Command::new(coldsync_bin());
        cmd.args(&args).env_clear().envs(env).current_dir(&workdir);
        let out = output_within(&mut cmd, Stdio::null(), Duration::from_secs(120));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let events: Vec<Value> = stderr
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        // COLDSYNC_LOG_FORMAT=json: every log line is JSON (a pipeline indexes them as they are).
        assert_eq!(
            events.len(),
            stderr.lines().count(),
            "non-JSON log lines:\n{stderr}"
        );
        assert!(
            fs::read_dir(&workdir).unwrap().next().is_none(),
            "wrote into its working dir"
        );
        CliOutput {
            status_code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
            events,
        }
    }

    /// Every key under the table's key prefix with its value (an authenticated connection).
    pub fn loaded(&self) -> BTreeMap<String, String> {
        let url = format!("redis://:{}@127.0.0.1:{}/0", self.password, self.redis.port);
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.key_prefix))
            .query(&mut con)
            .unwrap();
        keys.into_iter()
            .map(|k| {
                let v: String = redis::cmd("GET").arg(&k).query(&mut con).unwrap();
                (k, v)
            })
            .collect()
    }

    /// `(key, value)` of order `id` written from status suffix `suffix`.
    pub fn order(&self, id: i64, suffix: &str) -> (String, String) {
        (format!("{}{id}", self.key_prefix), orders_json(id, suffix))
    }
}

/// Runs `scenario` on a fresh cluster, then `check` on its output; the whole once more if the
/// business day changed meanwhile (the cold dates depend on it; twice within seconds cannot be).
pub fn on_a_stable_day(
    objects: &[Value],
    scenario: impl Fn(&Cluster) -> CliOutput,
    check: impl Fn(&Cluster, &CliOutput),
) {
    for _ in 0..2 {
        let cluster = Cluster::start(objects);
        let out = scenario(&cluster);
        if cluster.business_day() == cluster.today {
            check(&cluster, &out);
            return;
        }
    }
    panic!("the business day changed twice during the test");
}
