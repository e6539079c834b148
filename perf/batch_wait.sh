#!/usr/bin/env bash
# `batch-wait-usec` on against off (perf/RESULTS.md "sat21"): the
# unpipelined latency it must not touch, and the pipelined CPU it is for.
#
#   perf/batch_wait.sh                          # 50 us against 0, 2 rounds
#   WAIT_US=30 ROUNDS=4 perf/batch_wait.sh
#
# Latency: `redis-benchmark -t get -n LAT_REQUESTS -r 1000 -P 1 -c C --csv`
# for C in LAT_CLIENTS, the server's INFO `batch_waits` after each (0 at
# -P 1 under 64 clients: the same path as off). CPU: `-c 50 -P 16 -n
# REQUESTS -r 100000 -t T` for T in TESTS, server CPU us per request from
# /proc/PID/task/*/schedstat. Both builds are the same binary (RINGKV_BIN),
# alternated per round, a fresh server each time, ringkv --shards 1 on
# SERVER_CORES, the benchmark on CLIENT_CORES.
# Environment: ROUNDS=2 WAIT_US=50 LAT_CLIENTS="1 2 8 50" LAT_REQUESTS=60000
#   TESTS="lpush rpush" REQUESTS=600000. Output: CSV lines
#   round,setting,kind,clients_or_test,rps,p50_ms,p99_ms,cpu_us_per_req,batch_waits
#   and a copy in perf/out/batch_wait-<timestamp>.csv.

source "$(dirname "$0")/lib.sh"
ensure_ringkv

ROUNDS="${ROUNDS:-2}"
WAIT_US="${WAIT_US:-50}"
LAT_CLIENTS="${LAT_CLIENTS:-1 2 8 50}"
LAT_REQUESTS="${LAT_REQUESTS:-60000}"
TESTS="${TESTS:-lpush rpush}"
REQUESTS="${REQUESTS:-600000}"
RESULTS="$OUT_DIR/batch_wait-$(timestamp).csv"
: >"$RESULTS"

cpu_ns() { awk '{ s += $1 } END { print s + 0 }' /proc/"$1"/task/*/schedstat; }

for r in $(seq 1 "$ROUNDS"); do
    for us in 0 "$WAIT_US"; do
        port="$(free_port)"
        dir="$(mktemp -d "${TMPDIR:-/tmp}/batch_wait.XXXXXX")"
        start_server ringkv "$SERVER_CORES" "$port" "$dir/log" \
            "$RINGKV_BIN" --port "$port" --shards 1 --save "" --dir "$dir" --batch-wait-usec "$us"
        for c in $LAT_CLIENTS; do
            line="$(taskset -c "$CLIENT_CORES" redis-benchmark -p "$port" -t get -n "$LAT_REQUESTS" -r 1000 -P 1 -c "$c" --csv | tail -1 | tr -d '"')"
            waits="$(redis-cli -p "$port" info stats | tr -d '\r' | awk -F: '/^batch_waits:/ { print $2 }')"
            # test,rps,avg,min,p50,p95,p99,max
            echo "$line" | awk -F, -v r="$r" -v us="$us" -v c="$c" -v w="$waits" \
                '{ printf "%s,%s,latency,%s,%s,%s,%s,,%s\n", r, us, c, $2, $5, $7, w }' | tee -a "$RESULTS"
        done
        for t in $TESTS; do
            before="$(cpu_ns "$SERVER_PID")"
            rps="$(taskset -c "$CLIENT_CORES" redis-benchmark -p "$port" -t "$t" -n "$REQUESTS" -r 100000 -P 16 -c 50 --csv | tail -1 | cut -d, -f2 | tr -d '"')"
            after="$(cpu_ns "$SERVER_PID")"
            waits="$(redis-cli -p "$port" info stats | tr -d '\r' | awk -F: '/^batch_waits:/ { print $2 }')"
            echo "$r,$us,cpu,$t,$rps,,,$(awk -v a="$before" -v b="$after" -v n="$REQUESTS" 'BEGIN { printf "%.4f", (b - a) / 1000 / n }'),$waits" | tee -a "$RESULTS"
        done
        stop_pid "$SERVER_PID"
        rm -rf "$dir"
    done
done
echo "raw: $RESULTS"
