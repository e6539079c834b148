#!/usr/bin/env bash
# redis-benchmark's default test set, ringkv --shards 1 vs redis-server, each
# pinned to SERVER_CORES in turn, the benchmark on CLIENT_CORES (issue 12's
# "default suite at -c 50 -P 16, every test >= 1.5x").
#
#   perf/suite.sh                        # -P 16, 2 rounds
#   PIPELINE=1 REQUESTS=100000 perf/suite.sh
#   TESTS=lpush,lrange_100 ROUNDS=3 perf/suite.sh
#
# Each test is its own redis-benchmark run, and the server's CPU time is read
# around each one, so every test gets requests/s AND server CPU per request
# (us, user+system of all threads from /proc/PID/task/*/schedstat in ns, the
# user/system split from /proc/PID/stat's ticks). At ~1M req/s one
# redis-benchmark process (one core) sets the pace of the fast tests; their
# req/s ratio then says little, and "cpu ratio" (redis's CPU per request over
# ringkv's: the req/s ratio the two servers would show if each were the
# bottleneck) is the figure to judge.
#
# The LRANGE_* tests read `mylist`, filled the way redis-benchmark fills it
# ("LPUSH (needed to benchmark LRANGE)", here its own run, shown as
# "LPUSH (for LRANGE)"), then run as the same command redis-benchmark sends
# (`LRANGE mylist 0 N-1`) so the fill's CPU is not counted in theirs.
# Test order and keys are redis-benchmark's, so LPOP/RPOP pop what
# LPUSH/RPUSH pushed, SPOP/ZPOPMIN what SADD/ZADD added (with -n > -r they
# end on an empty key, as in redis-benchmark's own run of the set).
# Rounds alternate the two servers (fresh server per round) so a drifting
# machine hits both; the summary shows the best req/s and the lowest CPU
# per request of the rounds.
#
# Environment: REQUESTS=300000, LRANGE_REQUESTS=REQUESTS/4, CLIENTS=50,
#   PIPELINE=16, KEYSPACE=100000, ROUNDS=2, CLIENT_THREADS=1 (redis-benchmark
#   --threads; worth raising only with several CLIENT_CORES), SERVERS="ringkv
#   redis", TESTS (redis-benchmark -t names; default: its default set).
#   BASE_BIN=/path/to/old/ringkv adds server "base" (that binary, --shards 1)
#   to the rotation: before/after figures of a change in one run, e.g.
#     git stash; cargo build --release; cp target/release/ringkv /tmp/base
#     git stash pop; BASE_BIN=/tmp/base perf/suite.sh

source "$(dirname "$0")/lib.sh"
need_python

REQUESTS="${REQUESTS:-300000}"
LRANGE_REQUESTS="${LRANGE_REQUESTS:-$((REQUESTS / 4))}"
CLIENTS="${CLIENTS:-50}"
PIPELINE="${PIPELINE:-16}"
KEYSPACE="${KEYSPACE:-100000}"
ROUNDS="${ROUNDS:-2}"
CLIENT_THREADS="${CLIENT_THREADS:-1}"
SERVERS="${SERVERS:-ringkv redis${BASE_BIN:+ base}}"
TESTS="${TESTS:-set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,lrange_300,lrange_500,lrange_600,mset}"
TS="$(timestamp)"
RESULTS="$OUT_DIR/suite-$TS.csv"
: >"$RESULTS"

BENCH=(redis-benchmark -c "$CLIENTS" -P "$PIPELINE" -r "$KEYSPACE" --csv)
[ "$CLIENT_THREADS" -gt 1 ] && BENCH+=(--threads "$CLIENT_THREADS")

