#!/usr/bin/env bash
# Full local/CI check: external deps, formatting, clippy, tests (dev profile only).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() {
    printf '\n==================== %s ====================\n' "$*"
}

section "install-deps"
scripts/install-deps.sh
echo "redis-server: $(command -v redis-server)"
echo "moto_server:  $(command -v moto_server || echo "${COLDSYNC_TEST_MOTO_SERVER:-missing}")"

section "cargo fmt --check"
cargo fmt --all -- --check

section "cargo clippy (-D warnings)"
cargo clippy --all-targets -- -D warnings

section "cargo test (dev profile)"
cargo test --all-targets

section "OK"
