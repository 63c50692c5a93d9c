//! The system calls the stub makes, as small typed wrappers over
//! `kckpt_arch::syscall::raw_syscall`. Calls that can replace or write
//! arbitrary memory of this process are `unsafe fn`; the rest only pass
//! pointers to Rust references and are safe.
#![allow(unsafe_code)]

use kckpt_arch::syscall::raw_syscall;
use linux_raw_sys::general as g;

/// A negative errno from the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub u32);

/// Result of a system call.
pub type SysResult = Result<usize, Errno>;

/// A raw result as `Ok(value)` or `Err(errno)`.
pub(crate) fn check(r: isize) -> SysResult {
    if (-4095..0).contains(&r) {
        Err(Errno((-r) as u32))
    } else {
        Ok(r as usize)
    }
}

/// `Err(EINVAL)` unless `path` ends with a NUL.
pub(crate) fn nul_terminated(path: &[u8]) -> Result<(), Errno> {
    if path.last() == Some(&0) {
        Ok(())
    } else {
        Err(Errno(linux_raw_sys::errno::EINVAL))
    }
}

/// # Safety
/// See [`raw_syscall`].
pub(crate) unsafe fn sc(nr: u32, a: [usize; 6]) -> SysResult {
    // SAFETY: forwarded to the caller.
    check(unsafe { raw_syscall(nr as usize, a) })
}

/// Write `buf` to `fd` (all of it, retrying short writes).
pub fn write_all(fd: usize, mut buf: &[u8]) {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf = &buf[n..],
        }
    }
}

/// `exit_group(code)`.
pub fn exit(code: i32) -> ! {
    loop {
        // SAFETY: exit_group ends the process; no memory is touched.
        let _ = unsafe { sc(g::__NR_exit_group, [code as usize, 0, 0, 0, 0, 0]) };
    }
}

/// `exit(code)` of this thread only (the tracer, which has no threads).
pub fn exit_thread(code: i32) -> ! {
    loop {
        // SAFETY: as `exit`.
        let _ = unsafe { sc(g::__NR_exit, [code as usize, 0, 0, 0, 0, 0]) };
    }
}

/// `openat(AT_FDCWD, path, flags)`; `path` must end with a NUL.
pub fn open(path: &[u8], flags: u32) -> SysResult {
    nul_terminated(path)?;
    // SAFETY: `path` is a NUL-terminated live slice.
    unsafe {
        sc(
            g::__NR_openat,
            [
                g::AT_FDCWD as isize as usize,
                path.as_ptr() as usize,
                (flags | g::O_CLOEXEC) as usize,
                0,
                0,
                0,
            ],
        )
    }
}

/// `close(fd)`.
pub fn close(fd: usize) {
    // SAFETY: closing a descriptor touches no memory.
    let _ = unsafe { sc(g::__NR_close, [fd, 0, 0, 0, 0, 0]) };
}

/// `fstat(fd)`: (device, inode, size).
pub fn fstat(fd: usize) -> Result<(u64, u64, u64), Errno> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: g::stat = unsafe { core::mem::zeroed() };
    // SAFETY: the kernel writes one `struct stat` into `st`.
    unsafe {
        sc(
            g::__NR_fstat,
            [fd, &mut st as *mut g::stat as usize, 0, 0, 0, 0],
        )?
    };
    Ok((st.st_dev as u64, st.st_ino as u64, st.st_size as u64))
}

/// `fstat(fd)`: its `st_mode`.
pub fn fstat_mode(fd: usize) -> Result<u32, Errno> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: g::stat = unsafe { core::mem::zeroed() };
    // SAFETY: the kernel writes one `struct stat` into `st`.
    unsafe {
        sc(
            g::__NR_fstat,
            [fd, &mut st as *mut g::stat as usize, 0, 0, 0, 0],
        )?
    };
    Ok(st.st_mode as u32)
}

