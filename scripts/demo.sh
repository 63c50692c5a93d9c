#!/usr/bin/env bash
# A two-minute tour: checkpoint a running counter into one file, look at the
# file, and bring the counter back twice: with `kckpt restore`, and by
# executing the image itself through binfmt_misc (registered in a private
# user namespace, so the machine's own registrations stay untouched).
#
#   bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_tools cc unshare
ensure_rust

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }

say "building kckpt (cargo build --release)"
cargo build --release
kckpt=$PWD/target/release/kckpt
stub=$PWD/target/release/kckpt-stub

work=$(mktemp -d /tmp/kckpt-demo.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

say "building the counter test program"
cc -O2 -o "$work/counter" tests/programs/counter.c

say "starting counter (prints a count every 100 ms)"
without_extra_fds "$work/counter" > "$work/counter.log" &
pid=$!
sleep 1
tail -n 3 "$work/counter.log"

say "kckpt dump -p $pid -o counter.kckpt   (the counter is stopped once the image is complete)"
"$kckpt" dump -p "$pid" -o "$work/counter.kckpt"
wait "$pid" 2>/dev/null || true
pid=
echo "last line before the dump: $(tail -n 1 "$work/counter.log")"
ls -l "$work/counter.kckpt"

say "kckpt info counter.kckpt"
"$kckpt" info "$work/counter.kckpt"

say "kckpt restore counter.kckpt   (runs for 1 s; its stdout was counter.log, reopened at its offset)"
timeout -s KILL 1 "$kckpt" restore "$work/counter.kckpt" || true
echo "counter.log now ends with:"
tail -n 3 "$work/counter.log"

say "KCKPT_STDIO=inherit ./counter.kckpt   (binfmt_misc in a private user namespace; runs for 1 s; stdout: this terminal)"
cd "$work"
chmod +x counter.kckpt
KCKPT=$kckpt STUB=$stub unshare --user --map-root-user --mount sh -c '
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    "$KCKPT" binfmt register --stub "$STUB"
    "$KCKPT" binfmt status
    KCKPT_STDIO=inherit timeout -s KILL 1 ./counter.kckpt
' || true
cd - >/dev/null

say "done: both restores continued from the count of the last line before the dump"
