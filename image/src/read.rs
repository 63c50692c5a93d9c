//! Allocation-free reading and validation of kckpt images.
//!
//! The stub uses this module before it touches its address space, so every
//! offset, size and count is checked here and nothing panics on bad input:
//! all slicing goes through `get`, all arithmetic is checked.

use crate::records::*;
use crate::timers::{PosixTimerRecord, TimersRecord, NT_KCKPT_POSIX_TIMERS, NT_KCKPT_TIMERS};

/// Why an image was refused. [`FormatError::message`] is the one-line text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// Shorter than an ELF header, or a structure runs past the end.
    Truncated,
    /// No ELF magic.
    NotElf,
    /// ELF, but not 64-bit little-endian version 1.
    UnsupportedElf,
    /// ELF, but not a core file.
    NotCore,
    /// A core file without kckpt's marker and notes (a plain core dump).
    PlainCore,
    /// Saved for another architecture.
    WrongMachine {
        /// `e_machine` of the image.
        found: u16,
        /// `e_machine` this reader was built for.
        expected: u16,
    },
    /// The program header table is malformed.
    BadProgramHeaders,
    /// No PT_NOTE segment, or more than one.
    BadNoteSegment,
    /// A note's sizes run past its segment.
    BadNote,
    /// A kckpt note is missing or appears twice.
    MissingNote(&'static str),
    /// The header magic is wrong.
    BadHeader,
    /// The format version is not one this reader understands.
    UnsupportedVersion {
        /// Major version in the image.
        major: u16,
        /// Minor version in the image.
        minor: u16,
    },
    /// A record note's size does not match its record type.
    BadRecordSize(&'static str),
    /// VMAs overlap, are unsorted, empty or not page aligned.
    BadVma,
    /// A run lies outside its VMA, is misaligned, or the VMAs' run ranges do
    /// not partition the run table.
    BadRun,
    /// A run's data lies past the end of the file.
    RunPastEnd,
    /// A string reference lies outside the string table.
    BadString,
    /// Thread notes are missing or inconsistent with the header.
    BadThreads,
    /// A pending signal has a bad number or names no saved thread.
    BadPendingSignal,
    /// The file descriptor, epoll or working-directory notes are malformed.
    BadFiles,
    /// A checksum does not match (format 1.2): the ELF header, the program
    /// header table or the note named (`note NT_KCKPT_FDS`).
    BadChecksum(&'static str),
    /// The checksum note is malformed, not last, or its counts do not fit
    /// the image.
    BadChecksumNote,
    /// A field holds a value the format does not allow (an unknown enum
    /// value or flag, a non-zero reserved field, a value the kernel would
    /// refuse at restore): `record: problem`, see [`crate::check`].
    BadField(&'static str),
    /// A thread's saved registers cannot be resumed (a segment selector,
    /// flag or mode the kernel refuses or that traps): what is wrong, from
    /// `kckpt_arch::check_user_regs`.
    BadRegisters(&'static str),
}

impl FormatError {
    /// One line describing the problem, for `kckpt: <message>`, without
    /// the details `Display` adds (which field, which version...).
    pub fn message(&self) -> &'static str {
        match self {
            FormatError::Truncated => "image is truncated",
            FormatError::NotElf => "not a kckpt image (no ELF header)",
            FormatError::UnsupportedElf => {
                "not a kckpt image (not a 64-bit little-endian ELF file)"
            }
            FormatError::NotCore => "not a kckpt image (ELF file, but not a core file)",
            FormatError::PlainCore => "not a kckpt image (a plain core dump without kckpt notes)",
            FormatError::WrongMachine { .. } => "image was saved on another architecture",
            FormatError::BadProgramHeaders => "image is corrupt (bad program headers)",
            FormatError::BadNoteSegment => "image is corrupt (bad note segment)",
            FormatError::BadNote => "image is corrupt (bad note)",
            FormatError::MissingNote(_) => "image is corrupt (a kckpt note is missing or repeated)",
            FormatError::BadHeader => "image is corrupt (bad kckpt header)",
            FormatError::UnsupportedVersion { .. } => {
                "image format version is not supported by this kckpt"
            }
            FormatError::BadRecordSize(_) => "image is corrupt (bad record size)",
            FormatError::BadVma => "image is corrupt (bad memory area table)",
            FormatError::BadRun => "image is corrupt (bad stored-page table)",
            FormatError::RunPastEnd => "image is truncated (memory data past end of file)",
            FormatError::BadString => "image is corrupt (bad string reference)",
            FormatError::BadThreads => "image is corrupt (bad thread notes)",
            FormatError::BadPendingSignal => "image is corrupt (bad pending signal)",
            FormatError::BadFiles => "image is corrupt (bad file descriptor table)",
            FormatError::BadChecksum(_) => "image is corrupt (a checksum does not match)",
            FormatError::BadChecksumNote => "image is corrupt (bad checksum note)",
            FormatError::BadField(_) => "image is corrupt (a field has a value the format forbids)",
            FormatError::BadRegisters(_) => "image is corrupt (saved registers cannot be resumed)",
        }
    }
}

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FormatError::WrongMachine { found, expected } => write!(
                f,
                "image was saved on another architecture ({}, this is {})",
                machine_name(*found),
                machine_name(*expected)
            ),
            FormatError::UnsupportedVersion { major, minor } => write!(
                f,
                "image format version {major}.{minor} is not supported (this kckpt reads {FORMAT_MAJOR}.0 to {FORMAT_MAJOR}.{FORMAT_MINOR})"
            ),
            FormatError::MissingNote(which) => {
                write!(f, "image is corrupt (note {which} missing or repeated)")
            }
            FormatError::BadRecordSize(which) => {
                write!(f, "image is corrupt (bad size of note {which})")
            }
            FormatError::BadChecksum(which) => {
                write!(f, "image is corrupt (checksum of {which} does not match)")
            }
            FormatError::BadField(what) => write!(f, "image is corrupt ({what})"),
            FormatError::BadRegisters(what) => write!(f, "image is corrupt (registers: {what})"),
            other => f.write_str(other.message()),
        }
    }
}

