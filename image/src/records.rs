//! The raw `#[repr(C)]` records kckpt stores in its own ELF notes, and the
//! constants that name them.
//!
//! Every record is a plain sequence of little-endian `u64`/`u32` fields with
//! explicit padding, so its size is a multiple of 8 and it has no invalid bit
//! patterns. `docs/FORMAT.md` describes each field; change both together.

/// Major format version: an image whose major differs is refused.
pub const FORMAT_MAJOR: u16 = 1;
/// Minor format version: an image whose minor is greater than ours is refused;
/// older minors are read (fields added in later minors read as zero).
pub const FORMAT_MINOR: u16 = 11;

/// Bytes 9..16 of `e_ident` (padding that ELF readers ignore): marks a core
/// file as a kckpt image so binfmt_misc does not claim plain core dumps.
pub const IDENT_MARKER: [u8; 7] = *b"KCKPT\0\x01";
/// Offset of [`IDENT_MARKER`] inside the ELF header.
pub const IDENT_MARKER_OFFSET: usize = 9;

/// Owner name of kckpt's own notes (without the terminating NUL).
pub const NOTE_OWNER: &[u8] = b"KCKPT";
/// Owner name of the standard core notes (NT_PRSTATUS, NT_AUXV, ...).
pub const CORE_OWNER: &[u8] = b"CORE";
/// Owner name of Linux-specific register notes (NT_X86_XSTATE, NT_ARM_TLS, ...).
pub const LINUX_OWNER: &[u8] = b"LINUX";

/// Note type of [`ImageHeader`]; always the first KCKPT note.
pub const NT_KCKPT_HEADER: u32 = 0x4b43_0001;
/// Note type of [`MmRecord`].
pub const NT_KCKPT_MM: u32 = 0x4b43_0002;
/// Note type of the array of [`VmaRecord`], sorted by address.
pub const NT_KCKPT_VMAS: u32 = 0x4b43_0003;
/// Note type of the array of [`RunRecord`], sorted by address.
pub const NT_KCKPT_RUNS: u32 = 0x4b43_0004;
/// Note type of the string table (file names, command line) that records
/// point into with (offset, length) pairs.
pub const NT_KCKPT_STRINGS: u32 = 0x4b43_0005;
/// Note type of [`SignalsRecord`] (process-wide signal dispositions).
pub const NT_KCKPT_SIGNALS: u32 = 0x4b43_0006;
/// Note type of [`ThreadRecord`]; one per thread, right after that thread's
/// NT_PRSTATUS and register notes.
pub const NT_KCKPT_THREAD: u32 = 0x4b43_0007;

/// Note type of [`FsRecord`] (working directory, umask); format 1.1, optional.
pub const NT_KCKPT_FS: u32 = 0x4b43_0020;
/// Note type of the array of [`FdRecord`], sorted by descriptor number;
/// format 1.1, optional.
pub const NT_KCKPT_FDS: u32 = 0x4b43_0021;
/// Note type of the array of [`EpollItemRecord`] (epoll interest lists);
/// format 1.1, optional.
pub const NT_KCKPT_EPOLL: u32 = 0x4b43_0022;

/// Standard core note types used by kckpt (values from `<linux/elf.h>`).
pub mod nt {
    /// General registers (`elf_prstatus`).
    pub const PRSTATUS: u32 = 1;
    /// FP registers (`user_fpregs_struct` / `user_fpsimd_state`).
    pub const PRFPREG: u32 = 2;
    /// Process info (`elf_prpsinfo`).
    pub const PRPSINFO: u32 = 3;
    /// The auxiliary vector.
    pub const AUXV: u32 = 6;
    /// The siginfo of the signal that stopped the thread.
    pub const SIGINFO: u32 = 0x5349_4749;
    /// Mapped files.
    pub const FILE: u32 = 0x4649_4c45;
    /// x86 extended state (XSAVE standard format).
    pub const X86_XSTATE: u32 = 0x202;
    /// aarch64 TLS register (`tpidr_el0`).
    pub const ARM_TLS: u32 = 0x401;
    /// aarch64 system call number.
    pub const ARM_SYSTEM_CALL: u32 = 0x404;
    /// aarch64 pointer-authentication enabled keys.
    pub const ARM_PAC_ENABLED_KEYS: u32 = 0x40a;
}

