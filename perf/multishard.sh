#!/usr/bin/env bash
# Multi-shard commands: what a command over keys of several shards costs
# against the same command on one shard, and whether operations over
# disjoint shard sets run side by side.
#
#   perf/multishard.sh                     # full run
#   REQUESTS=20000 perf/multishard.sh      # a quick sanity run
#   RINGKV_BIN=/tmp/ringkv-before perf/multishard.sh   # another build
#
# Part 1: MSET (redis-benchmark -t mset: 10 random keys) and MGET (10 random
# keys, a custom command), -c 50, at -P 1 and -P 16, against ringkv
# --shards 1, ringkv --shards 2 (10 random keys nearly always span both
# shards: the held, cross-shard path) and redis-server. Printed per run:
# requests/s and server CPU (utime+stime from /proc/PID/stat) per request;
# then the ratios shards-2 / shards-1 (the cross-shard cost: CPU per request,
# the target being at most 1.3 at -P 1) and ringkv / redis-server. SET at
# -P 1 is the reference for a hop: with 2 shards half the SETs are forwarded
# to the other shard by mailbox, so its 2/1 ratio shows what running a
# command's part on the owning shard costs, against MSET's park of a shard.
#
# Part 2: ringkv --shards 4; two redis-benchmark processes run at once, each
# an MSET of two keys whose hash tags put one key on each shard of its own
# pair (shards 0+1, and 2+3: disjoint), then the same two on one pair (0+1
# both: they contend) as the control, and one alone. "scale" = combined
# requests/s of the two / requests/s of one alone: near 2 when the pairs run
# side by side (and the cores allow it), near 1 when they serialize.
#
# On a machine with few cores the server and the clients share them (the
# default when nproc <= 2): the figures are then a sanity check, to be
# re-taken on a quiet machine with SERVER_CORES/CLIENT_CORES set apart.
#
# Environment: REQUESTS=200000 (per run), CLIENTS=50, KEYSPACE=100000,
#   SERVER_CORES, CLIENT_CORES (default: all cores for both when nproc <= 2).

if [ "$(nproc)" -le 2 ]; then
    SERVER_CORES="${SERVER_CORES:-0-$(($(nproc) - 1))}"
    CLIENT_CORES="${CLIENT_CORES:-0-$(($(nproc) - 1))}"
fi
source "$(dirname "$0")/lib.sh"
need_python

REQUESTS="${REQUESTS:-200000}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-100000}"

ensure_ringkv
TS="$(timestamp)"
RAW="$OUT_DIR/multishard-$TS.csv"
echo "part,server,test,pipeline,requests,rps,cpu_us_per_req" >"$RAW"

MGET_ARGS=(MGET)
for _ in $(seq 1 10); do MGET_ARGS+=("key:__rand_int__"); done

# bench PORT PIPELINE TEST -> "rps" (TEST: mset, mget or set)
bench() {
    local port="$1" pipeline="$2" test="$3" out
    if [ "$test" = mset ] || [ "$test" = set ]; then
        out="$(run taskset -c "$CLIENT_CORES" redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" \
            -n "$REQUESTS" -c "$CLIENTS" -r "$KEYSPACE" -P "$pipeline" --csv 2>&1)"
    else
        out="$(run taskset -c "$CLIENT_CORES" redis-benchmark -h 127.0.0.1 -p "$port" \
            -n "$REQUESTS" -c "$CLIENTS" -r "$KEYSPACE" -P "$pipeline" --csv "${MGET_ARGS[@]}" 2>&1)"
    fi
    printf '%s\n' "$out" | python3 "$PERF_DIR/summarize.py" bench-csv "$test" | cut -d, -f1 ||
        die "could not parse redis-benchmark output: $out"
}

# Part 1.
for server in "ringkv 1" "ringkv 2" "redis 0"; do
    set -- $server
    name="$1" shards="$2"
    PORT="$(free_port)"
    label="$name"
    [ "$name" = ringkv ] && label="ringkv-$shards"
    start_named "$name" "$PORT" "$shards" "$OUT_DIR/multishard-$TS-$label.log"
    PID="$SERVER_PID"
    # Fill the keyspace first so MGET reads values.
    bench "$PORT" 16 mset >/dev/null
    for pipeline in 1 16; do
        tests="mset mget"
        # SET at -P 1: with 2 shards half the SETs are forwarded to the
        # other shard (one mailbox round trip, a "hop"): the reference for
        # what executing a part on its own shard would cost instead of parking.
        [ "$pipeline" = 1 ] && tests="mset mget set"
        for test in $tests; do
            before="$(cpu_usec "$PID")"
            rps="$(bench "$PORT" "$pipeline" "$test")"
            after="$(cpu_usec "$PID")"
            cpu="$(python3 -c "print(f'{($after - $before) / $REQUESTS:.3f}')")"
            echo "1,$label,$test,$pipeline,$REQUESTS,$rps,$cpu" >>"$RAW"
            log "  $label $test -P $pipeline: $rps req/s, $cpu us CPU/req"
        done
    done
    stop_pid "$PID"
