#!/usr/bin/env bash
# Kill `kckpt dump` with SIGKILL at random moments and check that the target
# is never harmed (issue 7): it keeps running, is neither stopped nor traced,
# its own self-check keeps passing, and the output directory holds either
# nothing or (default mode, dump already finished) one complete image.
#
#   bash scripts/kill-dumper.sh [counter|memfill] [leave|kill] [N] [MAX_MS]
#
# counter: ../shared/workloads/counter.c (prints "count N acc N/2" every 100 ms);
# memfill: memfill 1024 (1 GiB, re-checks its checksum every 200 ms).
# Prints one line per trial and a summary; exits non-zero on any harm.
set -uo pipefail
cd "$(dirname "$0")/.."
workload=${1:-counter}
mode=${2:-leave}
trials=${3:-100}
max_ms=${4:-60}
KCKPT=${KCKPT:-target/release/kckpt}
work=$(mktemp -d /tmp/kckpt-kill.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=tests/programs
for w in counter memfill; do
    [ -x "$work/$w" ] || cc -O2 -o "$work/$w" "${WORKLOADS:-../shared/workloads}/$w.c" 2>/dev/null ||
        cc -O2 -o "$work/$w" "$src/$w.c" || exit 1
done
case $workload in
counter) args=(); ready='count 3 '; late_ms=400 ;;
memfill) args=(1024); ready='round 1 '; late_ms=1500 ;;
*) echo "unknown workload $workload" >&2; exit 2 ;;
esac
deaths=0 stopped=0 leftovers=0 images=0 aborted=0 bad=0
for i in $(seq 1 "$trials"); do
    out=$work/out.$i
    mkdir -p "$work/dir"
    # The workload must hold nothing kckpt refuses: close inherited fds >= 3.
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            [ "$fd" -gt 2 ] && eval "exec $fd>&-"
        done
        exec "$work/$workload" "${args[@]}" >"$out" 2>&1 </dev/null
    ) &
    pid=$!
    for _ in $(seq 1 600); do grep -q "$ready" "$out" && break; sleep 0.01; done
    delay_us=$(( (RANDOM * 32768 + RANDOM) % (max_ms * 1000 + 1) ))
    flags=()
    [ "$mode" = leave ] && flags=(--leave-running)
    "$KCKPT" dump -p "$pid" -o "$work/dir/img.kckpt" "${flags[@]}" 2>/dev/null &
    dumper=$!
    sleep "$(printf '0.%06d' "$delay_us")"
    kill -9 "$dumper" 2>/dev/null
    wait "$dumper" 2>/dev/null
    dumper_rc=$?
    sleep 0.05
    # Give the target time to print again (or die).
    before=$(wc -l <"$out")
    sleep "0.$late_ms"
    [ "$late_ms" -ge 1000 ] && sleep $((late_ms / 1000))
    verdict=ok
    files=$(ls -A "$work/dir")
    if kill -0 "$pid" 2>/dev/null && [ "$(awk '/^State/{print $2}' /proc/$pid/status)" != Z ]; then
        st=$(awk '/^State/{print $2}' /proc/$pid/status)
        tracer=$(awk '/^TracerPid/{print $2}' /proc/$pid/status)
        after=$(wc -l <"$out")
        if [ "$st" = t ] || [ "$st" = T ] || [ "$tracer" != 0 ]; then
            verdict="STOPPED($st,tracer=$tracer)"; stopped=$((stopped + 1))
        elif [ "$after" -le "$before" ]; then
            sleep 1
            [ "$(wc -l <"$out")" -le "$before" ] && { verdict="SILENT"; stopped=$((stopped + 1)); }
        fi
        if [ "$workload" = counter ] && ! awk '/^count/{ if ($4 != $2 / 2) exit 1 }' "$out"; then
            verdict="BADSTATE"; bad=$((bad + 1))
        fi
        if grep -q BAD "$out"; then verdict="BADSTATE"; bad=$((bad + 1)); fi
        # A complete image is fine in both modes (the dumper may die after
        # linking it, before killing or resuming the target).
        if [ "$files" = img.kckpt ] && "$KCKPT" info "$work/dir/img.kckpt" >/dev/null 2>&1; then
            verdict="$verdict, image"; images=$((images + 1))
        elif [ -n "$files" ]; then
            verdict="$verdict LEFT:$files"; leftovers=$((leftovers + 1))
        fi
        [ "$dumper_rc" = 0 ] && [ "$mode" = kill ] && verdict="$verdict (dump finished)"
        aborted=$((aborted + 1))
        kill -9 "$pid" 2>/dev/null
    else
        # The target is gone: acceptable only in the default mode with a
        # complete image under the final name and nothing else.
        if [ "$mode" = kill ] && [ "$files" = img.kckpt ] && "$KCKPT" info "$work/dir/img.kckpt" >/dev/null 2>&1; then
            verdict="image"; images=$((images + 1))
        else
            verdict="DIED($(tail -c 200 "$out" | tail -n 1)) files=[$files]"; deaths=$((deaths + 1))
        fi
    fi
    wait "$pid" 2>/dev/null
    printf '%4d %-7s %-7s delay %6d us: %s\n' "$i" "$workload" "$mode" "$delay_us" "$verdict"
    rm -rf "$work/dir" "$out"
done
echo "summary: $workload $mode trials=$trials killed-mid-dump-or-before=$aborted complete-images=$images deaths=$deaths stopped=$stopped bad-state=$bad leftovers=$leftovers"
[ $((deaths + stopped + bad + leftovers)) -eq 0 ]
