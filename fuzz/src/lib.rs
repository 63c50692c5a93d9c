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
//! (`scripts/fuzz-corpus.sh` makes them from real images).

use kckpt_image::read::{note_segment, parse_elf_header, EHDR_SIZE};
use kckpt_image::{FormatError, ImageView};
use kckpt_stub::verify::Refusal;

/// Magic of a sparse input.
pub const SPARSE_MAGIC: &[u8; 8] = b"KSPARSE1";
/// Largest file length a sparse input may claim (1 TiB): the `info` target
/// writes the file out, sparse.
pub const MAX_LEN: u64 = 1 << 40;

/// The image file an input stands for.
pub struct VirtualFile<'a> {
    /// File length.
    pub len: u64,
    head: &'a [u8],
    tail: &'a [u8],
}

impl<'a> VirtualFile<'a> {
    /// Decode a fuzz input (see the module documentation).
    pub fn new(data: &'a [u8]) -> Self {
        match data.strip_prefix(SPARSE_MAGIC.as_slice()) {
            Some(rest) => {
                let len = rest
                    .get(..8)
                    .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    .min(MAX_LEN);
                let rest = rest.get(8..).unwrap_or(&[]);
                let (head, tail) = rest.split_at(rest.len().min(EHDR_SIZE));
                VirtualFile { len, head, tail }
            }
            None => VirtualFile {
                len: data.len() as u64,
                head: data,
                tail: &[],
            },
        }
    }

    /// Where the tail starts in the file.
    fn tail_at(&self) -> u64 {
        self.len.saturating_sub(self.tail.len() as u64)
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
        let tail_at = self.tail_at();
        if at >= tail_at {
            if let Some(&b) = self.tail.get((at - tail_at) as usize) {
                return b;
            }
        }
        self.head.get(at as usize).copied().unwrap_or(0)
    }

    /// Write the file out at `path` (sparse).
    pub fn write_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(path)?;
        f.set_len(self.len)?;
        let head = &self.head[..self.head.len().min(self.len as usize)];
        f.write_all_at(head, 0)?;
        // The tail wins where the two overlap (as `byte` reads it).
        let tail = &self.tail[..self.tail.len().min(self.len as usize)];
        f.write_all_at(tail, self.tail_at())?;
        Ok(())
    }
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
}
