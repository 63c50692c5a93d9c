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
//!
//! The tracer never spins and never outlives the process it serves: it
//! sleeps in `wait4` until the threads reach their `int3`, ends when they
//! are gone, and after the `int3` handshake it has a bounded number of stops
//! per step ([`MAX_STOPS`]) and a 10-second alarm for the whole job. A
//! thread that cannot get through `rt_sigreturn` and the injected `munmap`
//! (registers the CPU refuses to return to fault again at every attempt)
//! is not retried forever: the tracer kills the process, which could not
//! run anyway. The stub waits a bounded time for the tracer to attach.
//!
//! The `int3` raises SIGTRAP while every signal is blocked, and the kernel
//! then resets SIGTRAP's disposition to the default (a forced signal that
//! is blocked or ignored cannot stay so): the tracer, which discards that
//! SIGTRAP, sets the saved SIGTRAP action again in the process (an
//! `rt_sigaction` run like the `munmap`, with the action the stub left in
//! the handshake area) once every thread is past its trap.
//!
//! A process saved stopped by `SIGSTOP` gets that signal from the tracer
//! right before the detach ([`set_stop_signal`]), so that it stops
//! untraced before it runs any of its own instructions.
//!
//! With several threads the tracer follows the stub's clones
//! (`PTRACE_O_TRACECLONE`), waits until every thread has stopped at its
//! `int3`, lets each run `rt_sigreturn` to its exit stop, runs `munmap` in
//! one of them, and detaches them all.
#![allow(unsafe_code)] // The shared handshake word lives at a fixed address.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use kckpt_arch::syscall::raw_syscall;
use linux_raw_sys::general as g;
use linux_raw_sys::ptrace as pt;

use crate::layout::{HANDSHAKE_ADDR, MAX_THREADS, WINDOW_LEN, WINDOW_START};
use crate::memory::{self, Failure};
use crate::sys;

const PENDING: u32 = 0;
const ATTACHED: u32 = 1;
const FAILED: u32 = 2;
/// Attached with `PTRACE_O_SUSPEND_SECCOMP`.
const ATTACHED_SUSPENDED: u32 = 3;
const FUTEX_WAIT: u32 = 0;
const FUTEX_WAKE: u32 = 1;
const PR_SET_PTRACER_ANY: usize = usize::MAX;
const SIGTRAP: i32 = 5;
const SIGKILL: usize = 9;
const SIGALRM: u32 = 14;

/// Most stops [`to_syscall_stop`] waits through. With every signal blocked
/// only faults (and SIGSTOP) stop a thread between its `int3` and the end
/// of the injected `munmap`; more stops than this means it cannot make
/// progress (a fault at each return to user space).
const MAX_STOPS: u32 = 16;
/// Seconds the tracer allows itself from the `int3` handshake to the
/// detach (it takes milliseconds): when the alarm fires the tracer dies
/// (SIGALRM's default action) and the kernel detaches the threads.
const JOB_SECONDS: usize = 10;
/// Seconds the stub waits for the tracer to attach (it takes
/// milliseconds; a tracer that died before saying so is not waited for).
const ATTACH_SECONDS: u32 = 10;

