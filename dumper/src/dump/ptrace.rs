//! Control of the stopped target through ptrace: `PTRACE_SEIZE` +
//! `PTRACE_INTERRUPT`, register and regset reads and writes, the signal
//! mask and rseq configuration, running one injected system call (set up by
//! [`super::inject`]), and the way out (registers put back and detach, or
//! SIGKILL).
//!
//! No signal is ever held back by the tracer: a signal that stops the
//! target while it is being seized or while it runs an injected call is
//! delivered at once (injected calls run with every blockable signal
//! blocked, so only stop signals and faults can appear), so a dumper that
//! dies cannot take a signal with it.
//!
//! The only `unsafe` of the dumper lives here: the ptrace requests nix does
//! not wrap (`GETREGS`/`SETREGS` into kckpt's own register struct,
//! `GETREGSET` with a caller-sized buffer, `GETSIGMASK`,
//! `GET_RSEQ_CONFIGURATION`, `SECCOMP_GET_FILTER`, `SECCOMP_GET_METADATA`)
//! go through `libc::ptrace` with pointers to
//! local buffers of the size the kernel is told.
#![allow(unsafe_code)]

use nix::errno::Errno;
use nix::libc::{self, c_long, c_void};
use nix::sys::ptrace;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use kckpt_arch::{RegsetSpec, UserRegs};

use crate::error::{Error, Result};

/// `PTRACE_GET_RSEQ_CONFIGURATION`.
const PTRACE_GET_RSEQ_CONFIGURATION: libc::c_uint = 0x420f;
/// `PTRACE_GETSIGMASK`.
const PTRACE_GETSIGMASK: libc::c_uint = 0x420a;
/// `PTRACE_SETSIGMASK`.
const PTRACE_SETSIGMASK: libc::c_uint = 0x420b;

/// `struct ptrace_rseq_configuration`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RseqConfiguration {
    rseq_abi_pointer: u64,
    rseq_abi_size: u32,
    signature: u32,
    flags: u32,
    pad: u32,
}

/// The rseq registration of a thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rseq {
    /// Address of the rseq area (0: not registered).
    pub addr: u64,
    /// Its length.
    pub len: u32,
    /// The abort signature.
    pub sig: u32,
}

/// Issue a ptrace request the kernel answers by reading or writing `data`.
///
/// # Safety
/// `data` must be valid for whatever the kernel reads or writes for
/// `request` (the caller passes a pointer to a local of the right size).
unsafe fn raw(
    request: libc::c_uint,
    pid: Pid,
    addr: usize,
    data: *mut c_void,
) -> nix::Result<c_long> {
    // SAFETY: forwarded from the caller's contract on `data`; `addr` is an
    // integer argument (a size or a regset number) for every request used here.
    let r = unsafe { libc::ptrace(request, pid.as_raw(), addr as *mut c_void, data) };
    Errno::result(r)
}

/// A traced, stopped target. Dropping it without [`Tracee::resume`] or
/// [`Tracee::kill`] puts its registers back and detaches (best effort).
#[derive(Debug)]
pub struct Tracee {
    pid: Pid,
    /// Registers at the interrupt stop, as the target had them.
    orig: UserRegs,
    attached: bool,
    /// `orig` was read (registers may be written back).
    regs_valid: bool,
    /// The signal of the group stop the target was in when seized (the
    /// interrupt stop reports it instead of SIGTRAP).
    group_stop: Option<i32>,
}

