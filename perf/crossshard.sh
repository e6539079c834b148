#!/usr/bin/env bash
# Issue 13's cross-shard cost: server CPU per request of multi-key commands
# and a two-key MULTI/EXEC with --shards 2 (keys on both shards) over the
# same load with --shards 1, for one or more ringkv builds, alternated.
#
#   perf/crossshard.sh                                     # the current build
#   BINS="before=/tmp/ringkv-old after=target/release/ringkv" ROUNDS=3 perf/crossshard.sh
#   REQUESTS=30000 TX_SECONDS=3 perf/crossshard.sh         # a quick sanity run
#
# Part 1, per round, per build, per shard count (1, 2): the server alone on
# SERVER_CORES (default core 0; both shard threads share it), the client on
# CLIENT_CORES (default core 1), -c 50 -P 1 -r KEYSPACE, keys filled first:
#   mset  redis-benchmark -t mset (10 random keys)
#   mget  MGET of 10 random keys
#   del   DEL of 10 random keys (and EXISTS of 10: exists)
#   set   SET (with 2 shards half are forwarded: the cost of one hop)
#   multi perf/multi_load.py `cross` (MULTI / SET k1 / SET k2 / EXEC, k1 on
#         shard 0, k2 on shard 1 of the 2-shard server; the same keys on the
#         1-shard one), TX_SECONDS seconds, 1 process of 25 connections: the
#         Python client is the limit, the server CPU per transaction is the figure.
#   mset2 msetnx rename smove watch  perf/cross_load.py, k1 on shard 0 and k2 on
#         shard 1 (same keys with 1 shard), 25 connections, TX_SECONDS each:
#         MSETNX k1 k2 alternating with DEL k1 k2; RENAME k1 k2 and back;
#         SMOVE s1 s2 m and back; WATCH k1 k2 + MULTI/SET/SET/EXEC (per
#         transaction); MSET k1 v k2 v (mset2: the one-round hop they compare
#         with). Also Python-client bound: CPU per request is the figure.
#   copy lmove rpoplpush sinterstore  perf/cross_load.py likewise: COPY k1 k2
#         REPLACE and back; LMOVE l1 l2 LEFT RIGHT and back; RPOPLPUSH l1 l2
#         and back; SINTERSTORE d s1 s2 (s1 on shard 0, s2 and d on shard 1).
# AOF=1: every server runs with --appendonly yes --appendfsync everysec (its
# directory in a temporary one): the cross-shard writes then pay for one
# replay unit at one cut of the shards' write streams.
# CPU = utime + stime of the server from /proc/PID/stat (10 ms ticks: keep
# REQUESTS high enough for a few seconds of CPU); also voluntary context switches of
# all server threads per request (/proc/PID/task/*/status), which other
# tenants disturb less. Printed: CPU us/request per
# build, shard count and test, the median over rounds, and the ratio
# shards-2 / shards-1 (the target: at most 1.3 at -P 1).
#
# Part 2 (SCALING=1, the default): --shards 4 on SCALE_CORES (default 0-1),
# two multi_load.py processes at once, each a two-key MULTI/EXEC with its two
# keys on its own pair of shards (0+1 and 2+3: disjoint), against both on
# the pair 0+1 (contending), and one alone: transactions/s and "scale" =
# combined / alone.
source "$(dirname "$0")/lib.sh"
need_python

SERVER_CORES="${SERVER_CORES:-0}"
CLIENT_CORES="${CLIENT_CORES:-1}"
REQUESTS="${REQUESTS:-100000}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-100000}"
ROUNDS="${ROUNDS:-2}"
TX_SECONDS="${TX_SECONDS:-5}"
TESTS="${TESTS:-mset mget del exists set multi msetnx rename smove watch}"
SCALING="${SCALING:-1}"
SCALE_CORES="${SCALE_CORES:-0-1}"
AOF="${AOF:-0}"
BINS="${BINS:-now=$RINGKV_BIN}"
[ "$BINS" = "now=$RINGKV_BIN" ] && ensure_ringkv

