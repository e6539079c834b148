#!/usr/bin/env bash
# The causal merge of the shards' write streams (src/persistence/lanes.rs):
# SET throughput and server CPU per request, this build against an older
# one (BASE_BIN), with the streams off, with the AOF on (everysec), and with
# one redis-server replica attached, at -P 16 and -P 1.
#
#   BASE_BIN=/tmp/ringkv-1303edf perf/repl_order.sh
#   REQUESTS=100000 ROUNDS=1 BASE_BIN=... perf/repl_order.sh   # sanity run
#
# Each (mode, pipeline) case runs ROUNDS rounds, alternating the two builds
# (after, before, after, before...), each a fresh `ringkv --shards SHARDS`
# pinned to SERVER_CORES, redis-benchmark on CLIENT_CORE. In `replica` mode
# a redis-server 7.0 replica (on CLIENT_CORE, REPLICAOF) is attached and its
# link up before the run; the master's CPU (every thread: shards, the
# replication feeder) is what is counted. Also runs redis-server itself as a
# reference (REDIS=0 to skip). Printed per build: median req/s, server CPU
# per request (us, user+sys from /proc/PID/stat) and after/before ratios.
#
# Environment: REQUESTS=300000, CLIENTS=50, KEYSPACE=100000, VALUE_BYTES=32,
#   SHARDS=3, ROUNDS=3, MODES="off everysec replica", PIPELINES="16 1", REDIS=1.

source "$(dirname "$0")/lib.sh"
need_python

REQUESTS="${REQUESTS:-300000}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-100000}"
VALUE_BYTES="${VALUE_BYTES:-32}"
SHARDS="${SHARDS:-3}"
ROUNDS="${ROUNDS:-3}"
MODES="${MODES:-off everysec replica}"
PIPELINES="${PIPELINES:-16 1}"
REDIS="${REDIS:-1}"
[ -n "${BASE_BIN:-}" ] || die "BASE_BIN=path/to/the/older/ringkv is required"
if [ "$NCPU" -gt 1 ]; then CLIENT_CORE="${CLIENT_CORE:-1}"; else CLIENT_CORE="${CLIENT_CORE:-0}"; fi
TS="$(timestamp)"
RESULTS="$OUT_DIR/repl_order-$TS.txt"
: >"$RESULTS"

one() { # BUILD MODE PIPELINE
    local build="$1" mode="$2" pipeline="$3"
    local dir port args=() cpu0 cpu1 csv master rport rpid=""
    dir="$(mktemp -d "$OUT_DIR/repl_order-$build-XXXXXX")"
    port="$(free_port)"
    case "$mode" in
    off) args=(--appendonly no) ;;
    everysec) args=(--appendonly yes --appendfsync everysec --dir "$dir") ;;
    replica) args=(--appendonly no --dir "$dir") ;;
    esac
    case "$build" in
    after) start_named ringkv "$port" "$SHARDS" "$dir/server.log" "${args[@]}" ;;
    before) RINGKV_BIN="$BASE_BIN" start_named ringkv "$port" "$SHARDS" "$dir/server.log" "${args[@]}" ;;
    redis) start_named redis "$port" 1 "$dir/server.log" "${args[@]}" ;;
    esac
    master="$SERVER_PID"
    if [ "$mode" = replica ]; then
        rport="$(free_port)"
        SERVER_CORES="$CLIENT_CORE" start_redis "$rport" "$dir/replica.log" --dir "$dir"
        rpid="$SERVER_PID"
        redis-cli -p "$rport" replicaof 127.0.0.1 "$port" >/dev/null
        for _ in $(seq 1 200); do
            redis-cli -p "$rport" info replication | grep -q '^master_link_status:up' && break
            sleep 0.1
        done
        redis-cli -p "$rport" info replication | grep -q '^master_link_status:up' || die "the replica's link did not come up"
    fi
    cpu0="$(cpu_usec "$master")"
    csv="$(run taskset -c "$CLIENT_CORE" redis-benchmark -h 127.0.0.1 -p "$port" -t set -n "$REQUESTS" \
        -c "$CLIENTS" -r "$KEYSPACE" -d "$VALUE_BYTES" -P "$pipeline" --csv 2>/dev/null | tail -1)"
    cpu1="$(cpu_usec "$master")"
    [ -n "$rpid" ] && stop_pid "$rpid"
    stop_pid "$master"
    rm -rf "$dir"
    echo "$build $mode $pipeline $csv $((cpu1 - cpu0))" | tee -a "$RESULTS"
}

for mode in $MODES; do
    for pipeline in $PIPELINES; do
        for _ in $(seq 1 "$ROUNDS"); do
            one after "$mode" "$pipeline"
            one before "$mode" "$pipeline"
            [ "$REDIS" = 1 ] && one redis "$mode" "$pipeline"
        done
    done
done

python3 - "$RESULTS" "$REQUESTS" <<'PY'
import sys, collections
rows = collections.defaultdict(list)
requests = int(sys.argv[2])
for line in open(sys.argv[1]):
    build, mode, pipeline, csv, cpu = line.split(" ", 4)
    f = [x.strip('"') for x in csv.split(",")]
    rows[(mode, int(pipeline), build)].append((float(f[1]), int(cpu) / requests))
print("%-9s %3s %-7s %10s %10s" % ("mode", "-P", "build", "req/s", "cpu us/req"))
for mode, p in sorted({k[:2] for k in rows}, key=lambda k: (k[0], -k[1])):
    med = {}
    for build in ("after", "before", "redis"):
        r = rows.get((mode, p, build))
        if not r:
            continue
        rps = sorted(x[0] for x in r)[len(r) // 2]
        cpu = sorted(x[1] for x in r)[len(r) // 2]
        med[build] = (rps, cpu)
        print("%-9s %3d %-7s %10.0f %10.3f" % (mode, p, build, rps, cpu))
    if "after" in med and "before" in med:
        print("  after/before: req/s %.3fx, cpu/req %.3fx" % (med["after"][0] / med["before"][0], med["after"][1] / med["before"][1]))
PY
