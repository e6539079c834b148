#!/usr/bin/env bash
# perf/stream_memory.sh: memory of one stream of ENTRIES small entries,
# ringkv (--shards 1) vs redis-server, side by side.
#
# The stream "s" gets ENTRIES entries "XADD s * f <i> g v" (the fields of
# the first entry, so each entry is stored with SAMEFIELDS as Redis does),
# loaded with redis-cli --pipe into a fresh server. Prints used_memory and
# RSS growth per entry and MEMORY USAGE of the key.
# Env: ENTRIES (default 1000000), SETTLE_S (default 5).
source "$(dirname "$0")/lib.sh"
need_python
ensure_ringkv
ENTRIES="${ENTRIES:-1000000}"
SETTLE_S="${SETTLE_S:-5}"
DATA="$OUT_DIR/stream_memory.$$"
python3 - "$ENTRIES" "$DATA" <<'PY'
import sys
n, out = int(sys.argv[1]), sys.argv[2]
with open(out, "wb") as f:
    for i in range(n):
        v = b"%d" % i
        f.write(b"*7\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$1\r\nf\r\n$%d\r\n%s\r\n$1\r\ng\r\n$1\r\nv\r\n" % (len(v), v))
PY
printf 'server,entries,used_bytes,rss_bytes,used_per_entry,rss_per_entry,memory_usage\n'
for server in redis ringkv; do
    port=$(free_port)
    load_and_measure "$server" "$port" "$DATA" "$SETTLE_S" "$OUT_DIR/stream_memory.$server.log"
    mu=$(redis-cli -p "$port" memory usage s samples 0)
    python3 -c "u=$USED_GROWTH; r=$RSS_GROWTH; n=$ENTRIES; print(f'$server,{n},{u},{r},{u/n:.1f},{r/n:.1f},$mu')"
    stop_pid "$SERVER_PID"
done
rm -f "$DATA"
