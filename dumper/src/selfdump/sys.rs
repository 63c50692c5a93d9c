//! The system calls the self-checkpoint makes about its own thread that nix
//! does not wrap (or wraps with types that lose the raw kernel values):
//! `rt_sigaction` and `sigaltstack` queries, `PR_GET_TID_ADDRESS`,
//! `brk(0)`, glibc's rseq registration, and the snapshot child
//! (`clone` without `CLONE_VM`, like `fork` but without atfork handlers
//! and without `SIGCHLD`). Each `unsafe` block passes pointers to locals
//! of the size the kernel writes.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::libc;

use kckpt_image::records::{SigactionRecord, SignalsRecord};

use crate::error::{Error, Result};

fn call_err(what: &'static str) -> Error {
    Error::SelfCall {
        what,
        source: io::Error::last_os_error(),
    }
}

/// Every signal disposition (`rt_sigaction(sig, NULL, &old)`), in the
/// kernel's layout (handler, flags, restorer, mask).
pub fn sigactions() -> Result<SignalsRecord> {
    let mut rec = SignalsRecord {
        actions: [SigactionRecord::default(); 64],
    };
    for sig in 1..=64usize {
        if sig == 9 || sig == 19 {
            continue;
        }
        let mut k = [0u64; 4];
        // SAFETY: the kernel writes one `struct sigaction` (4 u64 with an
        // 8-byte mask) to `k`; the new action is NULL.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::null::<u8>(),
                k.as_mut_ptr(),
                8usize,
            )
        };
        if r < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                continue; // a signal number this kernel does not have
            }
            return Err(call_err("rt_sigaction"));
        }
        rec.actions[sig - 1] = SigactionRecord {
            handler: k[0],
            flags: k[1],
            restorer: k[2],
            mask: k[3],
        };
    }
    Ok(rec)
}

/// The sigaltstack: `(base, size, flags)`.
pub fn altstack() -> Result<(u64, u64, u32)> {
    let mut ss = libc::stack_t {
        ss_sp: std::ptr::null_mut(),
        ss_flags: 0,
        ss_size: 0,
    };
    // SAFETY: the kernel writes one `stack_t` to `ss`; no new stack is set.
    if unsafe { libc::sigaltstack(std::ptr::null(), &mut ss) } != 0 {
        return Err(call_err("sigaltstack"));
    }
    Ok((ss.ss_sp as u64, ss.ss_size as u64, ss.ss_flags as u32))
}

/// The `set_tid_address` value (`PR_GET_TID_ADDRESS`).
pub fn clear_child_tid() -> Result<u64> {
    let mut addr = 0u64;
    // SAFETY: the kernel writes one pointer-sized value to `addr`.
    let r = unsafe { libc::prctl(libc::PR_GET_TID_ADDRESS, &raw mut addr) };
    if r != 0 {
        return Err(call_err("prctl(PR_GET_TID_ADDRESS)"));
    }
    Ok(addr)
}

/// `prctl(PR_GET_DUMPABLE)`.
pub fn dumpable() -> u32 {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    u32::try_from(r).unwrap_or(1)
}

/// The process-wide kernel state the process reports itself (format
/// 1.3): child subreaper, THP disable, membarrier registrations (unknown
/// before Linux 6.3, and under emulation); `/proc` parts are added by the
/// caller.
pub fn kernel_state() -> kckpt_image::kstate::KstateRecord {
    use kckpt_image::kstate::{kstate_flags, KstateRecord, MEMBARRIER_REGISTRATIONS};
    let mut sub: libc::c_int = 0;
    // SAFETY: the kernel writes one int to `sub`.
    let _ = unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &raw mut sub) };
    // SAFETY: integer arguments only.
    let thp = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
    // SAFETY: MEMBARRIER_CMD_GET_REGISTRATIONS only reports.
    let mb = unsafe { libc::syscall(libc::SYS_membarrier, 1 << 9, 0, 0) };
    let mut rec = KstateRecord {
        child_subreaper: u32::from(sub != 0),
        thp_disable: thp.max(0) as u32,
        ..KstateRecord::default()
    };
    if mb >= 0 && (mb as u32) & !MEMBARRIER_REGISTRATIONS == 0 {
        rec.flags |= kstate_flags::HAVE_MEMBARRIER;
        rec.membarrier = mb as u32;
    }
    rec
}

/// `prctl(PR_GET_SECUREBITS)` of the calling thread.
pub fn securebits() -> u32 {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    r.max(0) as u32
}

/// The current program break (`brk(0)`), not glibc's `sbrk` view.
pub fn brk() -> u64 {
    // SAFETY: brk(0) only reports the break.
    unsafe { libc::syscall(libc::SYS_brk, 0usize) as u64 }
}

