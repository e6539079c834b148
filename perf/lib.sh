# Shared helpers for the perf/ scripts. Sourced, not run.
#
# Every script here follows the same rules:
# - it prints each command it runs (prefixed with "+ "), so a figure in
#   RESULTS.md can be reproduced by hand;
# - it starts its own servers on free ports it picked, remembers their PIDs,
#   and kills exactly those PIDs on exit (trap), never anything by name;
# - servers are pinned with taskset so that a server and its load generator
#   do not share a core.

set -euo pipefail

PERF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$PERF_DIR/.." && pwd)"
OUT_DIR="${OUT_DIR:-$PERF_DIR/out}"
mkdir -p "$OUT_DIR"

RINGKV_BIN="${RINGKV_BIN:-$REPO_DIR/target/release/ringkv}"
REDIS_SERVER_BIN="${REDIS_SERVER_BIN:-redis-server}"
CLK_TCK="$(getconf CLK_TCK)"
NCPU="$(nproc)"

# Cores: the server gets SERVER_CORES (default core 0), load generators get
# CLIENT_CORES (default everything else, or core 0 on a 1-core box).
SERVER_CORES="${SERVER_CORES:-0}"
if [ "$NCPU" -gt 1 ]; then
    CLIENT_CORES="${CLIENT_CORES:-1-$((NCPU - 1))}"
else
    CLIENT_CORES="${CLIENT_CORES:-0}"
fi

STARTED_PIDS=()

# fd 9 is the terminal's stderr even inside $(...) 2>&1, so the commands we
# print never end up in the output we parse.
exec 9>&2
log() { printf '%s\n' "$*" >&9; }
die() { log "error: $*"; exit 1; }

# Prints a command the way a shell would read it back, then runs it.
run() {
    printf '+' >&9
    printf ' %q' "$@" >&9
    printf '\n' >&9
    "$@"
}

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]:-}"; do
        [ -n "$pid" ] || continue
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${STARTED_PIDS[@]:-}"; do
        [ -n "$pid" ] || continue
        # Give a server a moment to exit, then force it.
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    STARTED_PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops one PID that this script started.
stop_pid() {
    local pid="$1" i
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local kept=() p
    for p in "${STARTED_PIDS[@]:-}"; do
        [ "$p" = "$pid" ] || kept+=("$p")
    done
    STARTED_PIDS=("${kept[@]:-}")
}

