//! Strict validation of every field of every kckpt record: enums, flag
//! words, reserved fields, counts and the values the kernel would refuse at
//! restore (after the address space is gone) or that would make the
//! restored process misbehave. [`crate::read::ImageView::parse`] runs
//! [`fields`] after the structural checks, so the stub and `kckpt info`
//! refuse such images with one line before anything changes.
//!
//! Registers are checked per architecture (`kckpt_arch::check_user_regs`),
//! file sizes against the backing files by the stub (it opens them).

use crate::ghosts::ghost_fd_kind;
use crate::read::{FormatError, ImageView, EM_X86_64};
use crate::records::*;
use crate::special::special_fd_kind;

/// `vma_flags` bits the format defines.
pub const VMA_FLAGS_KNOWN: u32 = vma_flags::SHARED
    | vma_flags::GROWSDOWN
    | vma_flags::DONTDUMP
    | vma_flags::HUGEPAGE
    | vma_flags::NOHUGEPAGE
    | vma_flags::DONTCOPY
    | vma_flags::WIPEONFORK
    | vma_flags::LOCKED
    | vma_flags::FILE_UNAVAILABLE
    | vma_flags::SEQ_READ
    | vma_flags::RAND_READ
    | vma_flags::LOCKONFAULT
    | vma_flags::NORESERVE
    | vma_flags::MERGEABLE
    | vma_flags::MAYWRITE
    | vma_flags::GHOST
    | vma_flags::DROPPABLE
    | vma_flags::SYSV;

/// `prot` bits the format defines.
pub const PROT_KNOWN: u32 = prot::READ | prot::WRITE | prot::EXEC;

/// `sa_flags` the kernel reports back (`UAPI_SA_FLAGS`: NOCLDSTOP,
/// NOCLDWAIT, SIGINFO, EXPOSE_TAGBITS, RESTORER, ONSTACK, RESTART, NODEFER,
/// RESETHAND), plus SA_UNSUPPORTED and the x86 ABI bits a user-mode
/// emulator may pass through.
pub const SA_FLAGS_KNOWN: u64 = 0x1 | 0x2 | 0x4 | 0x400 | 0x800 | 0x0f00_0000 | 0xd000_0000;

/// File status flags `/proc/PID/fdinfo` can show for an open file (x86_64
/// and aarch64 values): access mode, APPEND, NONBLOCK, DSYNC, ASYNC,
/// DIRECT, LARGEFILE, DIRECTORY, NOFOLLOW (these four differ between the
/// architectures, 0o740000 covers both), NOATIME, SYNC, PATH, TMPFILE.
/// Never CREAT, EXCL, NOCTTY or TRUNC (the kernel drops them after open)
/// nor CLOEXEC (kept in `fd_flags`).
pub const O_FLAGS_KNOWN: u32 =
    0o3 | 0o2000 | 0o4000 | 0o10000 | 0o20000 | 0o740000 | 0o1000000 | 0o4000000 | 0o30000000;

/// `personality` bits: the type (low byte) and the flags Linux defines
/// (UNAME26 ... ADDR_LIMIT_3GB, bits 17-27).
pub const PERSONALITY_KNOWN: u32 = 0x0ffe_00ff;

/// `epoll_event.events` bits: EPOLLIN ... EPOLLRDHUP (0x3fff) and
/// EXCLUSIVE, WAKEUP, ONESHOT, ET.
pub const EPOLL_EVENTS_KNOWN: u32 = 0x3fff | 0xf000_0000;

/// `ss_flags` of a saved sigaltstack: SS_ONSTACK, SS_DISABLE,
/// SS_AUTODISARM.
pub const SS_FLAGS_KNOWN: u32 = 1 | 2 | (1 << 31);

/// Memfd seals (`F_SEAL_SEAL` ... `F_SEAL_EXEC`).
pub const SEALS_KNOWN: u64 = 0x3f;

/// Most auxiliary-vector entries an image may restore (the kernel keeps
/// about 50; `PR_SET_MM_MAP` refuses more than it keeps).
pub const MAX_AUXV_ENTRIES: usize = 64;

/// Lowest address an image's `mm` fields may hold: the usual
/// `vm.mmap_min_addr` (`PR_SET_MM_MAP` refuses addresses below the
/// running kernel's).
pub const MIN_ADDR: u64 = 0x1_0000;

/// Longest path the stub opens (`PATH_MAX` with its NUL).
pub const MAX_PATH: usize = 4095;

fn ensure(ok: bool, what: &'static str) -> Result<(), FormatError> {
    if ok {
        Ok(())
    } else {
        Err(FormatError::BadField(what))
    }
}

