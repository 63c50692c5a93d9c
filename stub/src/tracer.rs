//! The helper that removes the stub's window after the final
//! `rt_sigreturn` (a process cannot unmap the code it is running).
//!
//! Before touching the address space, the stub forks a child that forks a
//! grandchild and exits, so the restored process is left with no child.
//! The grandchild attaches with `PTRACE_SEIZE` and waits. The stub ends with
//! `int3; syscall(rt_sigreturn)`: the tracer lets `rt_sigreturn` run to its
//! exit stop (the process state is now fully restored), makes the process
//! run `munmap(window)` at the same `syscall` instruction, puts the restored
//! registers back and detaches. CRIU unmaps its restorer blob the same way.
//! If the tracer cannot attach (ptrace forbidden), the window stays mapped.
#![allow(unsafe_code)] // The shared handshake word lives at a fixed address.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use linux_raw_sys::general as g;
use linux_raw_sys::ptrace as pt;

use crate::layout::{HANDSHAKE_ADDR, WINDOW_LEN, WINDOW_START};
use crate::memory::{self, Failure};
use crate::sys;

const PENDING: u32 = 0;
const ATTACHED: u32 = 1;
const FAILED: u32 = 2;
const FUTEX_WAIT: u32 = 0;
const FUTEX_WAKE: u32 = 1;
const PR_SET_PTRACER_ANY: usize = usize::MAX;
const SIGTRAP: i32 = 5;

/// Offset in the handshake page of the blocked mask the restored process
/// resumes with: the final frame blocks every signal, and the tracer sets
/// this mask (`PTRACE_SETSIGMASK`) when it detaches, so no signal is
/// delivered (or held back by the tracer, losing its siginfo) in between.
const MASK_OFFSET: usize = 8;

fn mask_word() -> &'static AtomicU64 {
    // SAFETY: the handshake page is mapped (shared, read-write) by `start`
    // before any caller runs, for the rest of the stub's life and in the
    // tracer; an AtomicU64 at an 8-byte aligned offset is valid for any
    // bit pattern.
    unsafe { &*((HANDSHAKE_ADDR + MASK_OFFSET) as *const AtomicU64) }
}

/// Leave the saved blocked mask for the tracer (call after [`start`]).
pub fn set_final_mask(mask: u64) {
    mask_word().store(mask, Ordering::Release);
}

/// Start the tracer; returns whether it attached.
pub fn start() -> Result<bool, Failure> {
    let page = memory::scratch_page(HANDSHAKE_ADDR, 4096, true)?;
    // SAFETY: the page is 4096 bytes, page aligned, shared with the tracer
    // after fork; an AtomicU32 at its start is valid for any bit pattern.
    let word: &'static AtomicU32 = unsafe { &*(page.as_mut_ptr() as *const AtomicU32) };
    let stub = sys::getpid();
    let _ = sys::prctl(
        linux_raw_sys::prctl::PR_SET_PTRACER,
        PR_SET_PTRACER_ANY,
        0,
        0,
        0,
    );
    let attached = match sys::fork() {
        Ok(0) => {
            if let Ok(0) = sys::fork() {
                run(stub, word);
            }
            sys::exit(0);
        }
        Ok(child) => {
            let _ = sys::wait4(child as i32, 0);
            while word.load(Ordering::Acquire) == PENDING {
                let _ = sys::futex(word, FUTEX_WAIT, PENDING);
            }
            word.load(Ordering::Acquire) == ATTACHED
        }
        Err(_) => false,
    };
    let _ = sys::prctl(linux_raw_sys::prctl::PR_SET_PTRACER, 0, 0, 0, 0);
    Ok(attached)
}

fn set_state(word: &AtomicU32, state: u32) {
    word.store(state, Ordering::Release);
    let _ = sys::futex(word, FUTEX_WAKE, 1);
}

/// The grandchild.
fn run(stub: u32, word: &AtomicU32) -> ! {
    // Hold none of the restored process's files (its stdout above all).
    let _ = sys::close_from(0);
    let seized = sys::ptrace(
        pt::PTRACE_SEIZE,
        stub,
        0,
        pt::PTRACE_O_TRACESYSGOOD as usize,
    );
    if seized.is_err() {
        set_state(word, FAILED);
        sys::exit_thread(1);
    }
    set_state(word, ATTACHED);
    loop {
        let Some(status) = wait(stub) else {
            sys::exit_thread(0)
        };
        let sig = (status >> 8) & 0xff;
        let event = (status >> 16) & 0xff;
        if event == pt::PTRACE_EVENT_STOP as i32 {
            let _ = sys::ptrace(pt::PTRACE_LISTEN, stub, 0, 0);
        } else if sig == SIGTRAP {
            unmap_window(stub);
            sys::exit_thread(0);
        } else {
            let _ = sys::ptrace(pt::PTRACE_CONT, stub, 0, sig as usize);
        }
    }
}

/// Wait for the next stop of `pid`; `None` once it is gone.
fn wait(pid: u32) -> Option<i32> {
    loop {
        match sys::wait4(pid as i32, g::__WALL) {
            Ok((_, status)) => {
                let stopped = status & 0xff == 0x7f;
                if !stopped {
                    return None; // exited or killed
                }
                return Some(status);
            }
            Err(sys::Errno(linux_raw_sys::errno::EINTR)) => continue,
            Err(_) => return None,
        }
    }
}

/// Resume with PTRACE_SYSCALL until the next syscall stop; a signal that
/// arrives meanwhile is held back and returned for delivery at detach.
fn to_syscall_stop(pid: u32, held: &mut usize) -> Option<()> {
    let mut sig = 0usize;
    loop {
        sys::ptrace(pt::PTRACE_SYSCALL, pid, 0, sig).ok()?;
        let status = wait(pid)?;
        let stop = (status >> 8) & 0xffff;
        if stop == SIGTRAP | 0x80 {
            return Some(());
        }
        sig = 0;
        if stop & 0xff00 == 0 && stop != SIGTRAP {
            *held = stop as usize;
        }
    }
}

fn regs(request: u32, pid: u32, regs: &mut kckpt_arch::UserRegs) -> Option<()> {
    sys::ptrace_regs(request, pid, regs).ok().map(|_| ())
}

fn unmap_window(pid: u32) {
    let mut held = 0usize;
    let mut r = kckpt_arch::UserRegs::default();
    let done = (|| {
        regs(pt::PTRACE_GETREGSET, pid, &mut r)?;
        let syscall_pc = kckpt_arch::syscall_pc_after_trap(&r);
        // rt_sigreturn: entry, then exit with the restored registers.
        to_syscall_stop(pid, &mut held)?;
        to_syscall_stop(pid, &mut held)?;
        let mut restored = kckpt_arch::UserRegs::default();
        regs(pt::PTRACE_GETREGSET, pid, &mut restored)?;
        let mut call = restored;
        let args = [WINDOW_START as u64, WINDOW_LEN as u64, 0, 0, 0, 0];
        kckpt_arch::set_syscall(&mut call, syscall_pc, u64::from(g::__NR_munmap), args);
        regs(pt::PTRACE_SETREGSET, pid, &mut call)?;
        to_syscall_stop(pid, &mut held)?;
        to_syscall_stop(pid, &mut held)?;
        regs(pt::PTRACE_SETREGSET, pid, &mut restored)?;
        Some(())
    })();
    let _ = done;
    let mask = mask_word().load(Ordering::Acquire);
    let _ = crate::xsys::ptrace_setsigmask(pid, mask);
    let _ = sys::ptrace(pt::PTRACE_DETACH, pid, 0, held);
}