/// Marker for plain-old-data records.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, contain only integer fields (or arrays
/// of them) with no implicit padding, so that every bit pattern is valid and
/// every byte is initialised.
pub unsafe trait Record: Copy + 'static {}

/// `ImageHeader::magic`.
pub const HEADER_MAGIC: [u8; 8] = *b"KCKPTHDR";

/// `ImageHeader::flags`: the process had called `execve` (PF_FORKNOEXEC clear).
pub const HEADER_DID_EXEC: u32 = 1 << 0;

/// The versioned header: first KCKPT note of every image.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// [`HEADER_MAGIC`].
    pub magic: [u8; 8],
    /// [`FORMAT_MAJOR`] of the writer.
    pub format_major: u16,
    /// [`FORMAT_MINOR`] of the writer.
    pub format_minor: u16,
    /// ELF machine (`EM_X86_64` = 62, `EM_AARCH64` = 183).
    pub machine: u16,
    /// Reserved, zero.
    pub reserved0: u16,
    /// Page size of the machine that wrote the image.
    pub page_size: u32,
    /// `HEADER_*` flags.
    pub flags: u32,
    /// Pid of the checkpointed process.
    pub pid: u32,
    /// Number of threads (and of NT_KCKPT_THREAD notes).
    pub thread_count: u32,
    /// x86_64: XCR0 of the saving CPU (features the xstate may use).
    pub xcr0: u64,
    /// x86_64: size of each NT_X86_XSTATE note (user xstate size).
    pub xstate_size: u32,
    /// Reserved, zero.
    pub reserved1: u32,
    /// aarch64: AT_HWCAP of the saving process.
    pub hwcap: u64,
    /// aarch64: AT_HWCAP2 of the saving process.
    pub hwcap2: u64,
    /// FNV-1a 64 of the `[vdso]` bytes, 0 if the process had none. The stub
    /// refuses to restore when the running kernel's vDSO differs.
    pub vdso_hash: u64,
    /// Seconds since the epoch when the image was written.
    pub created_unix: u64,
    /// `uname -r` of the saving kernel, NUL-padded.
    pub kernel_release: [u8; 64],
    /// Reserved, zero.
    pub reserved: [u64; 4],
}
// SAFETY: repr(C), integer fields only; 8+2+2+2+2+4*4+8+4+4+8*4+64+32 = 176, no padding.
unsafe impl Record for ImageHeader {}

/// The memory-map fields of the process (`prctl_mm_map` minus auxv/exe).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmRecord {
    /// `mm->start_code`.
    pub start_code: u64,
    /// `mm->end_code`.
    pub end_code: u64,
    /// `mm->start_data`.
    pub start_data: u64,
    /// `mm->end_data`.
    pub end_data: u64,
    /// `mm->start_brk`.
    pub start_brk: u64,
    /// `mm->brk`.
    pub brk: u64,
    /// `mm->start_stack`.
    pub start_stack: u64,
    /// `mm->arg_start`.
    pub arg_start: u64,
    /// `mm->arg_end`.
    pub arg_end: u64,
    /// `mm->env_start`.
    pub env_start: u64,
    /// `mm->env_end`.
    pub env_end: u64,
    /// String-table reference to `/proc/PID/exe`'s target.
    pub exe: StrRef,
    /// String-table reference to the command line (NUL-separated).
    pub cmdline: StrRef,
}
// SAFETY: repr(C), u64 fields and two StrRef (2 x u32); 11*8 + 16 = 104, no padding.
unsafe impl Record for MmRecord {}

