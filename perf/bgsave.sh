#!/usr/bin/env bash
# What a background snapshot costs a loaded server: fork pause, snapshot time,
# copy-on-write, and client latency before vs during the snapshot.
#
#   perf/bgsave.sh redis                 # against redis-server
#   perf/bgsave.sh ringkv                # against ringkv
#   perf/bgsave.sh both                  # redis then ringkv, same settings, one after the other
#   KEYS=6000000 perf/bgsave.sh redis    # larger datasets: 6M, 24M
#   KEYS=100000 BEFORE_SECONDS=1 AFTER_SECONDS=1 perf/bgsave.sh redis   # quick smoke run
#
# ringkv exposes the same INFO fields as Redis (latest_fork_usec,
# rdb_bgsave_in_progress, rdb_last_cow_size, current_cow_size,
# rdb_last_bgsave_time_sec), so nothing here is specific to either server.
#
# Steps:
# 1. Start the server on core 0 with --save "" and a scratch --dir.
# 2. Fill KEYS keys `key:%012d` (redis-benchmark's __rand_int__ format, so the
#    load below overwrites existing keys) with VALUE_BYTES-byte values, through
#    `redis-cli --pipe` (FILL=pipe, default) or DEBUG POPULATE (FILL=populate,
#    keys `key:N`, Redis only); or FILL=mixed: issue 12's aggregate dataset
#    instead (perf/mixed_dataset.py: SMALL_HASHES=200000 hashes of 10 fields,
#    SMALL=100000 each of 10-element zsets, lists and int sets, one hash, zset,
#    list and set of BIG=500000 elements), the SET load then writing
#    LOAD_KEYS=100000 new string keys among them.
# 3. Start, on the client core(s): a closed-loop probe (perf/bgsave_probe.py:
#    one connection, SET back to back, every latency recorded, RSS of the server
#    and its child and INFO persistence sampled every SAMPLE_MS=100 ms into a
#    CSV) and a SET load: redis-benchmark runs of LOAD_REQUESTS each, back to
#    back, each run's --csv p99/max kept with its start and end time.
# 4. After BEFORE_SECONDS, BGSAVE; poll rdb_bgsave_in_progress (or the child
#    process when INFO is missing) every 20 ms for the wall time; keep the load
#    going AFTER_SECONDS more.
# 5. Report latest_fork_usec, BGSAVE wall time, rdb_last_cow_size, probe and
#    redis-benchmark latency before / during / after, and plot RSS and latency
#    over time with the fork marked (gnuplot; installs gnuplot-nox when missing).
#
# Environment: KEYS=1000000, VALUE_BYTES=64, FILL=pipe|populate, LOAD_CLIENTS=50,
#   LOAD_PIPELINE=1, LOAD_REQUESTS=20000, BEFORE_SECONDS=3, AFTER_SECONDS=2,
#   SAMPLE_MS=100, SHARDS=1 (ringkv), KEEP_RDB=0, SERVER_ARGS="extra server args",
#   LOAD_KEYS (the SET load's -r: KEYS, or 100000 with FILL=mixed),
#   NO_LOAD=1 (no redis-benchmark load: only the probe's one connection),
#   COW_BREAKDOWN=1 (the child's copy-on-write by cause and mapping, perf/bgsave_cow.py;
#   root only; its sampling takes CPU on the client cores),
#   RINGKV_BIN=..., REDIS_SERVER_BIN=...
# Output: perf/out/bgsave-<server>-<timestamp>/ (samples.csv, probe.csv, runs.csv,
#   plot.svg/png, server log).

if [ "${1:-}" = "both" ]; then
    # Side by side: the same dataset and load against each server in turn.
    "$0" redis && "$0" ringkv
    exit $?
fi

source "$(dirname "$0")/lib.sh"
need_python

SERVER="${1:-redis}"
KEYS="${KEYS:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-64}"
FILL="${FILL:-pipe}"
LOAD_CLIENTS="${LOAD_CLIENTS:-50}"
LOAD_PIPELINE="${LOAD_PIPELINE:-1}"
LOAD_REQUESTS="${LOAD_REQUESTS:-20000}"
BEFORE_SECONDS="${BEFORE_SECONDS:-3}"
AFTER_SECONDS="${AFTER_SECONDS:-2}"
SAMPLE_MS="${SAMPLE_MS:-100}"
SHARDS="${SHARDS:-1}"
SMALL_HASHES="${SMALL_HASHES:-200000}"
SMALL="${SMALL:-100000}"
BIG="${BIG:-500000}"
if [ "$FILL" = mixed ]; then LOAD_KEYS="${LOAD_KEYS:-100000}"; else LOAD_KEYS="${LOAD_KEYS:-$KEYS}"; fi
KEEP_RDB="${KEEP_RDB:-0}"
read -r -a EXTRA_ARGS <<<"${SERVER_ARGS:-}"

