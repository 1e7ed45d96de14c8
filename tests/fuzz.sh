#!/usr/bin/env bash
# Coverage-guided fuzzing (AFL++ through cargo-afl, on the stable toolchain)
# of the code that reads what agencies and callers send: the CSV and NDJSON
# readers with validation and curation (and so every canonicaliser and the
# curated-line writer), the identifier canonicalisers and tokens, the
# comparison encodings, schema loading and the API's routing and query
# checks. The targets are fuzz/src/targets.rs; their seeds fuzz/corpus/.
#
#   tests/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   tests/fuzz.sh build     (install cargo-afl if missing and build only)
#
# run-all.sh builds in the background from its start (the instrumented
# build takes about 5 minutes on 2 cores, mostly while the test command
# waits on downloads and moto), then runs every target for 10 s; a longer
# run is, for example,
# `tests/fuzz.sh 3600 csv`. A crash fails the run and stays in
# target/fuzz/TARGET/default/crashes/: replay it with
# `fuzz/target/release/agencylink-fuzz TARGET < FILE`, copy it into
# fuzz/regressions/TARGET/ (every file there runs in `cargo test`, through
# crates/core/tests/fuzz_regressions.rs), and fix it.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_ONLY=0
if [ "${1:-}" = build ]; then
    BUILD_ONLY=1
fi
SECONDS_EACH=${1:-10}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(csv ndjson canonical schema http names)
fi

if ! command -v cargo-afl >/dev/null 2>&1; then
    echo "== installing cargo-afl (builds AFL++ for this toolchain)" >&2
    cargo install cargo-afl --locked --version 0.18.2
fi
# AFL++ itself, once per toolchain (cargo-afl's install usually did it).
cargo afl config --build >/dev/null 2>&1 || true

# Its own target directory: the instrumented build shares nothing with the
# workspace's, whatever CARGO_TARGET_DIR says.
BUILD_DIR="$PWD/fuzz/target"
echo "== fuzz: building the instrumented targets" >&2
(cd fuzz && CARGO_TARGET_DIR="$BUILD_DIR" cargo afl build --release --locked)
if [ "$BUILD_ONLY" = 1 ]; then
    exit 0
fi

OUT=target/fuzz
mkdir -p "$OUT"
failed=0
for t in "${TARGETS[@]}"; do
    rm -rf "${OUT:?}/$t"
    # No UI, no CPU governor or core-dump checks (a container has neither),
    # and a fixed run length.
    if ! AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
        cargo afl fuzz -i "fuzz/corpus/$t" -o "$OUT/$t" -V "$SECONDS_EACH" \
        -- "$BUILD_DIR/release/agencylink-fuzz" "$t" >"$OUT/$t.log" 2>&1; then
        echo "fuzz $t: afl-fuzz failed, see $OUT/$t.log" >&2
        failed=1
        continue
    fi
    stats="$OUT/$t/default/fuzzer_stats"
    execs=$(awk -F': ' '/^execs_done/ {print $2}' "$stats")
    found=$(awk -F': ' '/^corpus_found/ {print $2}' "$stats")
    crashes=$(find "$OUT/$t/default/crashes" -type f ! -name README.txt | wc -l)
    echo "fuzz $t: $execs runs in ${SECONDS_EACH} s, $found new paths, $crashes crashes" >&2
    if [ "$crashes" -gt 0 ]; then
        ls "$OUT/$t/default/crashes" >&2
        failed=1
    fi
done
exit $failed