/// A reference into the NT_KCKPT_STRINGS table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StrRef {
    /// Byte offset in the string table.
    pub offset: u32,
    /// Length in bytes (no terminator counted).
    pub len: u32,
}
// SAFETY: repr(C), two u32, no padding.
unsafe impl Record for StrRef {}

/// `VmaRecord::kind`: what backs a VMA.
pub mod vma_kind {
    /// Anonymous memory.
    pub const ANONYMOUS: u32 = 1;
    /// A file mapping (private or shared).
    pub const FILE: u32 = 2;
    /// `[heap]`.
    pub const HEAP: u32 = 3;
    /// `[stack]`.
    pub const STACK: u32 = 4;
    /// `[vdso]`: recorded, not stored.
    pub const VDSO: u32 = 5;
    /// `[vvar]`: recorded, not stored.
    pub const VVAR: u32 = 6;
    /// `[vvar_vclock]`: recorded, not stored.
    pub const VVAR_VCLOCK: u32 = 7;
    /// `[vsyscall]`: recorded, not stored (fixed address, kernel-provided).
    pub const VSYSCALL: u32 = 8;
}

/// `VmaRecord::prot` bits (same values as `PROT_*`).
pub mod prot {
    /// Readable.
    pub const READ: u32 = 1;
    /// Writable.
    pub const WRITE: u32 = 2;
    /// Executable.
    pub const EXEC: u32 = 4;
}

/// `VmaRecord::flags` bits.
pub mod vma_flags {
    /// `MAP_SHARED` (`s` in maps); otherwise private.
    pub const SHARED: u32 = 1 << 0;
    /// `VM_GROWSDOWN` (`gd` in VmFlags).
    pub const GROWSDOWN: u32 = 1 << 1;
    /// `VM_DONTDUMP` (`dd`): `madvise(MADV_DONTDUMP)`. Contents are stored
    /// like any other area: a checkpoint needs them even if a core dump does not.
    pub const DONTDUMP: u32 = 1 << 2;
    /// `VM_HUGEPAGE` (`hg`): `madvise(MADV_HUGEPAGE)`.
    pub const HUGEPAGE: u32 = 1 << 3;
    /// `VM_NOHUGEPAGE` (`nh`): `madvise(MADV_NOHUGEPAGE)`.
    pub const NOHUGEPAGE: u32 = 1 << 4;
    /// `VM_DONTCOPY` (`dc`): `madvise(MADV_DONTFORK)`.
    pub const DONTCOPY: u32 = 1 << 5;
    /// `VM_WIPEONFORK` (`wf`): `madvise(MADV_WIPEONFORK)`.
    pub const WIPEONFORK: u32 = 1 << 6;
    /// `VM_LOCKED` (`lo`): `mlock`.
    pub const LOCKED: u32 = 1 << 7;
    /// The backing file could not be opened at dump time: every present
    /// page was stored and the VMA is restored as anonymous memory.
    pub const FILE_UNAVAILABLE: u32 = 1 << 8;

    // --- Format 1.1 (issue 3, memory kinds): more VmFlags. ---
    /// `VM_SEQ_READ` (`sr`): `madvise(MADV_SEQUENTIAL)`.
    pub const SEQ_READ: u32 = 1 << 16;
    /// `VM_RAND_READ` (`rr`): `madvise(MADV_RANDOM)`.
    pub const RAND_READ: u32 = 1 << 17;
    /// `VM_LOCKONFAULT` (`lf`): `mlock2(MLOCK_ONFAULT)` (with `LOCKED`).
    pub const LOCKONFAULT: u32 = 1 << 18;
    /// `VM_NORESERVE` (`nr`): `MAP_NORESERVE`.
    pub const NORESERVE: u32 = 1 << 19;
    /// `VM_MERGEABLE` (`mg`): `madvise(MADV_MERGEABLE)` (KSM).
    pub const MERGEABLE: u32 = 1 << 20;