# measure SERVER ROUND PORT LABEL N ARGS...: one redis-benchmark run of N
# requests; appends "server,round,label,rps,cpu_us_per_req,user_share" to RESULTS.
measure() {
    local server="$1" round="$2" port="$3" label="$4" n="$5"
    shift 5
    local ns0 ns1 t0 t1 csv rps
    ns0="$(cpu_ns "$SERVER_PID")"
    t0="$(cpu_ticks "$SERVER_PID")"
    csv="$(run taskset -c "$CLIENT_CORES" "${BENCH[@]}" -p "$port" -n "$n" "$@" 2>/dev/null)"
    ns1="$(cpu_ns "$SERVER_PID")"
    t1="$(cpu_ticks "$SERVER_PID")"
    rps="$(echo "$csv" | awk -F'","' 'NR == 2 { print $2 }')"
    [ -n "$rps" ] || die "no result from redis-benchmark for $label on $server"
    echo "$server,$round,$label,$rps,$(awk -v a="$ns0" -v b="$ns1" -v n="$n" 'BEGIN { printf "%.4f", (b - a) / 1000 / n }'),$(echo "$t0 $t1" | awk '{ u = $3 - $1; s = $4 - $2; printf "%.2f", (u + s) ? u / (u + s) : 0 }')" >>"$RESULTS"
}

one() { # SERVER ROUND
    local server="$1" round="$2" port t filled=0
    port="$(free_port)"
    start_one_shard "$server" "$port" "$OUT_DIR/suite-$server.log"
    for t in ${TESTS//,/ }; do
        case "$t" in
        lrange_*)
            if [ "$filled" = 0 ]; then
                measure "$server" "$round" "$port" "LPUSH (for LRANGE)" "$REQUESTS" -t lpush
                filled=1
            fi
            measure "$server" "$round" "$port" "${t^^}" "$LRANGE_REQUESTS" lrange mylist 0 "$((${t#lrange_} - 1))"
            ;;
        *) measure "$server" "$round" "$port" "${t^^}" "$REQUESTS" -t "$t" ;;
        esac
    done
    stop_pid "$SERVER_PID"
}

for round in $(seq 1 "$ROUNDS"); do
    log "round $round"
    for s in $SERVERS; do one "$s" "$round"; done
done

python3 - "$RESULTS" <<'EOF_PY'
import sys, collections
rps = collections.defaultdict(dict)
cpu = collections.defaultdict(dict)
user = collections.defaultdict(dict)
order = []
for line in open(sys.argv[1]):
    server, _, test, r, c, u = line.rstrip("\n").split(",")
    r, c = float(r.strip('"')), float(c)
    if test not in order:
        order.append(test)
    rps[test][server] = max(rps[test].get(server, 0.0), r)
    if c < cpu[test].get(server, 1e18):
        cpu[test][server] = c
        user[test][server] = float(u)
def ratio(a, b):
    return "%6.2fx" % (a / b) if a and b else "     -"
base = any("base" in cpu[t] for t in order)
head = "%-20s %10s %10s %7s | %9s %9s %7s" % ("test", "ringkv/s", "redis/s", "ratio", "rk us/req", "rd us/req", "cpu")
head += " | %9s %7s" % ("base us", "new/base") if base else ""
print(head + " | user share rk/rd")
for t in order:
    r, d = rps[t].get("ringkv", 0), rps[t].get("redis", 0)
    cr, cd = cpu[t].get("ringkv", 0), cpu[t].get("redis", 0)
    line = "%-20s %10.0f %10.0f %7s | %9.3f %9.3f %7s" % (t, r, d, ratio(r, d), cr, cd, ratio(cd, cr))
    if base:
        cb = cpu[t].get("base", 0)
        line += " | %9.3f %7s" % (cb, ratio(cr, cb))
    print(line + " | %.2f/%.2f" % (user[t].get("ringkv", 0), user[t].get("redis", 0)))
print("(ratio: ringkv req/s over redis's, best of rounds; cpu: redis's server CPU per request over ringkv's, lowest of rounds: > 1 means ringkv spends less" + ("; new/base: ringkv's CPU per request over BASE_BIN's, < 1 means cheaper" if base else "") + ")")
EOF_PY
log "raw: $RESULTS"