TS="$(timestamp)"
RAW="$OUT_DIR/crossshard-$TS.csv"
echo "round,build,shards,test,requests,cpu_us_per_req,rps,cs_per_req" >"$RAW"
TMP="$(mktemp -d)"
trap 'cleanup; rm -rf "$TMP"' EXIT

ten() { # CMD -> the command with 10 random keys
    local a=("$1") i
    for i in $(seq 1 10); do a+=("key:__rand_int__"); done
    echo "${a[@]}"
}

# tx_rate OUTPUT...: transactions/s summed over multi_load.py outputs
# ("transactions=N seconds=S" each).
tx_rate() {
    python3 -c 'import sys
print(sum(int(o.split()[0].split("=")[1]) / float(o.split()[1].split("=")[1]) for o in sys.argv[1:]))' "$@"
}

# Voluntary context switches (sleeps: futex waits, ring waits) of every thread
# of a process: less sensitive to other tenants than CPU time.
ctx_switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }'
}

# record ROUND BUILD SHARDS TEST REQUESTS CPU_BEFORE PID RATE CS_BEFORE: one
# CSV row, the server's CPU and context switches since then per request.
record() {
    local cpu cs
    cpu="$(python3 -c "print(f'{($(cpu_usec "$7") - $6) / max($5, 1):.3f}')")"
    cs="$(python3 -c "print(f'{($(ctx_switches "$7") - $9) / max($5, 1):.3f}')")"
    echo "$1,$2,$3,$4,$5,$cpu,$8,$cs" >>"$RAW"
    log "  round $1 $2 shards=$3 $4: $cpu us CPU/req, $cs context switches/req ($8 req/s)"
}

bench() { # PORT TEST -> "requests rps"
    local port="$1" test="$2" out n secs
    case "$test" in
    mset | set)
        out="$(run taskset -c "$CLIENT_CORES" redis-benchmark -p "$port" -t "$test" -n "$REQUESTS" -c "$CLIENTS" -r "$KEYSPACE" -P 1 --csv 2>&1)"
        echo "$REQUESTS $(printf '%s\n' "$out" | python3 "$PERF_DIR/summarize.py" bench-csv "$test" | cut -d, -f1)"
        ;;
    mget | del | exists)
        local cmd
        cmd="$(ten "$(echo "$test" | tr a-z A-Z)")"
        # shellcheck disable=SC2086
        out="$(run taskset -c "$CLIENT_CORES" redis-benchmark -p "$port" -n "$REQUESTS" -c "$CLIENTS" -r "$KEYSPACE" -P 1 --csv $cmd 2>&1)"
        echo "$REQUESTS $(printf '%s\n' "$out" | python3 "$PERF_DIR/summarize.py" bench-csv "${cmd%% *}" | cut -d, -f1)"
        ;;
    multi)
        out="$(run taskset -c "$CLIENT_CORES" python3 "$PERF_DIR/multi_load.py" "$port" cross "$TX_SECONDS" 1 25)"
        n=${out#transactions=}
        echo "${n%% *} $(tx_rate "$out")"
        ;;
    mset2 | msetnx | rename | smove | watch | copy | lmove | rpoplpush | sinterstore)
        out="$(run taskset -c "$CLIENT_CORES" python3 "$PERF_DIR/cross_load.py" "$port" "$test" "$TX_SECONDS" 25)"
        n=${out#transactions=}
        echo "${n%% *} $(tx_rate "$out")"
        ;;
    esac
}

for round in $(seq 1 "$ROUNDS"); do
    for entry in $BINS; do
        build="${entry%%=*}"
        bin="${entry#*=}"
        for shards in 1 2; do
            port="$(free_port)"
            extra=()
            if [ "$AOF" = 1 ]; then
                rm -rf "$TMP/aof" && mkdir -p "$TMP/aof"
                extra=(--appendonly yes --appendfsync everysec --dir "$TMP/aof")
            fi
            RINGKV_BIN="$bin" start_ringkv "$port" "$shards" "$TMP/ringkv.log" "${extra[@]}"
            pid="$SERVER_PID"
            run taskset -c "$CLIENT_CORES" redis-benchmark -p "$port" -t mset -n 100000 -c 50 -r "$KEYSPACE" -P 16 -q >/dev/null 2>&1
            for test in $TESTS; do
                before="$(cpu_usec "$pid")"
                cs_before="$(ctx_switches "$pid")"
                read -r n rps <<<"$(bench "$port" "$test")"
                record "$round" "$build" "$shards" "$test" "$n" "$before" "$pid" "$rps" "$cs_before"
            done
            stop_pid "$pid"
        done
    done