/// Human name of an ELF machine number.
pub fn machine_name(machine: u16) -> &'static str {
    match machine {
        EM_X86_64 => "x86_64",
        EM_AARCH64 => "aarch64",
        3 => "i386",
        40 => "arm",
        243 => "riscv",
        _ => "unknown",
    }
}

/// `EM_X86_64`.
pub const EM_X86_64: u16 = 62;
/// `EM_AARCH64`.
pub const EM_AARCH64: u16 = 183;
/// `ET_CORE`.
pub const ET_CORE: u16 = 4;
/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;
/// `PT_NOTE`.
pub const PT_NOTE: u32 = 4;
/// Size of an ELF64 header.
pub const EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header.
pub const PHDR_SIZE: usize = 56;
/// Largest note segment a reader accepts (64 MiB): bounds the stub's buffer.
pub const MAX_NOTES_SIZE: u64 = 64 << 20;
/// Largest program header count accepted.
pub const MAX_PHNUM: u16 = 0xfff0;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Copy a record out of `bytes` (any alignment). `None` if too short.
pub fn read_record<T: Record>(bytes: &[u8]) -> Option<T> {
    let size = core::mem::size_of::<T>();
    let src = bytes.get(..size)?;
    let mut out = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: `src` has exactly size_of::<T>() bytes; `T: Record` guarantees
    // every bit pattern is a valid `T`, so after copying all bytes `out` is
    // fully initialised.
    unsafe {
        core::ptr::copy_nonoverlapping(src.as_ptr(), out.as_mut_ptr().cast::<u8>(), size);
        Some(out.assume_init())
    }
}

/// The bytes of a record, for writing.
pub fn record_bytes<T: Record>(value: &T) -> &[u8] {
    // SAFETY: `T: Record` has no padding, so all size_of::<T>() bytes of
    // `*value` are initialised; the slice borrows `value`.
    unsafe {
        core::slice::from_raw_parts((value as *const T).cast::<u8>(), core::mem::size_of::<T>())
    }
}

/// What the ELF header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfSummary {
    /// `e_machine`.
    pub machine: u16,
    /// `e_phoff`.
    pub phoff: u64,
    /// `e_phnum`.
    pub phnum: u16,
}

impl ElfSummary {
    /// Byte size of the program header table.
    pub fn phdrs_size(&self) -> usize {
        usize::from(self.phnum) * PHDR_SIZE
    }
}

/// Check the ELF header (the first [`EHDR_SIZE`] bytes of the file) of an
/// image meant for `machine`, in a file of `file_len` bytes.
pub fn parse_elf_header(
    bytes: &[u8],
    file_len: u64,
    machine: u16,
) -> Result<ElfSummary, FormatError> {
    if bytes.len() < 4 || bytes[..4] != *b"\x7fELF" {
        return Err(if bytes.len() < 4 {
            FormatError::Truncated
        } else {
            FormatError::NotElf
        });
    }
    if bytes.len() < EHDR_SIZE || file_len < EHDR_SIZE as u64 {
        return Err(FormatError::Truncated);
    }
    // EI_CLASS = ELFCLASS64, EI_DATA = little endian, EI_VERSION = 1.
    if bytes[4] != 2 || bytes[5] != 1 || bytes[6] != 1 {
        return Err(FormatError::UnsupportedElf);
    }
    let e_type = u16_at(bytes, 16).ok_or(FormatError::Truncated)?;
    if e_type != ET_CORE {
        return Err(FormatError::NotCore);
    }
    let off = IDENT_MARKER_OFFSET;
    if bytes[off..off + IDENT_MARKER.len()] != IDENT_MARKER {
        return Err(FormatError::PlainCore);
    }
    let found = u16_at(bytes, 18).ok_or(FormatError::Truncated)?;
    if found != machine {
        return Err(FormatError::WrongMachine {
            found,
            expected: machine,
        });
    }
    let phoff = u64_at(bytes, 32).ok_or(FormatError::Truncated)?;
    let phentsize = u16_at(bytes, 54).ok_or(FormatError::Truncated)?;
    let phnum = u16_at(bytes, 56).ok_or(FormatError::Truncated)?;
    if usize::from(phentsize) != PHDR_SIZE || phnum == 0 || phnum > MAX_PHNUM {
        return Err(FormatError::BadProgramHeaders);
    }
    let end = phoff
        .checked_add(u64::from(phnum) * PHDR_SIZE as u64)
        .ok_or(FormatError::BadProgramHeaders)?;
    if end > file_len {
        return Err(FormatError::Truncated);
    }
    Ok(ElfSummary {
        machine: found,
        phoff,
        phnum,
    })
}

