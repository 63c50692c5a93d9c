//! System calls run inside a stopped thread on the dumper's behalf (signal
//! handlers, sigaltstack, clear-child-tid address, brk, dumpable: state
//! only the process itself can report), arranged so that the thread is
//! never harmed if the dumper dies at any moment, SIGKILL included.
//!
//! The danger: while a thread runs an injected call it holds registers
//! that are not its own; if the tracer dies then, the kernel detaches it
//! and it runs on with them. So every injected call runs at a
//! `syscall; ret` sequence of the target's own code, with the stack
//! pointer on an `rt_sigframe` written below the thread's red zone whose
//! return address is an `rt_sigreturn` sequence (libc's `__restore_rt`),
//! and every blockable signal blocked. A live dumper stops the thread at
//! the call's exit stop and reads the result; if the dumper is gone, the
//! thread returns into `rt_sigreturn`, which loads the frame: the registers
//! it was stopped with (an interrupted call rewound to be issued again),
//! its XSAVE state and its blocked mask. Between calls the thread keeps
//! those self-recovering registers; [`Session::close`] puts the thread's
//! mask and then its registers back (in that order, so that a death in
//! between still ends in `rt_sigreturn`), and then the stack bytes the
//! frame covered. Memory below the red zone is free for the thread's next
//! signal frame: a leftover frame there after a dumper's death is as
//! harmless as a signal's.
//!
//! Without both sequences in its executable memory (every program linked
//! with glibc, musl or Go's runtime has them), with a shadow stack, or with
//! no room below the stack pointer, the calls run at a bare `syscall`
//! instruction with the thread's own registers put back after each one:
//! the window in which a dying dumper harms the thread is then the length
//! of one call (dumper/README.md gives the figure).

use kckpt_image::records::{prot, vma_kind};

use super::memory::Memory;
use super::procfs::MapEntry;
use super::ptrace::Tracee;
use crate::error::{Error, Result};

/// Where injected calls run in a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// Self-recovering calls: a `syscall; ret` sequence and an
    /// `rt_sigreturn` sequence.
    Recovering {
        /// Address of the `syscall; ret` sequence.
        syscall_ret: u64,
        /// Address of the `rt_sigreturn` sequence.
        sigreturn: u64,
    },
    /// A bare `syscall` instruction: the thread's registers are put back
    /// after each call.
    Bare(u64),
}

/// The offset of the first occurrence of any of `patterns` at an `align`ed
/// offset of `bytes`.
fn find_any(bytes: &[u8], patterns: &[&[u8]], align: usize) -> Option<usize> {
    patterns
        .iter()
        .filter_map(|p| {
            bytes
                .windows(p.len())
                .enumerate()
                .step_by(align.max(1))
                .find(|(_, w)| w == p)
                .map(|(at, _)| at)
        })
        .min()
}

/// Find where to run injected calls: the sequences for self-recovering
/// calls in the target's executable memory (vDSO first), else `bare`, the
/// address of a plain `syscall` instruction.
pub fn find_site(mem: &Memory, maps: &[MapEntry], bare: u64) -> Site {
    let align = kckpt_arch::INSN_ALIGN;
    let (mut syscall_ret, mut sigreturn) = (None, None);
    let mut candidates: Vec<&MapEntry> = maps
        .iter()
        .filter(|m| m.prot & prot::EXEC != 0 && m.kind() != vma_kind::VSYSCALL)
        .collect();
    candidates.sort_by_key(|m| m.kind() != vma_kind::VDSO);
    for m in candidates {
        if syscall_ret.is_some() && sigreturn.is_some() {
            break;
        }
        let mut bytes = vec![0u8; m.len() as usize];
        if mem.read(m.start, &mut bytes).is_err() {
            continue;
        }
        if syscall_ret.is_none() {
            syscall_ret = find_any(&bytes, kckpt_arch::SYSCALL_RET_GADGETS, align)
                .map(|at| m.start + at as u64);
        }
        if sigreturn.is_none() {
            sigreturn = find_any(&bytes, kckpt_arch::SIGRETURN_GADGETS, align)
                .map(|at| m.start + at as u64);
        }
    }
    match (syscall_ret, sigreturn) {
        (Some(syscall_ret), Some(sigreturn)) => Site::Recovering {
            syscall_ret,
            sigreturn,
        },
        _ => Site::Bare(bare),
    }
}

/// Whether thread `tid` runs with a hardware return-address stack, on
/// which the self-recovering return would fault.
fn has_shadow_stack(tid: i32) -> bool {
    let (key, value) = kckpt_arch::SHADOW_STACK_STATUS;
    if key.is_empty() {
        return false;
    }
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).unwrap_or_default();
    super::process::status_field(&status, key)
        .is_some_and(|v| v.split_whitespace().any(|f| f == value))
}

