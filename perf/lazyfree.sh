#!/usr/bin/env bash
# perf/lazyfree.sh: the worst latency of other commands on the shard while a
# big collection is freed or grows, ringkv (--shards 1) vs redis-server.
#
# For each server, fresh:
#   1. for each of a hash, sorted set, set and list of N elements (loaded by
#      redis-cli --pipe, 100 elements a command): a single-client PING loop
#      (redis-benchmark -c 1) runs while the collection is UNLINKed (ringkv
#      frees it in slices between commands; redis-server in its lazyfree
#      thread) and, for contrast, while a second copy is DELeted (freed at
#      once by both); prints the loop's max and p99 latency;
#   2. the same PING loop while one sorted set grows to N members by ZADD of
#      one member per command (redis-cli --pipe): the worst stall growth
#      causes (a table doubling, a node split).
# Plus the loop's figures with nothing else running (the machine's noise).
# Env: N (1000000), PINGS (100000), PORT (a free port), SERVERS ("redis ringkv"),
#      CASES ("free grow": either or both of the two steps above).
source "$(dirname "$0")/lib.sh"
need_python
ensure_ringkv
N="${N:-1000000}"
PINGS="${PINGS:-100000}"
SERVERS="${SERVERS:-redis ringkv}"
CASES="${CASES:-free grow}"
DATA="$OUT_DIR/lazyfree.$$"
trap 'rm -f "$DATA".*; cleanup' EXIT
log "+ generating the data under $DATA.*"
python3 - "$N" "$DATA" "$PERF_DIR" <<'PY'
import sys, random
n, out = int(sys.argv[1]), sys.argv[2]
sys.path.insert(0, sys.argv[3])
from mixed_dataset import batches, cmd
rng = random.Random(7)
batches(out + ".hash", n, [b"HSET", b"big"], lambda i: [b"field:%d" % i, b"value:%d" % i])
batches(out + ".zset", n, [b"ZADD", b"big"], lambda i: [repr(rng.random() * 1e6).encode(), b"member:%d" % i])
batches(out + ".set", n, [b"SADD", b"big"], lambda i: [b"member:%d" % i])
batches(out + ".list", n, [b"RPUSH", b"big"], lambda i: [b"element:%d" % i])
with open(out + ".grow", "wb") as f:
    for i in range(n):
        cmd(f, [b"ZADD", b"grow", repr(rng.random() * 1e6).encode(), b"member:%d" % i])
PY
# ping_during PORT CMD...: runs the PING loop, CMD in the middle of it; prints "max p99" (ms).
ping_during() {
    local port="$1" csv="$DATA.csv"
    shift
    redis-benchmark -p "$port" -t ping -c 1 -n "$PINGS" --csv >"$csv" 2>/dev/null &
    local bench=$!
    sleep 0.3
    if [ $# -gt 0 ]; then "$@" >/dev/null; fi
    wait "$bench"
    python3 -c "import csv,sys; r=list(csv.DictReader(open('$csv')))[0]; print(r['max_latency_ms'], r['p99_latency_ms'])"
}
pending() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '$1=="lazyfree_pending_objects"{print $2}'; }
printf 'server,test,max_ms,p99_ms\n'
for server in $SERVERS; do
    port="${PORT:-$(free_port)}"
    start_named "$server" "$port" 1 "$OUT_DIR/lazyfree.$server.log"
    read -r max p99 < <(ping_during "$port")
    printf '%s,idle,%s,%s\n' "$server" "$max" "$p99"
    for type in hash zset set list; do
        case " $CASES " in *" free "*) ;; *) break ;; esac
        for how in UNLINK DEL; do
            run redis-cli -p "$port" --pipe <"$DATA.$type" >/dev/null
            read -r max p99 < <(ping_during "$port" redis-cli -p "$port" "$how" big)
            printf '%s,%s %s of %s,%s,%s\n' "$server" "$how" "$type" "$N" "$max" "$p99"
            while [ "$(pending "$port")" != 0 ]; do sleep 0.1; done
        done
    done
    case " $CASES " in
    *" grow "*)
        read -r max p99 < <(ping_during "$port" redis-cli -p "$port" --pipe <"$DATA.grow")
        printf '%s,ZADD one by one to %s,%s,%s\n' "$server" "$N" "$max" "$p99"
        ;;
    esac
    stop_pid "$SERVER_PID"
done