/// One program header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramHeader {
    /// `p_type`.
    pub p_type: u32,
    /// `p_flags`.
    pub p_flags: u32,
    /// `p_offset`.
    pub p_offset: u64,
    /// `p_vaddr`.
    pub p_vaddr: u64,
    /// `p_filesz`.
    pub p_filesz: u64,
    /// `p_memsz`.
    pub p_memsz: u64,
    /// `p_align`.
    pub p_align: u64,
}

/// Iterate the program headers in `table` (the bytes at `e_phoff`).
pub fn program_headers(table: &[u8]) -> impl Iterator<Item = ProgramHeader> + '_ {
    table.chunks_exact(PHDR_SIZE).map(|p| ProgramHeader {
        p_type: u32_at(p, 0).unwrap_or(0),
        p_flags: u32_at(p, 4).unwrap_or(0),
        p_offset: u64_at(p, 8).unwrap_or(0),
        p_vaddr: u64_at(p, 16).unwrap_or(0),
        p_filesz: u64_at(p, 32).unwrap_or(0),
        p_memsz: u64_at(p, 40).unwrap_or(0),
        p_align: u64_at(p, 48).unwrap_or(0),
    })
}

/// Find the single PT_NOTE segment and check every header against the file
/// length. Returns (offset, size) of the notes.
pub fn note_segment(table: &[u8], file_len: u64) -> Result<(u64, u64), FormatError> {
    let mut found = None;
    for ph in program_headers(table) {
        let end = ph
            .p_offset
            .checked_add(ph.p_filesz)
            .ok_or(FormatError::BadProgramHeaders)?;
        if end > file_len {
            return Err(FormatError::Truncated);
        }
        if ph.p_type == PT_LOAD && ph.p_filesz > ph.p_memsz {
            return Err(FormatError::BadProgramHeaders);
        }
        if ph.p_type == PT_NOTE {
            if found.is_some() {
                return Err(FormatError::BadNoteSegment);
            }
            found = Some((ph.p_offset, ph.p_filesz));
        }
    }
    let (off, size) = found.ok_or(FormatError::BadNoteSegment)?;
    if size == 0 || size > MAX_NOTES_SIZE {
        return Err(FormatError::BadNoteSegment);
    }
    Ok((off, size))
}

/// One ELF note.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    /// Owner name without the terminating NUL.
    pub owner: &'a [u8],
    /// `n_type`.
    pub kind: u32,
    /// The descriptor bytes.
    pub desc: &'a [u8],
}

impl Note<'_> {
    /// Is this note `kind` from `owner`?
    pub fn is(&self, owner: &[u8], kind: u32) -> bool {
        self.kind == kind && self.owner == owner
    }
}

/// Iterator over the notes of a note segment; yields an error and stops on
/// the first malformed note.
#[derive(Clone, Debug)]
pub struct Notes<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Notes<'a> {
    /// Iterate over `segment`.
    pub fn new(segment: &'a [u8]) -> Self {
        Notes {
            rest: segment,
            failed: false,
        }
    }
}

const fn pad4(n: usize) -> Option<usize> {
    match n.checked_add(3) {
        Some(v) => Some(v & !3),
        None => None,
    }
}

impl<'a> Iterator for Notes<'a> {
    type Item = Result<Note<'a>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let namesz = u32_at(self.rest, 0)? as usize;
            let descsz = u32_at(self.rest, 4)? as usize;
            let kind = u32_at(self.rest, 8)?;
            let name_start = 12usize;
            let desc_start = name_start.checked_add(pad4(namesz)?)?;
            let next = desc_start.checked_add(pad4(descsz)?)?;
            let name = self.rest.get(name_start..name_start + namesz)?;
            let desc = self.rest.get(desc_start..desc_start.checked_add(descsz)?)?;
            let owner = match name.split_last() {
                Some((0, owner)) => owner,
                _ => name,
            };
            let rest = self.rest.get(next.min(self.rest.len())..)?;
            Some((Note { owner, kind, desc }, rest))
        })();
        match parsed {
            Some((note, rest)) => {
                self.rest = rest;
                Some(Ok(note))
            }
            None => {
                self.failed = true;
                Some(Err(FormatError::BadNote))
            }
        }
    }
}

/// A validated table of records inside a note.
#[derive(Clone, Copy, Debug)]
pub struct RecordTable<'a, T: Record> {
    bytes: &'a [u8],
    _marker: core::marker::PhantomData<T>,
}