    // --- Format 1.3 (issue 8): file mappings. ---
    /// `VM_MAYWRITE` (`mw`) of a shared file mapping: the file was opened
    /// for writing, so the mapping may be made writable with `mprotect`
    /// (the stub opens the file read-write for it).
    pub const MAYWRITE: u32 = 1 << 21;
    /// A mapping of a deleted file whose content is in the image
    /// (`NT_KCKPT_GHOSTS`, matched by `dev` and `inode`): mapped from the
    /// re-created file; private mappings store only the pages written.
    pub const GHOST: u32 = 1 << 22;
    /// `VM_DROPPABLE` (`dp`): `MAP_DROPPABLE`, memory the kernel may
    /// free under pressure (reads as zeros then).
    pub const DROPPABLE: u32 = 1 << 23;

    // --- Format 1.10 (issue 9): SysV shared memory. ---
    /// An attachment of a SysV shared memory segment (`shmat`): `inode`
    /// is the segment's id (`kckpt_image::sysv`), `file_pgoff` the offset
    /// in it; no stored pages (the segment's content is stored once).
    pub const SYSV: u32 = 1 << 24;
}

/// One VMA of the saved address space.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmaRecord {
    /// First address (page aligned).
    pub start: u64,
    /// End address, exclusive (page aligned).
    pub end: u64,
    /// Offset of `start` in the backing file (bytes; 0 for anonymous).
    pub file_pgoff: u64,
    /// Device of the backing file (`st_dev` encoded as in `/proc/PID/maps`:
    /// `major << 32 | minor`), 0 if none.
    pub dev: u64,
    /// Inode of the backing file, 0 if none.
    pub inode: u64,
    /// Bytes of this VMA stored in the image (sum of its runs).
    pub stored_bytes: u64,
    /// Index of the VMA's first [`RunRecord`].
    pub first_run: u32,
    /// Number of runs (consecutive records starting at `first_run`).
    pub run_count: u32,
    /// `prot::*` bits.
    pub prot: u32,
    /// `vma_flags::*` bits.
    pub flags: u32,
    /// `vma_kind::*`.
    pub kind: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Name as shown in `/proc/PID/maps` (path or `[heap]`...), may be empty.
    pub name: StrRef,
}
// SAFETY: repr(C); 6*8 + 6*4 + 8 = 80, all fields naturally aligned, no padding.
unsafe impl Record for VmaRecord {}

/// A run of stored pages: `len` bytes at virtual address `start` are in the
/// image at file offset `offset`. Both page aligned. Pages of a VMA that are
/// not covered by a run are zero (anonymous) or come from the backing file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunRecord {
    /// Virtual address of the first byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// File offset of the first byte in the image.
    pub offset: u64,
}
// SAFETY: repr(C), three u64.
unsafe impl Record for RunRecord {}

/// One signal disposition, as the kernel's `struct sigaction` (x86_64 and
/// aarch64 layout of `rt_sigaction`'s `struct kernel_sigaction`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigactionRecord {
    /// `sa_handler` / `sa_sigaction` (0 = SIG_DFL, 1 = SIG_IGN).
    pub handler: u64,
    /// `sa_flags`.
    pub flags: u64,
    /// `sa_restorer`.
    pub restorer: u64,
    /// `sa_mask` (64 signals).
    pub mask: u64,
}
// SAFETY: repr(C), four u64.
unsafe impl Record for SigactionRecord {}

/// Process-wide signal state.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalsRecord {
    /// Dispositions of signals 1..=64 (index 0 is signal 1). SIGKILL and
    /// SIGSTOP entries are ignored.
    pub actions: [SigactionRecord; 64],
}
// SAFETY: repr(C), array of a Record with no padding.
unsafe impl Record for SignalsRecord {}

/// `ThreadRecord::syscall_state`: what the thread was doing when frozen.
pub mod syscall_state {
    /// Not in a system call.
    pub const NONE: u32 = 0;
    /// Stopped inside a restartable system call; the NT_PRSTATUS registers
    /// were already rewound so the call is issued again on resume.
    pub const RESTART: u32 = 1;
    /// As RESTART, but the call was `-ERESTART_RESTARTBLOCK` (nanosleep...):
    /// re-issued with its original arguments (the full timeout again).
    pub const RESTART_BLOCK: u32 = 2;
}

