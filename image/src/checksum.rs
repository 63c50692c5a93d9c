//! Checksums of kckpt images (format 1.2): the functions, the
//! `NT_KCKPT_CHECKSUMS` note, and the check of all metadata that the stub
//! and `kckpt info` run before they believe anything in an image.
//!
//! - [`chunk_sum`]: every checksum of an image (the ELF header, the
//!   program header table, each note, each chunk of stored data) is a
//!   CRC-32C (Castagnoli) over four interleaved lanes, so that the CPU's
//!   CRC instruction, whose latency is three times its issue rate, runs at
//!   full speed (`docs/FORMAT.md`, "Checksums", states the rule).
//!
//! The CPU's instruction is used where there is one: SSE4.2 `crc32` on
//! x86_64 (found with `cpuid`), the ARMv8 CRC32 extension on aarch64 (the
//! caller passes `AT_HWCAP` to [`use_hwcap`]; without it the table is
//! used). Otherwise a table-driven implementation computes the same values.

use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use crate::read::{FormatError, ImageView, Notes, EHDR_SIZE};
use crate::records::*;

/// Lanes of [`chunk_sum`].
pub const LANES: usize = 4;
/// Bytes of one lane step (one 8-byte word per lane).
pub const BLOCK: usize = 8 * LANES;

// ---------------------------------------------------------------------
// CRC-32C
// ---------------------------------------------------------------------

/// The reflected CRC-32C polynomial (0x1EDC6F41 bit-reversed).
const POLY: u32 = 0x82f6_3b78;

/// The byte table of the software path, filled on first use (in `.bss`:
/// the restore stub must stay small).
static TABLE: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];

fn table() -> &'static [AtomicU32; 256] {
    // Entry 128 is never 0 once filled.
    if TABLE[128].load(Ordering::Relaxed) == 0 {
        fill_table();
    }
    &TABLE
}

#[cold]
#[inline(never)]
fn fill_table() {
    for (i, slot) in TABLE.iter().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = (c >> 1) ^ (POLY & (c & 1).wrapping_neg());
        }
        slot.store(c, Ordering::Relaxed);
    }
}

const UNKNOWN: u8 = 0;
const SOFTWARE: u8 = 1;
const HARDWARE: u8 = 2;
static ENGINE: AtomicU8 = AtomicU8::new(UNKNOWN);

