#!/usr/bin/env bash
# Builds the .deb, installs it with dpkg -i, checks what it installed (the binary runs,
# man finds the pages, the completions are where the shells look, systemd-analyze
# accepts the installed user unit) and removes it again with dpkg -r. Run by
# scripts/test.sh. It never replaces anything: when a syncmail package is installed
# already, or any file the package holds exists on this machine, it only builds.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
deb=$(bash scripts/build-deb.sh)
echo "   built $deb ($(du -k "$deb" | cut -f1) KiB) in $(($(date +%s) - started))s"

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
        echo "   not root and no password-less sudo: the package was built, not installed"
        exit 0
    fi
fi
if dpkg-query -W -f='${Status}' syncmail 2>/dev/null | grep -q 'install ok'; then
    echo "   a syncmail package is installed on this machine; left as it is (not reinstalled)"
    exit 0
fi
while read -r path; do
    if [ -e "$path" ] && [ ! -d "$path" ]; then
        echo "   $path exists on this machine; the package was built, not installed over it"
        exit 0
    fi
done < <(dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -n 's|^\./|/|p')

remove() { $sudo dpkg -r syncmail >/dev/null; }
$sudo dpkg -i "$deb" >/dev/null
trap remove EXIT

fail() { echo "syncmail: the installed package: $*" >&2; exit 1; }
/usr/bin/syncmail --version | grep -q "^syncmail " || fail "syncmail --version"
man -w syncmail >/dev/null || fail "man -w syncmail finds no page"
man -w syncmail.toml >/dev/null || fail "man -w syncmail.toml finds no page"
man -w syncmail-sync >/dev/null || fail "man -w syncmail-sync finds no page"
for f in /usr/share/bash-completion/completions/syncmail /usr/share/zsh/vendor-completions/_syncmail \
    /usr/share/fish/vendor_completions.d/syncmail.fish /usr/share/doc/syncmail/syncmail.example.toml \
    /usr/share/doc/syncmail/json-schema.md /usr/share/syncmail/hooks/notify-new-mail; do
    [ -s "$f" ] || fail "$f is missing"
done
if command -v readelf >/dev/null && readelf -S /usr/bin/syncmail | grep -q '\.symtab\|\.debug_'; then
    fail "/usr/bin/syncmail is not stripped"
fi
bash -c 'source /usr/share/bash-completion/completions/syncmail && complete -p syncmail' >/dev/null ||
    fail "the bash completion does not load"
unit=/usr/lib/systemd/user/syncmail.service
if command -v systemd-analyze >/dev/null; then
    home=$(mktemp -d)
    mkdir -p "$home/run"
    verify=$(HOME=$home XDG_RUNTIME_DIR=$home/run systemd-analyze verify --user "$unit" 2>&1) ||
        fail "systemd-analyze verify $unit: $verify"
    if grep -q 'syncmail.service' <<<"$verify"; then fail "systemd-analyze verify $unit: $verify"; fi
    rm -rf "$home"
fi
echo "   installed: /usr/bin/syncmail $(du -k /usr/bin/syncmail | cut -f1) KiB; $("/usr/bin/syncmail" --version)," \
    "$(dpkg -L syncmail | grep -c '/man/man.*\.gz$') man pages; unit verified; removing it"