/// The tracer attached with `PTRACE_O_SUSPEND_SECCOMP` (set by [`start`]).
static SUSPENDED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Did the tracer attach with `PTRACE_O_SUSPEND_SECCOMP` (nothing the
/// stub's threads or the tracer do is filtered until it detaches)?
pub fn suspended() -> bool {
    SUSPENDED.load(Ordering::Relaxed)
}

/// Offset in the handshake area of the table of blocked masks the threads
/// resume with: `(tid, mask)` pairs, one per thread. The final frames block
/// every signal, and the tracer sets each thread's mask
/// (`PTRACE_SETSIGMASK`) when it detaches it, so no signal is delivered (or
/// held back by the tracer, losing its siginfo) in between.
const MASKS_OFFSET: usize = 64;
/// Offset in the handshake area of the saved SIGTRAP action (a kernel
/// `struct sigaction`, 32 bytes), read by the `rt_sigaction` the tracer
/// runs in the process.
const SIGTRAP_ACTION_OFFSET: usize = 8;
/// Offset in the handshake area of the signal the tracer sends the
/// process right before it detaches it (0: none; [`set_stop_signal`]).
const STOP_OFFSET: usize = 48;
/// Offset in the handshake area of the table of system call results, one
/// `u64` per thread (in the order of the mask table): the raw
/// `-ERESTART...` of a thread saved inside a call the kernel would issue
/// again, 0 for none ([`set_restart`]).
const RESTARTS_OFFSET: usize = MASKS_OFFSET + MAX_THREADS * 16;
/// Size of the shared handshake area: the state word, the SIGTRAP action,
/// the mask table and the results.
const HANDSHAKE_LEN: usize = (RESTARTS_OFFSET + MAX_THREADS * 8).next_multiple_of(4096);

fn mask_slot(i: usize) -> (&'static AtomicU64, &'static AtomicU64) {
    assert!(i < MAX_THREADS);
    let at = HANDSHAKE_ADDR + MASKS_OFFSET + i * 16;
    // SAFETY: the handshake area is mapped (shared, read-write) by `start`
    // before any caller runs, for the rest of the stub's life and in the
    // tracer; AtomicU64s at 8-byte aligned offsets inside it are valid for
    // any bit pattern.
    unsafe { (&*(at as *const AtomicU64), &*((at + 8) as *const AtomicU64)) }
}

/// Leave thread `tid`'s saved blocked mask for the tracer, in slot `index`
/// (the thread's position in the image; call after [`start`]).
pub fn set_final_mask(index: usize, tid: u32, mask: u64) {
    if index < MAX_THREADS {
        let (t, m) = mask_slot(index);
        m.store(mask, Ordering::Release);
        t.store(u64::from(tid), Ordering::Release);
    }
}

fn restart_slot(i: usize) -> &'static AtomicU64 {
    assert!(i < MAX_THREADS);
    // SAFETY: as in `mask_slot`: inside the mapped handshake area, 8-byte
    // aligned, valid for any bit pattern.
    unsafe { &*((HANDSHAKE_ADDR + RESTARTS_OFFSET + i * 8) as *const AtomicU64) }
}

/// Thread `index` (slot of [`set_final_mask`]) was saved inside a system
/// call that returned `result` (`-ERESTARTSYS`...), its registers rewound
/// to issue it again: the tracer makes them that call's exit before it
/// detaches the thread, so the kernel applies its restart rule with any
/// signal then pending (`kckpt_arch::restart_in_kernel`).
pub fn set_restart(index: usize, result: i64) {
    if index < MAX_THREADS {
        restart_slot(index).store(result as u64, Ordering::Release);
    }
}

/// The call result the thread of slot `i` left ([`set_restart`]), if any.
fn restart_of(i: usize) -> Option<i64> {
    let r = restart_slot(i).load(Ordering::Acquire);
    (r != 0).then_some(r as i64)
}

fn stop_word() -> &'static AtomicU64 {
    // SAFETY: as in `mask_slot`: inside the mapped handshake area, 8-byte
    // aligned, valid for any bit pattern.
    unsafe { &*((HANDSHAKE_ADDR + STOP_OFFSET) as *const AtomicU64) }
}

/// Have the tracer send `sig` (`SIGSTOP`) to the process while it still
/// holds every thread at its last stop, right before it detaches them: the
/// signal is then taken, untraced, before any instruction of the restored
/// program runs (call after [`start`] attached).
pub fn set_stop_signal(sig: u32) {
    stop_word().store(u64::from(sig), Ordering::Release);
}

/// The slot thread `tid` left its mask and call result in, if it did.
fn slot_of(tid: u32) -> Option<usize> {
    (0..MAX_THREADS).find(|&i| mask_slot(i).0.load(Ordering::Acquire) == u64::from(tid))
}

