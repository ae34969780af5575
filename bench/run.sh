#!/usr/bin/env bash
# The coldsync benchmark, in one go (see README "Performance"):
#   1. generates the order-fact dataset (PARTITIONS x ROWS, zstd, 128k-row row groups),
#   2. starts its own redis-server on a free port,
#   3. json and hash: coldsync run (end to end) vs redis-cli --pipe of the same rows (json: the
#      `SET ... PXAT` of `coldsync export --format resp`; hash: its `HSET` + `PEXPIREAT`, piped into
#      DB 1, after which a sample of keys is compared with coldsync's: HGETALL, PEXPIRETIME, OBJECT
#      ENCODING), with keys/s, MB/s, CPU seconds, peak RSS, ratio,
#   4. guarded: per format, a forward run, then the same partitions but the newest reloaded as a
#      backfill (older than the newest loaded: guarded, native first), keys/s and ratio; then
#      the same backfill again over its own keys (every row refused and followed up),
#   5. a live reader's GET latency (p50/p99): no load, unthrottled load, max_keys_per_sec, adaptive,
#   6. a no-op run over 365 daily partitions x 8 files (local fs, and on moto S3 with S3=1),
#   7. SECTIONS="cluster": a 3-master Redis Cluster (no replicas) on this machine: coldsync run vs the
#      ideal (the same commands split by master with examples/resp_split, each master's share fed
#      to its own redis-cli --pipe at once), keys/s, ratio, redis CPU per key (all masters) vs one
#      node. CLUSTER_FORMATS (default json), CLUSTER_CONNECTIONS (per master, default 2).
# Usage: bench/run.sh            (PARTITIONS=5 ROWS=1000000 by default; BENCH_DIR=/tmp/coldsync-bench)
#        FORMATS="hash" SECTIONS="" bench/run.sh      (only part of it: FORMATS="json hash",
#                                                     SECTIONS="guarded latency noop" by default;
#                                                     S3=1 adds S3; GUARDED_FORMATS=$FORMATS)
#        BIN_DIR=target/debug ...   (binaries already built there: no release build, e.g. to check
#                                    the script quickly with tiny ROWS)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PARTITIONS=${PARTITIONS:-5}
ROWS=${ROWS:-1000000}
LIMIT=${LIMIT:-50000}
BENCH_DIR=${BENCH_DIR:-/tmp/coldsync-bench}
mkdir -p "$BENCH_DIR"

scripts/install-deps.sh
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --bin coldsync --example gen_bench --example latency_probe --example resp_split
fi
B=${BIN_DIR:-target/release}
W=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
DATA="$BENCH_DIR/data-$PARTITIONS-$ROWS"
if [ ! -f "$DATA/.done" ]; then
    rm -rf "$DATA"
    "$B/examples/gen_bench" --out "$DATA" --partitions "$PARTITIONS" --rows "$ROWS" --end-date 2026-11-20
    touch "$DATA/.done"
fi
AS_OF=2026-11-22   # end date + hot_days: every generated partition is cold
CLK=$(getconf CLK_TCK)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# REDIS_ARGS: extra redis-server options, e.g. REDIS_ARGS="--hash-max-listpack-value 128" (the
# bench table's remarks are 63-68 bytes: with Redis's default 64, half of its hashes are stored as
# hash tables by any write path, and only the others can be RESTOREd as listpacks).
# shellcheck disable=SC2086
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$W" --daemonize yes \
    --pidfile "$W/redis.pid" --logfile "$W/redis.log" ${REDIS_ARGS:-}
trap 'kill "$(cat "$W/redis.pid")" 2>/dev/null || true; [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
RPID=$(cat "$W/redis.pid")
rcli() { redis-cli -p "$PORT" "$@"; }
calc() { python3 -c "print($1)"; }
redis_cpu() { awk -v clk="$CLK" '{printf "%.2f", ($14+$15)/clk}' "/proc/$RPID/stat"; }

