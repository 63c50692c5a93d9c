//! System calls for kernel state and credentials (format 1.3): ids,
//! groups, capabilities, robust futex lists, membarrier, aio contexts,
//! small `/proc` and cgroup files, waiting for signals. Same conventions
//! as `sys.rs`: pointers only to live Rust values, `unsafe fn` for what can
//! replace memory.
#![allow(unsafe_code)]

use linux_raw_sys::general as g;

use crate::sys::{nul_terminated, sc, Errno, SysResult};

/// A system call with integer arguments only, which touches no memory of
/// this process (id changes, prctl with integer options, membarrier).
fn int_call(nr: u32, a: [usize; 6]) -> SysResult {
    // SAFETY: callers pass only calls whose arguments are integers.
    unsafe { sc(nr, a) }
}

/// `setresuid(r, e, s)` of the calling thread (the raw call: per thread).
pub fn setresuid(ids: [u32; 3]) -> SysResult {
    int_call(
        g::__NR_setresuid,
        [ids[0] as usize, ids[1] as usize, ids[2] as usize, 0, 0, 0],
    )
}

/// `setresgid(r, e, s)` of the calling thread.
pub fn setresgid(ids: [u32; 3]) -> SysResult {
    int_call(
        g::__NR_setresgid,
        [ids[0] as usize, ids[1] as usize, ids[2] as usize, 0, 0, 0],
    )
}

/// `setfsuid(id)`: returns the previous fsuid (the kernel reports no error:
/// compare with a second call).
pub fn setfsuid(id: u32) -> u32 {
    int_call(g::__NR_setfsuid, [id as usize, 0, 0, 0, 0, 0]).unwrap_or(0) as u32
}

/// `setfsgid(id)`: as [`setfsuid`].
pub fn setfsgid(id: u32) -> u32 {
    int_call(g::__NR_setfsgid, [id as usize, 0, 0, 0, 0, 0]).unwrap_or(0) as u32
}

/// `getresuid` or `getresgid` (`gid`) of the calling thread.
pub fn getres(gid: bool) -> [u32; 3] {
    let mut ids = [0u32; 3];
    let nr = if gid {
        g::__NR_getresgid
    } else {
        g::__NR_getresuid
    };
    let p = ids.as_mut_ptr() as usize;
    // SAFETY: the kernel writes three u32s into `ids`.
    let _ = unsafe { sc(nr, [p, p + 4, p + 8, 0, 0, 0]) };
    ids
}

/// `getgroups` into `buf`; the number of groups.
pub fn getgroups(buf: &mut [u32]) -> SysResult {
    // SAFETY: the kernel writes at most `buf.len()` u32s.
    unsafe {
        sc(
            g::__NR_getgroups,
            [buf.len(), buf.as_mut_ptr() as usize, 0, 0, 0, 0],
        )
    }
}

/// `setgroups(n, list)` of the calling thread; `list` holds `n`
/// little-endian u32s (the image's layout is the kernel's on both
/// little-endian architectures).
pub fn setgroups(list: &[u8]) -> SysResult {
    // SAFETY: the kernel reads `len / 4` u32s from the live slice.
    unsafe {
        sc(
            g::__NR_setgroups,
            [list.len() / 4, list.as_ptr() as usize, 0, 0, 0, 0],
        )
    }
}

/// Effective, permitted and inheritable capabilities (64 bits each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    /// Effective.
    pub effective: u64,
    /// Permitted.
    pub permitted: u64,
    /// Inheritable.
    pub inheritable: u64,
}

const CAP_V3: u32 = 0x2008_0522;

/// `capget` of the calling thread.
pub fn capget() -> Caps {
    let header: [u32; 2] = [CAP_V3, 0];
    let mut data = [0u32; 6];
    // SAFETY: the kernel reads the header and writes two data structs.
    let _ = unsafe {
        sc(
            g::__NR_capget,
            [
                header.as_ptr() as usize,
                data.as_mut_ptr() as usize,
                0,
                0,
                0,
                0,
            ],
        )
    };
    let word = |i: usize| u64::from(data[i]) | u64::from(data[i + 3]) << 32;
    Caps {
        effective: word(0),
        permitted: word(1),
        inheritable: word(2),
    }
}