/// Bytes kept free below the stack pointer (the x86_64 red zone, and a
/// 16-byte margin on aarch64).
const RED_ZONE: u64 = 128;
/// Room for the calls' output (a `struct sigaction` is 32 bytes).
pub const OUT_LEN: u64 = 64;

/// Stack memory borrowed for one session: `[lo, sp - RED_ZONE)`, holding the
/// output area at `lo` and the frame above it.
struct Scratch {
    lo: u64,
    saved: Vec<u8>,
    call_sp: u64,
}

/// The FP/vector state of a thread for its recovery frame: the XSAVE area
/// (x86_64) or FP/SIMD state (aarch64) among its register sets, trimmed to
/// what `rt_sigreturn` loads, and its features.
fn frame_fpstate(regsets: &super::threads::Regsets) -> Option<(&[u8], u64)> {
    let xstate = regsets
        .iter()
        .find_map(|(_, t, b)| kckpt_arch::cpu_features(*t, b).map(|(xcr0, _)| (b, xcr0)));
    #[cfg(target_arch = "x86_64")]
    if let Some((bytes, xcr0)) = xstate {
        let (features, len) = kckpt_arch::cpu::frame_fpstate(bytes, xcr0);
        return Some((&bytes[..len], features));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = xstate;
    regsets
        .iter()
        .find(|(_, t, _)| *t == kckpt_image::records::nt::PRFPREG)
        .map(|(_, _, b)| (b.as_slice(), 0x3))
}

/// Injected system calls in one stopped thread.
pub struct Session<'a> {
    tracee: &'a mut Tracee,
    mem: &'a Memory,
    mode: Mode,
    out: u64,
    open: bool,
}

enum Mode {
    Recovering {
        syscall_ret: u64,
        sigreturn: u64,
        scratch: Scratch,
        mask: u64,
        masked: bool,
    },
    Bare {
        insn: u64,
        scratch: Scratch,
    },
}