TS="$(timestamp)"
RUN_DIR="$OUT_DIR/bgsave-$SERVER-$TS"
mkdir -p "$RUN_DIR/data"
PORT="$(free_port)"
start_named "$SERVER" "$PORT" "$SHARDS" "$RUN_DIR/server.log" --dir "$RUN_DIR/data" --dbfilename dump.rdb "${EXTRA_ARGS[@]}"
PID="$SERVER_PID"
cli() { redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }
info_field() { # SECTION FIELD -> value, empty when INFO or the field is missing
    cli INFO "$1" 2>/dev/null | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'
}
now() { date +%s.%N; }

# --- 2. fill ------------------------------------------------------------------
fill_start="$(now)"
if [ "$FILL" = mixed ]; then
    log "== filling issue 12's mixed dataset ($SMALL_HASHES small hashes, $SMALL small zsets/lists/int sets, 4 x $BIG)"
    run python3 "$PERF_DIR/mixed_dataset.py" "$SMALL_HASHES" "$SMALL" "$BIG" "$RUN_DIR/mixed"
    for part in hashes zsets lists intsets bighash bigzset biglist bigset; do
        taskset -c "$CLIENT_CORES" redis-cli -h 127.0.0.1 -p "$PORT" --pipe <"$RUN_DIR/mixed.$part" >>"$RUN_DIR/fill.log" 2>&1 ||
            { cat "$RUN_DIR/fill.log" >&2; die "fill failed"; }
        rm -f "$RUN_DIR/mixed.$part"
    done
    KEYS=$((SMALL_HASHES + 3 * SMALL + 4))
elif [ "$FILL" = populate ]; then
    log "== filling $KEYS keys of $VALUE_BYTES bytes ($FILL)"
    run redis-cli -h 127.0.0.1 -p "$PORT" DEBUG POPULATE "$KEYS" key "$VALUE_BYTES" >/dev/null
else
    log "== filling $KEYS keys of $VALUE_BYTES bytes ($FILL)"
    # Values are hex digits from a PRNG: incompressible enough that LZF does
    # real work, as with real data (a constant value would compress to nothing).
    log "+ awk (generate SET key:%012d <${VALUE_BYTES} bytes> x $KEYS) | redis-cli -p $PORT --pipe"
    awk -v n="$KEYS" -v vlen="$VALUE_BYTES" 'BEGIN {
        srand(42)
        for (i = 0; i < n; i++) {
            v = ""
            while (length(v) < vlen) v = v sprintf("%08x", int(rand() * 4294967296))
            v = substr(v, 1, vlen)
            printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$%d\r\n%s\r\n", i, vlen, v
        }
    }' | taskset -c "$CLIENT_CORES" redis-cli -h 127.0.0.1 -p "$PORT" --pipe >"$RUN_DIR/fill.log" 2>&1 ||
        { cat "$RUN_DIR/fill.log" >&2; die "fill failed"; }
fi
dbsize="$(cli DBSIZE)"
fill_end="$(now)"
log "  DBSIZE $dbsize after $(python3 -c "print(f'{$fill_end - $fill_start:.1f}')") s; server RSS $(($(rss_kib "$PID") / 1024)) MiB"
[ "$dbsize" -ge "$KEYS" ] || die "expected $KEYS keys, DBSIZE says $dbsize"

# --- 3. probe and load ----------------------------------------------------------
STOP="$RUN_DIR/stop"
# On any exit, tell the probe and the load loop to stop before their PIDs are killed.
trap 'touch "$STOP"; cleanup' EXIT
EVENTS="$RUN_DIR/events.txt"
: >"$EVENTS"
log "+ taskset -c $CLIENT_CORES python3 perf/bgsave_probe.py probe $PORT $PID $RUN_DIR/run $STOP $SAMPLE_MS &"
taskset -c "$CLIENT_CORES" python3 "$PERF_DIR/bgsave_probe.py" probe "$PORT" "$PID" "$RUN_DIR/run" "$STOP" "$SAMPLE_MS" &
PROBE_PID=$!
STARTED_PIDS+=("$PROBE_PID")