impl<'a, T: Record> RecordTable<'a, T> {
    fn new(bytes: &'a [u8], what: &'static str) -> Result<Self, FormatError> {
        if !bytes.len().is_multiple_of(core::mem::size_of::<T>()) {
            return Err(FormatError::BadRecordSize(what));
        }
        Ok(RecordTable {
            bytes,
            _marker: core::marker::PhantomData,
        })
    }
    /// Number of records.
    pub fn len(&self) -> usize {
        self.bytes.len() / core::mem::size_of::<T>()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// Record `i`, if in range.
    pub fn get(&self, i: usize) -> Option<T> {
        let size = core::mem::size_of::<T>();
        read_record(self.bytes.get(i.checked_mul(size)?..)?)
    }
    /// Records `first..first + count` (those in range), in order: the
    /// part of a table one record owns (its extents, say).
    pub fn span(&self, first: u32, count: u32) -> impl Iterator<Item = T> + 'a {
        let table = *self;
        let first = first as usize;
        (first..first.saturating_add(count as usize)).map_while(move |i| table.get(i))
    }
    /// All records in order.
    pub fn iter(&self) -> impl Iterator<Item = T> + 'a {
        let bytes = self.bytes;
        bytes
            .chunks_exact(core::mem::size_of::<T>())
            .filter_map(read_record)
    }
    /// The raw bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// The notes belonging to one thread: its NT_PRSTATUS and everything after
/// it up to the next NT_PRSTATUS.
#[derive(Clone, Copy, Debug)]
pub struct ThreadNotes<'a> {
    /// NT_PRSTATUS descriptor (`elf_prstatus`).
    pub prstatus: &'a [u8],
    /// The thread's NT_KCKPT_THREAD record.
    pub record: ThreadRecord,
    group: &'a [u8],
}

impl<'a> ThreadNotes<'a> {
    /// The descriptor of the first note `kind` from `owner` in this thread's
    /// group (e.g. `LINUX_OWNER`, `nt::X86_XSTATE`).
    pub fn regset(&self, owner: &[u8], kind: u32) -> Option<&'a [u8]> {
        Notes::new(self.group)
            .map_while(Result::ok)
            .find(|n| n.is(owner, kind))
            .map(|n| n.desc)
    }
}

/// Iterator over the threads of an image (validated by [`ImageView::parse`]).
#[derive(Clone, Debug)]
pub struct Threads<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Threads<'a> {
    type Item = ThreadNotes<'a>;
    fn next(&mut self) -> Option<ThreadNotes<'a>> {
        let (group, rest) = next_thread_group(self.rest)?;
        self.rest = rest;
        thread_from_group(group)
    }
}

/// Split off the next thread group: returns (group, remaining) where group
/// starts at an NT_PRSTATUS note.
fn next_thread_group(segment: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut offset = 0usize;
    let mut start = None;
    let mut notes = Notes::new(segment);
    loop {
        let before = segment.len() - notes.rest.len();
        match notes.next() {
            Some(Ok(note)) => {
                if note.is(CORE_OWNER, nt::PRSTATUS) {
                    match start {
                        None => start = Some(before),
                        Some(s) => return Some((&segment[s..before], &segment[before..])),
                    }
                }
                offset = segment.len() - notes.rest.len();
            }
            Some(Err(_)) => return None,
            None => {
                let s = start?;
                return Some((&segment[s..offset], &segment[offset..]));
            }
        }
    }
}

fn thread_from_group(group: &[u8]) -> Option<ThreadNotes<'_>> {
    let mut prstatus = None;
    let mut record = None;
    for note in Notes::new(group) {
        let note = note.ok()?;
        if note.is(CORE_OWNER, nt::PRSTATUS) && prstatus.is_none() {
            prstatus = Some(note.desc);
        } else if note.is(NOTE_OWNER, NT_KCKPT_THREAD) && record.is_none() {
            if note.desc.len() < core::mem::size_of::<ThreadRecord>() {
                return None;
            }
            record = read_record::<ThreadRecord>(note.desc);
        }
    }
    Some(ThreadNotes {
        prstatus: prstatus?,
        record: record?,
        group,
    })
}

