#!/usr/bin/env bash
# Kernel events per request, ringkv --shards 1 vs redis-server (issue 14):
# how many io_uring_enter calls, submissions, completions, task-work adds and
# runs, waits and context switches ringkv pays per request, and how many
# read/write/epoll_wait calls redis-server pays, at -c CLIENTS -P 1.
#
#   perf/uring_events.sh                      # 3 alternated rounds of SET and GET
#   BASELINE_BIN=/path/ringkv perf/uring_events.sh   # before/after a change
#   ROUNDS=1 REQUESTS=50000 perf/uring_events.sh     # a quick smoke run
#
# Counts come from tracepoints (`perf stat -e syscalls:...,io_uring:... -p
# PID` over exactly one redis-benchmark run): unlike CPU time they do not
# depend on how loaded the machine is, only on how the load batches (a
# loaded server finds more requests per loop turn), so compare builds in
# the same run. Servers pinned to SERVER_CORES (core 0), redis-benchmark to
# CLIENT_CORE (core 1), rounds alternate the servers (A B A B ...).
#
# Environment: ROUNDS=3 REQUESTS=200000 TESTS="set get" CLIENTS=50
#   KEYSPACE=1000000 VALUE_BYTES=32 PIPELINE=1 RINGKV_ARGS=... BASELINE_BIN=...
# Output: per-request counts per (test, server), medians over the rounds;
# raw runs in perf/out/uring_events-<timestamp>.csv.

source "$(dirname "$0")/lib.sh"
need_python
ensure_pkg perf linux-perf

ROUNDS="${ROUNDS:-3}"
REQUESTS="${REQUESTS:-200000}"
TESTS="${TESTS:-set get}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-32}"
PIPELINE="${PIPELINE:-1}"
if [ "$NCPU" -gt 1 ]; then CLIENT_CORE="${CLIENT_CORE:-1}"; else CLIENT_CORE="${CLIENT_CORE:-0}"; fi

# Events counted for every server (a server that never makes a call counts 0).
EVENTS="syscalls:sys_enter_io_uring_enter,io_uring:io_uring_submit_req,io_uring:io_uring_complete"
EVENTS="$EVENTS,io_uring:io_uring_task_add,io_uring:io_uring_local_work_run,io_uring:io_uring_cqring_wait"
EVENTS="$EVENTS,io_uring:io_uring_poll_arm"
EVENTS="$EVENTS,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait"
EVENTS="$EVENTS,context-switches,task-clock"

ensure_ringkv
TS="$(timestamp)"
RAW="$OUT_DIR/uring_events-$TS.csv"
echo "round,server,test,requests,event,count" >"$RAW"

start_side_by_side "$OUT_DIR/uring_events-$TS"
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

one_run() { # ROUND SERVER TEST
    local round="$1" server="$2" test="$3" port pid out stat
    side_by_side_server "$server"
    stat="$OUT_DIR/uring_events-$TS-run.txt"
    out="$(run perf stat -x, -o "$stat" -e "$EVENTS" -p "$pid" -- \
        taskset -c "$CLIENT_CORE" redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" \
        -n "$REQUESTS" -c "$CLIENTS" -r "$KEYSPACE" -d "$VALUE_BYTES" -P "$PIPELINE" -q 2>&1 |
        tr '\r' '\n' | grep -v '^$' | tail -1)"
    python3 - "$stat" "$round" "$server" "$test" "$REQUESTS" >>"$RAW" <<'EOF'
import csv, sys
path, rnd, server, test, n = sys.argv[1:6]
for row in csv.reader(l for l in open(path) if l.strip() and not l.startswith("#")):
    if len(row) >= 3 and not row[0].startswith("<"):
        print(f"{rnd},{server},{test},{n},{row[2]},{row[0]}")
EOF
    rm -f "$stat"
    log "  -> $server $test: $out"
}

for round in $(seq 1 "$ROUNDS"); do
    log "== round $round/$ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))"
    for test in $TESTS; do
        for server in $(round_order "$round"); do
            one_run "$round" "$server" "$test"
        done
    done
done

echo
echo "raw runs: $RAW"
python3 - "$RAW" <<'EOF'
import csv, statistics, sys
from collections import defaultdict
rows = list(csv.DictReader(open(sys.argv[1])))
per = defaultdict(list)
for r in rows:
    per[(r["test"], r["server"], r["event"])].append(float(r["count"]) / int(r["requests"]))
short = {
    "syscalls:sys_enter_io_uring_enter": "enter",
    "io_uring:io_uring_submit_req": "submit",
    "io_uring:io_uring_complete": "cqe",
    "io_uring:io_uring_task_add": "tw_add",
    "io_uring:io_uring_local_work_run": "tw_run",
    "io_uring:io_uring_cqring_wait": "wait",
    "io_uring:io_uring_poll_arm": "poll_arm",
    "syscalls:sys_enter_read": "read",
    "syscalls:sys_enter_write": "write",
    "syscalls:sys_enter_epoll_wait": "epoll",
    "context-switches": "ctxsw",
    "task-clock": "cpu_us",
}
tests = sorted({k[0] for k in per})
servers = sorted({k[1] for k in per})
print("Per request, medians over the rounds (cpu_us: task-clock, load-dependent)")
print("test server  " + " ".join(f"{v:>8}" for v in short.values()))
for t in tests:
    for s in servers:
        vals = []
        for ev, name in short.items():
            v = per.get((t, s, ev))
            if not v:
                vals.append(f"{'-':>8}")
                continue
            m = statistics.median(v)
            if name == "cpu_us":
                m *= 1000.0  # task-clock is in msec
            vals.append(f"{m:8.3f}")
        print(f"{t:4} {s:7} " + " ".join(vals))
EOF
