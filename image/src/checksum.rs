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

/// How [`chunk_sum`] is computed on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The table (any CPU).
    Table = 1,
    /// The CRC instruction, four lanes at once (x86_64 SSE4.2, aarch64
    /// CRC32).
    Crc = 2,
    /// x86_64 with AVX-512 and VPCLMULQDQ: the four lanes are folded with
    /// carry-less multiplications, 64 bytes per step, about three times
    /// the CRC instruction's rate; the last step still uses `crc32`.
    Clmul = 3,
}

const UNKNOWN: u8 = 0;
static ENGINE: AtomicU8 = AtomicU8::new(UNKNOWN);

#[cfg(target_arch = "x86_64")]
fn detect() -> Engine {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    #[allow(unused_unsafe)] // `__cpuid` is safe in newer compilers.
    // SAFETY: cpuid exists on every x86_64 CPU.
    let (leaf1, leaf7) = unsafe { (__cpuid(1), __cpuid_count(7, 0)) };
    // Leaf 1 ECX: bit 20 SSE4.2 (`crc32`), bit 27 OSXSAVE.
    if leaf1.ecx & (1 << 20) == 0 {
        return Engine::Table;
    }
    // Leaf 7 EBX bit 16 AVX512F, ECX bit 10 VPCLMULQDQ; and the OS saves
    // the AVX-512 state (XCR0 bits 1, 2, 5, 6, 7).
    let wide = leaf7.ebx & (1 << 16) != 0 && leaf7.ecx & (1 << 10) != 0;
    // SAFETY: xgetbv exists when OSXSAVE is set (checked first).
    if wide && leaf1.ecx & (1 << 27) != 0 && unsafe { clmul::xcr0() } & 0xe6 == 0xe6 {
        Engine::Clmul
    } else {
        Engine::Crc
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Engine {
    // aarch64: only `use_hwcap` knows (AT_HWCAP is not readable here).
    Engine::Table
}

/// aarch64: use the CRC32 instructions when `hwcap` (the process's
/// `AT_HWCAP`) has `HWCAP_CRC32` (bit 7). No effect on x86_64, where
/// `cpuid` tells.
pub fn use_hwcap(hwcap: u64) {
    if cfg!(target_arch = "aarch64") {
        let engine = if hwcap & (1 << 7) != 0 {
            Engine::Crc
        } else {
            Engine::Table
        };
        ENGINE.store(engine as u8, Ordering::Relaxed);
    }
}

/// The engine this process uses.
pub fn engine() -> Engine {
    match ENGINE.load(Ordering::Relaxed) {
        1 => Engine::Table,
        2 => Engine::Crc,
        3 => Engine::Clmul,
        _ => {
            let e = detect();
            ENGINE.store(e as u8, Ordering::Relaxed);
            e
        }
    }
}

/// Does this process compute checksums with the CPU's instructions?
pub fn hardware() -> bool {
    engine() != Engine::Table
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

fn lanes(lanes: &mut [u32; LANES], body: &[u8], engine: Engine) {
    #[cfg(target_arch = "x86_64")]
    if engine == Engine::Clmul {
        // SAFETY: `Clmul` is only chosen when the CPU has AVX-512F,
        // VPCLMULQDQ and SSE4.2 and the OS saves their state (`detect`);
        // `body` is whole blocks (callers).
        return unsafe { clmul::lanes(lanes, body) };
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if engine != Engine::Table {
        // SAFETY: `Crc` and `Clmul` are only chosen when the CPU has the
        // CRC instruction (cpuid, or AT_HWCAP on aarch64); `body` is whole
        // blocks (callers).
        return unsafe { hw::lanes(lanes, body) };
    }
    lanes_sw(lanes, body)
}

#[cfg(target_arch = "x86_64")]
mod clmul {
    //! The four lanes folded with VPCLMULQDQ: each 128-bit slot of a
    //! 512-bit register holds one lane's running remainder. Reflected
    //! CRC-32C: folding a 128-bit remainder `T = H x^64 + L` (H the first
    //! 8 bytes) forward by `d` bits is `H (x^(d+63) mod P) + L (x^(d-1) mod
    //! P)` (carry-less products of bit-reflected operands carry an extra
    //! factor x), and `crc32` of the final 16 bytes from state 0 turns the
    //! remainder back into a CRC state.
    use core::arch::x86_64::*;

    const P: u64 = 0x1_1edc_6f41;

    /// `x^n mod P` (n >= 32).
    const fn xpow(n: u32) -> u64 {
        let mut r: u64 = 1;
        let mut i = 0;
        while i < n {
            r <<= 1;
            if r & (1 << 32) != 0 {
                r ^= P;
            }
            i += 1;
        }
        r
    }

    /// `x^n mod P`, bit-reflected in 64 bits (coefficient of x^d at bit 63 - d).
    const fn k(n: u32) -> i64 {
        (xpow(n).reverse_bits()) as i64
    }

    /// Slot constants for folding by `d` bits: low qword for H, high for L.
    macro_rules! fold_by {
        ($d:expr) => {{
            // Constants: computed by the compiler.
            const H: i64 = k($d + 63);
            const L: i64 = k($d - 1);
            _mm512_broadcast_i32x4(_mm_set_epi64x(L, H))
        }};
    }

    /// # Safety
    /// The CPU must have XSAVE enabled by the OS (CPUID.1:ECX.OSXSAVE).
    #[target_feature(enable = "xsave")]
    pub unsafe fn xcr0() -> u64 {
        _xgetbv(0)
    }

    #[inline]
    #[target_feature(enable = "avx512f,vpclmulqdq")]
    fn fold(x: __m512i, k: __m512i, data: __m512i) -> __m512i {
        let lo = _mm512_clmulepi64_epi128(x, k, 0x00);
        let hi = _mm512_clmulepi64_epi128(x, k, 0x11);
        // lo ^ hi ^ data
        _mm512_ternarylogic_epi64(lo, hi, data, 0x96)
    }

    /// The 64 bytes of block pair `i`, each lane's two words side by side
    /// (slot `j` = words `j` of both blocks).
    ///
    /// # Safety
    /// `p + 64 * (i + 1)` must be inside the body.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(p: *const u8, i: usize) -> __m512i {
        // SAFETY: inside the body (caller).
        let v = unsafe { _mm512_loadu_si512(p.add(64 * i).cast()) };
        // Qword order 0, 4, 1, 5, 2, 6, 3, 7 (one byte per index).
        let order = _mm512_cvtepu8_epi64(_mm_set_epi64x(0, 0x0703_0602_0501_0400));
        _mm512_permutexvar_epi64(order, v)
    }

    /// # Safety
    /// The CPU must have AVX-512F, VPCLMULQDQ and SSE4.2; `body.len()` is a
    /// multiple of 32.
    #[target_feature(enable = "avx512f,vpclmulqdq,sse4.2")]
    pub unsafe fn lanes(lanes: &mut [u32; 4], body: &[u8]) {
        let blocks = body.len() / 32;
        let pairs = blocks / 2;
        if pairs < 8 {
            // SAFETY: SSE4.2 (caller).
            return unsafe { super::hw::lanes(lanes, body) };
        }
        let p = body.as_ptr();
        // A lane's state is its stream's first 4 bytes XORed with it.
        let [s0, s1, s2, s3] = lanes.map(i64::from);
        let init = _mm512_set_epi64(0, s3, 0, s2, 0, s1, 0, s0);
        // SAFETY: pairs 0..4 lie inside `body` (pairs >= 8).
        let mut acc = unsafe {
            [
                _mm512_xor_si512(load(p, 0), init),
                load(p, 1),
                load(p, 2),
                load(p, 3),
            ]
        };
        let by4 = fold_by!(512);
        let mut i = 4;
        while i + 4 <= pairs {
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: i + j < pairs.
                *a = fold(*a, by4, unsafe { load(p, i + j) });
            }
            i += 4;
        }
        // acc[0] is furthest back: ((a0 x^128 + a1) x^128 + a2) x^128 + a3.
        let by1 = fold_by!(128);
        let mut x = fold(acc[0], by1, acc[1]);
        x = fold(x, by1, acc[2]);
        x = fold(x, by1, acc[3]);
        while i < pairs {
            // SAFETY: i < pairs.
            x = fold(x, by1, unsafe { load(p, i) });
            i += 1;
        }
        let mut q = [0u64; 8];
        // SAFETY: `q` is 64 writable bytes.
        unsafe { _mm512_storeu_si512(q.as_mut_ptr().cast(), x) };
        for (j, lane) in lanes.iter_mut().enumerate() {
            let mut c = _mm_crc32_u64(_mm_crc32_u64(0, q[2 * j]), q[2 * j + 1]);
            if blocks % 2 == 1 {
                let at = 32 * (blocks - 1) + 8 * j;
                let mut w = [0u8; 8];
                w.copy_from_slice(&body[at..at + 8]);
                c = _mm_crc32_u64(c, u64::from_le_bytes(w));
            }
            *lane = c as u32;
        }
    }
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
    engine: Engine,
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
            engine: engine(),
        }
    }

    /// Add `body`, a multiple of [`BLOCK`] bytes (a tail beyond the last
    /// whole block is ignored: pass it to [`ChunkHasher::finish`]).
    pub fn update(&mut self, body: &[u8]) {
        let whole = body.len() - body.len() % BLOCK;
        lanes(&mut self.lanes, &body[..whole], self.engine);
    }

    /// The chunk's checksum, with `tail` (under [`BLOCK`] bytes) last.
    pub fn finish(self, tail: &[u8]) -> u32 {
        combine(&self.lanes, tail)
    }
}