/// Start the tracer for a process of `threads` threads; returns whether it
/// attached. `pids`: the pids to give the helper child and grandchild
/// (`clone3` with `set_tid`), or 0 for any. `sigtrap`: the saved SIGTRAP
/// action, which the tracer sets again after the `int3` handshake.
/// `suspend_seccomp`: attach with `PTRACE_O_SUSPEND_SECCOMP` if the kernel
/// allows it (see [`suspended`]).
pub fn start(
    threads: usize,
    pids: [u32; 2],
    sigtrap: &sys::KernelSigaction,
    suspend_seccomp: bool,
) -> Result<bool, Failure> {
    let page = memory::scratch_page(HANDSHAKE_ADDR, HANDSHAKE_LEN, true)?;
    // SAFETY: the area is at least 4096 bytes, page aligned, shared with the tracer
    // after fork; an AtomicU32 at its start is valid for any bit pattern.
    let word: &'static AtomicU32 = unsafe { &*(page.as_mut_ptr() as *const AtomicU32) };
    let action = [
        sigtrap.handler,
        sigtrap.flags,
        sigtrap.restorer,
        sigtrap.mask,
    ];
    for (i, v) in action.iter().enumerate() {
        let at = SIGTRAP_ACTION_OFFSET + i * 8;
        page[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    }
    let stub = sys::getpid();
    let _ = sys::prctl(
        linux_raw_sys::prctl::PR_SET_PTRACER,
        PR_SET_PTRACER_ANY,
        0,
        0,
        0,
    );
    let attached = match fork_as(pids[0]) {
        Ok(0) => {
            match fork_as(pids[1]) {
                Ok(0) => run(stub, word, threads, suspend_seccomp),
                Ok(_) => {}
                Err(_) => set_state(word, FAILED),
            }
            sys::exit(0);
        }
        Ok(child) => {
            let _ = sys::wait4(child as i32, linux_raw_sys::general::__WALL);
            wait_attached(word)
        }
        Err(_) => false,
    };
    let _ = sys::prctl(linux_raw_sys::prctl::PR_SET_PTRACER, 0, 0, 0, 0);
    Ok(attached)
}

/// `fork`, with pid `pid` in this PID namespace unless it is 0, and no
/// exit signal: the restored process must not find a `SIGCHLD` of the
/// stub's among its pending signals (it would hide the saved one: zdtm
/// sigpending). Waited for with `__WALL`.
fn fork_as(pid: u32) -> sys::SysResult {
    crate::threads::fork_with_pid_signal(pid, 0)
}

/// Wait (at most [`ATTACH_SECONDS`]) for the tracer's answer; a tracer
/// that did not answer in time is told it is too late and not used.
/// Records whether it suspended seccomp ([`suspended`]).
fn wait_attached(word: &AtomicU32) -> bool {
    let second = [1u64, 0];
    for _ in 0..ATTACH_SECONDS {
        if word.load(Ordering::Acquire) != PENDING {
            break;
        }
        // SAFETY: FUTEX_WAIT on a live word with a relative timeout the
        // kernel only reads.
        let _ = unsafe {
            raw_syscall(
                g::__NR_futex as usize,
                [
                    word.as_ptr() as usize,
                    FUTEX_WAIT as usize,
                    PENDING as usize,
                    second.as_ptr() as usize,
                    0,
                    0,
                ],
            )
        };
    }
    match word.compare_exchange(PENDING, FAILED, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => false,
        Err(state) => {
            SUSPENDED.store(state == ATTACHED_SUSPENDED, Ordering::Relaxed);
            state == ATTACHED || state == ATTACHED_SUSPENDED
        }
    }
}

fn set_state(word: &AtomicU32, state: u32) {
    word.store(state, Ordering::Release);
    let _ = sys::futex(word, FUTEX_WAKE, 1);
}

/// The grandchild. With `suspend_seccomp` it tries
/// `PTRACE_O_SUSPEND_SECCOMP` first (CAP_SYS_ADMIN, and no seccomp of its
/// own: it was forked before anything was installed); the option passes
/// to the threads it follows.
fn run(stub: u32, word: &AtomicU32, threads: usize, suspend_seccomp: bool) -> ! {
    // Hold none of the restored process's files (its stdout above all).
    let _ = sys::close_from(0);
    let options = pt::PTRACE_O_TRACESYSGOOD | pt::PTRACE_O_TRACECLONE;
    let mut attached = ATTACHED;
    let mut seized = Err(sys::Errno(linux_raw_sys::errno::EPERM));
    if suspend_seccomp {
        seized = sys::ptrace(
            pt::PTRACE_SEIZE,
            stub,
            0,
            (options | pt::PTRACE_O_SUSPEND_SECCOMP) as usize,
        );
        attached = ATTACHED_SUSPENDED;
    }
    if seized.is_err() {
        seized = sys::ptrace(pt::PTRACE_SEIZE, stub, 0, options as usize);
        attached = ATTACHED;
    }
    // The stub gave up waiting (exiting detaches it again).
    let late = word
        .compare_exchange(PENDING, attached, Ordering::AcqRel, Ordering::Acquire)
        .is_err();
    if seized.is_err() || late {
        set_state(word, FAILED);
        sys::exit_thread(1);
    }
    let _ = sys::futex(word, FUTEX_WAKE, 1);
    // Nothing inherited may keep SIGALRM from ending a tracer that takes
    // too long (an ignored or blocked SIGALRM survives execve).
    let _ = sys::set_sigaction(SIGALRM, &sys::KernelSigaction::default());
    let _ = sys::set_sigmask(0);
    let mut trapped = [0u32; MAX_THREADS];
    let mut count = 0usize;
    loop {
        let Some((pid, status)) = wait_any() else {
            sys::exit_thread(0)
        };
        if status & 0xff != 0x7f {
            continue; // a thread ended (the restore failed)
        }
        let sig = (status >> 8) & 0xff;
        let event = (status >> 16) & 0xff;
        if event == pt::PTRACE_EVENT_STOP as i32 && sig != SIGTRAP {
            let _ = sys::ptrace(pt::PTRACE_LISTEN, pid, 0, 0);
        } else if event != 0 {
            // A new thread's first stop, or its creator's clone event.
            let _ = sys::ptrace(pt::PTRACE_CONT, pid, 0, 0);
        } else if sig == SIGTRAP && count < trapped.len() {
            trapped[count] = pid;
            count += 1;
            if count == threads {
                alarm(JOB_SECONDS);
                unmap_window(stub, &trapped[..count]);
                sys::exit_thread(0);
            }
        } else {
            let _ = sys::ptrace(pt::PTRACE_CONT, pid, 0, sig as usize);
        }
    }
}

/// The next stop or end of any tracee; `None` once there is none.
fn wait_any() -> Option<(u32, i32)> {
    loop {
        match sys::wait4(-1, g::__WALL) {
            Ok((pid, status)) => return Some((pid as u32, status)),
            Err(sys::Errno(linux_raw_sys::errno::EINTR)) => continue,
            Err(_) => return None,
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

/// `setitimer(ITIMER_REAL)`: SIGALRM in `seconds`.
fn alarm(seconds: usize) {
    let timer = [0usize, 0, seconds, 0];
    // SAFETY: the kernel only reads the itimerval.
    let _ = unsafe {
        raw_syscall(
            g::__NR_setitimer as usize,
            [0, timer.as_ptr() as usize, 0, 0, 0, 0],
        )
    };
}

/// Resume with PTRACE_SYSCALL until the next syscall stop; a signal that
/// arrives meanwhile is held back and returned for delivery at detach.
/// `None` when the thread is gone or cannot get there ([`MAX_STOPS`]).
fn to_syscall_stop(pid: u32, held: &mut usize) -> Option<()> {
    for _ in 0..MAX_STOPS {
        sys::ptrace(pt::PTRACE_SYSCALL, pid, 0, 0).ok()?;
        let status = wait(pid)?;
        let stop = (status >> 8) & 0xffff;
        if stop == SIGTRAP | 0x80 {
            return Some(());
        }
        if stop & 0xff00 == 0 && stop != SIGTRAP {
            *held = stop as usize;
        }
    }
    None
}

fn regs(request: u32, pid: u32, regs: &mut kckpt_arch::UserRegs) -> Option<()> {
    sys::ptrace_regs(request, pid, regs).ok().map(|_| ())
}

/// Let every thread (stopped at its `int3`) run `rt_sigreturn`, unmap the
/// window from the first, detach all. A thread that cannot get through
/// means the restored process cannot run: process `stub` is killed.
fn unmap_window(stub: u32, pids: &[u32]) {
    let mut held = [0usize; MAX_THREADS];
    let mut r = kckpt_arch::UserRegs::default();
    let done = (|| {
        regs(pt::PTRACE_GETREGSET, pids[0], &mut r)?;
        let syscall_pc = kckpt_arch::syscall_pc_after_trap(&r);
        for (i, &pid) in pids.iter().enumerate() {
            // rt_sigreturn: entry, then exit with the restored registers.
            to_syscall_stop(pid, &mut held[i])?;
            to_syscall_stop(pid, &mut held[i])?;
        }
        unmap_in(pids[0], syscall_pc, &mut held[0])
    })();
    if done.is_none() {
        // SAFETY: kill touches no memory.
        let _ = unsafe { raw_syscall(g::__NR_kill as usize, [stub as usize, SIGKILL, 0, 0, 0, 0]) };
        return;
    }
    let stop = stop_word().load(Ordering::Acquire) as usize;
    if stop != 0 {
        // SAFETY: kill touches no memory.
        let _ = unsafe { raw_syscall(g::__NR_kill as usize, [stub as usize, stop, 0, 0, 0, 0]) };
    }
    for (i, &pid) in pids.iter().enumerate() {
        if let Some(slot) = slot_of(pid) {
            if let Some(result) = restart_of(slot) {
                let mut r = kckpt_arch::UserRegs::default();
                if regs(pt::PTRACE_GETREGSET, pid, &mut r).is_some()
                    && kckpt_arch::restart_in_kernel(&mut r, result)
                {
                    let _ = regs(pt::PTRACE_SETREGSET, pid, &mut r);
                }
            }
            let mask = mask_slot(slot).1.load(Ordering::Acquire);
            let _ = crate::xsys::ptrace_setsigmask(pid, mask);
        }
        let _ = sys::ptrace(pt::PTRACE_DETACH, pid, 0, held[i]);
    }
}

/// Run `rt_sigaction(SIGTRAP, saved)` and `munmap(window)` in `pid`,
/// stopped at the exit of its rt_sigreturn issued by the `syscall`
/// instruction at `syscall_pc`.
fn unmap_in(pid: u32, syscall_pc: u64, held: &mut usize) -> Option<()> {
    let mut restored = kckpt_arch::UserRegs::default();
    regs(pt::PTRACE_GETREGSET, pid, &mut restored)?;
    for (nr, args) in injected_calls() {
        run_call(pid, &restored, syscall_pc, nr, args, held)?;
    }
    regs(pt::PTRACE_SETREGSET, pid, &mut restored)
}

/// The system calls the tracer runs in a restored thread after its
/// `rt_sigreturn`, in order, with their arguments: `rt_sigaction(SIGTRAP,
/// saved)` and `munmap(window)` (a seccomp filter of the process sees
/// them: `crate::seccomp` checks them).
pub fn injected_calls() -> [(u32, [u64; 6]); 2] {
    let action = (HANDSHAKE_ADDR + SIGTRAP_ACTION_OFFSET) as u64;
    [
        (g::__NR_rt_sigaction, [SIGTRAP as u64, action, 0, 8, 0, 0]),
        (
            g::__NR_munmap,
            [WINDOW_START as u64, WINDOW_LEN as u64, 0, 0, 0, 0],
        ),
    ]
}

/// Make `pid` (registers `base`) run system call `nr(args)` at the
/// `syscall` instruction at `syscall_pc`, to its exit stop; `None` if it
/// failed (the process would run with state missing: it is killed).
fn run_call(
    pid: u32,
    base: &kckpt_arch::UserRegs,
    syscall_pc: u64,
    nr: u32,
    args: [u64; 6],
    held: &mut usize,
) -> Option<()> {
    let mut call = *base;
    kckpt_arch::set_syscall(&mut call, syscall_pc, u64::from(nr), args);
    regs(pt::PTRACE_SETREGSET, pid, &mut call)?;
    to_syscall_stop(pid, held)?;
    to_syscall_stop(pid, held)?;
    regs(pt::PTRACE_GETREGSET, pid, &mut call)?;
    (kckpt_arch::syscall_return(&call) >= 0).then_some(())
}