#[cfg(target_arch = "x86_64")]
fn detect() -> u8 {
    // CPUID leaf 1, ECX bit 20: SSE4.2 (the `crc32` instruction).
    #[allow(unused_unsafe)] // `__cpuid` is safe in newer compilers.
    // SAFETY: cpuid exists on every x86_64 CPU.
    let ecx = unsafe { core::arch::x86_64::__cpuid(1) }.ecx;
    if ecx & (1 << 20) != 0 {
        HARDWARE
    } else {
        SOFTWARE
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> u8 {
    // aarch64: only `use_hwcap` knows (AT_HWCAP is not readable here).
    SOFTWARE
}

/// aarch64: use the CRC32 instructions when `hwcap` (the process's
/// `AT_HWCAP`) has `HWCAP_CRC32` (bit 7). No effect on x86_64, where
/// `cpuid` tells.
pub fn use_hwcap(hwcap: u64) {
    if cfg!(target_arch = "aarch64") {
        let engine = if hwcap & (1 << 7) != 0 {
            HARDWARE
        } else {
            SOFTWARE
        };
        ENGINE.store(engine, Ordering::Relaxed);
    }
}

/// Does this process compute checksums with the CPU's CRC instruction?
pub fn hardware() -> bool {
    let mut e = ENGINE.load(Ordering::Relaxed);
    if e == UNKNOWN {
        e = detect();
        ENGINE.store(e, Ordering::Relaxed);
    }
    e == HARDWARE
}

/// Continue a raw (not inverted) CRC-32C state over `bytes`, with the table.
#[inline(never)]
fn update_sw(mut crc: u32, bytes: &[u8]) -> u32 {
    let t = table();
    for &b in bytes {
        crc = t[((crc ^ u32::from(b)) & 0xff) as usize].load(Ordering::Relaxed) ^ (crc >> 8);
    }
    crc
}

/// Four lane states over `body` (a multiple of [`BLOCK`] bytes), with the
/// table. Word `k` of `body` goes to lane `k % 4`.
fn lanes_sw(lanes: &mut [u32; LANES], body: &[u8]) {
    let t = table();
    for (i, &b) in body.iter().enumerate() {
        let lane = &mut lanes[(i >> 3) & (LANES - 1)];
        *lane = t[((*lane ^ u32::from(b)) & 0xff) as usize].load(Ordering::Relaxed) ^ (*lane >> 8);
    }
}

#[cfg(target_arch = "x86_64")]
mod hw {
    use core::arch::x86_64::_mm_crc32_u64;

    /// # Safety
    /// The CPU must have SSE4.2; `body.len()` is a multiple of 32.
    #[target_feature(enable = "sse4.2")]
    pub unsafe fn lanes(lanes: &mut [u32; 4], body: &[u8]) {
        let [mut a, mut b, mut c, mut d] = lanes.map(u64::from);
        let blocks = body.len() / 32;
        let p = body.as_ptr().cast::<u64>();
        for i in 0..blocks {
            // SAFETY: block `i` lies inside `body` (i < len / 32); unaligned
            // reads of plain bytes.
            let (w0, w1, w2, w3) = unsafe {
                let q = p.add(4 * i);
                (
                    q.read_unaligned(),
                    q.add(1).read_unaligned(),
                    q.add(2).read_unaligned(),
                    q.add(3).read_unaligned(),
                )
            };
            a = _mm_crc32_u64(a, u64::from_le(w0));
            b = _mm_crc32_u64(b, u64::from_le(w1));
            c = _mm_crc32_u64(c, u64::from_le(w2));
            d = _mm_crc32_u64(d, u64::from_le(w3));
        }
        *lanes = [a as u32, b as u32, c as u32, d as u32];
    }
}

#[cfg(target_arch = "aarch64")]
mod hw {
    use core::arch::aarch64::__crc32cd;

    /// # Safety
    /// The CPU must have the CRC32 extension; `body.len()` is a multiple
    /// of 32.
    #[target_feature(enable = "crc")]
    pub unsafe fn lanes(lanes: &mut [u32; 4], body: &[u8]) {
        let [mut a, mut b, mut c, mut d] = *lanes;
        let blocks = body.len() / 32;
        let p = body.as_ptr().cast::<u64>();
        for i in 0..blocks {
            // SAFETY: block `i` lies inside `body` (i < len / 32); unaligned
            // reads of plain bytes.
            let (w0, w1, w2, w3) = unsafe {
                let q = p.add(4 * i);
                (
                    q.read_unaligned(),
                    q.add(1).read_unaligned(),
                    q.add(2).read_unaligned(),
                    q.add(3).read_unaligned(),
                )
            };
            a = __crc32cd(a, u64::from_le(w0));
            b = __crc32cd(b, u64::from_le(w1));
            c = __crc32cd(c, u64::from_le(w2));
            d = __crc32cd(d, u64::from_le(w3));
        }
        *lanes = [a, b, c, d];
    }
}

fn lanes(lanes: &mut [u32; LANES], body: &[u8], hardware: bool) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if hardware {
        // SAFETY: `hardware` is only true when the CPU has the instruction
        // (detected with cpuid, or AT_HWCAP on aarch64); `body` is whole
        // blocks (callers).
        return unsafe { hw::lanes(lanes, body) };
    }
    let _ = hardware;
    lanes_sw(lanes, body)
}

/// CRC-32C of `bytes` (initial value and final XOR `0xffffffff`,
/// reflected): `crc32c(b"123456789") == 0xe3069283`. With the table: it
/// only ever sees a few dozen bytes ([`chunk_sum`]'s last step).
pub fn crc32c(bytes: &[u8]) -> u32 {
    !update_sw(!0, bytes)
}

/// A [`chunk_sum`] being computed piece by piece: every piece but the last
/// is a multiple of [`BLOCK`] bytes (memory arrives in pages).
#[derive(Clone, Copy, Debug)]
pub struct ChunkHasher {
    lanes: [u32; LANES],
    hardware: bool,
}

impl Default for ChunkHasher {
    fn default() -> Self {
        ChunkHasher::new()
    }
}

impl ChunkHasher {
    /// A new chunk.
    pub fn new() -> ChunkHasher {
        ChunkHasher {
            lanes: [!0; LANES],
            hardware: hardware(),
        }
    }

    /// Add `body`, a multiple of [`BLOCK`] bytes (a tail beyond the last
    /// whole block is ignored: pass it to [`ChunkHasher::finish`]).
    pub fn update(&mut self, body: &[u8]) {
        let whole = body.len() - body.len() % BLOCK;
        lanes(&mut self.lanes, &body[..whole], self.hardware);
    }

    /// The chunk's checksum, with `tail` (under [`BLOCK`] bytes) last.
    pub fn finish(self, tail: &[u8]) -> u32 {
        combine(&self.lanes, tail)
    }
}

/// The final step of a chunk: the CRC-32C of the lane values and `tail`.
fn combine(lanes: &[u32; LANES], tail: &[u8]) -> u32 {
    let mut bytes = [0u8; 4 * LANES];
    for (i, lane) in lanes.iter().enumerate() {
        bytes[4 * i..4 * i + 4].copy_from_slice(&(!lane).to_le_bytes());
    }
    !update_sw(update_sw(!0, &bytes), tail)
}

fn chunk_sum_with(bytes: &[u8], hardware: bool) -> u32 {
    let body = bytes.len() - bytes.len() % BLOCK;
    let (body, tail) = bytes.split_at(body);
    let mut l = [!0; LANES];
    lanes(&mut l, body, hardware);
    combine(&l, tail)
}

/// The checksum of a byte string (every checksum of an image: a data
/// chunk, a note, the ELF header, the program header table): with `body`
/// the first `len - len % 32` bytes and `tail` the rest, lane `i` (0..4)
/// is the CRC-32C of the 8-byte words `i, i + 4, i + 8, ...` of `body`,
/// and the result is the CRC-32C of the four lane values (4 bytes each,
/// little endian) followed by `tail`.
pub fn chunk_sum(bytes: &[u8]) -> u32 {
    chunk_sum_with(bytes, hardware())
}

/// [`chunk_sum`] computed with the table only (for tests of both paths).
pub fn chunk_sum_software(bytes: &[u8]) -> u32 {
    chunk_sum_with(bytes, false)
}

// ---------------------------------------------------------------------
// The checksum note
// ---------------------------------------------------------------------

/// Number of data chunks of a region of `len` bytes (chunks of
/// `1 << shift` bytes, the last one shorter).
pub fn chunk_count(len: u64, shift: u32) -> u64 {
    len.div_ceil(1u64 << shift)
}

/// One stored data region and where its chunk checksums start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Memory run or descriptor data.
    pub kind: RegionKind,
    /// File offset of the data.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Index of its first chunk checksum.
    pub first_chunk: u64,
}

