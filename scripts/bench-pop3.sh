#!/usr/bin/env bash
# POP3 benchmark: syncmail against mpop and getmail6 (Debian packages), each fetching the
# same maildrop of N messages (default 2000) from one throwaway Dovecot over POP3S with
# the test CA into an empty Maildir, keeping the mail on the server. Each tool runs RUNS
# times (default 3) with fresh local state; the table shows the median wall time.
#   scripts/bench-pop3.sh    N=500 RUNS=5 scripts/bench-pop3.sh    TOOLS="syncmail mpop" ...
# KEEP=1 keeps the work directory. Missing tools: apt-get install -y mpop getmail6
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-deps.sh
ensure_deps
. scripts/lib-dovecot.sh

N=${N:-2000}
RUNS=${RUNS:-3}
PASSWORD=bench-password

for tool in mpop getmail; do
    command -v "$tool" >/dev/null || {
        echo "bench-pop3: $tool is missing; run: apt-get install -y mpop getmail6" >&2
        exit 1
    }
done

WORK=$(mktemp -d /tmp/syncmail-bench-pop3.XXXXXX)
chmod 711 "$WORK"
cleanup() {
    dovecot_stop
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "== building syncmail (release)"
cargo build --release --locked -q
SYNCMAIL=$PWD/target/release/syncmail

echo "== starting a throwaway Dovecot"
dovecot_start "$WORK/server" bench "$PASSWORD"
CA=$WORK/server/tls/ca.pem

echo "== seeding $N messages (1-24 KiB, some lines starting with a dot)"
# Let Dovecot create the Maildir with its own owner, then deliver as an MDA does.
dovecot_adm mailbox status -u bench messages INBOX >/dev/null
DROP=$WORK/server/mail/bench/Maildir
awk -v n="$N" -v dir="$DROP/tmp" 'BEGIN {
    srand(42)
    for (i = 1; i <= n; i++) {
        f = sprintf("%s/1790000000.B%dQ0.bench", dir, i)
        printf "From: Sender %d <s%d@example.com>\r\nTo: bench@example.com\r\n", i, i > f
        printf "Subject: message %d\r\nMessage-ID: <m%d@bench>\r\n", i, i > f
        printf "Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n" > f
        lines = 10 + int(rand() * 330)
        for (l = 0; l < lines; l++) {
            if (l % 23 == 0) printf ".%d a line that starts with a dot\r\n", l > f
            else printf "%06d %s\r\n", l, "The quick brown fox jumps over the lazy dog, again and again." > f
        }
        close(f)
    }
}'
chown -R "$MAIL_UID:$MAIL_GID" "$DROP/tmp"
mv "$DROP"/tmp/* "$DROP/new/"
# One read pass so every tool meets the same warm server (indexes built, files in cur/).
dovecot_adm fetch -u bench size.physical mailbox INBOX >/dev/null
TOTAL_KIB=$(du -skc "$DROP/new" "$DROP/cur" | tail -1 | cut -f1)
echo "   $N messages, $TOTAL_KIB KiB on the server"

# getmail refuses to deliver as root, so as root every tool runs as `nobody` alike.
AS=()
if [ "$(id -u)" -eq 0 ]; then
    AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi
# CPU seconds (user + system) too: on a shared machine wall time is noisy, CPU less so.
TIMER=()
[ -x /usr/bin/time ] && TIMER=(/usr/bin/time -f "%U %S")
as_user() {
    if [ ${#TIMER[@]} -gt 0 ]; then
        env HOME="$DIR" "${TIMER[@]}" -o "$DIR/cpu" "${AS[@]}" "$@"
    else
        env HOME="$DIR" "${AS[@]}" "$@"
    fi
}

maildir() { mkdir -p "$1"/{cur,new,tmp}; }

run_syncmail() { # DIR
    cat > "$1/config.toml" <<CONF
[general]
maildir = "$1/Mail"
state_dir = "$1/state"

[[account]]
name = "bench"
kind = "pop3"
host = "localhost"
port = $POP3S
tls = "implicit"
ca_file = "$CA"
user = "bench"
password = "$PASSWORD"
CONF
    chmod 600 "$1/config.toml"
    own "$1"
    as_user "$SYNCMAIL" sync --config "$1/config.toml" >"$1/out" 2>&1
    OUT_DIR=$1/Mail/bench/INBOX
}

run_mpop() { # DIR
    maildir "$1/Mail"
    cat > "$1/mpoprc" <<CONF
defaults
tls on
tls_starttls off
tls_trust_file $CA
account bench
host localhost
port $POP3S
user bench
auth user
password $PASSWORD
delivery maildir $1/Mail
keep on
only_new on
uidls_file $1/uidls
CONF
    chmod 600 "$1/mpoprc"
    own "$1"
    as_user mpop -q -C "$1/mpoprc" bench >"$1/out" 2>&1
    OUT_DIR=$1/Mail
}

run_getmail() { # DIR
    maildir "$1/Mail"
    mkdir -p "$1/state"
    cat > "$1/getmailrc" <<CONF
[retriever]
type = SimplePOP3SSLRetriever
server = localhost
port = $POP3S
username = bench
password = $PASSWORD
ca_certs = $CA

[destination]
type = Maildir
path = $1/Mail/

[options]
delete = false
read_all = false
verbose = 0
CONF
    own "$1"
    as_user getmail --getmaildir="$1/state" --rcfile="$1/getmailrc" >"$1/out" 2>&1
    OUT_DIR=$1/Mail
}

own() { [ ${#AS[@]} -eq 0 ] || chown -R nobody:nogroup "$1"; }

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

declare -A TIMES FAILS CPU
read -r -a TOOLS <<< "${TOOLS:-syncmail mpop getmail}"
echo "== $RUNS runs of each tool, interleaved, fresh local state every run"
for run in $(seq "$RUNS"); do
    for tool in "${TOOLS[@]}"; do
        dir=$WORK/$tool-$run
        DIR=$dir
        mkdir -p "$dir"
        sync  # start every run with clean page-cache writeback
        start=$(date +%s.%N)
        ok=1
        "run_$tool" "$dir" || ok=0
        end=$(date +%s.%N)
        got=$(find "$OUT_DIR/new" "$OUT_DIR/cur" -type f | wc -l)
        if [ "$ok" = 0 ] || [ "$got" -ne "$N" ]; then
            echo "   run $run $tool FAILED after $got of $N messages: $(tail -1 "$dir/out")" >&2
            # getmail6 loses SIGCHLD now and then on a busy machine ("waiting child pid
            # ... timed out"); its failed runs are shown, not timed. Ours must not fail.
            [ "$tool" = getmail ] || exit 1
            FAILS[$tool]=$(( ${FAILS[$tool]:-0} + 1 ))
            rm -rf "$dir"
            continue
        fi
        secs=$(echo "$end - $start" | bc -l)
        TIMES[$tool]+="$secs "
        cpu=$(awk '{ print $1 + $2 }' "$dir/cpu" 2>/dev/null || echo 0)
        CPU[$tool]+="$cpu "
        printf '   run %d %-9s %6.2f s  (%.2f s CPU)\n' "$run" "$tool" "$secs" "$cpu"
        rm -rf "$dir"
    done
done

echo
printf '| %-26s | %8s | %9s | %9s | %s\n' "tool ($N msgs, $TOTAL_KIB KiB)" "median s" "msgs/s" "CPU s" "runs (s)"
printf '|%s|%s|%s|%s|%s\n' "----------------------------" "----------" "-----------" "-----------" "---------"
for tool in "${TOOLS[@]}"; do
    case $tool in
        syncmail) label="syncmail $(git describe --always --dirty 2>/dev/null || true)" ;;
        mpop) label="mpop $(mpop --version | head -1 | awk '{print $3}')" ;;
        getmail) label="getmail6 $(getmail --version 2>&1 | awk '{print $2}' | head -1)" ;;
    esac
    failed=""
    [ -n "${FAILS[$tool]:-}" ] && failed=" (${FAILS[$tool]} failed runs)"
    if [ -z "${TIMES[$tool]:-}" ]; then
        printf '| %-26s | %8s | %9s | %9s | %s\n' "$label" "-" "-" "-" "all runs failed"
        continue
    fi
    med=$(echo "${TIMES[$tool]}" | tr ' ' '\n' | grep . | median)
    rate=$(echo "$N / $med" | bc -l)
    cpu=$(echo "${CPU[$tool]}" | tr ' ' '\n' | grep . | median)
    printf '| %-26s | %8.2f | %9.0f | %9.2f | %s\n' "$label" "$med" "$rate" "$cpu" "${TIMES[$tool]}$failed"
done