/// `pread64` into a slice, retrying until it is full or the file ends;
/// returns the bytes read.
pub fn pread(fd: usize, buf: &mut [u8], offset: u64) -> SysResult {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    unsafe { pread_raw(fd, buf.as_mut_ptr() as usize, buf.len(), offset) }
}

/// `pread64` into memory at `addr`, retrying until `len` bytes are read or
/// the file ends; returns the bytes read.
///
/// # Safety
/// `[addr, addr + len)` must be writable memory that nothing else uses.
pub unsafe fn pread_raw(fd: usize, addr: usize, len: usize, offset: u64) -> SysResult {
    let mut done = 0usize;
    while done < len {
        // At most 1 GiB per call: the kernel caps a read at 2 GiB - 4 KiB.
        let chunk = (len - done).min(1 << 30);
        // SAFETY: within the caller's range.
        let n = unsafe {
            sc(
                g::__NR_pread64,
                [
                    fd,
                    addr + done,
                    chunk,
                    (offset + done as u64) as usize,
                    0,
                    0,
                ],
            )?
        };
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// `mmap`.
///
/// # Safety
/// With `MAP_FIXED` this replaces whatever is mapped at `addr`: the caller
/// must own that range.
pub unsafe fn mmap(
    addr: usize,
    len: usize,
    prot: u32,
    flags: u32,
    fd: usize,
    off: u64,
) -> SysResult {
    // SAFETY: forwarded to the caller.
    unsafe {
        sc(
            g::__NR_mmap,
            [addr, len, prot as usize, flags as usize, fd, off as usize],
        )
    }
}

/// `munmap`.
///
/// # Safety
/// Nothing may use the range afterwards.
pub unsafe fn munmap(addr: usize, len: usize) -> SysResult {
    // SAFETY: forwarded to the caller.
    unsafe { sc(g::__NR_munmap, [addr, len, 0, 0, 0, 0]) }
}

/// `mremap(old, len, len, MAYMOVE|FIXED, new)`.
///
/// # Safety
/// Replaces whatever is mapped at `new`; nothing may use `old` afterwards.
pub unsafe fn mremap_fixed(old: usize, len: usize, new: usize) -> SysResult {
    let flags = g::MREMAP_MAYMOVE | g::MREMAP_FIXED;
    // SAFETY: forwarded to the caller.
    unsafe { sc(g::__NR_mremap, [old, len, len, flags as usize, new, 0]) }
}

/// `mprotect`.
///
/// # Safety
/// Removing access from memory the stub uses would crash it.
pub unsafe fn mprotect(addr: usize, len: usize, prot: u32) -> SysResult {
    // SAFETY: forwarded to the caller.
    unsafe { sc(g::__NR_mprotect, [addr, len, prot as usize, 0, 0, 0]) }
}

/// `madvise` with a hint that does not discard contents.
pub fn madvise(addr: usize, len: usize, advice: u32) -> SysResult {
    // SAFETY: the hints used (DONTDUMP, HUGEPAGE, DONTFORK, ...) change no
    // memory contents.
    unsafe { sc(g::__NR_madvise, [addr, len, advice as usize, 0, 0, 0]) }
}

/// `mlock`.
pub fn mlock(addr: usize, len: usize) -> SysResult {
    // SAFETY: locking pages changes no contents.
    unsafe { sc(g::__NR_mlock, [addr, len, 0, 0, 0, 0]) }
}

/// `prctl(option, a2, a3, a4, a5)` with integer arguments.
pub fn prctl(option: u32, a2: usize, a3: usize, a4: usize, a5: usize) -> SysResult {
    // SAFETY: used only with options whose arguments are integers.
    unsafe { sc(g::__NR_prctl, [option as usize, a2, a3, a4, a5, 0]) }
}

/// `prctl(PR_GET_PDEATHSIG)`: the signal this thread gets when its parent
/// dies, 0 for none.
pub fn parent_death_signal() -> u32 {
    let mut sig: i32 = 0;
    // SAFETY: PR_GET_PDEATHSIG writes one int to the pointer given.
    let _ = unsafe {
        sc(
            g::__NR_prctl,
            [2, &raw mut sig as usize, 0, 0, 0, 0], // PR_GET_PDEATHSIG
        )
    };
    sig as u32
}

/// `prctl(PR_SET_MM, PR_SET_MM_MAP, map)`.
pub fn set_mm_map(map: &linux_raw_sys::prctl::prctl_mm_map) -> SysResult {
    use linux_raw_sys::prctl::{PR_SET_MM, PR_SET_MM_MAP};
    let size = core::mem::size_of::<linux_raw_sys::prctl::prctl_mm_map>();
    // SAFETY: the kernel reads the struct and the auxv it points to, which
    // the caller keeps alive.
    unsafe {
        sc(
            g::__NR_prctl,
            [
                PR_SET_MM as usize,
                PR_SET_MM_MAP as usize,
                map as *const _ as usize,
                size,
                0,
                0,
            ],
        )
    }
}

/// `prctl(PR_SET_NAME, name)`; `name` must end with a NUL.
pub fn set_name(name: &[u8; 16]) -> SysResult {
    // SAFETY: the kernel reads at most 16 bytes.
    unsafe {
        sc(
            g::__NR_prctl,
            [
                linux_raw_sys::prctl::PR_SET_NAME as usize,
                name.as_ptr() as usize,
                0,
                0,
                0,
                0,
            ],
        )
    }
}

/// The kernel's `struct sigaction` for `rt_sigaction`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelSigaction {
    /// Handler address (or SIG_DFL/SIG_IGN).
    pub handler: u64,
    /// SA_* flags.
    pub flags: u64,
    /// SA_RESTORER trampoline.
    pub restorer: u64,
    /// Signals blocked during the handler.
    pub mask: u64,
}

/// `rt_sigaction(sig, act, NULL, 8)`.
pub fn set_sigaction(sig: u32, act: &KernelSigaction) -> SysResult {
    // SAFETY: the kernel reads one struct; the handler addresses are only
    // stored, not called, until the process runs again.
    unsafe {
        sc(
            g::__NR_rt_sigaction,
            [sig as usize, act as *const _ as usize, 0, 8, 0, 0],
        )
    }
}

/// `rt_sigprocmask(SIG_SETMASK, mask)`.
pub fn set_sigmask(mask: u64) -> SysResult {
    // SAFETY: the kernel reads 8 bytes.
    unsafe {
        sc(
            g::__NR_rt_sigprocmask,
            [
                g::SIG_SETMASK as usize,
                &mask as *const u64 as usize,
                0,
                8,
                0,
                0,
            ],
        )
    }
}

/// `rt_sigprocmask(SIG_BLOCK, mask)`: the mask it replaced.
pub fn block_signals(mask: u64) -> Result<u64, Errno> {
    let mut old: u64 = 0;
    // SAFETY: the kernel reads 8 bytes from `mask` and writes 8 to `old`.
    unsafe {
        sc(
            g::__NR_rt_sigprocmask,
            [
                g::SIG_BLOCK as usize,
                &mask as *const u64 as usize,
                &mut old as *mut u64 as usize,
                8,
                0,
                0,
            ],
        )
    }?;
    Ok(old)
}

/// `set_tid_address(addr)`: only stored by the kernel until thread exit.
pub fn set_tid_address(addr: u64) -> SysResult {
    // SAFETY: the kernel writes there only when the thread exits, and the
    // address belongs to the restored process.
    unsafe { sc(g::__NR_set_tid_address, [addr as usize, 0, 0, 0, 0, 0]) }
}

/// `rseq(addr, len, 0, sig)`.
pub fn rseq_register(addr: u64, len: u32, sig: u32) -> SysResult {
    // SAFETY: the kernel updates the area on preemption; it belongs to the
    // restored process, already mapped with its saved contents.
    unsafe {
        sc(
            g::__NR_rseq,
            [addr as usize, len as usize, 0, sig as usize, 0, 0],
        )
    }
}

/// `getpid()`.
pub fn getpid() -> u32 {
    // SAFETY: no arguments.
    unsafe { sc(g::__NR_getpid, [0; 6]) }.unwrap_or(0) as u32
}

/// `getppid()`.
pub fn getppid() -> u32 {
    // SAFETY: no arguments.
    unsafe { sc(g::__NR_getppid, [0; 6]) }.unwrap_or(0) as u32
}

/// `fork()` via `clone(SIGCHLD)`: 0 in the child, its pid in the parent.
pub fn fork() -> SysResult {
    // SAFETY: the child gets a copy of this address space and continues
    // from here with the same stack contents.
    unsafe { sc(g::__NR_clone, [g::SIGCHLD as usize, 0, 0, 0, 0, 0]) }
}

/// `wait4(pid, &status, options)`: (pid, status).
pub fn wait4(pid: i32, options: u32) -> Result<(usize, i32), Errno> {
    let mut status = 0i32;
    // SAFETY: the kernel writes one int.
    let r = unsafe {
        sc(
            g::__NR_wait4,
            [
                pid as isize as usize,
                &mut status as *mut i32 as usize,
                options as usize,
                0,
                0,
                0,
            ],
        )?
    };
    Ok((r, status))
}

/// `ptrace(request, pid, addr, data)` with integer `addr` and `data`.
pub fn ptrace(request: u32, pid: u32, addr: usize, data: usize) -> SysResult {
    // SAFETY: used with requests whose arguments are integers or, for the
    // regset requests below, a live iovec.
    unsafe {
        sc(
            g::__NR_ptrace,
            [request as usize, pid as usize, addr, data, 0, 0],
        )
    }
}

/// `PTRACE_GETREGSET`/`PTRACE_SETREGSET` of NT_PRSTATUS.
pub fn ptrace_regs(request: u32, pid: u32, regs: &mut kckpt_arch::UserRegs) -> SysResult {
    let iov = g::iovec {
        iov_base: regs as *mut kckpt_arch::UserRegs as *mut core::ffi::c_void,
        iov_len: core::mem::size_of::<kckpt_arch::UserRegs>() as _,
    };
    // SAFETY: the iovec describes `regs`, which lives through the call.
    unsafe {
        sc(
            g::__NR_ptrace,
            [
                request as usize,
                pid as usize,
                1,
                &iov as *const g::iovec as usize,
                0,
                0,
            ],
        )
    }
}

/// `futex(addr, FUTEX_WAIT, val)` / `FUTEX_WAKE`.
pub fn futex(word: &core::sync::atomic::AtomicU32, op: u32, val: u32) -> SysResult {
    // SAFETY: the kernel reads/wakes on a live, aligned u32.
    unsafe {
        sc(
            g::__NR_futex,
            [word.as_ptr() as usize, op as usize, val as usize, 0, 0, 0],
        )
    }
}

/// `close_range(first, ~0, 0)`: close every descriptor from `first` on.
pub fn close_from(first: u32) -> SysResult {
    close_range(first, u32::MAX)
}

/// `capset` with empty sets: the calling thread gives up every capability.
pub fn drop_caps() {
    // _LINUX_CAPABILITY_VERSION_3: a header and two data words.
    let header: [u32; 2] = [0x2008_0522, 0];
    let data = [0u32; 6];
    // SAFETY: the kernel reads the header and the two data structs.
    let _ = unsafe {
        sc(
            g::__NR_capset,
            [header.as_ptr() as usize, data.as_ptr() as usize, 0, 0, 0, 0],
        )
    };
}

/// `write(fd, buf)` once.
pub fn write(fd: usize, buf: &[u8]) -> SysResult {
    // SAFETY: the kernel reads `buf.len()` bytes from a live slice.
    unsafe {
        sc(
            g::__NR_write,
            [fd, buf.as_ptr() as usize, buf.len(), 0, 0, 0],
        )
    }
}

/// `geteuid()`.
pub fn geteuid() -> u32 {
    // SAFETY: no arguments.
    unsafe { sc(g::__NR_geteuid, [0; 6]) }.unwrap_or(0) as u32
}

/// `getegid()`.
pub fn getegid() -> u32 {
    // SAFETY: no arguments.
    unsafe { sc(g::__NR_getegid, [0; 6]) }.unwrap_or(0) as u32
}

/// `unshare(flags)`.
pub fn unshare(flags: u32) -> SysResult {
    // SAFETY: changes namespaces only, no memory.
    unsafe { sc(g::__NR_unshare, [flags as usize, 0, 0, 0, 0, 0]) }
}

/// `mount(source, target, fstype, flags, NULL)`; strings NUL-terminated.
pub fn mount(
    source: Option<&[u8]>,
    target: &[u8],
    fstype: Option<&[u8]>,
    flags: usize,
) -> SysResult {
    let ptr = |s: Option<&[u8]>| s.map_or(0, |s| s.as_ptr() as usize);
    if target.last() != Some(&0)
        || [source, fstype]
            .iter()
            .flatten()
            .any(|s| s.last() != Some(&0))
    {
        return Err(Errno(linux_raw_sys::errno::EINVAL));
    }
    // SAFETY: the kernel reads NUL-terminated strings from live slices.
    unsafe {
        sc(
            g::__NR_mount,
            [
                ptr(source),
                target.as_ptr() as usize,
                ptr(fstype),
                flags,
                0,
                0,
            ],
        )
    }
}

/// A new shared anonymous page (inherited by forks), as a status word.
pub fn map_shared_page() -> Result<&'static core::sync::atomic::AtomicU32, Errno> {
    // SAFETY: a new mapping where the kernel chooses; replaces nothing.
    let addr = unsafe {
        mmap(
            0,
            4096,
            g::PROT_READ | g::PROT_WRITE,
            g::MAP_SHARED | g::MAP_ANONYMOUS,
            usize::MAX,
            0,
        )
    }?;
    // SAFETY: the page is mapped, zeroed, aligned, and never unmapped in
    // the processes that use it; an AtomicU32 is valid for any bits.
    Ok(unsafe { &*(addr as *const core::sync::atomic::AtomicU32) })
}

