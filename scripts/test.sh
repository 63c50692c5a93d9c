#!/usr/bin/env bash
# The full check CI runs (.ci/run calls this): installs what is missing on a
# fresh Debian machine (as root), then formatting, clippy, the release build,
# the aarch64 build of the no_std crates, every test, a short fuzzing run of
# the image readers (scripts/fuzz.sh) and the stub on 500 mutated images
# (scripts/mutate-stub.sh).
#
#   bash scripts/test.sh
#
# Exits non-zero if any step fails; steps after a failed fmt/clippy/aarch64
# step still run so one run shows every problem.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

failed=()
step() {
    local name=$1
    shift
    echo
    echo "==== $name: $*"
    if "$@"; then
        echo "==== $name: ok"
    else
        echo "==== $name: FAILED"
        failed+=("$name")
        return 1
    fi
}
summary() {
    echo
    if [ ${#failed[@]} -eq 0 ]; then
        echo "==== all steps passed"
        exit 0
    fi
    echo "==== failed steps: ${failed[*]}"
    exit 1
}

# --- setup ---
ensure_tools gdb gcore readelf strip unshare setpriv prlimit ipcrm python3 cc gcc g++ bindfs \
    qemu-aarch64 aarch64-linux-gnu-gcc gdb-multiarch \
    setsid sort gzip tmux nano less vim java javac make script redis-server redis-cli \
    dpkg-deb || exit 1
ensure_rust || exit 1
# cargo-fuzz (libFuzzer; g++ builds it) for scripts/fuzz.sh.
if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked || exit 1
fi
if command -v rustup >/dev/null; then
    for t in aarch64-unknown-linux-musl aarch64-unknown-linux-gnu; do
        rustup target list --installed | grep -qx "$t" || rustup target add "$t" || exit 1
    done
    for c in rustfmt clippy; do
        rustup component list --installed | grep -q "^$c" || rustup component add "$c" || exit 1
    done
fi

# --- checks ---
step fmt cargo fmt --all -- --check
step fmt-fuzz sh -c 'cd fuzz && cargo fmt -- --check'
step clippy cargo clippy --workspace --all-targets -- -D warnings
step build cargo build --release || summary
step aarch64 cargo build --release --target aarch64-unknown-linux-musl \
    -p kckpt-image -p kckpt-arch -p kckpt-stub
step aarch64-lib cargo build --release --target aarch64-unknown-linux-gnu -p kckpt --lib
step test cargo test --release --workspace --no-fail-fast
step package bash packaging/test-deb.sh
step fuzz bash scripts/fuzz.sh 60 100000
step mutate bash scripts/mutate-stub.sh 500 1
summary
