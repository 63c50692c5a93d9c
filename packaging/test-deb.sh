#!/usr/bin/env bash
# Test the Debian package as a user would install it, without touching this
# machine's /usr or binfmt_misc: bash packaging/test-deb.sh [DEB]
# (default: build it with build-deb.sh).
# 1. Its contents (dpkg-deb -c / -I): binaries, stub, library and header,
#    man pages, completions, the binfmt.d file, the maintainer scripts.
# 2. A throwaway root: in a new user and mount namespace (root mapped to
#    root), a tmpfs with an overlay of /usr, copies of /etc and
#    /var/lib/dpkg, /proc, /dev, and its own binfmt_misc instance (a new
#    user namespace gets one). There: dpkg -i (the postinst registers the
#    stub), `man -w kckpt-dump`, a shell loop dumped with the installed
#    kckpt and restarted by running ./saved.kckpt (through the entry the
#    package made) counts on; dpkg -r removes the entry, dpkg -P leaves
#    no file of the package.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:-$(bash packaging/build-deb.sh)}
fail() { echo "test-deb: $*" >&2; exit 1; }
listing=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/kckpt ./usr/lib/kckpt/kckpt-stub ./usr/include/kckpt.h \
    ./usr/share/man/man1/kckpt.1.gz ./usr/share/man/man1/kckpt-dump.1.gz \
    ./usr/share/man/man1/kckpt-restore.1.gz ./usr/lib/binfmt.d/kckpt.conf \
    ./usr/share/bash-completion/completions/kckpt ./usr/share/zsh/vendor-completions/_kckpt \
    ./usr/share/fish/vendor_completions.d/kckpt.fish ./usr/share/doc/kckpt/copyright; do
    grep -qxF "$f" <<<"$listing" || fail "$f is not in $deb"
done
grep -q '/libkckpt.a$' <<<"$listing" || fail "libkckpt.a is not in $deb"
info=$(dpkg-deb -I "$deb")
for s in postinst prerm postrm; do
    grep -q " $s " <<<"$info" || fail "no $s in $deb"
done
conf=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/binfmt.d/kckpt.conf)
grep -q '^:kckpt-[a-z0-9_]*:M:0:\\x7f\\x45\\x4c\\x46.*:/usr/lib/kckpt/kckpt-stub:F$' <<<"$conf" ||
    fail "binfmt.d line: $conf"
echo "test-deb: contents ok"

work=$(mktemp -d "${TMPDIR:-/tmp}/kckpt-deb-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$deb" "$work/kckpt.deb"
cat > "$work/inside.sh" <<'INSIDE'
set -eu
fail() { echo "test-deb (inside): $*" >&2; exit 1; }
# --no-triggers: other packages' triggers (man-db's chown of its cache to
# user man) cannot run here, where only root is mapped; kckpt's own
# maintainer scripts run.
dpkg --no-triggers -i /tmp/kckpt.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i"; }
entry=kckpt-$(uname -m)
[ -e "/proc/sys/fs/binfmt_misc/$entry" ] ||
    fail "the postinst did not register $entry: $(ls /proc/sys/fs/binfmt_misc | tr '\n' ' ')"
grep -q '^interpreter /usr/lib/kckpt/kckpt-stub$' "/proc/sys/fs/binfmt_misc/$entry" ||
    fail "entry $entry: $(cat "/proc/sys/fs/binfmt_misc/$entry")"
man -w kckpt-dump >/dev/null 2>&1 || [ -f /usr/share/man/man1/kckpt-dump.1.gz ] || fail "no man page"
cd /tmp
: >/tmp/out
sh -c 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done' >>/tmp/out 2>/dev/null </dev/null &
pid=$!
while [ "$(wc -l </tmp/out)" -lt 3 ]; do sleep 0.05; done
kckpt dump -q -p "$pid" -o /tmp/saved.kckpt
chmod +x /tmp/saved.kckpt
wait "$pid" 2>/dev/null || true
last=$(tail -n1 /tmp/out)
./saved.kckpt &
r=$!
n=0
while [ "$(tail -n1 /tmp/out)" -lt $((last + 3)) ]; do
    n=$((n + 1)); [ $n -lt 100 ] || fail "the restored loop did not count on from $last: $(tail -n3 /tmp/out | tr '\n' ' ')"
    sleep 0.05
done
kill "$r"; wait "$r" 2>/dev/null || true
seq 1 $((last + 3)) >/tmp/want
head -n $((last + 3)) /tmp/out | cmp -s /tmp/want - || fail "the counts are not 1, 2, 3...: $(head -c 200 /tmp/out | tr '\n' ' ')"
dpkg --no-triggers -r kckpt >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -r"; }
left=$(ls /proc/sys/fs/binfmt_misc | grep '^kckpt-' || true)
[ -z "$left" ] || fail "dpkg -r left binfmt_misc entries: $left"
dpkg --no-triggers -P kckpt >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -P"; }
for f in /usr/bin/kckpt /usr/lib/kckpt /usr/lib/binfmt.d/kckpt.conf /usr/share/doc/kckpt /var/lib/kckpt; do
    [ ! -e "$f" ] || fail "purge left $f"
done
dpkg -s kckpt >/dev/null 2>&1 && fail "dpkg still knows kckpt after the purge"
echo "test-deb: installed, ran ./saved.kckpt (counted on from $last), removed, purged"
INSIDE
cat > "$work/root.sh" <<'ROOT'
set -eu
w=$1
# Descriptors this script inherited (beyond 0-2) would lead the dumped
# loop to processes outside the dump: closed.
for fd in /proc/self/fd/*; do
    n=${fd##*/}
    if [ "$n" -gt 2 ] 2>/dev/null; then eval "exec $n>&-" 2>/dev/null || true; fi
done
mount -t tmpfs tmpfs "$w/fs"
r=$w/fs/root
mkdir -p "$w/fs/upper" "$w/fs/work" "$r/usr" "$r/proc" "$r/dev" "$r/tmp" "$r/run" \
    "$r/var/lib" "$r/var/cache" "$r/var/log" "$r/root"
for l in bin lib lib32 lib64 sbin; do
    if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$r/$l"; fi
done
mount -t overlay overlay -o "userxattr,lowerdir=/usr,upperdir=$w/fs/upper,workdir=$w/fs/work" "$r/usr"
cp -a /etc "$r/etc" 2>/dev/null || true
cp -a /var/lib/dpkg "$r/var/lib/dpkg"
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount -t binfmt_misc binfmt_misc "$r/proc/sys/fs/binfmt_misc"
cp "$w/kckpt.deb" "$w/inside.sh" "$r/tmp/"
exec chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root sh /tmp/inside.sh
ROOT
mkdir "$work/fs"
unshare --user --map-root-user --mount --pid --fork bash "$work/root.sh" "$work"
