#!/usr/bin/env bash
# Build the Debian package: bash packaging/build-deb.sh [OUT_DIR]
# (default: target/debian). Writes kckpt_VERSION_ARCH.deb holding kckpt,
# the restore stub (/usr/lib/kckpt/kckpt-stub, and kckpt-stub-aarch64 when
# built: target/aarch64-unknown-linux-musl/release/kckpt-stub), libkckpt.a
# and kckpt.h, man pages and bash/zsh/fish completions (generated from the
# clap definitions by `kckpt generate`), the docs, a binfmt.d file for
# systemd-binfmt (the registration at every boot) and maintainer scripts
# that register at install and unregister at removal. Needs dpkg-deb and
# gzip. Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/debian}
cargo build --release --quiet
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
multiarch=$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
stage=$(mktemp -d "${TMPDIR:-/tmp}/kckpt-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/kckpt_${version}_$arch
install -D -m 0755 target/release/kckpt "$root/usr/bin/kckpt"
install -D -m 0755 target/release/kckpt-stub "$root/usr/lib/kckpt/kckpt-stub"
strip "$root/usr/lib/kckpt/kckpt-stub" "$root/usr/bin/kckpt"
foreign=target/aarch64-unknown-linux-musl/release/kckpt-stub
gen_args=()
if [ "$arch" != arm64 ] && [ -f "$foreign" ]; then
    install -D -m 0755 "$foreign" "$root/usr/lib/kckpt/kckpt-stub-aarch64"
    gen_args=(--aarch64-stub /usr/lib/kckpt/kckpt-stub-aarch64)
fi
install -D -m 0644 target/release/libkckpt.a "$root/usr/lib/$multiarch/libkckpt.a"
install -D -m 0644 kckpt.h "$root/usr/include/kckpt.h"
gen=$stage/gen
target/release/kckpt generate --stub /usr/lib/kckpt/kckpt-stub "${gen_args[@]}" "$gen"
for page in "$gen"/man/*.1; do
    install -D -m 0644 "$page" "$root/usr/share/man/man1/$(basename "$page")"
    gzip -9n "$root/usr/share/man/man1/$(basename "$page")"
done
install -D -m 0644 "$gen/completions/kckpt.bash" "$root/usr/share/bash-completion/completions/kckpt"
install -D -m 0644 "$gen/completions/_kckpt" "$root/usr/share/zsh/vendor-completions/_kckpt"
install -D -m 0644 "$gen/completions/kckpt.fish" "$root/usr/share/fish/vendor_completions.d/kckpt.fish"
install -D -m 0644 "$gen/binfmt/kckpt.conf" "$root/usr/lib/binfmt.d/kckpt.conf"
doc=$root/usr/share/doc/kckpt
install -D -m 0644 README.md "$doc/README.md"
for f in docs/*.md; do install -D -m 0644 "$f" "$doc/$(basename "$f")"; done
cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: kckpt
Files: *
License: MIT OR Apache-2.0
COPYRIGHT
mkdir -p "$root/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: kckpt
Version: $version
Architecture: $arch
Maintainer: kckpt developers <kckpt@localhost>
Section: admin
Priority: optional
Depends: libc6
Installed-Size: $size
Homepage: https://github.com/kckpt/kckpt
Description: checkpoint a running process into a file that runs itself
 kckpt dump saves a running Linux process (with its children, threads,
 files, sockets and memory) into one ELF core file that gdb reads;
 ./saved.kckpt restarts it where it was. The package registers the
 restore stub with binfmt_misc at install and at every boot.
CONTROL
mkdir -p "$out"
deb="$out/kckpt_${version}_$arch.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
