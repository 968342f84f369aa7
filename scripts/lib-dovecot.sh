#!/usr/bin/env bash
# Start a throwaway Dovecot in a directory, from tests/dovecot/dovecot.conf.in (the same
# template the tests use). Sourced by scripts/demo.sh and scripts/bench-sync.sh.
#   dovecot_start DIR USER PASSWORD   sets IMAP IMAPS POP3 POP3S DOVECOT_PID
#   dovecot_add_user USER PASSWORD    one more mail user (after dovecot_start)
#   dovecot_stop                      stops it
#   dovecot_adm ARGS...               doveadm against it

free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    echo "no free port" >&2; return 1
}

dovecot_start() {
    DOVECOT_DIR=$1
    local user=$2 password=$3 repo
    mkdir -p "$DOVECOT_DIR"
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    IMAP=$(free_port); IMAPS=$(free_port); POP3=$(free_port); POP3S=$(free_port)
    chmod 755 "$DOVECOT_DIR"
    mkdir -p "$DOVECOT_DIR"/{run,state,mail,tls}
    (
        cd "$DOVECOT_DIR/tls"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj "/CN=syncmail test CA" -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile ext -out server.pem 2>/dev/null
    )
    local internal_user internal_group login_user
    if [ "$(id -u)" -eq 0 ]; then
        internal_user=dovecot; internal_group=dovecot; login_user=dovenull
        MAIL_UID=$(id -u mail); MAIL_GID=$(id -g mail)
    else
        internal_user=$(id -un); internal_group=$(id -gn); login_user=$(id -un)
        MAIL_UID=$(id -u); MAIL_GID=$(id -g)
    fi
    mkdir -p "$DOVECOT_DIR/mail/$user"
    chown "$MAIL_UID:$MAIL_GID" "$DOVECOT_DIR/mail/$user"
    echo "$user:{PLAIN}$password:$MAIL_UID:$MAIL_GID::$DOVECOT_DIR/mail/$user" > "$DOVECOT_DIR/users"
    sed -e "s|@ROOT@|$DOVECOT_DIR|g" -e "s|@INSTANCE@|script-$$|g" \
        -e "s|@INTERNAL_USER@|$internal_user|g" -e "s|@INTERNAL_GROUP@|$internal_group|g" \
        -e "s|@LOGIN_USER@|$login_user|g" -e "s|@IMAP_PORT@|$IMAP|g" -e "s|@IMAPS_PORT@|$IMAPS|g" \
        -e "s|@POP3_PORT@|$POP3|g" -e "s|@POP3S_PORT@|$POP3S|g" \
        "$repo/tests/dovecot/dovecot.conf.in" > "$DOVECOT_DIR/dovecot.conf"
    /usr/sbin/dovecot -F -c "$DOVECOT_DIR/dovecot.conf" </dev/null 2>"$DOVECOT_DIR/master.stderr" &
    DOVECOT_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$IMAPS") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "dovecot did not start; see $DOVECOT_DIR/dovecot.log" >&2
    return 1
}

dovecot_add_user() {
    local user=$1 password=$2
    mkdir -p "$DOVECOT_DIR/mail/$user"
    chown "$MAIL_UID:$MAIL_GID" "$DOVECOT_DIR/mail/$user"
    echo "$user:{PLAIN}$password:$MAIL_UID:$MAIL_GID::$DOVECOT_DIR/mail/$user" >> "$DOVECOT_DIR/users"
}

dovecot_stop() {
    [ -n "${DOVECOT_PID:-}" ] && kill "$DOVECOT_PID" 2>/dev/null && wait "$DOVECOT_PID" 2>/dev/null
    DOVECOT_PID=""
}

dovecot_adm() { command doveadm -c "$DOVECOT_DIR/dovecot.conf" "$@"; }