/// A parsed, fully validated view of an image's notes.
#[derive(Clone, Copy, Debug)]
pub struct ImageView<'a> {
    /// The header.
    pub header: ImageHeader,
    /// The mm fields.
    pub mm: MmRecord,
    /// Signal dispositions.
    pub signals: SignalsRecord,
    /// VMAs, sorted and non-overlapping.
    pub vmas: RecordTable<'a, VmaRecord>,
    /// Stored-page runs, partitioned among the VMAs.
    pub runs: RecordTable<'a, RunRecord>,
    /// The raw auxiliary vector (NT_AUXV), empty if absent.
    pub auxv: &'a [u8],
    /// Format 1.1: rlimits, personality, dumpable, no_new_privs (`None` in
    /// older images).
    pub process: Option<ProcessRecord>,
    /// Format 1.1: pending signals in queue order (empty in older images).
    pub pending: RecordTable<'a, PendingSignalRecord>,
    /// Working directory and umask (format 1.1; `None` in older images).
    pub fs: Option<FsRecord>,
    /// File descriptors, sorted (format 1.1; empty in older images).
    pub fds: RecordTable<'a, FdRecord>,
    /// Epoll interest lists (format 1.1; empty in older images).
    pub epoll: RecordTable<'a, EpollItemRecord>,
    /// Interval timers and the timer-id mode (format 1.3; `None` in older
    /// images).
    pub timers: Option<TimersRecord>,
    /// POSIX timers, sorted by id (format 1.3; empty in older images).
    pub posix_timers: RecordTable<'a, PosixTimerRecord>,
    /// Process-wide kernel state (format 1.3, `crate::kstate`; `None` in
    /// older images).
    pub kstate: Option<crate::kstate::KstateRecord>,
    /// Asynchronous I/O rings (format 1.3; empty in older images).
    pub aio: RecordTable<'a, crate::kstate::AioRingRecord>,
    /// cgroup membership (format 1.3; empty in older images).
    pub cgroups: RecordTable<'a, crate::kstate::CgroupRecord>,
    /// Settings of the saved cgroups (format 1.3; empty in older images).
    pub cgroup_props: RecordTable<'a, crate::cgroup_props::CgroupPropRecord>,
    /// Modes of the terminals at fds 0-2 and of the controlling terminal
    /// (format 1.3; empty in older images).
    pub terminals: RecordTable<'a, crate::terminal::TerminalRecord>,
    /// Process group and session (format 1.3; `None` in older images).
    pub job: Option<crate::terminal::JobRecord>,
    /// Files whose content is in the image (format 1.3; empty before).
    pub ghosts: RecordTable<'a, crate::ghosts::GhostRecord>,
    /// The stored ranges of their content (format 1.3).
    pub extents: RecordTable<'a, crate::ghosts::ExtentRecord>,
    /// SysV shared memory segments (format 1.10; empty before, and in
    /// a sub-image).
    pub sysv_shm: RecordTable<'a, crate::sysv::SysvShmRecord>,
    /// The stored ranges of their content (format 1.10).
    pub sysv_extents: RecordTable<'a, crate::ghosts::ExtentRecord>,
    /// SysV semaphore sets (format 1.11; empty before, and in a
    /// sub-image).
    pub sysv_sem: RecordTable<'a, crate::sysv::SysvSemRecord>,
    /// Their values, `u16` each (format 1.11).
    pub sysv_sem_values: &'a [u8],
    /// SysV message queues (format 1.11; empty before, and in a
    /// sub-image).
    pub sysv_msg: RecordTable<'a, crate::sysv::SysvMsgQueueRecord>,
    /// Their messages (format 1.11; `crate::sysv::messages`).
    pub sysv_messages: &'a [u8],
    /// File locks (format 1.3; empty before).
    pub locks: RecordTable<'a, crate::locks::LockRecord>,
    /// Socket filters (format 1.8; empty before).
    pub sock_filters: RecordTable<'a, crate::sockfilter::SockFilterRecord>,
    /// Owners of descriptors' I/O signals (format 1.4; empty before).
    pub fowners: RecordTable<'a, crate::fown::FownRecord>,
    /// Guard regions (format 1.3; empty before).
    pub guards: RecordTable<'a, crate::guards::GuardRecord>,
    /// Inotify watches (format 1.3; empty before).
    pub inotify: RecordTable<'a, crate::inotify::InotifyWatchRecord>,
    /// Process tree header (format 1.4; `None` in a single-process image).
    pub tree: Option<crate::tree::TreeRecord>,
    /// The tree's processes, index 0 this image (format 1.4; empty in a
    /// single-process image).
    pub tree_procs: RecordTable<'a, crate::tree::TreeProcRecord>,
    /// Open file descriptions shared between processes of the tree.
    pub tree_slots: RecordTable<'a, crate::tree::TreeSlotRecord>,
    /// Which descriptor of which process is which slot.
    pub tree_uses: RecordTable<'a, crate::tree::TreeUseRecord>,
    /// Pages stored by earlier processes of the tree (format 1.6; empty
    /// but in a sub-image that shares pages).
    pub page_refs: RecordTable<'a, crate::pagerefs::PageRefRecord>,
    strings: &'a [u8],
    notes: &'a [u8],
}

fn take_unique<'a>(
    slot: &mut Option<&'a [u8]>,
    desc: &'a [u8],
    what: &'static str,
) -> Result<(), FormatError> {
    if slot.replace(desc).is_some() {
        return Err(FormatError::MissingNote(what));
    }
    Ok(())
}

fn exact_record<T: Record>(desc: Option<&[u8]>, what: &'static str) -> Result<T, FormatError> {
    let desc = desc.ok_or(FormatError::MissingNote(what))?;
    // Later minor versions may append fields: accept longer, never shorter.
    if desc.len() < core::mem::size_of::<T>() {
        return Err(FormatError::BadRecordSize(what));
    }
    read_record(desc).ok_or(FormatError::BadRecordSize(what))
}

/// [`exact_record`] of a note that may be absent (`None`).
fn optional_record<T: Record>(
    desc: Option<&[u8]>,
    what: &'static str,
) -> Result<Option<T>, FormatError> {
    desc.map(|d| exact_record(Some(d), what)).transpose()
}