LOAD_CMD=(taskset -c "$CLIENT_CORES" redis-benchmark -h 127.0.0.1 -p "$PORT" -t set -n "$LOAD_REQUESTS"
    -c "$LOAD_CLIENTS" -r "$LOAD_KEYS" -d "$VALUE_BYTES" -P "$LOAD_PIPELINE" --csv)
log "$(printf '+ while no stop file:'; printf ' %q' "${LOAD_CMD[@]}"; printf ' (repeated, background)')"
RUNS="$RUN_DIR/runs.csv"
echo "start,end,rps,p50_ms,p99_ms,p999_ms,max_ms" >"$RUNS"
(
    # NO_LOAD=1: no SET load, only the probe (the child's own copy-on-write).
    while [ "${NO_LOAD:-0}" != 1 ] && [ ! -e "$STOP" ]; do
        t0="$(now)"
        out="$("${LOAD_CMD[@]}" 2>&1)" || break
        t1="$(now)"
        fields="$(printf '%s\n' "$out" | python3 "$PERF_DIR/summarize.py" bench-csv set)" || continue
        echo "$t0,$t1,$fields" >>"$RUNS"
    done
) &
LOAD_PID=$!
STARTED_PIDS+=("$LOAD_PID")

sleep "$BEFORE_SECONDS"

# --- 4. snapshot -------------------------------------------------------------------
in_progress() {
    local v
    v="$(info_field persistence rdb_bgsave_in_progress)"
    if [ -n "$v" ]; then
        echo "$v"
    else # no INFO: a child process of the server means a snapshot is running
        if awk -v p="$PID" '{ sub(/.*\) /, ""); if ($2 == p) found = 1 } END { exit !found }' \
            /proc/[0-9]*/stat 2>/dev/null; then echo 1; else echo 0; fi
    fi
}
if [ "${COW_BREAKDOWN:-0}" = 1 ]; then
    # The child's copy-on-write by cause and mapping (perf/bgsave_cow.py): it
    # reads the server's page frames first, then BGSAVE goes.
    log "+ taskset -c $CLIENT_CORES python3 perf/bgsave_cow.py watch $PID $RUN_DIR/cow.txt $RUN_DIR/cow-ready $STOP &"
    taskset -c "$CLIENT_CORES" python3 "$PERF_DIR/bgsave_cow.py" watch "$PID" "$RUN_DIR/cow.txt" "$RUN_DIR/cow-ready" "$STOP" &
    COW_PID=$!
    STARTED_PIDS+=("$COW_PID")
    for _ in $(seq 1 600); do [ -e "$RUN_DIR/cow-ready" ] && break; sleep 0.05; done
fi
log "== BGSAVE"
echo "bgsave_issued $(now)" >>"$EVENTS"
reply="$(run redis-cli -h 127.0.0.1 -p "$PORT" BGSAVE 2>&1)"
log "  $reply"
case "$reply" in
*"Background saving started"*) ;;
*) die "server does not support BGSAVE (reply: $reply)" ;;
esac
sleep 0.02
while [ "$(in_progress)" = 1 ]; do sleep 0.02; done
echo "bgsave_done $(now)" >>"$EVENTS"
sleep "$AFTER_SECONDS"
touch "$STOP"
wait "$LOAD_PID" || true
wait "$PROBE_PID" || true
[ -z "${COW_PID:-}" ] || wait "$COW_PID" || true

# --- 5. report -----------------------------------------------------------------------
fork_usec="$(info_field stats latest_fork_usec)"
cow_bytes="$(info_field persistence rdb_last_cow_size)"
status="$(info_field persistence rdb_last_bgsave_status)"
bgsave_sec="$(info_field persistence rdb_last_bgsave_time_sec)"
rdb_bytes="$(stat -c %s "$RUN_DIR/data/dump.rdb" 2>/dev/null || echo 0)"
issued="$(awk '$1 == "bgsave_issued" { print $2 }' "$EVENTS")"
done_at="$(awk '$1 == "bgsave_done" { print $2 }' "$EVENTS")"

