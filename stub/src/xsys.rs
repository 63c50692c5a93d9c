//! System calls for shared memory objects, resource limits, personality
//! and pending signals (kept apart from `sys.rs`, same conventions: calls
//! that can replace memory are `unsafe fn`, the rest pass pointers to live
//! Rust values only).
#![allow(unsafe_code)]

use kckpt_arch::syscall::raw_syscall;
use linux_raw_sys::general as g;

use crate::sys::{check, Errno, SysResult};

/// `mremap(old, 0, len, MAYMOVE|FIXED, new)`: a second mapping at `new` of
/// the shared pages mapped at `old`.
///
/// # Safety
/// Replaces whatever is mapped at `[new, new + len)`.
pub unsafe fn mremap_duplicate(old: usize, len: usize, new: usize) -> SysResult {
    let flags = g::MREMAP_MAYMOVE | g::MREMAP_FIXED;
    // SAFETY: forwarded to the caller.
    check(unsafe {
        raw_syscall(
            g::__NR_mremap as usize,
            [old, 0, len, flags as usize, new, 0],
        )
    })
}

/// `mlock2(addr, len, MLOCK_ONFAULT)`.
pub fn mlock_onfault(addr: usize, len: usize) -> SysResult {
    const MLOCK_ONFAULT: usize = 1;
    // SAFETY: locking pages changes no contents.
    check(unsafe { raw_syscall(g::__NR_mlock2 as usize, [addr, len, MLOCK_ONFAULT, 0, 0, 0]) })
}
/// `struct rlimit64`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rlimit {
    /// Soft limit.
    pub cur: u64,
    /// Hard limit.
    pub max: u64,
}

/// `prlimit64(0, resource, new, old)`: set (when `new` is given) and return
/// the previous limit.
pub fn prlimit(resource: u32, new: Option<&Rlimit>) -> Result<Rlimit, Errno> {
    let mut old = Rlimit::default();
    let new_ptr = new.map_or(0, |n| n as *const Rlimit as usize);
    // SAFETY: the kernel reads one `rlimit64` from `new` (if given) and
    // writes one to `old`, both live.
    check(unsafe {
        raw_syscall(
            g::__NR_prlimit64 as usize,
            [
                0,
                resource as usize,
                new_ptr,
                &mut old as *mut Rlimit as usize,
                0,
                0,
            ],
        )
    })?;
    Ok(old)
}

/// `personality(p)`; returns the previous persona.
pub fn personality(p: u32) -> SysResult {
    // SAFETY: touches no memory.
    check(unsafe { raw_syscall(g::__NR_personality as usize, [p as usize, 0, 0, 0, 0, 0]) })
}

/// `gettid()`.
pub fn gettid() -> u32 {
    // SAFETY: no arguments.
    check(unsafe { raw_syscall(g::__NR_gettid as usize, [0; 6]) }).unwrap_or(0) as u32
}

/// `rt_sigqueueinfo(tgid, sig, info)` (`tid == 0`) or
/// `rt_tgsigqueueinfo(tgid, tid, sig, info)`.
pub fn queue_signal(tgid: u32, tid: u32, sig: u32, info: &[u8; 128]) -> SysResult {
    let p = info.as_ptr() as usize;
    // SAFETY: the kernel reads one 128-byte siginfo from a live array.
    check(unsafe {
        if tid == 0 {
            raw_syscall(
                g::__NR_rt_sigqueueinfo as usize,
                [tgid as usize, sig as usize, p, 0, 0, 0],
            )
        } else {
            raw_syscall(
                g::__NR_rt_tgsigqueueinfo as usize,
                [tgid as usize, tid as usize, sig as usize, p, 0, 0],
            )
        }
    })
}

/// `ptrace(PTRACE_SETSIGMASK, pid, 8, &mask)`.
pub fn ptrace_setsigmask(pid: u32, mask: u64) -> SysResult {
    const PTRACE_SETSIGMASK: usize = 0x420b;
    // SAFETY: the kernel reads 8 bytes from a live u64.
    check(unsafe {
        raw_syscall(
            g::__NR_ptrace as usize,
            [
                PTRACE_SETSIGMASK,
                pid as usize,
                8,
                &mask as *const u64 as usize,
                0,
                0,
            ],
        )
    })
}

/// `pidfd_open(pid, flags)` (close-on-exec, read-write).
pub fn pidfd_open(pid: u32, flags: u32) -> SysResult {
    // SAFETY: integer arguments only.
    check(unsafe {
        raw_syscall(
            g::__NR_pidfd_open as usize,
            [pid as usize, flags as usize, 0, 0, 0, 0],
        )
    })
}

/// `setsid()`.
pub fn setsid() -> SysResult {
    // SAFETY: no arguments.
    check(unsafe { raw_syscall(g::__NR_setsid as usize, [0; 6]) })
}

/// `setpgid(pid, pgid)`.
pub fn setpgid(pid: u32, pgid: u32) -> SysResult {
    // SAFETY: integer arguments only.
    check(unsafe {
        raw_syscall(
            g::__NR_setpgid as usize,
            [pid as usize, pgid as usize, 0, 0, 0, 0],
        )
    })
}

/// `poll` on one descriptor for `events`, at most `ms` milliseconds: the
/// returned events (0 on timeout).
pub fn poll_one(fd: usize, events: i16, ms: i32) -> Result<i16, Errno> {
    let mut pfd = [fd as i32, i32::from(events as u16)];
    let ts = [i64::from(ms / 1000), i64::from(ms % 1000) * 1_000_000];
    // SAFETY: the kernel reads and writes one `struct pollfd` (`pfd`, two
    // ints: fd, then events and revents as shorts) and reads `ts`.
    let n = check(unsafe {
        raw_syscall(
            g::__NR_ppoll as usize,
            [pfd.as_mut_ptr() as usize, 1, ts.as_ptr() as usize, 0, 0, 0],
        )
    })?;
    Ok(if n == 0 { 0 } else { (pfd[1] >> 16) as i16 })
}

/// `readlinkat(AT_FDCWD, path, buf)`: the length written (no NUL).
/// `path` ends with a NUL.
pub fn readlink(path: &[u8], buf: &mut [u8]) -> SysResult {
    crate::sys::nul_terminated(path)?;
    // SAFETY: `path` is a NUL-terminated live slice; the kernel writes at
    // most `buf.len()` bytes into `buf`.
    check(unsafe {
        raw_syscall(
            g::__NR_readlinkat as usize,
            [
                g::AT_FDCWD as isize as usize,
                path.as_ptr() as usize,
                buf.as_mut_ptr() as usize,
                buf.len(),
                0,
                0,
            ],
        )
    })
}

/// `getcwd(buf)`: the length written, its NUL included.
pub fn getcwd(buf: &mut [u8]) -> SysResult {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    check(unsafe {
        raw_syscall(
            g::__NR_getcwd as usize,
            [buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0, 0],
        )
    })
}