done

# Part 2: hash tags landing on chosen shards of a 4-shard server.
TAGS="$(python3 - <<'EOF'
def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc
found = {}
i = 0
while len(found) < 4:
    t = f"t{i}"
    shard = (crc16(t.encode()) % 16384) * 4 // 16384
    found.setdefault(shard, t)
    i += 1
print(" ".join(found[s] for s in range(4)))
EOF
)"
read -r T0 T1 T2 T3 <<<"$TAGS"
PORT="$(free_port)"
start_named ringkv "$PORT" 4 "$OUT_DIR/multishard-$TS-ringkv-4.log"
PID="$SERVER_PID"
HALF=$((CLIENTS / 2))
# pair_bench TAG_A TAG_B -> redis-benchmark command line for one process
pair_cmd() {
    echo taskset -c "$CLIENT_CORES" redis-benchmark -h 127.0.0.1 -p "$PORT" -n "$REQUESTS" -c "$HALF" \
        -r "$KEYSPACE" -P 1 --csv MSET "{$1}:__rand_int__" v "{$2}:__rand_int__" v
}
rps_of() { python3 "$PERF_DIR/summarize.py" bench-csv MSET <"$1" | cut -d, -f1; }
for scenario in alone disjoint same; do
    before="$(cpu_usec "$PID")"
    case "$scenario" in
    alone)
        run $(pair_cmd "$T0" "$T1") >"$OUT_DIR/ms-a.out" 2>&1
        total="$(rps_of "$OUT_DIR/ms-a.out")"
        n=1
        ;;
    disjoint | same)
        if [ "$scenario" = disjoint ]; then b0="$T2" b1="$T3"; else b0="$T0" b1="$T1"; fi
        run $(pair_cmd "$T0" "$T1") >"$OUT_DIR/ms-a.out" 2>&1 &
        pa=$!
        run $(pair_cmd "$b0" "$b1") >"$OUT_DIR/ms-b.out" 2>&1 &
        pb=$!
        wait "$pa" "$pb"
        total="$(python3 -c "print($(rps_of "$OUT_DIR/ms-a.out") + $(rps_of "$OUT_DIR/ms-b.out"))")"
        n=2
        ;;
    esac
    after="$(cpu_usec "$PID")"
    cpu="$(python3 -c "print(f'{($after - $before) / ($REQUESTS * $n):.3f}')")"
    echo "2,ringkv-4,mset-pairs-$scenario,1,$((REQUESTS * n)),$total,$cpu" >>"$RAW"
    log "  pairs $scenario: $total req/s, $cpu us CPU/req"
done
rm -f "$OUT_DIR/ms-a.out" "$OUT_DIR/ms-b.out"
stop_pid "$PID"

echo
python3 - "$RAW" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
p1 = {(r["server"], r["test"], r["pipeline"]): r for r in rows if r["part"] == "1"}
print(f"{'test':>5} {'-P':>3} {'server':>9} {'req/s':>10} {'cpu us/req':>10}")
for (server, test, pipeline), r in sorted(p1.items(), key=lambda kv: (kv[0][1], int(kv[0][2]), kv[0][0])):
    print(f"{test:>5} {pipeline:>3} {server:>9} {float(r['rps']):>10,.0f} {float(r['cpu_us_per_req']):>10.3f}")
print()
print("cross-shard cost (ringkv-2 / ringkv-1) and ringkv / redis-server:")
print(f"{'test':>5} {'-P':>3} {'cpu 2/1':>8} {'rps 1/2':>8} {'cpu 2/redis':>11} {'cpu 1/redis':>11}")
for test in ("mset", "mget", "set"):
    for pipeline in ("1", "16") if test != "set" else ("1",):
        g = lambda s, f: float(p1[(s, test, pipeline)][f]) if (s, test, pipeline) in p1 else float("nan")
        c1, c2, cr = g("ringkv-1", "cpu_us_per_req"), g("ringkv-2", "cpu_us_per_req"), g("redis", "cpu_us_per_req")
        r1, r2 = g("ringkv-1", "rps"), g("ringkv-2", "rps")
        print(f"{test:>5} {pipeline:>3} {c2 / c1:>8.2f} {r1 / r2:>8.2f} {c2 / cr:>11.2f} {c1 / cr:>11.2f}")
p2 = {r["test"]: r for r in rows if r["part"] == "2"}
if "mset-pairs-alone" in p2:
    alone = float(p2["mset-pairs-alone"]["rps"])
    print()
    print("two clients, cross-shard MSET on shard pairs (--shards 4, -P 1):")
    for s in ("alone", "disjoint", "same"):
        r = p2.get(f"mset-pairs-{s}")
        if r:
            print(f"  {s:>8}: {float(r['rps']):>10,.0f} req/s  scale {float(r['rps']) / alone:.2f}  cpu {float(r['cpu_us_per_req']):.3f} us/req")
EOF
echo "raw: $RAW"
