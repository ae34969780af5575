//! Iceberg tables written by the real producer: [`IcebergCatalog`] runs
//! `tests/fixtures/iceberg_fixture.py` (pyiceberg, a SQL catalog on sqlite, a `file://`
//! warehouse under the test's directory) and [`RestCatalogShim`] serves that catalog as an
//! Iceberg REST catalog on a free loopback port, killed when dropped.
//!
//! pyiceberg lives in its own virtualenv, `COLDSYNC_ICEBERG_TOOLS` (default
//! `~/.cache/coldsync/iceberg-tools`), which `scripts/install-deps.sh` creates.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{output_within, WatchedChild};

/// How long one fixture script may take (a handful of commits: a few seconds).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// The Python of the pyiceberg virtualenv; panics saying to run install-deps when it is missing.
pub fn iceberg_python() -> PathBuf {
    super::tools_python(
        "COLDSYNC_ICEBERG_TOOLS",
        "iceberg-tools",
        "pyiceberg, pyiceberg_core, pyarrow, sqlalchemy",
    )
}

fn fixture_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/iceberg_fixture.py")
}

/// What a command left the table at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct IcebergCommit {
    /// The table.
    pub table: String,
    /// Its current metadata file (`file:///...metadata.json`).
    pub metadata_location: String,
    /// Its current snapshot.
    pub snapshot_id: Option<String>,
}

/// A pyiceberg SQL catalog (sqlite) whose warehouse is `<dir>/warehouse`.
pub struct IcebergCatalog {
    dir: PathBuf,
    python: PathBuf,
}

impl IcebergCatalog {
    /// The catalog in `dir` (its warehouse: `dir/warehouse`).
    pub fn new(dir: &Path) -> IcebergCatalog {
        IcebergCatalog {
            dir: dir.to_path_buf(),
            python: iceberg_python(),
        }
    }

    /// The warehouse directory (tables at `warehouse/sales/<table>`).
    pub fn warehouse(&self) -> PathBuf {
        self.dir.join("warehouse")
    }

    /// Runs fixture commands (one a line, see the script's doc) in one interpreter; the state
    /// of the table after each command that names one.
    pub fn script(&self, commands: &str) -> Vec<IcebergCommit> {
        let output = output_within(
            Command::new(&self.python)
                .arg(fixture_script())
                .arg(&self.dir)
                .arg("script"),
            stdin_of(commands),
            SCRIPT_TIMEOUT,
        );
        assert!(
            output.status.success(),
            "iceberg fixture failed on\n{commands}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }

    /// The state of `table` after the last of `commands`.
    pub fn last(&self, commands: &str, table: &str) -> IcebergCommit {
        self.script(commands)
            .into_iter()
            .rev()
            .find(|c| c.table == table)
            .unwrap_or_else(|| panic!("no command on {table} in\n{commands}"))
    }

    /// Serves this catalog as an Iceberg REST catalog.
    pub fn serve_rest(&self) -> RestCatalogShim {
        let mut cmd = Command::new(&self.python);
        cmd.arg(fixture_script())
            .arg(&self.dir)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut child = WatchedChild::spawn("iceberg REST shim", &mut cmd);
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            let line = child
                .next_line(deadline)
                .expect("the REST shim exited before it listened");
            if let Some(port) = line.strip_prefix("port ") {
                break port.trim().parse::<u16>().expect("port number");
            }
        };
        RestCatalogShim {
            _child: child,
            port,
        }
    }
}

/// A file with `text` as a child's stdin.
fn stdin_of(text: &str) -> Stdio {
    let mut file = tempfile::tempfile().expect("temp file");
    use std::io::{Seek, Write};
    file.write_all(text.as_bytes()).expect("write stdin");
    file.rewind().expect("rewind");
    Stdio::from(file)
}

/// The REST catalog shim (`/v1/config` with prefix `shim`, loadTable), killed on drop.
pub struct RestCatalogShim {
    _child: WatchedChild,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl RestCatalogShim {
    /// `http://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
