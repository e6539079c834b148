#!/usr/bin/env bash
# Transactions: a two-command MULTI/EXEC workload and MSET, ringkv --shards 2
# and --shards 1 beside redis-server 7.0, each server alone on SERVER_CORES.
#
#   perf/transactions.sh        # DURATION=10 PROCS=2 CONNS=25 REQUESTS=300000
#
# 1. perf/multi_load.py: PROCS x CONNS connections, each sending
#    MULTI / SET k1 / SET k2 / EXEC per round trip for DURATION seconds.
#    `same`: both keys of a connection under one hashtag (one shard);
#    `cross`: k1 on shard 0 and k2 on shard 1 of the 2-shard ringkv (its EXEC
#    holds the other shard). The Python client may be the bottleneck: compare
#    the server CPU per transaction (utime+stime from /proc/PID/stat) more
#    than transactions/s.
# 2. redis-benchmark -t mset -P 1 -c 50 -n REQUESTS (MSET of 10 random keys:
#    several shards, held).
# Prints one line per run and the ratios to redis-server.
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10}; PROCS=${PROCS:-2}; CONNS=${CONNS:-25}; REQUESTS=${REQUESTS:-300000}
RINGKV_CORES=${RINGKV_CORES:-0-1}
ensure_ringkv
TMP=$(mktemp -d); trap 'cleanup; rm -rf "$TMP"' EXIT
declare -A TX_RATE TX_CPU MSET_RATE MSET_CPU

measure() { # NAME PORT PID
    local name="$1" port="$2" pid="$3" mode c0 out n secs rps
    for mode in same cross; do
        c0=$(cpu_usec "$pid")
        out=$(run taskset -c "$CLIENT_CORES" python3 "$PERF_DIR/multi_load.py" "$port" "$mode" "$DURATION" "$PROCS" "$CONNS")
        n=${out#transactions=}; n=${n%% *}; secs=${out##*seconds=}
        TX_RATE[$name.$mode]=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
        TX_CPU[$name.$mode]=$(( ($(cpu_usec "$pid") - c0) * 1000 / (n > 0 ? n : 1) ))
        echo "multi-exec $name keys=$mode transactions_per_s=${TX_RATE[$name.$mode]} server_cpu_ns_per_tx=${TX_CPU[$name.$mode]}"
    done
    run redis-cli -p "$port" flushall >/dev/null
    c0=$(cpu_usec "$pid")
    rps=$(run taskset -c "$CLIENT_CORES" redis-benchmark -p "$port" -t mset -P 1 -c 50 -n "$REQUESTS" -r 1000000 -q | grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
    MSET_RATE[$name]=${rps%.*}
    MSET_CPU[$name]=$(( ($(cpu_usec "$pid") - c0) * 1000 / REQUESTS ))
    echo "mset $name requests_per_s=${MSET_RATE[$name]} server_cpu_ns_per_req=${MSET_CPU[$name]}"
}

for server in redis ringkv2 ringkv1; do
    port=$(free_port)
    case $server in
    redis) start_redis "$port" "$TMP/redis.log" --dir "$TMP" ;;
    ringkv2) start_ringkv "$port" 2 "$TMP/ringkv2.log" --dir "$TMP" ;;
    ringkv1) start_ringkv "$port" 1 "$TMP/ringkv1.log" --dir "$TMP" ;;
    esac
    measure "$server" "$port" "$SERVER_PID"
    stop_pid "$SERVER_PID"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
for server in ringkv2 ringkv1; do
    for mode in same cross; do
        echo "ratio $server/redis multi-exec keys=$mode throughput=$(ratio "${TX_RATE[$server.$mode]}" "${TX_RATE[redis.$mode]}") cpu_per_tx=$(ratio "${TX_CPU[$server.$mode]}" "${TX_CPU[redis.$mode]}")"
    done
    echo "ratio $server/redis mset throughput=$(ratio "${MSET_RATE[$server]}" "${MSET_RATE[redis]}") cpu_per_req=$(ratio "${MSET_CPU[$server]}" "${MSET_CPU[redis]}")"
done
