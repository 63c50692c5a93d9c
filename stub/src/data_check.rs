//! Checking stored data against its checksums (format 1.2).
//!
//! Metadata is checked in `load` (`kckpt_image::checksum::check_image`).
//! Data is checked as it is read: [`read_checked`] reads a run chunk by
//! chunk and checks each chunk while it is still in the CPU's cache (the
//! calling thread and `fill`'s helpers each on their own share). Descriptor
//! data, and with `KCKPT_VERIFY=1` all memory too, is checked by
//! [`up_front`] before anything changes, so a mismatch there is a clean
//! refusal; a memory mismatch found while the address space is being
//! rebuilt ends the restore with one line too, but the process is lost.
#![allow(unsafe_code)] // Checking memory the stub has just filled.

use kckpt_image::checksum::{chunk_count, chunk_sum, ChunkHasher, Sums};
use kckpt_image::pagerefs::PageRefRecord;
use kckpt_image::{RunRecord, VmaRecord, MAX_CHUNK_SHIFT};

use crate::load::Image;
use crate::report::Msg;
use crate::statics::StaticBuf;
use crate::sys::{self, Errno};

/// Bytes read by one `pread` before its chunks are checked: small enough
/// to be still in the CPU's second-level cache when they are checked (the
/// checks took half the time they take after 4 MiB reads), large enough
/// that the system calls cost little.
const READ_PIECE: usize = 1 << 20;
static BUF: StaticBuf<{ 1 << MAX_CHUNK_SHIFT }> = StaticBuf::new();

/// Why a checked read stopped.
#[derive(Clone, Copy, Debug)]
pub enum ReadError {
    /// The read failed.
    Io(Errno),
    /// The chunk starting `at` bytes into the range does not match.
    Corrupt {
        /// Offset of the chunk in the range read.
        at: usize,
    },
}

/// The expected checksums of the chunks of a range: little-endian `u32`s
/// (a slice of the checksum note) and the chunk size. Empty: no check.
#[derive(Clone, Copy)]
pub struct Expected {
    /// The checksums, 4 bytes each.
    pub sums: &'static [u8],
    /// Bytes per chunk.
    pub chunk: usize,
}

impl Expected {
    /// No checksums (format 1.1 images, data written without them).
    pub const NONE: Expected = Expected {
        sums: &[],
        chunk: 0,
    };

    /// The checksums of `chunks` chunks from chunk `first` of the image.
    pub fn of(img: &Image, first: u64, chunks: u64) -> Expected {
        match &img.sums {
            Some(s) if s.has_data() => {
                let bytes = s.data_bytes();
                let start = (first as usize).saturating_mul(4).min(bytes.len());
                let end = start
                    .saturating_add((chunks as usize).saturating_mul(4))
                    .min(bytes.len());
                Expected {
                    sums: &bytes[start..end],
                    chunk: s.chunk_size() as usize,
                }
            }
            _ => Expected::NONE,
        }
    }

    /// The part from byte `at` (a multiple of the chunk size) on.
    pub fn from(&self, at: usize) -> Expected {
        if self.sums.is_empty() {
            return *self;
        }
        let start = (at / self.chunk).saturating_mul(4).min(self.sums.len());
        Expected {
            sums: &self.sums[start..],
            chunk: self.chunk,
        }
    }
}

/// Read `len` bytes at `offset` of `fd` into memory at `dest`, a few
/// MiB at a time, each chunk checked against `expected` right after it is
/// read (when there are checksums). Returns the bytes read (short at the
/// end of the file).
///
/// # Safety
/// `[dest, dest + len)` must be writable memory nothing else uses.
pub unsafe fn read_checked(
    fd: usize,
    dest: usize,
    len: usize,
    offset: u64,
    expected: Expected,
) -> Result<usize, ReadError> {
    // The same reads with or without checksums, so their cost is only the
    // checks (and pieces of a few MiB took less kernel time here than one
    // read of the whole run).
    let mut done = 0usize;
    let chunk = expected.chunk.max(1);
    let piece = READ_PIECE.max(chunk);
    let mut sums = expected.sums.chunks_exact(4);
    while done < len {
        let n = piece.min(len - done);
        // SAFETY: inside the caller's range.
        let got = unsafe { sys::pread_raw(fd, dest + done, n, offset + done as u64) }
            .map_err(ReadError::Io)?;
        if got != n {
            // The file ended early: the caller refuses a short read.
            return Ok(done + got);
        }
        if !expected.sums.is_empty() {
            // SAFETY: the `n` bytes were just read into the caller's range.
            let bytes = unsafe { core::slice::from_raw_parts((dest + done) as *const u8, n) };
            for (i, piece) in bytes.chunks(chunk).enumerate() {
                // More data than checksums: not possible in a validated
                // image; the rest is read unchecked.
                let Some(want) = sums.next() else { break };
                if chunk_sum(piece).to_le_bytes() != *want {
                    return Err(ReadError::Corrupt {
                        at: done + i * chunk,
                    });
                }
            }
        }
        done += n;
    }
    Ok(done)
}

