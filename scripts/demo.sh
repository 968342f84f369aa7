#!/usr/bin/env bash
# The demo: starts a throwaway Dovecot on loopback with sample mail (a nested folder, a
# non-ASCII one, flags), writes a syncmail config for it, and runs syncmail against it.
# Everything lives in one temp directory, removed at exit (KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-deps.sh
ensure_deps

DEMO=$(mktemp -d /tmp/syncmail-demo.XXXXXX)
chmod 755 "$DEMO"
DOVECOT_PID=""
cleanup() {
    [ -n "$DOVECOT_PID" ] && kill "$DOVECOT_PID" 2>/dev/null && wait "$DOVECOT_PID" 2>/dev/null
    if [ "${KEEP:-0}" = 1 ]; then echo "demo kept in $DEMO"; else rm -rf "$DEMO"; fi
}
trap cleanup EXIT

echo "== building syncmail"
cargo build --release --locked -q
SYNCMAIL=$PWD/target/release/syncmail

free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    echo "no free port" >&2; return 1
}
IMAP=$(free_port); IMAPS=$(free_port); POP3=$(free_port); POP3S=$(free_port)

echo "== making a test CA and a certificate for localhost"
mkdir -p "$DEMO"/{run,state,mail,tls}
(
    cd "$DEMO/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=syncmail demo CA" -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile ext -out server.pem 2>/dev/null
)

if [ "$(id -u)" -eq 0 ]; then
    INTERNAL_USER=dovecot; INTERNAL_GROUP=dovecot; LOGIN_USER=dovenull
    MAIL_UID=$(id -u mail); MAIL_GID=$(id -g mail)
else
    INTERNAL_USER=$(id -un); INTERNAL_GROUP=$(id -gn); LOGIN_USER=$(id -un)
    MAIL_UID=$(id -u); MAIL_GID=$(id -g)
fi
mkdir -p "$DEMO/mail/demo"
chown "$MAIL_UID:$MAIL_GID" "$DEMO/mail/demo"
echo "demo:{PLAIN}demo-password:$MAIL_UID:$MAIL_GID::$DEMO/mail/demo" > "$DEMO/users"
sed -e "s|@ROOT@|$DEMO|g" -e "s|@INSTANCE@|demo-$$|g" \
    -e "s|@INTERNAL_USER@|$INTERNAL_USER|g" -e "s|@INTERNAL_GROUP@|$INTERNAL_GROUP|g" \
    -e "s|@LOGIN_USER@|$LOGIN_USER|g" -e "s|@IMAP_PORT@|$IMAP|g" -e "s|@IMAPS_PORT@|$IMAPS|g" \
    -e "s|@POP3_PORT@|$POP3|g" -e "s|@POP3S_PORT@|$POP3S|g" \
    tests/dovecot/dovecot.conf.in > "$DEMO/dovecot.conf"

echo "== starting Dovecot on 127.0.0.1:$IMAPS (IMAPS) and :$IMAP (IMAP)"
/usr/sbin/dovecot -F -c "$DEMO/dovecot.conf" </dev/null 2>"$DEMO/master.stderr" &
DOVECOT_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$IMAPS") 2>/dev/null && break
    sleep 0.1
done
doveadm() { command doveadm -c "$DEMO/dovecot.conf" "$@"; }

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
ca_file = "$DEMO/tls/ca.pem"
user = "demo"
password_command = ["printf", "demo-password"]
folders = ["*", "!Junk"]
CONF

echo "== syncmail check-config --connect"
"$SYNCMAIL" check-config --connect --config "$DEMO/config.toml"

echo
echo "The demo server is checked. syncmail's sync engine is not built yet, so the demo"
echo "stops here rather than pretend; see README.md, 'Status'."
