#!/usr/bin/env bash
# Fuzz kckpt's image readers (issue 7) with cargo-fuzz (libFuzzer +
# AddressSanitizer), on the stable toolchain: RUSTC_BOOTSTRAP=1 lets it
# accept the -Z flags cargo-fuzz passes (-Zsanitizer=address, coverage
# instrumentation); no nightly toolchain is needed.
#
#   bash scripts/fuzz.sh [SECONDS [RUNS]]
#
# Runs each target (fuzz/fuzz_targets/: stub_reader, info) for SECONDS
# (default 60) or RUNS executions (default 100000), whichever comes first,
# from the committed seeds (fuzz/seeds/, scripts/fuzz-corpus.sh makes them)
# into a scratch corpus. RUNS=-1: no limit but time. CI runs the default;
# the documented long run is `bash scripts/fuzz.sh 3600 -1` (an hour per
# target). A crash, panic, leak or timeout (a single input running over 10 s)
# fails the run; libFuzzer then leaves the input in
# fuzz/artifacts/<target>/ (replay: RUSTC_BOOTSTRAP=1 cargo fuzz run -O
# <target> <file>, run in fuzz/). KCKPT_FUZZ_CORPUS=DIR keeps the grown
# corpus in DIR/<target> across runs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-60}
runs=${2:-100000}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || {
    echo "error: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 1
}
# The seeds must be images the readers accept, or the fuzzer starts from
# refusals only.
cargo test -q --release --lib
cargo fuzz build -O
scratch=$(mktemp -d /tmp/kckpt-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
corpus=${KCKPT_FUZZ_CORPUS:-$scratch/corpus}
# The info target writes each input to a file in the temporary directory.
mkdir -p "$scratch/tmp"
export TMPDIR=$scratch/tmp
status=0
for target in $(cargo fuzz list); do
    mkdir -p "$corpus/$target"
    echo "==== fuzz $target: ${seconds}s or $runs runs"
    # (libFuzzer's progress lines, one per new input, are left out.)
    if ! cargo fuzz run -O "$target" "$corpus/$target" seeds -- \
        -max_total_time="$seconds" -runs="$runs" -timeout=10 -print_final_stats=1 2>&1 |
        grep --line-buffered -v -E '^(#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)|")'; then
        echo "==== fuzz $target: FAILED (input in fuzz/artifacts/$target/)" >&2
        status=1
    fi
done
exit $status
