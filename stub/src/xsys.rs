//! System calls for shared memory objects (kept apart from `sys.rs`, same conventions: calls
//! that can replace memory are `unsafe fn`, the rest pass pointers to live
//! Rust values only).
#![allow(unsafe_code)]

use kckpt_arch::syscall::raw_syscall;
use linux_raw_sys::general as g;

use crate::sys::{Errno, SysResult};

fn check(r: isize) -> SysResult {
    if (-4095..0).contains(&r) {
        Err(Errno((-r) as u32))
    } else {
        Ok(r as usize)
    }
}

/// `memfd_create(name, MFD_CLOEXEC)`; `name` must end with a NUL.
pub fn memfd_create(name: &[u8]) -> SysResult {
    if name.last() != Some(&0) {
        return Err(Errno(linux_raw_sys::errno::EINVAL));
    }
    // SAFETY: the kernel reads a NUL-terminated string from a live slice.
    check(unsafe {
        raw_syscall(
            g::__NR_memfd_create as usize,
            [name.as_ptr() as usize, g::MFD_CLOEXEC as usize, 0, 0, 0, 0],
        )
    })
}

/// `ftruncate(fd, len)`.
pub fn ftruncate(fd: usize, len: u64) -> SysResult {
    // SAFETY: touches no memory of this process.
    check(unsafe { raw_syscall(g::__NR_ftruncate as usize, [fd, len as usize, 0, 0, 0, 0]) })
}

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