/// End this process the way wait status `status` says another one ended:
/// same exit code, or the same signal (default action).
pub fn exit_like(status: i32) -> ! {
    let sig = status & 0x7f;
    if sig == 0 {
        exit((status >> 8) & 0xff);
    }
    let _ = set_sigaction(sig as u32, &KernelSigaction::default());
    let _ = set_sigmask(0);
    // SAFETY: kill touches no memory.
    let _ = unsafe { sc(g::__NR_kill, [getpid() as usize, sig as usize, 0, 0, 0, 0]) };
    exit(128 + sig)
}

// ---------------------------------------------------------------------
// File descriptors (issue 3): calls on descriptors with integer arguments
// or pointers to live locals.
// ---------------------------------------------------------------------

/// A system call whose arguments are all integers and which can neither
/// map nor write this process's memory: the descriptor calls below.
fn fd_call(nr: u32, a: [usize; 6]) -> SysResult {
    // SAFETY: callers pass only descriptor calls with integer arguments
    // (fcntl with integer commands, dup3, lseek, ftruncate, eventfd2,
    // epoll_create1, timerfd_create, umask), which touch no memory here.
    unsafe { sc(nr, a) }
}

/// `fcntl(fd, cmd, arg)` with an integer `arg`.
pub fn fcntl(fd: usize, cmd: u32, arg: usize) -> SysResult {
    fd_call(g::__NR_fcntl, [fd, cmd as usize, arg, 0, 0, 0])
}

