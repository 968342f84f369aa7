#!/usr/bin/env bash
# Installs what syncmail's tests and demo need when it is missing: Dovecot (IMAP and
# POP3), openssl, GNU time (the hostile-server tests measure peak memory with it), and
# the mail clients the integration tests drive (neomutt, aerc, tmux, notmuch), and the
# sync tools whose Maildirs syncmail adopts (mbsync, OfflineIMAP), and a Secret Service
# (gnome-keyring, dbus-run-session, secret-tool) for the OAuth2 keyring test. Sourced by
# scripts/test.sh and scripts/demo.sh.

ensure_deps() {
    local missing=()
    command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
    [ -e /usr/lib/dovecot/pop3 ] || missing+=(dovecot-pop3d)
    command -v doveadm >/dev/null 2>&1 || [ -x /usr/bin/doveadm ] || missing+=(dovecot-core)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    [ -x /usr/bin/time ] || missing+=(time)
    # The mail-client tests drive a real neomutt and aerc in tmux, and run notmuch.
    command -v neomutt >/dev/null 2>&1 || missing+=(neomutt)
    command -v tmux >/dev/null 2>&1 || missing+=(tmux)
    command -v notmuch >/dev/null 2>&1 || missing+=(notmuch)
    command -v aerc >/dev/null 2>&1 || missing+=(aerc)
    # The adoption tests fill Maildirs with the real mbsync and OfflineIMAP.
    command -v mbsync >/dev/null 2>&1 || missing+=(isync)
    command -v offlineimap >/dev/null 2>&1 || missing+=(offlineimap3)
    # The OAuth2 token-store test runs a real Secret Service in its own session bus.
    command -v dbus-run-session >/dev/null 2>&1 || missing+=(dbus)
    command -v gnome-keyring-daemon >/dev/null 2>&1 || missing+=(gnome-keyring)
    command -v secret-tool >/dev/null 2>&1 || missing+=(libsecret-tools)
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "syncmail: installing ${missing[*]} (Debian packages)" >&2
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            echo "syncmail: need root to install ${missing[*]}; run: apt-get install -y ${missing[*]}" >&2
            return 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq </dev/null
    # policy-rc.d may refuse to start the system Dovecot; we only need the binaries.
    $sudo apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null || {
        echo "syncmail: apt-get install ${missing[*]} failed" >&2
        return 1
    }
    # The tests run private instances on their own ports; a system Dovecot that the
    # install started is left as it is (never stop a service the machine runs).
}
