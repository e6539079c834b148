#!/usr/bin/env bash
# redis-benchmark's default test set, ringkv --shards 1 vs redis-server, each
# pinned to SERVER_CORES in turn, the benchmark on CLIENT_CORES (issue 12's
# "default suite at -c 50 -P 16, every test >= 1.5x").
#
#   perf/suite.sh                        # -P 16, 2 rounds
#   PIPELINE=1 REQUESTS=100000 perf/suite.sh
#
# Per test and server: requests/s (redis-benchmark --csv) and server CPU
# (utime+stime, /proc/PID/stat) per request over the whole test set; rounds
# alternate the two servers so a drifting machine hits both. At ~1M req/s a
# one-core redis-benchmark can be the limit of the fastest tests.
#
# Environment: REQUESTS=300000, CLIENTS=50, PIPELINE=16, KEYSPACE=100000,
#   ROUNDS=2, TESTS (redis-benchmark -t list; default: its default set).

source "$(dirname "$0")/lib.sh"
need_python

REQUESTS="${REQUESTS:-300000}"
CLIENTS="${CLIENTS:-50}"
PIPELINE="${PIPELINE:-16}"
KEYSPACE="${KEYSPACE:-100000}"
ROUNDS="${ROUNDS:-2}"
TESTS="${TESTS:-set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,lrange_300,lrange_500,lrange_600,mset}"
TS="$(timestamp)"
RESULTS="$OUT_DIR/suite-$TS.csv"
: >"$RESULTS"

one() { # SERVER ROUND
    local server="$1" round="$2" port cpu0 cpu1 csv
    port="$(free_port)"
    start_named "$server" "$port" 1 "$OUT_DIR/suite-$server.log"
    cpu0="$(cpu_usec "$SERVER_PID")"
    csv="$(run taskset -c "$CLIENT_CORES" redis-benchmark -p "$port" -c "$CLIENTS" -P "$PIPELINE" \
        -n "$REQUESTS" -r "$KEYSPACE" -t "$TESTS" --csv 2>/dev/null)"
    cpu1="$(cpu_usec "$SERVER_PID")"
    stop_pid "$SERVER_PID"
    # One line per test: server,round,test,rps; then the run's CPU per request.
    echo "$csv" | awk -F'","' -v s="$server" -v r="$round" 'NR > 1 { gsub(/"/, "", $1); print s "," r "," $1 "," $2 }' >>"$RESULTS"
    local tests
    tests="$(echo "$csv" | tail -n +2 | wc -l)"
    echo "$server,$round,__cpu_us_per_req__,$(awk -v a="$cpu0" -v b="$cpu1" -v n="$((REQUESTS * tests))" 'BEGIN { printf "%.3f", (b - a) / n }')" >>"$RESULTS"
}

for round in $(seq 1 "$ROUNDS"); do
    log "round $round"
    one ringkv "$round"
    one redis "$round"
done

python3 - "$RESULTS" <<'EOF'
import sys, collections
best = collections.defaultdict(dict)
order = []
for line in open(sys.argv[1]):
    server, _, test, value = line.rstrip("\n").split(",", 3)
    value = float(value.strip('"'))
    if test not in order:
        order.append(test)
    best[test][server] = max(best[test].get(server, 0.0), value) if test != "__cpu_us_per_req__" else min(best[test].get(server, 1e18), value)
print("%-40s %12s %12s %7s" % ("test (best of rounds)", "ringkv", "redis", "ratio"))
for t in order:
    r, d = best[t].get("ringkv", 0), best[t].get("redis", 0)
    name = "server CPU us/request (all tests)" if t == "__cpu_us_per_req__" else t
    fmt = "%-40s %12.3f %12.3f %6.2fx" if t == "__cpu_us_per_req__" else "%-40s %12.0f %12.0f %6.2fx"
    print(fmt % (name, r, d, (r / d) if d else 0))
EOF
log "raw: $RESULTS"
