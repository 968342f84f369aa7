#!/usr/bin/env bash
# Builds the Debian package from this tree with dpkg-deb (no cargo-deb to install):
# the stripped binary of the `dist` profile, man pages and bash/zsh/fish completions
# generated from the clap definitions, the systemd user unit, the annotated example
# config, the JSON schema and the contrib files. Prints the path of the .deb.
#   scripts/build-deb.sh [OUTDIR]     (default: $CARGO_TARGET_DIR or target/, /debian)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
out=${1:-$target/debian}

cargo build --profile dist --locked -q
bin=$target/dist/syncmail
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
doc=$root/usr/share/doc/syncmail

install -Dm755 "$bin" "$root/usr/bin/syncmail"
"$bin" generate-manual "$stage/gen" >/dev/null
for page in "$stage"/gen/man/man1/*.1 "$stage"/gen/man/man5/*.5; do
    section=${page##*.}
    install -Dm644 "$page" "$root/usr/share/man/man$section/$(basename "$page")"
    gzip -9n "$root/usr/share/man/man$section/$(basename "$page")"
done
install -Dm644 "$stage/gen/completions/syncmail.bash" "$root/usr/share/bash-completion/completions/syncmail"
install -Dm644 "$stage/gen/completions/_syncmail" "$root/usr/share/zsh/vendor-completions/_syncmail"
install -Dm644 "$stage/gen/completions/syncmail.fish" "$root/usr/share/fish/vendor_completions.d/syncmail.fish"

# The user unit runs the packaged binary; everything else is the contrib unit as tested.
install -d "$root/usr/lib/systemd/user"
sed -e 's|^ExecStart=%h/.cargo/bin/syncmail |ExecStart=/usr/bin/syncmail |' \
    contrib/systemd/syncmail.service >"$root/usr/lib/systemd/user/syncmail.service"
chmod 644 "$root/usr/lib/systemd/user/syncmail.service"
grep -q '^ExecStart=/usr/bin/syncmail daemon$' "$root/usr/lib/systemd/user/syncmail.service"

install -Dm644 config/syncmail.example.toml "$doc/syncmail.example.toml"
install -Dm644 doc/json-schema.md "$doc/json-schema.md"
install -Dm644 README.md "$doc/README.md"
install -Dm644 contrib/README.md "$doc/contrib/README.md"
for dir in aerc neomutt launchd status-bar; do
    [ -d "contrib/$dir" ] || continue
    for f in contrib/"$dir"/*; do install -Dm644 "$f" "$doc/contrib/$dir/$(basename "$f")"; done
done
# The hooks are programs: /usr/share/syncmail/hooks/, named from the config.
for f in contrib/hooks/*; do install -Dm755 "$f" "$root/usr/share/syncmail/hooks/$(basename "$f")"; done
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: syncmail

Files: *
Copyright: the syncmail authors
License: MIT or Apache-2.0
 On Debian systems the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.
EOF

# Shared libraries the binary links, as Debian package dependencies.
depends=$(cd "$stage" && mkdir -p debian &&
    printf 'Source: syncmail\n\nPackage: syncmail\nArchitecture: any\n' >debian/control &&
    { dpkg-shlibdeps -O "$root/usr/bin/syncmail" 2>/dev/null || true; } | sed -n 's/^shlibs:Depends=//p')
install -d "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<EOF
Package: syncmail
Version: $version
Architecture: $arch
Maintainer: syncmail maintainers <maintainers@syncmail.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: ${depends:-libc6}
Section: mail
Priority: optional
Homepage: https://github.com/syncmail/syncmail
Description: two-way IMAP <-> Maildir sync daemon with IDLE push and POP3 polling
 syncmail mirrors IMAP accounts two ways into local Maildirs and polls POP3
 accounts into the same tree, with push in both directions (IMAP IDLE, a file
 watcher) and a journal in SQLite so that a crash or a cut connection never
 loses or duplicates a message. Every change and conflict is logged.
 .
 Start with "syncmail init", then "systemctl --user enable --now syncmail".
EOF

mkdir -p "$out"
deb=$out/syncmail_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz -z6 --build "$root" "$deb" >/dev/null
echo "$deb"