impl<'a> ImageView<'a> {
    /// Parse and validate the note segment of an image for `machine` whose
    /// file is `file_len` bytes long.
    pub fn parse(notes: &'a [u8], machine: u16, file_len: u64) -> Result<Self, FormatError> {
        let mut header = None;
        let mut mm = None;
        let mut signals = None;
        let mut vmas = None;
        let mut runs = None;
        let mut strings = None;
        let mut auxv = None;
        let mut process = None;
        let mut pending = None;
        let (mut fs, mut fds, mut epoll) = (None, None, None);
        let (mut timers, mut posix_timers) = (None, None);
        let (mut terminals, mut job) = (None, None);
        let (mut ghosts, mut extents, mut locks) = (None, None, None);
        let mut sock_filters = None;
        let (mut sysv_shm, mut sysv_extents) = (None, None);
        let (mut sysv_sem, mut sysv_sem_values) = (None, None);
        let (mut sysv_msg, mut sysv_messages) = (None, None);
        let (mut guards, mut inotify, mut fowners) = (None, None, None);
        let (mut tree, mut tree_procs, mut tree_slots, mut tree_uses) = (None, None, None, None);
        let mut checksums = None;
        let mut page_refs = None;
        let (mut kstate, mut aio, mut cgroups) = (None, None, None);
        let mut cgroup_props = None;
        let mut thread_notes = 0u32;
        let mut first = true;
        for note in Notes::new(notes) {
            let note = note?;
            if first {
                first = false;
                if !note.is(NOTE_OWNER, NT_KCKPT_HEADER) {
                    return Err(FormatError::MissingNote("header"));
                }
            }
            if note.owner == NOTE_OWNER {
                match note.kind {
                    NT_KCKPT_HEADER => take_unique(&mut header, note.desc, "header")?,
                    NT_KCKPT_MM => take_unique(&mut mm, note.desc, "mm")?,
                    NT_KCKPT_SIGNALS => take_unique(&mut signals, note.desc, "signals")?,
                    NT_KCKPT_VMAS => take_unique(&mut vmas, note.desc, "vmas")?,
                    NT_KCKPT_RUNS => take_unique(&mut runs, note.desc, "runs")?,
                    NT_KCKPT_STRINGS => take_unique(&mut strings, note.desc, "strings")?,
                    NT_KCKPT_THREAD => thread_notes += 1,
                    NT_KCKPT_PROCESS => take_unique(&mut process, note.desc, "process")?,
                    NT_KCKPT_PENDING => take_unique(&mut pending, note.desc, "pending")?,
                    NT_KCKPT_FS => take_unique(&mut fs, note.desc, "fs")?,
                    NT_KCKPT_FDS => take_unique(&mut fds, note.desc, "fds")?,
                    NT_KCKPT_EPOLL => take_unique(&mut epoll, note.desc, "epoll")?,
                    crate::ghosts::NT_KCKPT_GHOSTS => {
                        take_unique(&mut ghosts, note.desc, "ghosts")?
                    }
                    crate::ghosts::NT_KCKPT_EXTENTS => {
                        take_unique(&mut extents, note.desc, "extents")?
                    }
                    crate::sysv::NT_KCKPT_SYSV_SHM => {
                        take_unique(&mut sysv_shm, note.desc, "SysV segments")?
                    }
                    crate::sysv::NT_KCKPT_SYSV_EXTENTS => {
                        take_unique(&mut sysv_extents, note.desc, "SysV extents")?
                    }
                    crate::sysv::NT_KCKPT_SYSV_SEM => {
                        take_unique(&mut sysv_sem, note.desc, "SysV semaphores")?
                    }
                    crate::sysv::NT_KCKPT_SYSV_SEM_VALUES => {
                        take_unique(&mut sysv_sem_values, note.desc, "SysV semaphore values")?
                    }
                    crate::sysv::NT_KCKPT_SYSV_MSG => {
                        take_unique(&mut sysv_msg, note.desc, "SysV message queues")?
                    }
                    crate::sysv::NT_KCKPT_SYSV_MESSAGES => {
                        take_unique(&mut sysv_messages, note.desc, "SysV messages")?
                    }
                    crate::locks::NT_KCKPT_LOCKS => take_unique(&mut locks, note.desc, "locks")?,
                    crate::sockfilter::NT_KCKPT_SOCK_FILTERS => {
                        take_unique(&mut sock_filters, note.desc, "socket filters")?
                    }
                    crate::fown::NT_KCKPT_FOWNERS => {
                        take_unique(&mut fowners, note.desc, "file owners")?
                    }
                    crate::inotify::NT_KCKPT_INOTIFY => {
                        take_unique(&mut inotify, note.desc, "inotify")?
                    }
                    crate::guards::NT_KCKPT_GUARDS => {
                        take_unique(&mut guards, note.desc, "guards")?
                    }
                    NT_KCKPT_CHECKSUMS => take_unique(&mut checksums, note.desc, "checksums")?,
                    NT_KCKPT_TIMERS => take_unique(&mut timers, note.desc, "timers")?,
                    NT_KCKPT_POSIX_TIMERS => {
                        take_unique(&mut posix_timers, note.desc, "posix timers")?
                    }
                    crate::kstate::NT_KCKPT_KSTATE => {
                        take_unique(&mut kstate, note.desc, "kstate")?
                    }
                    crate::kstate::NT_KCKPT_AIO => take_unique(&mut aio, note.desc, "aio")?,
                    crate::kstate::NT_KCKPT_CGROUPS => {
                        take_unique(&mut cgroups, note.desc, "cgroups")?
                    }
                    crate::cgroup_props::NT_KCKPT_CGROUP_PROPS => {
                        take_unique(&mut cgroup_props, note.desc, "cgroup settings")?
                    }
                    crate::terminal::NT_KCKPT_TERMINALS => {
                        take_unique(&mut terminals, note.desc, "terminals")?
                    }
                    crate::terminal::NT_KCKPT_JOB => take_unique(&mut job, note.desc, "job")?,
                    crate::tree::NT_KCKPT_TREE => take_unique(&mut tree, note.desc, "tree")?,
                    crate::tree::NT_KCKPT_TREE_PROCS => {
                        take_unique(&mut tree_procs, note.desc, "tree processes")?
                    }
                    crate::tree::NT_KCKPT_TREE_SLOTS => {
                        take_unique(&mut tree_slots, note.desc, "tree slots")?
                    }
                    crate::tree::NT_KCKPT_TREE_USES => {
                        take_unique(&mut tree_uses, note.desc, "tree uses")?
                    }
                    crate::pagerefs::NT_KCKPT_PAGE_REFS => {
                        take_unique(&mut page_refs, note.desc, "shared pages")?
                    }
                    _ => {}
                }
            } else if note.is(CORE_OWNER, nt::AUXV) {
                take_unique(&mut auxv, note.desc, "auxv")?;
            }
        }
        let header_desc = header.ok_or(FormatError::MissingNote("header"))?;
        if header_desc.len() < 8 || header_desc[..8] != HEADER_MAGIC {
            return Err(FormatError::BadHeader);
        }
        // Check the version before the size: a future major may change it.
        let major = u16_at(header_desc, 8).ok_or(FormatError::BadHeader)?;
        let minor = u16_at(header_desc, 10).ok_or(FormatError::BadHeader)?;
        if major != FORMAT_MAJOR || minor > FORMAT_MINOR {
            return Err(FormatError::UnsupportedVersion { major, minor });
        }
        // 1.2: metadata checksums (`checksum::verify_metadata` checks them).
        if minor >= CHECKSUMS_SINCE_MINOR && checksums.is_none() {
            return Err(FormatError::MissingNote("checksums"));
        }
        let header: ImageHeader = exact_record(Some(header_desc), "header")?;
        if header.machine != machine {
            return Err(FormatError::WrongMachine {
                found: header.machine,
                expected: machine,
            });
        }
        let page_size = u64::from(header.page_size);
        if !page_size.is_power_of_two() || !(4096..=65536).contains(&page_size) {
            return Err(FormatError::BadHeader);
        }
        let view = ImageView {
            header,
            mm: exact_record(mm, "mm")?,
            signals: exact_record(signals, "signals")?,
            vmas: RecordTable::new(vmas.ok_or(FormatError::MissingNote("vmas"))?, "vmas")?,
            runs: RecordTable::new(runs.ok_or(FormatError::MissingNote("runs"))?, "runs")?,
            auxv: auxv.unwrap_or(&[]),
            process: optional_record(process, "process")?,
            pending: RecordTable::new(pending.unwrap_or(&[]), "pending")?,
            fs: optional_record(fs, "fs")?,
            fds: RecordTable::new(fds.unwrap_or(&[]), "fds")?,
            epoll: RecordTable::new(epoll.unwrap_or(&[]), "epoll")?,
            timers: optional_record(timers, "timers")?,
            posix_timers: RecordTable::new(posix_timers.unwrap_or(&[]), "posix timers")?,
            kstate: optional_record(kstate, "kstate")?,
            aio: RecordTable::new(aio.unwrap_or(&[]), "aio")?,
            cgroups: RecordTable::new(cgroups.unwrap_or(&[]), "cgroups")?,
            cgroup_props: RecordTable::new(cgroup_props.unwrap_or(&[]), "cgroup settings")?,
            terminals: RecordTable::new(terminals.unwrap_or(&[]), "terminals")?,
            job: optional_record(job, "job")?,
            ghosts: RecordTable::new(ghosts.unwrap_or(&[]), "ghosts")?,
            extents: RecordTable::new(extents.unwrap_or(&[]), "extents")?,
            sysv_shm: RecordTable::new(sysv_shm.unwrap_or(&[]), "SysV segments")?,
            sysv_extents: RecordTable::new(sysv_extents.unwrap_or(&[]), "SysV extents")?,
            sysv_sem: RecordTable::new(sysv_sem.unwrap_or(&[]), "SysV semaphores")?,
            sysv_sem_values: sysv_sem_values.unwrap_or(&[]),
            sysv_msg: RecordTable::new(sysv_msg.unwrap_or(&[]), "SysV message queues")?,
            sysv_messages: sysv_messages.unwrap_or(&[]),
            locks: RecordTable::new(locks.unwrap_or(&[]), "locks")?,
            sock_filters: RecordTable::new(sock_filters.unwrap_or(&[]), "socket filters")?,
            fowners: RecordTable::new(fowners.unwrap_or(&[]), "file owners")?,
            inotify: RecordTable::new(inotify.unwrap_or(&[]), "inotify")?,
            guards: RecordTable::new(guards.unwrap_or(&[]), "guards")?,
            tree: optional_record(tree, "tree")?,
            tree_procs: RecordTable::new(tree_procs.unwrap_or(&[]), "tree processes")?,
            tree_slots: RecordTable::new(tree_slots.unwrap_or(&[]), "tree slots")?,
            tree_uses: RecordTable::new(tree_uses.unwrap_or(&[]), "tree uses")?,
            page_refs: RecordTable::new(page_refs.unwrap_or(&[]), "shared pages")?,
            strings: strings.ok_or(FormatError::MissingNote("strings"))?,
            notes,
        };
        view.validate_memory(page_size, file_len)?;
        view.string(view.mm.exe)?;
        view.string(view.mm.cmdline)?;
        crate::files::validate(&view, file_len)?;
        crate::terminal::validate(&view)?;
        crate::ghosts::validate(&view, file_len)?;
        crate::sysv::validate(&view, file_len)?;
        crate::locks::validate(&view)?;
        crate::sockfilter::validate(&view)?;
        crate::fown::validate(&view)?;
        crate::inotify::validate(&view)?;
        crate::guards::validate(&view)?;
        crate::tree::validate(&view, file_len)?;
        crate::pagerefs::validate(&view)?;
        let mut threads = 0u32;
        for thread in view.threads() {
            if thread.prstatus.is_empty() {
                return Err(FormatError::BadThreads);
            }
            threads += 1;
        }
        if threads == 0 || threads != header.thread_count || threads != thread_notes {
            return Err(FormatError::BadThreads);
        }
        view.validate_pending()?;
        crate::kstate::validate(&view)?;
        crate::seccomp::validate(&view)?;
        crate::cgroup_props::validate(&view)?;
        crate::check::fields(&view)?;
        Ok(view)
    }

