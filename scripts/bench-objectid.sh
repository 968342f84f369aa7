#!/bin/sh
# One file per message (issue 18): an account where every message is in All Mail and
# half of them in one or two labels (folders holding copies), on the real Cyrus of the
# server matrix (OBJECTID), synced by syncmail and by mbsync (the same folders); bytes
# the server sent (counted by a proxy) and disk used (each inode once), side by side.
# BENCH_MESSAGES (default 400) sets the size. Needs root, the server cache
# (scripts/ensure-servers.sh) and mbsync (isync).
set -eu
cd "$(dirname "$0")/.."
scripts/ensure-servers.sh >/dev/null
exec cargo test --release --test suite matrix_objectid::benchmark -- --ignored --nocapture --test-threads=1 "$@"
