#!/usr/bin/env bash
# perf/memory.sh: RSS of the aggregate-types dataset, ringkv (--shards 1) vs redis-server.
#
# The dataset of issue 12, loaded part by part into one fresh server with
# `redis-cli --pipe` (the same generated files for both servers):
#   hashes:  SMALL_HASHES hashes "hash:<i>", 10 fields "field<j>" -> "value<i>" (listpack)
#   zsets:   SMALL zsets "zset:<i>", 10 members "member<j>", score j*1.5 (listpack)
#   lists:   SMALL lists "list:<i>", 10 elements "element<j>" (quicklist of one listpack)
#   intsets: SMALL sets "iset:<i>", 10 integers i*10+j (intset)
#   bighash: one hash of BIG fields "field:<n>" -> "value:<n>" (hashtable), 100 fields a command
#   bigzset: one zset of BIG members "member:<n>", pseudo-random scores (skiplist), 100 a command
#   biglist: one list of BIG elements "element:<n>", RPUSH 100 a command
#   bigset:  one set of BIG members "member:<n>" (hashtable), 100 a command
# After each part it waits SETTLE_S seconds (jemalloc, in both servers, returns
# freed pages to the kernel after its 10 s decay) and reads VmRSS and
# used_memory. Prints one CSV line per part and server, then a table: RSS growth
# per part, ringkv/redis ratio, bytes per key (small parts) or per element (big).
# Env: SMALL_HASHES (200000), SMALL (100000), BIG (500000), SETTLE_S (11),
#      PORT (a free port), SERVERS ("redis ringkv").
source "$(dirname "$0")/lib.sh"
need_python
ensure_ringkv
SMALL_HASHES="${SMALL_HASHES:-200000}"
SMALL="${SMALL:-100000}"
BIG="${BIG:-500000}"
SETTLE_S="${SETTLE_S:-11}"
SERVERS="${SERVERS:-redis ringkv}"
PARTS="hashes zsets lists intsets bighash bigzset biglist bigset"
DATA="$OUT_DIR/memory.$$"
trap 'rm -f "$DATA".*; cleanup' EXIT
log "+ generating the dataset under $DATA.*"
run python3 "$PERF_DIR/mixed_dataset.py" "$SMALL_HASHES" "$SMALL" "$BIG" "$DATA"
used() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '$1=="used_memory"{print $2}'; }
CSV="$OUT_DIR/memory.$(timestamp).csv"
printf 'server,part,rss_growth_bytes,used_memory_growth_bytes,encoding\n' | tee "$CSV"
for server in $SERVERS; do
    port="${PORT:-$(free_port)}"
    start_named "$server" "$port" 1 "$OUT_DIR/memory.$server.log"
    sleep 1
    r0=$(rss_kib "$SERVER_PID")
    u0=$(used "$port")
    for part in $PARTS; do
        run redis-cli -p "$port" --pipe <"$DATA.$part" >/dev/null
        sleep "$SETTLE_S"
        r1=$(rss_kib "$SERVER_PID")
        u1=$(used "$port")
        case "$part" in
        hashes) key=hash:0 ;; zsets) key=zset:0 ;; lists) key=list:0 ;; intsets) key=iset:0 ;;
        *) key=$part ;;
        esac
        enc=$(redis-cli -p "$port" object encoding "$key")
        printf '%s,%s,%d,%d,%s\n' "$server" "$part" $(((r1 - r0) * 1024)) $((u1 - u0)) "$enc" | tee -a "$CSV"
        r0=$r1
        u0=$u1
    done
    stop_pid "$SERVER_PID"
done
python3 - "$CSV" "$SMALL_HASHES" "$SMALL" "$BIG" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
small_hashes, small, big = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
count = {"hashes": small_hashes, "zsets": small, "lists": small, "intsets": small}
by = {}
for r in rows:
    by.setdefault(r["part"], {})[r["server"]] = int(r["rss_growth_bytes"])
print("\n| part | redis RSS MB | ringkv RSS MB | ratio | redis B/unit | ringkv B/unit | unit |")
print("|---|---|---|---|---|---|---|")
tot = {"redis": 0, "ringkv": 0}
for part, v in by.items():
    n = count.get(part, big)
    unit = "key" if part in count else "element"
    red, rkv = v.get("redis", 0), v.get("ringkv", 0)
    tot["redis"] += red
    tot["ringkv"] += rkv
    ratio = f"{rkv / red:.2f}x" if red > 0 and rkv else "-"
    print(f"| {part} | {red / 1e6:.1f} | {rkv / 1e6:.1f} | {ratio} | {red / n:.1f} | {rkv / n:.1f} | {unit} |")
ratio = f"{tot['ringkv'] / tot['redis']:.2f}x" if tot["redis"] > 0 and tot["ringkv"] else "-"
print(f"| total | {tot['redis'] / 1e6:.1f} | {tot['ringkv'] / 1e6:.1f} | {ratio} | | | |")
PY