/// One past the highest user address of `machine` (47-bit x86_64 with
/// 4-level paging; 52-bit aarch64).
pub fn user_end(machine: u16) -> u64 {
    if machine == EM_X86_64 {
        1 << 47
    } else {
        1 << 52
    }
}

/// `[vsyscall]`: the one fixed page x86_64 kernels show.
pub const VSYSCALL_START: u64 = 0xffff_ffff_ff60_0000;

/// Check every field of `view` (see the module documentation).
pub fn fields(view: &ImageView<'_>) -> Result<(), FormatError> {
    header(&view.header)?;
    mm(view)?;
    vmas(view)?;
    signals(&view.signals)?;
    threads(view)?;
    if let Some(p) = view.process {
        process(&p)?;
    }
    files(view)?;
    crate::timers::validate(view)?;
    crate::terminal::check_fields(view)?;
    auxv(view.auxv)
}

fn header(h: &ImageHeader) -> Result<(), FormatError> {
    ensure(
        h.reserved0 == 0 && h.reserved1 == 0 && h.reserved == [0; 4],
        "header: reserved field not zero",
    )?;
    ensure(h.flags & !HEADER_DID_EXEC == 0, "header: unknown flags")
}

fn mm(view: &ImageView<'_>) -> Result<(), FormatError> {
    let m = &view.mm;
    let end = user_end(view.header.machine);
    let all = [
        m.start_code,
        m.end_code,
        m.start_data,
        m.end_data,
        m.start_brk,
        m.brk,
        m.start_stack,
        m.arg_start,
        m.arg_end,
        m.env_start,
        m.env_end,
    ];
    // The pairs PR_SET_MM_MAP requires in order (start_code < end_code
    // there; equal values are what a user-mode emulator reports), and no
    // address below vm.mmap_min_addr (64 KiB, the usual setting: nothing
    // is mapped below it). QEMU's /proc/self/stat shows 0 for what it does
    // not emulate, start_code first; the stub goes on without
    // PR_SET_MM_MAP there.
    let emulated = m.start_code == 0 && m.end_code == 0;
    ensure(
        all.iter()
            .all(|&a| a < end && (a >= MIN_ADDR || (a == 0 && emulated)))
            && m.start_code <= m.end_code
            && m.start_data <= m.end_data
            && m.start_brk <= m.brk
            && m.arg_start <= m.arg_end
            && m.env_start <= m.env_end,
        "mm: addresses out of order or range",
    )
}

/// Does `s` hold a NUL? (Not `contains`: its memchr is larger code, and
/// the stub must stay small.)
#[allow(clippy::manual_contains)]
pub(crate) fn has_nul(s: &[u8]) -> bool {
    s.iter().any(|&b| b == 0)
}

fn path_like(s: &[u8]) -> bool {
    !s.is_empty() && s.len() <= MAX_PATH && !has_nul(s)
}

fn vmas(view: &ImageView<'_>) -> Result<(), FormatError> {
    let page = u64::from(view.header.page_size);
    let end = user_end(view.header.machine);
    for v in view.vmas.iter() {
        ensure(
            (vma_kind::ANONYMOUS..=vma_kind::VSYSCALL).contains(&v.kind),
            "memory area: unknown kind",
        )?;
        ensure(v.reserved == 0, "memory area: reserved field not zero")?;
        ensure(
            v.prot & !PROT_KNOWN == 0,
            "memory area: unknown protection bits",
        )?;
        let f = v.flags;
        ensure(f & !VMA_FLAGS_KNOWN == 0, "memory area: unknown flags")?;
        let both = |a: u32, b: u32| f & a != 0 && f & b != 0;
        ensure(
            !both(vma_flags::HUGEPAGE, vma_flags::NOHUGEPAGE)
                && !both(vma_flags::SEQ_READ, vma_flags::RAND_READ)
                && !both(vma_flags::SHARED, vma_flags::GROWSDOWN)
                && (f & vma_flags::LOCKONFAULT == 0 || f & vma_flags::LOCKED != 0),
            "memory area: contradictory flags",
        )?;
        let shared = f & vma_flags::SHARED != 0;
        let unavailable = f & vma_flags::FILE_UNAVAILABLE != 0;
        ensure(
            f & vma_flags::MAYWRITE == 0 || (shared && v.kind == vma_kind::FILE),
            "memory area: may-write flag on a private or anonymous area",
        )?;
        let name = view.string(v.name)?;
        if v.kind == vma_kind::FILE {
            ensure(
                v.file_pgoff.is_multiple_of(page)
                    && v.file_pgoff.checked_add(v.end - v.start).is_some(),
                "memory area: bad file offset",
            )?;
            ensure(path_like(name), "memory area: no usable file path")?;
            // A shared mapping of a file writes to the file: the format
            // stores nothing for it, and the stub must never write there.
            ensure(
                !shared || unavailable || v.run_count == 0,
                "memory area: pages stored for a shared file",
            )?;
        } else {
            ensure(
                v.file_pgoff == 0 && v.dev == 0 && v.inode == 0 && !unavailable,
                "memory area: file fields without a file",
            )?;
        }
        if v.kind >= vma_kind::VDSO {
            ensure(
                v.run_count == 0 && !shared,
                "memory area: pages stored for vDSO or vvar",
            )?;
        }
        if v.kind == vma_kind::VSYSCALL {
            ensure(
                view.header.machine == EM_X86_64 && v.start == VSYSCALL_START,
                "memory area: vsyscall at another address",
            )?;
        } else {
            ensure(v.end <= end, "memory area: above the user address space")?;
        }
    }
    Ok(())
}

