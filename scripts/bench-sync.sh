#!/usr/bin/env bash
# syncmail vs mbsync and OfflineIMAP on the same local Dovecot, in the same run.
#
#   scripts/bench-sync.sh [MESSAGES] [RUNS]        defaults: 10000 3
#
# Seeds MESSAGES messages of realistic sizes (most 2-8 KiB, ~13% 100-300 KiB, ~2% near
# 1 MiB) into two folders (INBOX, Archive), then for each storage (disk under /var/tmp,
# tmpfs under /dev/shm) and each of RUNS interleaved rounds measures, for syncmail,
# mbsync with its default FSync yes, mbsync with FSync no, and OfflineIMAP (offlineimap3,
# its default fsync, one connection):
#   initial   sync into an empty Maildir
#   noop      resync with nothing changed
#   flags100  resync after 100 flag changes on the server
# It prints the median seconds and peak RSS of each, and ratios against syncmail, then
# the CPU each run took in the tool and in Dovecot (on 2 cores they share them), keeps
# the raw rows in doc/bench/sync-MESSAGES.tsv and redraws doc/bench/sync.svg (time and
# peak RSS against mailbox size, from every size measured so far).
# TOOLS="syncmail mbsync-nofsync" and STORAGES=tmpfs narrow a run (e.g. the no-change
# resync at 100,000 messages, where mbsync's fsynced initial sync alone takes an hour).
# SIZES=small seeds 1.5-3 KiB messages instead (a million fit this machine), keeps
# its rows in doc/bench/small-MESSAGES.tsv and redraws doc/bench/small.svg.
# SCENARIOS=initial measures the initial sync alone: with RUNS above 1, repeated initial
# syncs of every tool, interleaved, on one seeded server (where a million small messages
# take minutes to seed). Its rows are added to that size's file, not put in its place.
# TOOLS may also name syncmail-base: the binary SYNCMAIL_BASE (say, main's), measured
# interleaved with this tree's to compare a change before and after; and raw: the
# loopback limit of an initial sync, one TLS connection per folder at once (openssl
# s_client), each a single `UID FETCH 1:* BODY.PEEK[]` whose bytes are only counted (no
# parsing, no files), so what is left is Dovecot's work, TLS and the loopback; and
# rawdisk: the storage's floor for a durable initial sync, the server's message files
# copied in with `cp -r` and made durable with one `sync -f` (no network, no per-file
# fsync).
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${1:-10000}
RUNS=${2:-3}
TOOLS=${TOOLS:-syncmail mbsync mbsync-nofsync offlineimap}
STORAGES=${STORAGES:-disk tmpfs}
SCENARIOS=${SCENARIOS:-initial noop flags100}
case $SCENARIOS in
    "initial noop flags100"|initial) ;;
    *) echo "bench-sync.sh: SCENARIOS is '$SCENARIOS'; it may only be 'initial' (or unset for all three)" >&2
       exit 2 ;;
esac
. scripts/ensure-deps.sh
ensure_deps
for tool in mbsync:isync /usr/bin/time:time offlineimap:offlineimap3; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || apt-get install -y -qq "${tool##*:}" </dev/null >/dev/null
done
. scripts/lib-dovecot.sh
. scripts/lib-bench.sh

bench_start bench "$MESSAGES"

# The 100 UIDs whose \Flagged flips for the flags100 scenario.
FLAG_UIDS=$(seq 1 $((MESSAGES / 200)) $((MESSAGES / 2)) | head -100 | paste -sd, -)

run_tool() { # tool storage_dir storage_name
    local tool=$1 dir=$2 storage=$3 local_root=$2/$1
    rm -rf "$local_root"; mkdir -p "$local_root"
    case $tool in
        syncmail|syncmail-base)
            bench_syncmail_toml "$local_root.toml" "$local_root"
            local bin=$SYNCMAIL; [ "$tool" = syncmail-base ] && bin=$SYNCMAIL_BASE
            cmd=("$bin" sync --config "$local_root.toml") ;;
        mbsync|mbsync-nofsync)
            local fsync=yes; [ "$tool" = mbsync-nofsync ] && fsync=no
            mkdir -p "$local_root/Mail"
            bench_mbsyncrc "$local_root.rc" "$local_root/Mail" "$fsync"
            cmd=(mbsync -q -c "$local_root.rc" -a) ;;
        offlineimap)
            mkdir -p "$local_root/Mail" "$local_root/meta"
            bench_offlineimaprc "$local_root.rc" "$local_root/Mail" "$local_root/meta"
            cmd=(offlineimap -c "$local_root.rc" -o -u quiet) ;;
        raw)
            # openssl s_client, one per folder at once, the commands pipelined (Dovecot
            # answers them in order); -ign_eof keeps reading after our input ends, until
            # the server's BYE closes the connection. The bytes are only counted.
            cat > "$local_root.sh" <<'RAW'
for folder in INBOX Archive; do
    printf 'a LOGIN bench bench-password\r\nb SELECT %s\r\nc UID FETCH 1:* BODY.PEEK[]\r\nd LOGOUT\r\n' "$folder" |
        openssl s_client -quiet -ign_eof -connect "localhost:$1" -CAfile "$2" \
            -verify_return_error 2>/dev/null | wc -c &
