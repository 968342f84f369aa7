#!/usr/bin/env bash
# The soak (issue 20): a running daemon over two accounts on private Dovecots, a seeded
# random schedule of a mail client on the Maildir, a second device on the server and
# faults (cut, stalled and slowed links, kill -9, a suspend, a server restart, a
# UIDVALIDITY change, a full disk), then the invariants checked against the actors'
# journal; one summary line at the end.
#
#   scripts/soak.sh [DURATION] [SEED]     DURATION: 90, 90s, 3m, 1h (default 3m)
#
# A failing run keeps its home (trace, daemon logs, Maildir, state) and prints where.
# Run as root to get the full-disk fault (it mounts a tmpfs); needs Dovecot.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-3m}
seed=${2:-20261205}
case "$duration" in
    *h) secs=$(( ${duration%h} * 3600 )) ;;
    *m) secs=$(( ${duration%m} * 60 )) ;;
    *s) secs=${duration%s} ;;
    *) secs=$duration ;;
esac
. scripts/ensure-deps.sh
ensure_deps
SOAK_SECS=$secs SOAK_SEED=$seed exec cargo test --locked --test suite \
    -- soak::soak --ignored --nocapture --test-threads=1