/// Per-thread state that core notes do not carry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadRecord {
    /// Thread id at dump time.
    pub tid: u32,
    /// `syscall_state::*`.
    pub syscall_state: u32,
    /// System call number the thread was in (`orig_ax`), or -1.
    pub syscall_nr: i64,
    /// Raw return value the kernel had set (`-ERESTART...`), before rewind.
    pub syscall_result: i64,
    /// x86_64 `fs_base` / aarch64 `tpidr_el0`.
    pub tls: u64,
    /// x86_64 `gs_base` / aarch64 `tpidr2_el0` (0 if absent).
    pub tls2: u64,
    /// Blocked signal mask.
    pub sigmask: u64,
    /// `sigaltstack`: `ss_sp`.
    pub altstack_sp: u64,
    /// `sigaltstack`: `ss_size`.
    pub altstack_size: u64,
    /// `sigaltstack`: `ss_flags` (`SS_DISABLE` = 2 when none).
    pub altstack_flags: u32,
    /// rseq signature (`PTRACE_GET_RSEQ_CONFIGURATION`).
    pub rseq_sig: u32,
    /// rseq area address, 0 when not registered.
    pub rseq_addr: u64,
    /// rseq area length.
    pub rseq_len: u32,
    /// Reserved, zero.
    pub reserved0: u32,
    /// `set_tid_address` value (`PR_GET_TID_ADDRESS`).
    pub clear_child_tid: u64,
    /// The thread's name (`/proc/PID/task/TID/comm`, `PR_SET_NAME`), NUL
    /// padded; all zero in images that did not record it (restored with
    /// the process's name then).
    pub name: [u8; 16],
    /// Reserved, zero.
    pub reserved: [u64; 2],
}
// SAFETY: repr(C); 4+4 + 8*7 + 4+4 + 8 + 4+4 + 8 + 16 + 16 = 128, every field naturally aligned.
unsafe impl Record for ThreadRecord {}

/// `SS_DISABLE`.
pub const SS_DISABLE: u32 = 2;

// ---------------------------------------------------------------------
// Format 1.1 (issue 3, signals and limits): process state and pending
// signals. Both notes are optional: images of format 1.0 have neither.
// ---------------------------------------------------------------------

/// Note type of [`ProcessRecord`] (rlimits, personality, dumpable,
/// no_new_privs).
pub const NT_KCKPT_PROCESS: u32 = 0x4b43_0010;
/// Note type of the array of [`PendingSignalRecord`], in queue order.
pub const NT_KCKPT_PENDING: u32 = 0x4b43_0011;
/// Resource limits stored (`RLIM_NLIMITS` of Linux).
pub const RLIMIT_COUNT: usize = 16;
/// `RLIM_INFINITY`.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// One resource limit (`struct rlimit64`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RlimitRecord {
    /// Soft limit.
    pub cur: u64,
    /// Hard limit.
    pub max: u64,
}
// SAFETY: repr(C), two u64.
unsafe impl Record for RlimitRecord {}

/// Process-wide state beyond memory and signal handlers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessRecord {
    /// `personality(0xffffffff)`.
    pub personality: u32,
    /// `prctl(PR_GET_DUMPABLE)`: 0, 1 or 2 (suid_dumpable).
    pub dumpable: u32,
    /// `prctl(PR_GET_NO_NEW_PRIVS)`: 0 or 1.
    pub no_new_privs: u32,
    /// Number of valid entries of `rlimits` (at most [`RLIMIT_COUNT`]).
    pub rlimit_count: u32,
    /// Reserved, zero.
    pub reserved: [u64; 4],
    /// Resource limits by `RLIMIT_*` number.
    pub rlimits: [RlimitRecord; RLIMIT_COUNT],
}
// SAFETY: repr(C); 4*4 + 32 + 16*16 = 304, every field naturally aligned.
unsafe impl Record for ProcessRecord {}