/// What a [`Region`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Run `run` of the run table, at virtual address `addr`, in VMA `vma`.
    Memory {
        /// Index of the VMA.
        vma: usize,
        /// Virtual address of the run's first byte.
        addr: u64,
    },
    /// The data of descriptor `fd`.
    Fd {
        /// The descriptor.
        fd: u32,
    },
}

/// Every stored data region of `view`, in checksum order: the memory runs
/// in run-table order (VMA by VMA), then the data of every descriptor
/// record with `data_len > 0`, in descriptor order.
pub fn regions<'v>(view: &'v ImageView<'_>, shift: u32) -> impl Iterator<Item = Region> + 'v {
    let memory = view
        .vmas
        .iter()
        .enumerate()
        .flat_map(move |(i, vma)| view.runs_of(&vma).map(move |run| (i, run)));
    let memory = memory.map(|(vma, run)| Region {
        kind: RegionKind::Memory {
            vma,
            addr: run.start,
        },
        offset: run.offset,
        len: run.len,
        first_chunk: 0,
    });
    let fds = view.fds.iter().filter(|r| r.data_len > 0).map(|r| Region {
        kind: RegionKind::Fd { fd: r.fd },
        offset: r.data_offset,
        len: r.data_len,
        first_chunk: 0,
    });
    let mut next = 0u64;
    memory.chain(fds).map(move |mut r| {
        r.first_chunk = next;
        next = next.saturating_add(chunk_count(r.len, shift));
        r
    })
}

/// The verified checksum note of an image.
#[derive(Clone, Copy, Debug)]
pub struct Sums<'a> {
    /// Its fixed part.
    pub record: ChecksumsRecord,
    data: &'a [u8],
}

impl<'a> Sums<'a> {
    /// Does the image carry data checksums (not written with
    /// `KCKPT_NO_CHECKSUM`)?
    pub fn has_data(&self) -> bool {
        self.record.flags & checksum_flags::NO_DATA == 0
    }
    /// log2 of the chunk size.
    pub fn chunk_shift(&self) -> u32 {
        self.record.chunk_shift
    }
    /// Bytes per chunk.
    pub fn chunk_size(&self) -> u64 {
        1 << self.record.chunk_shift
    }
    /// Number of data chunk checksums.
    pub fn data_count(&self) -> usize {
        self.data.len() / 4
    }
    /// Chunk checksum `i`.
    pub fn data(&self, i: u64) -> Option<u32> {
        let at = usize::try_from(i).ok()?.checked_mul(4)?;
        let b = self.data.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// The raw little-endian chunk checksums (4 bytes each).
    pub fn data_bytes(&self) -> &'a [u8] {
        self.data
    }
}