/// Read the pages of `r` (a reference to pages an earlier process of the
/// tree stored, format 1.6) from the file at its outer offset into memory
/// at `dest`, checking them against its checksum.
///
/// # Safety
/// `[dest, dest + r.len)` must be writable memory nothing else uses.
pub unsafe fn read_shared(fd: usize, r: &PageRefRecord, dest: usize) -> Result<bool, Errno> {
    let len = r.len as usize;
    let mut hasher = ChunkHasher::new();
    let mut done = 0usize;
    while done < len {
        let n = READ_PIECE.min(len - done);
        // SAFETY: inside the caller's range.
        let got = unsafe { sys::pread_raw(fd, dest + done, n, r.outer_offset + done as u64) }?;
        if got != n {
            return Err(Errno(linux_raw_sys::errno::EIO));
        }
        // SAFETY: the `n` bytes were just read into the caller's range.
        hasher.update(unsafe { core::slice::from_raw_parts((dest + done) as *const u8, n) });
        done += n;
    }
    Ok(hasher.finish(&[]) == r.sum)
}

/// `image is corrupt (memory START-END shared with an earlier process at
/// file offset N does not match its checksum)`.
fn shared_corrupt(m: &mut Msg, r: &PageRefRecord) {
    m.s("image is corrupt (memory ")
        .hex(r.start)
        .s("-")
        .hex(r.start + r.len)
        .s(" shared with an earlier process, at file offset ")
        .dec(r.outer_offset)
        .s(", does not match its checksum)");
}

/// Read the shared pages of `vma` into it (built at `addr`); a mismatch
/// ends the restore with one line (the address space is replaced).
pub fn read_shared_pages(img: &Image, vma: &VmaRecord, addr: usize) -> Result<(), Errno> {
    for r in img.view.page_refs.iter() {
        if r.start < vma.start || r.start >= vma.end {
            continue;
        }
        let dest = addr + (r.start - vma.start) as usize;
        // SAFETY: inside the VMA just created, writable, used by nothing
        // else (validation put the reference inside this VMA).
        if !unsafe { read_shared(img.fd, &r, dest) }? {
            let mut m = Msg::new();
            m.push(img.path)
                .s(": restore failed after the address space was replaced: ");
            shared_corrupt(&mut m, &r);
            m.fail()
        }
    }
    Ok(())
}

/// Append `memory START-END (NAME) at file offset N` for `len` bytes at
/// address `addr` of `vma`.
fn memory_text(m: &mut Msg, img: &Image, vma: &VmaRecord, addr: u64, len: u64, offset: u64) {
    let name = img.view.string(vma.name).unwrap_or(&[]);
    m.s("memory ")
        .hex(addr)
        .s("-")
        .hex(addr + len)
        .s(" (")
        .push(if name.is_empty() { b"anonymous" } else { name })
        .s(") at file offset ")
        .dec(offset);
}

/// Read `run` of `vma` into memory at `dest` (inside the VMA being built),
/// checking it chunk by chunk from checksum `first_chunk` on (helper
/// threads take shares of large runs). A chunk that does not match ends
/// the restore with one line: the address space is already replaced.
#[inline(never)]
pub fn read_run(
    img: &Image,
    vma: &VmaRecord,
    run: &RunRecord,
    dest: usize,
    first_chunk: u64,
) -> Result<(), Errno> {
    let shift = img.sums.as_ref().map_or(12, Sums::chunk_shift);
    let expected = Expected::of(img, first_chunk, chunk_count(run.len, shift));
    let len = run.len as usize;
    // SAFETY: `dest` is the run's place in the VMA just created, writable
    // and used by nothing else (caller).
    match unsafe { crate::fill::read(img.fd, dest, len, img.at(run.offset), expected) } {
        Ok(n) if n == len => Ok(()),
        Ok(_) => Err(Errno(linux_raw_sys::errno::EIO)),
        Err(ReadError::Io(e)) => Err(e),
        Err(ReadError::Corrupt { at }) => {
            let at = at as u64;
            let mut m = Msg::new();
            m.push(img.path)
                .s(": restore failed after the address space was replaced: image is corrupt (");
            let n = (1u64 << shift).min(run.len - at);
            memory_text(&mut m, img, vma, run.start + at, n, run.offset + at);
            m.s(" does not match its checksum)").fail()
        }
    }
}

