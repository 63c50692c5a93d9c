#!/usr/bin/env bash
# Regenerate the fuzz seed corpus fuzz/seeds/ from real images (a counter, a
# threaded program, one with descriptors, one with pending signals and a
# process tree, see scripts/make-images.sh), each in the sparse form the
# fuzz targets read (fuzz/src/lib.rs): `KSPARSE1`, the file length, the ELF
# header, and the end of the file from the note segment or program headers
# on (the memory data in between, which the readers never read, becomes a
# hole); for a process tree `KSPARSE2`, the same pieces of the file and of
# each of its sub-images as extents.
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

def metadata_start(img):
    """Offset of the note segment or program headers, whichever is first."""
    phoff, = struct.unpack_from("<Q", img, 32)
    phnum, = struct.unpack_from("<H", img, 56)
    start, notes = phoff, None
    for i in range(phnum):
        p_type, _, p_offset = struct.unpack_from("<IIQ", img, phoff + 56 * i)
        p_filesz, = struct.unpack_from("<Q", img, phoff + 56 * i + 32)
        if p_type == 4:  # PT_NOTE
            start = min(start, p_offset)
            notes = (p_offset, p_filesz)
    return start, notes

def sub_images(img, notes):
    """(offset, len) of each sub-image of a process tree (format 1.4)."""
    off, size = notes
    at, end, subs = off, off + size, []
    while at + 12 <= end:
        namesz, descsz, kind = struct.unpack_from("<III", img, at)
        name = img[at + 12:at + 12 + namesz].rstrip(b"\0")
        desc = at + 12 + (namesz + 3) // 4 * 4
        if name == b"KCKPT" and kind == 0x4B430091:  # NT_KCKPT_TREE_PROCS
            for r in range(desc, desc + descsz, 72):
                state, = struct.unpack_from("<I", img, r + 20)
                offset, length = struct.unpack_from("<QQ", img, r + 32)
                if state == 1 and length > 0:
                    subs.append((offset, length))
        at = desc + (descsz + 3) // 4 * 4
    return subs

start, notes = metadata_start(data)
subs = sub_images(data, notes) if notes else []
if not subs:
    # KSPARSE1: the length, the ELF header, the end of the file.
    tail = data[start:]
    out = b"KSPARSE1" + struct.pack("<Q", len(data)) + data[:64] + tail
else:
    # KSPARSE2 (a tree): the same pieces of the file and of each sub-image.
    pieces = [(0, data[:64]), (start, data[start:])]
    for off, length in subs:
        sub = data[off:off + length]
        sub_start, _ = metadata_start(sub)
        pieces += [(off, sub[:64]), (off + sub_start, sub[sub_start:])]
    out = b"KSPARSE2" + struct.pack("<Q", len(data))
    for at, piece in pieces:
        out += struct.pack("<QI", at, len(piece)) + piece
with open(dst, "wb") as f:
    f.write(out)
print(f"{dst}: {len(data)} byte image, {len(out)} bytes kept")
PY
done
