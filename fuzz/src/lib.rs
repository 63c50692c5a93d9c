//! Shared by the fuzz targets: how a fuzz input becomes an image file, and
//! the stub's reading sequence without system calls.
//!
//! An input is either a whole image (it starts with the ELF magic) or a
//! *sparse* image: `KSPARSE1`, the file length (u64, little endian), the
//! first 64 bytes of the file (the ELF header), then the bytes the file ends
//! with (program headers and notes; kckpt writes them last). Everything in
//! between reads as zeros, as the holes of a real image do. The readers
//! never read memory data, only check its offsets against the file length,
//! so a sparse input of a few kilobytes stands for an image of any size
//! (`scripts/fuzz-corpus.sh` makes them from real images). A process-tree
//! image (format 1.4) also has metadata inside the file, that of its
//! sub-images: its input is `KSPARSE2`, the file length (u64), then
//! extents, each a file offset (u64), a length (u32) and that many bytes
//! (the ELF header and the end of the file, and the same of every
//! sub-image); a later extent wins where two overlap.

use kckpt_image::read::{note_segment, parse_elf_header, EHDR_SIZE};
use kckpt_image::{FormatError, ImageView};
use kckpt_stub::verify::Refusal;

/// Magic of a sparse input.
pub const SPARSE_MAGIC: &[u8; 8] = b"KSPARSE1";
/// Magic of a sparse input with extents (a process-tree image, whose
/// sub-images' metadata is inside the file).
pub const EXTENTS_MAGIC: &[u8; 8] = b"KSPARSE2";
/// Largest file length a sparse input may claim (1 TiB): the `info` target
/// writes the file out, sparse.
pub const MAX_LEN: u64 = 1 << 40;
/// Most extents a `KSPARSE2` input may hold.
const MAX_EXTENTS: usize = 64;

/// The image file an input stands for.
pub struct VirtualFile<'a> {
    /// File length.
    pub len: u64,
    /// The bytes that are not zero: (file offset, bytes); a later extent
    /// wins where two overlap.
    extents: Vec<(u64, &'a [u8])>,
}

impl<'a> VirtualFile<'a> {
    /// Decode a fuzz input (see the module documentation).
    pub fn new(data: &'a [u8]) -> Self {
        if let Some(rest) = data.strip_prefix(EXTENTS_MAGIC.as_slice()) {
            return Self::with_extents(rest);
        }
        match data.strip_prefix(SPARSE_MAGIC.as_slice()) {
            Some(rest) => {
                let len = le64(rest).min(MAX_LEN);
                let rest = rest.get(8..).unwrap_or(&[]);
                let (head, tail) = rest.split_at(rest.len().min(EHDR_SIZE));
                let tail_at = len.saturating_sub(tail.len() as u64);
                VirtualFile {
                    len,
                    extents: vec![(0, head), (tail_at, tail)],
                }
            }
            None => VirtualFile {
                len: data.len() as u64,
                extents: vec![(0, data)],
            },
        }
    }

    /// `KSPARSE2`: the file length (u64), then extents, each its file
    /// offset (u64), its length (u32) and its bytes; a short last extent
    /// keeps what there is.
    fn with_extents(rest: &'a [u8]) -> Self {
        let len = le64(rest).min(MAX_LEN);
        let mut rest = rest.get(8..).unwrap_or(&[]);
        let mut extents = Vec::new();
        while rest.len() >= 12 && extents.len() < MAX_EXTENTS {
            let at = le64(rest);
            let n = u32::from_le_bytes(rest[8..12].try_into().unwrap_or([0; 4])) as usize;
            let bytes = &rest[12..];
            let (bytes, next) = bytes.split_at(n.min(bytes.len()));
            if at < len {
                let keep = (len - at).min(bytes.len() as u64) as usize;
                extents.push((at, &bytes[..keep]));
            }
            rest = next;
        }
        VirtualFile { len, extents }
    }

    /// Read at `offset` like `pread`: the number of bytes read (short at
    /// the end of the file).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> usize {
        let n = self.len.saturating_sub(offset).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = self.byte(offset + i as u64);
        }
        n
    }

    fn byte(&self, at: u64) -> u8 {
        for &(start, bytes) in self.extents.iter().rev() {
            if let Some(&b) = at.checked_sub(start).and_then(|i| bytes.get(i as usize)) {
                return b;
            }
        }
        0
    }

    /// Write the file out at `path` (sparse).
    pub fn write_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(path)?;
        f.set_len(self.len)?;
        // In order: a later extent wins where two overlap (as `byte` reads).
        for &(at, bytes) in &self.extents {
            let keep = self.len.saturating_sub(at).min(bytes.len() as u64) as usize;
            f.write_all_at(&bytes[..keep], at)?;
        }
        Ok(())
    }
}

