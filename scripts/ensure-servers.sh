#!/usr/bin/env bash
# Fetches the IMAP servers of the test matrix (issue 15) without installing them: Cyrus
# IMAP 3.6, Courier-IMAP 5.0 and GNU Mailutils imap4d 3.15, from Debian's packages.
#
# Debian's packages of these servers conflict with dovecot-imapd (they all provide
# `imap-server`), and Dovecot must stay installed. So the server packages are only
# downloaded (`apt-get download`) and unpacked (`dpkg-deb -x`) into a cache directory,
# one tree per server; the tests run the binaries from there (tests/suite/support/
# servers.rs), in a private mount namespace where a server insists on paths under /usr
# and /etc. Only their plain runtime libraries, which conflict with nothing, are
# installed with apt-get, after a dry run has shown that nothing would be removed.
#
# Idempotent: a tree whose stamp names the same packages is left alone, and nothing is
# asked of the network then. Run as root (CI is root); sourced by scripts/test.sh, or run
# directly. The cache is $SYNCMAIL_TEST_SERVERS, default /var/cache/syncmail-test-servers.

SYNCMAIL_TEST_SERVERS=${SYNCMAIL_TEST_SERVERS:-/var/cache/syncmail-test-servers}

# The packages unpacked into each tree. sasl2-bin brings saslpasswd2 for Cyrus's private
# sasldb; courier-authlib-userdb the userdb that holds Courier's users.
_servers_cyrus_debs=(cyrus-imapd cyrus-common sasl2-bin)
_servers_courier_debs=(courier-imap courier-base courier-authdaemon courier-authlib courier-authlib-userdb)
_servers_imap4d_debs=(mailutils-imap4d libmailutils9 mailutils-common)
# Their runtime libraries that a minimal Debian lacks; none provides `imap-server`.
# libsasl2-modules: Cyrus's AUTHENTICATE PLAIN; libgamin0: Courier's libfam.so.0.
_servers_libs=(libical3 libpcre3 libsasl2-modules libsasl2-modules-db libwrap0
    libcourier-unicode4 libgamin0 libltdl7 libgdbm6 libidn12 guile-3.0-libs
    libmariadb3 libgsasl18 libunistring2)
# The binaries the tests start, per tree: each must load with every library found.
_servers_cyrus_bins=(usr/lib/cyrus/bin/master usr/lib/cyrus/bin/imapd
    usr/lib/cyrus/bin/ctl_cyrusdb usr/sbin/saslpasswd2)
_servers_courier_bins=(usr/sbin/couriertcpd usr/bin/couriertls usr/bin/imapd
    usr/lib/courier/courier/imaplogin usr/lib/courier/courier-authlib/authdaemond
    usr/lib/courier/courier-authlib/makedatprog)
_servers_imap4d_bins=(usr/sbin/imap4d)

_servers_say() { echo "syncmail: $*" >&2; }

# Which of the libraries are missing (not installed).
_servers_missing_libs() {
    local p
    for p in "${_servers_libs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
}

