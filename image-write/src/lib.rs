//! Writing kckpt images. A crate of its own because it needs `std`, and
//! the no_std stub must not link `std` through `kckpt-image`.
//!
//! Layout of a written file: the ELF header at offset 0; memory data from
//! offset `page_size` on, one page-aligned region per VMA that has stored
//! pages (the region is as large as the VMA, so a PT_LOAD maps it linearly
//! and unstored pages are holes of a sparse file); then the note segment and
//! the program header table at the end. Data is written first, metadata
//! last, so the number of runs need not be known in advance.
//!
//! Format 1.2: [`ImageWriter::finish`] ends the notes with
//! `NT_KCKPT_CHECKSUMS`, which holds the CRC-32C of the ELF header, of the
//! program header table and of every note, and the chunk checksums of
//! every stored data region. Those come from [`ImageWriter::write_data`]
//! (which hashes what it writes) or, for data written elsewhere (the
//! dumper's memory writer), from [`ImageWriter::add_sums`].

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::vec::Vec;

use kckpt_image::checksum::{self, chunk_sum, note_spans, ChunkHasher};
use kckpt_image::kstate;
use kckpt_image::read::{
    note_segment, parse_elf_header, record_bytes, EHDR_SIZE, ET_CORE, PHDR_SIZE, PT_LOAD, PT_NOTE,
};
use kckpt_image::records::*;
use kckpt_image::{ExtentRecord, GhostRecord, GuardRecord, LockRecord};

/// A buffer of ELF notes.
#[derive(Clone, Debug, Default)]
pub struct NoteBuf {
    bytes: Vec<u8>,
}