/// `PendingSignalRecord::tid` of a signal in the process-wide (shared) queue.
pub const PENDING_SHARED: u32 = 0;

/// One queued signal with its `siginfo_t`, as `PTRACE_PEEKSIGINFO` returns it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingSignalRecord {
    /// Thread id (at dump time) of the queue it was in, or
    /// [`PENDING_SHARED`] for the process-wide queue.
    pub tid: u32,
    /// Signal number (1..=64), equal to `si_signo` in `siginfo`.
    pub signo: u32,
    /// The kernel's 128-byte `siginfo_t`.
    pub siginfo: [u8; 128],
}
// SAFETY: repr(C); 4 + 4 + 128 = 136, no padding (alignment 4).
unsafe impl Record for PendingSignalRecord {}
// File descriptors, working directory, umask (format 1.1, issue 3).
// ---------------------------------------------------------------------

/// Working directory and umask of the process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsRecord {
    /// The umask.
    pub umask: u32,
    /// `fs_flags::*`.
    pub flags: u32,
    /// String-table reference to the working directory.
    pub cwd: StrRef,
    /// (1.5) String-table reference to the root directory (`chroot`),
    /// empty when it is `/`.
    pub root: StrRef,
    /// Reserved, zero.
    pub reserved: u64,
}
// SAFETY: repr(C); 4 + 4 + 8 + 8 + 8 = 32, no padding.
unsafe impl Record for FsRecord {}

/// `FsRecord::flags` bits.
pub mod fs_flags {
    /// The working directory had been deleted at dump time.
    pub const CWD_DELETED: u32 = 1 << 0;
}

/// `FdRecord::kind`: what a descriptor refers to and how it is rebuilt.
pub mod fd_kind {
    /// Not restored: the descriptor of whoever runs the image is kept
    /// (fds 0-2 connected to the outside: pipes and sockets to other
    /// processes; before 1.3 also terminals and files). From 1.3 `path`
    /// says what it was ("pipe to another process").
    pub const INHERITED: u32 = 1;
    /// A regular file, reopened by path; refused if missing or shorter
    /// than the saved offset.
    pub const FILE: u32 = 2;
    /// Reopened by path with no size check: a directory or one of the
    /// devices `/dev/null`, `/dev/zero`, `/dev/full`, `/dev/random`,
    /// `/dev/urandom`.
    pub const PATH: u32 = 3;
    /// One end of a pipe whose both ends are in the process.
    pub const PIPE: u32 = 4;
    /// One end of a Unix socketpair whose both ends are in the process;
    /// `args[0]` is the socket type.
    pub const SOCKETPAIR: u32 = 5;
    /// A memfd: `path` is its name, the data its content, `args[0]` its
    /// size, `args[1]` its seals, `args[2]` (1.3) its permission bits
    /// with bit 32 set (0: not recorded), `args[3]` (1.3) its inode:
    /// memory areas of that inode map it.
    pub const MEMFD: u32 = 6;
    /// An eventfd: `args[0]` the counter, `args[1]` 1 for `EFD_SEMAPHORE`.
    pub const EVENTFD: u32 = 7;
    /// An epoll instance; its interest list is in `NT_KCKPT_EPOLL`.
    pub const EPOLL: u32 = 8;
    /// A timerfd: `args` = clock id, remaining time (ns, 0 = disarmed),
    /// interval (ns), unread expirations.
    pub const TIMERFD: u32 = 9;
    /// A signalfd: `args[0]` its signal mask.
    pub const SIGNALFD: u32 = 10;
    /// A descriptor of a kind kckpt cannot restore, dumped with
    /// `--skip-unsupported`: restored as `/dev/null` with a warning; `path`
    /// says what it was.
    pub const PLACEHOLDER: u32 = 11;
    /// A terminal at fd 0-2 (1.3): taken from whoever restores, as
    /// `INHERITED`, with its saved mode (`NT_KCKPT_TERMINALS`) applied to
    /// the restorer's terminal; `path` is the terminal at dump time
    /// (reopened by that path with `--stdio=saved`).
    pub const TERMINAL: u32 = 20;
    /// The controlling terminal at fd 3 or above, opened as `/dev/tty` or
    /// by its own path (1.3): reopened as `/dev/tty`, the restorer's
    /// controlling terminal; `path` is what it was.
    pub const CTTY: u32 = 21;
    /// Another open file description of the object of descriptor
    /// `args[0]` (1.3): a pipe end or memfd opened again through
    /// `/proc/self/fd/N`, with its own flags and offset. Restored by
    /// opening `/proc/self/fd/<args[0]>` once that descriptor exists.
    pub const REOPEN: u32 = 22;

