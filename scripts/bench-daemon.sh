#!/bin/sh
# Daemon push latency (100 server appends, 100 local flag changes: p50/p99 each way) and
# the idle footprint of a daemon with three accounts (RSS, CPU over BENCH_IDLE_SECS,
# default 60). Needs Dovecot, like the integration tests.
set -eu
cd "$(dirname "$0")/.."
exec cargo test --release --test suite daemon_bench -- --ignored --nocapture --test-threads=1 "$@"