/// `capset` of the calling thread.
pub fn capset(c: Caps) -> SysResult {
    let header: [u32; 2] = [CAP_V3, 0];
    let lo = |v: u64| v as u32;
    let hi = |v: u64| (v >> 32) as u32;
    let data = [
        lo(c.effective),
        lo(c.permitted),
        lo(c.inheritable),
        hi(c.effective),
        hi(c.permitted),
        hi(c.inheritable),
    ];
    // SAFETY: the kernel reads the header and the two data structs.
    unsafe {
        sc(
            g::__NR_capset,
            [header.as_ptr() as usize, data.as_ptr() as usize, 0, 0, 0, 0],
        )
    }
}

/// `set_robust_list(head, len)` of the calling thread: the kernel only
/// stores the pointer (it walks the list when the thread exits).
pub fn set_robust_list(head: u64, len: u64) -> SysResult {
    int_call(
        g::__NR_set_robust_list,
        [head as usize, len as usize, 0, 0, 0, 0],
    )
}

/// `membarrier(cmd, 0, 0)`.
pub fn membarrier(cmd: u32) -> SysResult {
    int_call(g::__NR_membarrier, [cmd as usize, 0, 0, 0, 0, 0])
}

/// `io_setup(nr, &ctx)`: the new context (its ring's address).
pub fn io_setup(nr: u32) -> SysResult {
    let mut ctx = 0u64;
    // SAFETY: the kernel writes the context id into `ctx` and maps the ring
    // where nothing is mapped.
    unsafe {
        sc(
            g::__NR_io_setup,
            [nr as usize, &mut ctx as *mut u64 as usize, 0, 0, 0, 0],
        )
    }?;
    Ok(ctx as usize)
}

/// `struct iocb`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Iocb {
    /// `aio_data`.
    pub data: u64,
    /// `aio_key` (little endian: before `aio_rw_flags`).
    pub key: u32,
    /// `aio_rw_flags`.
    pub rw_flags: u32,
    /// `aio_lio_opcode`.
    pub opcode: u16,
    /// `aio_reqprio`.
    pub reqprio: i16,
    /// `aio_fildes`.
    pub fildes: u32,
    /// `aio_buf`.
    pub buf: u64,
    /// `aio_nbytes`.
    pub nbytes: u64,
    /// `aio_offset`.
    pub offset: i64,
    /// `aio_reserved2`.
    pub reserved2: u64,
    /// `aio_flags`.
    pub flags: u32,
    /// `aio_resfd`.
    pub resfd: u32,
}

/// `io_submit(ctx, list.len(), list)`: the number submitted.
///
/// # Safety
/// Every pointer in `list` must point at an `Iocb` whose buffer stays
/// valid until the request completes.
pub unsafe fn io_submit(ctx: usize, list: &[*const Iocb]) -> SysResult {
    // SAFETY: forwarded to the caller.
    unsafe {
        sc(
            g::__NR_io_submit,
            [ctx, list.len(), list.as_ptr() as usize, 0, 0, 0],
        )
    }
}

/// The file system type (`f_type` of `statfs`) of `path`, which ends with
/// a NUL.
pub fn fs_type(path: &[u8]) -> Result<u64, Errno> {
    nul_terminated(path)?;
    // struct statfs: 120 bytes on x86_64 and aarch64, f_type first.
    let mut buf = [0u64; 16];
    // SAFETY: the kernel reads the NUL-terminated path and writes at most
    // 120 bytes to `buf` (128 bytes).
    unsafe {
        sc(
            g::__NR_statfs,
            [
                path.as_ptr() as usize,
                buf.as_mut_ptr() as usize,
                0,
                0,
                0,
                0,
            ],
        )
    }?;
    Ok(buf[0])
}