config() { # config FILE FORMAT [EXTRA_REDIS_LINES] [ROOT] [SOURCE_LINES]
    local source="${5:-}"
    if [ -z "$source" ]; then
        source=$(printf 'scheme = "fs"\nroot = "%s"' "${4:-$DATA}")
    fi
    cat > "$1" <<TOML
[source]
$source

[redis]
url = "redis://127.0.0.1:$PORT/0"
connections = ${CONNECTIONS:-4}
batch_size = ${BATCH_SIZE:-1000}
${3:-}

[defaults]
retention_days = 400

[[tables]]
name = "orders"
path = "orders"
key = "cold:orders:{order_id}"
value_format = "$2"
TOML
}

report() { # label keys wall_s cpu_user cpu_sys redis_cpu rss_kb bytes
    awk -v l="$1" -v k="$2" -v w="$3" -v u="$4" -v s="$5" -v r="$6" -v m="$7" -v b="$8" 'BEGIN {
        printf "%-28s %10d keys %7.2f s %9.0f keys/s %7.1f MB/s  cpu %6.2f s  redis cpu %6.2f s  rss %s\n",
            l, k, w, k / w, b / w / 1e6, u + s, r, (m == "-" ? "-" : sprintf("%.0f MiB", m / 1024)) }'
}

timed() { # timed OUTFILE cmd...  (GNU time -v into OUTFILE)
    local out=$1; shift
    /usr/bin/time -v -o "$out" "$@"
}
tv() { grep "$2" "$1" | awk -F': ' '{print $2}'; }
wall_of() { tv "$1" "Elapsed (wall clock)" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }'; }

# compare_sample N: N random keys of DB 1 (the pipe's) against DB 0 (coldsync's): HGETALL,
# PEXPIRETIME and OBJECT ENCODING equal; prints the result, exits non-zero on a difference.
compare_sample() {
    python3 - "$PORT" "$1" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
sock = socket.create_connection(("127.0.0.1", port))
buf = sock.makefile("rb")
def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)
    return reply()
def reply():
    line = buf.readline()[:-2]
    kind, rest = line[:1], line[1:]
    if kind in b"+:":
        return int(rest) if kind == b":" else rest
    if kind == b"-":
        raise SystemExit("redis error: %r" % rest)
    if kind == b"$":
        if int(rest) < 0:
            return None
        data = buf.read(int(rest) + 2)[:-2]
        return data
    if kind == b"*":
        return [reply() for _ in range(int(rest))]
    raise SystemExit("bad reply %r" % line)
def state(db, key):
    cmd("SELECT", db)
    pairs = cmd("HGETALL", key)
    fields = sorted(zip(pairs[0::2], pairs[1::2]))
    return fields, cmd("PEXPIRETIME", key), cmd("OBJECT", "ENCODING", key)
differ = 0
for _ in range(n):
    cmd("SELECT", 1)
    key = cmd("RANDOMKEY")
    if state(1, key) != state(0, key):
        differ += 1
        if differ <= 3:
            print("  differs: %r pipe %r coldsync %r" % (key, state(1, key), state(0, key)))
print("sample check (%d keys, pipe DB 1 vs coldsync DB 0: HGETALL, PEXPIRETIME, OBJECT ENCODING): %s"
      % (n, "all equal" if differ == 0 else "%d differ" % differ))
sys.exit(1 if differ else 0)
PY
}

declare -A PIPE_RATE CS_RATE
for FORMAT in ${FORMATS-json hash}; do
    config "$W/$FORMAT.toml" "$FORMAT"
    # What a load sends, for redis-cli --pipe (hash: MULTI, DEL + HSET + PEXPIREAT per key, EXEC).
    : > "$W/$FORMAT.resp"
    for i in $(seq 0 $((PARTITIONS - 1))); do
        d=$(date -u -d "2026-11-20 - $((PARTITIONS - 1 - i)) days" +%F)
        "$B/coldsync" -c "$W/$FORMAT.toml" --log-format json export --table orders --date "$d" >> "$W/$FORMAT.resp" 2>/dev/null
    done
    PIPE_DB=0
    if [ "$FORMAT" = hash ]; then
        # The pipe baseline: the same rows as plain HSET + PEXPIREAT (no MULTI, DEL, EXEC), into
        # DB 1, kept for the sample check against coldsync's keys in DB 0.
        python3 - "$W/$FORMAT.resp" <<'PY'
