#!/usr/bin/env bash
# Shared by the benchmark scripts (after lib-dovecot.sh and dovecot_start with user
# `bench` under $BENCH/server):
#   bench_start NAME MESSAGES  builds the release binary ($SYNCMAIL), makes the work
#                         directories $BENCH (disk) and $SHM (tmpfs) and $RESULTS, all
#                         removed on exit, starts Dovecot and seeds MESSAGES messages
#   bench_measure FIELD... -- COMMAND...
#                         runs COMMAND under GNU time and appends "FIELD... secs rss_kib"
#                         (tab-separated) to $RESULTS; its output is in $BENCH/last.out.
#                         Appends "FIELD... tool_cpu_secs server_cpu_secs" to $CPU_RESULTS:
#                         COMMAND's user+system CPU, and Dovecot's for the run (what its
#                         master reaped meanwhile: the run's imap and imap-login processes)
#   bench_syncmail_toml FILE ROOT [LINE...]
#                         writes a syncmail config (0600) for user bench on the benchmark
#                         Dovecot into FILE: the Maildir in ROOT/Mail, the state in
#                         ROOT/state, no compression; each LINE is added to the account
#   bench_mbsyncrc RC MAILDIR FSYNC
#                         writes an mbsync config for user bench on the benchmark Dovecot
#                         into RC: the whole account into MAILDIR (SubFolders Verbatim,
#                         SyncState *), FSync yes or no
#   bench_offlineimaprc RC MAILDIR METADATA
#                         the same for OfflineIMAP (offlineimap3): one account, Maildir
#                         at MAILDIR, its state in METADATA, default fsync
#   bench_seed MESSAGES   MESSAGES messages of realistic sizes (most 2-8 KiB, ~13%
#                         100-300 KiB, ~2% near 1 MiB), half in INBOX, half in Archive,
#                         70% \Seen, each with a Message-ID; with SIZES=small every
#                         message is 1.5-3 KiB (a million fits on this machine's disks)

bench_start() {
    cargo build --release --locked -q
    SYNCMAIL=${CARGO_TARGET_DIR:-$PWD/target}/release/syncmail
    BENCH=$(mktemp -d /var/tmp/syncmail-bench.XXXXXX)
    chmod 711 "$BENCH"
    SHM=$(mktemp -d "/dev/shm/syncmail-$1.XXXXXX")
    RESULTS=$BENCH/results.tsv
    CPU_RESULTS=$BENCH/cpu.tsv
    trap 'dovecot_stop; rm -rf "$BENCH" "$SHM"' EXIT
    echo "== starting Dovecot and seeding $2 messages"
    dovecot_start "$BENCH/server" bench bench-password
    bench_seed "$2"
}

bench_measure() {
    local fields=()
    while [ "$1" != "--" ]; do fields+=("$1"); shift; done
    shift
    local server_before
    server_before=$(bench_server_cpu)
    /usr/bin/time -f "%e %M %U %S" -o "$BENCH/time.out" "$@" >"$BENCH/last.out" 2>"$BENCH/last.err" || {
        echo "${fields[*]} failed:" >&2; cat "$BENCH/last.out" "$BENCH/last.err" >&2; exit 1; }
    local secs kib user sys
    read -r secs kib user sys < "$BENCH/time.out"
    (IFS=$'\t'; printf '%s\t%s\t%s\n' "${fields[*]}" "$secs" "$kib") >> "$RESULTS"
    # The server's processes of the run exit as it logs out; let the master reap them.
    sleep 0.3
    (IFS=$'\t'; printf '%s\t%s\t%s\n' "${fields[*]}" "$(awk "BEGIN { print $user + $sys }")" \
        "$(awk "BEGIN { print $(bench_server_cpu) - $server_before }")") >> "$CPU_RESULTS"
}

# Dovecot's CPU seconds so far in processes its master has reaped (cutime + cstime); 0
# without a running Dovecot.
bench_server_cpu() {
    if [ -n "${DOVECOT_PID:-}" ] && [ -r "/proc/$DOVECOT_PID/stat" ]; then
        awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($16 + $17) / hz }' "/proc/$DOVECOT_PID/stat"
    else
        echo 0
    fi
}

bench_syncmail_toml() {
    local file=$1 root=$2
    shift 2
    {
        cat <<CONF
[general]
maildir = "$root/Mail"
state_dir = "$root/state"
[[account]]
name = "b"
kind = "imap"
host = "localhost"
port = $IMAPS
user = "bench"
password = "bench-password"
ca_file = "$BENCH/server/tls/ca.pem"
# mbsync cannot compress, and on loopback compression only costs CPU.
compress = false
CONF
        for line in "$@"; do printf '%s\n' "$line"; done
    } > "$file"
    chmod 600 "$file"
}

bench_mbsyncrc() {
    cat > "$1" <<CONF
FSync $3
IMAPAccount b
Host localhost
Port $IMAPS
User bench
Pass bench-password
SSLType IMAPS
CertificateFile $BENCH/server/tls/ca.pem

IMAPStore remote
Account b

MaildirStore local
Path $2/
Inbox $2/INBOX
SubFolders Verbatim

Channel b
Far :remote:
Near :local:
Patterns *
Create Near
Sync All
Expunge Both
SyncState *
CONF
}

bench_offlineimaprc() {
    cat > "$1" <<CONF
[general]
accounts = b
metadata = $3

[Account b]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = $2

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = $IMAPS
remoteuser = bench
remotepass = bench-password
ssl = yes
sslcacertfile = $BENCH/server/tls/ca.pem
maxconnections = 1
CONF
}

bench_seed() {
    # Written straight into the server's Maildir (fast), then indexed by Dovecot once so no
    # tool pays for the first indexing.
    python3 - "$BENCH/server/mail/bench/Maildir" "$1" "${SIZES:-realistic}" <<'PY'
import os, random, sys
root, n, sizes = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(42)
for folder in ("", ".Archive"):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, folder, sub), exist_ok=True)
open(os.path.join(root, ".Archive", "maildirfolder"), "w").close()
line = "The quick brown fox jumps over the lazy dog; 0123456789 abcdefghij.\r\n"
for i in range(n):
    r = rng.random()
    size = rng.randint(1536, 3072) if sizes == "small" else rng.randint(2048, 8192) if r < 0.85 else rng.randint(100_000, 300_000) if r < 0.98 else rng.randint(900_000, 1_000_000)
    head = (f"From: Sender {i % 97} <s{i % 97}@example.com>\r\nTo: bench@example.com\r\n"
            f"Subject: message {i}\r\nMessage-ID: <{i}.bench@example.com>\r\n"
            f"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n")
    # Whole lines only: a message cut between CR and LF ends in a bare CR, which no
    # real mail does and which the tools store differently.
    body = line * max(1, (size - len(head)) // len(line))
    folder = "" if i % 2 == 0 else ".Archive"
    flags = "S" if rng.random() < 0.7 else ""
    with open(os.path.join(root, folder, "cur", f"{1700000000 + i}.M{i}P1.bench:2,{flags}"), "w") as f:
        f.write(head + body)
PY
    chown -R "$MAIL_UID:$MAIL_GID" "$BENCH/server/mail/bench"
    dovecot_adm mailbox status -u bench "messages vsize" '*'
}