/// `dup3(old, new, flags)`.
pub fn dup3(old: usize, new: usize, flags: u32) -> SysResult {
    fd_call(g::__NR_dup3, [old, new, flags as usize, 0, 0, 0])
}

/// `lseek(fd, offset, SEEK_SET)`.
pub fn lseek(fd: usize, offset: u64) -> SysResult {
    fd_call(g::__NR_lseek, [fd, offset as usize, 0, 0, 0, 0])
}

/// `ftruncate(fd, len)`.
pub fn ftruncate(fd: usize, len: u64) -> SysResult {
    fd_call(g::__NR_ftruncate, [fd, len as usize, 0, 0, 0, 0])
}

/// `eventfd2(0, flags)`.
pub fn eventfd(flags: u32) -> SysResult {
    fd_call(g::__NR_eventfd2, [0, flags as usize, 0, 0, 0, 0])
}

/// `inotify_init1(flags)`.
pub fn inotify_init1(flags: u32) -> SysResult {
    fd_call(g::__NR_inotify_init1, [flags as usize, 0, 0, 0, 0, 0])
}

/// `inotify_rm_watch(fd, wd)`.
pub fn inotify_rm_watch(fd: usize, wd: usize) -> SysResult {
    fd_call(g::__NR_inotify_rm_watch, [fd, wd, 0, 0, 0, 0])
}