echo
echo "== $SERVER: $KEYS keys ($FILL) x $VALUE_BYTES B, load: SET -c $LOAD_CLIENTS -P $LOAD_PIPELINE over $LOAD_KEYS keys"
echo "fork (latest_fork_usec):         ${fork_usec:-n/a} us"
echo "BGSAVE wall time (polled 20 ms): $(python3 -c "print(f'{$done_at - $issued:.3f}')") s (rdb_last_bgsave_time_sec: ${bgsave_sec:-n/a}, status: ${status:-n/a})"
echo "copy-on-write (rdb_last_cow_size): $(python3 -c "print(f'{${cow_bytes:-0} / 1048576:.1f}')") MiB"
echo "RDB file: $(python3 -c "print(f'{$rdb_bytes / 1048576:.1f}')") MiB"
python3 "$PERF_DIR/bgsave_probe.py" report "$RUN_DIR/run" "$EVENTS"
[ ! -s "$RUN_DIR/cow.txt" ] || { echo "copy-on-write by cause (perf/bgsave_cow.py):"; cat "$RUN_DIR/cow.txt"; }
python3 - "$RUNS" "$issued" "$done_at" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
start, end = float(sys.argv[2]), float(sys.argv[3])
phases = {"before": [], "during": [], "after": []}
for r in rows:
    t0, t1 = float(r["start"]), float(r["end"])
    phases["before" if t1 < start else ("after" if t0 > end else "during")].append(r)
print("redis-benchmark SET load (runs wholly before / overlapping / wholly after the snapshot):")
print(f"  {'phase':8} {'runs':>5} {'req/s (median)':>15} {'p99 ms (worst)':>15} {'max ms (worst)':>15}")
for name, rs in phases.items():
    if not rs:
        print(f"  {name:8} {0:>5}")
        continue
    rps = sorted(float(r["rps"]) for r in rs)[len(rs) // 2]
    p99 = max(float(r["p99_ms"]) for r in rs)
    mx = max(float(r["max_ms"]) for r in rs)
    print(f"  {name:8} {len(rs):>5} {rps:>15,.0f} {p99:>15.3f} {mx:>15.3f}")
EOF

# --- plot -------------------------------------------------------------------------------
if try_pkg gnuplot gnuplot-nox; then
    t0="$(awk -F, 'NR == 2 { print $1 }' "$RUN_DIR/run-samples.csv")"
    fork_x="$(python3 -c "print(f'{$issued - $t0:.3f}')")"
    done_x="$(python3 -c "print(f'{$done_at - $t0:.3f}')")"
    for term in svg png; do
        case "$term" in
        svg) termline="set terminal svg size 1100,600 dynamic" ;;
        png) gnuplot -e 'set terminal' 2>&1 | grep -qw png || continue
            termline="set terminal png size 1100,600" ;;
        esac
        log "+ gnuplot (RSS and probe latency vs time) > $RUN_DIR/plot.$term"
        gnuplot <<EOF
$termline
set output "$RUN_DIR/plot.$term"
set datafile separator ","
set title "$SERVER BGSAVE: $KEYS keys, SET load -c $LOAD_CLIENTS -P $LOAD_PIPELINE"
set xlabel "time (s)"
set ylabel "RSS (MiB)"
set y2label "probe latency per ${SAMPLE_MS} ms window (ms)"
set y2tics
set ytics nomirror
set logscale y2
set key below horizontal
set yrange [0:*]
set arrow from $fork_x, graph 0 to $fork_x, graph 1 nohead lc rgb "red" dt 2
set label "BGSAVE (fork ${fork_usec:-?} us)" at $fork_x, graph 0.97 offset 0.5,0 tc rgb "red"
set arrow from $done_x, graph 0 to $done_x, graph 1 nohead lc rgb "dark-green" dt 2
set label "snapshot done" at $done_x, graph 0.92 offset 0.5,0 tc rgb "dark-green"
plot "$RUN_DIR/run-samples.csv" every ::1 using (\$1-$t0):2 with steps lw 2 title "server RSS", \
     "" every ::1 using (\$1-$t0):3 with steps lw 2 title "child RSS", \
     "" every ::1 using (\$1-$t0):10 axes x1y2 with fsteps title "probe max latency (right)", \
     "" every ::1 using (\$1-$t0):9 axes x1y2 with fsteps title "probe p99 latency (right)"
EOF
        echo "plot: $RUN_DIR/plot.$term"
    done
else
    log "gnuplot not available: no plot (apt-get install gnuplot-nox)"
fi

[ "$KEEP_RDB" = 1 ] || rm -f "$RUN_DIR/data/dump.rdb"
echo "data: $RUN_DIR"
