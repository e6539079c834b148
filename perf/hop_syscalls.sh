#!/usr/bin/env bash
# What a two-round hop costs beyond a one-round one (issue 13), counted, not
# timed: for each operation of perf/cross_load.py (mset2 is the one-round
# baseline: MSET of one key per shard), a ringkv --shards 2 on SERVER_CORES,
# the load (CONNS connections, default 1: every request a whole exchange, -P 1) on CLIENT_CORES for LOAD_SECONDS, and
# `perf stat -p PID` over the run (tracepoints and software events: no PMU
# needed, next to no overhead): the server threads' io_uring_enter calls,
# futex calls, context switches and the wake-ups they do (of each other and
# of the client) per request, and CPU per request (/proc/PID/stat). With the
# default one connection the other shard is asleep when a request comes, so
# a multi-shard command takes it asleep by a hold; CONNS=8 keeps both awake
# (hops). `exec` is a plain two-shard MULTI/SET/SET/EXEC (one-round hop).
# Counts per request are what this script is for; CPU per request
# against --shards 1 is perf/crossshard.sh's. sched_yield counts the held
# path's yield windows (`shard::hold`, YIELD_WINDOW: a coordinator waiting
# for its target to park, a parked target polling for its release), which
# the context-switch column misses when the yield finds nobody to run.
# ROUTE=held|hops forces `cross-shard-route` (hidden config, CONFIG SET
# after start; default: the server's own choice, `network::route`): with
# `auto` the two-round commands (MSETNX, RENAME, SMOVE, COPY, LMOVE,
# RPOPLPUSH) take the held path while the other shard parks quickly.
#
#   perf/hop_syscalls.sh
#   BINS="before=/tmp/ringkv-old after=target/release/ringkv" OPS="mset2 msetnx" perf/hop_syscalls.sh
source "$(dirname "$0")/lib.sh"
need_python

SERVER_CORES="${SERVER_CORES:-0}"
CLIENT_CORES="${CLIENT_CORES:-1}"
# (Not `SECONDS`: bash counts the seconds since the shell started in it.)
SECONDS_PER_OP="${LOAD_SECONDS:-3}"
ensure_pkg perf linux-perf
CONNS="${CONNS:-1}"
ROUTE="${ROUTE:-}"
OPS="${OPS:-mset2 msetnx rename smove watch exec}"
BINS="${BINS:-now=$RINGKV_BIN}"
[ "$BINS" = "now=$RINGKV_BIN" ] && ensure_ringkv
TMP="$(mktemp -d)"
trap 'cleanup; rm -rf "$TMP"' EXIT

printf '%-8s %-9s %9s %11s %6s %6s %8s %7s %7s\n' build op requests uring_enter futex yield ctx_sw wakeups cpu_us
for entry in $BINS; do
    build="${entry%%=*}"
    bin="${entry#*=}"
    for op in $OPS; do
        port="$(free_port)"
        RINGKV_BIN="$bin" start_ringkv "$port" 2 "$TMP/ringkv.log"
        pid="$SERVER_PID"
        [ -n "$ROUTE" ] && run redis-cli -p "$port" config set cross-shard-route "$ROUTE" >/dev/null
        perf stat -x, -o "$TMP/stat.txt" -e syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_futex,syscalls:sys_enter_sched_yield,context-switches,sched:sched_wakeup -p "$pid" &
        spid=$!
        sleep 0.5
        cpu="$(cpu_usec "$pid")"
        out="$(run taskset -c "$CLIENT_CORES" python3 "$PERF_DIR/cross_load.py" "$port" "$op" "$SECONDS_PER_OP" "$CONNS")"
        cpu=$(($(cpu_usec "$pid") - cpu))
        kill -INT "$spid"
        wait "$spid" || true
        stop_pid "$pid"
        n=${out#transactions=}
        n=${n%% *}
        python3 - "$TMP/stat.txt" "$n" "$cpu" "$build" "$op" <<'PY'
import sys
path, n, cpu, build, op = sys.argv[1], max(int(sys.argv[2]), 1), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ev = {}
for line in open(path):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].replace(".", "").isdigit():
        ev[f[2]] = float(f[0])
g = lambda name: ev.get(name, 0.0) / n
print(f"{build:<8} {op:<9} {n:>9} {g('syscalls:sys_enter_io_uring_enter'):>11.2f} {g('syscalls:sys_enter_futex'):>6.2f} {g('syscalls:sys_enter_sched_yield'):>6.2f} "
      f"{g('context-switches'):>8.2f} {g('sched:sched_wakeup'):>7.2f} {cpu / n:>7.2f}")
PY
    done
done