done
wait
RAW
            bench_measure raw initial "$storage" -- bash "$local_root.sh" "$IMAPS" "$BENCH/server/tls/ca.pem"
            # Both folders' mail came (a refused login or certificate is a few bytes).
            awk '$1 < 100000 { bad = 1 } END { exit bad || NR != 2 }' "$BENCH/last.out" || {
                echo "the raw fetch did not get the mail: $(cat "$BENCH/last.out")" >&2; exit 1; }
            rm -rf "$local_root" "$local_root.sh"
            return ;;
        rawdisk)
            # The storage's own floor: the server's files (in the page cache: the runs
            # before read them) copied in, then one sync of that filesystem.
            bench_measure rawdisk initial "$storage" -- sh -c \
                'cp -r "$1" "$2/copy" && sync -f "$2/copy"' sh "$BENCH/server/mail/bench/Maildir" "$local_root"
            rm -rf "$local_root"
            return ;;
    esac
    bench_measure "$tool" initial "$storage" -- "${cmd[@]}"
    if [ "$SCENARIOS" != initial ]; then
        bench_measure "$tool" noop "$storage" -- "${cmd[@]}"
        dovecot_adm flags add -u bench '\Flagged' mailbox INBOX uid "$FLAG_UIDS"
        bench_measure "$tool" flags100 "$storage" -- "${cmd[@]}"
        dovecot_adm flags remove -u bench '\Flagged' mailbox INBOX uid "$FLAG_UIDS"
    fi
    rm -rf "$local_root" "$local_root.toml" "$local_root.rc"
}

: > "$RESULTS"
: > "$CPU_RESULTS"
for storage in $STORAGES; do
    dir=$BENCH; [ $storage = tmpfs ] && dir=$SHM
    for run in $(seq "$RUNS"); do
        for tool in $TOOLS; do
            echo "== $storage run $run: $tool"
            run_tool "$tool" "$dir" "$storage"
        done
    done
done

mkdir -p doc/bench
# Small messages (SIZES=small) are another mailbox: their rows are kept apart, in their
# own chart.
kind=sync
[ "${SIZES:-}" = small ] && kind=small
rows=doc/bench/$kind-$MESSAGES.tsv
# Initial syncs alone add to the rows of that size (they are more runs of one scenario).
if [ "$SCENARIOS" = initial ]; then
    cat "$RESULTS" >> "$rows"
else
    cp "$RESULTS" "$rows"
fi
python3 - "$RESULTS" "$MESSAGES" "$RUNS" <<'PY'
import statistics, sys
from collections import defaultdict
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
t, rss = defaultdict(list), defaultdict(list)
for name, scen, stor, secs, kib in rows:
    t[(name, scen, stor)].append(float(secs)); rss[(name, scen, stor)].append(int(kib))
tools = [n for n in ("syncmail", "syncmail-base", "mbsync", "mbsync-nofsync", "offlineimap", "raw", "rawdisk") if any(k[0] == n for k in t)]
head = {"syncmail": "syncmail", "syncmail-base": "syncmail (base)", "mbsync": "mbsync (FSync yes)",
        "mbsync-nofsync": "mbsync (FSync no)", "offlineimap": "OfflineIMAP", "raw": "raw fetch limit",
        "rawdisk": "storage floor (cp, sync)"}
others = [n for n in tools if n != "syncmail"]
print(f"\n{sys.argv[2]} messages, median of {sys.argv[3]} interleaved runs (seconds; peak RSS MiB)\n")
print("| storage | scenario | " + " | ".join(head[n] for n in tools) + " | " + " | ".join("vs " + head[n] for n in others) + " |")
print("|---" * (2 + len(tools) + len(others)) + "|")
for stor in ("disk", "tmpfs"):
    for scen in ("initial", "noop", "flags100"):
        m = {n: statistics.median(t[(n, scen, stor)]) for n in tools if t[(n, scen, stor)]}
        if "syncmail" not in m:
            continue
        r = {n: max(rss[(n, scen, stor)]) / 1024 for n in m}
        cell = lambda n: f"{m[n]:.2f} ({r[n]:.0f})" if n in m else "-"
        ratio = lambda n: f"{m[n] / m['syncmail']:.2f}x" if n in m and m["syncmail"] > 0 else "-"
        print(f"| {stor} | {scen} | " + " | ".join(cell(n) for n in tools) + " | " + " | ".join(ratio(n) for n in others) + " |")
print("\nratios: the other tool's time / syncmail's (above 1 means syncmail is faster)")
PY
# Where a run's CPU goes: on a machine of few cores the tool and the server share them.
python3 - "$CPU_RESULTS" <<'PY'
import statistics, sys
from collections import defaultdict
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
cpu = defaultdict(list)
for name, scen, stor, tool, server in rows:
    cpu[(stor, scen, name)].append((float(tool), float(server)))
print("\nCPU seconds, median: the tool's own + Dovecot's for the run\n")
print("| storage | scenario | tool | tool CPU | Dovecot CPU | both |")
print("|---|---|---|---|---|---|")
order = {"initial": 0, "noop": 1, "flags100": 2}
for (stor, scen, name), v in sorted(cpu.items(), key=lambda kv: (kv[0][0], order[kv[0][1]], kv[0][2])):
    tool = statistics.median(x for x, _ in v)
    server = statistics.median(y for _, y in v)
    both = statistics.median(x + y for x, y in v)
    print(f"| {stor} | {scen} | {name} | {tool:.2f} | {server:.2f} | {both:.2f} |")
PY
python3 scripts/bench-chart.py doc/bench "doc/bench/$kind.svg" "$kind"
