//! One real Hive Metastore per test binary ([`hive_metastore`]), shared by its tests (each uses
//! its own database), and helpers that register databases, tables and partitions in it the way
//! a producer's DDL does.
//!
//! The metastore is Hive 2.3's standalone `HiveMetaStore` from the jars PySpark's wheel ships
//! (`pyspark/jars`: hive-metastore, Derby, DataNucleus, libthrift), on Java 17, with an embedded
//! Derby database in a temp dir, on a free loopback port. It takes seconds to start. The
//! registering is done by `hive_metastore.py` beside this file (pymetastore's Thrift client).
//! Both come from the virtualenv `scripts/install-deps.sh` makes
//! (`COLDSYNC_METASTORE_TOOLS`, default `~/.cache/coldsync/metastore-tools`).
//!
//! Lifetime: the JVM runs in its own process group; a watchdog shell (whose stdin is a pipe this
//! process holds) kills that group and removes the temp dir when the test binary exits for any
//! reason, as the moto fixture does. [`HiveMetastore::stop`] kills it earlier.

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{free_port, output_within, read_lossy};

/// A running metastore, see [`hive_metastore`].
pub struct HiveMetastore {
    /// Loopback port of its Thrift server.
    pub port: u16,
    /// Process id of the JVM (and id of its process group).
    pub pid: u32,
    /// Temp dir: `conf/hive-site.xml`, the Derby database, `hms.log`.
    pub dir: PathBuf,
    python: PathBuf,
    jvm: Mutex<Child>,
    watchdog: Mutex<Child>,
}

static METASTORE: OnceLock<HiveMetastore> = OnceLock::new();

/// The metastore of this test binary, started on first use.
pub fn hive_metastore() -> &'static HiveMetastore {
    METASTORE.get_or_init(HiveMetastore::start)
}

/// The metastore tools virtualenv (PySpark's jars, pymetastore).
fn tools_dir() -> PathBuf {
    super::tools_dir("COLDSYNC_METASTORE_TOOLS", "metastore-tools")
}

/// Where PySpark's jars are, asked of the virtualenv's Python.
fn pyspark_jars(python: &Path) -> PathBuf {
    let out = output_within(
        Command::new(python).args([
            "-c",
            "import os, pyspark, pymetastore; print(os.path.join(os.path.dirname(pyspark.__file__), 'jars'))",
        ]),
        Stdio::null(),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{} cannot import pyspark and pymetastore: run scripts/install-deps.sh\n{}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let jars = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let has_metastore = fs::read_dir(&jars)
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("hive-metastore-") && name.ends_with(".jar")
            })
        })
        .unwrap_or(false);
    assert!(
        has_metastore,
        "no hive-metastore-*.jar in {}: run scripts/install-deps.sh",
        jars.display()
    );
    jars
}

const HIVE_SITE: &str = r#"<?xml version="1.0"?>
<configuration>
  <property><name>javax.jdo.option.ConnectionURL</name><value>jdbc:derby:;databaseName=@DIR@/metastore_db;create=true</value></property>
  <property><name>datanucleus.schema.autoCreateAll</name><value>true</value></property>
  <property><name>hive.metastore.schema.verification</name><value>false</value></property>
  <property><name>hive.async.log.enabled</name><value>false</value></property>
  <property><name>datanucleus.connectionPoolingType</name><value>dbcp</value></property>
  <property><name>hive.metastore.warehouse.dir</name><value>file:@DIR@/warehouse</value></property>
</configuration>
"#;

