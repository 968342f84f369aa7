#!/usr/bin/env bash
# Adoption (rule 21): syncmail's first contact with a Maildir that mbsync filled.
#
#   scripts/bench-adopt.sh [MESSAGES] [RUNS]        defaults: 12000 3
#
# Seeds MESSAGES messages of realistic sizes into two folders on a local Dovecot (as
# bench-sync.sh does), fills a Maildir on tmpfs with the real mbsync (FSync no), then in
# each of RUNS rounds measures:
#   with-state     `syncmail sync` with no state of its own: pairs by mbsync's state
#   without-state  the same with mbsync's .mbsyncstate files hidden: pairs by
#                  Message-ID and size, reading every message file once
#   noop           a syncmail pass with nothing changed (after an adoption)
#   headers        reading the first 64 KiB of every message file once (`head`)
# Every adoption must transfer nothing ("fetched 0 (0 KiB), appended 0"). Prints the
# medians, peak RSS, and the two targets: with-state under 1 s, and without-state
# within 3x of (noop + headers).
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${1:-12000}
RUNS=${2:-3}
. scripts/ensure-deps.sh
ensure_deps
. scripts/lib-dovecot.sh
. scripts/lib-bench.sh

bench_start adopt "$MESSAGES"

MAIL=$SHM/Mail/b
mkdir -p "$MAIL"
bench_mbsyncrc "$SHM/mbsyncrc" "$MAIL" no
echo "== mbsync fills the Maildir"
mbsync -q -c "$SHM/mbsyncrc" -a
bench_syncmail_toml "$SHM/config.toml" "$SHM" 'folder_names = "modified-utf-7"'

adopt() { # scenario
    rm -rf "$SHM/state"
    bench_measure "$1" -- "$SYNCMAIL" sync --config "$SHM/config.toml"
    grep -q "fetched 0 (0 KiB), appended 0," "$BENCH/last.out" || {
        echo "$1 transferred mail:" >&2; cat "$BENCH/last.out" >&2; exit 1; }
    grep "first contact" "$BENCH/last.out" | sed 's/^/   /'
}

state_files() { find "$MAIL" -name "$1" -type f; }

: > "$RESULTS"
for run in $(seq "$RUNS"); do
    echo "== run $run"
    adopt with-state
    bench_measure noop -- "$SYNCMAIL" sync --config "$SHM/config.toml"
    for f in $(state_files .mbsyncstate); do mv "$f" "$f.hidden"; done
    adopt without-state
    for f in $(state_files .mbsyncstate.hidden); do mv "$f" "${f%.hidden}"; done
    bench_measure headers -- sh -c "find '$MAIL' -type f -path '*/cur/*' -o -type f -path '*/new/*' | xargs -d '\n' head -q -c 65536 >/dev/null"
done

python3 - "$RESULTS" "$MESSAGES" "$RUNS" <<'PY'
import statistics, sys
from collections import defaultdict
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
t, rss = defaultdict(list), defaultdict(list)
for scen, secs, kib in rows:
    t[scen].append(float(secs)); rss[scen].append(int(kib))
m = {s: statistics.median(v) for s, v in t.items()}
print(f"\n{sys.argv[2]} messages in two folders on tmpfs, median of {sys.argv[3]} runs\n")
print("| scenario | seconds | peak RSS MiB |")
print("|---|---|---|")
for s in ("with-state", "without-state", "noop", "headers"):
    print(f"| {s} | {m[s]:.2f} | {max(rss[s]) / 1024:.0f} |")
limit = 3 * (m["noop"] + m["headers"])
print(f"\nwith mbsync's state: {m['with-state']:.2f} s (target: under 1 s)")
print(f"without it: {m['without-state']:.2f} s (target: within 3x of noop + headers = {limit:.2f} s)")
PY
