#!/usr/bin/env bash
# CPU flame graph of ringkv (or redis-server) under a redis-benchmark load.
#
#   perf/flamegraph.sh [TEST [PIPELINE]]          # default: set 1, 10 s
#   SECONDS_TO_RECORD=2 perf/flamegraph.sh get 16 # a quick one
#   SERVER=redis perf/flamegraph.sh set 16        # redis-server for comparison
#
# Best stacks come from the `profiling` profile with frame pointers (the
# release build has line tables but no frame pointers, so `-g` stacks stop
# early inside Rust code):
#   RUSTFLAGS="-C force-frame-pointers=yes" cargo build --profile profiling
#   PROFILE=profiling perf/flamegraph.sh set 16
# (or keep the release build and use CALLGRAPH=dwarf: larger perf.data, slower.)
#
# The VM has no hardware PMU, so the sampling event is cpu-clock at 999 Hz.
# Steps: start the server on core 0, start `redis-benchmark -l` (looping) on
# the client core, `perf record -F 999 -g -p PID` for SECONDS_TO_RECORD s,
# then `perf script | inferno-collapse-perf | inferno-flamegraph`.
# Output: perf/out/flame-<timestamp>.svg (+ .folded stacks and perf.data).
#
# Environment: SERVER=ringkv|redis, SECONDS_TO_RECORD=10, PROFILE=release|profiling,
#   CALLGRAPH=fp|dwarf, CLIENTS=50, KEYSPACE=1000000, VALUE_BYTES=32, SHARDS=1.
# Installs inferno with `cargo install inferno` and linux-perf with apt-get when missing.

source "$(dirname "$0")/lib.sh"

TEST="${1:-set}"
PIPELINE="${2:-1}"
SERVER="${SERVER:-ringkv}"
SECONDS_TO_RECORD="${SECONDS_TO_RECORD:-10}"
PROFILE="${PROFILE:-release}"
CALLGRAPH="${CALLGRAPH:-fp}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-32}"
SHARDS="${SHARDS:-1}"
if [ "$NCPU" -gt 1 ]; then CLIENT_CORE="${CLIENT_CORE:-1}"; else CLIENT_CORE="${CLIENT_CORE:-0}"; fi

ensure_pkg perf linux-perf
export PATH="$PATH:$HOME/.cargo/bin"
if ! command -v inferno-flamegraph >/dev/null || ! command -v inferno-collapse-perf >/dev/null; then
    run cargo install inferno
fi

TS="$(timestamp)"
PORT="$(free_port)"
case "$SERVER" in
ringkv)
    if [ "$PROFILE" != release ]; then
        RINGKV_BIN="$REPO_DIR/target/$PROFILE/ringkv"
        [ -x "$RINGKV_BIN" ] || die "$RINGKV_BIN missing: RUSTFLAGS=\"-C force-frame-pointers=yes\" cargo build --profile $PROFILE"
    else
        ensure_ringkv
    fi
    start_ringkv "$PORT" "$SHARDS" "$OUT_DIR/flame-$TS-server.log"
    ;;
redis) start_redis "$PORT" "$OUT_DIR/flame-$TS-server.log" ;;
*) die "SERVER must be ringkv or redis" ;;
esac
PID="$SERVER_PID"

case "$CALLGRAPH" in
fp) CG=(-g) ;;
dwarf) CG=(--call-graph dwarf,16384) ;;
*) die "CALLGRAPH must be fp or dwarf" ;;
esac

# The load: loops until we stop it (by PID) after recording.
LOAD_CMD=(taskset -c "$CLIENT_CORE" redis-benchmark -h 127.0.0.1 -p "$PORT" -t "$TEST"
    -c "$CLIENTS" -r "$KEYSPACE" -d "$VALUE_BYTES" -P "$PIPELINE" -l -q)
log "$(printf '+'; printf ' %q' "${LOAD_CMD[@]}"; printf ' >/dev/null &')"
"${LOAD_CMD[@]}" >/dev/null 2>&1 &
LOAD_PID=$!
STARTED_PIDS+=("$LOAD_PID")
sleep 1 # let every connection reach steady state

DATA="$OUT_DIR/flame-$TS.perf.data"
run perf record -F 999 -e cpu-clock "${CG[@]}" -p "$PID" -o "$DATA" -- sleep "$SECONDS_TO_RECORD"
stop_pid "$LOAD_PID"

FOLDED="$OUT_DIR/flame-$TS.folded"
SVG="$OUT_DIR/flame-$TS.svg"
log "+ perf script -i $DATA | inferno-collapse-perf > $FOLDED"
perf script -i "$DATA" 2>/dev/null | inferno-collapse-perf >"$FOLDED"
log "+ inferno-flamegraph --title '$SERVER $TEST -P $PIPELINE' < $FOLDED > $SVG"
inferno-flamegraph --title "$SERVER $TEST -P $PIPELINE, $CLIENTS connections (cpu-clock 999 Hz)" \
    <"$FOLDED" >"$SVG"

echo "flame graph: $SVG"
echo "folded stacks: $FOLDED   perf data: $DATA"
echo "top frames by self samples:"
# The last frame of each folded line is the function the sample landed in.
awk '{ n = $NF; $NF = ""; k = split($0, f, ";"); sub(/ $/, "", f[k]); self[f[k]] += n; total += n }
     END { for (s in self) printf "%6.2f%%  %s\n", 100 * self[s] / total, s }' "$FOLDED" |
    sort -rn | head -15
