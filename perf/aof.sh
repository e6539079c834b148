#!/usr/bin/env bash
# SET throughput with the AOF on, ringkv vs redis-server side by side.
#
#   perf/aof.sh                 # everysec -P 16 and always -c 50 -P 1
#   REQUESTS=200000 perf/aof.sh # a quicker run
#
# For each (fsync policy, pipeline, clients) case, ringkv --shards 1 and
# redis-server 7.0 are started in turn on the same core (SERVER_CORES,
# default 0) with `--appendonly yes --appendfsync POLICY` in a fresh
# directory under AOF_DIR (default $OUT_DIR, on the disk the repository
# lives on: fsync costs are those of that disk), and redis-benchmark runs on
# CLIENT_CORE. Printed per server: requests/s, p50 and p99 latency (ms, from
# redis-benchmark's --csv), server CPU (user+sys, all threads) per request in
# microseconds, and ringkv/redis ratios. ROUNDS (default 2) alternates the two
# servers so a noisy neighbour hits both.
#
# BEFORE_BIN=path/to/an/older/ringkv adds that binary to each round as
# server "before" (before/after figures from the same run).
#
# FSYNCS=1 (the default when `perf stat` can read the ext4:ext4_sync_file_enter
# tracepoint) also counts the fsyncs of the server's incr file during each run
# (filtered by its inode, so other processes' fsyncs do not count), and
# prints requests per fsync: how wide each group commit was.
#
# Environment: REQUESTS=500000, CLIENTS=50, KEYSPACE=1000000, VALUE_BYTES=32, SHARDS=1,
#   ROUNDS=2, CASES="everysec:16:50 always:1:50:50000" (policy:pipeline:clients[:requests],
#   REQUESTS when the last is left out: always is bound by the disk's fsync).

source "$(dirname "$0")/lib.sh"
need_python

REQUESTS="${REQUESTS:-500000}"
KEYSPACE="${KEYSPACE:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-32}"
ROUNDS="${ROUNDS:-2}"
SHARDS="${SHARDS:-1}" # ringkv's --shards (the issue's figures: 1)
CASES="${CASES:-everysec:16:50 always:1:50:50000}"
AOF_DIR="${AOF_DIR:-$OUT_DIR}"
if [ "$NCPU" -gt 1 ]; then CLIENT_CORE="${CLIENT_CORE:-1}"; else CLIENT_CORE="${CLIENT_CORE:-0}"; fi
FSYNCS="${FSYNCS:-auto}"
if [ "$FSYNCS" = auto ]; then
    if perf stat -a -e ext4:ext4_sync_file_enter -x, -o /dev/null -- true 2>/dev/null; then FSYNCS=1; else FSYNCS=0; fi
fi
TS="$(timestamp)"
RESULTS="$OUT_DIR/aof-$TS.txt"
: >"$RESULTS"

one() { # SERVER POLICY PIPELINE CLIENTS REQUESTS
    local server="$1" policy="$2" pipeline="$3" clients="$4" requests="$5"
    local dir port cpu0 cpu1 csv
    dir="$(mktemp -d "$AOF_DIR/aof-$server-XXXXXX")"
    port="$(free_port)"
    if [ "$server" = before ]; then
        RINGKV_BIN="$BEFORE_BIN" start_named ringkv "$port" "$SHARDS" "$dir/server.log" --dir "$dir" --appendonly yes --appendfsync "$policy"
    else
        start_named "$server" "$port" "$SHARDS" "$dir/server.log" --dir "$dir" --appendonly yes --appendfsync "$policy"
    fi
    local wrap=() fsyncs=0 incr
    if [ "$FSYNCS" = 1 ]; then
        # Only the fsyncs of this server's incr file (by inode): other
        # processes' fsyncs on a shared machine are not counted.
        incr="$(ls "$dir"/appendonlydir/*.incr.aof 2>/dev/null | tail -1)"
        wrap=(perf stat -a -e ext4:ext4_sync_file_enter -x, -o "$dir/fsyncs")
        if [ -n "$incr" ]; then wrap+=(--filter "ino == $(stat -c %i "$incr")"); fi
        wrap+=(--)
    fi
    cpu0="$(cpu_usec "$SERVER_PID")"
    csv="$(run "${wrap[@]}" taskset -c "$CLIENT_CORE" redis-benchmark -h 127.0.0.1 -p "$port" -t set -n "$requests" \
        -c "$clients" -r "$KEYSPACE" -d "$VALUE_BYTES" -P "$pipeline" --csv 2>/dev/null | tail -1)"
    cpu1="$(cpu_usec "$SERVER_PID")"
    if [ "$FSYNCS" = 1 ]; then fsyncs="$(awk -F, '/ext4_sync_file_enter/ {print $1}' "$dir/fsyncs")"; fi
    stop_pid "$SERVER_PID"
    rm -rf "$dir"
    # "SET","rps","avg","min","p50","p95","p99","max"
    echo "$server $policy $pipeline $clients $requests $csv $((cpu1 - cpu0)) ${fsyncs:-0}" | tee -a "$RESULTS"
}

for c in $CASES; do
    IFS=: read -r policy pipeline clients requests <<<"$c"
    for _ in $(seq 1 "$ROUNDS"); do
        one ringkv "$policy" "$pipeline" "$clients" "${requests:-$REQUESTS}"
        one redis "$policy" "$pipeline" "$clients" "${requests:-$REQUESTS}"
        if [ -n "${BEFORE_BIN:-}" ]; then
            one before "$policy" "$pipeline" "$clients" "${requests:-$REQUESTS}"
        fi
    done
done

python3 - "$RESULTS" <<'PY'
import sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    server, policy, pipeline, clients, requests, csv, cpu, fsyncs = line.split(" ", 7)
    f = [x.strip('"') for x in csv.split(",")]
    per = int(requests) / int(fsyncs) if int(fsyncs) else 0
    rows[(policy, pipeline, clients, server)].append((float(f[1]), float(f[4]), float(f[6]), int(cpu) / int(requests), per))
print("%-9s %3s %3s %-7s %10s %7s %7s %9s %9s" % ("fsync", "-P", "-c", "server", "req/s", "p50ms", "p99ms", "cpu us/req", "req/fsync"))
cases = sorted({k[:3] for k in rows})
for case in cases:
    best = {}
    for server in ("ringkv", "redis", "before"):
        r = rows.get(case + (server,))
        if not r:
            continue
        med = sorted(r)[len(r) // 2]
        best[server] = med
        print("%-9s %3s %3s %-7s %10.0f %7.3f %7.3f %9.2f %9.1f" % (case + (server,) + med))
    for other in ("redis", "before"):
        if "ringkv" in best and other in best:
            print("  ratio ringkv/%s: throughput %.2fx, cpu/req %.2fx, p99 %.2fx" % (other,
                best["ringkv"][0] / best[other][0], best["ringkv"][3] / best[other][3], best["ringkv"][2] / best[other][2]))
PY