import re, sys
path = sys.argv[1]
data = open(path, "rb").read()
data = data.replace(b"*1\r\n$5\r\nMULTI\r\n", b"").replace(b"*1\r\n$4\r\nEXEC\r\n", b"")
data = re.sub(rb"\*2\r\n\$3\r\nDEL\r\n\$\d+\r\n[^\r]*\r\n", b"", data)
open(path, "wb").write(data)
PY
        PIPE_DB=1
    fi
    BYTES=$(stat -c %s "$W/$FORMAT.resp")

    rcli flushall >/dev/null
    r0=$(redis_cpu)
    start=$(date +%s.%N)
    redis-cli -p "$PORT" -n "$PIPE_DB" --pipe < "$W/$FORMAT.resp" > "$W/pipe.out"
    end=$(date +%s.%N)
    r1=$(redis_cpu)
    KEYS=$(rcli -n "$PIPE_DB" dbsize)
    PW=$(calc "$end - $start")
    label="redis-cli --pipe ($FORMAT)"
    [ "$FORMAT" = hash ] && label="pipe HSET+PEXPIREAT (hash)"
    report "$label" "$KEYS" "$PW" 0 0 "$(calc "$r1 - $r0")" - "$BYTES"
    PIPE_RATE[$FORMAT]=$(calc "$KEYS / $PW")

    rcli -n 0 flushdb >/dev/null
    r0=$(redis_cpu)
    timed "$W/time.txt" "$B/coldsync" -c "$W/$FORMAT.toml" --log-format json run --as-of "$AS_OF" --json > "$W/summary.json" 2> "$W/run.log"
    r1=$(redis_cpu)
    KEYS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"])' "$W/summary.json")
    CW=$(wall_of "$W/time.txt")
    report "coldsync run ($FORMAT)" "$KEYS" "$CW" "$(tv "$W/time.txt" "User time")" "$(tv "$W/time.txt" "System time")" \
        "$(calc "$r1 - $r0")" "$(tv "$W/time.txt" "Maximum resident set size")" "$BYTES"
    CS_RATE[$FORMAT]=$(calc "$KEYS / $CW")
    printf "%-28s %.2f\n" "ratio coldsync/pipe ($FORMAT)" "$(calc "${CS_RATE[$FORMAT]} / ${PIPE_RATE[$FORMAT]}")"
    if [ "$FORMAT" = hash ]; then
        grep -o '"method":"[a-z]*"' "$W/run.log" | head -1 | sed 's/^/hash writes: /'
        compare_sample 2000
    fi
done

