#!/usr/bin/env bash
# Installs what a syncmail script needs when it is missing, and nothing more:
#   ensure_deps demo   Dovecot's IMAP and POP3 servers (run privately on loopback), openssl
#   ensure_deps test   the same, GNU time (the hostile-server tests measure peak memory),
#                      the mail clients the integration tests drive (neomutt, aerc, tmux,
#                      notmuch), the sync tools whose Maildirs syncmail adopts (mbsync,
#                      OfflineIMAP), dpkg-dev and man-db for the .deb check, and a
#                      Secret Service (gnome-keyring, dbus-run-session, secret-tool) for
#                      the OAuth2 keyring test
# It checks the programs themselves (/usr/lib/dovecot/imap, not the `dovecot` command,
# which stays when dovecot-imapd is removed for another IMAP server). It installs with
# apt-get and never stops, disables or removes a service or a package: the tests and the
# demo run their own Dovecot instances on free ports, whatever the machine runs.
# Sourced by scripts/test.sh and scripts/demo.sh.

ensure_deps() {
    local what=${1:-test}
    local missing=()
    [ -x /usr/sbin/dovecot ] || missing+=(dovecot-core)
    [ -x /usr/bin/doveadm ] || missing+=(dovecot-core)
    [ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
    [ -x /usr/lib/dovecot/pop3 ] || missing+=(dovecot-pop3d)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    if [ "$what" = test ]; then
        [ -x /usr/bin/time ] || missing+=(time)
        # The mail-client tests drive a real neomutt and aerc in tmux, and run notmuch.
        command -v neomutt >/dev/null 2>&1 || missing+=(neomutt)
        command -v tmux >/dev/null 2>&1 || missing+=(tmux)
        command -v notmuch >/dev/null 2>&1 || missing+=(notmuch)
        command -v aerc >/dev/null 2>&1 || missing+=(aerc)
        # The adoption tests fill Maildirs with the real mbsync and OfflineIMAP.
        command -v mbsync >/dev/null 2>&1 || missing+=(isync)
        command -v offlineimap >/dev/null 2>&1 || missing+=(offlineimap3)
        # The .deb check: dpkg-shlibdeps for the Depends line, man -w for the pages.
        command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
        command -v man >/dev/null 2>&1 || missing+=(man-db)
        # The OAuth2 token-store test runs a real Secret Service in its own session bus.
        command -v dbus-run-session >/dev/null 2>&1 || missing+=(dbus)
        command -v gnome-keyring-daemon >/dev/null 2>&1 || missing+=(gnome-keyring)
        command -v secret-tool >/dev/null 2>&1 || missing+=(libsecret-tools)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    # One name once, in order.
    local unique=() p
    for p in "${missing[@]}"; do
        [[ " ${unique[*]} " == *" $p "* ]] || unique+=("$p")
    done
    echo "syncmail: installing ${unique[*]} (Debian packages, for scripts/$what)" >&2
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "syncmail: need root to install ${unique[*]}; run: apt-get install -y ${unique[*]}" >&2
            return 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq </dev/null
    # --no-remove: apt must fail rather than remove an installed package to make room
    # (e.g. another IMAP server that conflicts with Dovecot's).
    $sudo apt-get install -y -qq --no-remove "${unique[@]}" </dev/null >/dev/null || {
        echo "syncmail: apt-get install ${unique[*]} failed (nothing was removed); install them by hand" >&2
        return 1
    }
    # A system Dovecot that the install started is left running: the tests and the demo
    # use private instances on their own ports.
}