done

if [ "$SCALING" = 1 ]; then
    for entry in $BINS; do
        build="${entry%%=*}"
        bin="${entry#*=}"
        port="$(free_port)"
        RINGKV_BIN="$bin" RINGKV_CORES="$SCALE_CORES" start_ringkv "$port" 4 "$TMP/ringkv4.log"
        pid="$SERVER_PID"
        for scenario in alone disjoint same; do
            before="$(cpu_usec "$pid")"
            cs_before="$(ctx_switches "$pid")"
            case "$scenario" in
            alone)
                total="$(tx_rate "$(run taskset -c "$CLIENT_CORES" python3 "$PERF_DIR/multi_load.py" "$port" pair:0:1:4 "$TX_SECONDS" 1 25)")"
                ;;
            disjoint | same)
                other=pair:2:3:4
                [ "$scenario" = same ] && other=pair:0:1:4
                run taskset -c "$CLIENT_CORES" python3 "$PERF_DIR/multi_load.py" "$port" pair:0:1:4 "$TX_SECONDS" 1 25 >"$TMP/a.out" &
                pa=$!
                run taskset -c "$CLIENT_CORES" python3 "$PERF_DIR/multi_load.py" "$port" "$other" "$TX_SECONDS" 1 25 >"$TMP/b.out" &
                pb=$!
                wait "$pa" "$pb"
                total="$(tx_rate "$(cat "$TMP/a.out")" "$(cat "$TMP/b.out")")"
                ;;
            esac
            record scale "$build" 4 "tx-$scenario" "$(python3 -c "print(int($total * $TX_SECONDS))")" "$before" "$pid" "$total" "$cs_before"
        done
        stop_pid "$pid"
    done
fi

echo
python3 - "$RAW" <<'EOF'
import csv, sys, statistics
rows = list(csv.DictReader(open(sys.argv[1])))
builds = list(dict.fromkeys(r["build"] for r in rows))
tests = list(dict.fromkeys(r["test"] for r in rows if r["round"] != "scale"))
def med(build, shards, test, field="cpu_us_per_req"):
    v = [float(r[field]) for r in rows if r["round"] != "scale" and r["build"] == build and r["shards"] == shards and r["test"] == test]
    return statistics.median(v) if v else float("nan"), v
print("server CPU us per request, -c 50 -P 1 (median of rounds; each round's value in brackets)")
print(f"{'test':>7} {'build':>8} {'shards 1':>24} {'shards 2':>24} {'2/1':>6}   (server context switches per request, shards 1 -> 2)")
for t in tests:
    for b in builds:
        m1, v1 = med(b, "1", t)
        m2, v2 = med(b, "2", t)
        f = lambda m, v: f"{m:.2f} [" + " ".join(f"{x:.2f}" for x in v) + "]"
        c1, _ = med(b, "1", t, "cs_per_req")
        c2, _ = med(b, "2", t, "cs_per_req")
        print(f"{t:>7} {b:>8} {f(m1, v1):>24} {f(m2, v2):>24} {m2 / m1:>6.2f}   ctx sw/req {c1:.2f} -> {c2:.2f}")
sc = [r for r in rows if r["round"] == "scale"]
if sc:
    print()
    print("--shards 4, two-key MULTI/EXEC on shard pairs (tx/s, scale = combined / alone, CPU us per tx)")
    for b in builds:
        alone = next((float(r["rps"]) for r in sc if r["build"] == b and r["test"] == "tx-alone"), float("nan"))
        for r in sc:
            if r["build"] == b:
                print(f"  {b:>8} {r['test']:>12}: {float(r['rps']):>9,.0f} tx/s  scale {float(r['rps']) / alone:.2f}  cpu {float(r['cpu_us_per_req']):.2f}")
EOF
echo "raw: $RAW"