fn signals(s: &SignalsRecord) -> Result<(), FormatError> {
    // Entries 9 and 19 (SIGKILL, SIGSTOP) are ignored (docs/FORMAT.md).
    let used = s
        .actions
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 8 && *i != 18);
    ensure(
        used.into_iter()
            .all(|(_, a)| a.flags & !SA_FLAGS_KNOWN == 0),
        "signal action: unknown flags",
    )
}

/// The first saved VMA ending after `addr` (a binary search: the VMAs
/// are sorted, and an image may have many threads).
pub(crate) fn vma_from(view: &ImageView<'_>, addr: u64) -> Option<VmaRecord> {
    let (mut lo, mut hi) = (0usize, view.vmas.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match view.vmas.get(mid) {
            Some(v) if v.end <= addr => lo = mid + 1,
            _ => hi = mid,
        }
    }
    view.vmas.get(lo)
}

/// Is `[addr, addr + len)` inside one writable saved VMA?
fn in_writable_vma(view: &ImageView<'_>, addr: u64, len: u64) -> bool {
    let end = addr.saturating_add(len);
    vma_from(view, addr)
        .is_some_and(|v| v.start <= addr && end <= v.end && v.prot & prot::WRITE != 0)
}

/// `MINSIGSTKSZ` of `machine`: the smallest alternate signal stack.
fn min_altstack(machine: u16) -> u64 {
    if machine == EM_X86_64 {
        2048
    } else {
        5120
    }
}

fn threads(view: &ImageView<'_>) -> Result<(), FormatError> {
    let machine = view.header.machine;
    let mut prev = 0u32;
    for (i, t) in view.threads().enumerate() {
        let r = &t.record;
        ensure(
            r.reserved0 == 0 && r.reserved == [0; 2],
            "thread: reserved field not zero",
        )?;
        ensure(
            r.syscall_state <= syscall_state::RESTART_BLOCK,
            "thread: unknown system call state",
        )?;
        // The main thread first (tid = pid), the others by increasing tid.
        let order = if i == 0 {
            r.tid == view.header.pid
        } else {
            r.tid > prev && r.tid != view.header.pid
        };
        ensure(
            r.tid != 0 && order,
            "thread: ids repeated, unordered or not the pid",
        )?;
        prev = if i == 0 { 0 } else { r.tid };
        ensure(
            r.altstack_flags & !SS_FLAGS_KNOWN == 0
                && (r.altstack_flags & SS_DISABLE != 0 || r.altstack_size >= min_altstack(machine)),
            "thread: bad signal stack",
        )?;
        // rseq registration fails (EFAULT) unless the kernel can write it.
        ensure(
            r.rseq_addr == 0
                || (r.rseq_addr.is_multiple_of(32)
                    && r.rseq_len >= 32
                    && in_writable_vma(view, r.rseq_addr, r.rseq_len.into())),
            "thread: bad rseq area",
        )?;
        // x86_64: arch_prctl(ARCH_SET_FS/GS) takes only user addresses.
        ensure(
            machine != EM_X86_64 || (r.tls < user_end(machine) && r.tls2 < user_end(machine)),
            "thread: bad thread pointer",
        )?;
    }
    Ok(())
}

fn process(p: &ProcessRecord) -> Result<(), FormatError> {
    ensure(p.reserved == [0; 4], "process: reserved field not zero")?;
    ensure(
        p.dumpable <= 2 && p.no_new_privs <= 1 && p.personality & !PERSONALITY_KNOWN == 0,
        "process: bad personality, dumpable or no_new_privs",
    )?;
    let n = (p.rlimit_count as usize).min(RLIMIT_COUNT);
    ensure(
        p.rlimits[..n].iter().all(|l| l.cur <= l.max)
            && p.rlimits[n..].iter().all(|l| l.cur == 0 && l.max == 0),
        "process: resource limit above its maximum",
    )
}

