#!/usr/bin/env bash
# User and kernel CPU per request, ringkv --shards 1 vs redis-server (issue 14).
#
#   perf/kernel_cpu.sh                    # 6 rounds of SET and GET at -P 1
#   PIPELINES="1 16" perf/kernel_cpu.sh   # also the pipelined check (>= 1.5x req/s)
#   ROUNDS=2 REQUESTS=100000 perf/kernel_cpu.sh   # a quick smoke run
#
# Both servers pinned to SERVER_CORES (core 0), redis-benchmark to CLIENT_CORE
# (core 1), -c CLIENTS -r KEYSPACE -d VALUE_BYTES. Rounds alternate the
# servers (A B A B ...; the order flips every round) so that a drift of the
# machine hits both. Per run: utime and stime of the server process (all
# threads, /proc/PID/stat fields 14 and 15) before and after, divided by the
# requests, and the voluntary context switches of its threads (how often it
# went to sleep) per request, and its minor page faults per request (the
# kernel's share that is the keyspace growing, not the network). At -P 1 one redis-benchmark saturates before either server, so
# the figures to compare are user/kernel microseconds per request, not req/s.
#
# Environment: ROUNDS=6 REQUESTS=200000 REQUESTS_PIPELINED=2000000
#   PIPELINES="1" TESTS="set get" CLIENTS=50 KEYSPACE=1000000 VALUE_BYTES=32
#   CLIENT_CORE=1 SERVER_CORES=0 RINGKV_BIN=... REDIS_SERVER_BIN=...
#   RINGKV_ARGS="..."   extra ringkv arguments (A/B of a runtime switch)
#   BASELINE_BIN=path   a second ringkv build ("base", e.g. the commit before a
#                       change) run in the same alternation: before/after
#                       figures from one run, ratios ringkv/base printed too
#   SAMPLE_US=N         also record each run with `perf record -e cpu-clock -c
#                       N*1000 -p PID` (one sample per N us of the server's CPU
#                       time; 100 is a good value) and count the samples that
#                       landed in user space and in the kernel: user_smp and
#                       sys_smp, us per request. /proc's utime/stime split is
#                       itself sampled (tick accounting at CONFIG_HZ, 250 here:
#                       ~200 user ticks in a 600k-request run at -P 1, +-7%);
#                       N=100 takes 10,000 samples per CPU second, 40x more.
#                       The recording costs the server ~2% more CPU, alike for
#                       every server. SAMPLE_KEEP=1 keeps the perf.data files
#                       (perf/out/kernel_cpu-TS-SERVER-TEST-PIPELINE-ROUND.data)
#                       for `perf report --sort sym`.
# Output: medians per (test, pipeline, server) and ratios; raw runs in
# perf/out/kernel_cpu-<timestamp>.csv.

source "$(dirname "$0")/lib.sh"
need_python

ROUNDS="${ROUNDS:-6}"
REQUESTS="${REQUESTS:-200000}"
REQUESTS_PIPELINED="${REQUESTS_PIPELINED:-$((REQUESTS * 10))}"
PIPELINES="${PIPELINES:-1}"
TESTS="${TESTS:-set get}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-32}"
if [ "$NCPU" -gt 1 ]; then CLIENT_CORE="${CLIENT_CORE:-1}"; else CLIENT_CORE="${CLIENT_CORE:-0}"; fi

ensure_ringkv
TS="$(timestamp)"
RAW="$OUT_DIR/kernel_cpu-$TS.csv"
echo "round,server,test,pipeline,requests,rps,user_us,sys_us,sleeps,faults,user_smp,sys_smp" >"$RAW"
SAMPLE_US="${SAMPLE_US:-}"
[ -n "$SAMPLE_US" ] && ensure_pkg perf linux-perf

start_side_by_side "$OUT_DIR/kernel_cpu-$TS"
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

one_run() { # ROUND SERVER TEST PIPELINE
    local round="$1" server="$2" test="$3" pipeline="$4" port pid n b a out rps
    side_by_side_server "$server"
    n="$REQUESTS"
    [ "$pipeline" -gt 1 ] && n="$REQUESTS_PIPELINED"
    b="$(cpu_ticks "$pid")"
    vb="$(sleeps "$pid")"
    fb="$(minflt "$pid")"
    local bench=(taskset -c "$CLIENT_CORE" redis-benchmark -h 127.0.0.1 -p "$port" -t "$test"
        -n "$n" -c "$CLIENTS" -r "$KEYSPACE" -d "$VALUE_BYTES" -P "$pipeline" --csv)
    local data="$OUT_DIR/kernel_cpu-$TS-$server-$test-$pipeline-$round.data" smp=","
    if [ -n "$SAMPLE_US" ]; then
        out="$(run perf record -q -e cpu-clock -c "$((SAMPLE_US * 1000))" -p "$pid" -o "$data" -- "${bench[@]}" 2>&1)"
    else
        out="$(run "${bench[@]}" 2>&1)"
    fi
    a="$(cpu_ticks "$pid")"
    va="$(sleeps "$pid")"
    fa="$(minflt "$pid")"
    rps="$(printf '%s\n' "$out" | python3 "$PERF_DIR/summarize.py" bench-csv "$test" | cut -d, -f1)"
    read -r user sys <<<"$(python3 -c "
b='$b'.split(); a='$a'.split(); t=$CLK_TCK; n=$n
print(f'{(int(a[0])-int(b[0]))*1e6/t/n:.3f} {(int(a[1])-int(b[1]))*1e6/t/n:.3f}')")"
    slp="$(python3 -c "print(f'{($va - $vb) / $n:.3f}')")"
    flt="$(python3 -c "print(f'{($fa - $fb) / $n:.4f}')")"
    if [ -n "$SAMPLE_US" ]; then
        # Kernel addresses are the upper half; each sample stands for SAMPLE_US.
        smp="$(perf script -i "$data" -F ip 2>/dev/null | awk -v us="$SAMPLE_US" -v n="$n" '
            { if (length($1) == 16 && $1 >= "8000000000000000") k++; else u++ }
            END { printf "%.3f,%.3f", u * us / n, k * us / n }')"
        [ -n "${SAMPLE_KEEP:-}" ] || rm -f "$data"
    fi
    echo "$round,$server,$test,$pipeline,$n,$rps,$user,$sys,$slp,$flt,$smp" >>"$RAW"
    log "  -> $server $test P$pipeline: $rps req/s, user $user us/req, kernel $sys us/req, $slp sleeps/req, $flt faults/req${SAMPLE_US:+, sampled user,kernel $smp us/req}"
}

for round in $(seq 1 "$ROUNDS"); do
    log "== round $round/$ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))"
    for pipeline in $PIPELINES; do
        for test in $TESTS; do
            for server in $(round_order "$round"); do
                one_run "$round" "$server" "$test" "$pipeline"
            done
        done
    done
done

echo
echo "raw runs: $RAW"
python3 "$PERF_DIR/side_by_side.py" cpu "$RAW"
