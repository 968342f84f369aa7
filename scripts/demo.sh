#!/usr/bin/env bash
# The demo: starts a throwaway Dovecot on loopback with sample mail (a nested folder, a
# non-ASCII one, flags) for an IMAP account and a POP3 one, writes a syncmail config with
# a unified inbox over both, and runs syncmail against it.
# Everything lives in one temp directory, removed at exit. KEEP=1 keeps it, and keeps its
# Dovecot running so the kept demo can be synced again; the script prints how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-deps.sh
ensure_deps demo

. scripts/lib-dovecot.sh

DEMO=$(mktemp -d /tmp/syncmail-demo.XXXXXX)
# Dovecot runs as its own users and must reach the server directory inside.
chmod 711 "$DEMO"
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo
        echo "== demo kept in $DEMO"
        if [ -n "${DOVECOT_PID:-}" ]; then
            echo "   its Dovecot (pid $DOVECOT_PID) keeps running on 127.0.0.1:$IMAPS (IMAPS) and :$POP3S (POP3S):"
            echo "   ${SYNCMAIL:-syncmail} --config $DEMO/config.toml sync     # sync it again"
            echo "   ${SYNCMAIL:-syncmail} --config $DEMO/config.toml status   # or run any command on it"
            echo "   kill $DOVECOT_PID; rm -rf $DEMO                        # stop it and remove the demo"
        fi
    else
        dovecot_stop
        rm -rf "$DEMO"
    fi
}
trap cleanup EXIT

echo "== building syncmail"
cargo build --profile dist --locked -q
SYNCMAIL=${CARGO_TARGET_DIR:-$PWD/target}/dist/syncmail

echo "== starting a throwaway Dovecot (test CA, certificate for localhost)"
dovecot_start "$DEMO/server" demo demo-password
echo "   IMAPS on 127.0.0.1:$IMAPS, IMAP on :$IMAP"
doveadm() { dovecot_adm "$@"; }
dovecot_add_user pat pat-password

echo "== seeding sample mail"
msg() {
    printf 'From: %s\r\nTo: demo@example.com\r\nSubject: %s\r\nMessage-ID: <%s@demo>\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n%s\r\n' \
        "$1" "$2" "$3" "$4"
}
doveadm mailbox create -u demo "Archive/2024" "Entwürfe" "Junk"
msg "Ada <ada@example.com>" "Welcome to syncmail" welcome "Your mail, in your Maildir." | doveadm save -u demo -m INBOX
msg "Bob <bob@example.com>" "Lunch?" lunch "Friday at noon?" | doveadm save -u demo -m INBOX
msg "Carol <carol@example.com>" "Q3 report" q3 "Attached." | doveadm save -u demo -m "Archive/2024"
msg "Dan <dan@example.com>" "Entwurf" draft "Noch nicht fertig." | doveadm save -u demo -m "Entwürfe"
msg "spam@example.net" "You won" spam "..." | doveadm save -u demo -m Junk
doveadm flags add -u demo '\Seen' mailbox INBOX uid 1
doveadm flags add -u demo '\Flagged' mailbox INBOX uid 2
# The old ISP account, only reachable over POP3.
msg "Eve <eve@oldisp.example>" "Your invoice" invoice "Paid, thanks." | doveadm save -u pat -m INBOX
msg "Fay <fay@oldisp.example>" "Photos" photos "From the weekend." | doveadm save -u pat -m INBOX

cat > "$DEMO/config.toml" <<CONF
[general]
maildir = "$DEMO/Mail"
state_dir = "$DEMO/syncmail-state"

[[account]]
name = "demo"
kind = "imap"
host = "localhost"
port = $IMAPS
tls = "implicit"
ca_file = "$DEMO/server/tls/ca.pem"
user = "demo"
password_command = ["printf", "demo-password"]
folders = ["*", "!Junk"]

[[account]]
name = "oldisp"
kind = "pop3"
host = "localhost"
port = $POP3S
tls = "implicit"
ca_file = "$DEMO/server/tls/ca.pem"
user = "pat"
password_command = ["printf", "pat-password"]

# One inbox for both accounts, still two-way (hard links to the accounts' files).
[unified]
path = "$DEMO/Mail/Unified/INBOX"
CONF

echo "== syncmail check-config --connect"
"$SYNCMAIL" check-config --connect --config "$DEMO/config.toml"

echo
echo "== syncmail sync (first pass: everything is fetched)"
"$SYNCMAIL" sync --config "$DEMO/config.toml"
echo
echo "== the local Maildir"
(cd "$DEMO/Mail" && find demo oldisp -type f | sort)
subjects() {
    local f name flags
    for f in "$1"/*/*; do
        name=$(basename "$f")
        case "$name" in *:2,*) flags="flags ${name##*:2,}" ;; *) flags="new" ;; esac
        printf '   %-10s %s\n' "$flags" "$(grep -m1 '^Subject:' "$f")"
    done
}
echo
echo "== the unified inbox: both accounts' INBOX in one Maildir"
subjects "$DEMO/Mail/Unified/INBOX"

echo
echo "== a change on each side: mark the welcome mail answered in the unified inbox (a"
echo "   rename, as mutt does), and mark 'Lunch?' read on the server from another client"
welcome=$(grep -l "Subject: Welcome" "$DEMO"/Mail/Unified/INBOX/*/* | head -1)
base=${welcome%%:2,*}
mv "$welcome" "$DEMO/Mail/Unified/INBOX/cur/$(basename "$base"):2,RS"
doveadm flags add -u demo '\Seen' mailbox INBOX uid 2
"$SYNCMAIL" sync --config "$DEMO/config.toml"
echo
echo "== the unified inbox now ('Lunch?' gained S from the server)"
subjects "$DEMO/Mail/Unified/INBOX"
echo
echo "== on the server now (the welcome mail has \\Answered \\Seen, set in the unified inbox)"
doveadm fetch -u demo 'uid flags hdr.subject' mailbox INBOX
echo
echo "== syncmail log (every change on each side and what was done with it)"
"$SYNCMAIL" log --config "$DEMO/config.toml"
echo
echo "== a second pass with nothing to do"
"$SYNCMAIL" sync --config "$DEMO/config.toml"
