#!/usr/bin/env bash
# The receive copy of the default suite's list tests: how much of the
# server's CPU goes to copying received bytes into its buffers
# (`_copy_to_iter` under `tcp_recvmsg`), per request, ringkv builds and
# redis-server side by side (perf/RESULTS.md, "The per-batch network path").
#
#   perf/recv_copy.sh                                  # ringkv vs redis, lpush,rpop
#   BASE_BIN=/tmp/ringkv-old perf/recv_copy.sh         # adds that build as "base"
#   VARIANTS="nohot=/tmp/run-nohot.sh" perf/recv_copy.sh
#
# A cold destination shows as a larger copy share for the same bytes: the
# receive buffers' first lines are written with cache misses. Each test
# run: `perf record -e cpu-clock -F FREQ -p PID` (no PMU in this VM, no call
# chains: the copy's own samples only) around redis-benchmark -c 50 -P 16,
# the server's CPU from schedstat (ns). Per server, the median over the
# rounds of: CPU per request, the copy's share of the server's samples and
# that share in microseconds per request. Rounds alternate the servers.
# The sample counts are small (a few thousand a run): take several rounds
# and read differences under ~0.3 points of share as noise.
#
# Environment: ROUNDS=3 REQUESTS=1000000 CLIENTS=50 PIPELINE=16
#   KEYSPACE=100000 FREQ=4000 TESTS=lpush,rpop SERVERS="ringkv redis"
#   (+ base with BASE_BIN) VARIANTS="NAME=PATH ..." (more ringkv builds or
#   wrappers, each a server) SYMBOLS="_copy_to_iter" (the symbols counted).

source "$(dirname "$0")/lib.sh"
need_python
ensure_pkg perf linux-perf

ROUNDS="${ROUNDS:-3}"
REQUESTS="${REQUESTS:-1000000}"
CLIENTS="${CLIENTS:-50}"
PIPELINE="${PIPELINE:-16}"
KEYSPACE="${KEYSPACE:-100000}"
FREQ="${FREQ:-4000}"
TESTS="${TESTS:-lpush,rpop}"
SYMBOLS="${SYMBOLS:-_copy_to_iter}"
VARIANTS="${VARIANTS:-}"
SERVERS="${SERVERS:-ringkv redis${BASE_BIN:+ base}}"
for v in $VARIANTS; do SERVERS="$SERVERS ${v%%=*}"; done
if [ "$NCPU" -gt 1 ]; then CLIENT_CORE="${CLIENT_CORE:-1}"; else CLIENT_CORE="${CLIENT_CORE:-0}"; fi

TS="$(timestamp)"
DIR="$OUT_DIR/recv_copy-$TS"
mkdir -p "$DIR"
RESULTS="$DIR/results.csv"
: >"$RESULTS"

start_any() { # SERVER PORT LOGFILE
    local v
    for v in $VARIANTS; do
        if [ "${v%%=*}" = "$1" ]; then
            RINGKV_BIN="${v#*=}" start_ringkv "$2" 1 "$3"
            return
        fi
    done
    start_one_shard "$1" "$2" "$3"
}

one() { # SERVER ROUND
    local server="$1" round="$2" port t data c0 c1 total hit
    port="$(free_port)"
    start_any "$server" "$port" "$DIR/$server.log"
    for t in ${TESTS//,/ }; do
        data="$DIR/$server-$round-$t.data"
        c0="$(cpu_ns "$SERVER_PID")"
        run perf record -q -e cpu-clock -F "$FREQ" -p "$SERVER_PID" -o "$data" -- \
            taskset -c "$CLIENT_CORE" redis-benchmark -p "$port" -c "$CLIENTS" -P "$PIPELINE" \
            -r "$KEYSPACE" -n "$REQUESTS" -t "$t" -q >/dev/null 2>&1
        c1="$(cpu_ns "$SERVER_PID")"
        read -r total hit < <(perf script -i "$data" -F ip,sym 2>/dev/null | awk -v syms="$SYMBOLS" '
            BEGIN { n = split(syms, s, ","); for (i = 1; i <= n; i++) want[s[i]] = 1 }
            NF { total++; if ($2 in want) hit++ }
            END { printf "%d %d\n", total, hit }')
        echo "$server,$round,$t,$(((c1 - c0) / 1000)),$total,$hit" >>"$RESULTS"
        rm -f "$data"
    done
    stop_pid "$SERVER_PID"
}

run_rounds

python3 - "$RESULTS" "$REQUESTS" <<'EOF_PY'
import sys, statistics, collections
path, n = sys.argv[1], int(sys.argv[2])
rows = collections.defaultdict(lambda: collections.defaultdict(list))
servers, tests = [], []
for line in open(path):
    server, _, test, cpu_us, total, hit = line.strip().split(",")
    cpu_us, total, hit = int(cpu_us), int(total), int(hit)
    if server not in servers:
        servers.append(server)
    if test not in tests:
        tests.append(test)
    share = hit / total if total else 0.0
    r = rows[test][server]
    r.append((cpu_us / n, share, share * cpu_us / n, hit))
med = lambda xs: statistics.median(xs) if xs else 0.0
print("%-8s %-10s %11s %12s %14s %8s  %s" % ("test", "server", "cpu us/req", "copy share %", "copy us/req", "samples", "(per round: share %)"))
for t in tests:
    for s in servers:
        r = rows[t][s]
        print("%-8s %-10s %11.3f %12.2f %14.4f %8d  %s" % (t.upper(), s, med([x[0] for x in r]), 100 * med([x[1] for x in r]),
              med([x[2] for x in r]), sum(x[3] for x in r), " ".join("%.2f" % (100 * x[1]) for x in r)))
EOF_PY
log "raw: $RESULTS"
