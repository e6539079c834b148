#!/usr/bin/env bash
# Where the kernel time of an unpipelined request goes, ringkv --shards 1 vs
# redis-server (issue 14).
#
#   perf/kernel_breakdown.sh              # SET, -c 50 -P 1, 2 rounds
#   TEST=get ROUNDS=1 REQUESTS=100000 perf/kernel_breakdown.sh
#
# Both servers pinned to SERVER_CORES (core 0), redis-benchmark to CLIENT_CORE
# (core 1). Each round records each server in turn (the order flips every
# round) with `perf record -e cpu-clock -g -p PID` (software clock: this VM has
# no PMU) for exactly one redis-benchmark run, and reads the server's utime
# and stime around it. perf/kernel_groups.py then puts every sample in one
# group by the innermost frame of its call chain that names a group
# (io_uring submission/completion, task work, wake-ups, fget/fput, TCP send,
# TCP receive, softirq delivery to the peer, scheduler, syscall entry, epoll,
# timers, ...), and scales the group shares by the CPU per request measured
# from /proc: microseconds per request per group, both servers side by side.
#
# Environment: ROUNDS=2 TEST=set REQUESTS=200000 CLIENTS=50 KEYSPACE=1000000
#   VALUE_BYTES=32 PIPELINE=1 FREQ=4000 (samples/s) CLIENT_CORE=1 SERVER_CORES=0
#   RINGKV_BIN=... REDIS_SERVER_BIN=... RINGKV_ARGS="..."
#   BASELINE_BIN=path  a second ringkv build recorded as "base" in the same
#   rounds (before/after a change from one run)
#   KEEP=1 keeps the perf.data files (perf/out/kernel_breakdown-*.data).
# Re-group saved data: perf script -i F.data | perf/kernel_groups.py group
# (see the script's header).

source "$(dirname "$0")/lib.sh"
need_python
ensure_pkg perf linux-perf

ROUNDS="${ROUNDS:-2}"
TEST="${TEST:-set}"
REQUESTS="${REQUESTS:-200000}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-32}"
PIPELINE="${PIPELINE:-1}"
FREQ="${FREQ:-4000}"
if [ "$NCPU" -gt 1 ]; then CLIENT_CORE="${CLIENT_CORE:-1}"; else CLIENT_CORE="${CLIENT_CORE:-0}"; fi

ensure_ringkv
TS="$(timestamp)"
start_side_by_side "$OUT_DIR/kernel_breakdown-$TS"

GROUPED=()
for round in $(seq 1 "$ROUNDS"); do
    for server in $(round_order "$round"); do
        side_by_side_server "$server"
        data="$OUT_DIR/kernel_breakdown-$TS-$server-$round.data"
        log "== round $round: $server (load $(cut -d' ' -f1 /proc/loadavg))"
        b="$(cpu_ticks "$pid")"
        run perf record -q -e cpu-clock -F "$FREQ" -g -p "$pid" -o "$data" -- \
            taskset -c "$CLIENT_CORE" redis-benchmark -h 127.0.0.1 -p "$port" -t "$TEST" \
            -n "$REQUESTS" -c "$CLIENTS" -r "$KEYSPACE" -d "$VALUE_BYTES" -P "$PIPELINE" -q >/dev/null 2>&1
        a="$(cpu_ticks "$pid")"
        read -r bu bs <<<"$b"
        read -r au as <<<"$a"
        grouped="$OUT_DIR/kernel_breakdown-$TS-$server-$round.json"
        perf script -i "$data" 2>/dev/null | python3 "$PERF_DIR/kernel_groups.py" group \
            --server "$server" --requests "$REQUESTS" \
            --user-us "$(python3 -c "print(($au-$bu)*1e6/$CLK_TCK)")" \
            --sys-us "$(python3 -c "print(($as-$bs)*1e6/$CLK_TCK)")" >"$grouped"
        GROUPED+=("$grouped")
        [ "${KEEP:-0}" = 1 ] || rm -f "$data"
    done
done

echo
echo "$TEST -c $CLIENTS -P $PIPELINE, $REQUESTS requests per run, $ROUNDS round(s)"
python3 "$PERF_DIR/kernel_groups.py" table "${GROUPED[@]}"