impl<'a> Session<'a> {
    /// Prepare injected calls in `tracee`, whose register sets (FP state
    /// included) are `regsets`.
    pub fn open(
        tracee: &'a mut Tracee,
        mem: &'a Memory,
        maps: &[MapEntry],
        site: Site,
        regsets: &super::threads::Regsets,
    ) -> Result<Session<'a>> {
        let pid = tracee.pid();
        let stopped = *tracee.regs();
        let no_room = || Error::Unsupported {
            pid,
            reason: format!(
                "thread {pid} has no room below its stack pointer {:#x} to run system calls with",
                stopped.sp()
            ),
        };
        let recovering = match (site, frame_fpstate(regsets)) {
            (
                Site::Recovering {
                    syscall_ret,
                    sigreturn,
                },
                Some(fp),
            ) if !has_shadow_stack(pid) => Some((syscall_ret, sigreturn, fp)),
            _ => None,
        };
        let mode = match recovering {
            Some((syscall_ret, sigreturn, (fpstate, features))) => {
                let mask = tracee.sigmask()?;
                let frame_len = kckpt_arch::frame_size(fpstate.len()) as u64;
                let top = stopped.sp().checked_sub(RED_ZONE).ok_or_else(no_room)? & !63;
                let frame_addr = top.checked_sub(frame_len).ok_or_else(no_room)? & !63;
                let lo = frame_addr.checked_sub(OUT_LEN).ok_or_else(no_room)?;
                let scratch = borrow_stack(mem, maps, lo, top).ok_or_else(no_room)?;
                let mut bytes = vec![0u8; (top - lo) as usize];
                let frame = &mut bytes[(frame_addr - lo) as usize..];
                let regs = kckpt_arch::recovery_regs(&stopped);
                let input = kckpt_arch::FrameInput {
                    regs: &regs,
                    fpstate,
                    xfeatures: features,
                    sigmask: mask,
                    altstack: (0, kckpt_arch::KEEP_ALTSTACK_FLAGS, 0),
                };
                let sigreturn_sp =
                    kckpt_arch::build_sigframe(frame, frame_addr, &input).map_err(|_| no_room())?;
                let call_sp = kckpt_arch::link_frame(frame, frame_addr, sigreturn_sp, sigreturn);
                mem.write(lo, &bytes)?;
                Mode::Recovering {
                    syscall_ret,
                    sigreturn,
                    scratch: Scratch { call_sp, ..scratch },
                    mask,
                    masked: false,
                }
            }
            None => {
                let insn = match site {
                    Site::Bare(insn) => insn,
                    // The sequence starts with a `syscall` instruction.
                    Site::Recovering { syscall_ret, .. } => syscall_ret,
                };
                let top = stopped.sp().checked_sub(RED_ZONE).ok_or_else(no_room)? & !63;
                let lo = top.checked_sub(OUT_LEN).ok_or_else(no_room)?;
                let scratch = borrow_stack(mem, maps, lo, top).ok_or_else(no_room)?;
                Mode::Bare { insn, scratch }
            }
        };
        let out = match &mode {
            Mode::Recovering { scratch, .. } | Mode::Bare { scratch, .. } => scratch.lo,
        };
        Ok(Session {
            tracee,
            mem,
            mode,
            out,
            open: true,
        })
    }

    /// Whether the calls recover on their own from a dumper's death.
    pub fn recovering(&self) -> bool {
        matches!(self.mode, Mode::Recovering { .. })
    }

    /// The address of the [`OUT_LEN`]-byte area for the calls' output.
    pub fn out(&self) -> u64 {
        self.out
    }

    /// Read `len` bytes of the output area.
    pub fn read_out(&self, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len.min(OUT_LEN as usize)];
        self.mem.read(self.out, &mut buf)?;
        Ok(buf)
    }

    /// Run system call `nr(args)` in the thread; returns its raw result.
    pub fn call(&mut self, nr: u64, args: [u64; 6]) -> Result<i64> {
        let stopped = *self.tracee.regs();
        match &mut self.mode {
            Mode::Recovering {
                syscall_ret,
                sigreturn,
                scratch,
                masked,
                ..
            } => {
                let regs = kckpt_arch::injected_call_regs(
                    &stopped,
                    *syscall_ret,
                    *sigreturn,
                    scratch.call_sp,
                    nr,
                    args,
                );
                // Registers first: from here on the thread recovers by
                // itself, with its own mask, whatever happens to us.
                self.tracee.setregs(&regs)?;
                if !*masked {
                    self.tracee.set_sigmask(BLOCKABLE)?;
                    *masked = true;
                }
                crate::testing::die_at("inject-entry");
                let exit = self.tracee.run_syscall()?;
                crate::testing::die_at("inject-exit");
                Ok(kckpt_arch::syscall_return(&exit))
            }
            Mode::Bare { insn, .. } => {
                let mut regs = stopped;
                kckpt_arch::set_syscall(&mut regs, *insn, nr, args);
                let mask = self.tracee.sigmask()?;
                self.tracee.setregs(&regs)?;
                self.tracee.set_sigmask(BLOCKABLE)?;
                let exit = self.tracee.run_syscall();
                // The thread's own mask and registers back at once.
                self.tracee.set_sigmask(mask)?;
                self.tracee
                    .setregs(&kckpt_arch::rewind_for_live_resume(&stopped))?;
                Ok(kckpt_arch::syscall_return(&exit?))
            }
        }
    }

    /// Put the thread's mask, registers and stack bytes back.
    pub fn close(mut self) -> Result<()> {
        self.restore()
    }

    fn restore(&mut self) -> Result<()> {
        if !std::mem::replace(&mut self.open, false) {
            return Ok(());
        }
        let stopped = *self.tracee.regs();
        let scratch = match &self.mode {
            Mode::Recovering {
                scratch,
                mask,
                masked,
                ..
            } => {
                // The mask before the registers: until the registers are
                // back the thread would still recover through its frame.
                if *masked {
                    self.tracee.set_sigmask(*mask)?;
                }
                self.tracee
                    .setregs(&kckpt_arch::rewind_for_live_resume(&stopped))?;
                scratch
            }
            Mode::Bare { scratch, .. } => scratch,
        };
        self.mem.write(scratch.lo, &scratch.saved)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

/// Every signal but SIGKILL and SIGSTOP, which cannot be blocked.
const BLOCKABLE: u64 = !((1 << 8) | (1 << 18));

/// Save the stack bytes `[lo, top)`, which must lie inside one private
/// writable mapping: the one holding the stack pointer.
fn borrow_stack(mem: &Memory, maps: &[MapEntry], lo: u64, top: u64) -> Option<Scratch> {
    let inside = maps
        .iter()
        .any(|m| m.prot & prot::WRITE != 0 && !m.shared && m.start <= lo && top <= m.end);
    if !inside {
        return None;
    }
    let mut saved = vec![0u8; (top - lo) as usize];
    mem.read(lo, &mut saved).ok()?;
    Some(Scratch {
        lo,
        saved,
        call_sp: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_aligned_occurrence_of_any_pattern() {
        let bytes = [0x90, 0x0f, 0x05, 0xc3, 0x0f, 0x05];
        assert_eq!(find_any(&bytes, &[&[0x0f, 0x05, 0xc3]], 1), Some(1));
        assert_eq!(find_any(&bytes, &[&[0x0f, 0x05, 0xc3]], 4), None);
        assert_eq!(find_any(&bytes, &[&[0x05], &[0x90]], 1), Some(0));
    }

    #[test]
    fn blockable_leaves_kill_and_stop() {
        assert_eq!(BLOCKABLE & (1 << 8), 0); // SIGKILL (9)
        assert_eq!(BLOCKABLE & (1 << 18), 0); // SIGSTOP (19)
        assert_ne!(BLOCKABLE & (1 << 1), 0); // SIGINT (2)
    }
}