impl Tracee {
    /// Seize `pid` and stop it with `PTRACE_INTERRUPT`.
    /// A thread under seccomp is seized with `PTRACE_O_SUSPEND_SECCOMP`
    /// when the dumper may (CAP_SYS_ADMIN, no seccomp of its own): the
    /// system calls kckpt injects must not meet its filters or strict mode.
    pub fn seize(pid: i32) -> Result<Tracee> {
        let p = Pid::from_raw(pid);
        let mut options = ptrace::Options::PTRACE_O_TRACESYSGOOD;
        if super::seccomp::mode_of(pid) != 0 && super::seccomp::can_suspend() {
            options |= ptrace::Options::from_bits_retain(libc::PTRACE_O_SUSPEND_SECCOMP);
        }
        ptrace::seize(p, options).map_err(|source| Error::Trace { pid, source })?;
        let mut t = Tracee {
            pid: p,
            orig: UserRegs::default(),
            attached: true,
            regs_valid: false,
            group_stop: None,
        };
        ptrace::interrupt(p).map_err(|e| t.err("PTRACE_INTERRUPT", e))?;
        loop {
            match t.wait()? {
                WaitStatus::PtraceEvent(_, sig, ev) if ev == libc::PTRACE_EVENT_STOP => {
                    if sig != nix::sys::signal::Signal::SIGTRAP {
                        t.group_stop = Some(sig as i32);
                    }
                    break;
                }
                WaitStatus::Stopped(_, sig) => {
                    // A signal-delivery-stop before the interrupt stop:
                    // deliver it (the interrupt stop follows).
                    ptrace::cont(p, Some(sig)).map_err(|e| t.err("PTRACE_CONT", e))?;
                }
                _ => {
                    ptrace::cont(p, None).map_err(|e| t.err("PTRACE_CONT", e))?;
                }
            }
        }
        t.orig = t.getregs()?;
        t.regs_valid = true;
        Ok(t)
    }

    /// The signal that had stopped the target (group stop) when it was
    /// seized; `None`: it was running.
    pub fn group_stop(&self) -> Option<i32> {
        self.group_stop
    }

    /// The target's pid.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// The registers the target had when it was stopped.
    pub fn regs(&self) -> &UserRegs {
        &self.orig
    }

    fn err(&self, what: &'static str, source: nix::Error) -> Error {
        if source == Errno::ESRCH && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
        {
            return Error::TargetDied { pid: self.pid() };
        }
        Error::Ptrace {
            what,
            pid: self.pid(),
            source,
        }
    }