port_in_use() {
    ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

# A TCP port nobody listens on, in a range unlikely to clash with other users.
# PORT_MIN/PORT_MAX (default 20000-39999): the range ports are drawn from,
# so that several people benchmarking on one machine can keep apart.
free_port() {
    local p lo="${PORT_MIN:-20000}" hi="${PORT_MAX:-32767}"
    for _ in $(seq 1 200); do
        p=$((lo + RANDOM % (hi - lo + 1)))
        if ! port_in_use "$p"; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

ensure_ringkv() {
    if [ ! -x "$RINGKV_BIN" ] || [ -n "$(find "$REPO_DIR/src" "$REPO_DIR/Cargo.toml" -newer "$RINGKV_BIN" -print -quit 2>/dev/null)" ]; then
        if [ "$RINGKV_BIN" = "$REPO_DIR/target/release/ringkv" ]; then
            (cd "$REPO_DIR" && run cargo build --release --bin ringkv)
        else
            [ -x "$RINGKV_BIN" ] || die "RINGKV_BIN=$RINGKV_BIN is not executable"
        fi
    fi
}

# start_server NAME CORES PORT LOGFILE CMD... -> sets SERVER_PID.
# Fails if the process dies or the port does not answer PING within 10 s
# (e.g. because another process already took the port).
start_server() {
    local name="$1" cores="$2" port="$3" logfile="$4"
    shift 4
    port_in_use "$port" && die "port $port already in use"
    printf '+ taskset -c %s' "$cores" >&9
    printf ' %q' "$@" >&9
    printf ' >%s 2>&1 &\n' "$logfile" >&9
    taskset -c "$cores" "$@" >"$logfile" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    local i
    for i in $(seq 1 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -5 "$logfile" >&2 || true
            die "$name exited during startup (log: $logfile)"
        fi
        if [ "$(redis-cli -p "$port" ping 2>/dev/null || true)" = "PONG" ]; then
            log "  $name started: pid $SERVER_PID, port $port, cores $cores"
            return 0
        fi
        sleep 0.1
    done
    die "$name did not answer PING on port $port within 10 s (log: $logfile)"
}

start_ringkv() { # PORT SHARDS LOGFILE [extra args...]
    local port="$1" shards="$2" logfile="$3"
    shift 3
    start_server ringkv "${RINGKV_CORES:-$SERVER_CORES}" "$port" "$logfile" \
        "$RINGKV_BIN" --port "$port" --shards "$shards" --save "" "$@"
}

start_redis() { # PORT LOGFILE [extra args...]
    local port="$1" logfile="$2"
    shift 2
    start_server redis-server "$SERVER_CORES" "$port" "$logfile" \
        "$REDIS_SERVER_BIN" --port "$port" --save "" --appendonly no --daemonize no "$@"
}

# start_named SERVER PORT SHARDS LOGFILE [extra args...]: ringkv (rebuilt when
# stale; SHARDS applies to it only) or redis-server. Sets SERVER_PID.
start_named() {
    local server="$1" port="$2" shards="$3" logfile="$4"
    shift 4
    case "$server" in
    ringkv)
        ensure_ringkv
        start_ringkv "$port" "$shards" "$logfile" "$@"
        ;;
    redis) start_redis "$port" "$logfile" "$@" ;;
    *) die "server must be ringkv or redis (got '$server')" ;;
    esac
}

# start_one_shard SERVER PORT LOGFILE: ringkv --shards 1 or redis-server
# (start_named), or "base": the ringkv build at BASE_BIN (a before/after
# comparison in one run). Sets SERVER_PID.
start_one_shard() {
    if [ "$1" = base ]; then
        [ -x "${BASE_BIN:-}" ] || die "server base needs BASE_BIN"
        RINGKV_BIN="$BASE_BIN" start_ringkv "$2" 1 "$3"
    else
        start_named "$1" "$2" 1 "$3"
    fi
}

# CPU time (user + system, all threads) of a process, in microseconds.
# Resolution is one clock tick (1/CLK_TCK s, usually 10 ms), so runs should
# last at least a few seconds for a precise per-request figure.
cpu_usec() {
    local stat rest
    stat="$(cat "/proc/$1/stat")"
    rest="${stat##*) }" # strip "pid (comm) "; comm may contain spaces
    # After the comm, field 1 is state; utime and stime are fields 12 and 13.
    echo "$rest" | awk -v tck="$CLK_TCK" '{ printf "%d\n", ($12 + $13) * 1000000 / tck }'
}

