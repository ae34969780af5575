#!/usr/bin/env bash
# Demo: installs what is missing, builds, generates a week of a Hive-partitioned `orders` table,
# starts a throwaway redis-server on a free port, and runs a real sync: plan, run summary, a lookup.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
cargo build --bin coldsync --example gen_sample

work=$(mktemp -d /tmp/coldsync-demo.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize yes \
    --pidfile "$work/redis.pid" --logfile "$work/redis.log"
trap 'kill "$(cat "$work/redis.pid")" 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

today=$(date -u +%F)
target/debug/examples/gen_sample --out "$work/warehouse" --days 7 --rows-per-day 2000 --end-date "$today" >/dev/null

sed -e "s|/tmp/coldsync-demo/warehouse|$work/warehouse|" \
    -e "s|redis://127.0.0.1:6379/0|redis://127.0.0.1:$port/0|" \
    -e 's|^timezone = "Asia/Shanghai"       #|timezone = "UTC"                 #|' \
    config/coldsync.example.toml > "$work/coldsync.toml"

echo "== warehouse: $work/warehouse/orders (today is $today, UTC)"
ls "$work/warehouse/orders"
echo
echo "== coldsync plan"
target/debug/coldsync --config "$work/coldsync.toml" --log-format text plan
echo
echo "== coldsync run (summary)"
target/debug/coldsync --config "$work/coldsync.toml" --log-format text run --json
echo
echo "== coldsync status"
target/debug/coldsync --config "$work/coldsync.toml" --log-format text status
echo
key=$(redis-cli -p "$port" --scan --pattern 'cold:orders:*' | head -n 1 || true)
echo "== lookup: GET $key"
redis-cli -p "$port" GET "$key"
echo "   expires at (ms): $(redis-cli -p "$port" PEXPIRETIME "$key")"
echo
echo "== second run: nothing new"
target/debug/coldsync --config "$work/coldsync.toml" --log-format text run
echo "demo files kept in $work (redis stopped)"
