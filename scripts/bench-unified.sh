#!/usr/bin/env bash
# The unified inbox's cost, without a network: two accounts' INBOX of N messages each
# (written straight into their Maildirs), then `syncmail unified reconcile`:
#   first   links every message into the unified folder (2N hard links, one mapping row each)
#   noop    nothing changed: a scan of each side and the mapping read
#   flags   100 flag renames made in the unified folder, carried to the accounts
# Prints seconds and peak RSS (GNU time) per step, the median of ROUNDS fresh runs.
#   scripts/bench-unified.sh [N=10000] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
ROUNDS=${2:-3}
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
cargo build --release --locked -q
BIN=$PWD/target/release/syncmail

one_round() {
    local dir
    dir=$(mktemp -d /tmp/syncmail-bench-unified.XXXXXX)
    for account in work home; do
        mkdir -p "$dir/Mail/$account/INBOX"/{cur,new,tmp}
        python3 - "$dir/Mail/$account/INBOX/cur" "$account" "$N" <<'PY'
import os, sys
d, account, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    body = (f"From: a@example.com\r\nSubject: {account} {i}\r\nMessage-ID: <{account}-{i}@bench>\r\n"
            f"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n" + "x" * 3000 + "\r\n")
    flags = "S" if i % 3 else ""
    with open(os.path.join(d, f"1700000000.{account}{i}.bench:2,{flags}"), "w") as f:
        f.write(body)
PY
    done
    cat > "$dir/config.toml" <<CONF
[general]
maildir = "$dir/Mail"
state_dir = "$dir/state"

[[account]]
name = "work"
kind = "imap"
host = "localhost"
tls = "none"
user = "u"
password = "p"

[[account]]
name = "home"
kind = "imap"
host = "localhost"
tls = "none"
user = "u"
password = "p"

[unified]
path = "$dir/Mail/Unified/INBOX"
CONF
    chmod 600 "$dir/config.toml"
    step() {
        /usr/bin/time -f "%e %M" -o "$dir/time" "$BIN" unified reconcile --config "$dir/config.toml" \
            >"$dir/out" 2>&1 || { cat "$dir/out" >&2; exit 1; }
        read -r secs kib < "$dir/time"
        echo "$1 $secs $((kib / 1024))"
    }
    step first
    step noop
    (
        cd "$dir/Mail/Unified/INBOX/cur"
        files=(*)
        for f in "${files[@]:0:100}"; do mv "$f" "${f%%:2,*}:2,F${f##*:2,}"; done
    )
    step flags
    rm -rf "$dir"
}

for r in $(seq "$ROUNDS"); do one_round; done | sort -k1,1 -k2,2n | awk -v rounds="$ROUNDS" -v n="$N" '
    { secs[$1] = secs[$1] " " $2; rss[$1] = rss[$1] " " $3; count[$1]++ }
    END {
        printf "unified reconcile, 2 accounts x %d messages, median of %d rounds\n", n, rounds
        split("first noop flags", order, " ")
        for (i = 1; i <= 3; i++) {
            s = order[i]; split(substr(secs[s], 2), a, " "); split(substr(rss[s], 2), m, " ")
            mid = int((count[s] + 1) / 2)
            printf "  %-6s %6.2f s  peak RSS %d MiB\n", s, a[mid], m[mid]
        }
    }'