/// The raw lane states of `body` (a multiple of [`BLOCK`] bytes) from
/// the state 0: CRC-32C is linear, so the lanes of a concatenation follow
/// from those of its parts (`kckpt dump` combines the pages of a shared
/// range this way, format 1.6) and [`finish_lanes`] gives its
/// [`chunk_sum`].
pub fn zero_lanes(body: &[u8]) -> [u32; LANES] {
    let whole = body.len() - body.len() % BLOCK;
    let mut l = [0; LANES];
    lanes(&mut l, &body[..whole], engine());
    l
}

/// Continue a raw (not inverted) CRC-32C state over `bytes` (table; for
/// short inputs).
pub fn crc32c_raw(crc: u32, bytes: &[u8]) -> u32 {
    update_sw(crc, bytes)
}

/// The [`chunk_sum`] of a byte string whose four raw lane states (from
/// the initial `!0`) are `lanes` and whose length is a multiple of
/// [`BLOCK`].
pub fn finish_lanes(lanes: &[u32; LANES]) -> u32 {
    combine(lanes, &[])
}

/// The final step of a chunk: the CRC-32C of the lane values and `tail`.
fn combine(lanes: &[u32; LANES], tail: &[u8]) -> u32 {
    let mut bytes = [0u8; 4 * LANES];
    for (i, lane) in lanes.iter().enumerate() {
        bytes[4 * i..4 * i + 4].copy_from_slice(&(!lane).to_le_bytes());
    }
    !update_sw(update_sw(!0, &bytes), tail)
}