if [[ " ${SECTIONS-guarded latency noop} " == *" guarded "* ]]; then
echo
echo "== guarded (backfill) loads vs forward loads, same partitions"
if [ "$PARTITIONS" -lt 2 ]; then echo "needs PARTITIONS >= 2"; exit 1; fi
FIRST=$(date -u -d "2026-11-20 - $((PARTITIONS - 1)) days" +%F)
BEFORE_NEWEST=$(date -u -d "2026-11-20 - 1 day" +%F)
for FORMAT in ${GUARDED_FORMATS-${FORMATS-json hash}}; do
    config "$W/g-$FORMAT.toml" "$FORMAT"
    rcli flushall >/dev/null
    r0=$(redis_cpu)
    timed "$W/g-fwd.txt" "$B/coldsync" -c "$W/g-$FORMAT.toml" --log-format json run --as-of "$AS_OF" --json > "$W/g-fwd.json" 2> "$W/g-fwd.log"
    FK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"])' "$W/g-fwd.json")
    FW=$(wall_of "$W/g-fwd.txt")
    r1=$(redis_cpu)
    report "forward run ($FORMAT)" "$FK" "$FW" "$(tv "$W/g-fwd.txt" "User time")" "$(tv "$W/g-fwd.txt" "System time")" "$(calc "$r1 - $r0")" \
        "$(tv "$W/g-fwd.txt" "Maximum resident set size")" 0
    # The data keys go (the ledger stays): the older partitions are reloaded as a backfill, older
    # than the newest loaded, so every key goes through the guard script.
    rcli eval "local n = 0 for _, k in ipairs(redis.call('KEYS', 'cold:orders:*')) do redis.call('UNLINK', k) n = n + 1 end return n" 0 > /dev/null
    r0=$(redis_cpu)
    timed "$W/g-bf.txt" "$B/coldsync" -c "$W/g-$FORMAT.toml" --log-format json backfill --from "$FIRST" --to "$BEFORE_NEWEST" --force --json > "$W/g-bf.json" 2> "$W/g-bf.log" \
        || true   # exit 4: the run's real today finds its own newest cold day missing (not generated)
    GK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"])' "$W/g-bf.json")
    GW=$(wall_of "$W/g-bf.txt")
    r1=$(redis_cpu)
    GUARDED=$(grep -c '"guarded":true' "$W/g-bf.log" || true)
    report "guarded backfill ($FORMAT)" "$GK" "$GW" "$(tv "$W/g-bf.txt" "User time")" "$(tv "$W/g-bf.txt" "System time")" "$(calc "$r1 - $r0")" \
        "$(tv "$W/g-bf.txt" "Maximum resident set size")" 0
    printf "%-28s %.2f (%s partitions guarded)\n" "ratio guarded/forward ($FORMAT)" "$(calc "($GK / $GW) / ($FK / $FW)")" "$GUARDED"
    # The same backfill again, its keys there now (a changed partition reloaded): every native
    # write is refused and goes through the guard script as a follow-up, the slowest case.
    r0=$(redis_cpu)
    timed "$W/g-re.txt" "$B/coldsync" -c "$W/g-$FORMAT.toml" --log-format json backfill --from "$FIRST" --to "$BEFORE_NEWEST" --force --json > "$W/g-re.json" 2> "$W/g-re.log" \
        || true
    RK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"])' "$W/g-re.json")
    RW=$(wall_of "$W/g-re.txt")
    r1=$(redis_cpu)
    report "guarded reload ($FORMAT)" "$RK" "$RW" "$(tv "$W/g-re.txt" "User time")" "$(tv "$W/g-re.txt" "System time")" "$(calc "$r1 - $r0")" \
        "$(tv "$W/g-re.txt" "Maximum resident set size")" 0
    printf "%-28s %.2f (keys there: every row followed up)\n" "ratio reload/forward ($FORMAT)" "$(calc "($RK / $RW) / ($FK / $FW)")"
done
fi

if [[ " ${SECTIONS-guarded latency noop} " == *" latency "* ]]; then
echo
echo "== live reader GET latency (1 connection, 2000 GET/s of existing keys)"
config "$W/json.toml" json
rcli flushall >/dev/null
"$B/coldsync" -c "$W/json.toml" --log-format json run --as-of "$AS_OF" > /dev/null 2>&1
MAXID=$((PARTITIONS * ROWS))
probe() { "$B/examples/latency_probe" --port "$PORT" --max-id "$MAXID" --seconds "$1"; }
echo "no load:               $(probe 5)"
for MODE in unthrottled limit adaptive; do
    case $MODE in
        unthrottled) config "$W/m.toml" json ;;
        limit) config "$W/m.toml" json "max_keys_per_sec = $LIMIT" ;;
        adaptive) config "$W/m.toml" json "adaptive_latency_ms = 1" ;;
    esac
    rcli del "coldsync:{orders}:partitions" > /dev/null
    "$B/coldsync" -c "$W/m.toml" --log-format json run --as-of "$AS_OF" > /dev/null 2> "$W/$MODE.log" &
    LOADER=$!
    sleep 0.3
    printf "%-22s %s\n" "$MODE load:" "$(probe 8)"
    kill "$LOADER" 2>/dev/null || true
    wait "$LOADER" 2>/dev/null || true
done

fi

