#!/usr/bin/env bash
# Pub/sub fan-out: 1 publisher, SUBSCRIBERS (100) subscribers of one channel,
# ringkv --shards 2 and --shards 1 beside redis-server 7.0.
#
#   perf/pubsub.sh
#   MESSAGES=5000 ROUNDS=1 perf/pubsub.sh        # quick smoke run
#
# Load: perf/pubsub_load.py (READER_PROCS processes read the subscribers'
# sockets without parsing, counting bytes; the publisher pipelines PUBLISH in
# batches of PIPELINE and checks each reply counts every subscriber).
# Figures per run: messages delivered per second (first PUBLISH to the last
# byte at the last subscriber), server CPU (utime+stime of all threads, from
# /proc/PID/stat) per delivered message, and how many cores the server kept
# busy. "Throughput per core" = delivered messages per server CPU-second =
# 1 / CPU per delivered message; the ratio ringkv/redis of that is the goal
# (>= 1.0x).
#
# Where the subscribers' connections land: ringkv has one SO_REUSEPORT
# listener per shard, so the kernel picks the shard by a hash of the
# connection's address pair: 100 connections split about evenly over 2 shards
# (binomially, 50 +- 5), so the channel's owner sends about half of every
# message's deliveries to the other shard as one batch per publish.
#
# Cores: redis-server and ringkv --shards 1 on SERVER_CORES (default 0),
# ringkv --shards 2 on SERVER_CORES_2 (default 0-1), the load on CLIENT_CORES
# (default: the rest). On a machine with fewer than 4 cores the load shares
# cores with the server: take the figures on a quiet machine with more.
# Patterns: the same load with every subscriber on PSUBSCRIBE ben* (MODES),
# and the time of a SUBSCRIBE+UNSUBSCRIBE pair vs a PSUBSCRIBE+PUNSUBSCRIBE
# pair (ringkv keeps patterns on every shard: P(UN)SUBSCRIBE holds them all).
# Environment: SUBSCRIBERS=100 MESSAGES=50000 PIPELINE=32 PAYLOAD=16
# READER_PROCS=4 ROUNDS=2 MODES="channel pattern" SUB_ROUNDS=2000.
source "$(dirname "$0")/lib.sh"
SUBSCRIBERS=${SUBSCRIBERS:-100}
MESSAGES=${MESSAGES:-50000}
PIPELINE=${PIPELINE:-32}
PAYLOAD=${PAYLOAD:-16}
READER_PROCS=${READER_PROCS:-4}
ROUNDS=${ROUNDS:-2}
MODES=${MODES:-channel pattern}
SUB_ROUNDS=${SUB_ROUNDS:-2000}
if [ "$NCPU" -ge 4 ]; then
    SERVER_CORES_2=${SERVER_CORES_2:-0-1}
    CLIENT_CORES=${CLIENT_CORES_OVERRIDE:-2-$((NCPU - 1))}
else
    SERVER_CORES_2=${SERVER_CORES_2:-0-$((NCPU > 1 ? 1 : 0))}
fi
need_python
ensure_ringkv
RESULTS="$OUT_DIR/pubsub.txt"
: >"$RESULTS"
: >"$OUT_DIR/pubsub-subscribe.txt"

# Each run: one fresh server, the publishers/subscribers, one line of results.
one_run() { # LABEL SERVER SHARDS CORES
    local label="$1" server="$2" shards="$3" cores="$4" port line mode
    port=$(free_port)
    SERVER_CORES="$cores" RINGKV_CORES="$cores" start_named "$server" "$port" "$shards" "$OUT_DIR/pubsub-$label.log" \
        --client-output-buffer-limit "pubsub 0 0 0"
    for mode in $MODES; do
        line=$(run taskset -c "$CLIENT_CORES" python3 "$PERF_DIR/pubsub_load.py" "$port" "$SERVER_PID" \
            "$SUBSCRIBERS" "$MESSAGES" "$PIPELINE" "$PAYLOAD" "$READER_PROCS" "$mode")
        echo "server=$label $line" | tee -a "$RESULTS"
    done
    line=$(run taskset -c "$CLIENT_CORES" python3 "$PERF_DIR/pubsub_load.py" "$port" "$SERVER_PID" subscribe-latency "$SUB_ROUNDS")
    echo "server=$label $line" | tee -a "$OUT_DIR/pubsub-subscribe.txt"
    stop_pid "$SERVER_PID"
}

for round in $(seq "$ROUNDS"); do
    log "round $round"
    one_run redis redis 1 "${SERVER_CORES:-0}"
    one_run ringkv-shards-1 ringkv 1 "${SERVER_CORES:-0}"
    one_run ringkv-shards-2 ringkv 2 "$SERVER_CORES_2"
done

python3 - "$RESULTS" "$OUT_DIR/pubsub-subscribe.txt" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split())
    rows.setdefault((kv["mode"], kv["server"]), []).append(kv)
def med(key, field):
    return statistics.median(float(r[field]) for r in rows[key])
print()
print("%-8s %-16s %14s %12s %11s %14s %18s" % ("mode", "server", "delivered/s", "cpu ns/msg", "cores busy", "rate vs redis", "per-core vs redis"))
for key in rows:
    base = (key[0], "redis")
    rate, cpu = med(key, "delivered_per_s"), med(key, "server_cpu_ns_per_delivered")
    print("%-8s %-16s %14.0f %12.0f %11.2f %13.2fx %17.2fx" % (key[0], key[1], rate, cpu, med(key, "server_cores_busy"),
          rate / med(base, "delivered_per_s"), med(base, "server_cpu_ns_per_delivered") / cpu))
print()
subs = {}
for line in open(sys.argv[2]):
    kv = dict(f.split("=", 1) for f in line.split())
    subs.setdefault(kv["server"], []).append(kv)
for name, rs in subs.items():
    print("%-16s SUBSCRIBE+UNSUBSCRIBE %8.1f us   PSUBSCRIBE+PUNSUBSCRIBE %8.1f us" % (name,
          statistics.median(float(r["subscribe_pair_usec"]) for r in rs), statistics.median(float(r["psubscribe_pair_usec"]) for r in rs)))
PY
