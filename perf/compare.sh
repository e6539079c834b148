#!/usr/bin/env bash
# ringkv vs redis-server, one shard against one redis thread, same core.
#
#   perf/compare.sh                      # 5 rounds, the defaults below
#   ROUNDS=1 REQUESTS=20000 perf/compare.sh   # a quick smoke run
#
# Both servers run pinned to core 0 (SERVER_CORES), the load generator pinned
# to core 1 (CLIENT_CORE). For each round, for SET and GET at -P 1 and -P 16,
# ringkv and redis-server are measured alternately (A B A B ...), so a slow
# drift of the machine hits both equally. Per run we record requests/s and
# latency percentiles from redis-benchmark --csv, and the server's CPU time
# (utime+stime from /proc/PID/stat) divided by the requests: at -P 1 a single
# redis-benchmark saturates before either server does, so compare CPU per
# request there, and requests/s at -P 16.
#
# If memtier_benchmark is on PATH it also runs memtier (RESP2 and RESP3,
# 1:10 SET:GET, pipeline 1 and 16, and --cluster-mode against ringkv only).
#
# Environment:
#   ROUNDS=5            rounds (medians are taken over them)
#   REQUESTS=1000000    requests per redis-benchmark run at -P 1
#   REQUESTS_PIPELINED=REQUESTS*10   requests per run at -P 16
#   CLIENTS=50 KEYSPACE=1000000 VALUE_BYTES=32
#   MEMTIER_REQUESTS=20000   requests per memtier connection (x CLIENTS)
#   CLIENT_CORE=1 SERVER_CORES=0 RINGKV_BIN=... REDIS_SERVER_BIN=...
# Output: a table on stdout; raw runs in perf/out/compare-<timestamp>.csv.

source "$(dirname "$0")/lib.sh"
need_python

ROUNDS="${ROUNDS:-5}"
REQUESTS="${REQUESTS:-1000000}"
REQUESTS_PIPELINED="${REQUESTS_PIPELINED:-$((REQUESTS * 10))}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-32}"
MEMTIER_REQUESTS="${MEMTIER_REQUESTS:-20000}"
if [ "$NCPU" -gt 1 ]; then CLIENT_CORE="${CLIENT_CORE:-1}"; else CLIENT_CORE="${CLIENT_CORE:-0}"; fi
[ "$NCPU" -gt 1 ] || log "warning: 1 CPU: server and client share core 0, figures are not meaningful"

ensure_ringkv
TS="$(timestamp)"
RAW="$OUT_DIR/compare-$TS.csv"
echo "tool,round,server,test,pipeline,proto,requests,rps,p50_ms,p99_ms,p999_ms,max_ms,cpu_us_per_req" >"$RAW"

RINGKV_PORT="$(free_port)"
start_ringkv "$RINGKV_PORT" 1 "$OUT_DIR/compare-$TS-ringkv.log"
RINGKV_PID="$SERVER_PID"
REDIS_PORT="$(free_port)"
start_redis "$REDIS_PORT" "$OUT_DIR/compare-$TS-redis.log"
REDIS_PID="$SERVER_PID"

log "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)"
log "ringkv: $("$RINGKV_BIN" --version)  redis: $("$REDIS_SERVER_BIN" --version | head -1)"

port_of() { if [ "$1" = ringkv ]; then echo "$RINGKV_PORT"; else echo "$REDIS_PORT"; fi; }
pid_of() { if [ "$1" = ringkv ]; then echo "$RINGKV_PID"; else echo "$REDIS_PID"; fi; }