/// `inotify_add_watch(fd, path, mask)`; `path` must end with a NUL.
pub fn inotify_add_watch(fd: usize, path: &[u8], mask: u32) -> SysResult {
    nul_terminated(path)?;
    // SAFETY: `path` is a NUL-terminated live slice the kernel only reads.
    unsafe {
        sc(
            g::__NR_inotify_add_watch,
            [fd, path.as_ptr() as usize, mask as usize, 0, 0, 0],
        )
    }
}

/// `epoll_create1(flags)`.
pub fn epoll_create(flags: u32) -> SysResult {
    fd_call(g::__NR_epoll_create1, [flags as usize, 0, 0, 0, 0, 0])
}

/// `timerfd_create(clock, flags)`.
pub fn timerfd_create(clock: u32, flags: u32) -> SysResult {
    fd_call(
        g::__NR_timerfd_create,
        [clock as usize, flags as usize, 0, 0, 0, 0],
    )
}

/// `umask(mask)`.
pub fn umask(mask: u32) -> SysResult {
    fd_call(g::__NR_umask, [mask as usize, 0, 0, 0, 0, 0])
}

/// `pipe2(flags)` or `socketpair(AF_UNIX, ty, 0)` (when `ty` is `Some`):
/// the two new descriptors.
pub fn fd_pair(socket_type: Option<u32>, flags: u32) -> Result<[usize; 2], Errno> {
    let mut fds = [0i32; 2];
    let p = fds.as_mut_ptr() as usize;
    // SAFETY: the kernel writes two ints into `fds`.
    unsafe {
        match socket_type {
            None => sc(g::__NR_pipe2, [p, flags as usize, 0, 0, 0, 0])?,
            Some(ty) => sc(
                g::__NR_socketpair,
                [1, (ty | flags) as usize, 0, p, 0, 0], // AF_UNIX
            )?,
        }
    };
    Ok([fds[0] as usize, fds[1] as usize])
}