    /// A kind this reader knows.
    pub const fn known(kind: u32) -> bool {
        matches!(kind, INHERITED..=PLACEHOLDER | TERMINAL..=REOPEN)
    }
}

/// `FdRecord::fd_flags` bits.
pub mod fd_flags {
    /// `FD_CLOEXEC`.
    pub const CLOEXEC: u32 = 1 << 0;
    /// `FILE`: the file had been deleted at dump time.
    pub const DELETED: u32 = 1 << 1;
    /// (1.7) Not a descriptor of the process: it restores it for other
    /// processes of its tree (the `holder_fd` of an `UNIX_END` slot, (1.9)
    /// or of an `ADOPTED` slot) and
    /// closes it once its children are forked. A standalone image with
    /// one is refused.
    pub const TREE_ONLY: u32 = 1 << 2;
    /// (1.7, SCM_RIGHTS) a file the process did not hold: it was only in
    /// flight in a Unix socket's queue. Restored at its (synthetic) number,
    /// above every descriptor the process held, sent with the queued
    /// messages naming it, then closed before the process resumes.
    pub const IN_FLIGHT: u32 = 1 << 3;
}

/// `FdRecord::dup_of` when the descriptor has its own open file description.
pub const FD_NO_DUP: u32 = u32::MAX;

/// One file descriptor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdRecord {
    /// Descriptor number.
    pub fd: u32,
    /// `fd_kind::*`.
    pub kind: u32,
    /// File status flags and access mode (`O_*` as in
    /// `/proc/PID/fdinfo`, without `O_CLOEXEC`).
    pub flags: u32,
    /// `fd_flags::*`.
    pub fd_flags: u32,
    /// File offset.
    pub pos: u64,
    /// Path (FILE, PATH), name (MEMFD) or description (PLACEHOLDER).
    pub path: StrRef,
    /// A lower descriptor sharing this one's open file description
    /// (`dup`), or [`FD_NO_DUP`]; the other fields then repeat that one's.
    pub dup_of: u32,
    /// PIPE, SOCKETPAIR: descriptor of the other end ([`FD_NO_DUP`] if none).
    pub peer: u32,
    /// Image file offset of the stored data (page aligned; pipe or socket
    /// bytes not yet read by this end, memfd content).
    pub data_offset: u64,
    /// Length of the stored data.
    pub data_len: u64,
    /// Kind-specific values (see `fd_kind`).
    pub args: [u64; 4],
}
// SAFETY: repr(C); 4*4 + 8 + 8 + 4 + 4 + 8 + 8 + 32 = 88, no padding.
unsafe impl Record for FdRecord {}

/// One entry of an epoll interest list.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpollItemRecord {
    /// The epoll descriptor.
    pub epfd: u32,
    /// The descriptor number the item was added with.
    pub tfd: u32,
    /// `epoll_event.events`.
    pub events: u32,
    /// 0: the item watches descriptor `tfd` itself. (1.3)
    /// [`crate::EPOLL_SRC_CLOSED`]` | N`: `tfd` was closed after the item
    /// was added (the epoll set keeps the file); descriptor `N` holds the
    /// watched file.
    pub src: u32,
    /// `epoll_event.data`.
    pub data: u64,
}
// SAFETY: repr(C); 4*4 + 8 = 24, no padding.
unsafe impl Record for EpollItemRecord {}

