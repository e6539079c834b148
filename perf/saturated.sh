#!/usr/bin/env bash
# Saturated unpipelined load: requests per second per server core, ringkv
# --shards 1 vs redis-server (issue 14).
#
#   perf/saturated.sh                         # 4 rounds of 10 s, memtier if built
#   ROUNDS=1 SECONDS_PER_RUN=3 perf/saturated.sh   # a quick smoke run
#   SERVER_CORES=0 CLIENT_CORES=1-7 THREADS=6 perf/saturated.sh   # choose by hand
#
# On a bigger box the defaults size the load from `nproc`: the server on core
# 0, the load generator on cores 1..n-1, one memtier thread (or one
# redis-benchmark process) per client core, so on 16 cores a plain
# `ROUNDS=2 SECONDS_PER_RUN=5 perf/saturated.sh` runs 15 threads x 25
# connections (375) against one server core: about a minute in all.
#
# Both servers pinned to SERVER_CORES (one core), the load generator to
# CLIENT_CORES. Every request is unpipelined (-P 1 / --pipeline=1); enough
# connections and client threads are used that the server core should be
# busy all the time: memtier_benchmark (THREADS threads x CONNS connections,
# 1:1 SET:GET, random keys) when it is on PATH, else CLIENTS_PROCS parallel
# redis-benchmark processes (SET and GET alternately). Rounds alternate the
# servers. Per run the script reads the server's commands processed (INFO
# stats total_commands_processed) and CPU time (/proc/PID/stat) before and
# after, and prints:
#   req/s        commands per wall-clock second;
#   server CPU   the share of one core the server used (100% = saturated);
#   req/s/core   commands per second of server CPU time: the figure to
#                compare. When server CPU is well under 100% the client is the
#                limit (on a 2-core VM one client core cannot saturate a server
#                core), and req/s/core is then the server's cost per request
#                at that load, not its measured peak: re-take on a machine with
#                more client cores.
#
# Environment: ROUNDS=4 SECONDS_PER_RUN=10 THREADS=max(4, client cores)
#   CONNS=25 (per thread) CLIENTS_PROCS=max(2, client cores) (redis-benchmark
#   fallback, 50 connections each); client cores = nproc - 1 by default
#   KEYSPACE=1000000 VALUE_BYTES=32 SERVER_CORES=0 CLIENT_CORES=1-(n-1)
#   TOOL=memtier|redis-benchmark RINGKV_BIN=... REDIS_SERVER_BIN=...
#   BASELINE_BIN=path  a second ringkv build ("base") in the same rounds
# Output: medians per server and the ratios; raw runs in perf/out/saturated-<ts>.csv.

source "$(dirname "$0")/lib.sh"
need_python

ROUNDS="${ROUNDS:-4}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
# Cores in CLIENT_CORES ("1-15", "1,3,5-7"): one load thread or process each.
CLIENT_CORE_COUNT="$(python3 -c "
n = 0
for part in '$CLIENT_CORES'.split(','):
    a, _, b = part.partition('-')
    n += int(b or a) - int(a) + 1
print(n)")"
THREADS="${THREADS:-$((CLIENT_CORE_COUNT > 4 ? CLIENT_CORE_COUNT : 4))}"
CONNS="${CONNS:-25}"
CLIENTS_PROCS="${CLIENTS_PROCS:-$((CLIENT_CORE_COUNT > 2 ? CLIENT_CORE_COUNT : 2))}"
KEYSPACE="${KEYSPACE:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-32}"
if [ -z "${TOOL:-}" ]; then
    if command -v memtier_benchmark >/dev/null; then TOOL=memtier; else TOOL=redis-benchmark; fi
fi

ensure_ringkv
TS="$(timestamp)"
RAW="$OUT_DIR/saturated-$TS.csv"
echo "round,server,tool,seconds,commands,rps,cpu_share,rps_per_core" >"$RAW"

start_side_by_side "$OUT_DIR/saturated-$TS"
if [ "$TOOL" = memtier ]; then shape="$THREADS threads x $CONNS connections"; else shape="$CLIENTS_PROCS processes x 50 connections"; fi
log "load generator: $TOOL ($shape) on cores $CLIENT_CORES ($CLIENT_CORE_COUNT); server on $SERVER_CORES; load average $(cut -d' ' -f1-3 /proc/loadavg)"

commands() { # PORT
    redis-cli -p "$1" info stats | tr -d '\r' | awk -F: '/^total_commands_processed:/ { print $2 }'
}

load() { # PORT
    local port="$1" pids=() i
    if [ "$TOOL" = memtier ]; then
        run taskset -c "$CLIENT_CORES" memtier_benchmark -s 127.0.0.1 -p "$port" -t "$THREADS" -c "$CONNS" \
            --pipeline=1 --ratio=1:1 -d "$VALUE_BYTES" --key-maximum="$KEYSPACE" --key-pattern=R:R \
            --distinct-client-seed --test-time="$SECONDS_PER_RUN" --hide-histogram >/dev/null 2>&1 || true
    else
        for i in $(seq 1 "$CLIENTS_PROCS"); do
            local t=set
            [ $((i % 2)) = 0 ] && t=get
            run taskset -c "$CLIENT_CORES" timeout "$SECONDS_PER_RUN" redis-benchmark -h 127.0.0.1 -p "$port" \
                -t "$t" -n 100000000 -c 50 -r "$KEYSPACE" -d "$VALUE_BYTES" -P 1 -q >/dev/null 2>&1 &
            pids+=($!)
        done
        for i in "${pids[@]}"; do wait "$i" || true; done
    fi
}

one_run() { # ROUND SERVER
    local round="$1" server="$2" port pid c0 c1 t0 t1 u0 u1
    side_by_side_server "$server"
    c0="$(commands "$port")"
    u0="$(cpu_usec "$pid")"
    t0="$(date +%s.%N)"
    load "$port"
    t1="$(date +%s.%N)"
    u1="$(cpu_usec "$pid")"
    c1="$(commands "$port")"
    # The two INFO calls themselves are 2 of the commands: negligible.
    read -r secs n rps share per_core <<<"$(python3 -c "
s = $t1 - $t0; n = $c1 - $c0; cpu = ($u1 - $u0) / 1e6
print(f'{s:.2f} {n} {n / s:.0f} {100 * cpu / s:.1f} {n / cpu if cpu else 0:.0f}')")"
    echo "$round,$server,$TOOL,$secs,$n,$rps,$share,$per_core" >>"$RAW"
    log "  -> $server: $rps req/s, server CPU $share% of a core, $per_core req/s per server core"
}

for round in $(seq 1 "$ROUNDS"); do
    log "== round $round/$ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))"
    for server in $(round_order "$round"); do
        one_run "$round" "$server"
    done
done

echo
echo "raw runs: $RAW"
python3 "$PERF_DIR/side_by_side.py" saturated "$RAW"