    fn wait(&mut self) -> Result<WaitStatus> {
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => {
                    self.attached = false;
                    return Err(Error::TargetDied { pid: self.pid() });
                }
                Ok(status) => return Ok(status),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(self.err("waitpid", e)),
            }
        }
    }

    /// The registers the target has now.
    #[cfg(target_arch = "x86_64")]
    pub fn getregs(&self) -> Result<UserRegs> {
        let mut regs = UserRegs::default();
        // SAFETY: PTRACE_GETREGS writes one `user_regs_struct`, which
        // `UserRegs` is (repr(C), same 27 u64 fields).
        unsafe { raw(libc::PTRACE_GETREGS, self.pid, 0, (&raw mut regs).cast()) }
            .map_err(|e| self.err("PTRACE_GETREGS", e))?;
        Ok(regs)
    }

    /// Set the target's registers.
    #[cfg(target_arch = "x86_64")]
    pub fn setregs(&self, regs: &UserRegs) -> Result<()> {
        let mut copy = *regs;
        // SAFETY: PTRACE_SETREGS reads one `user_regs_struct` from `copy`.
        unsafe { raw(libc::PTRACE_SETREGS, self.pid, 0, (&raw mut copy).cast()) }
            .map_err(|e| self.err("PTRACE_SETREGS", e))?;
        Ok(())
    }

    /// aarch64 has no PTRACE_GETREGS: the NT_PRSTATUS regset is
    /// `user_pt_regs`, which `UserRegs` is.
    #[cfg(not(target_arch = "x86_64"))]
    pub fn getregs(&self) -> Result<UserRegs> {
        let mut regs = UserRegs::default();
        let mut iov = libc::iovec {
            iov_base: (&raw mut regs).cast(),
            iov_len: core::mem::size_of::<UserRegs>(),
        };
        // SAFETY: the kernel writes at most `iov_len` bytes to `regs`.
        unsafe {
            raw(
                libc::PTRACE_GETREGSET,
                self.pid,
                libc::NT_PRSTATUS as usize,
                (&raw mut iov).cast(),
            )
        }
        .map_err(|e| self.err("PTRACE_GETREGSET NT_PRSTATUS", e))?;
        Ok(regs)
    }

    /// Set the target's registers.
    #[cfg(not(target_arch = "x86_64"))]
    pub fn setregs(&self, regs: &UserRegs) -> Result<()> {
        let mut copy = *regs;
        let mut iov = libc::iovec {
            iov_base: (&raw mut copy).cast(),
            iov_len: core::mem::size_of::<UserRegs>(),
        };
        // SAFETY: the kernel reads `iov_len` bytes from `copy`.
        unsafe {
            raw(
                libc::PTRACE_SETREGSET,
                self.pid,
                libc::NT_PRSTATUS as usize,
                (&raw mut iov).cast(),
            )
        }
        .map_err(|e| self.err("PTRACE_SETREGSET NT_PRSTATUS", e))?;
        Ok(())
    }

    /// Read a register set; `None` when the kernel does not have it here.
    pub fn regset(&self, spec: &RegsetSpec) -> Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; spec.max_size];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: the kernel writes at most `iov_len` bytes to `iov_base`,
        // which points to `buf` of that length, and updates `iov_len`.
        let r = unsafe {
            raw(
                libc::PTRACE_GETREGSET,
                self.pid,
                spec.note_type as usize,
                (&raw mut iov).cast(),
            )
        };
        match r {
            Ok(_) => {
                buf.truncate(iov.iov_len.min(spec.max_size));
                Ok(Some(buf))
            }
            Err(Errno::EINVAL | Errno::ENODEV) if !spec.required => Ok(None),
            Err(e) => Err(self.err("PTRACE_GETREGSET", e)),
        }
    }

    /// The blocked-signal mask.
    pub fn sigmask(&self) -> Result<u64> {
        let mut mask = 0u64;
        // SAFETY: PTRACE_GETSIGMASK writes `addr` = 8 bytes to `mask`.
        unsafe { raw(PTRACE_GETSIGMASK, self.pid, 8, (&raw mut mask).cast()) }
            .map_err(|e| self.err("PTRACE_GETSIGMASK", e))?;
        Ok(mask)
    }

    /// Set the blocked-signal mask.
    pub fn set_sigmask(&self, mask: u64) -> Result<()> {
        let mut mask = mask;
        // SAFETY: PTRACE_SETSIGMASK reads `addr` = 8 bytes from `mask`.
        unsafe { raw(PTRACE_SETSIGMASK, self.pid, 8, (&raw mut mask).cast()) }
            .map_err(|e| self.err("PTRACE_SETSIGMASK", e))?;
        Ok(())
    }

    /// The rseq registration (zero when none or when the kernel cannot say).
    pub fn rseq(&self) -> Result<Rseq> {
        let mut conf = RseqConfiguration::default();
        // SAFETY: the kernel writes at most `addr` bytes (the struct's size)
        // to `conf`.
        let r = unsafe {
            raw(
                PTRACE_GET_RSEQ_CONFIGURATION,
                self.pid,
                std::mem::size_of::<RseqConfiguration>(),
                (&raw mut conf).cast(),
            )
        };
        match r {
            Ok(_) => Ok(Rseq {
                addr: conf.rseq_abi_pointer,
                len: conf.rseq_abi_size,
                sig: conf.signature,
            }),
            Err(Errno::EINVAL | Errno::EIO) => Ok(Rseq::default()),
            Err(e) => Err(self.err("PTRACE_GET_RSEQ_CONFIGURATION", e)),
        }
    }

    /// The queued signals (`siginfo_t`, 128 bytes each, in queue order) of
    /// the thread's own queue, or with `shared` of the process-wide queue
    /// (`PTRACE_PEEKSIGINFO`).
    pub fn peek_siginfo(&self, shared: bool) -> Result<Vec<[u8; 128]>> {
        /// `struct ptrace_peeksiginfo_args`.
        #[repr(C)]
        struct PeekArgs {
            off: u64,
            flags: u32,
            nr: i32,
        }
        const PTRACE_PEEKSIGINFO: libc::c_uint = 0x4209;
        const BATCH: usize = 32;
        let mut out = Vec::new();
        loop {
            let mut args = PeekArgs {
                off: out.len() as u64,
                flags: u32::from(shared),
                nr: BATCH as i32,
            };
            let mut buf = [[0u8; 128]; BATCH];
            // SAFETY: the kernel reads `args` and writes at most `nr`
            // 128-byte siginfos into `buf`, which has room for `BATCH`.
            let n = unsafe {
                libc::ptrace(
                    PTRACE_PEEKSIGINFO,
                    self.pid.as_raw(),
                    (&raw mut args).cast::<c_void>(),
                    buf.as_mut_ptr().cast::<c_void>(),
                )
            };
            let n = Errno::result(n).map_err(|e| self.err("PTRACE_PEEKSIGINFO", e))? as usize;
            out.extend_from_slice(&buf[..n.min(BATCH)]);
            if n < BATCH {
                return Ok(out);
            }
        }
    }

    /// Resume with PTRACE_SYSCALL until the next syscall stop. A signal
    /// that stops the target meanwhile is delivered (never held back: a
    /// dumper that dies must not take it along); a group stop or interrupt
    /// stop is passed over.
    fn run_to_syscall_stop(&mut self) -> Result<()> {
        let mut deliver = None;
        loop {
            ptrace::syscall(self.pid, deliver).map_err(|e| self.err("PTRACE_SYSCALL", e))?;
            deliver = match self.wait()? {
                WaitStatus::PtraceSyscall(_) => return Ok(()),
                WaitStatus::Stopped(_, sig) => Some(sig),
                _ => None,
            };
        }
    }

    /// Run the system call the registers were set up for (see
    /// [`super::inject`]) from its entry to its exit stop; returns the
    /// registers at the exit stop.
    pub fn run_syscall(&mut self) -> Result<UserRegs> {
        self.run_to_syscall_stop()?; // entry
        self.run_to_syscall_stop()?; // exit
        self.getregs()
    }

    /// Put the live registers back (an interrupted call restarts as the
    /// kernel would have done) and detach.
    pub fn resume(mut self) -> Result<()> {
        self.attached = false;
        let live = kckpt_arch::rewind_for_live_resume(&self.orig);
        self.setregs(&live)?;
        ptrace::detach(self.pid, None).map_err(|e| self.err("PTRACE_DETACH", e))?;
        Ok(())
    }

    /// Kill the still-stopped target and reap the tracer's notification.
    pub fn kill(mut self) {
        self.attached = false;
        let _ = signal::kill(self.pid, Signal::SIGKILL);
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) | Ok(_) => continue,
                Err(_) => break,
            }
        }
    }
}