/// What a note is called in messages (`note NT_KCKPT_FDS`).
pub fn note_name(owner: &[u8], kind: u32) -> &'static str {
    if owner == NOTE_OWNER {
        return match kind {
            NT_KCKPT_HEADER => "note NT_KCKPT_HEADER",
            NT_KCKPT_MM => "note NT_KCKPT_MM",
            NT_KCKPT_VMAS => "note NT_KCKPT_VMAS",
            NT_KCKPT_RUNS => "note NT_KCKPT_RUNS",
            NT_KCKPT_STRINGS => "note NT_KCKPT_STRINGS",
            NT_KCKPT_SIGNALS => "note NT_KCKPT_SIGNALS",
            NT_KCKPT_THREAD => "note NT_KCKPT_THREAD",
            NT_KCKPT_PROCESS => "note NT_KCKPT_PROCESS",
            NT_KCKPT_PENDING => "note NT_KCKPT_PENDING",
            NT_KCKPT_FS => "note NT_KCKPT_FS",
            NT_KCKPT_FDS => "note NT_KCKPT_FDS",
            NT_KCKPT_EPOLL => "note NT_KCKPT_EPOLL",
            NT_KCKPT_CHECKSUMS => "note NT_KCKPT_CHECKSUMS",
            _ => "a KCKPT note of unknown type",
        };
    }
    match kind {
        nt::PRSTATUS => "note NT_PRSTATUS",
        nt::PRFPREG => "note NT_PRFPREG",
        nt::PRPSINFO => "note NT_PRPSINFO",
        nt::AUXV => "note NT_AUXV",
        nt::FILE => "note NT_FILE",
        nt::SIGINFO => "note NT_SIGINFO",
        nt::X86_XSTATE => "note NT_X86_XSTATE",
        nt::ARM_TLS => "note NT_ARM_TLS",
        nt::ARM_SYSTEM_CALL => "note NT_ARM_SYSTEM_CALL",
        nt::ARM_PAC_ENABLED_KEYS => "note NT_ARM_PAC_ENABLED_KEYS",
        _ => "a note of unknown type",
    }
}

/// Each note of `segment` with the bytes of its whole encoding (header,
/// name, descriptor and padding); stops at the first malformed note.
pub fn note_spans(segment: &[u8]) -> impl Iterator<Item = (crate::read::Note<'_>, &[u8])> {
    let mut pos = 0usize;
    core::iter::from_fn(move || {
        let rest = segment.get(pos..)?;
        let note = Notes::new(rest).next()?.ok()?;
        let pad4 = |n: usize| n.div_ceil(4) * 4;
        let len = 12 + pad4(note.owner.len() + 1) + pad4(note.desc.len());
        let span = rest.get(..len.min(rest.len()))?;
        pos += span.len();
        Some((note, span))
    })
}

/// Size of the checksum note's descriptor for `notes` note checksums and
/// `data` chunk checksums.
pub fn note_size(notes: usize, data: usize) -> usize {
    core::mem::size_of::<ChecksumsRecord>() + 4 * (notes + data + 1)
}

