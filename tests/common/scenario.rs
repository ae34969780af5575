//! The setup most tests repeat: the config text for a local warehouse and a test Redis, and an
//! `Engine` on it.

use std::path::Path;

use super::RedisServer;

/// Config text: an fs source at `root`, the test Redis, `retention_days = 30`, then `tables`.
pub fn fs_config_text(root: &Path, redis: &RedisServer, tables: &str) -> String {
    format!(
        "[source]\nscheme = \"fs\"\nroot = \"{}\"\n\n[redis]\nurl = \"redis://127.0.0.1:{}/0\"\n\n[defaults]\nretention_days = 30\n\n{tables}",
        root.display(),
        redis.port
    )
}

/// An engine on [`fs_config_text`]; panics with the text when the config is invalid.
pub async fn fs_engine(root: &Path, redis: &RedisServer, tables: &str) -> coldsync::run::Engine {
    let text = fs_config_text(root, redis, tables);
    let config = coldsync::config::Config::parse(&text, &std::collections::HashMap::new())
        .unwrap_or_else(|e| panic!("config invalid: {e}\n{text}"));
    match coldsync::run::Engine::connect(config).await {
        Ok(engine) => engine,
        Err(e) => panic!("engine connect failed: {e}"),
    }
}