# One redis-benchmark run: appends a row to $RAW and prints a progress line.
bench_run() { # ROUND SERVER TEST PIPELINE
    local round="$1" server="$2" test="$3" pipeline="$4"
    local port pid n before after out fields cpu
    port="$(port_of "$server")"
    pid="$(pid_of "$server")"
    n="$REQUESTS"
    [ "$pipeline" -gt 1 ] && n="$REQUESTS_PIPELINED"
    before="$(cpu_usec "$pid")"
    out="$(run taskset -c "$CLIENT_CORE" redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" \
        -n "$n" -c "$CLIENTS" -r "$KEYSPACE" -d "$VALUE_BYTES" -P "$pipeline" --csv 2>&1)"
    after="$(cpu_usec "$pid")"
    fields="$(printf '%s\n' "$out" | python3 "$PERF_DIR/summarize.py" bench-csv "$test")" ||
        die "could not parse redis-benchmark output: $out"
    cpu="$(python3 -c "print(f'{($after - $before) / $n:.4f}')")"
    echo "redis-benchmark,$round,$server,$test,$pipeline,resp2,$n,$fields,$cpu" >>"$RAW"
    log "  -> $server $test P$pipeline: rps,p50,p99,p99.9,max = $fields; cpu_us/req $cpu"
}

# One memtier run (1:10 SET:GET); cluster mode only makes sense for ringkv.
memtier_run() { # ROUND SERVER PROTO PIPELINE [--cluster-mode]
    local round="$1" server="$2" proto="$3" pipeline="$4" extra="${5:-}"
    local port pid n before after out fields cpu label
    port="$(port_of "$server")"
    pid="$(pid_of "$server")"
    n=$((MEMTIER_REQUESTS * CLIENTS))
    label="$server"
    [ -n "$extra" ] && label="$server-cluster"
    before="$(cpu_usec "$pid")"
    # shellcheck disable=SC2086
    if ! out="$(run taskset -c "$CLIENT_CORE" memtier_benchmark -s 127.0.0.1 -p "$port" \
        --protocol="$proto" -t 1 -c "$CLIENTS" --ratio=1:10 --pipeline="$pipeline" \
        -d "$VALUE_BYTES" --key-maximum="$KEYSPACE" --key-pattern=R:R -n "$MEMTIER_REQUESTS" \
        --distinct-client-seed --hide-histogram --print-percentiles=50,99,99.9 $extra 2>&1)"; then
        log "  -> memtier against $label failed:"
        printf '%s\n' "$out" | tail -5 >&2
        return 0
    fi
    after="$(cpu_usec "$pid")"
    fields="$(printf '%s\n' "$out" | python3 "$PERF_DIR/summarize.py" memtier)" || {
        log "  -> could not parse memtier output"
        return 0
    }
    cpu="$(python3 -c "print(f'{($after - $before) / $n:.4f}')")"
    echo "memtier,$round,$label,mixed-1:10,$pipeline,$proto,$n,$fields,$cpu" >>"$RAW"
    log "  -> $label $proto P$pipeline: ops/s,p50,p99,p99.9,max = $fields; cpu_us/req $cpu"
}

HAVE_MEMTIER=0
if command -v memtier_benchmark >/dev/null; then
    HAVE_MEMTIER=1
else
    log "memtier_benchmark not on PATH: using redis-benchmark only (its --csv gives p50/p99/max;"
    log "p99.9 needs memtier). Install memtier-benchmark from packages.redis.io to add it."
fi

for round in $(seq 1 "$ROUNDS"); do
    log "== round $round/$ROUNDS"
    for pipeline in 1 16; do
        for test in set get; do
            for server in ringkv redis; do
                bench_run "$round" "$server" "$test" "$pipeline"
            done
        done
    done
    if [ "$HAVE_MEMTIER" = 1 ]; then
        for pipeline in 1 16; do
            for proto in redis resp3; do
                for server in ringkv redis; do
                    memtier_run "$round" "$server" "$proto" "$pipeline"
                done
            done
            memtier_run "$round" ringkv redis "$pipeline" --cluster-mode
        done
    fi
done

echo
echo "raw runs: $RAW"
python3 "$PERF_DIR/summarize.py" compare "$RAW"
