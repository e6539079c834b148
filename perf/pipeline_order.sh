#!/usr/bin/env bash
# What "one connection's commands take effect in order across shards"
# (`network::dispatch`, "Order across shards") costs a pipeline: ringkv
# --shards 2, redis-benchmark -c CLIENTS -r KEYSPACE, tests set, get and
# lpush, at -P 16 and -P 1, for each build of BINS, alternated per round.
#
#   BINS="before=/tmp/ringkv-bfdaaff after=target/release/ringkv" ROUNDS=3 perf/pipeline_order.sh
#   REQUESTS=50000 ROUNDS=1 perf/pipeline_order.sh          # a quick sanity run
#
# set -r: random keys over both shards, so a pipeline of SETs switches shard
# about every other command (the rule's worst case: a write for this shard
# after one still out on the other waits for its reply). get: reads pass
# reads (no wait expected). lpush: redis-benchmark's one key `mylist` (every
# connection's commands for one shard: FIFO, no wait expected).
# Printed per round, build, pipeline and test: requests/s and server CPU
# (utime+stime, /proc/PID/stat) per request; then the medians over rounds.
# The server on SERVER_CORES (default 0: both shard threads share it), the
# client on CLIENT_CORES (default 1).
source "$(dirname "$0")/lib.sh"

SERVER_CORES="${SERVER_CORES:-0}"
CLIENT_CORES="${CLIENT_CORES:-1}"
REQUESTS="${REQUESTS:-400000}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-100000}"
ROUNDS="${ROUNDS:-3}"
BINS="${BINS:-after=$RINGKV_BIN}"
PIPELINES="${PIPELINES:-16 1}"
TESTS="${TESTS:-set get lpush}"

TS="$(timestamp)"
RAW="$OUT_DIR/pipeline_order-$TS.csv"
echo "round,build,pipeline,test,rps,cpu_us_per_req" >"$RAW"

one_build() { # ROUND NAME BIN
    local round="$1" name="$2" bin="$3" port log p t c0 c1 out rps
    port="$(free_port)"
    log="$OUT_DIR/pipeline_order-$TS-$name.log"
    RINGKV_BIN="$bin" start_ringkv "$port" 2 "$log"
    for p in $PIPELINES; do
        for t in $TESTS; do
            c0="$(cpu_usec "$SERVER_PID")"
            out="$(run taskset -c "$CLIENT_CORES" redis-benchmark -h 127.0.0.1 -p "$port" -t "$t" \
                -n "$REQUESTS" -c "$CLIENTS" -r "$KEYSPACE" -P "$p" --csv 2>&1)"
            c1="$(cpu_usec "$SERVER_PID")"
            rps="$(echo "$out" | awk -F'","' 'NR==2 { print $2 }')"
            printf '%s,%s,%s,%s,%s,%.3f\n' "$round" "$name" "$p" "$t" "$rps" \
                "$(echo "$c0 $c1 $REQUESTS" | awk '{ print ($2 - $1) / $3 }')" | tee -a "$RAW"
        done
    done
    stop_pid "$SERVER_PID"
}

log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r -a builds <<<"$BINS"
for round in $(seq 1 "$ROUNDS"); do
    order=("${builds[@]}")
    if [ $((round % 2)) = 0 ]; then
        order=()
        for ((i = ${#builds[@]} - 1; i >= 0; i--)); do order+=("${builds[i]}"); done
    fi
    for b in "${order[@]}"; do one_build "$round" "${b%%=*}" "${b#*=}"; done
done
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "median over $ROUNDS round(s): build,pipeline,test,rps,cpu_us_per_req"
tail -n +2 "$RAW" | sort -t, -k2,2 -k3,3nr -k4,4 | awk -F, '
    { key = $2 "," $3 "," $4; n[key]++; rps[key, n[key]] = $5; cpu[key, n[key]] = $6; order[key] = NR }
    function median(arr, key, m,   i, j, t, v) {
        for (i = 1; i <= m; i++) v[i] = arr[key, i]
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
        return (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
    }
    END { for (k in n) printf "%s,%.0f,%.3f\n", k, median(rps, k, n[k]), median(cpu, k, n[k]) }' | sort
echo "raw: $RAW"