_servers_install_libs() {
    local missing
    mapfile -t missing < <(_servers_missing_libs)
    [ ${#missing[@]} -eq 0 ] && return 0
    _servers_say "installing the matrix servers' libraries: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local plan
    if ! plan=$(apt-get install --simulate --no-install-recommends "${missing[@]}" </dev/null 2>&1); then
        apt-get update -qq </dev/null || true
        plan=$(apt-get install --simulate --no-install-recommends "${missing[@]}" </dev/null 2>&1) || {
            _servers_say "apt-get cannot plan installing ${missing[*]}:"; echo "$plan" >&2; return 1; }
    fi
    # These are libraries: installing them must never remove or replace anything (such as
    # dovecot-imapd). Refuse if the dry run says otherwise.
    if echo "$plan" | grep -qE '^Remv |^[0-9]+ upgraded, [0-9]+ newly installed, [1-9][0-9]* to remove'; then
        _servers_say "refusing: installing ${missing[*]} would remove packages:"
        echo "$plan" | grep -E '^Remv ' >&2
        return 1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null || {
        _servers_say "apt-get install ${missing[*]} failed"; return 1; }
}

# The .deb files of these packages in the cache, downloading those not there yet.
_servers_download() {
    local debs="$SYNCMAIL_TEST_SERVERS/debs" p need=()
    mkdir -p "$debs"
    for p in "$@"; do
        compgen -G "$debs/${p}_*.deb" >/dev/null || need+=("$p")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    _servers_say "downloading ${need[*]} (apt-get download; not installed)"
    # apt's sandbox user cannot write to a root-owned cache; download as root, quietly.
    (cd "$debs" && apt-get download -o APT::Sandbox::User=root "${need[@]}" </dev/null >/dev/null 2>&1) || {
        apt-get update -qq </dev/null || true
        (cd "$debs" && apt-get download -o APT::Sandbox::User=root "${need[@]}" </dev/null >&2) || {
            _servers_say "apt-get download ${need[*]} failed"; return 1; }
    }
}

# Unpack one tree unless its stamp already names exactly these packages' files.
_servers_unpack() {
    local kind=$1; shift
    local tree="$SYNCMAIL_TEST_SERVERS/$kind" debs="$SYNCMAIL_TEST_SERVERS/debs" files=() p f
    for p in "$@"; do
        f=$(compgen -G "$debs/${p}_*.deb" | sort -V | tail -n1)
        [ -n "$f" ] || { _servers_say "no .deb for $p in $debs"; return 1; }
        files+=("$(basename "$f")")
    done
    local want
    want=$(printf '%s\n' "${files[@]}")
    if [ -f "$tree/.syncmail-stamp" ] && [ "$(cat "$tree/.syncmail-stamp")" = "$want" ]; then
        return 0
    fi
    _servers_say "unpacking $kind into $tree"
    rm -rf "$tree.new"
    mkdir -p "$tree.new"
    for f in "${files[@]}"; do
        dpkg-deb -x "$debs/$f" "$tree.new" || { _servers_say "dpkg-deb -x $f failed"; return 1; }
    done
    echo "$want" >"$tree.new/.syncmail-stamp"
    rm -rf "$tree"
    mv "$tree.new" "$tree"
}

# Every binary the tests start loads: no library "not found".
_servers_check_bins() {
    local kind=$1; shift
    local tree="$SYNCMAIL_TEST_SERVERS/$kind" libpath b bad=""
    libpath=$(find "$tree" -name '*.so*' -printf '%h\n' | sort -u | paste -sd:)
    for b in "$@"; do
        [ -x "$tree/$b" ] || { bad+="$b is missing; "; continue; }
        local missing
        missing=$(LD_LIBRARY_PATH="$libpath" ldd "$tree/$b" 2>&1 | grep 'not found' | awk '{print $1}' | paste -sd' ')
        [ -z "$missing" ] || bad+="$b needs $missing; "
    done
    [ -z "$bad" ] || { _servers_say "$kind cannot run: $bad"; return 1; }
}

ensure_servers() {
    if [ "$(id -u)" -ne 0 ]; then
        _servers_say "the matrix servers (Cyrus, Courier, imap4d) run in private mount namespaces: run as root"
        return 1
    fi
    local lock="$SYNCMAIL_TEST_SERVERS/.lock"
    mkdir -p "$SYNCMAIL_TEST_SERVERS" || return 1
    (
        # Two test runs at once must not unpack over each other.
        flock 9
        _servers_install_libs || exit 1
        _servers_download "${_servers_cyrus_debs[@]}" "${_servers_courier_debs[@]}" \
            "${_servers_imap4d_debs[@]}" || exit 1
        _servers_unpack cyrus "${_servers_cyrus_debs[@]}" || exit 1
        _servers_unpack courier "${_servers_courier_debs[@]}" || exit 1
        _servers_unpack imap4d "${_servers_imap4d_debs[@]}" || exit 1
        _servers_check_bins cyrus "${_servers_cyrus_bins[@]}" || exit 1
        _servers_check_bins courier "${_servers_courier_bins[@]}" || exit 1
        _servers_check_bins imap4d "${_servers_imap4d_bins[@]}" || exit 1
    ) 9>"$lock"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -uo pipefail
    ensure_servers
fi