/// Check every metadata checksum of an image: the ELF header `ehdr` (its
/// first [`EHDR_SIZE`] bytes), the program header table `phdrs` and the
/// note segment `notes`. The header note's version is checked first (an
/// unknown version is refused as such). An image of format 1.2 or later
/// must end its notes with `NT_KCKPT_CHECKSUMS`; an older image has none
/// and gives `Ok(None)`.
pub fn verify_metadata<'a>(
    ehdr: &[u8],
    phdrs: &[u8],
    notes: &'a [u8],
) -> Result<Option<Sums<'a>>, FormatError> {
    let le = |b: &[u8], at: usize| -> u32 {
        b.get(at..at + 4)
            .map_or(0, |w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    };
    // One pass: the version, the number of notes, the last note.
    let (mut count, mut end, mut minor) = (0usize, 0usize, 0u16);
    let mut last = None;
    for (note, span) in note_spans(notes) {
        if count == 0
            && note.is(NOTE_OWNER, NT_KCKPT_HEADER)
            && note.desc.get(..8) == Some(&HEADER_MAGIC[..])
        {
            let v = le(note.desc, 8);
            let major = v as u16;
            minor = (v >> 16) as u16;
            if major != FORMAT_MAJOR || minor > FORMAT_MINOR {
                return Err(FormatError::UnsupportedVersion { major, minor });
            }
        }
        if last.is_some() {
            // The checksum note must be the last one.
            return Err(FormatError::BadChecksumNote);
        }
        if note.is(NOTE_OWNER, NT_KCKPT_CHECKSUMS) {
            last = Some(note.desc);
        } else {
            count += 1;
        }
        end += span.len();
    }
    let Some(desc) = last else {
        if minor >= CHECKSUMS_SINCE_MINOR {
            return Err(FormatError::MissingNote("checksums"));
        }
        return Ok(None);
    };
    // Its own checksum first: nothing else in it counts before that.
    let own = desc.len().saturating_sub(4);
    if end != notes.len() || desc.len() < 4 {
        return Err(FormatError::BadChecksumNote);
    }
    if chunk_sum(&desc[..own]) != le(desc, own) {
        return Err(FormatError::BadChecksum("note NT_KCKPT_CHECKSUMS"));
    }
    let record: ChecksumsRecord =
        crate::read::read_record(desc).ok_or(FormatError::BadChecksumNote)?;
    let shift = record.chunk_shift;
    let no_data = record.flags & checksum_flags::NO_DATA != 0;
    if record.algorithm != CHECKSUM_CRC32C
        || !(MIN_CHUNK_SHIFT..=MAX_CHUNK_SHIFT).contains(&shift)
        || record.flags & !checksum_flags::NO_DATA != 0
        || (no_data && record.data_count != 0)
        || record.sums_offset as usize != core::mem::size_of::<ChecksumsRecord>()
        || record.note_count as usize != count
        || desc.len() != note_size(count, record.data_count as usize)
    {
        return Err(FormatError::BadChecksumNote);
    }
    if ehdr.len() < EHDR_SIZE || chunk_sum(&ehdr[..EHDR_SIZE]) != record.elf_header {
        return Err(FormatError::BadChecksum("the ELF header"));
    }
    let mut at = record.sums_offset as usize;
    for (note, span) in note_spans(notes).take(count) {
        if chunk_sum(span) != le(desc, at) {
            return Err(FormatError::BadChecksum(note_name(note.owner, note.kind)));
        }
        at += 4;
    }
    if chunk_sum(phdrs) != record.program_headers {
        return Err(FormatError::BadChecksum("the program header table"));
    }
    Ok(Some(Sums {
        record,
        data: &desc[at..own],
    }))
}

/// The check the stub and `kckpt info` run on an image's metadata: every
/// checksum ([`verify_metadata`]), then the full structural check
/// ([`ImageView::parse`]), then that the data checksums are as many as the
/// image's data regions need.
pub fn check_image<'a>(
    ehdr: &[u8],
    phdrs: &[u8],
    notes: &'a [u8],
    machine: u16,
    file_len: u64,
) -> Result<(ImageView<'a>, Option<Sums<'a>>), FormatError> {
    let sums = verify_metadata(ehdr, phdrs, notes)?;
    let view = ImageView::parse(notes, machine, file_len)?;
    if let Some(s) = sums.as_ref().filter(|s| s.has_data()) {
        // The lengths straight from the tables (RunRecord::len at 8,
        // FdRecord::data_len at 48).
        let shift = s.chunk_shift();
        let mut need = 0u64;
        let tables = [(view.runs.bytes(), 24, 8), (view.fds.bytes(), 88, 48)];
        for (bytes, size, at) in tables {
            for r in bytes.chunks_exact(size) {
                let mut len = [0u8; 8];
                len.copy_from_slice(&r[at..at + 8]);
                need = need.saturating_add(chunk_count(u64::from_le_bytes(len), shift));
            }
        }
        if need != s.data_count() as u64 {
            return Err(FormatError::BadChecksumNote);
        }
    }
    Ok((view, sums))
}

/// Check `bytes`, chunk `first` onwards of a region, against `sums`:
/// `Err(i)` names the first chunk (counted from the region's start) that
/// does not match. `bytes` starts at a chunk boundary.
pub fn check_chunks(sums: &Sums<'_>, first: u64, bytes: &[u8]) -> Result<(), u64> {
    let size = sums.chunk_size() as usize;
    for (i, chunk) in bytes.chunks(size).enumerate() {
        let i = i as u64;
        if sums.data(first + i) != Some(chunk_sum(chunk)) {
            return Err(i);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(chunk_sum(b""), crc32c(&[0u8; 16]));
    }
}