/// `memfd_create(name, flags)`; `name` must end with a NUL.
pub fn memfd_create(name: &[u8], flags: u32) -> SysResult {
    nul_terminated(name)?;
    // SAFETY: the kernel reads a NUL-terminated string from a live slice.
    unsafe {
        sc(
            g::__NR_memfd_create,
            [name.as_ptr() as usize, flags as usize, 0, 0, 0, 0],
        )
    }
}

/// `sendfile(out, in, &offset, len)`, repeated until `len` bytes are copied.
pub fn sendfile_all(out: usize, input: usize, mut offset: u64, len: u64) -> Result<(), Errno> {
    let end = offset + len;
    while offset < end {
        let chunk = (end - offset).min(1 << 30) as usize;
        let mut off = offset as i64;
        // SAFETY: the kernel reads and updates one `loff_t`.
        let n = unsafe {
            sc(
                g::__NR_sendfile,
                [out, input, &mut off as *mut i64 as usize, chunk, 0, 0],
            )?
        };
        if n == 0 {
            return Err(Errno(linux_raw_sys::errno::EIO));
        }
        offset += n as u64;
    }
    Ok(())
}

/// `epoll_ctl(epfd, EPOLL_CTL_ADD, fd, {events, data})`.
pub fn epoll_add(epfd: usize, fd: usize, events: u32, data: u64) -> SysResult {
    let ev = g::epoll_event { events, data };
    // SAFETY: the kernel reads one `epoll_event`.
    unsafe {
        sc(
            g::__NR_epoll_ctl,
            [
                epfd,
                g::EPOLL_CTL_ADD as usize,
                fd,
                &ev as *const _ as usize,
                0,
                0,
            ],
        )
    }
}