// ---------------------------------------------------------------------
// Format 1.2 (issue 7): checksums of all metadata and of stored data.
// ---------------------------------------------------------------------

/// Note type of the checksum note: a [`ChecksumsRecord`], the CRC-32C of
/// every earlier note, the chunk checksums of the stored data, and its own
/// CRC-32C. Always the last note of an image of format 1.2 or later.
pub const NT_KCKPT_CHECKSUMS: u32 = 0x4b43_0030;
/// First minor version whose images must carry [`NT_KCKPT_CHECKSUMS`].
pub const CHECKSUMS_SINCE_MINOR: u16 = 2;
/// `ChecksumsRecord::algorithm`: CRC-32C, data in 4-lane chunks
/// (`checksum::chunk_sum`).
pub const CHECKSUM_CRC32C: u32 = 1;
/// log2 of the data chunk size the writer uses (256 KiB: a chunk read by
/// the stub is checked while it is still in the CPU's cache).
pub const DEFAULT_CHUNK_SHIFT: u32 = 18;
/// Smallest `chunk_shift` a reader accepts (4 KiB chunks).
pub const MIN_CHUNK_SHIFT: u32 = 12;
/// Largest `chunk_shift` a reader accepts (1 MiB chunks: bounds the
/// stub's verification buffer).
pub const MAX_CHUNK_SHIFT: u32 = 20;

/// `ChecksumsRecord::flags` bits.
pub mod checksum_flags {
    /// The data carries no checksums (written with `KCKPT_NO_CHECKSUM=1`,
    /// for benchmarks); `data_count` is 0. Metadata is checked all the same.
    pub const NO_DATA: u32 = 1 << 0;
}

/// The fixed part of the checksum note. The note's descriptor continues
/// with `note_count` CRC-32Cs (one per earlier note, in order), then
/// `data_count` chunk checksums (memory runs in run order, then descriptor
/// data in descriptor order), then the CRC-32C of everything before it in
/// the descriptor. All little-endian `u32`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChecksumsRecord {
    /// [`CHECKSUM_CRC32C`].
    pub algorithm: u32,
    /// Data chunks are `1 << chunk_shift` bytes (the last one of a region
    /// shorter).
    pub chunk_shift: u32,
    /// `checksum_flags::*`.
    pub flags: u32,
    /// Number of notes before this one (all of them).
    pub note_count: u32,
    /// Number of data chunk checksums.
    pub data_count: u32,
    /// Byte offset of the note checksums in the descriptor (32: the size
    /// of this record).
    pub sums_offset: u32,
    /// CRC-32C of the 64-byte ELF header.
    pub elf_header: u32,
    /// CRC-32C of the program header table.
    pub program_headers: u32,
}
// SAFETY: repr(C); 8 * 4 = 32, no padding.
unsafe impl Record for ChecksumsRecord {}

/// Fixed sizes, checked at compile time so the layout never drifts silently.
const _: () = {
    assert!(core::mem::size_of::<ImageHeader>() == 176);
    assert!(core::mem::size_of::<MmRecord>() == 104);
    assert!(core::mem::size_of::<VmaRecord>() == 80);
    assert!(core::mem::size_of::<RunRecord>() == 24);
    assert!(core::mem::size_of::<SigactionRecord>() == 32);
    assert!(core::mem::size_of::<SignalsRecord>() == 2048);
    assert!(core::mem::size_of::<ThreadRecord>() == 128);
    assert!(core::mem::size_of::<ProcessRecord>() == 304);
    assert!(core::mem::size_of::<PendingSignalRecord>() == 136);
    assert!(core::mem::size_of::<FsRecord>() == 32);
    assert!(core::mem::size_of::<FdRecord>() == 88);
    assert!(core::mem::size_of::<EpollItemRecord>() == 24);
    assert!(core::mem::size_of::<ChecksumsRecord>() == 32);
};

/// FNV-1a 64-bit hash (used for the vDSO fingerprint).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
