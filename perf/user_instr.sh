#!/usr/bin/env bash
# User-space instructions per request of redis-benchmark's default tests,
# counted by callgrind (Ir): a figure the machine's load does not move, for
# judging a change to the per-request path on a shared, loaded box where
# CPU time per request drifts by +-25% (perf/suite.sh's figures). It says
# nothing of the kernel's share (TCP, io_uring) nor of cache misses:
# re-take perf/suite.sh quietly for those.
#
#   perf/user_instr.sh                                   # ringkv vs redis
#   BASE_BIN=/tmp/old-ringkv perf/user_instr.sh          # + the old build
#   TESTS=lpush,hset REQUESTS=16000 perf/user_instr.sh
#   PIPELINE=1 TESTS=get,set perf/user_instr.sh            # unpipelined (issue 14)
#
# Each server runs under `valgrind --tool=callgrind` (about 50x slower); per
# test the counters are zeroed (callgrind_control -z), redis-benchmark runs
# REQUESTS requests at -c 50 -P PIPELINE (16) over KEYSPACE random values, and a dump
# (callgrind_control -d) gives the test's total Ir. REQUESTS/KEYSPACE = 3
# by default, as perf/suite.sh's 300000/100000 (so two thirds of HSET's and
# SADD's requests meet a present field or member, as in the real run).
# RINGKV_EXTRA / BASE_EXTRA: more options for the ringkv / base server
# (word-split), e.g. RINGKV_EXTRA="--maxmemory-clients 1gb".
# Environment: REQUESTS=30000, KEYSPACE=10000, PIPELINE=16, TESTS (redis-benchmark
# -t names), SERVERS="ringkv redis" (+ base with BASE_BIN), CG_KEEP=DIR keeps
# each test's dump as DIR/SERVER-TEST.cg for a function-by-function
# comparison: `perf/cg_functions.py REQUESTS DIR/ringkv-SET.cg
# DIR/ringkv-LPUSH.cg ...` (exclusive Ir per request of every function).
# CG_ARGS="--cache-sim=yes" adds callgrind's cache simulation: the dumps then
# also count first-level and last-level misses (D1mr/D1mw, DLmr/DLmw), which
# `perf/cg_functions.py --event D1mr ...` reads per function.

source "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || die "needs valgrind (callgrind)"

REQUESTS="${REQUESTS:-30000}"
KEYSPACE="${KEYSPACE:-10000}"
PIPELINE="${PIPELINE:-16}"
TESTS="${TESTS:-set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,mset}"
SERVERS="${SERVERS:-ringkv redis${BASE_BIN:+ base}}"
TS="$(timestamp)"
RESULTS="$OUT_DIR/user_instr-$TS.csv"
: >"$RESULTS"

one() { # SERVER
    local server="$1" port dir bin t ir
    port="$(free_port)"
    dir="$(mktemp -d "${TMPDIR:-/tmp}/user_instr.XXXXXX")"
    case "$server" in
    ringkv) bin=("$RINGKV_BIN" --port "$port" --shards 1 --save "" --dir "$dir" ${RINGKV_EXTRA:-}) ;;
    base) bin=("$BASE_BIN" --port "$port" --shards 1 --save "" --dir "$dir" ${BASE_EXTRA:-}) ;;
    redis) bin=("$REDIS_SERVER_BIN" --port "$port" --save "" --dir "$dir") ;;
    esac
    start_server "$server" "$SERVER_CORES" "$port" "$dir/log" \
        valgrind --tool=callgrind ${CG_ARGS:-} --callgrind-out-file="$dir/cg.out" "${bin[@]}"
    # The PID callgrind_control knows is valgrind's (the one started).
    for t in ${TESTS//,/ }; do
        run callgrind_control -z "$SERVER_PID" >/dev/null
        run taskset -c "$CLIENT_CORES" redis-benchmark -p "$port" -c 50 -P "$PIPELINE" -n "$REQUESTS" -r "$KEYSPACE" -t "$t" --csv >/dev/null 2>&1
        rm -f "$dir"/cg.out.*
        run callgrind_control -d "$t" "$SERVER_PID" >/dev/null
        ir="$(cat "$dir"/cg.out.* | awk '/^summary:/ { s += $2 } END { print s + 0 }')"
        if [ -n "${CG_KEEP:-}" ]; then
            mkdir -p "$CG_KEEP"
            cat "$dir"/cg.out.* >"$CG_KEEP/$server-${t^^}.cg"
        fi
        echo "$server,${t^^},$(awk -v a="$ir" -v n="$REQUESTS" 'BEGIN { printf "%.0f", a / n }')" >>"$RESULTS"
    done
    stop_pid "$SERVER_PID"
    rm -rf "$dir"
}

for s in $SERVERS; do one "$s"; done

python3 - "$RESULTS" <<'EOF_PY'
import sys, collections
ir = collections.defaultdict(dict)
order = []
for line in open(sys.argv[1]):
    server, test, n = line.strip().split(",")
    if test not in order:
        order.append(test)
    ir[test][server] = int(n)
base = any("base" in ir[t] for t in order)
print("%-10s %10s %10s %8s" % ("test", "ringkv Ir", "redis Ir", "rd/rk") + (" %10s %8s" % ("base Ir", "new/base") if base else ""))
for t in order:
    r, d = ir[t].get("ringkv", 0), ir[t].get("redis", 0)
    line = "%-10s %10d %10d %8s" % (t, r, d, "%.2fx" % (d / r) if r and d else "-")
    if base:
        b = ir[t].get("base", 0)
        line += " %10d %8s" % (b, "%.3fx" % (r / b) if r and b else "-")
    print(line)
print("(user-space instructions per request, callgrind Ir; rd/rk > 1: ringkv runs fewer; new/base < 1: fewer than BASE_BIN)")
EOF_PY
log "raw: $RESULTS"
