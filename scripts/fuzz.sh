#!/usr/bin/env bash
# Fuzz every target for SECONDS each (default 60), then minimise the corpora in place.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain; installs cargo-fuzz when it is missing. The corpora
# (tests/fuzz/corpus/<target>/) are committed and replayed on stable by
# tests/suite/fuzz_corpora.rs. A crash stops the run with its input in
# tests/fuzz/artifacts/<target>/: fix the bug, add a unit test, and copy the input to
# tests/fuzz/regressions/<target>/ so the stable replay keeps checking it.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(pop3_responses utf7 maildir_name folder_name config)
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo +nightly install --locked cargo-fuzz
fi

# Our code forbids `unsafe`, so AddressSanitizer would only slow the runs down; overflow
# checks and debug assertions stay on, as in `cargo test`.
build=(--fuzz-dir tests/fuzz --sanitizer none --debug-assertions)
# One process, politely: builders share this machine. (`--jobs 1` and no `-jobs`: with
# `-jobs=1` libFuzzer forks a worker that logs to ./fuzz-0.log instead.)
libfuzzer=(-timeout=10 -rss_limit_mb=2048)

max_len() {
    case $1 in
        # Long enough to cross the 8 KiB line limit.
        pop3_responses) echo 16384 ;;
        config) echo 2048 ;;
        *) echo 1024 ;;
    esac
}

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${secs}s"
    mkdir -p "tests/fuzz/corpus/$t"
    status=0
    nice -n 10 cargo +nightly fuzz run "${build[@]}" --jobs 1 "$t" -- \
        "${libfuzzer[@]}" -max_len="$(max_len "$t")" -max_total_time="$secs" \
        2>"$logs/$t.log" || status=$?
    grep -E '^Done [0-9]+ runs' "$logs/$t.log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$logs/$t.log"
        echo "fuzz target $t failed; the input is in tests/fuzz/artifacts/$t/" >&2
        exit "$status"
    fi
done

for t in "${targets[@]}"; do
    before=$(find "tests/fuzz/corpus/$t" -type f | wc -l)
    # Set-cover merge over edges alone keeps a few hundred small files per target
    # (a plain merge that also counts hit counts kept over a thousand for config).
    nice -n 10 cargo +nightly fuzz cmin "${build[@]}" "$t" -- \
        -set_cover_merge=1 -use_counters=0 -max_len="$(max_len "$t")" -timeout=10 >"$logs/$t.cmin.log" 2>&1 ||
        { tail -n 20 "$logs/$t.cmin.log"; exit 1; }
    after=$(find "tests/fuzz/corpus/$t" -type f | wc -l)
    echo "== corpus $t: $before -> $after files, $(du -sh "tests/fuzz/corpus/$t" | cut -f1)"
done