if [[ " ${SECTIONS-guarded latency noop} " == *" noop "* ]]; then
echo
echo "== no-op run over 365 partitions x 8 files"
NOOP="$BENCH_DIR/noop-365x8"
if [ ! -f "$NOOP/.done" ]; then
    rm -rf "$NOOP"
    "$B/examples/gen_bench" --out "$NOOP" --partitions 365 --rows 80 --files 8 --end-date 2026-11-20 > /dev/null
    touch "$NOOP/.done"
fi
config "$W/noop.toml" json "" "$NOOP"
"$B/coldsync" -c "$W/noop.toml" --log-format json run --as-of "$AS_OF" > /dev/null 2>&1
timed "$W/noop.txt" "$B/coldsync" -c "$W/noop.toml" --log-format json run --as-of "$AS_OF" > /dev/null 2> "$W/noop.log"
echo "local fs no-op run:    $(wall_of "$W/noop.txt") s ($(grep -c partition_loaded "$W/noop.log" || true) partitions loaded)"
if [ "${S3:-0}" = 1 ]; then
    MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    moto_server -H 127.0.0.1 -p "$MPORT" > "$W/moto.log" 2>&1 &
    MOTO_PID=$!
    for _ in $(seq 100); do curl -s "http://127.0.0.1:$MPORT/" >/dev/null 2>&1 && break; sleep 0.1; done
    python3 - "$MPORT" "$NOOP" <<'PY'
import sys, os, boto3
port, root = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
s3.create_bucket(Bucket="bench")
for dirpath, _, files in os.walk(os.path.join(root, "orders")):
    for f in files:
        path = os.path.join(dirpath, f)
        s3.upload_file(path, "bench", os.path.relpath(path, root))
PY
    config "$W/s3.toml" json "" "" "scheme = \"s3\"
bucket = \"bench\"
endpoint = \"http://127.0.0.1:$MPORT\"
region = \"us-east-1\"
access_key_id_env = \"BENCH_KEY\"
secret_access_key_env = \"BENCH_KEY\""
    rcli del "coldsync:{orders}:partitions" > /dev/null
    BENCH_KEY=test "$B/coldsync" -c "$W/s3.toml" --log-format json run --as-of "$AS_OF" > /dev/null 2>&1
    BENCH_KEY=test timed "$W/s3noop.txt" "$B/coldsync" -c "$W/s3.toml" --log-format json run --as-of "$AS_OF" > /dev/null 2> "$W/s3noop.log"
    echo "moto S3 no-op run:     $(wall_of "$W/s3noop.txt") s ($(grep -c partition_loaded "$W/s3noop.log" || true) partitions loaded)"
