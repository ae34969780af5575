//! [`CliWorkspace`]: a temp dir with `warehouse/` (the fs source root) and `coldsync.toml`, to run
//! the `coldsync` binary on (the verify and layout tests).

use std::path::PathBuf;

use tempfile::TempDir;

use super::{run_cli, CliOutput, RedisServer};

/// A temp dir holding `warehouse/` and `coldsync.toml`.
pub struct CliWorkspace {
    dir: TempDir,
}

impl CliWorkspace {
    /// An empty workspace (removed when it drops).
    pub fn new() -> CliWorkspace {
        CliWorkspace {
            dir: tempfile::Builder::new()
                .prefix("coldsync-ws-")
                .tempdir()
                .unwrap(),
        }
    }

    /// The warehouse: the fs source root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("coldsync.toml")
    }

    /// Config text: the warehouse, `redis`, `retention_days = 30`, then `tables`.
    pub fn config_text(&self, redis: &RedisServer, tables: &str) -> String {
        format!(
            "[source]\nscheme = \"fs\"\nroot = \"{}\"\n\n[redis]\nurl = \"redis://127.0.0.1:{}/0\"\ntimeout_secs = 3\nretry_attempts = 1\n\n[defaults]\nretention_days = 30\n\n{tables}",
            self.root().display(),
            redis.port
        )
    }

    /// Writes the config file.
    pub fn write(&self, redis: &RedisServer, tables: &str) -> &Self {
        std::fs::write(self.config_path(), self.config_text(redis, tables)).unwrap();
        self
    }

    /// Runs `coldsync --config <it> --log-format json <args>`.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let config = self.config_path();
        let mut full: Vec<&str> =
            vec!["--config", config.to_str().unwrap(), "--log-format", "json"];
        full.extend_from_slice(args);
        run_cli(&full, &[("RUST_LOG", "info")])
    }
}