fn chunk_sum_with(bytes: &[u8], engine: Engine) -> u32 {
    let body = bytes.len() - bytes.len() % BLOCK;
    let (body, tail) = bytes.split_at(body);
    let mut l = [!0; LANES];
    lanes(&mut l, body, engine);
    combine(&l, tail)
}

/// The checksum of a byte string (every checksum of an image: a data
/// chunk, a note, the ELF header, the program header table): with `body`
/// the first `len - len % 32` bytes and `tail` the rest, lane `i` (0..4)
/// is the CRC-32C of the 8-byte words `i, i + 4, i + 8, ...` of `body`,
/// and the result is the CRC-32C of the four lane values (4 bytes each,
/// little endian) followed by `tail`.
pub fn chunk_sum(bytes: &[u8]) -> u32 {
    chunk_sum_with(bytes, engine())
}

/// [`chunk_sum`] computed with `engine`, if this CPU has it (tests compare
/// every engine with a reference).
pub fn chunk_sum_by(bytes: &[u8], engine: Engine) -> Option<u32> {
    let have = self::engine();
    let ok = match engine {
        Engine::Table => true,
        Engine::Crc => have != Engine::Table,
        Engine::Clmul => have == Engine::Clmul,
    };
    ok.then(|| chunk_sum_with(bytes, engine))
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
    /// The data of descriptor `fd`; or (format 1.4) the bytes in flight
    /// of pipe slot `k` of a process tree, descriptor `fd` = `slot_base +
    /// k` at restore.
    Fd {
        /// The descriptor.
        fd: u32,
    },
    /// An extent of ghost file `ghost` (format 1.3), at `file_offset` in
    /// that file.
    Ghost {
        /// Index of the ghost record.
        ghost: usize,
        /// Offset of the extent in the file.
        file_offset: u64,
    },
    /// An extent of SysV segment `segment` (format 1.10), at `offset` in
    /// the segment.
    Sysv {
        /// Index of the segment record.
        segment: usize,
        /// Offset of the extent in the segment.
        offset: u64,
    },
}