/// The u64 (little endian) `bytes` start with, 0 when too short.
fn le64(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// What `kckpt-stub` does before changing anything, minus the system
/// calls: read the ELF header, the program headers and the note segment
/// (into buffers of the sizes the file claims, at most the reader's
/// limits), `ImageView::parse`, then the stub's own checks
/// (`kckpt_stub::verify`: window, thread count, registers, FP state).
pub fn stub_reads(file: &VirtualFile<'_>) -> Result<(), Refusal> {
    let fmt = Refusal::Format;
    let machine = kckpt_arch::ELF_MACHINE;
    let mut ehdr = [0u8; EHDR_SIZE];
    let n = file.read_at(&mut ehdr, 0);
    let elf = parse_elf_header(&ehdr[..n], file.len, machine).map_err(fmt)?;
    let mut table = vec![0u8; elf.phdrs_size()];
    if file.read_at(&mut table, elf.phoff) != table.len() {
        return Err(fmt(FormatError::Truncated));
    }
    let (offset, size) = note_segment(&table, file.len).map_err(fmt)?;
    let mut notes = vec![0u8; size as usize];
    if file.read_at(&mut notes, offset) != notes.len() {
        return Err(fmt(FormatError::Truncated));
    }
    // The field checks behind the checksums, as if the input were sealed
    // (a mutated input rarely is: this keeps them exercised).
    if let Ok(view) = ImageView::parse(&notes, machine, file.len) {
        let _ = kckpt_stub::verify::image(&view);
    }
    // What the stub runs: every metadata checksum first, then the rest.
    let head = &ehdr[..n.min(EHDR_SIZE)];
    let (view, _sums) =
        kckpt_image::checksum::check_image(head, &table, &notes, machine, file.len).map_err(fmt)?;
    kckpt_stub::verify::image(&view)?;
    // The messages that name strings from the image.
    let mut sink = 0usize;
    for vma in view.vmas.iter() {
        let name = view.string(vma.name).map_err(fmt)?;
        kckpt_image::escape::escaped(name, |piece| sink += piece.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed seed is an image both readers accept.
    #[test]
    fn seeds_are_accepted() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz/seeds") {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let file = VirtualFile::new(&data);
            assert_eq!(stub_reads(&file), Ok(()), "{}", path.display());
            let out = std::env::temp_dir().join(format!("kckpt-fuzz-seed-{}", std::process::id()));
            file.write_to(&out).unwrap();
            let rendered = kckpt::info::render(&out, false, false);
            let _ = std::fs::remove_file(&out);
            assert!(rendered.is_ok(), "{}: {:?}", path.display(), rendered.err());
            seen += 1;
        }
        assert!(seen >= 4, "only {seen} seeds in {}", dir.display());
    }

    #[test]
    fn sparse_input_reads_as_a_sparse_file() {
        let mut input = SPARSE_MAGIC.to_vec();
        input.extend_from_slice(&100u64.to_le_bytes());
        input.extend_from_slice(&[7u8; 64]);
        input.extend_from_slice(b"END");
        let f = VirtualFile::new(&input);
        let mut buf = [1u8; 110];
        assert_eq!(f.read_at(&mut buf, 0), 100);
        assert_eq!(&buf[..64], &[7u8; 64][..]);
        assert!(buf[64..97].iter().all(|&b| b == 0));
        assert_eq!(&buf[97..100], b"END");
        assert_eq!(f.read_at(&mut buf, 98), 2);
    }

    #[test]
    fn extents_read_as_a_sparse_file() {
        let mut input = EXTENTS_MAGIC.to_vec();
        input.extend_from_slice(&100u64.to_le_bytes());
        for (at, bytes) in [(0u64, &b"ab"[..]), (50, b"xyz"), (51, b"Q"), (98, b"ENDS")] {
            input.extend_from_slice(&at.to_le_bytes());
            input.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            input.extend_from_slice(bytes);
        }
        let f = VirtualFile::new(&input);
        let mut buf = [1u8; 110];
        assert_eq!(f.read_at(&mut buf, 0), 100);
        assert_eq!(&buf[..3], b"ab\0");
        assert_eq!(&buf[50..53], b"xQz");
        assert_eq!(&buf[98..100], b"EN");
        assert_eq!(buf[..100].iter().filter(|&&b| b != 0).count(), 7);
    }
}
