#!/usr/bin/env bash
# The BGSAVE child's own speed against the disk: an idle server (no load, no
# probe), so the child has its core to itself, compared with fio's O_DIRECT
# figure for the same disk (perf/RESULTS.md) and with redis-server.
#
#   perf/bgsave_idle.sh both              # redis then ringkv, same data
#   KEYS=300000 VALUE_BYTES=1024 VALUES=random perf/bgsave_idle.sh ringkv
#
# Steps: start the server on core 0 with --save "" and a scratch --dir; fill
# KEYS keys `key:%012d` with VALUE_BYTES-byte values (VALUES=hex: hex digits,
# as perf/bgsave.sh; VALUES=random: random bytes, which LZF cannot compress)
# through `redis-cli --pipe`; then for each rdbcompression setting in
# COMPRESSION (default "yes no"), SAVES BGSAVEs one after the other. The child
# time is read from the server log: from "Background saving started by pid"
# (parent, after fork) to the child's own "DB saved on disk" (after fsync and
# rename), both Redis's lines with millisecond timestamps.
#
# Environment: KEYS=300000, VALUE_BYTES=1024, VALUES=hex|random, SAVES=3,
#   COMPRESSION="yes no", SHARDS=1 (ringkv), SERVER_ARGS="extra server args".
# Output: a table on stdout; logs under perf/out/bgsave-idle-<server>-<timestamp>/.

if [ "${1:-}" = "both" ]; then
    "$0" redis && "$0" ringkv
    exit $?
fi

source "$(dirname "$0")/lib.sh"
need_python

SERVER="${1:-redis}"
KEYS="${KEYS:-300000}"
VALUE_BYTES="${VALUE_BYTES:-1024}"
VALUES="${VALUES:-hex}"
SAVES="${SAVES:-3}"
COMPRESSION="${COMPRESSION:-yes no}"
SHARDS="${SHARDS:-1}"
read -r -a EXTRA_ARGS <<<"${SERVER_ARGS:-}"

RUN_DIR="$OUT_DIR/bgsave-idle-$SERVER-$(timestamp)"
mkdir -p "$RUN_DIR/data"
PORT="$(free_port)"
start_named "$SERVER" "$PORT" "$SHARDS" "$RUN_DIR/server.log" --dir "$RUN_DIR/data" --dbfilename dump.rdb "${EXTRA_ARGS[@]}"
cli() { redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

log "== filling $KEYS keys of $VALUE_BYTES $VALUES bytes"
log "+ python3 (generate SET key:%012d <value> x $KEYS) | redis-cli -p $PORT --pipe"
python3 - "$KEYS" "$VALUE_BYTES" "$VALUES" <<'PY' | redis-cli -h 127.0.0.1 -p "$PORT" --pipe >"$RUN_DIR/fill.log" 2>&1 || die "fill failed"
import os, random, sys
n, vlen, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = random.Random(42)
out = sys.stdout.buffer
buf = []
for i in range(n):
    v = rng.randbytes(vlen) if kind == "random" else rng.randbytes((vlen + 1) // 2).hex()[:vlen].encode()
    buf.append(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$%d\r\n%s\r\n" % (i, vlen, v))
    if len(buf) == 10000:
        out.write(b"".join(buf))
        buf = []
out.write(b"".join(buf))
PY
[ "$(cli DBSIZE)" -ge "$KEYS" ] || die "fill incomplete: DBSIZE $(cli DBSIZE)"

child_ms() { # the last save's child time from the log, in ms
    python3 - "$RUN_DIR/server.log" <<'PY'
import datetime, re, sys
lines = open(sys.argv[1], errors="replace").read().splitlines()
def t(l):
    s = re.search(r"(\d+ \w+ \d+ [\d:.]+)", l).group(1)
    return datetime.datetime.strptime(s, "%d %b %Y %H:%M:%S.%f").timestamp()
st = [l for l in lines if "Background saving started by pid" in l][-1]
en = [l for l in lines if "DB saved on disk" in l][-1]
print(f"{(t(en) - t(st)) * 1000:.0f}")
PY
}

echo
echo "== $SERVER: $KEYS keys x $VALUE_BYTES B ($VALUES), idle, child time fork -> 'DB saved on disk'"
printf '%-14s %6s %10s %10s %10s\n' rdbcompression save child_ms RDB_MiB MiB/s
for c in $COMPRESSION; do
    cli CONFIG SET rdbcompression "$c" >/dev/null
    for i in $(seq 1 "$SAVES"); do
        reply="$(cli BGSAVE)"
        case "$reply" in *"started"*) ;; *) die "BGSAVE: $reply" ;; esac
        sleep 0.05
        while cli INFO persistence | tr -d '\r' | grep -q '^rdb_bgsave_in_progress:1'; do sleep 0.02; done
        ms="$(child_ms)"
        bytes="$(stat -c %s "$RUN_DIR/data/dump.rdb")"
        printf '%-14s %6s %10s %10.1f %10.0f\n' "$c" "$i" "$ms" "$(python3 -c "print($bytes / 1048576)")" \
            "$(python3 -c "print($bytes / 1048576 / max($ms, 1) * 1000)")"
    done
done
echo "logs: $RUN_DIR"
