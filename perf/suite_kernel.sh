#!/usr/bin/env bash
# Where the CPU of each default-suite test goes, kernel paths included,
# ringkv --shards 1 vs redis-server (issue 12: the list tests and SADD).
#
#   perf/suite_kernel.sh                               # set,lpush,rpush,lpop,rpop,sadd
#   TESTS=set,lpush ROUNDS=1 REQUESTS=200000 perf/suite_kernel.sh
#   BASE_BIN=/tmp/ringkv-old perf/suite_kernel.sh      # adds that build as "base"
#
# The load is perf/suite.sh's (redis-benchmark -c 50 -P 16 -r 100000, the
# tests in the order given, on one fresh server per round, so LPOP/RPOP pop
# what LPUSH/RPUSH pushed). Every test run is recorded with
# `perf record -e cpu-clock -g -p PID` (no PMU in this VM) and bracketed by
# the server's CPU time (schedstat of all its threads, ns; split into user
# and kernel by the samples' shares), the voluntary
# context switches of its threads (each one a sleep: "req/sleep" is how many
# requests one wake-up served), and its minor faults. perf/kernel_groups.py
# puts each sample in a kernel group (TCP send/receive, io_uring, wake-ups,
# scheduler, page faults, ...) and scales the group shares by the measured
# CPU time: microseconds per request per group, per test, servers side by
# side (median over the rounds).
#
# Environment: ROUNDS=2 REQUESTS=300000 CLIENTS=50 PIPELINE=16 KEYSPACE=100000
#   FREQ=2000 (samples/s) TESTS=set,lpush,rpush,lpop,rpop,sadd
#   SERVERS="ringkv redis" (+ base with BASE_BIN) KEEP=1 keeps perf.data.
#   PORT_MIN/PORT_MAX: the port range (see lib.sh).

source "$(dirname "$0")/lib.sh"
need_python
ensure_pkg perf linux-perf

ROUNDS="${ROUNDS:-2}"
REQUESTS="${REQUESTS:-300000}"
CLIENTS="${CLIENTS:-50}"
PIPELINE="${PIPELINE:-16}"
KEYSPACE="${KEYSPACE:-100000}"
FREQ="${FREQ:-2000}"
TESTS="${TESTS:-set,lpush,rpush,lpop,rpop,sadd}"
SERVERS="${SERVERS:-ringkv redis${BASE_BIN:+ base}}"
if [ "$NCPU" -gt 1 ]; then CLIENT_CORE="${CLIENT_CORE:-1}"; else CLIENT_CORE="${CLIENT_CORE:-0}"; fi

TS="$(timestamp)"
DIR="$OUT_DIR/suite_kernel-$TS"
mkdir -p "$DIR"

one() { # SERVER ROUND
    local server="$1" round="$2" port t data pid c0 c1 f0 f1 s0 s1
    port="$(free_port)"
    start_one_shard "$server" "$port" "$DIR/$server.log"
    pid="$SERVER_PID"
    for t in ${TESTS//,/ }; do
        data="$DIR/$server-$round-$t.data"
        f0="$(minflt "$pid")"
        c0="$(cpu_ns "$pid")"
        s0="$(sleeps "$pid")"
        run perf record -q -e cpu-clock -F "$FREQ" -g -p "$pid" -o "$data" -- \
            taskset -c "$CLIENT_CORE" redis-benchmark -p "$port" -c "$CLIENTS" -P "$PIPELINE" \
            -r "$KEYSPACE" -n "$REQUESTS" -t "$t" -q >/dev/null 2>&1
        c1="$(cpu_ns "$pid")"
        f1="$(minflt "$pid")"
        s1="$(sleeps "$pid")"
        perf script -i "$data" 2>/dev/null | python3 "$PERF_DIR/kernel_groups.py" group \
            --server "$server" --requests "$REQUESTS" --cpu-us "$(((c1 - c0) / 1000))" >"$DIR/$server-$round-$t.json"
        echo "$server,$round,$t,$((s1 - s0)),$((f1 - f0))" >>"$DIR/events.csv"
        [ "${KEEP:-0}" = 1 ] || rm -f "$data"
    done
    stop_pid "$pid"
}

run_rounds

for t in ${TESTS//,/ }; do
    echo
    echo "== ${t^^} (-c $CLIENTS -P $PIPELINE -r $KEYSPACE, $REQUESTS requests, $ROUNDS round(s))"
    python3 "$PERF_DIR/kernel_groups.py" table "$DIR"/*-"$t".json
    python3 - "$DIR/events.csv" "$t" "$REQUESTS" <<'EOF_PY'
import sys, statistics, collections
path, test, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sl, fl = collections.defaultdict(list), collections.defaultdict(list)
for line in open(path):
    server, _, t, s, f = line.strip().split(",")
    if t == test:
        sl[server].append(int(s))
        fl[server].append(int(f))
print("requests per sleep: " + ", ".join("%s %.1f" % (s, n / max(statistics.median(v), 1)) for s, v in sl.items())
      + "; minor faults per 1000 requests: " + ", ".join("%s %.2f" % (s, 1000 * statistics.median(v) / n) for s, v in fl.items()))
EOF_PY
done
log "raw: $DIR"
