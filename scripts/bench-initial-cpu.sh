#!/usr/bin/env bash
# Where Dovecot's CPU goes when it serves an initial sync: syncmail's own initial sync
# into tmpfs, beside replays of its commands with `openssl s_client`, one variant at a
# time, interleaved. For each run: the wall time, the client's CPU, Dovecot's CPU (what
# its master reaped: the run's imap and imap-login processes) and the TCP segments the
# run sent on loopback (both directions, from `nstat`).
#
#   scripts/bench-initial-cpu.sh [MESSAGES] [RUNS]     (default 10000 5)
#
# The variants, two folders at once, one connection each, commands pipelined:
#   raw        SELECT, one UID FETCH 1:* BODY.PEEK[] (bench-sync.sh's raw fetch limit)
#   listed     raw after a listing with UID FLAGS RFC822.SIZE
#   batched    SELECT, UID FETCH in ranges of 500 with UID FLAGS INTERNALDATE BODY.PEEK[]
#   replay     what syncmail sends: ENABLE QRESYNC, SELECT, the listing with UID FLAGS
#              RFC822.SIZE MODSEQ, SELECT again, the batches
#   nosize     replay without RFC822.SIZE in the listing
#   syncmail   syncmail sync itself
# replay against syncmail is what the client's way of reading costs the server;
# replay against nosize what RFC822.SIZE does.
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${1:-10000}
RUNS=${2:-5}
. scripts/ensure-deps.sh
command -v nstat >/dev/null || { echo "nstat (iproute2) is needed" >&2; exit 1; }
. scripts/lib-dovecot.sh
. scripts/lib-bench.sh

bench_start initial-cpu "$MESSAGES"

# Each folder's half of the messages, in batches of 500 by UID.
half=$(( (MESSAGES + 1) / 2 ))
batches() {
    local s="" i=0
    while [ $((i * 500)) -lt "$half" ]; do
        s+="c$i UID FETCH $((i * 500 + 1)):$((i * 500 + 500)) ($1)\\r\\n"
        i=$((i + 1))
    done
    printf '%s' "$s"
}
variant() { # name commands (FOLDER is the folder)
    cat > "$BENCH/$1.sh" <<RAW
cmds='$2'
for folder in INBOX Archive; do
    printf "a LOGIN bench bench-password\r\n\${cmds//FOLDER/\$folder}z LOGOUT\r\n" |
        openssl s_client -quiet -ign_eof -connect "localhost:\$1" -CAfile "\$2" \
            -verify_return_error 2>/dev/null | wc -c &
done
wait
RAW
}
bodies=$(batches 'UID FLAGS INTERNALDATE BODY.PEEK[]')
variant raw 'b SELECT FOLDER\r\nc UID FETCH 1:* BODY.PEEK[]\r\n'
variant listed 'b SELECT FOLDER\r\nf UID FETCH 1:* (UID FLAGS RFC822.SIZE)\r\nc UID FETCH 1:* BODY.PEEK[]\r\n'
variant batched "b SELECT FOLDER\\r\\n$bodies"
variant replay "e ENABLE QRESYNC\\r\\nb SELECT FOLDER\\r\\nf UID FETCH 1:* (UID FLAGS RFC822.SIZE MODSEQ)\\r\\ng SELECT FOLDER\\r\\n$bodies"
variant nosize "e ENABLE QRESYNC\\r\\nb SELECT FOLDER\\r\\nf UID FETCH 1:* (UID FLAGS MODSEQ)\\r\\ng SELECT FOLDER\\r\\n$bodies"

# Per run: bench_measure's wall time (RESULTS) and both CPUs (CPU_RESULTS), and here
# the TCP segments.
segments=$BENCH/segments.tsv
: > "$segments"
for run in $(seq "$RUNS"); do
    for v in raw listed batched replay nosize syncmail; do
        echo "== run $run: $v"
        if [ "$v" = syncmail ]; then
            rm -rf "$SHM/s"
            bench_syncmail_toml "$SHM/s.toml" "$SHM/s"
            cmd=("$SYNCMAIL" sync --config "$SHM/s.toml")
        else
            cmd=(bash "$BENCH/$v.sh" "$IMAPS" "$BENCH/server/tls/ca.pem")
        fi
        sleep 0.5
        nstat -n >/dev/null
        bench_measure "$v" -- "${cmd[@]}"
        printf '%s\t%s\n' "$v" "$(nstat -z TcpOutSegs | awk '$1 == "TcpOutSegs" { print $2 }')" >> "$segments"
    done
done

echo
echo "$MESSAGES messages into tmpfs, median of $RUNS interleaved runs"
echo
python3 - "$RESULTS" "$CPU_RESULTS" "$segments" <<'PY'
import statistics, sys
rows = {}
# Each file holds one line per run, in the same order: the client, then its figures.
for lines in zip(*(open(f) for f in sys.argv[1:])):
    (v, wall, _rss), (_, client, server), (_, segs) = (l.split("\t") for l in lines)
    rows.setdefault(v, []).append([float(x) for x in (wall, client, server, segs)])
print("| client | wall s | client CPU s | Dovecot CPU s | TCP segments |")
print("|---|---|---|---|---|")
for v in ("raw", "listed", "batched", "replay", "nosize", "syncmail"):
    med = [statistics.median(c) for c in zip(*rows[v])]
    print(f"| {v} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} | {med[3]:.0f} |")
PY