/// The rseq registration of this thread as glibc made it: `(address,
/// length, signature)`, all zero when none is known. glibc (2.35 or later)
/// exports the area's offset from the thread pointer and its size; the
/// kernel confirms it: registering the same area again fails with `EBUSY`
/// exactly when that very area, length and signature are registered.
pub fn rseq(thread_pointer: u64) -> (u64, u32, u32) {
    let Some((offset, size)) = glibc_rseq() else {
        return (0, 0, 0);
    };
    if size == 0 {
        return (0, 0, 0);
    }
    let addr = thread_pointer.wrapping_add(offset as u64);
    let len = size.max(32);
    let sig = kckpt_arch::selfsave::RSEQ_SIG;
    // SAFETY: rseq(addr, len, 0, sig) either fails (the thread already has
    // a registration: nothing changes) or registers `addr`, glibc's own
    // per-thread area, which is undone right below.
    let r = unsafe { libc::syscall(libc::SYS_rseq, addr, len, 0, sig) };
    if r == 0 {
        // Nothing was registered (the program unregistered it): undo.
        const RSEQ_FLAG_UNREGISTER: u32 = 1;
        // SAFETY: unregisters what the call above registered.
        unsafe { libc::syscall(libc::SYS_rseq, addr, len, RSEQ_FLAG_UNREGISTER, sig) };
        return (0, 0, 0);
    }
    if io::Error::last_os_error().raw_os_error() == Some(libc::EBUSY) {
        (addr, len, sig)
    } else {
        (0, 0, 0)
    }
}

#[cfg(target_env = "gnu")]
fn glibc_rseq() -> Option<(isize, u32)> {
    extern "C" {
        static __rseq_offset: isize;
        static __rseq_size: u32;
    }
    // SAFETY: glibc sets both once at startup, before main; plain reads.
    Some(unsafe { (__rseq_offset, __rseq_size) })
}

#[cfg(not(target_env = "gnu"))]
fn glibc_rseq() -> Option<(isize, u32)> {
    None
}

/// The snapshot: a copy of this process made by `clone` without
/// `CLONE_VM` and with no exit signal. It closes the pipe it was handed,
/// makes itself readable by its parent (`PR_SET_DUMPABLE`), asks to die
/// with its parent, and then waits (every signal blocked) until killed.
/// Its memory is this process's at the `clone`, which is the image's.
#[derive(Debug)]
pub struct Snapshot {
    pid: i32,
}

impl Snapshot {
    /// Create the snapshot; `brk` is the program break right before it.
    /// Call with every signal blocked, from a single-threaded process.
    /// `exit_signal` is 0 (no signal when the child ends) but under
    /// emulation: QEMU refuses a fork whose exit signal is not SIGCHLD.
    pub fn take(exit_signal: i32) -> Result<(Snapshot, u64)> {
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::SelfCall {
                what: "pipe2",
                source: e.into(),
            })?;
        let parent = std::process::id() as i32;
        let brk = brk();
        // SAFETY: clone without CLONE_VM and without a new stack behaves as
        // fork: the child continues on its own copy of this stack and only
        // makes system calls below (no allocation, no lock), then waits.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                exit_signal as usize,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if pid == 0 {
            child(parent, r, w);
        }
        drop(w);
        if pid < 0 {
            return Err(call_err("clone"));
        }
        let snap = Snapshot { pid: pid as i32 };
        // One byte once the child is ready, then the end of the pipe once
        // it has closed its copy (its descriptor table is the snapshot's).
        let mut byte = [0u8; 2];
        let ready = nix::unistd::read(&r, &mut byte);
        let closed = nix::unistd::read(&r, &mut byte);
        match (ready, closed) {
            (Ok(1), Ok(0)) => Ok((snap, brk)),
            _ => Err(Error::SelfCall {
                what: "the snapshot process did not start",
                source: io::Error::from_raw_os_error(libc::ECHILD),
            }),
        }
    }

    /// The snapshot's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        // SAFETY: integer arguments; `pid` is our own child, not reaped yet.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(self.pid, &mut status, libc::__WALL);
        }
    }
}

/// The snapshot child's whole life: raw system calls only.
fn child(parent: i32, r: OwnedFd, w: OwnedFd) -> ! {
    let (r, w) = (r.as_raw_fd(), w.as_raw_fd());
    let one = [1u8];
    // SAFETY: system calls with integer arguments and a pointer to `one`;
    // nothing here allocates, takes a lock or returns into the caller.
    unsafe {
        libc::syscall(libc::SYS_close, r);
        libc::syscall(libc::SYS_prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::syscall(libc::SYS_getppid) != i64::from(parent) {
            libc::syscall(libc::SYS_exit_group, 0);
        }
        libc::syscall(libc::SYS_prctl, libc::PR_SET_DUMPABLE, 1);
        libc::syscall(libc::SYS_write, w, one.as_ptr(), 1usize);
        libc::syscall(libc::SYS_close, w);
        loop {
            // ppoll with no descriptors and no timeout: sleeps until killed.
            libc::syscall(
                libc::SYS_ppoll,
                std::ptr::null::<u8>(),
                0usize,
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
            );
        }
    }
}

/// Block every signal (`rt_sigprocmask`); returns the mask before.
pub fn block_all() -> Result<u64> {
    let all = u64::MAX;
    let mut old = 0u64;
    // SAFETY: the kernel reads 8 bytes from `all` and writes 8 to `old`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &raw const all,
            &raw mut old,
            8usize,
        )
    };
    if r != 0 {
        return Err(call_err("rt_sigprocmask"));
    }
    Ok(old)
}

/// Set the blocked-signal mask back to `mask`.
pub fn set_mask(mask: u64) {
    // SAFETY: the kernel reads 8 bytes from `mask`.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &raw const mask,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
    }
}

/// `PR_GET_PDEATHSIG` of the calling thread (0: none).
pub fn pdeath_signal() -> u32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG writes one int to the pointer given.
    let r = unsafe { libc::prctl(libc::PR_GET_PDEATHSIG, &raw mut sig) };
    if r < 0 {
        0
    } else {
        sig as u32
    }
}