/// `read(fd, buf)` once.
pub fn read(fd: usize, buf: &mut [u8]) -> SysResult {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    unsafe {
        sc(
            g::__NR_read,
            [fd, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
        )
    }
}

/// `rt_sigtimedwait(every signal in mask, &info, NULL)`: the signal and
/// its `si_code`.
pub fn sigwait(mask: u64, info: &mut [u8; 128]) -> Result<(u32, i32), Errno> {
    // SAFETY: the kernel reads the 8-byte mask and writes one siginfo.
    let sig = unsafe {
        sc(
            g::__NR_rt_sigtimedwait,
            [
                &mask as *const u64 as usize,
                info.as_mut_ptr() as usize,
                0,
                8,
                0,
                0,
            ],
        )
    }?;
    let code = i32::from_le_bytes([info[8], info[9], info[10], info[11]]);
    Ok((sig as u32, code))
}

/// Take every pending signal of `mask` (`rt_sigtimedwait` with a zero
/// timeout, until none is left).
pub fn drain_signals(mask: u64) {
    let zero = [0i64; 2];
    let mut info = [0u8; 128];
    for _ in 0..64 {
        // SAFETY: the kernel reads the 8-byte mask and the timespec and
        // writes one siginfo.
        let r = unsafe {
            sc(
                g::__NR_rt_sigtimedwait,
                [
                    &mask as *const u64 as usize,
                    info.as_mut_ptr() as usize,
                    zero.as_ptr() as usize,
                    8,
                    0,
                    0,
                ],
            )
        };
        if r.is_err() {
            return;
        }
    }
}

/// Wait until child `pid` has ended, without reaping it (`waitid` with
/// `WEXITED | WNOWAIT | __WALL`).
pub fn wait_ended(pid: u32) -> SysResult {
    wait_child(pid, g::WNOWAIT)
}

/// Wait until child `pid` has ended and reap it (`waitid` with `WEXITED |
/// __WALL`: also a child with no exit signal).
pub fn reap(pid: u32) -> SysResult {
    wait_child(pid, 0)
}

/// `waitid(P_PID, pid, WEXITED | __WALL | more)`.
fn wait_child(pid: u32, more: u32) -> SysResult {
    const P_PID: usize = 1;
    let mut info = [0u8; 128];
    // SAFETY: the kernel writes one siginfo into `info`.
    unsafe {
        sc(
            g::__NR_waitid,
            [
                P_PID,
                pid as usize,
                info.as_mut_ptr() as usize,
                (g::WEXITED | g::__WALL | more) as usize,
                0,
                0,
            ],
        )
    }
}

/// `kill(pid, sig)`.
pub fn kill(pid: u32, sig: u32) -> SysResult {
    int_call(g::__NR_kill, [pid as usize, sig as usize, 0, 0, 0, 0])
}

/// Sleep `ms` milliseconds (`nanosleep`; an interruption ends it early).
pub fn sleep_ms(ms: u64) {
    let ts = [(ms / 1000) as i64, ((ms % 1000) * 1_000_000) as i64];
    // SAFETY: the kernel reads one timespec.
    let _ = unsafe { sc(g::__NR_nanosleep, [ts.as_ptr() as usize, 0, 0, 0, 0, 0]) };
}

/// `execve(path, argv, envp)` with the initial stack's vectors; returns
/// only if it fails.
pub fn execve(path: &[u8], argv: usize, envp: usize) {
    if path.last() != Some(&0) {
        return;
    }
    // SAFETY: `path` is NUL-terminated; `argv` and `envp` are the
    // NULL-terminated vectors the kernel built on the initial stack, still
    // mapped. On success this process image is replaced.
    let _ = unsafe {
        sc(
            g::__NR_execve,
            [path.as_ptr() as usize, argv, envp, 0, 0, 0],
        )
    };
}