/// `ioctl(fd, TFD_IOC_SET_TICKS, &ticks)`.
pub fn timerfd_set_ticks(fd: usize, ticks: u64) -> SysResult {
    const TFD_IOC_SET_TICKS: usize = 0x4008_5400;
    // SAFETY: the kernel reads one u64.
    unsafe {
        sc(
            g::__NR_ioctl,
            [
                fd,
                TFD_IOC_SET_TICKS,
                &ticks as *const u64 as usize,
                0,
                0,
                0,
            ],
        )
    }
}

/// `signalfd4(-1, &mask, 8, flags)`.
pub fn signalfd(mask: u64, flags: u32) -> SysResult {
    // SAFETY: the kernel reads 8 bytes.
    unsafe {
        sc(
            g::__NR_signalfd4,
            [
                usize::MAX,
                &mask as *const u64 as usize,
                8,
                flags as usize,
                0,
                0,
            ],
        )
    }
}

/// `chdir(path)`; `path` must end with a NUL.
pub fn chdir(path: &[u8]) -> SysResult {
    nul_terminated(path)?;
    // SAFETY: the kernel reads a NUL-terminated string from a live slice.
    unsafe { sc(g::__NR_chdir, [path.as_ptr() as usize, 0, 0, 0, 0, 0]) }
}

/// `chroot(path)`; `path` must end with a NUL.
pub fn chroot(path: &[u8]) -> SysResult {
    nul_terminated(path)?;
    // SAFETY: the kernel reads a NUL-terminated string from a live slice.
    unsafe { sc(g::__NR_chroot, [path.as_ptr() as usize, 0, 0, 0, 0, 0]) }
}

/// `close_range(first, last, 0)`.
pub fn close_range(first: u32, last: u32) -> SysResult {
    // SAFETY: closing descriptors touches no memory.
    unsafe {
        sc(
            g::__NR_close_range,
            [first as usize, last as usize, 0, 0, 0, 0],
        )
    }
}

/// `sched_getaffinity(0, mask)`: the CPUs this thread may run on.
pub fn sched_getaffinity(mask: &mut [u64; 16]) -> SysResult {
    // SAFETY: the kernel writes at most `size_of_val(mask)` bytes.
    unsafe {
        sc(
            g::__NR_sched_getaffinity,
            [
                0,
                core::mem::size_of_val(mask),
                mask.as_mut_ptr() as usize,
                0,
                0,
                0,
            ],
        )
    }
}

/// The start of file `path` (NUL-terminated), as much as fits in `buf`;
/// empty when it cannot be opened.
pub fn read_small<'b>(path: &[u8], buf: &'b mut [u8]) -> &'b [u8] {
    let mut len = 0;
    if let Ok(fd) = open(path, g::O_RDONLY) {
        while len < buf.len() {
            match pread(fd, &mut buf[len..], len as u64) {
                Ok(n) if n > 0 => len += n,
                _ => break,
            }
        }
        close(fd);
    }
    &buf[..len]
}

/// Write `text` to file `path` (NUL-terminated) in one call, as `/proc`
/// and cgroup files want; a short write is `EIO`.
pub fn write_file(path: &[u8], text: &[u8]) -> Result<(), Errno> {
    let fd = open(path, g::O_WRONLY)?;
    let r = write(fd, text);
    close(fd);
    match r {
        Ok(n) if n == text.len() => Ok(()),
        Ok(_) => Err(Errno(linux_raw_sys::errno::EIO)),
        Err(e) => Err(e),
    }
}