fi
fi
if [[ " ${SECTIONS-latency noop} " == *" cluster "* ]]; then
echo
echo "== Redis Cluster: 3 masters on this machine"
CPORTS=()
CPIDS=()
while [ ${#CPORTS[@]} -lt 3 ]; do   # a free port <= 55535 whose bus port (+10000) is free too
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if [ "$p" -le 55535 ] && python3 -c "import socket,sys; socket.socket().bind(('127.0.0.1', $p + 10000))" 2>/dev/null; then
        CPORTS+=("$p")
    fi
done
for p in "${CPORTS[@]}"; do
    mkdir -p "$W/cluster-$p"
    redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$W/cluster-$p" \
        --cluster-enabled yes --cluster-config-file nodes.conf --daemonize yes \
        --pidfile "$W/cluster-$p/redis.pid" --logfile "$W/cluster-$p/redis.log"
done
trap 'kill "$(cat "$W/redis.pid")" 2>/dev/null || true; for p in "${CPORTS[@]}"; do kill "$(cat "$W/cluster-$p/redis.pid")" 2>/dev/null || true; done; [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2>/dev/null || true' EXIT
for p in "${CPORTS[@]}"; do
    for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
    CPIDS+=("$(cat "$W/cluster-$p/redis.pid")")
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${CPORTS[@]}") --cluster-replicas 0 --cluster-yes > "$W/cluster-create.log"
for p in "${CPORTS[@]}"; do
    for _ in $(seq 100); do redis-cli -p "$p" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
done
cluster_cpu() { local t=0; for pid in "${CPIDS[@]}"; do t=$(calc "$t + $(awk -v clk="$CLK" '{printf "%.2f", ($14+$15)/clk}' "/proc/$pid/stat")"); done; echo "$t"; }
cluster_flush() { for p in "${CPORTS[@]}"; do redis-cli -p "$p" flushall > /dev/null; done; }
cluster_keys() { local t=0; for p in "${CPORTS[@]}"; do t=$((t + $(redis-cli -p "$p" dbsize))); done; echo "$t"; }
for FORMAT in ${CLUSTER_FORMATS:-json}; do
    config "$W/c1-$FORMAT.toml" "$FORMAT"
    : > "$W/c-$FORMAT.resp"
    for i in $(seq 0 $((PARTITIONS - 1))); do
        d=$(date -u -d "2026-11-20 - $((PARTITIONS - 1 - i)) days" +%F)
        "$B/coldsync" -c "$W/c1-$FORMAT.toml" --log-format json export --table orders --date "$d" >> "$W/c-$FORMAT.resp" 2>/dev/null
    done
    BYTES=$(stat -c %s "$W/c-$FORMAT.resp")
    "$B/examples/resp_split" --seed "${CPORTS[0]}" --in "$W/c-$FORMAT.resp" --out-prefix "$W/c-$FORMAT"

    # One node, for the redis CPU per key of the same load.
    rcli flushall >/dev/null
    r0=$(redis_cpu)
    "$B/coldsync" -c "$W/c1-$FORMAT.toml" --log-format json run --as-of "$AS_OF" --json > "$W/c1.json" 2> "$W/c1.log"
    r1=$(redis_cpu)
    SKEYS=$(rcli dbsize)
    SCPU=$(calc "$r1 - $r0")
    rcli flushall >/dev/null

    cluster_flush
    r0=$(cluster_cpu)
    start=$(date +%s.%N)
    for p in "${CPORTS[@]}"; do
        redis-cli -p "$p" --pipe < "$W/c-$FORMAT.$p.resp" > "$W/c-pipe-$p.out" &
    done
    wait
    end=$(date +%s.%N)
    r1=$(cluster_cpu)
    KEYS=$(cluster_keys)
    PW=$(calc "$end - $start")
    PCPU=$(calc "$r1 - $r0")
    report "cluster ideal ($FORMAT)" "$KEYS" "$PW" 0 0 "$PCPU" - "$BYTES"

    cluster_flush
    config "$W/c-$FORMAT.toml" "$FORMAT" "cluster = true"
    sed -i "s|^url = .*|url = \"redis://127.0.0.1:${CPORTS[0]}/0\"|; s|^connections = .*|connections = ${CLUSTER_CONNECTIONS:-2}|" "$W/c-$FORMAT.toml"
    r0=$(cluster_cpu)
    timed "$W/ctime.txt" "$B/coldsync" -c "$W/c-$FORMAT.toml" --log-format json run --as-of "$AS_OF" --json > "$W/c.json" 2> "$W/c.log"
    r1=$(cluster_cpu)
    KEYS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"])' "$W/c.json")
    CW=$(wall_of "$W/ctime.txt")
    CCPU=$(calc "$r1 - $r0")
    report "coldsync cluster ($FORMAT)" "$KEYS" "$CW" "$(tv "$W/ctime.txt" "User time")" "$(tv "$W/ctime.txt" "System time")" \
        "$CCPU" "$(tv "$W/ctime.txt" "Maximum resident set size")" "$BYTES"
    printf "%-28s %.2f\n" "ratio coldsync/ideal ($FORMAT)" "$(calc "($KEYS / $CW) / ($(cluster_keys) / $PW)")"
    printf "%-28s single node %.2f us, cluster ideal %.2f us, coldsync cluster %.2f us (ratio to single %.2f)\n" \
        "redis cpu per key ($FORMAT)" "$(calc "$SCPU / max($SKEYS,1) * 1e6")" "$(calc "$PCPU / max($KEYS,1) * 1e6")" \
        "$(calc "$CCPU / max($KEYS,1) * 1e6")" "$(calc "($CCPU / max($KEYS,1)) / max($SCPU / max($SKEYS,1), 1e-12)")"
done
fi
echo "work dir: $W"
