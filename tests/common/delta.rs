//! Delta Lake tables written by the real producer: PyPI `deltalake` (delta-rs), pinned in
//! `scripts/install-deps.sh`, run from its virtualenv (`COLDSYNC_DELTA_TOOLS`, default
//! `~/.cache/coldsync/delta-tools`). [`DeltaTable`] writes rows of the orders shape with
//! `write_deltalake(..., partition_by=["dt"])`, appends, overwrites one day by predicate and
//! makes checkpoints; [`DeltaTable::commit_raw`] adds a hand-written commit (the actions
//! delta-rs does not write: a deletion vector, a protocol with another reader feature).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::output_within;

/// One row of a fixture table: `order_id` (int64), `status` (string), `qty` (int64), `dt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRow {
    pub order_id: i64,
    pub status: String,
    pub qty: i64,
    pub dt: String,
}

impl DeltaRow {
    pub fn new(order_id: i64, status: &str, qty: i64, dt: &str) -> DeltaRow {
        DeltaRow {
            order_id,
            status: status.to_string(),
            qty,
            dt: dt.to_string(),
        }
    }

    /// The value coldsync writes for the row (`json`, the value columns in file order).
    pub fn json(&self) -> String {
        format!(r#"{{"status":"{}","qty":{}}}"#, self.status, self.qty)
    }
}

/// The virtualenv's python, checked to import `deltalake`; panics saying what to run otherwise.
pub fn delta_python() -> PathBuf {
    super::tools_python("COLDSYNC_DELTA_TOOLS", "delta-tools", "deltalake, pyarrow")
}

/// A Delta table in a directory, written through `deltalake`.
pub struct DeltaTable {
    python: PathBuf,
    dir: PathBuf,
}

/// The script every step runs: argv[1] the table, argv[2] the step as JSON.
const SCRIPT: &str = r#"
import json, sys
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
path, step = sys.argv[1], json.loads(sys.argv[2])
if step["op"] == "checkpoint":
    DeltaTable(path).create_checkpoint()
elif step["op"] == "parquet":
    import pyarrow.parquet as pq
    rows = step["rows"]
    pq.write_table(pa.table({
        "order_id": pa.array([r[0] for r in rows], pa.int64()),
        "status": pa.array([r[1] for r in rows], pa.string()),
        "qty": pa.array([r[2] for r in rows], pa.int64()),
    }), path + "/" + step["file"])
else:
    rows = step["rows"]
    table = pa.table({
        "order_id": pa.array([r[0] for r in rows], pa.int64()),
        "status": pa.array([r[1] for r in rows], pa.string()),
        "qty": pa.array([r[2] for r in rows], pa.int64()),
        "dt": pa.array([r[3] for r in rows], pa.string()),
    })
    kwargs = {"mode": step["op"], "partition_by": ["dt"]}
    if step.get("predicate"):
        kwargs["predicate"] = step["predicate"]
    write_deltalake(path, table, **kwargs)
print(DeltaTable(path).version())
"#;

impl DeltaTable {
    /// A table to be created at `dir` by the first write.
    pub fn at(dir: &Path) -> DeltaTable {
        DeltaTable {
            python: delta_python(),
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs one step; returns the table version after it.
    fn step(&self, step: serde_json::Value) -> u64 {
        let out = output_within(
            Command::new(&self.python)
                .arg("-c")
                .arg(SCRIPT)
                .arg(&self.dir)
                .arg(step.to_string()),
            Stdio::null(),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "deltalake step {step} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    fn write(&self, mode: &str, rows: &[DeltaRow], predicate: Option<&str>) -> u64 {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::json!([r.order_id, r.status, r.qty, r.dt]))
            .collect();
        self.step(serde_json::json!({"op": mode, "rows": rows, "predicate": predicate}))
    }

    /// `write_deltalake(mode="append")` (creates the table at version 0).
    pub fn append(&self, rows: &[DeltaRow]) -> u64 {
        self.write("append", rows, None)
    }

    /// `write_deltalake(mode="overwrite", predicate="dt = '<day>'")`: replaces that day's rows.
    pub fn overwrite_day(&self, day: &str, rows: &[DeltaRow]) -> u64 {
        self.write("overwrite", rows, Some(&format!("dt = '{day}'")))
    }

    /// `DeltaTable.create_checkpoint()` at the current version.
    pub fn checkpoint(&self) -> u64 {
        self.step(serde_json::json!({"op": "checkpoint"}))
    }

    /// Rewrites `day` as a deletion-vector purge does (`REORG TABLE ... APPLY (PURGE)`), by hand
    /// (delta-rs cannot rewrite a file whose deletion vector the test crafted): one new Parquet
    /// file of `rows` (written by pyarrow), a commit removing the day's live files and adding it.
    /// Returns the commit's version.
    pub fn purge_day(&self, day: &str, rows: &[DeltaRow]) -> u64 {
        let file = format!("dt={day}/part-purged-{}.parquet", self.latest_version() + 1);
        let rows_json: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::json!([r.order_id, r.status, r.qty, r.dt]))
            .collect();
        self.step(serde_json::json!({"op": "parquet", "rows": rows_json, "file": file}));
        let size = std::fs::metadata(self.dir.join(&file)).unwrap().len();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut actions: Vec<serde_json::Value> = self
            .add_actions_of_day(day)
            .into_iter()
            .map(|add| {
                serde_json::json!({"remove": {
                    "path": add["path"], "deletionTimestamp": now_ms, "dataChange": false,
                    "extendedFileMetadata": true, "partitionValues": add["partitionValues"],
                    "size": add["size"], "deletionVector": add["deletionVector"],
                }})
            })
            .collect();
        actions.push(serde_json::json!({"add": {
            "path": file, "partitionValues": {"dt": day}, "size": size,
            "modificationTime": now_ms, "dataChange": false,
        }}));
        self.commit_raw(&actions)
    }

    /// The commit files in `_delta_log/`, by version.
    pub fn latest_version(&self) -> u64 {
        std::fs::read_dir(self.dir.join("_delta_log"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".json")?.parse::<u64>().ok()
            })
            .max()
            .expect("a commit")
    }

    /// Writes the next commit by hand: `actions`, one JSON object a line. Returns its version.
    pub fn commit_raw(&self, actions: &[serde_json::Value]) -> u64 {
        let version = self.latest_version() + 1;
        let text: String = actions.iter().map(|a| format!("{a}\n")).collect();
        std::fs::write(
            self.dir.join(format!("_delta_log/{version:020}.json")),
            text,
        )
        .unwrap();
        version
    }

    /// The live `add` actions of the latest version as delta-rs wrote them, read back from the
    /// log (paths relative to the table root), for crafted commits that re-add a file.
    pub fn add_actions_of_day(&self, day: &str) -> Vec<serde_json::Value> {
        let mut live: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
        for version in 0..=self.latest_version() {
            let path = self.dir.join(format!("_delta_log/{version:020}.json"));
            let text = std::fs::read_to_string(path).unwrap();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let action: serde_json::Value = serde_json::from_str(line).unwrap();
                if let Some(add) = action.get("add") {
                    live.insert(add["path"].as_str().unwrap().to_string(), add.clone());
                } else if let Some(remove) = action.get("remove") {
                    live.remove(remove["path"].as_str().unwrap());
                }
            }
        }
        live.into_values()
            .filter(|add| add["partitionValues"]["dt"] == day)
            .collect()
    }
}
