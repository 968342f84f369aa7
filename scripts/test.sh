#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and the integration tests, which
# start private Dovecot instances on loopback. Installs Dovecot first when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-deps.sh
ensure_deps

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked --no-fail-fast