# Resident set size in KiB (0 if the process is gone).
rss_kib() {
    awk '/^VmRSS:/ { print $2; found=1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# used_memory (INFO memory) of the server on port $1.
used_memory() {
    redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '$1=="used_memory"{print $2}'
}

# load_and_measure SERVER PORT DATA SETTLE_S LOGFILE: starts SERVER (redis or
# ringkv, one shard) on PORT, pipes the RESP file DATA into it, and sets
# USED_GROWTH (used_memory bytes) and RSS_GROWTH (bytes, read SETTLE_S seconds
# after the load). The server is left running as SERVER_PID.
load_and_measure() {
    local server="$1" port="$2" data="$3" settle="$4" logfile="$5" u0 u1 r0 r1
    start_named "$server" "$port" 1 "$logfile"
    u0=$(used_memory "$port"); r0=$(rss_kib "$SERVER_PID")
    run redis-cli -p "$port" --pipe <"$data" >/dev/null
    u1=$(used_memory "$port")
    sleep "$settle"
    r1=$(rss_kib "$SERVER_PID")
    USED_GROWTH=$((u1 - u0))
    RSS_GROWTH=$(((r1 - r0) * 1024))
}

need_python() {
    command -v python3 >/dev/null || die "python3 is needed to summarise results"
}

# Installs a Debian package when COMMAND is missing and we are root.
# Returns non-zero when COMMAND is still missing.
try_pkg() { # COMMAND PACKAGE
    command -v "$1" >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        run apt-get install -y --no-install-recommends "$2" >&9 2>&1 ||
            { run apt-get update >&9 2>&1 && run apt-get install -y --no-install-recommends "$2" >&9 2>&1; } || true
    fi
    command -v "$1" >/dev/null
}
ensure_pkg() { # COMMAND PACKAGE
    try_pkg "$1" "$2" || die "$1 not found: install $2"
}

timestamp() { date +%Y%m%d-%H%M%S; }

# Side by side (perf/kernel_cpu.sh, kernel_breakdown.sh, saturated.sh):
# ringkv --shards 1 (with $RINGKV_ARGS), a second ringkv build named "base"
# when BASELINE_BIN is set (before/after a change in one run), and
# redis-server, all on SERVER_CORES. Sets SERVERS ("ringkv [base] redis").
start_side_by_side() { # LOGPREFIX
    local prefix="$1"
    RINGKV_PORT="$(free_port)"
    # shellcheck disable=SC2086
    start_ringkv "$RINGKV_PORT" 1 "$prefix-ringkv.log" ${RINGKV_ARGS:-}
    RINGKV_PID="$SERVER_PID"
    SERVERS="ringkv redis"
    if [ -n "${BASELINE_BIN:-}" ]; then
        BASE_PORT="$(free_port)"
        # shellcheck disable=SC2086
        RINGKV_BIN="$BASELINE_BIN" start_ringkv "$BASE_PORT" 1 "$prefix-base.log" ${RINGKV_ARGS:-}
        BASE_PID="$SERVER_PID"
        SERVERS="ringkv base redis"
    fi
    REDIS_PORT="$(free_port)"
    start_redis "$REDIS_PORT" "$prefix-redis.log"
    REDIS_PID="$SERVER_PID"
}

# Sets port and pid for a server named in SERVERS.
side_by_side_server() { # NAME
    case "$1" in
    ringkv) port="$RINGKV_PORT" pid="$RINGKV_PID" ;;
    base) port="$BASE_PORT" pid="$BASE_PID" ;;
    redis) port="$REDIS_PORT" pid="$REDIS_PID" ;;
    *) die "unknown server $1" ;;
    esac
}

# The servers in this round's order: SERVERS, reversed on even rounds, so
# that a drift of the machine hits every server alike.
round_order() { # ROUND
    if [ $(($1 % 2)) = 0 ]; then echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' '; else echo "$SERVERS"; fi
}

# run_rounds: ROUNDS rounds of the caller's `one SERVER ROUND` over SERVERS
# in round_order, the load average logged before and after.
run_rounds() {
    local round s
    log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    for round in $(seq 1 "$ROUNDS"); do
        for s in $(round_order "$round"); do one "$s" "$round"; done
    done
    log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# CPU time of all the threads of a process in ns (schedstat: ns resolution,
# where utime/stime count 10 ms ticks).
cpu_ns() {
    local f t=0 a
    for f in /proc/"$1"/task/*/schedstat; do
        read -r a _ <"$f" 2>/dev/null || continue
        t=$((t + a))
    done
    echo "$t"
}

# Voluntary context switches of all the server's threads: how often it slept.
sleeps() {
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }'
}

# Minor page faults of the process (/proc/PID/stat field 10).
minflt() {
    local stat
    stat="$(cat "/proc/$1/stat")"
    echo "${stat##*) }" | awk '{ print $8 }'
}

# "utime stime" of a process (all threads), in clock ticks.
cpu_ticks() {
    local stat rest
    stat="$(cat "/proc/$1/stat")"
    rest="${stat##*) }"
    echo "$rest" | awk '{ print $12, $13 }'
}
