#!/usr/bin/env bash
# Runs every ringkv test on a fresh Debian machine: installs redis-server and
# redis-tools (the differential oracle, redis-cli, redis-benchmark,
# redis-check-rdb) when missing, then builds and runs the whole cargo suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi
# Debian starts a system redis-server on install; tests start their own on free ports.
redis-server --version

cargo build --release --bin ringkv
# Unit, binary and integration tests (benches are compiled by clippy --all-targets).
cargo test --lib --bins --tests -- --test-threads=2
