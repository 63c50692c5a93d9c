#!/usr/bin/env bash
# Real kckpt images of small test programs, for the fuzz corpus
# (scripts/fuzz-corpus.sh) and the stub's mutation run
# (scripts/mutate-stub.sh):
#
#   bash scripts/make-images.sh OUTDIR
#
# Builds tests/programs/{counter,threads,files_epoll,procstate,tree_basic,format18,format19}.c into
# OUTDIR/bin, runs each, dumps it with target/release/kckpt (run
# `cargo build --release` first) and leaves OUTDIR/counter.kckpt (a
# counter), threads.kckpt (3 threads), files.kckpt (epoll, timerfd,
# eventfd, pipe and socketpair with unread data, signalfd, memfd) and
# procstate.kckpt (pending signals, rlimits, personality), tree.kckpt (a
# process tree: tests/programs/tree_basic.c), format18.kckpt (a locked
# socket filter and a seccomp filter, format 1.8), format19.kckpt (a tree
# with a memfd a child opened on its own and a group whose leader was
# reaped, format 1.9). Everything in
# OUTDIR is readable by every user (the mutation run restores as nobody).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

out=${1:?usage: make-images.sh OUTDIR}
kckpt=$PWD/target/release/kckpt
[ -x "$kckpt" ] || { echo "error: $kckpt missing: run cargo build --release first" >&2; exit 1; }
mkdir -p "$out/bin"
chmod 755 "$out" "$out/bin"
out=$(cd "$out" && pwd)

cc -O2 -o "$out/bin/counter" tests/programs/counter.c
cc -O2 -o "$out/bin/threads" tests/programs/threads.c -lpthread
cc -O2 -o "$out/bin/files_epoll" tests/programs/files_epoll.c
cc -O2 -o "$out/bin/procstate" tests/programs/procstate.c
cc -O2 -o "$out/bin/tree_basic" tests/programs/tree_basic.c
cc -O2 -o "$out/bin/format18" tests/programs/format18.c
cc -O2 -o "$out/bin/format19" tests/programs/format19.c
chmod 755 "$out"/bin/*

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# dump NAME PATTERN CMD...: start CMD (only fds 0-2), wait for a line
# matching PATTERN on its stdout, dump it to OUTDIR/NAME.kckpt (killing it).
dump() {
    local name=$1 pattern=$2 pid i
    shift 2
    # bash reports the killed job ("Killed") on stderr: not an error here.
    exec 4>&2 2>/dev/null
    without_extra_fds "$@" > "$out/$name.out" 2>&1 < "${STDIN:-/dev/null}" &
    pid=$!
    pids+=("$pid")
    for ((i = 0; i < 300; i++)); do
        grep -q "$pattern" "$out/$name.out" && break
        sleep 0.05
    done
    grep -q "$pattern" "$out/$name.out" || {
        echo "error: $name printed no '$pattern'" >&4
        exec 2>&4 4>&-
        return 1
    }
    "$kckpt" dump -p "$pid" -o "$out/$name.kckpt" 2>&4
    wait "$pid" || true
    exec 2>&4 4>&-
    chmod 644 "$out/$name.kckpt"
    # The program's stdout is a file the image reopens: it stays, writable
    # by whoever restores (the mutation run restores as nobody).
    chmod 666 "$out/$name.out"
    echo "$out/$name.kckpt"
}

dump counter '^count 3 ' "$out/bin/counter"
dump threads '^tick ' "$out/bin/threads" 3
dump files '^tick 3 ' "$out/bin/files_epoll"
# procstate waits for commands on stdin: a FIFO held open here.
# It stays (the image reopens it), readable and writable by everyone.
mkfifo -m 666 "$out/procstate.in"
exec 7<>"$out/procstate.in"
STDIN=$out/procstate.in dump procstate '^ready' "$out/bin/procstate"
exec 7>&-
# A process tree (format 1.4): a root, a zombie, two children and a
# grandchild ("g" prints last).
dump tree '^g ' "$out/bin/tree_basic"
# Format 1.8's per-process records: a locked socket filter and a seccomp
# filter (restorable by nobody: installed with no_new_privs).
dump format18 '^tick 2 ' "$out/bin/format18"
# Format 1.9's tree records: an ADOPTED slot and a GONE group leader.
dump format19 '^tick 2 ' "$out/bin/format19"