fn files(view: &ImageView<'_>) -> Result<(), FormatError> {
    let page = u64::from(view.header.page_size);
    if let Some(fs) = view.fs {
        ensure(fs.reserved == 0, "cwd: reserved field not zero")?;
        let root = view.string(fs.root)?;
        ensure(
            root.is_empty() || (view.header.format_minor >= 5 && path_like(root) && root != b"/"),
            "root directory: bad path",
        )?;
        ensure(
            fs.flags & !fs_flags::CWD_DELETED == 0
                && fs.umask & !0o777 == 0
                && path_like(view.string(fs.cwd)?),
            "cwd: bad path, flags or umask",
        )?;
    }
    for r in view.fds.iter() {
        fd(view, &r, page)?;
    }
    for e in view.epoll.iter() {
        ensure(
            e.src == 0 || e.src & crate::EPOLL_SRC_CLOSED != 0,
            "epoll item: bad source descriptor",
        )?;
        ensure(
            e.events & !EPOLL_EVENTS_KNOWN == 0 && e.tfd != e.epfd,
            "epoll item: unknown events or watching itself",
        )?;
    }
    Ok(())
}

fn fd(view: &ImageView<'_>, r: &FdRecord, page: u64) -> Result<(), FormatError> {
    ensure(
        r.fd_flags
            & !(fd_flags::CLOEXEC | fd_flags::DELETED | fd_flags::TREE_ONLY | fd_flags::IN_FLIGHT)
            == 0
            && (r.fd_flags & fd_flags::TREE_ONLY == 0
                || (r.dup_of == FD_NO_DUP && view.header.format_minor >= 7))
            && (r.fd_flags & fd_flags::IN_FLIGHT == 0 || view.header.format_minor >= 7)
            && (r.fd_flags & fd_flags::DELETED == 0
                || matches!(
                    r.kind,
                    fd_kind::FILE
                        | special_fd_kind::FIFO
                        | special_fd_kind::DEVICE
                        | special_fd_kind::SYMLINK
                )),
        "fd: unknown descriptor flags",
    )?;
    // Inherited descriptors and placeholders (restored as /dev/null) do
    // not use their flags; a placeholder may carry flags of a kind kckpt
    // does not restore (an old kernel's __FMODE_NONOTIFY of fanotify).
    let flags_used = !matches!(r.kind, fd_kind::INHERITED | fd_kind::PLACEHOLDER);
    ensure(
        !flags_used || r.flags & !O_FLAGS_KNOWN == 0,
        "fd: unknown file status flags",
    )?;
    ensure(
        !matches!(r.kind, fd_kind::INHERITED | fd_kind::TERMINAL)
            || r.fd <= 2
            || r.dup_of != FD_NO_DUP,
        "fd: inherited descriptor above 2",
    )?;
    let with_data = matches!(
        r.kind,
        fd_kind::PIPE
            | fd_kind::SOCKETPAIR
            | crate::unixsock::UNIX_SOCKET_FD_KIND
            | fd_kind::MEMFD
            | ghost_fd_kind::SHMEM
            | special_fd_kind::FIFO
            | special_fd_kind::SYMLINK
            | crate::tcp::TCP_CONN_FD_KIND
            | crate::inet::UDP_FD_KIND
    );
    ensure(
        if r.data_len == 0 {
            r.data_offset == 0
        } else {
            with_data && r.data_offset.is_multiple_of(page)
        },
        "fd: bad data offset",
    )?;
    if matches!(
        r.kind,
        fd_kind::FILE
            | fd_kind::PATH
            | fd_kind::CTTY
            | ghost_fd_kind::GHOST
            | ghost_fd_kind::PROCFS
            | special_fd_kind::FIFO
            | special_fd_kind::DEVICE
            | special_fd_kind::SYMLINK
    ) {
        ensure(path_like(view.string(r.path)?), "fd: no usable path")?;
    }
    if r.kind == crate::self_fd_kind::NSFD {
        ensure(
            crate::selffd::ns_path_ok(view.string(r.path)?),
            "fd: namespace descriptor without a /proc/self/ns path",
        )?;
    }
    if r.kind == fd_kind::TERMINAL && r.dup_of == FD_NO_DUP {
        // Reopened by this path with --stdio=saved.
        ensure(
            path_like(view.string(r.path)?),
            "fd: terminal without a path",
        )?;
    }
    if r.dup_of != FD_NO_DUP {
        return Ok(()); // the original's fields, checked there
    }
    let a = r.args;
    let ok = match r.kind {
        fd_kind::SOCKETPAIR => matches!(a[0], 1 | 2 | 5),
        fd_kind::MEMFD => {
            a[1] & !SEALS_KNOWN == 0
                && r.data_len <= a[0]
                && (a[2] == 0 || a[2] & !0o7777 == 1 << 32)
                && !has_nul(view.string(r.path)?)
        }
        fd_kind::EVENTFD => a[1] <= 1,
        // Clock id, and (1.3) the settime flags in bits 32-33.
        fd_kind::TIMERFD => {
            matches!(a[0] as u32, 0 | 1 | 7 | 8 | 9)
                && a[0] >> 32 & !3 == 0
                && a[1] <= i64::MAX as u64
                && a[2] <= i64::MAX as u64
        }
        fd_kind::REOPEN => a[1..] == [0; 3],
        fd_kind::TERMINAL | fd_kind::CTTY => a == [0; 4],
        ghost_fd_kind::SHMEM => r.data_len <= a[0],
        // Watches are in NT_KCKPT_INOTIFY (`inotify::validate`).
        crate::inotify::INOTIFY_FD_KIND => a == [0; 4],
        // The slot (`tree::validate` matches it with the tree's uses).
        crate::tree::TREE_SHARED_FD_KIND => {
            a[0] < u64::from(crate::tree::MAX_SLOTS) && a[1..] == [0; 3]
        }
        // The key in `path`; nothing else.
        crate::external::EXTERNAL_FD_KIND => {
            a == [0; 4]
                && r.pos == 0
                && r.data_len == 0
                && r.peer == FD_NO_DUP
                && crate::external::key_ok(view.string(r.path)?)
        }
        special_fd_kind::FIFO | special_fd_kind::DEVICE | special_fd_kind::SYMLINK => {
            crate::special::args_ok(r.kind, a, r.data_len)
        }
        crate::unixsock::UNIX_LISTEN_FD_KIND => {
            let name = view.string(r.path)?;
            // A path name is a C string; an abstract one may not hold a
            // NUL either (kckpt keeps it as a string).
            let flags =
                crate::unixsock::unix_flags::ABSTRACT | crate::unixsock::unix_flags::RELATIVE;
            // A path name is absolute unless marked relative.
            let absolute = a[0] & flags != 0 || name.first() == Some(&b'/');
            crate::unixsock::args_ok(a, name.len(), r.data_len) && !has_nul(name) && absolute
        }
        // (1.6) The socket's UnixRecord in `path`.
        crate::unixsock::UNIX_SOCKET_FD_KIND => {
            crate::unixsock::socket_args_ok(a, view.string(r.path)?)
        }
        // (1.5) The socket's InetRecord in `path`.
        crate::inet::INET_LISTEN_FD_KIND | crate::inet::UDP_FD_KIND => {
            crate::inet::args_ok(r.kind, a, view.string(r.path)?, r.data_len)
        }
        // (1.6) InetRecord + TcpRepair in `path`, the queues as data.
        // (1.7) Half-closed states.
        crate::tcp::TCP_CONN_FD_KIND => crate::tcp::args_ok(
            a,
            view.string(r.path)?,
            r.data_len,
            view.header.format_minor,
        ),
        // Read-write, maybe O_NONBLOCK (PIDFD_NONBLOCK), no offset.
        crate::self_fd_kind::PIDFD => {
            // A second pidfd of an exited process names the first.
            let first_ok = a[0] != crate::selffd::pidfd_target::DEAD
                || a[2] == 0
                || crate::files::find_fd(view, a[2] as u32).is_some_and(|f| {
                    f.kind == r.kind && f.args[..3] == [a[0], a[1], 0] && f.dup_of == FD_NO_DUP
                });
            crate::selffd::pidfd_args_ok(a, u32::from(view.header.format_minor))
                && first_ok
                && r.flags & !0o4003 == 0
                && r.pos == 0
        }
        crate::self_fd_kind::NSFD => a[1..] == [0; 3],
        _ => true,
    };
    ensure(ok, "fd: bad kind-specific values")
}

fn auxv(bytes: &[u8]) -> Result<(), FormatError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let last = bytes.len().checked_sub(16).and_then(|at| bytes.get(at..));
    ensure(
        bytes.len().is_multiple_of(16)
            && bytes.len() <= MAX_AUXV_ENTRIES * 16
            && last.is_some_and(|l| l.iter().all(|&b| b == 0)),
        "auxv: bad length or terminator",
    )
}
