#!/usr/bin/env bash
# Regenerate the fuzz seed corpus fuzz/seeds/ from real images (a counter, a
# threaded program, one with descriptors and one with pending signals, see
# scripts/make-images.sh), each in the sparse form the fuzz targets read
# (fuzz/src/lib.rs): `KSPARSE1`, the file length, the ELF header, and the
# end of the file from the note segment or program headers on (the memory
# data in between, which the readers never read, becomes a hole).
#
#   cargo build --release && bash scripts/fuzz-corpus.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/kckpt-fuzz-corpus.XXXXXX)
trap 'rm -rf "$work"' EXIT
bash scripts/make-images.sh "$work" > /dev/null
mkdir -p fuzz/seeds
rm -f fuzz/seeds/*.ksparse
for img in "$work"/*.kckpt; do
    name=$(basename "$img" .kckpt)
    /usr/bin/python3 - "$img" "fuzz/seeds/$name.ksparse" <<'PY'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
phoff, = struct.unpack_from("<Q", data, 32)
phnum, = struct.unpack_from("<H", data, 56)
start = phoff
for i in range(phnum):
    p_type, _, p_offset = struct.unpack_from("<IIQ", data, phoff + 56 * i)
    if p_type == 4:  # PT_NOTE
        start = min(start, p_offset)
tail = data[start:]
with open(dst, "wb") as f:
    f.write(b"KSPARSE1" + struct.pack("<Q", len(data)) + data[:64] + tail)
print(f"{dst}: {len(data)} byte image, {64 + len(tail)} bytes kept")
PY
done