/// `PTRACE_SECCOMP_GET_FILTER`: filter `index` (0: the oldest) of
/// seized thread `tid`, as `struct sock_filter` bytes.
pub fn seccomp_filter(tid: i32, index: usize) -> nix::Result<Vec<u8>> {
    const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;
    let pid = Pid::from_raw(tid);
    // SAFETY: a null `data` only asks for the instruction count.
    let count = unsafe { raw(PTRACE_SECCOMP_GET_FILTER, pid, index, std::ptr::null_mut()) }?;
    let mut buf = vec![0u8; count as usize * 8];
    // SAFETY: `buf` holds `count` 8-byte instructions, what the kernel
    // writes for this filter (a filter never changes once installed).
    let n = unsafe {
        raw(
            PTRACE_SECCOMP_GET_FILTER,
            pid,
            index,
            buf.as_mut_ptr().cast(),
        )
    }?;
    buf.truncate(n as usize * 8);
    Ok(buf)
}

/// `PTRACE_SECCOMP_GET_METADATA`: the flags of filter `index` of seized
/// thread `tid` (`SECCOMP_FILTER_FLAG_LOG` is the only one reported).
pub fn seccomp_flags(tid: i32, index: usize) -> nix::Result<u64> {
    const PTRACE_SECCOMP_GET_METADATA: libc::c_uint = 0x420d;
    let mut md = [index as u64, 0u64];
    // SAFETY: `md` is a `struct seccomp_metadata` (16 bytes) and the kernel
    // is told that size.
    unsafe {
        raw(
            PTRACE_SECCOMP_GET_METADATA,
            Pid::from_raw(tid),
            std::mem::size_of_val(&md),
            md.as_mut_ptr().cast(),
        )
    }?;
    Ok(md[1])
}

impl Drop for Tracee {
    fn drop(&mut self) {
        if self.attached {
            self.attached = false;
            if self.regs_valid {
                let live = kckpt_arch::rewind_for_live_resume(&self.orig);
                let _ = self.setregs(&live);
            }
            let _ = ptrace::detach(self.pid, None);
        }
    }
}
