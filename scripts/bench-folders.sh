#!/usr/bin/env bash
# Many folders: FOLDERS folders of PER_FOLDER small messages (plus the usual two), the
# initial sync and then RUNS interleaved no-change passes, for syncmail, mbsync (FSync
# no) and, with SYNCMAIL_BASE set to another syncmail binary, that one too.
#
#   scripts/bench-folders.sh [FOLDERS] [PER_FOLDER] [RUNS]     defaults: 100 100 3
set -euo pipefail
cd "$(dirname "$0")/.."
FOLDERS=${1:-100}
PER_FOLDER=${2:-100}
RUNS=${3:-3}
. scripts/ensure-deps.sh
ensure_deps
. scripts/lib-dovecot.sh
. scripts/lib-bench.sh
bench_start folders 200
python3 - "$BENCH/server/mail/bench/Maildir" "$FOLDERS" "$PER_FOLDER" <<'PY'
import os, sys
root, folders, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for f in range(folders):
    d = os.path.join(root, f".F{f:03d}")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    open(os.path.join(d, "maildirfolder"), "w").close()
    for i in range(per):
        with open(os.path.join(d, "cur", f"{1700000000 + i}.M{i}P{f}.bench:2,S"), "w") as fh:
            fh.write(f"From: a@b\r\nSubject: {f} {i}\r\nMessage-ID: <{f}.{i}@x>\r\n\r\n" + "body line\r\n" * 200)
PY
chown -R "$MAIL_UID:$MAIL_GID" "$BENCH/server/mail/bench"
# Indexed by Dovecot once, sizes too, as bench_seed does, so no tool pays for the first
# indexing (the first tool to run used to: the seeded names carry no S= size).
dovecot_adm mailbox status -u bench "messages vsize" '*' >/dev/null
TOOLS="syncmail mbsync"; [ -n "${SYNCMAIL_BASE:-}" ] && TOOLS="syncmail base mbsync"
run() { # tool
    local r=$SHM/$1
    case $1 in
        mbsync) mbsync -q -c "$r.rc" -a ;;
        syncmail) "$SYNCMAIL" sync --config "$r.toml" ;;
        base) "$SYNCMAIL_BASE" sync --config "$r.toml" ;;
    esac
}
for tool in $TOOLS; do
    r=$SHM/$tool; mkdir -p "$r/Mail"
    bench_syncmail_toml "$r.toml" "$r"
    bench_mbsyncrc "$r.rc" "$r/Mail" no
    start=$(date +%s.%N); run "$tool" >/dev/null 2>&1
    echo "$tool initial $(python3 -c "print(round($(date +%s.%N) - $start, 2))") s"
    run "$tool" >/dev/null 2>&1
done
for _ in $(seq "$RUNS"); do
    for tool in $TOOLS; do
        start=$(date +%s.%N); run "$tool" >/dev/null 2>&1
        echo "$tool no-change $(python3 -c "print(round($(date +%s.%N) - $start, 3))") s"
    done
done
