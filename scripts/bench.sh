#!/usr/bin/env bash
# Benchmark (not a test): checkpoint and restore memfill at several sizes and
# compare with gdb's gcore on the same process.
#
#   bash scripts/bench.sh            # all cases
#   KCKPT_BENCH_DIR=/big/disk bash scripts/bench.sh
#   KCKPT_BENCH_ONLY=threads-4 bash scripts/bench.sh   # one case (its label)
#   KCKPT_BENCH_REPEAT=5 bash scripts/bench.sh   # best of 5 for the checksum pairs
#
# Per case: start memfill, wait for "ready"; time `kckpt dump --leave-running`
# (MiB/s = MiB of memory stored in the image / time), image size apparent and
# on disk; time `gcore` on the same process and its core size; kill it;
# `kckpt restore` and time until the process is running again (its cmdline is
# memfill's once more) and until its first "round ... ok" checksum line (all
# memory read back and verified). Cases whose images do not fit on the disk
# or whose memory does not fit in RAM are skipped, and the table says so.
# The threads-4 case does the same with tests/programs/threads.c (four
# worker threads; "ready" = its first tick line, "ok" = the first tick line
# of the restored process, all five threads running again).
# What the checksums cost (format 1.2): each case also dumps with
# KCKPT_NO_CHECKSUM=1 (an image whose data carries no checksums, so its
# restore checks none) and restores that image eagerly; with
# KCKPT_BENCH_REPEAT=N both pairs run N times, alternating (with and
# without), and the table shows the best of each. "verify" is a lazy restore with KCKPT_VERIFY=1
# (all data checked before the address space changes).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_tools cc gdb gcore
ensure_rust
cargo build --release
kckpt=${CARGO_TARGET_DIR:-$PWD/target}/release/kckpt

dir=${KCKPT_BENCH_DIR:-$PWD/target/bench}
mkdir -p "$dir"
memfill=$dir/memfill
cc -O2 -o "$memfill" tests/programs/memfill.c
threads=$dir/threads
cc -O2 -o "$threads" tests/programs/threads.c -lpthread

pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -f "$dir"/*.kckpt "$dir"/core.* "$dir"/*.log
}
trap cleanup EXIT

now_ns() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
apparent() { du --apparent-size -B1 "$1" | cut -f1; }
ondisk() { du -B1 "$1" | cut -f1; }
avail_bytes() { df -B1 --output=avail "$dir" | tail -n 1 | tr -d ' '; }
mem_avail_bytes() { awk '/^MemAvailable:/ { printf "%.0f\n", $2 * 1024 }' /proc/meminfo; }

# Wait until FILE has a line matching REGEX (up to SECS seconds).
wait_line() {
    local file=$1 re=$2 secs=$3 i=0
    until grep -qE "$re" "$file" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt $((secs * 100)) ]; then return 1; fi
        sleep 0.01
    done
}

# Prefix each line of stdin with a nanosecond timestamp.
stamp() { while IFS= read -r line; do printf '%s %s\n' "$(now_ns)" "$line"; done; }

# time_restore IMAGE MODE PROGRAM OK_RE: restore with KCKPT_RESTORE_MODE=MODE
# and print "RUN OK": seconds until the process runs again (its cmdline is
# PROGRAM's once more) and until its first line matching OK_RE (for memfill:
# all memory read back and checked).
time_restore() {
    local img=$1 mode=$2 prog=$3 ok_re=$4 t0 run_ns ok_ns arg0= i=0
    t0=$(now_ns)
    KCKPT_RESTORE_MODE=$mode KCKPT_VERIFY=${verify:-0} "$kckpt" restore "$img" \
        > >(stamp > "$dir/restored.log") &
    local rpid=$!
    pids+=("$rpid")
    until [ "$arg0" = "$prog" ]; do
        IFS= read -r -d '' arg0 < "/proc/$rpid/cmdline" || true
        i=$((i + 1))
        if [ $i -gt 60000 ]; then echo "restore never ran" >&2; exit 1; fi
        [ "$arg0" = "$prog" ] || sleep 0.005
    done
    run_ns=$(( $(now_ns) - t0 ))
    wait_line "$dir/restored.log" "$ok_re" 600 \
        || { echo "restored $prog printed no ok line" >&2; cat "$dir/restored.log" >&2; exit 1; }
    ok_ns=$(( $(grep -m1 -E "$ok_re" "$dir/restored.log" | cut -d' ' -f1) - t0 ))
    kill -9 "$rpid" 2>/dev/null || true
    wait "$rpid" 2>/dev/null || true
    echo "$(secs $run_ns) $(secs $ok_ns)"
}

# best_restores IMAGE_A IMAGE_B MODE PROGRAM OK_RE: time_restore of both
# images, alternating, KCKPT_BENCH_REPEAT times (the load of a shared
# machine drifts: both get the same share of it); prints the best "RUN OK"
# pair (by RUN) of A, then of B.
best_restores() {
    local a=$1 b=$2 best_a= best_b= r t
    shift 2
    for r in $(seq "${KCKPT_BENCH_REPEAT:-1}"); do
        t=$(time_restore "$a" "$@")
        if [ -z "$best_a" ] || awk -v x="${t%% *}" -v y="${best_a%% *}" 'BEGIN { exit !(x < y) }'; then
            best_a=$t
        fi
        t=$(time_restore "$b" "$@")
        if [ -z "$best_b" ] || awk -v x="${t%% *}" -v y="${best_b%% *}" 'BEGIN { exit !(x < y) }'; then
            best_b=$t
        fi
    done
    echo "$best_a $best_b"
}

rows=()
# bench LABEL SIZE PCT [PROGRAM READY_RE OK_RE ARGS...]
bench() {
    local label=$1 size=$2 pct=$3
    local prog=${4:-$memfill} ready_re=${5:-'^ready'}
    local ok_re=${6:-' round [0-9]+ sum [0-9a-f]+ ok$'}
    local -a args=("${@:7}")
    [ ${#args[@]} -gt 0 ] || args=("$size" "$pct")
    if [ -n "${KCKPT_BENCH_ONLY:-}" ] && [ "$KCKPT_BENCH_ONLY" != "$label" ]; then return; fi
    [ "$size" != - ] || size=0
    local need=$(( size * 1048576 * 3 + (1 << 30) ))
    if [ "$(avail_bytes)" -lt "$need" ]; then
        rows+=("$(printf '%-14s skipped: needs %s GiB free in %s, has %s GiB' "$label" \
            $((need >> 30)) "$dir" $(( $(avail_bytes) >> 30 )))")
        return
    fi
    if [ "$(mem_avail_bytes)" -lt $(( size * 1048576 * 3 / 2 )) ]; then
        rows+=("$(printf '%-14s skipped: not enough free RAM' "$label")")
        return
    fi
    echo "== $label: $(basename "$prog") ${args[*]}" >&2
    without_extra_fds "$prog" "${args[@]}" > "$dir/orig.log" &
    local pid=$!
    pids+=("$pid")
    wait_line "$dir/orig.log" "$ready_re" 600 || { echo "$prog did not get ready" >&2; exit 1; }

    local t0 t1 dump_ns img="$dir/$label.kckpt" plain="$dir/$label-nosum.kckpt"
    local plain_ns= r ns
    for r in $(seq "${KCKPT_BENCH_REPEAT:-1}"); do
        rm -f "$img" "$plain"
        t0=$(now_ns)
        "$kckpt" dump -p "$pid" -o "$img" --leave-running >/dev/null
        t1=$(now_ns)
        ns=$((t1 - t0))
        [ -n "${dump_ns:-}" ] && [ "$dump_ns" -le "$ns" ] || dump_ns=$ns
        t0=$(now_ns)
        KCKPT_NO_CHECKSUM=1 "$kckpt" dump -p "$pid" -o "$plain" --leave-running >/dev/null
        t1=$(now_ns)
        ns=$((t1 - t0))
        [ -n "$plain_ns" ] && [ "$plain_ns" -le "$ns" ] || plain_ns=$ns
    done
    local img_app img_disk
    img_app=$(apparent "$img")
    img_disk=$(ondisk "$img")
    local rate
    rate=$(awk -v b="$img_disk" -v ns="$dump_ns" 'BEGIN { printf "%.0f", (b / 1048576) / (ns / 1e9) }')

    local gcore_ns core="$dir/core.$pid"
    t0=$(now_ns)
    gcore -o "$dir/core" "$pid" >/dev/null 2>&1
    t1=$(now_ns)
    gcore_ns=$((t1 - t0))
    local core_app core_disk
    core_app=$(apparent "$core")
    core_disk=$(ondisk "$core")
    rm -f "$core"

    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true

    local eager lazy verified
    eager=$(best_restores "$img" "$plain" read "$prog" "$ok_re")
    lazy=$(time_restore "$img" mmap "$prog" "$ok_re")
    verified=$(verify=1 time_restore "$img" mmap "$prog" "$ok_re")
    rm -f "$img" "$plain"

    local touched="$pct%"
    [ "$size" != 0 ] || { size=-; touched=-; }
    # shellcheck disable=SC2086 # "RUN OK" pairs split on purpose
    rows+=("$(printf '%-14s %8s %7s %8s %8s %9s %10s %10s | %8s %10s %10s | %7s %7s %7s %7s | %7s %7s | %7s' \
        "$label" "$size" "$touched" "$(secs $dump_ns)" "$(secs $plain_ns)" "$rate" "$(mib "$img_app")" \
        "$(mib "$img_disk")" "$(secs $gcore_ns)" "$(mib "$core_app")" "$(mib "$core_disk")" \
        $eager $lazy "${verified%% *}")")
}

bench 64M 64 100
bench 1G 1024 100
bench 4G 4096 100
bench 4G-10% 4096 10
bench threads-4 - - "$threads" '^tick' ' tick( [0-9]+){4}$' 4

echo
printf '%-14s %8s %7s %8s %8s %9s %10s %10s | %8s %10s %10s | %7s %7s %7s %7s | %7s %7s | %7s\n' \
    case "mem MiB" touched "dump s" "no sum" "MiB/s" "img MiB" "disk MiB" "gcore s" "core MiB" \
    "disk MiB" "run s" "ok s" "run ns" "ok ns" "lazy run" "lazy ok" "verify"
printf '%s\n' "${rows[@]}"
echo
echo "dump: kckpt dump --leave-running; no sum: the same with KCKPT_NO_CHECKSUM=1 (no data checksums);"
echo "MiB/s: on-disk image MiB / dump time;"
echo "img/core MiB: apparent size (du --apparent-size), disk MiB: allocated (du);"
echo "run s: kckpt restore until the process runs again; ok s: until its first checksum line;"
echo "run ns / ok ns: the same for the image without data checksums (nothing checked);"
echo "verify: lazy restore with KCKPT_VERIFY=1 (all data checked first) until the process runs;"
echo "lazy: the same with KCKPT_RESTORE_MODE=mmap (pages mapped from the image, read on demand)."
echo "The first restore reads an image the dump wrote with O_DIRECT (not in the page cache)."