/// Every stored data region of `view`, in checksum order: the memory runs
/// in run-table order (VMA by VMA), then the data of every descriptor
/// record with `data_len > 0`, in descriptor order, then (format 1.3) every
/// ghost file extent in extent-table order, then (format 1.10) every SysV
/// segment extent in extent-table order, then (format 1.4) the bytes in
/// flight of every pipe slot with `data_len > 0`, in slot order (last:
/// `kckpt extract` cuts them off the root's image).
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
    let ghosts = view.ghosts.iter().enumerate().flat_map(move |(i, g)| {
        crate::ghosts::extents_of(view, &g).map(move |e| Region {
            kind: RegionKind::Ghost {
                ghost: i,
                file_offset: e.file_offset,
            },
            offset: e.data_offset,
            len: e.len,
            first_chunk: 0,
        })
    });
    // Format 1.4: the bytes in flight of pipe slots, in slot order; slot
    // `k` is descriptor `slot_base + k` at restore.
    let base = view.tree.map_or(0, |t| t.slot_base);
    let slots = view
        .tree_slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.data_len > 0)
        .map(move |(k, s)| Region {
            kind: RegionKind::Fd {
                fd: base.saturating_add(k as u32),
            },
            offset: s.data_offset,
            len: s.data_len,
            first_chunk: 0,
        });
    let sysv = view.sysv_shm.iter().enumerate().flat_map(move |(i, s)| {
        crate::sysv::extents_of(view, &s).map(move |e| Region {
            kind: RegionKind::Sysv {
                segment: i,
                offset: e.file_offset,
            },
            offset: e.data_offset,
            len: e.len,
            first_chunk: 0,
        })
    });
    let mut next = 0u64;
    memory
        .chain(fds)
        .chain(ghosts)
        .chain(sysv)
        .chain(slots)
        .map(move |mut r| {
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
            crate::kstate::NT_KCKPT_KSTATE => "note NT_KCKPT_KSTATE",
            crate::kstate::NT_KCKPT_TASK => "note NT_KCKPT_TASK",
            crate::seccomp::NT_KCKPT_SECCOMP => "note NT_KCKPT_SECCOMP",
            crate::kstate::NT_KCKPT_AIO => "note NT_KCKPT_AIO",
            crate::kstate::NT_KCKPT_CGROUPS => "note NT_KCKPT_CGROUPS",
            crate::cgroup_props::NT_KCKPT_CGROUP_PROPS => "note NT_KCKPT_CGROUP_PROPS",
            crate::terminal::NT_KCKPT_TERMINALS => "note NT_KCKPT_TERMINALS",
            crate::terminal::NT_KCKPT_JOB => "note NT_KCKPT_JOB",
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
        // FdRecord::data_len at 48, ExtentRecord::len at 8).
        let shift = s.chunk_shift();
        let mut need = 0u64;
        let tables = [
            (view.runs.bytes(), 24, 8),
            (view.fds.bytes(), 88, 48),
            (view.extents.bytes(), 24, 8),
            (view.sysv_extents.bytes(), 24, 8),
            (
                view.tree_slots.bytes(),
                core::mem::size_of::<crate::tree::TreeSlotRecord>(),
                core::mem::offset_of!(crate::tree::TreeSlotRecord, data_len),
            ),
        ];
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