impl HiveMetastore {
    fn start() -> HiveMetastore {
        let tools = tools_dir();
        let python = tools.join("bin/python");
        assert!(
            python.exists(),
            "no {}: run scripts/install-deps.sh (it installs pyspark and pymetastore there)",
            python.display()
        );
        let jars = pyspark_jars(&python);
        let java = std::env::var("COLDSYNC_TEST_JAVA").unwrap_or_else(|_| "java".to_string());
        let dir = tempfile::Builder::new()
            .prefix("coldsync-hms-")
            .tempdir()
            .expect("create metastore temp dir")
            .keep();
        let conf = dir.join("conf");
        fs::create_dir_all(&conf).unwrap();
        fs::write(
            conf.join("hive-site.xml"),
            HIVE_SITE.replace("@DIR@", &dir.display().to_string()),
        )
        .unwrap();
        let log_path = dir.join("hms.log");
        let log = fs::File::create(&log_path).unwrap();
        let port = free_port();
        let mut cmd = Command::new(&java);
        cmd.args(["-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]);
        for package in [
            "java.lang",
            "java.net",
            "java.util",
            "java.nio",
            "sun.nio.ch",
        ] {
            cmd.arg(format!("--add-opens=java.base/{package}=ALL-UNNAMED"));
        }
        cmd.arg(format!(
            "-Dderby.stream.error.file={}/derby.log",
            dir.display()
        ))
        .arg("-cp")
        .arg(format!("{}:{}/*", conf.display(), jars.display()))
        .args(["org.apache.hadoop.hive.metastore.HiveMetaStore", "-p"])
        .arg(port.to_string())
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0);
        let mut jvm = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {java} ({e}): run scripts/install-deps.sh"));
        let pid = jvm.id();
        // dash's `kill` takes no `--`: `-PID` right after the signal is the process group.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                "trap '' INT HUP TERM; read -r _ignored; \
                 kill -TERM \"-$1\" 2>/dev/null; sleep 2; kill -KILL \"-$1\" 2>/dev/null; \
                 rm -rf \"$2\"",
            )
            .arg("coldsync-hms-watchdog")
            .arg(pid.to_string())
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn metastore watchdog (sh)");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = jvm.try_wait() {
                panic!(
                    "the metastore exited with {status} before listening on {port}\n--- hms.log ---\n{}",
                    read_lossy(&log_path)
                );
            }
            if Instant::now() >= deadline {
                kill_group(pid);
                panic!(
                    "the metastore did not listen on {port} within 120s\n--- hms.log ---\n{}",
                    read_lossy(&log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        HiveMetastore {
            port,
            pid,
            dir,
            python,
            jvm: Mutex::new(jvm),
            watchdog: Mutex::new(watchdog),
        }
    }

    /// `thrift://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("thrift://127.0.0.1:{}", self.port)
    }

    /// Applies `operations` (see `hive_metastore.py`) in one client session; panics with what
    /// the client and the metastore said if one fails.
    pub fn apply(&self, operations: &[Value]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/hive_metastore.py");
        let out = output_within(
            Command::new(&self.python)
                .arg(&script)
                .arg(self.port.to_string())
                .arg(Value::Array(operations.to_vec()).to_string()),
            Stdio::null(),
            Duration::from_secs(180),
        );
        assert!(
            out.status.success(),
            "metastore operations failed: {operations:?}\n--- client ---\n{}\n--- hms.log (tail) ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&read_lossy(&self.dir.join("hms.log")), 40)
        );
    }

    /// Creates database `db` (nothing if it exists) located at `location`.
    pub fn create_database(&self, db: &str, location: &str) {
        self.apply(&[json!({"op": "create_database", "db": db, "location": location})]);
    }

    /// Creates the external Parquet table `db.table` at `location`, partitioned by
    /// `partition_keys` (strings), with `parameters` (an Iceberg table's `table_type` and
    /// `metadata_location`, for one).
    pub fn create_table(
        &self,
        db: &str,
        table: &str,
        location: &str,
        partition_keys: &[&str],
        parameters: &[(&str, &str)],
    ) {
        self.apply(&[create_table_op(
            db,
            table,
            location,
            partition_keys,
            parameters,
        )]);
    }

    /// Registers the partition of `values` (one per partition key) at `location`.
    pub fn add_partition(
        &self,
        db: &str,
        table: &str,
        values: &[&str],
        location: &str,
        parameters: &[(&str, &str)],
    ) {
        self.apply(&[add_partition_op(db, table, values, location, parameters)]);
    }

    /// Sets `parameters` of the partition of `values` (what a producer's rewrite changes).
    pub fn alter_partition(
        &self,
        db: &str,
        table: &str,
        values: &[&str],
        parameters: &[(&str, &str)],
    ) {
        self.apply(&[json!({
            "op": "alter_partition", "db": db, "table": table, "values": values,
            "parameters": map(parameters),
        })]);
    }

    /// Sets `parameters` of table `db.table` (an Iceberg commit moving `metadata_location`).
    pub fn alter_table(&self, db: &str, table: &str, parameters: &[(&str, &str)]) {
        self.apply(&[json!({
            "op": "alter_table", "db": db, "table": table, "parameters": map(parameters),
        })]);
    }

    /// Kills the metastore (its process group) now; the watchdog then has nothing left to do.
    pub fn stop(&self) {
        kill_group(self.pid);
        let _ = self.jvm.lock().unwrap().wait();
        let _ = self
            .watchdog
            .lock()
            .unwrap()
            .stdin
            .take()
            .map(|mut s| s.flush());
    }
}

/// The `create_table` operation of [`HiveMetastore::create_table`], to batch with others.
pub fn create_table_op(
    db: &str,
    table: &str,
    location: &str,
    partition_keys: &[&str],
    parameters: &[(&str, &str)],
) -> Value {
    json!({
        "op": "create_table", "db": db, "table": table, "location": location,
        "partition_keys": partition_keys, "parameters": map(parameters),
    })
}

/// The `add_partition` operation of [`HiveMetastore::add_partition`], to batch with others.
pub fn add_partition_op(
    db: &str,
    table: &str,
    values: &[&str],
    location: &str,
    parameters: &[(&str, &str)],
) -> Value {
    json!({
        "op": "add_partition", "db": db, "table": table, "values": values,
        "location": location, "parameters": map(parameters),
    })
}

fn map(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