impl NoteBuf {
    /// Append one note.
    pub fn push(&mut self, owner: &[u8], kind: u32, desc: &[u8]) {
        let namesz = owner.len() + 1;
        self.bytes.extend_from_slice(&(namesz as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&(desc.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(&kind.to_le_bytes());
        self.bytes.extend_from_slice(owner);
        self.bytes.push(0);
        self.pad4();
        self.bytes.extend_from_slice(desc);
        self.pad4();
    }
    /// Append one note holding a record.
    pub fn push_record<T: Record>(&mut self, owner: &[u8], kind: u32, value: &T) {
        self.push(owner, kind, record_bytes(value));
    }
    fn pad4(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
    /// The encoded notes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A string table under construction.
#[derive(Clone, Debug, Default)]
pub struct StringTable {
    bytes: Vec<u8>,
}

impl StringTable {
    /// Add a string (NUL-terminated in the table, the terminator not
    /// counted in the reference).
    pub fn add(&mut self, s: &[u8]) -> StrRef {
        let r = StrRef {
            offset: self.bytes.len() as u32,
            len: s.len() as u32,
        };
        self.bytes.extend_from_slice(s);
        self.bytes.push(0);
        r
    }
    /// The encoded table.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Register notes of one thread, in the order they are written.
#[derive(Clone, Debug, Default)]
pub struct ThreadNotesOut {
    /// The `elf_prstatus` bytes (written first, as NT_PRSTATUS/CORE).
    pub prstatus: Vec<u8>,
    /// Further register notes: (owner, type, descriptor).
    pub regsets: Vec<(&'static [u8], u32, Vec<u8>)>,
    /// kckpt's per-thread record (written last).
    pub record: ThreadRecord,
}

/// Everything but the memory data.
#[derive(Clone, Debug)]
pub struct ImageMetadata {
    /// The header (`thread_count` is filled in from `threads`).
    pub header: ImageHeader,
    /// mm fields.
    pub mm: MmRecord,
    /// Signal dispositions.
    pub signals: SignalsRecord,
    /// VMAs, sorted.
    pub vmas: Vec<VmaRecord>,
    /// Runs, partitioned among `vmas` by `first_run`/`run_count`.
    pub runs: Vec<RunRecord>,
    /// Strings referenced by the records.
    pub strings: StringTable,
    /// Raw auxiliary vector.
    pub auxv: Vec<u8>,
    /// `elf_prpsinfo` bytes.
    pub prpsinfo: Vec<u8>,
    /// Threads, main thread first.
    pub threads: Vec<ThreadNotesOut>,
    /// Format 1.1: rlimits, personality, dumpable, no_new_privs.
    pub process: Option<ProcessRecord>,
    /// Format 1.1: pending signals, in queue order.
    pub pending: Vec<PendingSignalRecord>,
    /// File descriptors, working directory, umask (format 1.1).
    pub files: FilesMeta,
    /// Interval and POSIX timers (format 1.3).
    pub timers: TimersMeta,
    /// Process-wide kernel state, aio rings, cgroups (format 1.3).
    pub kstate: KstateMeta,
    /// The process tree (format 1.4): only in the image of a tree's first
    /// process; `None` for a single-process image.
    pub tree: Option<TreeMeta>,
    /// Pages stored by earlier processes of a tree (format 1.6,
    /// `NT_KCKPT_PAGE_REFS`): only in a sub-image; sorted, not written
    /// when empty.
    pub page_refs: Vec<kckpt_image::pagerefs::PageRefRecord>,
    /// SysV shared memory segments (format 1.10): only in the image of a
    /// tree's first process or of a single process; not written when
    /// empty.
    pub sysv: SysvMeta,
}

/// The SysV notes (format 1.10, `kckpt_image::sysv`).
#[derive(Clone, Debug, Default)]
pub struct SysvMeta {
    /// `NT_KCKPT_SYSV_SHM`, sorted by id.
    pub shm: Vec<kckpt_image::sysv::SysvShmRecord>,
    /// `NT_KCKPT_SYSV_EXTENTS`, in segment order.
    pub extents: Vec<ExtentRecord>,
    /// `NT_KCKPT_SYSV_SEM` (format 1.11), sorted by id.
    pub sem: Vec<kckpt_image::sysv::SysvSemRecord>,
    /// `NT_KCKPT_SYSV_SEM_VALUES`, the sets' values in order.
    pub sem_values: Vec<u16>,
    /// `NT_KCKPT_SYSV_MSG` (format 1.11), sorted by id.
    pub msg: Vec<kckpt_image::sysv::SysvMsgQueueRecord>,
    /// `NT_KCKPT_SYSV_MESSAGES`: headers, texts and padding, as written.
    pub messages: Vec<u8>,
}

impl SysvMeta {
    /// Append one message (the next of its queue) to `messages`.
    pub fn push_message(&mut self, mtype: i64, text: &[u8]) {
        let h = kckpt_image::sysv::MessageHeader {
            len: text.len() as u64,
            mtype,
        };
        self.messages.extend_from_slice(record_bytes(&h));
        self.messages.extend_from_slice(text);
        let padded = self.messages.len().next_multiple_of(8);
        self.messages.resize(padded, 0);
    }
}

/// The tree notes (format 1.4, `kckpt_image::tree`).
#[derive(Clone, Debug, Default)]
pub struct TreeMeta {
    /// `NT_KCKPT_TREE`.
    pub tree: kckpt_image::tree::TreeRecord,
    /// `NT_KCKPT_TREE_PROCS`, parents first, index 0 this image.
    pub procs: Vec<kckpt_image::tree::TreeProcRecord>,
    /// `NT_KCKPT_TREE_SLOTS`.
    pub slots: Vec<kckpt_image::tree::TreeSlotRecord>,
    /// `NT_KCKPT_TREE_USES`, sorted by process then descriptor.
    pub uses: Vec<kckpt_image::tree::TreeUseRecord>,
}

/// The timer notes (format 1.3): `NT_KCKPT_TIMERS` when `itimers` is set,
/// `NT_KCKPT_POSIX_TIMERS` when the process has POSIX timers.
#[derive(Clone, Debug, Default)]
pub struct TimersMeta {
    /// The interval timers and the timer-id mode.
    pub itimers: Option<kckpt_image::timers::TimersRecord>,
    /// POSIX timers, sorted by id.
    pub posix: Vec<kckpt_image::timers::PosixTimerRecord>,
}

/// The process-wide kernel-state notes (format 1.3,
/// `kckpt_image::kstate`); nothing is written for the parts left empty.
/// Each thread's `NT_KCKPT_TASK` travels with its register notes
/// ([`task_note`]).
#[derive(Clone, Debug, Default)]
pub struct KstateMeta {
    /// `NT_KCKPT_KSTATE`.
    pub kstate: Option<kstate::KstateRecord>,
    /// `NT_KCKPT_AIO`.
    pub aio: Vec<kstate::AioRingRecord>,
    /// `NT_KCKPT_CGROUPS`: the process's records first, then the threads'
    /// in thread order.
    pub cgroups: Vec<kstate::CgroupRecord>,
    /// `NT_KCKPT_CGROUP_PROPS`: settings of the cgroups above.
    pub cgroup_props: Vec<kckpt_image::cgroup_props::CgroupPropRecord>,
}

/// The descriptor of a thread's `NT_KCKPT_TASK` note: `rec` (whose
/// `group_count` is set here) and the groups.
pub fn task_note(mut rec: kstate::TaskRecord, groups: &[u32]) -> Vec<u8> {
    rec.group_count = groups.len() as u32;
    let mut out = record_bytes(&rec).to_vec();
    for g in groups {
        out.extend_from_slice(&g.to_le_bytes());
    }
    out
}

/// The file-descriptor notes (format 1.1); nothing is written for the
/// parts left empty.
#[derive(Clone, Debug, Default)]
pub struct FilesMeta {
    /// Working directory and umask (`NT_KCKPT_FS`).
    pub fs: Option<FsRecord>,
    /// Descriptors, sorted by number (`NT_KCKPT_FDS`).
    pub fds: Vec<FdRecord>,
    /// Epoll interest lists (`NT_KCKPT_EPOLL`).
    pub epoll: Vec<EpollItemRecord>,
    /// Terminal modes, sorted by descriptor (`NT_KCKPT_TERMINALS`, 1.3).
    pub terminals: Vec<kckpt_image::terminal::TerminalRecord>,
    /// Process group and session (`NT_KCKPT_JOB`, 1.3).
    pub job: Option<kckpt_image::terminal::JobRecord>,
    /// Files whose content is in the image (`NT_KCKPT_GHOSTS`, 1.3).
    pub ghosts: Vec<GhostRecord>,
    /// Their stored ranges (`NT_KCKPT_EXTENTS`, 1.3), in ghost order.
    pub extents: Vec<ExtentRecord>,
    /// File locks (`NT_KCKPT_LOCKS`, 1.3).
    pub locks: Vec<LockRecord>,
    /// Socket filters (`NT_KCKPT_SOCK_FILTERS`, 1.8), sorted by fd.
    pub sock_filters: Vec<kckpt_image::sockfilter::SockFilterRecord>,
    /// Owners of descriptors' I/O signals (`NT_KCKPT_FOWNERS`, 1.4),
    /// sorted by fd.
    pub fowners: Vec<kckpt_image::FownRecord>,
    /// Inotify watches (`NT_KCKPT_INOTIFY`, 1.3), sorted by fd and wd.
    pub inotify: Vec<kckpt_image::inotify::InotifyWatchRecord>,
    /// Guard regions of the memory (`NT_KCKPT_GUARDS`, 1.3), sorted;
    /// written with these notes because they are found with them.
    pub guards: Vec<GuardRecord>,
}

/// Writes an image: memory data through [`ImageWriter::write_data`] into
/// regions from [`ImageWriter::reserve_region`], then metadata with
/// [`ImageWriter::finish`].
#[derive(Debug)]
pub struct ImageWriter {
    file: File,
    machine: u16,
    page_size: u64,
    next_offset: u64,
    /// Chunk checksums of written data: file offset -> (length, sums).
    sums: HashMap<u64, (u64, Vec<u32>)>,
    /// False with `KCKPT_NO_CHECKSUM` (benchmarks): no data checksums.
    data_sums: bool,
}

/// Tell the checksum code which CPU instructions it may use where `cpuid`
/// cannot (aarch64: the CRC32 extension, from the auxiliary vector).
pub fn init_checksums() {
    #[cfg(target_arch = "aarch64")]
    checksum::use_hwcap(if std::arch::is_aarch64_feature_detected!("crc") {
        1 << 7
    } else {
        0
    });
}

/// The chunk checksums of one data region held in memory (chunks of
/// `1 << DEFAULT_CHUNK_SHIFT` bytes).
pub fn chunk_sums(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(1 << DEFAULT_CHUNK_SHIFT)
        .map(chunk_sum)
        .collect()
}

/// Chunk checksums of a region that arrives in pieces, in order: every
/// piece but the last is a multiple of [`checksum::BLOCK`] bytes (pages).
#[derive(Clone, Debug, Default)]
pub struct RegionHasher {
    hasher: ChunkHasher,
    in_chunk: u64,
    len: u64,
    sums: Vec<u32>,
}

impl RegionHasher {
    /// A new region.
    pub fn new() -> RegionHasher {
        RegionHasher::default()
    }

    /// Add the next piece.
    pub fn update(&mut self, mut bytes: &[u8]) {
        let chunk = 1u64 << DEFAULT_CHUNK_SHIFT;
        self.len += bytes.len() as u64;
        while !bytes.is_empty() {
            let n = ((chunk - self.in_chunk) as usize).min(bytes.len());
            let (now, rest) = bytes.split_at(n);
            let whole = now.len() - now.len() % checksum::BLOCK;
            self.hasher.update(&now[..whole]);
            self.in_chunk += n as u64;
            if self.in_chunk == chunk || whole != now.len() {
                let done = std::mem::take(&mut self.hasher);
                self.sums.push(done.finish(&now[whole..]));
                self.in_chunk = 0;
            }
            bytes = rest;
        }
    }

    /// The region's length and chunk checksums.
    pub fn finish(mut self) -> (u64, Vec<u32>) {
        if self.in_chunk > 0 {
            self.sums.push(self.hasher.finish(&[]));
        }
        (self.len, self.sums)
    }
}

impl ImageWriter {
    /// Start writing into `file` (empty, opened for writing).
    pub fn new(file: File, machine: u16, page_size: u64) -> Self {
        init_checksums();
        ImageWriter {
            file,
            machine,
            page_size,
            next_offset: page_size,
            sums: HashMap::new(),
            data_sums: true,
        }
    }

    /// Write no data checksums (the image says so; its metadata is still
    /// checked). Only for measuring what the checksums cost
    /// (`KCKPT_NO_CHECKSUM=1`).
    pub fn without_data_sums(&mut self) {
        self.data_sums = false;
    }

    /// Does this writer record data checksums?
    pub fn data_sums(&self) -> bool {
        self.data_sums
    }

    /// The chunk checksums of `len` bytes of data written elsewhere at
    /// `offset` (a memory run or descriptor data region).
    pub fn add_sums(&mut self, offset: u64, len: u64, sums: Vec<u32>) {
        self.sums.insert(offset, (len, sums));
    }

    /// Reserve a page-aligned data region of `len` bytes; returns its offset.
    pub fn reserve_region(&mut self, len: u64) -> u64 {
        let offset = self.next_offset;
        let len = len.div_ceil(self.page_size) * self.page_size;
        self.next_offset += len;
        offset
    }

    /// Write data bytes at `offset` (inside a reserved region); they are
    /// hashed as one data region (a memory run, or a descriptor's data).
    pub fn write_data(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, offset)?;
        if self.data_sums {
            self.add_sums(offset, bytes.len() as u64, chunk_sums(bytes));
        }
        Ok(())
    }

    /// The data chunk checksums in the order of the checksum note.
    fn data_sum_list(&mut self, meta: &ImageMetadata) -> io::Result<Vec<u32>> {
        let mut out = Vec::new();
        if !self.data_sums {
            return Ok(out);
        }
        let regions = meta
            .runs
            .iter()
            .map(|r| (r.offset, r.len))
            .chain(
                meta.files
                    .fds
                    .iter()
                    .filter(|f| f.data_len > 0)
                    .map(|f| (f.data_offset, f.data_len)),
            )
            .chain(meta.files.extents.iter().map(|e| (e.data_offset, e.len)))
            .chain(meta.sysv.extents.iter().map(|e| (e.data_offset, e.len)))
            .chain(
                meta.tree
                    .iter()
                    .flat_map(|t| t.slots.iter())
                    .filter(|s| s.data_len > 0)
                    .map(|s| (s.data_offset, s.data_len)),
            );
        for (offset, len) in regions {
            match self.sums.get(&offset) {
                Some((l, sums)) if *l == len => out.extend_from_slice(sums),
                _ => {
                    return Err(io::Error::other(format!(
                        "internal error: no checksum for the {len} bytes of data at offset {offset}"
                    )))
                }
            }
        }
        Ok(out)
    }

    /// The file being written.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Write notes, program headers and the ELF header; returns the file.
    pub fn finish(self, meta: ImageMetadata) -> io::Result<File> {
        self.finish_summed(meta).map(|(file, _)| file)
    }

    /// [`ImageWriter::finish`], also returning the CRC-32C of the
    /// `NT_KCKPT_CHECKSUMS` note descriptor (a process tree's
    /// `TreeProcRecord::image_sum` of this image as a sub-image).
    pub fn finish_summed(mut self, mut meta: ImageMetadata) -> io::Result<(File, u32)> {
        meta.header.thread_count = meta.threads.len() as u32;
        meta.header.machine = self.machine;
        let data = self.data_sum_list(&meta)?;
        let mut notes = encode_notes(&meta, self.page_size);
        // The checksum note goes last; its size is known before its content.
        let note_count = note_spans(&notes).count();
        let sums_len = checksum::note_size(note_count, data.len());
        let sums_at = notes.len();
        let mut last = NoteBuf::default();
        last.push(NOTE_OWNER, NT_KCKPT_CHECKSUMS, &vec![0; sums_len]);
        notes.extend_from_slice(last.as_bytes());
        // The file covers every reserved region even if its tail is a hole.
        let notes_offset = self.next_offset;
        let phoff = (notes_offset + notes.len() as u64).next_multiple_of(8);
        let mut phdrs = Vec::with_capacity((meta.vmas.len() + 1) * PHDR_SIZE);
        push_phdr(
            &mut phdrs,
            PT_NOTE,
            4,
            notes_offset,
            0,
            notes.len() as u64,
            0,
            4,
        );
        for vma in &meta.vmas {
            let flags = (if vma.prot & prot::READ != 0 { 4 } else { 0 })
                | (if vma.prot & prot::WRITE != 0 { 2 } else { 0 })
                | (if vma.prot & prot::EXEC != 0 { 1 } else { 0 });
            let size = vma.end - vma.start;
            // An area without stored pages points at the notes, not at
            // offset 0: gdb took each such header at offset 0 for one
            // more thread (13 phantom threads per real one).
            let (offset, filesz) = match meta.runs.get(vma.first_run as usize) {
                Some(run) if vma.run_count > 0 => (run.offset - (run.start - vma.start), size),
                _ => (notes_offset, 0),
            };
            push_phdr(
                &mut phdrs,
                PT_LOAD,
                flags,
                offset,
                vma.start,
                filesz,
                size,
                self.page_size,
            );
        }
        let phnum = u16::try_from(meta.vmas.len() + 1)
            .map_err(|_| io::Error::other("too many memory areas for one ELF file (over 65535)"))?;
        let ehdr = elf_header(self.machine, phoff, phnum);
        let record = ChecksumsRecord {
            algorithm: CHECKSUM_CRC32C,
            chunk_shift: DEFAULT_CHUNK_SHIFT,
            flags: if self.data_sums {
                0
            } else {
                checksum_flags::NO_DATA
            },
            note_count: note_count as u32,
            data_count: u32::try_from(data.len())
                .map_err(|_| io::Error::other("too much data for the checksum note"))?,
            sums_offset: core::mem::size_of::<ChecksumsRecord>() as u32,
            elf_header: chunk_sum(&ehdr),
            program_headers: chunk_sum(&phdrs),
        };
        let desc_at = notes.len() - sums_len;
        let mut desc = Vec::with_capacity(sums_len);
        desc.extend_from_slice(record_bytes(&record));
        for (_, span) in note_spans(&notes[..sums_at]) {
            desc.extend_from_slice(&chunk_sum(span).to_le_bytes());
        }
        for sum in &data {
            desc.extend_from_slice(&sum.to_le_bytes());
        }
        let own = chunk_sum(&desc);
        desc.extend_from_slice(&own.to_le_bytes());
        notes[desc_at..].copy_from_slice(&desc);
        self.file.write_all_at(&notes, notes_offset)?;
        self.file.write_all_at(&phdrs, phoff)?;
        self.file.write_all_at(&ehdr, 0)?;
        Ok((self.file, checksum::crc32c(&desc)))
    }
}

#[allow(clippy::too_many_arguments)]
fn push_phdr(
    out: &mut Vec<u8>,
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
) {
    out.extend_from_slice(&p_type.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&vaddr.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // p_paddr
    out.extend_from_slice(&filesz.to_le_bytes());
    out.extend_from_slice(&memsz.to_le_bytes());
    out.extend_from_slice(&align.to_le_bytes());
}

/// The ELF header of an image.
pub fn elf_header(machine: u16, phoff: u64, phnum: u16) -> [u8; EHDR_SIZE] {
    let mut h = [0u8; EHDR_SIZE];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // ELFCLASS64
    h[5] = 1; // little endian
    h[6] = 1; // EV_CURRENT
    h[IDENT_MARKER_OFFSET..IDENT_MARKER_OFFSET + IDENT_MARKER.len()].copy_from_slice(&IDENT_MARKER);
    h[16..18].copy_from_slice(&ET_CORE.to_le_bytes());
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes()); // e_version
    h[32..40].copy_from_slice(&phoff.to_le_bytes());
    h[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    h[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    h[56..58].copy_from_slice(&phnum.to_le_bytes());
    h[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    h
}

/// The NT_FILE descriptor for the file-backed VMAs.
fn file_note(meta: &ImageMetadata, page_size: u64) -> Vec<u8> {
    let files: Vec<&VmaRecord> = meta
        .vmas
        .iter()
        .filter(|v| v.kind == vma_kind::FILE && v.flags & vma_flags::FILE_UNAVAILABLE == 0)
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(&(files.len() as u64).to_le_bytes());
    out.extend_from_slice(&page_size.to_le_bytes());
    for v in &files {
        out.extend_from_slice(&v.start.to_le_bytes());
        out.extend_from_slice(&v.end.to_le_bytes());
        out.extend_from_slice(&(v.file_pgoff / page_size).to_le_bytes());
    }
    for v in &files {
        let start = v.name.offset as usize;
        out.extend_from_slice(&meta.strings.as_bytes()[start..start + v.name.len as usize]);
        out.push(0);
    }
    out
}

fn encode_notes(meta: &ImageMetadata, page_size: u64) -> Vec<u8> {
    let mut n = NoteBuf::default();
    n.push_record(NOTE_OWNER, NT_KCKPT_HEADER, &meta.header);
    n.push_record(NOTE_OWNER, NT_KCKPT_MM, &meta.mm);
    n.push_record(NOTE_OWNER, NT_KCKPT_SIGNALS, &meta.signals);
    if let Some(process) = &meta.process {
        n.push_record(NOTE_OWNER, NT_KCKPT_PROCESS, process);
    }
    push_table(&mut n, NT_KCKPT_PENDING, &meta.pending);
    encode_timers(&mut n, &meta.timers);
    n.push(NOTE_OWNER, NT_KCKPT_STRINGS, meta.strings.as_bytes());
    // Present even when empty.
    n.push(NOTE_OWNER, NT_KCKPT_VMAS, &table_bytes(&meta.vmas));
    n.push(NOTE_OWNER, NT_KCKPT_RUNS, &table_bytes(&meta.runs));
    push_table(
        &mut n,
        kckpt_image::pagerefs::NT_KCKPT_PAGE_REFS,
        &meta.page_refs,
    );
    encode_files(&mut n, &meta.files);
    push_table(&mut n, kckpt_image::sysv::NT_KCKPT_SYSV_SHM, &meta.sysv.shm);
    push_table(
        &mut n,
        kckpt_image::sysv::NT_KCKPT_SYSV_EXTENTS,
        &meta.sysv.extents,
    );
    push_table(&mut n, kckpt_image::sysv::NT_KCKPT_SYSV_SEM, &meta.sysv.sem);
    if !meta.sysv.sem_values.is_empty() {
        let values: Vec<u8> = meta
            .sysv
            .sem_values
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        n.push(
            NOTE_OWNER,
            kckpt_image::sysv::NT_KCKPT_SYSV_SEM_VALUES,
            &values,
        );
    }
    push_table(&mut n, kckpt_image::sysv::NT_KCKPT_SYSV_MSG, &meta.sysv.msg);
    if !meta.sysv.messages.is_empty() {
        n.push(
            NOTE_OWNER,
            kckpt_image::sysv::NT_KCKPT_SYSV_MESSAGES,
            &meta.sysv.messages,
        );
    }
    encode_kstate(&mut n, &meta.kstate);
    if let Some(t) = &meta.tree {
        use kckpt_image::tree::*;
        n.push_record(NOTE_OWNER, NT_KCKPT_TREE, &t.tree);
        n.push(NOTE_OWNER, NT_KCKPT_TREE_PROCS, &table_bytes(&t.procs));
        n.push(NOTE_OWNER, NT_KCKPT_TREE_SLOTS, &table_bytes(&t.slots));
        n.push(NOTE_OWNER, NT_KCKPT_TREE_USES, &table_bytes(&t.uses));
    }
    n.push(CORE_OWNER, nt::PRPSINFO, &meta.prpsinfo);
    n.push(CORE_OWNER, nt::AUXV, &meta.auxv);
    n.push(CORE_OWNER, nt::FILE, &file_note(meta, page_size));
    for t in &meta.threads {
        n.push(CORE_OWNER, nt::PRSTATUS, &t.prstatus);
        for (owner, kind, desc) in &t.regsets {
            n.push(owner, *kind, desc);
        }
        n.push_record(NOTE_OWNER, NT_KCKPT_THREAD, &t.record);
    }
    n.bytes
}

fn encode_timers(n: &mut NoteBuf, timers: &TimersMeta) {
    use kckpt_image::timers::{NT_KCKPT_POSIX_TIMERS, NT_KCKPT_TIMERS};
    if let Some(t) = &timers.itimers {
        n.push_record(NOTE_OWNER, NT_KCKPT_TIMERS, t);
    }
    push_table(n, NT_KCKPT_POSIX_TIMERS, &timers.posix);
}

fn encode_kstate(n: &mut NoteBuf, k: &KstateMeta) {
    if let Some(rec) = &k.kstate {
        n.push_record(NOTE_OWNER, kstate::NT_KCKPT_KSTATE, rec);
    }
    push_table(n, kstate::NT_KCKPT_AIO, &k.aio);
    push_table(n, kstate::NT_KCKPT_CGROUPS, &k.cgroups);
    use kckpt_image::cgroup_props::NT_KCKPT_CGROUP_PROPS;
    push_table(n, NT_KCKPT_CGROUP_PROPS, &k.cgroup_props);
}

fn encode_files(n: &mut NoteBuf, files: &FilesMeta) {
    if let Some(fs) = &files.fs {
        n.push_record(NOTE_OWNER, NT_KCKPT_FS, fs);
    }
    push_table(n, NT_KCKPT_FDS, &files.fds);
    push_table(n, NT_KCKPT_EPOLL, &files.epoll);
    encode_terminals(n, files);
}

fn encode_terminals(n: &mut NoteBuf, files: &FilesMeta) {
    use kckpt_image::terminal::{NT_KCKPT_JOB, NT_KCKPT_TERMINALS};
    push_table(n, NT_KCKPT_TERMINALS, &files.terminals);
    if let Some(job) = &files.job {
        n.push_record(NOTE_OWNER, NT_KCKPT_JOB, job);
    }
    push_table(n, kckpt_image::ghosts::NT_KCKPT_GHOSTS, &files.ghosts);
    push_table(n, kckpt_image::ghosts::NT_KCKPT_EXTENTS, &files.extents);
    push_table(n, kckpt_image::locks::NT_KCKPT_LOCKS, &files.locks);
    push_table(
        n,
        kckpt_image::sockfilter::NT_KCKPT_SOCK_FILTERS,
        &files.sock_filters,
    );
    push_table(n, kckpt_image::fown::NT_KCKPT_FOWNERS, &files.fowners);
    push_table(n, kckpt_image::inotify::NT_KCKPT_INOTIFY, &files.inotify);
    push_table(n, kckpt_image::guards::NT_KCKPT_GUARDS, &files.guards);
}

/// A note holding `records`, none when empty.
fn push_table<T: Record>(n: &mut NoteBuf, kind: u32, records: &[T]) {
    if !records.is_empty() {
        n.push(NOTE_OWNER, kind, &table_bytes(records));
    }
}

/// The bytes of `records`, one after the other.
fn table_bytes<T: Record>(records: &[T]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(core::mem::size_of_val(records));
    records
        .iter()
        .for_each(|r| bytes.extend_from_slice(record_bytes(r)));
    bytes
}

/// Recompute the metadata checksums of an image in memory (ELF header,
/// program header table, every note, the checksum note's own) after its
/// metadata was edited on purpose; data checksums are left as they are.
/// For tests that change one field and expect the reader to judge that
/// field rather than a checksum.
pub fn reseal(image: &mut [u8]) -> io::Result<()> {
    let bad = |e: kckpt_image::FormatError| io::Error::other(e.to_string());
    let len = image.len() as u64;
    let machine = image
        .get(18..20)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .unwrap_or(0);
    let elf = parse_elf_header(image, len, machine).map_err(bad)?;
    let phoff = elf.phoff as usize;
    let phdrs = image[phoff..phoff + elf.phdrs_size()].to_vec();
    let (off, size) = note_segment(&phdrs, len).map_err(bad)?;
    let (off, size) = (off as usize, size as usize);
    let mut ehdr = [0u8; EHDR_SIZE];
    ehdr.copy_from_slice(&image[..EHDR_SIZE]);
    reseal_parts(&ehdr, &phdrs, &mut image[off..off + size])
}

/// [`reseal`] on the parts of an image: its ELF header, its program header
/// table and its note segment, whose checksum note is rewritten (for
/// callers that do not hold the whole file, such as a fuzz target of a
/// sparse image).
pub fn reseal_parts(ehdr: &[u8], phdrs: &[u8], notes: &mut [u8]) -> io::Result<()> {
    let ehdr = ehdr
        .get(..EHDR_SIZE)
        .ok_or_else(|| io::Error::other("short ELF header"))?;
    let spans: Vec<(usize, usize, bool)> = note_spans(notes)
        .map(|(n, span)| {
            let at = span.as_ptr() as usize - notes.as_ptr() as usize;
            (at, span.len(), n.is(NOTE_OWNER, NT_KCKPT_CHECKSUMS))
        })
        .collect();
    let Some(&(last_at, last_len, true)) = spans.last() else {
        return Err(io::Error::other("no checksum note at the end"));
    };
    let desc_at = last_at + 12 + 8;
    let desc_end = last_at + last_len;
    let mut sums = Vec::new();
    for &(at, len, _) in &spans[..spans.len() - 1] {
        sums.extend_from_slice(&chunk_sum(&notes[at..at + len]).to_le_bytes());
    }
    let ehdr_sum = chunk_sum(ehdr);
    let phdr_sum = chunk_sum(phdrs);
    let desc = notes
        .get_mut(desc_at..desc_end)
        .ok_or_else(|| io::Error::other("checksum note too short"))?;
    let record_len = core::mem::size_of::<ChecksumsRecord>();
    if desc.len() < record_len + sums.len() + 4 {
        return Err(io::Error::other("checksum note too short"));
    }
    let at = core::mem::offset_of!(ChecksumsRecord, elf_header);
    desc[at..at + 4].copy_from_slice(&ehdr_sum.to_le_bytes());
    let at = core::mem::offset_of!(ChecksumsRecord, program_headers);
    desc[at..at + 4].copy_from_slice(&phdr_sum.to_le_bytes());
    desc[record_len..record_len + sums.len()].copy_from_slice(&sums);
    let body = desc.len() - 4;
    let own = chunk_sum(&desc[..body]);
    desc[body..].copy_from_slice(&own.to_le_bytes());
    Ok(())
}
