#!/usr/bin/env bash
# Per-request CPU, scheduler and syscall costs of a server under redis-benchmark.
#
#   perf/stat.sh [TEST [PIPELINE]]          # default: set 1 (against ringkv)
#   SERVER=redis perf/stat.sh get 16        # the same against redis-server
#   REQUESTS=20000 SYSCALL_REQUESTS=5000 perf/stat.sh   # a quick smoke run
#
# 1. `perf stat -e task-clock,context-switches,page-faults,cycles,instructions
#    -p PID` while one redis-benchmark run of REQUESTS requests executes (the
#    benchmark is perf's workload, so the counting window is exactly the run),
#    each count divided by the requests. This VM has no hardware PMU: cycles
#    and instructions print "<not supported>" and are reported as such.
# 2. Syscalls per request over a second, shorter run (SYSCALL_REQUESTS):
#    `perf trace -s -p PID` when it works here, else `strace -c -f -p PID`.
#    Tracing slows the server, but the counts per request stay meaningful.
#    The figure to watch is io_uring_enter per request: with 50 connections at
#    -P 1 one loop turn should serve many connections, so well under 1.
#
# Environment: SERVER=ringkv|redis, REQUESTS=1000000, SYSCALL_REQUESTS=200000,
#   CLIENTS=50, KEYSPACE=1000000, VALUE_BYTES=32, SHARDS=1, SYSCALL_TRACER=auto|perf|strace.
# Installs linux-perf / strace with apt-get when missing and run as root.

source "$(dirname "$0")/lib.sh"
need_python

TEST="${1:-set}"
PIPELINE="${2:-1}"
SERVER="${SERVER:-ringkv}"
REQUESTS="${REQUESTS:-1000000}"
SYSCALL_REQUESTS="${SYSCALL_REQUESTS:-200000}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-32}"
SHARDS="${SHARDS:-1}"
SYSCALL_TRACER="${SYSCALL_TRACER:-auto}"
if [ "$NCPU" -gt 1 ]; then CLIENT_CORE="${CLIENT_CORE:-1}"; else CLIENT_CORE="${CLIENT_CORE:-0}"; fi

ensure_pkg perf linux-perf
TS="$(timestamp)"
PORT="$(free_port)"
start_named "$SERVER" "$PORT" "$SHARDS" "$OUT_DIR/stat-$TS-server.log"
PID="$SERVER_PID"

bench_cmd() { # REQUESTS
    echo taskset -c "$CLIENT_CORE" redis-benchmark -h 127.0.0.1 -p "$PORT" -t "$TEST" -n "$1" \
        -c "$CLIENTS" -r "$KEYSPACE" -d "$VALUE_BYTES" -P "$PIPELINE" -q
}

# Fill the keyspace first so a GET run reads existing keys, and warm up.
log "warm-up:"
# shellcheck disable=SC2046
run $(bench_cmd 100000 | sed "s/-t $TEST/-t set/") >/dev/null 2>&1

echo "== perf stat: $SERVER, $TEST -P $PIPELINE, $CLIENTS connections, $REQUESTS requests"
STAT_OUT="$OUT_DIR/stat-$TS-perfstat.csv"
# shellcheck disable=SC2046
run perf stat -x, -o "$STAT_OUT" -e task-clock,context-switches,page-faults,cycles,instructions \
    -p "$PID" -- $(bench_cmd "$REQUESTS") 2>&1 | tr '\r' '\n' | grep -v '^$' | tail -1
python3 - "$STAT_OUT" "$REQUESTS" <<'EOF'
import csv, sys
path, requests = sys.argv[1], int(sys.argv[2])
vals = {}
for row in csv.reader(l for l in open(path) if l.strip() and not l.startswith("#")):
    if len(row) >= 3:
        vals[row[2]] = row[0]
def per_req(name, scale=1.0, unit=""):
    v = vals.get(name)
    if v is None:
        return f"{name:18} (not reported)"
    if v.startswith("<"):
        return f"{name:18} {v} in this VM (no hardware PMU)"
    return f"{name:18} {float(v):>16,.0f} total  {float(v) * scale / requests:10.4f} {unit}per request"
print(per_req("task-clock", 1000.0, "us CPU "))  # task-clock is in msec
print(per_req("context-switches"))
print(per_req("page-faults"))
print(per_req("cycles"))
print(per_req("instructions"))
c, i = vals.get("cycles", "<"), vals.get("instructions", "<")
if not c.startswith("<") and not i.startswith("<") and float(c) > 0:
    print(f"{'IPC':18} {float(i) / float(c):.2f}")
EOF

if [ "$SYSCALL_TRACER" = auto ]; then
    if perf trace -s -- true >/dev/null 2>&1; then SYSCALL_TRACER=perf; else SYSCALL_TRACER=strace; fi
fi
echo
echo "== syscalls ($SYSCALL_TRACER): $SERVER, $TEST -P $PIPELINE, $CLIENTS connections, $SYSCALL_REQUESTS requests"
TRACE_OUT="$OUT_DIR/stat-$TS-syscalls.txt"
if [ "$SYSCALL_TRACER" = perf ]; then
    # shellcheck disable=SC2046
    run perf trace -s -p "$PID" -o "$TRACE_OUT" -- $(bench_cmd "$SYSCALL_REQUESTS") 2>&1 |
        tr '\r' '\n' | grep -v '^$' | tail -1
else
    ensure_pkg strace strace
    # Job control so the tracer does not inherit an ignored SIGINT, which
    # is how strace is told to detach and print its summary.
    set -m
    log "+ strace -c -f -p $PID -o $TRACE_OUT &"
    strace -c -f -p "$PID" -o "$TRACE_OUT" &
    TRACER_PID=$!
    STARTED_PIDS+=("$TRACER_PID")
    sleep 1 # attach to every thread before the load starts
    # shellcheck disable=SC2046
    run $(bench_cmd "$SYSCALL_REQUESTS") 2>&1 | tr '\r' '\n' | grep -v '^$' | tail -1
    kill -INT "$TRACER_PID"
    wait "$TRACER_PID" || true
    set +m
fi
python3 "$PERF_DIR/summarize.py" syscalls "$SYSCALL_REQUESTS" <"$TRACE_OUT"
echo
echo "raw: $STAT_OUT $TRACE_OUT"
