//! The pinned Python tools `scripts/install-deps.sh` installs, each in a virtualenv of its own
//! (`venv_tools` there): `$<VAR>` when set, else `~/.cache/coldsync/<name>`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The virtualenv directory: `$var` when set and not empty, else `~/.cache/coldsync/<name>`.
pub fn tools_dir(var: &str, name: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/coldsync")
                .join(name)
        })
}

/// The virtualenv's Python, checked to import `modules` (`"deltalake, pyarrow"`); panics saying
/// to run `scripts/install-deps.sh` (or set `var`) when it cannot.
pub fn tools_python(var: &str, name: &str, modules: &str) -> PathBuf {
    let python = tools_dir(var, name).join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import {modules}: run scripts/install-deps.sh (or set {var})",
        python.display()
    );
    python
}
