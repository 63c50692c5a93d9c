#!/usr/bin/env bash
# The restore stub and kckpt info on mutated images (issue 7): real images of small
# programs (scripts/make-images.sh), mutated (bit flips, interesting values,
# truncation, edits of record fields and saved registers) and run through
# kckpt-stub by kckpt-mutate (tests/src/bin/kckpt-mutate.rs, which says what
# counts as a failure). Exits non-zero if any mutant made the stub hang,
# crash before its final jump, refuse untidily or leave a process behind.
#
#   bash scripts/mutate-stub.sh [COUNT [SEED]]    # default 500 mutants, seed 1
#
# CI runs the default; the long run is 20000 mutants (about an hour on two
# cores): bash scripts/mutate-stub.sh 20000 7
# KCKPT_MUTATE_KEEP=DIR keeps failing mutants (with a note of what was done
# to them) in DIR. Needs root only to run the stub as nobody (a mutant may
# name any file); as another user it runs the stub as that user.
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-500}
seed=${2:-1}
cargo build --release -q
work=$(mktemp -d /tmp/kckpt-mutate-images.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
bash scripts/make-images.sh "$work" > /dev/null
keep=()
if [ -n "${KCKPT_MUTATE_KEEP:-}" ]; then keep=(--keep "$KCKPT_MUTATE_KEEP"); fi
target/release/kckpt-mutate --stub target/release/kckpt-stub --count "$count" --seed "$seed" \
    "${keep[@]}" "$work"/*.kckpt
# The other reader: kckpt info (text, and --json --verify) on as many mutants.
target/release/kckpt-mutate --info target/release/kckpt --count "$count" --seed "$seed" \
    "${keep[@]}" "$work"/*.kckpt
