#!/usr/bin/env bash
# What a running snapshot child costs the server's SET path: server CPU per
# SET (utime+stime of the server process from /proc/PID/stat, the child not
# included) with no child, then with a BGSAVE child running the whole time
# (rdb-key-save-delay stretches it). While a child exists ringkv's shard
# threads allocate from their snapshot arena with jemalloc's thread cache off
# (src/persistence/cow.rs): this is its price.
#
#   perf/bgsave_load_cpu.sh                    # ringkv (target/release)
#   BEFORE_BIN=/path/to/old/ringkv ROUNDS=3 perf/bgsave_load_cpu.sh
#
# Env: KEYS=500000 (filled by SET -r KEYS), VALUE_BYTES=64, REQUESTS=1000000,
#   PIPELINE=16, CLIENTS=50, ROUNDS=2, SAVE_DELAY_US=100, BEFORE_BIN.
# ringkv --shards 1 on core 0, redis-benchmark on the other cores; the servers
# (ringkv, then "before" when given) alternate within each round.
source "$(dirname "$0")/lib.sh"
ensure_ringkv
KEYS="${KEYS:-500000}"
VALUE_BYTES="${VALUE_BYTES:-64}"
REQUESTS="${REQUESTS:-1000000}"
PIPELINE="${PIPELINE:-16}"
CLIENTS="${CLIENTS:-50}"
ROUNDS="${ROUNDS:-2}"
SAVE_DELAY_US="${SAVE_DELAY_US:-100}"
trap cleanup EXIT
RUN_DIR="$OUT_DIR/bgsave_load_cpu-$(timestamp)"
mkdir -p "$RUN_DIR"
BINS=("ringkv=$RINGKV_BIN")
[ -z "${BEFORE_BIN:-}" ] || BINS+=("before=$BEFORE_BIN")

bench() { # PORT -> requests/s
    taskset -c "$CLIENT_CORES" redis-benchmark -p "$1" -t set -n "$REQUESTS" -r "$KEYS" -d "$VALUE_BYTES" \
        -c "$CLIENTS" -P "$PIPELINE" --csv 2>/dev/null | awk -F'"' '/"SET"/ { print $4 }'
}

: >"$RUN_DIR/rows.txt"
for round in $(seq 1 "$ROUNDS"); do
    for pair in "${BINS[@]}"; do
        name="${pair%%=*}"
        bin="${pair#*=}"
        port="$(free_port)"
        RINGKV_BIN="$bin" start_ringkv "$port" 1 "$RUN_DIR/$name-$round.log" --dir "$RUN_DIR"
        pid="$SERVER_PID"
        run taskset -c "$CLIENT_CORES" redis-benchmark -p "$port" -t set -n "$((KEYS * 3))" -r "$KEYS" -d "$VALUE_BYTES" -c 50 -P 64 -q >/dev/null
        c0="$(cpu_usec "$pid")"
        rps_idle="$(bench "$port")"
        c1="$(cpu_usec "$pid")"
        redis-cli -p "$port" config set rdb-key-save-delay "$SAVE_DELAY_US" >/dev/null
        redis-cli -p "$port" bgsave >/dev/null
        sleep 0.2
        c2="$(cpu_usec "$pid")"
        rps_child="$(bench "$port")"
        c3="$(cpu_usec "$pid")"
        still="$(redis-cli -p "$port" info persistence | tr -d '\r' | awk -F: '$1 == "rdb_bgsave_in_progress" { print $2 }')"
        [ "$still" = 1 ] || log "warning: the child ended before the load did (raise SAVE_DELAY_US)"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        rm -f "$RUN_DIR"/temp-*.rdb "$RUN_DIR"/dump.rdb
        ns_idle=$(((c1 - c0) * 1000 / REQUESTS))
        ns_child=$(((c3 - c2) * 1000 / REQUESTS))
        echo "$name $rps_idle $ns_idle $rps_child $ns_child $still" | tee -a "$RUN_DIR/rows.txt"
    done
done
python3 - "$RUN_DIR/rows.txt" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    name, r0, n0, r1, n1, _ = line.split()
    by.setdefault(name, []).append((float(r0), int(n0), float(r1), int(n1)))
print("\n| server | SET req/s, no child | CPU ns/SET, no child | SET req/s, child running | CPU ns/SET, child running | ratio |")
print("|---|---|---|---|---|---|")
for name, rows in by.items():
    m = [statistics.median(r[i] for r in rows) for i in range(4)]
    print(f"| {name} (median of {len(rows)}) | {m[0]:.0f} | {m[1]:.0f} | {m[2]:.0f} | {m[3]:.0f} | {m[3] / m[1]:.2f}x |")
PY