/// Check `len` bytes at `offset` against the checksums from `first` on,
/// reading them into `buf` a chunk at a time; the offset of the first bad
/// chunk in the range, if any.
fn bad_chunk(img: &Image, buf: &mut [u8], offset: u64, len: u64, first: u64) -> Option<u64> {
    let whole = Expected::of(img, first, u64::MAX);
    let chunk = whole.chunk as u64;
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(chunk) as usize;
        let one = Expected {
            sums: whole.from(done as usize).sums.get(..4).unwrap_or(&[]),
            chunk: whole.chunk,
        };
        // SAFETY: `buf` holds a whole chunk and nothing else uses it.
        match unsafe {
            read_checked(
                img.fd,
                buf.as_mut_ptr() as usize,
                n,
                img.at(offset + done),
                one,
            )
        } {
            Ok(got) if got == n => {}
            Ok(_) => crate::load::refuse(img.path, "image is truncated"),
            Err(ReadError::Io(e)) => Msg::new().s("cannot read ").push(img.path).errno(e).fail(),
            Err(ReadError::Corrupt { .. }) => return Some(done),
        }
        done += n as u64;
    }
    None
}

fn corrupt(img: &Image) -> Msg {
    let mut m = Msg::new();
    m.push(img.path).s(": image is corrupt (");
    m
}

/// Check the bytes every page reference in `refs` names (pages shared
/// with an earlier process of a tree, format 1.6) against its checksum,
/// before anything changes: the first mismatch is a refusal (exit 126).
/// The process that restores a tree checks every sub-image's references
/// this way before it forks anything, so a corrupt shared page is one
/// line from one process, not a late failure of each process sharing it.
pub fn shared_pages(
    path: &[u8],
    fd: usize,
    refs: impl Iterator<Item = PageRefRecord>,
    buf: &mut [u8],
) {
    for r in refs {
        let mut done = 0u64;
        let mut hasher = ChunkHasher::new();
        while done < r.len {
            let n = (r.len - done).min(buf.len() as u64) as usize;
            match sys::pread(fd, &mut buf[..n], r.outer_offset + done) {
                Ok(got) if got == n => hasher.update(&buf[..n]),
                Ok(_) => crate::load::refuse(path, "image is truncated"),
                Err(e) => Msg::new().s("cannot read ").push(path).errno(e).fail(),
            }
            done += n as u64;
        }
        if hasher.finish(&[]) != r.sum {
            let mut m = Msg::new();
            m.push(path).s(": ");
            shared_corrupt(&mut m, &r);
            m.fail();
        }
    }
}

/// The buffer the tree's up-front check of shared pages reads into (its
/// own: [`up_front`] takes `BUF` later in the same process).
static TREE_BUF: StaticBuf<{ 1 << 18 }> = StaticBuf::new();

/// The buffer for the tree's check of every sub-image's shared pages
/// (taken once, by the process that restores the tree).
pub fn tree_buf() -> &'static mut [u8] {
    match TREE_BUF.take() {
        Some(b) => &mut b[..],
        None => Msg::new()
            .s("kckpt-stub: internal error: buffer taken twice")
            .fail(),
    }
}

/// Check descriptor data (always) and, with `memory`, every memory run,
/// before anything changes: the first mismatch is a refusal (exit 126).
pub fn up_front(img: &Image, memory: bool) {
    let Some(sums) = img.sums.as_ref().filter(|s| s.has_data()) else {
        return;
    };
    let Some(buf) = BUF.take() else { return };
    let shift = sums.chunk_shift();
    let mut next = 0u64;
    for vma in img.view.vmas.iter() {
        for run in img.view.runs_of(&vma) {
            if memory {
                if let Some(at) = bad_chunk(img, buf, run.offset, run.len, next) {
                    let n = sums.chunk_size().min(run.len - at);
                    let mut m = corrupt(img);
                    memory_text(&mut m, img, &vma, run.start + at, n, run.offset + at);
                    m.s(" does not match its checksum)").fail();
                }
            }
            next += chunk_count(run.len, shift);
        }
    }
    if memory {
        shared_pages(img.path, img.fd, img.view.page_refs.iter(), buf);
    }
    for fd in img.view.fds.iter() {
        if let Some(at) = bad_chunk(img, buf, fd.data_offset, fd.data_len, next) {
            corrupt(img)
                .s("data of fd ")
                .dec(fd.fd.into())
                .s(" at file offset ")
                .dec(fd.data_offset + at)
                .s(" does not match its checksum)")
                .fail();
        }
        next += chunk_count(fd.data_len, shift);
    }
    for e in img.view.extents.iter() {
        if let Some(at) = bad_chunk(img, buf, e.data_offset, e.len, next) {
            corrupt(img)
                .s("content of a saved file at file offset ")
                .dec(e.data_offset + at)
                .s(" does not match its checksum)")
                .fail();
        }
        next += chunk_count(e.len, shift);
    }
    // (1.10) SysV segments, right after the ghost extents (the tree's
    // pipe data comes last).
    for seg in img.view.sysv_shm.iter() {
        for e in kckpt_image::sysv::extents_of(&img.view, &seg) {
            if let Some(at) = bad_chunk(img, buf, e.data_offset, e.len, next) {
                corrupt(img)
                    .s("content of SysV shared memory segment ")
                    .dec(seg.id.into())
                    .s(" at its offset ")
                    .dec(e.file_offset + at)
                    .s(" does not match its checksum)")
                    .fail();
            }
            next += chunk_count(e.len, shift);
        }
    }
}
