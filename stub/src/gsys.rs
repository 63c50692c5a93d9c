//! System calls for re-creating saved files and taking file locks (format
//! 1.3): create, unlink, make and remove directories, permissions, owner
//! and times, `fchdir`, `flock` and `fcntl` record locks. Same
//! conventions as `sys.rs`: pointers only to live Rust values.
#![allow(unsafe_code)]

use kckpt_arch::syscall::raw_syscall;
use linux_raw_sys::general as g;

use crate::sys::{check, nul_terminated, SysResult};

fn call(nr: u32, a: [usize; 6]) -> SysResult {
    // SAFETY: every caller passes integers or pointers to live values the
    // kernel only reads (paths) or writes within their size.
    check(unsafe { raw_syscall(nr as usize, a) })
}

/// `openat(dirfd, path, flags | O_CLOEXEC, mode)`.
pub fn openat(dirfd: isize, path: &[u8], flags: u32, mode: u32) -> SysResult {
    nul_terminated(path)?;
    call(
        g::__NR_openat,
        [
            dirfd as usize,
            path.as_ptr() as usize,
            (flags | g::O_CLOEXEC) as usize,
            mode as usize,
            0,
            0,
        ],
    )
}

/// `unlinkat(AT_FDCWD, path, flags)` (`AT_REMOVEDIR` for a directory).
pub fn unlink(path: &[u8], flags: u32) -> SysResult {
    nul_terminated(path)?;
    call(
        g::__NR_unlinkat,
        [
            g::AT_FDCWD as isize as usize,
            path.as_ptr() as usize,
            flags as usize,
            0,
            0,
            0,
        ],
    )
}

/// `mkdirat(AT_FDCWD, path, mode)`.
pub fn mkdir(path: &[u8], mode: u32) -> SysResult {
    nul_terminated(path)?;
    call(
        g::__NR_mkdirat,
        [
            g::AT_FDCWD as isize as usize,
            path.as_ptr() as usize,
            mode as usize,
            0,
            0,
            0,
        ],
    )
}

/// `fchmod(fd, mode)`.
pub fn fchmod(fd: usize, mode: u32) -> SysResult {
    call(g::__NR_fchmod, [fd, mode as usize, 0, 0, 0, 0])
}

/// `fchown(fd, uid, gid)`.
pub fn fchown(fd: usize, uid: u32, gid: u32) -> SysResult {
    call(g::__NR_fchown, [fd, uid as usize, gid as usize, 0, 0, 0])
}

/// `utimensat(fd, NULL, times, 0)`: access and modification times.
pub fn futimens(fd: usize, atime: (i64, u64), mtime: (i64, u64)) -> SysResult {
    let times = [
        g::__kernel_timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1 as _,
        },
        g::__kernel_timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1 as _,
        },
    ];
    call(g::__NR_utimensat, [fd, 0, times.as_ptr() as usize, 0, 0, 0])
}

/// `fchdir(fd)`.
pub fn fchdir(fd: usize) -> SysResult {
    call(g::__NR_fchdir, [fd, 0, 0, 0, 0, 0])
}

/// `flock(fd, LOCK_SH or LOCK_EX | LOCK_NB)`.
pub fn flock(fd: usize, exclusive: bool) -> SysResult {
    const LOCK_SH: usize = 1;
    const LOCK_EX: usize = 2;
    const LOCK_NB: usize = 4;
    let op = if exclusive { LOCK_EX } else { LOCK_SH } | LOCK_NB;
    call(g::__NR_flock, [fd, op, 0, 0, 0, 0])
}

/// `fcntl(fd, F_SETLEASE, F_RDLCK or F_WRLCK)`.
pub fn lease(fd: usize, write: bool) -> SysResult {
    const F_SETLEASE: usize = 1024;
    let ty = if write { g::F_WRLCK } else { g::F_RDLCK };
    call(g::__NR_fcntl, [fd, F_SETLEASE, ty as usize, 0, 0, 0])
}

/// `fcntl(fd, cmd, &flock)` with a `SEEK_SET` range: `F_SETLK` or
/// `F_OFD_SETLK` (`ofd`), a read or write lock.
pub fn record_lock(fd: usize, ofd: bool, write: bool, start: u64, len: u64) -> SysResult {
    const F_SETLK: usize = 6;
    const F_OFD_SETLK: usize = 37;
    let lock = g::flock {
        l_type: if write { g::F_WRLCK } else { g::F_RDLCK } as _,
        l_whence: 0,
        l_start: start as _,
        l_len: len as _,
        l_pid: 0,
    };
    let cmd = if ofd { F_OFD_SETLK } else { F_SETLK };
    call(
        g::__NR_fcntl,
        [fd, cmd, &lock as *const g::flock as usize, 0, 0, 0],
    )
}