    fn validate_pending(&self) -> Result<(), FormatError> {
        if let Some(p) = &self.process {
            if p.rlimit_count as usize > RLIMIT_COUNT {
                return Err(FormatError::BadRecordSize("process"));
            }
        }
        // The thread queues come in thread order (docs/FORMAT.md): one walk
        // over the threads, whatever the number of records (a lookup from
        // the start for each record took 6 s for a crafted image of 4,000
        // threads and 40,000 records, minutes for a 64 MiB one).
        let mut threads = self.threads();
        let mut current = None;
        for s in self.pending.iter() {
            let si_signo =
                u32::from_le_bytes([s.siginfo[0], s.siginfo[1], s.siginfo[2], s.siginfo[3]]);
            if s.tid != PENDING_SHARED && current != Some(s.tid) {
                current = threads
                    .by_ref()
                    .map(|t| t.record.tid)
                    .find(|&tid| tid == s.tid);
            }
            let known_thread = s.tid == PENDING_SHARED || current == Some(s.tid);
            if !(1..=64).contains(&s.signo)
                || s.signo == 9
                || s.signo == 19
                || si_signo != s.signo
                || !known_thread
            {
                return Err(FormatError::BadPendingSignal);
            }
        }
        Ok(())
    }

    fn validate_memory(&self, page_size: u64, file_len: u64) -> Result<(), FormatError> {
        let mask = page_size - 1;
        let mut prev_end = 0u64;
        let mut next_run = 0usize;
        for vma in self.vmas.iter() {
            if vma.start & mask != 0
                || vma.end & mask != 0
                || vma.start >= vma.end
                || vma.start < prev_end
            {
                return Err(FormatError::BadVma);
            }
            prev_end = vma.end;
            self.string(vma.name).map_err(|_| FormatError::BadString)?;
            if vma.first_run as usize != next_run {
                return Err(FormatError::BadRun);
            }
            let count = vma.run_count as usize;
            next_run = next_run.checked_add(count).ok_or(FormatError::BadRun)?;
            let mut stored = 0u64;
            let mut cursor = vma.start;
            for i in vma.first_run as usize..next_run {
                let run = self.runs.get(i).ok_or(FormatError::BadRun)?;
                let run_end = run.start.checked_add(run.len).ok_or(FormatError::BadRun)?;
                if run.len == 0
                    || (run.start | run.len | run.offset) & mask != 0
                    || run.start < cursor
                    || run_end > vma.end
                {
                    return Err(FormatError::BadRun);
                }
                cursor = run_end;
                let data_end = run
                    .offset
                    .checked_add(run.len)
                    .ok_or(FormatError::RunPastEnd)?;
                if data_end > file_len {
                    return Err(FormatError::RunPastEnd);
                }
                stored += run.len;
            }
            if stored != vma.stored_bytes {
                return Err(FormatError::BadRun);
            }
        }
        if next_run != self.runs.len() {
            return Err(FormatError::BadRun);
        }
        Ok(())
    }

    /// The bytes a string reference points to.
    pub fn string(&self, r: StrRef) -> Result<&'a [u8], FormatError> {
        let start = r.offset as usize;
        let end = start
            .checked_add(r.len as usize)
            .ok_or(FormatError::BadString)?;
        self.strings.get(start..end).ok_or(FormatError::BadString)
    }

    /// The runs of one VMA.
    pub fn runs_of(&self, vma: &VmaRecord) -> impl Iterator<Item = RunRecord> + 'a {
        let runs = self.runs;
        (vma.first_run as usize..vma.first_run as usize + vma.run_count as usize)
            .filter_map(move |i| runs.get(i))
    }

    /// The threads, in image order (the first is the main thread).
    pub fn threads(&self) -> Threads<'a> {
        Threads { rest: self.notes }
    }

    /// All notes.
    pub fn notes(&self) -> Notes<'a> {
        Notes::new(self.notes)
    }

    /// Total bytes of memory stored in the image.
    pub fn stored_bytes(&self) -> u64 {
        self.vmas.iter().map(|v| v.stored_bytes).sum()
    }
}
