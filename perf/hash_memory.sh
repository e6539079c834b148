#!/usr/bin/env bash
# perf/hash_memory.sh: memory per hash field, ringkv (--shards 1) vs redis-server.
#
# Two datasets, each loaded into a fresh server with redis-cli --pipe:
#   big:   one hash of FIELDS fields (hashtable encoding), HSET in batches of 100
#          fields "field:<i>" -> "value:<i>";
#   small: HASHES hashes "hash:<i>" of 5 fields "f1".."f5" -> "v<i>" (listpack).
# Prints used_memory and RSS growth per field (big) and per hash (small).
# RSS is read SETTLE_S seconds after the load, so that pages the allocators
# freed during growth (a table's old arrays) are returned as they would be.
# Env: FIELDS (default 1000000), HASHES (default 1000000), SETTLE_S (default 12).
source "$(dirname "$0")/lib.sh"
need_python
ensure_ringkv
FIELDS="${FIELDS:-1000000}"
HASHES="${HASHES:-1000000}"
SETTLE_S="${SETTLE_S:-12}"
DATA="$OUT_DIR/hash_memory.$$"
python3 - "$FIELDS" "$HASHES" "$DATA" <<'PY'
import sys
fields, hashes, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def cmd(f, args):
    f.write(b"*%d\r\n" % len(args))
    for a in args:
        f.write(b"$%d\r\n%s\r\n" % (len(a), a))
with open(out + ".big", "wb") as f:
    for start in range(0, fields, 100):
        args = [b"HSET", b"big"]
        for i in range(start, min(fields, start + 100)):
            args += [b"field:%d" % i, b"value:%d" % i]
        cmd(f, args)
with open(out + ".small", "wb") as f:
    for i in range(hashes):
        v = b"v%d" % i
        cmd(f, [b"HSET", b"hash:%d" % i, b"f1", v, b"f2", v, b"f3", v, b"f4", v, b"f5", v])
PY
printf 'server,dataset,used_bytes,rss_bytes,elements,used_per_element,rss_per_element,encoding\n'
for server in redis ringkv; do
    for set in big small; do
        port=$(free_port)
        load_and_measure "$server" "$port" "$DATA.$set" "$SETTLE_S" "$OUT_DIR/hash_memory.$server.log"
        if [ "$set" = big ]; then n=$FIELDS; key=big; else n=$HASHES; key=hash:0; fi
        enc=$(redis-cli -p "$port" object encoding "$key")
        python3 -c "import sys; u=$USED_GROWTH; r=$RSS_GROWTH; n=$n; print(f'$server,$set,{u},{r},{n},{u/n:.1f},{r/n:.1f},$enc')"
        stop_pid "$SERVER_PID"
    done
done
rm -f "$DATA.big" "$DATA.small"
